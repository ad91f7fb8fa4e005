"""The ``filter`` strategy: score every chunk, keep the best document tokens that fit, answer once.

Each chunk's prompt (instruction, the chunk under its header, question)
runs one dense forward in which the key-token filter scores the chunk's
document tokens from the question's queries (``longcontext.scoring``).
Across chunks, the most important document text is kept in document
order: whole sentences, each ranked by its most important token
(``generate.keep_unit = "sentences"``, the default), or single tokens
(``"tokens"``). It must fit the room (window minus instruction, headers,
question and answer) and, when ``generate.keep_tokens`` is set, number at
most that many tokens. The configured host cache and filter generate the
answer over the merged prompt.
"""

from __future__ import annotations

from wavefilter_cli.chunking import sentence_starts
from wavefilter_cli.cli.answer import FILTER_OPTIONS, cite
from wavefilter_cli.cli.answer_run import AnswerRun, run_generation
from wavefilter_cli.cli.long_inputs import ChunkPlan, chunking_record, encode_chunk, header_costs, notice_line
from wavefilter_cli.errors import UsageError
from wavefilter_cli.longcontext.scoring import score_document_tokens
from wavefilter_cli.longcontext.selection import (
    ScoredTokens,
    merge_within_window,
    select_tokens,
    select_units,
    sentence_units,
)


#: Key-token filter that scores chunks when ``cache.filter`` is none.
DEFAULT_SCORING_FILTER = "wavefilter"
#: Maximum tokens in one unit under ``keep_unit = "sentences"``. Longer sentences are cut into pieces.
MAX_UNIT_TOKENS = 64


def scoring_filter(run: AnswerRun, room: int, document_tokens: int):
    """The key-token filter that scores chunks: ``cache.filter``, or wavefilter when that is none.

    Its budget is the share of the document that will be kept, so beam
    filters (wavefilter) search as widely as the final selection needs.
    """
    from wavefilter_cli.filters.registry import make_filter

    cache = run.config.cache
    name = cache.filter if cache.filter not in (None, "none") else DEFAULT_SCORING_FILTER
    share = min(1.0, max(room, 1) / max(document_tokens, 1))
    options = FILTER_OPTIONS.get(name, lambda _: {})(cache)
    try:
        return make_filter(name, budget=float(share), sink=cache.sink, tail=cache.tail, **options)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def score_chunks(run: AnswerRun, plan: ChunkPlan, key_filter) -> ScoredTokens:
    """Importance of every chunk's document tokens, one dense forward per chunk, deduplicated across overlaps."""
    from wavefilter_cli.generation import mask_token_id

    mask_id = mask_token_id(run.model, run.tokenizer)
    answer, block = run.gen_config.answer_length, run.gen_config.block_length
    prompts, importances = [], []
    for number, chunk in enumerate(plan.chunks, start=1):
        run.view.update(stage="scoring", chunk=number)
        prompt = encode_chunk(run, chunk)
        importances.append(
            score_document_tokens(run.model, prompt.ids, prompt.document_rows, key_filter, answer, block, mask_id)
        )
        prompts.append(prompt)
    return ScoredTokens.gather(prompts, importances).deduplicated()


def answer_filtered(run: AnswerRun, policy, plan: ChunkPlan, prompt_tokens: int):
    """Run the strategy; returns the final Generated, its citations and the JSON ``chunking`` record."""
    frame = plan.frame
    answer = run.gen_config.answer_length
    room = run.window - answer - len(frame.prefix) - len(frame.suffix)
    limit = run.config.generate.keep_tokens
    key_filter = scoring_filter(run, room if limit is None else min(room, limit), plan.document_tokens)
    scored = score_chunks(run, plan, key_filter)

    run.view.set_stage("selecting")
    costs = header_costs(frame)
    mode = run.config.generate.positions
    if run.config.generate.keep_unit == "sentences":
        starts = [sentence_starts(document.text, tokens) for document, tokens in zip(run.documents, plan.tokenized)]
        # Cap the pieces at the room, so that a small keep_tokens still keeps the best one.
        longest = min(MAX_UNIT_TOKENS, room - int(costs.max(initial=0)), limit or MAX_UNIT_TOKENS)
        units = sentence_units(scored, plan.tokenized, starts, max(1, longest))
        chosen = select_units(scored, units, costs, room, limit)
    else:
        chosen = select_tokens(scored, costs, room, limit)
    merged = merge_within_window(frame, scored, chosen, plan.tokenized, answer, run.window, mode)

    unit = run.config.generate.keep_unit
    whole = "as whole sentences " if unit == "sentences" else ""
    detail = f" {whole}by {key_filter.name} scores ({mode} positions)"
    run.diagnostics.notice(notice_line(run, plan, "filter", prompt_tokens, merged.kept, detail))
    run.view.update(chunk=0, chunks=0)
    generated = run_generation(run, policy, merged.prompt.ids, positions=merged.positions)
    citations = cite(run, merged.prompt, generated, merged.positions) if run.output.wants_citations else []
    record = chunking_record(run, plan, "filter", merged.kept, scoring_filter=key_filter.name,
                             scoring_passes=len(plan.chunks), positions=mode, keep_unit=unit)
    return generated, citations, record
