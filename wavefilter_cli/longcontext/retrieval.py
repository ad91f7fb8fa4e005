"""Chunk retrieval by BM25: rank the chunks by their word overlap with the question, keep the best that fit.

Terms are lower-cased words (runs of letters, digits and underscores), so
the ranking does not depend on the model's tokenizer. Okapi BM25 scores
passage p for the distinct query terms t as

    sum_t idf(t) · f(t, p) · (k1 + 1) / (f(t, p) + k1 · (1 − b + b · |p| / avgdl))

where f is the term's count in p, |p| the passage's word count and avgdl
the mean over the passages. ``idf(t) = ln(1 + (N − n_t + 0.5) / (n_t + 0.5))``
with N passages of which n_t contain t, which stays positive for terms in
every passage.

``select_chunks`` takes whole chunks by score (ties in document order)
while their new tokens fit the room. ``retrieved_tokens`` turns the kept
chunks into ``ScoredTokens``, so ``selection.merge_context`` builds the
prompt over them as it does for the ``filter`` strategy.

Shapes: C chunks, Q distinct query terms, N document tokens of the kept chunks.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Sequence

import numpy as np

from wavefilter_cli.chunking import Chunk, TokenizedDocument
from wavefilter_cli.longcontext.selection import ScoredTokens

#: Term-frequency saturation of BM25.
K1 = 1.5
#: Strength of BM25's length normalisation, from 0 (none) to 1 (full).
B = 0.75

_WORD = re.compile(r"\w+")


def terms(text: str) -> list[str]:
    """Split ``text`` into lower-cased words."""
    return _WORD.findall(text.lower())


def bm25_scores(query: Sequence[str], passages: Sequence[Sequence[str]], k1: float = K1, b: float = B) -> np.ndarray:
    """Score each passage's terms against the distinct ``query`` terms and return the (C,) float64 scores.

    A passage that shares no term with the query scores 0, and so does every
    passage when the query is empty.
    """
    if k1 < 0 or not 0 <= b <= 1:
        raise ValueError(f"invalid BM25 parameters k1={k1}, b={b}: use k1 ≥ 0 and b in [0, 1], such as k1=1.5, b=0.75")
    vocabulary = list(dict.fromkeys(query))
    counts = np.zeros((len(passages), len(vocabulary)))  # (C, Q)
    for row, passage in enumerate(passages):
        found = Counter(passage)
        counts[row] = [found.get(term, 0) for term in vocabulary]
    if counts.size == 0:
        return np.zeros(len(passages))

    lengths = np.array([len(passage) for passage in passages], dtype=np.float64)
    average = lengths.mean() if lengths.mean() > 0 else 1.0
    containing = (counts > 0).sum(axis=0)  # (Q,)
    idf = np.log1p((len(passages) - containing + 0.5) / (containing + 0.5))
    norm = k1 * (1 - b + b * lengths / average)  # (C,)
    saturated = counts * (k1 + 1) / (counts + norm[:, None])
    return saturated @ idf


def chunk_texts(texts: Sequence[str], chunks: Sequence[Chunk]) -> list[str]:
    """Return the text of each chunk, cut from ``texts``, the texts of the documents the chunks index."""
    return [texts[chunk.document][chunk.start:chunk.end] for chunk in chunks]


def rank_chunks(question: str | None, texts: Sequence[str], chunks: Sequence[Chunk]) -> np.ndarray:
    """Score every chunk (C,) by BM25 against the words of ``question`` (all 0 without a question)."""
    query = terms(question or "")
    return bm25_scores(query, [terms(text) for text in chunk_texts(texts, chunks)])


def select_chunks(chunks: Sequence[Chunk], scores: np.ndarray, header_cost: np.ndarray, room: int) -> np.ndarray:
    """Choose whole chunks by score and return their indices in document order.

    Chunks are visited by descending score, ties in document order (the
    order of ``chunks``). A chunk is taken when its tokens that no chosen
    chunk covers yet, plus ``header_cost[d]`` the first time its document d
    appears, still fit ``room``. A chunk that does not fit is skipped, and a
    lower-ranked shorter one may still be taken. No chunk is cut.
    """
    if len(chunks) != len(scores):
        raise ValueError(f"got {len(scores)} scores for {len(chunks)} chunks; pass one score per chunk")
    ends: dict[int, int] = {}
    for chunk in chunks:
        ends[chunk.document] = max(ends.get(chunk.document, 0), chunk.token_end)
    covered = {document: np.zeros(end, dtype=bool) for document, end in ends.items()}
    used = 0
    chosen = []
    for index in np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable").tolist():
        chunk = chunks[index]
        mask = covered[chunk.document]
        new_tokens = chunk.tokens - int(mask[chunk.token_start:chunk.token_end].sum())
        opens_document = not mask.any()
        cost = new_tokens + (int(header_cost[chunk.document]) if opens_document else 0)
        if used + cost > room:
            continue
        mask[chunk.token_start:chunk.token_end] = True
        used += cost
        chosen.append(index)
    return np.sort(np.asarray(chosen, dtype=np.int64))


def retrieved_tokens(
    chunks: Sequence[Chunk], chosen: Sequence[int], tokenized: Sequence[TokenizedDocument], scores: np.ndarray
) -> ScoredTokens:
    """Gather the document tokens (N,) of the chosen chunks, in document order, each token once.

    Token ids and character ranges come from each document's own
    tokenisation. A token's importance is the rank of its best chunk (the
    best chunk gets the highest), so trimming by importance cuts the
    lowest-ranked chunk first.
    """
    chosen = [int(index) for index in chosen]
    if not chosen:
        return ScoredTokens.gather([], [])
    order = sorted(chosen, key=lambda index: (-float(scores[index]), index))
    rank_value = {index: float(len(order) - place) for place, index in enumerate(order)}
    ids, document, start, end, importance = [], [], [], [], []
    for index in chosen:
        chunk = chunks[index]
        tokens = tokenized[chunk.document]
        span = slice(chunk.token_start, chunk.token_end)
        ids.append(tokens.ids[span])
        document.append(np.full(chunk.tokens, chunk.document, dtype=np.int64))
        start.append(tokens.offsets[span, 0])
        end.append(tokens.offsets[span, 1])
        importance.append(np.full(chunk.tokens, rank_value[index], dtype=np.float32))
    gathered = ScoredTokens(
        np.concatenate(ids), np.concatenate(document), np.concatenate(start), np.concatenate(end),
        np.concatenate(importance),
    )
    return gathered.deduplicated()
