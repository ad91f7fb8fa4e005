"""The ``retrieve`` strategy: BM25 ranking, whole-chunk selection, and ``ask --strategy retrieve`` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_cli_long_inputs import QUESTION, WINDOW, long_text, notice, run
from tiny_models import make_tokenizer, save_tiny_llada

from wavefilter_cli.chunking import Chunk, TokenizedDocument, chunk_document, tokenize_document
from wavefilter_cli.ingest import Document, Span
from wavefilter_cli.longcontext.prompts import build_frame
from wavefilter_cli.longcontext.retrieval import (
    bm25_scores,
    rank_chunks,
    retrieved_tokens,
    select_chunks,
    terms,
)
from wavefilter_cli.longcontext.selection import merge_within_window
from wavefilter_cli.prompt import ASK_INSTRUCTION

BUILTIN = Path(__file__).resolve().parent.parent / "wavefilter_cli" / "builtin_model"
FILLER = "The harbour lamp was lit at dusk and the merchants counted coins by the bridge."


# ---------------------------------------------------------------------------
# BM25
# ---------------------------------------------------------------------------


def test_terms_are_lowercased_words() -> None:
    assert terms("The Passcode, for the north-gate: 4817!") == ["the", "passcode", "for", "the", "north", "gate", "4817"]


def test_bm25_ranks_rare_words_first() -> None:
    passages = [terms(FILLER * 3) for _ in range(5)]
    passages[3] = terms(FILLER + " The passcode for the north gate is 4817. " + FILLER)
    scores = bm25_scores(terms(QUESTION), passages)
    assert scores.shape == (5,)
    assert int(np.argmax(scores)) == 3
    assert scores[3] > 2 * np.delete(scores, 3).max()


def test_bm25_word_in_every_passage_adds_little() -> None:
    passages = [terms("the gate"), terms("the wall"), terms("the road")]
    common = bm25_scores(["the"], passages)
    rare = bm25_scores(["gate"], passages)
    assert np.all(common > 0)
    assert rare[0] > 5 * common[0]


def test_bm25_longer_passage_scores_lower() -> None:
    short = terms("passcode gate")
    long = terms("passcode gate " + FILLER * 4)
    scores = bm25_scores(["passcode"], [short, long, terms(FILLER)])
    assert scores[0] > scores[1] > scores[2] == 0


def test_bm25_empty_query_scores_zero() -> None:
    scores = bm25_scores([], [terms(FILLER), terms("gate")])
    np.testing.assert_array_equal(scores, np.zeros(2))


def test_bm25_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="invalid BM25 parameters k1=1.5, b=1.5"):
        bm25_scores(["gate"], [["gate"]], b=1.5)


def test_rank_chunks_finds_planted_fact() -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(BUILTIN)
    text = long_text(40)
    document = Document("notes.txt", text, [Span("notes.txt", None, 0, len(text))], None)
    tokens = tokenize_document(tokenizer, text)
    chunks = chunk_document(document, 0, tokens, 64, 8)
    assert len(chunks) > 5
    scores = rank_chunks(QUESTION, [text], chunks)
    best = chunks[int(np.argmax(scores))]
    assert "The passcode for the north gate is 4817." in text[best.start:best.end]


# ---------------------------------------------------------------------------
# Chunk selection
# ---------------------------------------------------------------------------


def chunk(document: int, token_start: int, token_end: int) -> Chunk:
    return Chunk(document, f"doc{document}.txt", token_start, token_end, token_start * 4, token_end * 4, ())


def test_select_chunks_respects_room_with_headers() -> None:
    chunks = [chunk(0, 0, 10), chunk(0, 10, 20), chunk(1, 0, 10), chunk(1, 10, 20)]
    scores = np.array([1.0, 4.0, 3.0, 2.0])
    chosen = select_chunks(chunks, scores, np.array([2, 2]), room=25)
    # Chunk 1 costs 12 with its header, then chunk 2 costs 12 with its header. Chunk 3 (10) no longer fits.
    assert chosen.tolist() == [1, 2]


def test_select_chunks_keeps_document_order() -> None:
    chunks = [chunk(0, start, start + 10) for start in range(0, 60, 10)]
    scores = np.array([0.0, 5.0, 1.0, 0.0, 9.0, 2.0])
    chosen = select_chunks(chunks, scores, np.array([0]), room=30)
    assert chosen.tolist() == [1, 4, 5]


def test_select_chunks_skips_too_long_chunk() -> None:
    chunks = [chunk(0, 0, 50), chunk(0, 50, 55), chunk(0, 55, 60)]
    scores = np.array([1.0, 9.0, 5.0])
    chosen = select_chunks(chunks, scores, np.array([0]), room=20)
    assert chosen.tolist() == [1, 2]


def test_select_chunks_counts_overlap_once() -> None:
    # Overlapping neighbours (sharing tokens 8 and 9) cost 10 + 8, which fits 18 exactly.
    chunks = [chunk(0, 0, 10), chunk(0, 8, 18), chunk(0, 16, 26)]
    scores = np.array([2.0, 3.0, 1.0])
    chosen = select_chunks(chunks, scores, np.array([0]), room=18)
    assert chosen.tolist() == [0, 1]


def test_select_chunks_ties_in_document_order() -> None:
    chunks = [chunk(0, start, start + 10) for start in range(0, 40, 10)]
    chosen = select_chunks(chunks, np.zeros(4), np.array([0]), room=20)
    assert chosen.tolist() == [0, 1]


def test_select_chunks_rejects_score_count() -> None:
    with pytest.raises(ValueError, match="2 scores for 3 chunks"):
        select_chunks([chunk(0, 0, 5)] * 3, np.zeros(2), np.array([0]), room=10)


def tokenized_document(length: int) -> TokenizedDocument:
    ids = np.arange(100, 100 + length, dtype=np.int64)
    offsets = np.stack([np.arange(length) * 4, np.arange(length) * 4 + 3], axis=1)
    return TokenizedDocument(ids, offsets)


def test_retrieved_tokens_deduplicate_overlap() -> None:
    chunks = [chunk(0, 0, 10), chunk(0, 8, 18), chunk(0, 30, 40)]
    scores = np.array([1.0, 3.0, 2.0])
    tokens = retrieved_tokens(chunks, [0, 1, 2], [tokenized_document(40)], scores)
    assert len(tokens) == 28
    assert tokens.ids.tolist() == list(range(100, 118)) + list(range(130, 140))
    # The shared tokens take the rank of the better chunk, 1 (rank value 3).
    assert tokens.importance[8:10].tolist() == [3.0, 3.0]
    assert tokens.importance[:8].tolist() == [1.0] * 8
    assert tokens.importance[18:].tolist() == [2.0] * 10


def test_merge_within_window_trims_lowest_ranked_chunk() -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(BUILTIN)
    frame = build_frame(tokenizer, ["doc0.txt"], QUESTION, ASK_INSTRUCTION)
    chunks = [chunk(0, 0, 20), chunk(0, 20, 40)]
    tokenized = [tokenized_document(40)]
    tokens = retrieved_tokens(chunks, [0, 1], tokenized, np.array([1.0, 2.0]))
    full = len(frame.prefix) + len(frame.headers[0]) + 40 + len(frame.suffix)
    merged = merge_within_window(frame, tokens, np.arange(len(tokens)), tokenized, 8, full + 8 - 5)
    assert len(merged.prompt) + 8 == full + 8 - 5
    assert merged.kept == 35
    # The better chunk (tokens 20-39) stays whole.
    assert set(range(120, 140)) <= set(merged.prompt.ids)


# ---------------------------------------------------------------------------
# ask --strategy retrieve
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def llada_dir(tmp_path_factory) -> Path:
    tokenizer_dir = make_tokenizer(tmp_path_factory.mktemp("tok"))
    return save_tiny_llada(tmp_path_factory.mktemp("llada") / "m", tokenizer_dir, window=WINDOW)


@pytest.fixture
def document(tmp_path) -> Path:
    path = tmp_path / "long.txt"
    path.write_text(long_text())
    return path


def test_cli_retrieve_fits_window_and_says_so(llada_dir, document):
    result = run("ask", QUESTION, "--context", str(document), "-m", str(llada_dir), "--max-tokens", "8",
                 "--strategy", "retrieve", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    chunking = record["chunking"]
    assert chunking["strategy"] == "retrieve"
    assert chunking["ranking"] == "bm25"
    assert chunking["chunks"] > 1
    assert len(chunking["retrieved_chunks"]) >= 1
    assert 0 < chunking["kept_document_tokens"] < chunking["document_tokens"]
    assert record["tokens_in"] + 8 <= WINDOW
    line = notice(result.stderr)
    assert "strategy retrieve" in line
    assert f"kept {chunking['kept_document_tokens']:,} of {chunking['document_tokens']:,} document tokens" in line
    assert "ranked highest by BM25 (compact positions)" in line


def test_cli_retrieve_small_chunks_keeps_several(llada_dir, document):
    result = run("ask", QUESTION, "--context", str(document), "-m", str(llada_dir), "--max-tokens", "8",
                 "--strategy", "retrieve", "--chunk-tokens", "40", "--chunk-overlap", "8", "--positions", "original",
                 "--cache", "dual", "--filter", "snapkv", "--json", "--cite")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    chunking = record["chunking"]
    retrieved = chunking["retrieved_chunks"]
    assert len(retrieved) > 1
    assert retrieved == sorted(retrieved)
    assert chunking["positions"] == "original"
    assert record["tokens_in"] + 8 <= WINDOW
    assert "citations:" in result.stderr
