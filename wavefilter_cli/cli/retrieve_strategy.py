"""The ``retrieve`` strategy: rank the chunks by BM25 against the question, keep the best whole chunks, answer once.

A baseline for ``filter`` that runs no model forward before generation.
Chunks are ranked by the word overlap of their text with the question
(``longcontext.retrieval``), and the best whole chunks that fit the same
room as ``filter`` fills (window minus instruction, headers, question and
answer) are kept in document order. The configured host cache and filter
answer over them.
"""

from __future__ import annotations

import numpy as np

from wavefilter_cli.cli.answer import cite
from wavefilter_cli.cli.answer_run import AnswerRun, run_generation
from wavefilter_cli.cli.long_inputs import ChunkPlan, chunking_record, header_costs, notice_line
from wavefilter_cli.longcontext.retrieval import rank_chunks, retrieved_tokens, select_chunks
from wavefilter_cli.longcontext.selection import merge_within_window

#: Name of the ranking in the notice and the JSON record.
RANKING = "bm25"


def answer_retrieved(run: AnswerRun, policy, plan: ChunkPlan, prompt_tokens: int):
    """Run the strategy and return the final Generated, its citations and the JSON ``chunking`` record."""
    frame = plan.frame
    answer = run.gen_config.answer_length
    room = run.window - answer - len(frame.prefix) - len(frame.suffix)

    run.view.set_stage("ranking")
    scores = rank_chunks(run.question, [document.text for document in run.documents], plan.chunks)
    chosen = select_chunks(plan.chunks, scores, header_costs(frame), room)
    if not len(chosen) and plan.chunks:
        # Only an explicit --chunk-tokens can make the best chunk overshoot the room, so trim it to fit.
        chosen = np.argsort(-scores, kind="stable")[:1]
    scored = retrieved_tokens(plan.chunks, chosen, plan.tokenized, scores)

    mode = run.config.generate.positions
    every_token = np.arange(len(scored))
    merged = merge_within_window(frame, scored, every_token, plan.tokenized, answer, run.window, mode)

    count = len(chosen)
    detail = f" of the {count} chunk{'' if count == 1 else 's'} ranked highest by BM25 ({mode} positions)"
    run.diagnostics.notice(notice_line(run, plan, "retrieve", prompt_tokens, merged.kept, detail))
    run.view.update(chunk=0, chunks=0)
    generated = run_generation(run, policy, merged.prompt.ids, positions=merged.positions)
    citations = cite(run, merged.prompt, generated, merged.positions) if run.output.wants_citations else []
    record = chunking_record(run, plan, "retrieve", merged.kept, ranking=RANKING,
                             retrieved_chunks=[int(index) + 1 for index in chosen], positions=mode)
    return generated, citations, record
