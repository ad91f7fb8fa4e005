"""The ``map-reduce`` strategy: one call per chunk, then calls over the outputs until one remains.

The map stage summarises each chunk (``summarize``) or answers the question
from it (``ask``), with the command's own instruction. Reduce stages run
the same instruction over packs of outputs, each under a header naming the
chunks it covers. Only the final call writes to stdout. With citations
requested, each call adds one dense forward: map calls cite source spans,
and later calls pass their inputs' citations on, weighted by the attention
the output gave each input.
"""

from __future__ import annotations

import numpy as np

from wavefilter_cli.cli.answer import build_policy
from wavefilter_cli.cli.answer_run import AnswerRun, Generated, run_generation
from wavefilter_cli.cli.long_inputs import (
    EDGE_MARGIN,
    ChunkPlan,
    chunk_source,
    chunking_record,
    measure_part,
    notice_line,
)
from wavefilter_cli.errors import LengthError
from wavefilter_cli.longcontext.citations import answer_attention, citation_spans, combine_citations, normalized
from wavefilter_cli.longcontext.mapreduce import CallOutput, Part, StageCall, map_reduce
from wavefilter_cli.longcontext.prompts import SourceText, encode_mapped

#: Header name of a reduce stage's output whose name the room check assumes, in the worst case.
_LONGEST_PART_NAME = "parts 10000-10000"


def chunk_name(run: AnswerRun, plan: ChunkPlan, index: int) -> str:
    """Name chunk ``index`` for reduce headers by its source and pages, or by its place in its document."""
    chunk = plan.chunks[index]
    source = run.documents[chunk.document].source
    if chunk.pages:
        first, last = chunk.pages[0], chunk.pages[-1]
        return f"{source}, page {first}" if first == last else f"{source}, pages {first}-{last}"
    siblings = [c for c in plan.chunks if c.document == chunk.document]
    return f"{source}, part {siblings.index(chunk) + 1} of {len(siblings)}"


class StageCaller:
    """Runs the model calls of the stages and keeps the final one's Generated."""

    def __init__(self, run: AnswerRun, plan: ChunkPlan) -> None:
        self.run = run
        self.plan = plan
        self.final: Generated | None = None

    def __call__(self, parts, call: StageCall) -> CallOutput:
        run = self.run
        from_chunks = call.stage == 1
        if from_chunks:
            sources = [chunk_source(run, self.plan.chunks[part.first - 1]) for part in parts]
        else:
            sources = [SourceText(number, part.name, part.text) for number, part in enumerate(parts)]
        prompt = encode_mapped(run.tokenizer, sources, run.question, run.instruction, run.config.generate.system)
        run.view.update(stage=call.name, chunk=call.index, chunks=call.count)
        if call.final:
            run.view.update(chunk=0, chunks=0)
        generated = run_generation(run, build_policy(run.config), prompt.ids, show=call.final, stage=call.name)
        if call.final:
            self.final = generated
        citations = self._citations(prompt, generated, parts, from_chunks) if run.output.wants_citations else []
        return CallOutput(generated.finished.answer, citations)

    def _citations(self, prompt, generated: Generated, parts, from_chunks: bool):
        """Source spans of a call's output: cited directly from chunks, or passed on from its inputs."""
        run = self.run
        if not generated.answer_tokens:
            return []
        attention = answer_attention(run.model, list(prompt.ids) + generated.answer_tokens, len(prompt))
        if from_chunks:
            return normalized(citation_spans(prompt, attention, run.documents))
        rows = prompt.document_rows
        shares = np.bincount(prompt.document[rows], weights=attention[rows], minlength=len(parts))
        return combine_citations([part.citations for part in parts], shares.tolist())


def answer_map_reduced(run: AnswerRun, plan: ChunkPlan, prompt_tokens: int):
    """Run the strategy; returns the final Generated, its citations and the JSON ``chunking`` record."""
    frame = plan.frame
    answer = run.gen_config.answer_length
    room = run.window - answer - len(frame.prefix) - len(frame.suffix) - EDGE_MARGIN
    smallest = 2 * (answer + measure_part(run, _LONGEST_PART_NAME, ""))
    if room < smallest:
        raise LengthError(
            f"{run.window_phrase()} leaves {room} tokens for the outputs to combine, fewer than two outputs of "
            f"{answer} tokens need ({smallest}); raise --ctx-tokens, lower --max-tokens or use --strategy filter"
        )
    action = "summarised" if run.question is None else "answered"
    detail = f"; each chunk is {action} on its own, then the outputs are combined"
    run.diagnostics.notice(notice_line(run, plan, "map-reduce", prompt_tokens, plan.document_tokens, detail))

    chunks = [Part(chunk_name(run, plan, i), chunk_source(run, c).text, i + 1, i + 1) for i, c in enumerate(plan.chunks)]
    caller = StageCaller(run, plan)
    try:
        result = map_reduce(chunks, caller, lambda part: measure_part(run, part.name, part.text), room)
    except ValueError as exc:
        raise LengthError(f"{exc}; raise --ctx-tokens or lower --max-tokens") from None
    assert caller.final is not None
    record = chunking_record(run, plan, "map-reduce", plan.document_tokens, stages=result.stages, calls=result.calls)
    return caller.final, result.output.citations, record
