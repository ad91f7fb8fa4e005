"""Token-aware chunking and the prompt-to-source mapping, with the built-in model's fast tokenizer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pdf_writer import build_pdf

from wavefilter_cli.chunking import (
    MIN_CHUNK_TOKENS,
    Chunk,
    boundary_tokens,
    check_chunk_options,
    chunk_document,
    chunk_documents,
    cut_points,
    tokenize_document,
    _PARAGRAPH_END,
)
from wavefilter_cli.errors import ModelError
from wavefilter_cli.ingest import Document, IngestOptions, Span, load_bytes
from wavefilter_cli.longcontext.prompts import SourceText, build_frame, encode_mapped, plain_prompt
from wavefilter_cli.prompt import ASK_INSTRUCTION, PromptDocument, chat_messages, encode_prompt

BUILTIN = Path(__file__).resolve().parent.parent / "wavefilter_cli" / "builtin_model"
QUESTION = "What is the passcode for the north gate?"


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(BUILTIN)


@pytest.fixture(scope="module")
def plain_tokenizer():
    """The same tokenizer without a chat template, as base checkpoints ship."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(BUILTIN)
    tok.chat_template = None
    return tok


def text_document(text: str, source: str = "notes.txt") -> Document:
    return Document(source, text, [Span(source, None, 0, len(text))], None)


def paragraphs(count: int, sentences: int = 4) -> str:
    rng = np.random.default_rng(0)
    words = "river stone market coin child square lamp bridge harbour letter".split()
    result = []
    for p in range(count):
        parts = []
        for _ in range(sentences):
            parts.append(" ".join(rng.choice(words, size=8)).capitalize() + ".")
        result.append(f"Paragraph {p}. " + " ".join(parts))
    return "\n\n".join(result)


# ---------------------------------------------------------------------------
# cut_points: the boundary rules on plain token indices
# ---------------------------------------------------------------------------


def test_cut_points_prefers_paragraph_boundary() -> None:
    ranges = cut_points(100, 40, 0, paragraphs=np.array([30, 70]), sentences=np.array([10, 30, 38, 70]))
    assert ranges[0] == (0, 30)


def test_cut_points_falls_back_to_sentence() -> None:
    # The only paragraph boundary would leave the chunk under half full.
    ranges = cut_points(100, 40, 0, paragraphs=np.array([5]), sentences=np.array([5, 33]))
    assert ranges[0] == (0, 33)


def test_cut_points_falls_back_to_tokens() -> None:
    ranges = cut_points(100, 40, 0, paragraphs=np.array([], dtype=np.int64), sentences=np.array([3]))
    assert ranges[0] == (0, 40)


def test_cut_points_overlap_and_cover() -> None:
    ranges = cut_points(1000, 64, 16, paragraphs=np.arange(0, 1000, 50), sentences=np.arange(0, 1000, 11))
    assert ranges[0][0] == 0
    assert ranges[-1][1] == 1000
    for (start, end), (next_start, _) in zip(ranges, ranges[1:]):
        assert end - start <= 64
        assert next_start == end - 16
        assert next_start > start


def test_cut_points_overlap_larger_than_half_still_advances() -> None:
    ranges = cut_points(500, 40, 30, paragraphs=np.arange(0, 500, 7), sentences=np.arange(0, 500, 7))
    starts = [start for start, _ in ranges]
    assert starts == sorted(set(starts))
    assert all(end - start > 30 for start, end in ranges[:-1])


