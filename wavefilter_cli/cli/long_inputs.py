"""Inputs longer than the window: chunking, then the ``filter``, ``retrieve`` or ``map-reduce`` strategy.

``filter`` (the default for ``ask``) scores every chunk's document tokens
with the key-token filter in one dense forward per chunk, keeps the most
important tokens of all chunks that fit the window, and answers once over
them. ``retrieve`` ranks whole chunks by BM25 against the question and
answers once over the best that fit. ``map-reduce`` (the default for
``summarize``) answers or summarises every chunk, then combines the outputs
until one call remains. One stderr line names the strategy, the chunks and
the document tokens kept; see docs/long-inputs.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from wavefilter_cli.chunking import MIN_CHUNK_TOKENS, Chunk, TokenizedDocument, chunk_documents, tokenize_document
from wavefilter_cli.cli.answer_run import AnswerRun
from wavefilter_cli.config import Config
from wavefilter_cli.errors import LengthError, UsageError
from wavefilter_cli.longcontext.prompts import PromptFrame, SourceText, build_frame, encode_mapped, token_ids
from wavefilter_cli.prompt import PART_SEPARATOR, document_header

logger = logging.getLogger(__name__)

#: Prompt tokens kept free for tokenisation differences at chunk edges.
EDGE_MARGIN = 4


def check_chunk_options(config: Config) -> None:
    """Reject, before any slow work, a chunk overlap that is not below an explicit chunk size (exit 2)."""
    generate = config.generate
    if generate.chunk_tokens is not None and generate.chunk_overlap >= generate.chunk_tokens:
        raise UsageError(
            f"--chunk-overlap {generate.chunk_overlap} is not below --chunk-tokens {generate.chunk_tokens}: "
            "use an overlap smaller than the chunk size, such as 64"
        )


def resolve_strategy(config: Config, summarize: bool) -> str:
    """Return the configured strategy, where ``auto`` means map-reduce for summaries and filter for questions."""
    if config.generate.strategy != "auto":
        return config.generate.strategy
    return "map-reduce" if summarize else "filter"


@dataclass
class ChunkPlan:
    """The cut of the input: the chunks, their size and overlap, and the prompt frame around them."""

    chunks: list[Chunk]
    tokenized: list[TokenizedDocument]
    frame: PromptFrame
    size: int
    overlap: int

    @property
    def document_tokens(self) -> int:
        return sum(tokens.length for tokens in self.tokenized)


def plan_chunks(run: AnswerRun) -> ChunkPlan:
    """Tokenise the documents and cut them into chunks whose prompts fit the window.

    Raises LengthError (exit 4) when the window leaves fewer than 16 tokens
    for document text, or when ``--chunk-tokens`` exceeds what fits, and
    UsageError (exit 2) when the overlap is not below the chunk size.
    """
    run.view.set_stage("chunking")
    names = [doc.source for doc in run.documents]
    frame = build_frame(run.tokenizer, names, run.question, run.instruction, run.config.generate.system)
    overhead = max(frame.overhead([index]) for index in range(len(names)))
    answer = run.gen_config.answer_length
    room = run.window - answer - overhead - EDGE_MARGIN
    if room < MIN_CHUNK_TOKENS:
        needed = overhead + answer + EDGE_MARGIN + MIN_CHUNK_TOKENS
        raise LengthError(
            f"{run.window_phrase()} leaves {max(room, 0)} tokens for document text after the instruction, header and "
            f"question ({overhead} tokens) and the answer ({answer} tokens); raise --ctx-tokens to at least {needed} "
            "or lower --max-tokens"
        )
    size = run.config.generate.chunk_tokens or room
    if size > room:
        raise LengthError(
            f"--chunk-tokens {size} does not fit {run.window_phrase()} with the instruction, header and question "
            f"({overhead} tokens) and the answer ({answer} tokens); use --chunk-tokens {room} or less"
        )
    overlap = run.config.generate.chunk_overlap
    if overlap >= size:
        raise UsageError(
            f"--chunk-overlap {overlap} is not below the chunk size of {size} tokens: use a smaller --chunk-overlap"
        )
    tokenized = [tokenize_document(run.tokenizer, doc.text) for doc in run.documents]
    chunks = chunk_documents(run.documents, tokenized, size, overlap)
    run.view.update(chunks=len(chunks))
    return ChunkPlan(chunks, tokenized, frame, size, overlap)


def answer_in_chunks(run: AnswerRun, policy, prompt_tokens: int):
    """Answer an input whose prompt plus answer (``prompt_tokens`` in all) exceeds the window."""
    from wavefilter_cli.cli.answer import AnswerResult

    plan = plan_chunks(run)
    strategy = resolve_strategy(run.config, run.question is None)
    if strategy == "filter":
        from wavefilter_cli.cli.filter_strategy import answer_filtered

        generated, citations, record = answer_filtered(run, policy, plan, prompt_tokens)
    elif strategy == "retrieve":
        from wavefilter_cli.cli.retrieve_strategy import answer_retrieved

        generated, citations, record = answer_retrieved(run, policy, plan, prompt_tokens)
    else:
        from wavefilter_cli.cli.mapreduce_strategy import answer_map_reduced

        generated, citations, record = answer_map_reduced(run, plan, prompt_tokens)
    return AnswerResult(generated, citations, chunking=record)


def notice_line(run: AnswerRun, plan: ChunkPlan, strategy: str, prompt_tokens: int, kept: int, detail: str) -> str:
    """Format the stderr line that reports how a long input is handled."""
    total = plan.document_tokens
    return (
        f"input is {prompt_tokens:,} tokens with the prompt and answer, over {run.window_phrase()}: "
        f"strategy {strategy}, {len(plan.chunks)} chunks of up to {plan.size:,} tokens (overlap {plan.overlap}); "
        f"kept {kept:,} of {total:,} document tokens{detail}"
    )


def chunking_record(run: AnswerRun, plan: ChunkPlan, strategy: str, kept: int, **extra) -> dict:
    """Build the ``chunking`` object of the JSON record."""
    return {
        "strategy": strategy,
        "window": run.window,
        "chunks": len(plan.chunks),
        "chunk_tokens": plan.size,
        "overlap": plan.overlap,
        "document_tokens": plan.document_tokens,
        "kept_document_tokens": kept,
        **extra,
    }


def chunk_source(run: AnswerRun, chunk: Chunk) -> SourceText:
    """Wrap the chunk's text as a prompt piece under its document's header."""
    document = run.documents[chunk.document]
    return SourceText(chunk.document, document.source, document.text[chunk.start:chunk.end], chunk.start)


def encode_chunk(run: AnswerRun, chunk: Chunk):
    """Encode the prompt of one chunk (instruction, the chunk under its header, question), mapped to characters."""
    return encode_mapped(run.tokenizer, [chunk_source(run, chunk)], run.question, run.instruction,
                         run.config.generate.system)


def measure_part(run: AnswerRun, name: str, text: str) -> int:
    """Count the prompt tokens of a document block named ``name`` with ``text``, separator included."""
    return len(token_ids(run.tokenizer, PART_SEPARATOR + document_header(name) + text.strip()))


def header_costs(frame: PromptFrame) -> np.ndarray:
    """Return the prompt tokens (D,) that each document's header line adds, separator included."""
    return np.array([len(ids) for ids in frame.joined_headers], dtype=np.int64)
