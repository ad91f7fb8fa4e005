"""The pieces behind long inputs: chunk scoring, token selection, merged prompts, map-reduce flow, citations."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch
from pdf_writer import build_pdf
from tiny_models import StubTokenizer, random_tiny_model

from wavefilter_cli.chunking import chunk_document, sentence_starts, tokenize_document
from wavefilter_cli.filters.registry import FILTERS, make_filter
from wavefilter_cli.generation import BlockDone, GenerationConfig, generate
from wavefilter_cli.ingest import Document, IngestOptions, Span, load_bytes
from wavefilter_cli.longcontext.citations import Citation, citation_spans, combine_citations
from wavefilter_cli.longcontext.mapreduce import CallOutput, Part, map_reduce, pack
from wavefilter_cli.longcontext.prompts import MappedPrompt, SourceText, build_frame, encode_mapped
from wavefilter_cli.longcontext.scoring import pooled, relative_importance, score_document_tokens
from wavefilter_cli.longcontext.selection import ScoredTokens, merge_context, select_tokens, select_units, sentence_units
from wavefilter_cli.prompt import ASK_INSTRUCTION

BUILTIN = Path(__file__).resolve().parent.parent / "wavefilter_cli" / "builtin_model"
QUESTION = "What is the passcode for the north gate?"


@functools.lru_cache(maxsize=None)
def tiny_model(family: str):
    return random_tiny_model(family, seed=5, window=512)


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(BUILTIN)


def text_document(text: str, source: str = "notes.txt") -> Document:
    return Document(source, text, [Span(source, None, 0, len(text))], None)


# ---------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------


def test_relative_importance_has_mean_one() -> None:
    scores = torch.tensor([[1.0, 2.0, 3.0, 6.0], [-2.0, -1.0, 0.0, 1.0]])
    importance = relative_importance(scores)
    assert torch.allclose(importance.mean(dim=-1), torch.ones(2))
    assert (importance >= 0).all()
    assert importance[0].argmax() == 3


def test_relative_importance_unscored_get_zero() -> None:
    scores = torch.tensor([[float("-inf"), 0.5, float("nan"), 1.5]])
    importance = relative_importance(scores)
    assert importance[0, 0] == 0
    assert importance[0, 2] == 0
    assert importance[0, 3] > importance[0, 1] > 0


def test_relative_importance_flat_rows_are_uniform() -> None:
    assert torch.equal(relative_importance(torch.zeros(1, 5)), torch.ones(1, 5))
    assert torch.equal(relative_importance(torch.full((1, 3), float("-inf"))), torch.ones(1, 3))


def test_pooled_spreads_peaks_to_neighbours() -> None:
    values = torch.zeros(20)
    values[10] = 5.0
    result = pooled(values, 5)
    assert result[8:13].tolist() == [5.0] * 5
    assert result[7] == 0
    assert result[13] == 0


@pytest.mark.parametrize("filter_name", sorted(FILTERS))
@pytest.mark.parametrize("family", ["llada", "dream"])
def test_every_filter_scores_a_chunk(family: str, filter_name: str) -> None:
    generator = torch.Generator().manual_seed(2)
    prompt = torch.randint(0, 290, (120,), generator=generator).tolist()
    rows = np.arange(10, 100)
    key_filter = make_filter(filter_name, budget=0.25, sink=4, tail=8)
    importance = score_document_tokens(tiny_model(family), prompt, rows, key_filter, 16, 8, 300)
    assert importance.shape == (rows.size,)
    assert torch.isfinite(importance).all()
    assert (importance >= 0).all()


def test_scoring_ranks_streaming_by_position() -> None:
    prompt = list(range(100))
    rows = np.arange(5, 95)
    key_filter = make_filter("streaming", budget=0.25, sink=4, tail=8)
    importance = score_document_tokens(tiny_model("llada"), prompt, rows, key_filter, 8, 8, 300, kernel=1)
    assert torch.all(importance[1:] >= importance[:-1])


# ---------------------------------------------------------------------------
# Selection and merged prompts
# ---------------------------------------------------------------------------


def scored(importance, document=None, start=None) -> ScoredTokens:
    count = len(importance)
    document = np.zeros(count, dtype=np.int64) if document is None else np.asarray(document)
    start = np.arange(count) * 2 if start is None else np.asarray(start)
    return ScoredTokens(np.arange(count) + 100, document, start, start + 2, np.asarray(importance, dtype=np.float32))


def test_select_tokens_respects_room_with_headers() -> None:
    tokens = scored([5, 1, 4, 3, 2, 9, 8], document=[0, 0, 0, 0, 0, 1, 1], start=[0, 2, 4, 6, 8, 0, 2])
    chosen = select_tokens(tokens, header_cost=np.array([3, 3]), room=10)
    documents = tokens.document[chosen]
    cost = len(chosen) + 3 * len(set(documents.tolist()))
    assert cost <= 10
    assert set(tokens.importance[chosen].tolist()) == {9.0, 8.0, 5.0, 4.0}


def test_select_tokens_keeps_document_order() -> None:
    rng = np.random.default_rng(0)
    tokens = scored(rng.random(200), document=np.repeat([0, 1, 2], [80, 60, 60]),
                    start=np.concatenate([np.arange(80), np.arange(60), np.arange(60)]) * 3)
    chosen = select_tokens(tokens, np.array([2, 2, 2]), room=50)
    keys = list(zip(tokens.document[chosen].tolist(), tokens.start[chosen].tolist()))
    assert keys == sorted(keys)
    assert len(chosen) + 2 * len(set(tokens.document[chosen].tolist())) <= 50


def test_select_tokens_limit_excludes_headers() -> None:
    tokens = scored([5, 1, 4, 3, 2, 9, 8], document=[0, 0, 0, 0, 0, 1, 1], start=[0, 2, 4, 6, 8, 0, 2])
    chosen = select_tokens(tokens, header_cost=np.array([30, 30]), room=100, limit=3)
    assert set(tokens.importance[chosen].tolist()) == {9.0, 8.0, 5.0}


def test_select_tokens_drops_overlapping_edges() -> None:
    tokens = ScoredTokens(np.array([1, 2, 3]), np.zeros(3, np.int64), np.array([0, 3, 4]), np.array([4, 6, 8]),
                          np.array([1.0, 1.0, 1.0], np.float32))
    chosen = select_tokens(tokens, np.array([0]), room=10)
    assert tokens.start[chosen].tolist() == [0, 4]


def test_deduplicated_keeps_most_important_copy() -> None:
    tokens = ScoredTokens(np.array([7, 8, 7]), np.zeros(3, np.int64), np.array([0, 5, 0]), np.array([5, 9, 5]),
                          np.array([0.5, 1.0, 2.0], np.float32))
    unique = tokens.deduplicated()
    assert len(unique) == 2
    assert unique.importance.tolist() == [2.0, 1.0]


def document_tokens(tokenizer, text: str, importance) -> tuple[ScoredTokens, list]:
    """Score every token of one document ``text`` with ``importance`` (a function of the token index)."""
    tokens = tokenize_document(tokenizer, text)
    count = tokens.length
    scored_tokens = ScoredTokens(tokens.ids, np.zeros(count, np.int64), tokens.offsets[:, 0], tokens.offsets[:, 1],
                                 np.asarray([importance(i) for i in range(count)], dtype=np.float32))
    return scored_tokens, [tokens]


def test_sentence_units_cut_long_sentences(tokenizer) -> None:
    text = "The gate is red. The code for the north gate is 4817. " + "Then a long sentence runs on and on " * 6 + "and ends."
    tokens, tokenized = document_tokens(tokenizer, text, lambda i: 1.0)
    starts = [sentence_starts(text, tokenized[0])]
    units = sentence_units(tokens, tokenized, starts, longest=16)
    pieces = [tokenizer.decode(tokens.ids[units == u].tolist()) for u in range(int(units.max()) + 1)]
    assert pieces[0].strip() == "The gate is red."
    assert pieces[1].strip() == "The code for the north gate is 4817."
    assert all(np.count_nonzero(units == u) <= 16 for u in range(len(pieces)))
    assert len(pieces) > 3
    assert np.all(np.diff(units) >= 0)


def test_select_units_keeps_best_sentence_whole(tokenizer) -> None:
    text = "Rain fell all day. The code for the north gate is 4817. The lamps were lit. Nobody came."
    tokenized_fact = tokenize_document(tokenizer, "Rain fell all day. The code")
    peak = tokenized_fact.length - 1  # the token "code"
    tokens, tokenized = document_tokens(tokenizer, text, lambda i: 5.0 if i == peak else 1.0 / (i + 1))
    units = sentence_units(tokens, tokenized, [sentence_starts(text, tokenized[0])], longest=64)
    fact = units[peak]
    room = int(np.count_nonzero(units == fact)) + 2
    chosen = select_units(tokens, units, header_cost=np.array([2]), room=room)
    assert set(units[chosen].tolist()) == {fact}
    assert tokenizer.decode(tokens.ids[chosen].tolist()).strip() == "The code for the north gate is 4817."
    everything = select_units(tokens, units, header_cost=np.array([2]), room=len(tokens) + 2)
    assert everything.tolist() == list(range(len(tokens)))
    smaller = select_units(tokens, units, header_cost=np.array([2]), room=room - 1)
    assert smaller.size > 0
    assert fact not in units[smaller].tolist()
    assert smaller.size + 2 <= room - 1
    limited = select_units(tokens, units, header_cost=np.array([50]), room=1000, limit=room - 2)
    assert set(units[limited].tolist()) == {fact}


def merged_fixture(tokenizer, mode: str):
    texts = ["Alpha one two three. " * 6, "Beta four five six. " * 6]
    documents = [text_document(t, f"{i}.txt") for i, t in enumerate(texts)]
    tokenized = [tokenize_document(tokenizer, d.text) for d in documents]
    prompts = []
    for index, (document, tokens) in enumerate(zip(documents, tokenized)):
        for chunk in chunk_document(document, index, tokens, 20, 4):
            source = SourceText(index, document.source, document.text[chunk.start:chunk.end], chunk.start)
            prompts.append(encode_mapped(tokenizer, [source], QUESTION, ASK_INSTRUCTION))
    importances = [torch.rand(p.document_rows.size, generator=torch.Generator().manual_seed(i)) for i, p in enumerate(prompts)]
    tokens = ScoredTokens.gather(prompts, importances).deduplicated()
    frame = build_frame(tokenizer, [d.source for d in documents], QUESTION, ASK_INSTRUCTION)
    chosen = select_tokens(tokens, np.array([len(h) for h in frame.joined_headers]), room=40)
    return documents, tokenized, frame, tokens, chosen, merge_context(frame, tokens, chosen, tokenized, 8, mode)


def test_merged_prompt_holds_kept_tokens_in_order(tokenizer) -> None:
    documents, _, frame, tokens, chosen, merged = merged_fixture(tokenizer, "compact")
    rows = merged.prompt.document_rows
    assert merged.positions is None
    assert merged.kept == len(chosen) == rows.size
    assert [merged.prompt.ids[r] for r in rows] == tokens.ids[chosen].tolist()
    assert len(merged.prompt) <= len(frame.prefix) + len(frame.suffix) + 40
    for row in rows:
        document = documents[merged.prompt.document[row]]
        piece = document.text[merged.prompt.start[row] : merged.prompt.end[row]]
        assert tokenizer.decode([merged.prompt.ids[row]]) == piece


def test_original_positions_follow_the_full_input(tokenizer) -> None:
    _, tokenized, frame, tokens, chosen, merged = merged_fixture(tokenizer, "original")
    positions = merged.positions
    assert positions.shape == (len(merged.prompt) + 8,)
    assert np.all(np.diff(positions) >= 0)
    assert positions[: len(frame.prefix)].tolist() == list(range(len(frame.prefix)))
    full = len(frame.prefix) + len(frame.headers[0]) + tokenized[0].length + len(frame.joined_headers[1]) + tokenized[1].length
    assert positions[len(merged.prompt) - len(frame.suffix)] == full
    rows = merged.prompt.document_rows
    first_doc = rows[merged.prompt.document[rows] == 0]
    expected = len(frame.prefix) + len(frame.headers[0]) + tokenized[0].token_at(merged.prompt.start[first_doc])
    assert positions[first_doc].tolist() == expected.tolist()


class PositionSpy:
    """Wraps a model and records the position ids of every forward."""

    def __init__(self, model):
        self.model = model
        self.config = model.config
        self.logit_shift = model.logit_shift
        self.seen = []

    def parameters(self):
        return self.model.parameters()

    def __call__(self, *args, position_ids=None, **kwargs):
        self.seen.append(position_ids.clone())
        return self.model(*args, position_ids=position_ids, **kwargs)


def answer_tokens(model, prompt, positions):
    config = GenerationConfig(max_tokens=8, block_length=8, steps=4)
    events = generate(model, StubTokenizer(), prompt, config, positions=positions)
    return [t for e in events if isinstance(e, BlockDone) for t in e.tokens]


def test_generate_with_slot_positions_matches_default() -> None:
    prompt = list(range(40))
    assert answer_tokens(tiny_model("llada"), prompt, np.arange(48)) == answer_tokens(tiny_model("llada"), prompt, None)


def test_generate_maps_fed_slots_through_positions() -> None:
    spy = PositionSpy(tiny_model("llada"))
    table = np.arange(48) * 3 + 7
    answer_tokens(spy, list(range(40)), table)
    assert spy.seen[0][0].tolist() == table.tolist()
    assert all(set(ids[0].tolist()) <= set(table.tolist()) for ids in spy.seen)


def test_generate_rejects_short_position_table() -> None:
    with pytest.raises(ValueError, match="one per slot"):
        list(generate(tiny_model("llada"), StubTokenizer(), list(range(10)), GenerationConfig(max_tokens=8), positions=[0, 1]))


# ---------------------------------------------------------------------------
# Map-reduce control flow
# ---------------------------------------------------------------------------


class FakeCalls:
    """Records each call and answers with a fixed-size text."""

    def __init__(self, size: int = 10, empty: set[tuple[int, int]] = frozenset()):
        self.calls = []
        self.size = size
        self.empty = empty

    def __call__(self, parts, call):
        self.calls.append((call.stage, call.index, call.count, call.final, [p.name for p in parts]))
        if (call.stage, call.index) in self.empty:
            return CallOutput("")
        return CallOutput("x" * self.size)


def chunk_parts(count: int) -> list[Part]:
    return [Part(f"chunk {i}", "text", i, i) for i in range(1, count + 1)]


def test_map_reduce_stages_and_calls() -> None:
    calls = FakeCalls()
    result = map_reduce(chunk_parts(8), calls, measure=lambda part: len(part.text), room=25)
    stages = [c[0] for c in calls.calls]
    assert stages == [1] * 8 + [2] * 4 + [3] * 2 + [4]
    assert [c[3] for c in calls.calls] == [False] * 14 + [True]
    assert result.stages == 4
    assert result.calls == 15
    assert calls.calls[8][4] == ["chunk 1", "chunk 2"]
    assert calls.calls[12][4] == ["parts 1-2", "parts 3-4"]
    assert calls.calls[-1][4] == ["parts 1-4", "parts 5-8"]


def test_map_reduce_single_chunk_is_one_final_call() -> None:
    calls = FakeCalls()
    result = map_reduce(chunk_parts(1), calls, measure=lambda part: 1, room=5)
    assert calls.calls == [(1, 1, 1, True, ["chunk 1"])]
    assert result.calls == 1


def test_map_reduce_leaves_out_empty_outputs() -> None:
    calls = FakeCalls(empty={(1, 2)})
    map_reduce(chunk_parts(3), calls, measure=lambda part: len(part.text), room=100)
    assert calls.calls[-1][4] == ["chunk 1", "chunk 3"]


def test_map_reduce_without_progress_raises() -> None:
    with pytest.raises(ValueError, match="no two outputs"):
        map_reduce(chunk_parts(4), FakeCalls(size=10), measure=lambda part: len(part.text), room=15)


def test_pack_keeps_order_and_room() -> None:
    parts = [Part(str(i), "x" * size, i, i) for i, size in enumerate([4, 4, 4, 9, 1, 1])]
    groups = pack(parts, lambda part: len(part.text), room=9)
    assert [[p.name for p in g] for g in groups] == [["0", "1"], ["2"], ["3"], ["4", "5"]]


# ---------------------------------------------------------------------------
# Citations
# ---------------------------------------------------------------------------


def pdf_document() -> Document:
    content = [[f"Page {page} says the code word is zeta{page}x and nothing else."] for page in range(1, 5)]
    return load_bytes(build_pdf(content), "report.pdf", IngestOptions())


def test_citation_points_at_attended_page(tokenizer) -> None:
    document = pdf_document()
    prompt = encode_mapped(tokenizer, [SourceText(0, document.source, document.text)], QUESTION, ASK_INSTRUCTION)
    attention = np.full(len(prompt), 0.01)
    at = document.text.index("zeta3x")
    rows = prompt.document_rows
    hit = rows[(prompt.start[rows] <= at) & (prompt.end[rows] > at)]
    attention[hit] = 5.0
    citations = citation_spans(prompt, attention, [document])
    assert citations[0].page == 3
    assert citations[0].file == "report.pdf"
    assert "zeta" in citations[0].text
    span = next(s for s in document.spans if s.page == 3)
    assert span.start <= citations[0].start < citations[0].end <= span.end
    assert citations[0].text == document.text[citations[0].start : citations[0].end]


def test_citations_never_cross_pages(tokenizer) -> None:
    document = pdf_document()
    prompt = encode_mapped(tokenizer, [SourceText(0, document.source, document.text)], QUESTION, ASK_INSTRUCTION)
    attention = np.random.default_rng(1).random(len(prompt))
    citations = citation_spans(prompt, attention, [document])
    assert 0 < len(citations) <= 5
    for citation in citations:
        span = next(s for s in document.spans if s.page == citation.page)
        assert span.start <= citation.start <= citation.end <= span.end


def test_citation_spans_empty_without_documents() -> None:
    prompt = MappedPrompt([1, 2], np.array([-1, -1]), np.zeros(2, np.int64), np.zeros(2, np.int64))
    assert citation_spans(prompt, np.ones(2), []) == []


def test_combine_citations_weights_by_share() -> None:
    a = Citation("a.txt", None, 0, 5, "alpha", 1.0)
    b = Citation("b.txt", None, 0, 4, "beta", 1.0)
    combined = combine_citations([[a], [b], [a]], [0.2, 0.5, 0.3])
    assert [c.file for c in combined] == ["a.txt", "b.txt"]
    assert combined[0].weight == pytest.approx(0.5)
    assert combined[0].record() == {"file": "a.txt", "page": None, "start": 0, "end": 5, "text": "alpha"}