@pytest.mark.parametrize(
    "size, overlap, fragment",
    [(MIN_CHUNK_TOKENS - 1, 0, "too small"), (64, -1, "overlap -1"), (64, 64, "not below the chunk size 64")],
)
def test_check_chunk_options_rejects(size: int, overlap: int, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        check_chunk_options(size, overlap)


# ---------------------------------------------------------------------------
# chunk_document on real text
# ---------------------------------------------------------------------------


def test_chunks_stay_within_size(tokenizer) -> None:
    document = text_document(paragraphs(30))
    tokens = tokenize_document(tokenizer, document.text)
    chunks = chunk_document(document, 0, tokens, 120, 20)
    assert len(chunks) > 3
    assert all(chunk.tokens <= 120 for chunk in chunks)
    assert chunks[0].token_start == 0
    assert chunks[-1].token_end == tokens.length


def test_chunks_overlap_by_requested_tokens(tokenizer) -> None:
    document = text_document(paragraphs(30))
    tokens = tokenize_document(tokenizer, document.text)
    chunks = chunk_document(document, 0, tokens, 120, 20)
    for chunk, following in zip(chunks, chunks[1:]):
        assert following.token_start == chunk.token_end - 20
        assert following.start < chunk.end


def test_chunks_end_on_paragraphs(tokenizer) -> None:
    document = text_document(paragraphs(30))
    tokens = tokenize_document(tokenizer, document.text)
    chunks = chunk_document(document, 0, tokens, 200, 0)
    for chunk in chunks[:-1]:
        assert document.text[: chunk.end].endswith("\n\n"), repr(document.text[chunk.end - 20 : chunk.end + 20])
        assert document.text[chunk.end :].startswith("Paragraph")


def test_chunk_text_matches_its_tokens(tokenizer) -> None:
    document = text_document(paragraphs(12))
    tokens = tokenize_document(tokenizer, document.text)
    for chunk in chunk_document(document, 0, tokens, 64, 8):
        decoded = tokenizer.decode(tokens.ids[chunk.token_start : chunk.token_end].tolist())
        assert decoded == document.text[chunk.start : chunk.end]


def test_long_sentence_cut_on_tokens(tokenizer) -> None:
    document = text_document(" ".join(["word"] * 400))
    tokens = tokenize_document(tokenizer, document.text)
    chunks = chunk_document(document, 0, tokens, 50, 0)
    assert [chunk.tokens for chunk in chunks[:-1]] == [50] * (len(chunks) - 1)


def test_paragraph_boundaries_map_to_next_token(tokenizer) -> None:
    text = "First one.\n\nSecond two."
    tokens = tokenize_document(tokenizer, text)
    index = int(boundary_tokens(text, tokens, _PARAGRAPH_END)[0])
    assert text[tokens.offsets[index, 0] :].startswith("Second")


def test_chunks_never_span_documents(tokenizer) -> None:
    documents = [text_document(paragraphs(6), "a.txt"), text_document(paragraphs(6), "b.txt")]
    tokenized = [tokenize_document(tokenizer, d.text) for d in documents]
    chunks = chunk_documents(documents, tokenized, 64, 0)
    assert {chunk.source for chunk in chunks} == {"a.txt", "b.txt"}
    for chunk in chunks:
        assert chunk.end <= len(documents[chunk.document].text)


def test_slow_tokenizer_is_model_error() -> None:
    class Slow:
        is_fast = False

    with pytest.raises(ModelError, match="fast tokenizer"):
        tokenize_document(Slow(), "text")


# ---------------------------------------------------------------------------
# Pages of a generated PDF
# ---------------------------------------------------------------------------


def pdf_document(pages: int = 6) -> Document:
    content = []
    for page in range(1, pages + 1):
        lines = [f"Page {page} keyword zeta{page}x."]
        lines += [f"Line {line} of page {page} talks about the harbour and the lamp." for line in range(8)]
        content.append(lines)
    return load_bytes(build_pdf(content), "report.pdf", IngestOptions())


def test_chunk_pages_match_spans(tokenizer) -> None:
    document = pdf_document()
    tokens = tokenize_document(tokenizer, document.text)
    chunks = chunk_document(document, 0, tokens, 48, 8)
    assert len(chunks) > 6
    for chunk in chunks:
        expected = [s.page for s in document.spans if s.length and s.start < chunk.end and chunk.start < s.end]
        assert list(chunk.pages) == expected


def test_chunk_holding_page_keyword_lists_that_page(tokenizer) -> None:
    document = pdf_document()
    tokens = tokenize_document(tokenizer, document.text)
    chunks = chunk_document(document, 0, tokens, 48, 8)
    for page in range(1, 7):
        at = document.text.index(f"zeta{page}x")
        holders = [c for c in chunks if c.start <= at < c.end]
        assert holders, f"no chunk holds page {page}'s keyword"
        assert all(page in c.pages for c in holders)
        assert document.span_at(at).page == page


def test_text_file_chunks_have_no_pages(tokenizer) -> None:
    document = text_document(paragraphs(10))
    tokens = tokenize_document(tokenizer, document.text)
    assert all(chunk.pages == () for chunk in chunk_document(document, 0, tokens, 64, 0))


# ---------------------------------------------------------------------------
# Mapped prompts and frames
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["tokenizer", "plain_tokenizer"])
def test_encode_mapped_equals_encode_prompt(fixture: str, request) -> None:
    tok = request.getfixturevalue(fixture)
    docs = [PromptDocument("a.txt", "  Alpha text.\n\nMore alpha. "), PromptDocument("b.txt", "Beta <b> text 4817.")]
    sources = [SourceText(i, d.name, d.text) for i, d in enumerate(docs)]
    mapped = encode_mapped(tok, sources, QUESTION, ASK_INSTRUCTION)
    assert mapped.ids == encode_prompt(tok, chat_messages(docs, QUESTION, ASK_INSTRUCTION))


@pytest.mark.parametrize("fixture", ["tokenizer", "plain_tokenizer"])
def test_encode_mapped_tokens_point_at_source(fixture: str, request) -> None:
    tok = request.getfixturevalue(fixture)
    texts = ["  Alpha text.\n\nMore alpha. ", "Beta text with 4817 in it."]
    offset = 100
    sources = [SourceText(i, f"{i}.txt", t, offset * i) for i, t in enumerate(texts)]
    mapped = encode_mapped(tok, sources, QUESTION, ASK_INSTRUCTION)
    rows = mapped.document_rows
    assert set(mapped.document[rows].tolist()) == {0, 1}
    for row in rows:
        index = int(mapped.document[row])
        local = slice(int(mapped.start[row]) - offset * index, int(mapped.end[row]) - offset * index)
        assert tok.decode([mapped.ids[row]]) == texts[index][local]
    first_doc = "".join(tok.decode([mapped.ids[r]]) for r in rows if mapped.document[r] == 0)
    assert first_doc == texts[0].strip()


def test_plain_prompt_has_no_document_rows() -> None:
    assert plain_prompt([5, 6, 7]).document_rows.size == 0


def test_frame_assembles_like_a_full_prompt(tokenizer) -> None:
    text = "Alpha text. More alpha."
    frame = build_frame(tokenizer, ["a.txt"], QUESTION, ASK_INSTRUCTION)
    body = tokenizer(text, add_special_tokens=False)["input_ids"]
    assembled = frame.assemble([(0, body)])
    expected = encode_prompt(tokenizer, chat_messages([PromptDocument("a.txt", text)], QUESTION, ASK_INSTRUCTION))
    assert tokenizer.decode(assembled) == tokenizer.decode(expected)
    assert abs(len(assembled) - len(expected)) <= 2


def test_frame_overhead_counts_headers(tokenizer) -> None:
    frame = build_frame(tokenizer, ["a.txt", "b.txt"], QUESTION, ASK_INSTRUCTION)
    single = frame.overhead([0])
    both = frame.overhead([0, 1])
    assert both == single + len(frame.joined_headers[1])


def test_chunk_type_reports_tokens() -> None:
    assert Chunk(0, "a", 10, 25, 0, 5, ()).tokens == 15
