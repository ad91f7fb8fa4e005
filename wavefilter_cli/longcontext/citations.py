"""Citations: the source spans an answer attended to most.

One extra dense forward over the finished canvas (prompt plus answer)
records, in every layer, the attention of the answer's rows on every key,
averaged over heads and answer rows, and sums it over layers. The document
tokens with the most attention seed spans: each seed takes up to
``radius`` neighbouring tokens on both sides, as long as they are adjacent
in the source text and on the same page, and overlapping windows merge.
Spans are ranked by the attention of the seeds they contain.

Shapes: T canvas tokens, P prompt tokens, A answer tokens, n document tokens.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from wavefilter_cli.ingest import Document
from wavefilter_cli.longcontext.prompts import MappedPrompt
from wavefilter_cli.longcontext.scoring import observation_probs
from wavefilter_cli.models.attention import sdpa

#: Citations reported per answer.
MAX_CITATIONS = 5
#: Neighbouring tokens a seed takes on each side.
SEED_RADIUS = 4
#: Seeds per citation reported.
SEEDS_PER_CITATION = 4
#: Characters allowed between two tokens of one span (whitespace a tokenizer leaves out).
MAX_GAP_CHARS = 2


@dataclass(frozen=True)
class Citation:
    """A span ``[start, end)`` of a source document's extracted text, with its page and its text."""

    file: str
    page: int | None
    start: int
    end: int
    text: str
    weight: float = 0.0

    def record(self) -> dict:
        """Return the JSON form: file, page, start, end and text."""
        record = asdict(self)
        record.pop("weight")
        return record


class AnswerAttention:
    """Dense attention that sums, over layers, the answer rows' attention on every key.

    ``rows`` (A,) are the answer's canvas rows; ``total`` (T,) stays on the
    model's device.
    """

    def __init__(self, rows: Tensor, length: int) -> None:
        self.rows = rows
        self.total = torch.zeros(length, device=rows.device)

    def attend(self, layer: int, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        probs = observation_probs(q.index_select(2, self.rows), k)  # (B, H, A, T)
        self.total += probs.mean(dim=(0, 1, 2))
        return sdpa(q, k, v)


def answer_attention(model, canvas: Sequence[int], answer_start: int, positions: np.ndarray | None = None) -> np.ndarray:
    """Attention (T,) that the tokens from ``answer_start`` on give each canvas token, summed over layers.

    ``positions`` (≥ T,) are RoPE positions per canvas slot, or None for 0 … T − 1.
    """
    device = next(model.parameters()).device
    ids = torch.tensor([list(canvas)], dtype=torch.long, device=device)
    rows = torch.arange(answer_start, len(canvas), device=device)
    context = AnswerAttention(rows, len(canvas))
    position_ids = None
    if positions is not None:
        position_ids = torch.from_numpy(np.asarray(positions[: len(canvas)], dtype=np.int64)).to(device)[None]
    with torch.inference_mode():
        model(ids, position_ids=position_ids, attention=context, logits_index=slice(-1, None))
    return context.total.cpu().numpy()


def page_of(document: Document, offsets: np.ndarray) -> np.ndarray:
    """1-based page (0 for text files) of each character offset in ``document.text``."""
    spans = [span for span in document.spans if span.length > 0]
    if not spans:
        return np.zeros(len(offsets), dtype=np.int64)
    starts = np.array([span.start for span in spans], dtype=np.int64)
    pages = np.array([span.page or 0 for span in spans], dtype=np.int64)
    index = np.clip(np.searchsorted(starts, offsets, side="right") - 1, 0, len(spans) - 1)
    return pages[index]


def citation_spans(
    prompt: MappedPrompt,
    attention: np.ndarray,
    documents: Sequence[Document],
    limit: int = MAX_CITATIONS,
    radius: int = SEED_RADIUS,
) -> list[Citation]:
    """Find the ``limit`` spans of document text in ``prompt`` with the most answer attention.

    ``attention`` (≥ P,) is indexed by prompt row.
    """
    rows = prompt.document_rows
    if rows.size == 0 or limit <= 0:
        return []
    weight = attention[rows].astype(np.float64)
    document = prompt.document[rows]
    start, end = prompt.start[rows], prompt.end[rows]
    page = np.zeros(rows.size, dtype=np.int64)
    for index in np.unique(document):
        mine = document == index
        page[mine] = page_of(documents[index], start[mine])

    # A run is a stretch of tokens that are neighbours in the source text, on one page.
    joined = (document[1:] == document[:-1]) & (page[1:] == page[:-1]) & (start[1:] - end[:-1] <= MAX_GAP_CHARS)
    joined &= start[1:] >= start[:-1]
    run = np.concatenate([[0], np.cumsum(~joined)])

    seeds = np.argsort(-weight, kind="stable")[: limit * SEEDS_PER_CITATION]
    covered = np.zeros(rows.size, dtype=bool)
    for seed in seeds:
        low, high = max(0, seed - radius), min(rows.size, seed + radius + 1)
        covered[low:high] |= run[low:high] == run[seed]
    seed_weight = np.zeros(rows.size)
    seed_weight[seeds] = weight[seeds]

    # Spans are maximal covered stretches inside one run.
    boundary = np.concatenate([[True], (run[1:] != run[:-1]) | ~covered[:-1]])
    span_id = np.cumsum(boundary & covered) - 1
    citations = []
    for span in np.unique(span_id[covered]):
        members = np.flatnonzero(covered & (span_id == span))
        citations.append(_citation(documents[document[members[0]]], int(start[members[0]]), int(end[members[-1]]),
                                   int(page[members[0]]), float(seed_weight[members].sum())))
    citations.sort(key=lambda c: -c.weight)
    return citations[:limit]


def _citation(document: Document, start: int, end: int, page: int, weight: float) -> Citation:
    """Build the citation of ``document.text[start:end]`` with surrounding whitespace trimmed."""
    text = document.text[start:end]
    start += len(text) - len(text.lstrip())
    end -= len(text) - len(text.rstrip())
    return Citation(document.source, page or None, start, max(start, end), document.text[start:end], weight)


def normalized(citations: Sequence[Citation]) -> list[Citation]:
    """Scale the citations' weights to sum to 1, leaving weights that sum to 0 unchanged."""
    total = sum(citation.weight for citation in citations)
    if total <= 0:
        return list(citations)
    return [replace(citation, weight=citation.weight / total) for citation in citations]


def combine_citations(
    groups: Sequence[Sequence[Citation]], shares: Sequence[float], limit: int = MAX_CITATIONS
) -> list[Citation]:
    """Combine the citations of several inputs into those of the output built from them.

    ``groups[j]`` are the weighted citations of input j and ``shares[j]`` the
    attention the output gave that input. A span cited by several inputs
    adds up its weights. Returns the ``limit`` heaviest, normalised.
    """
    pooled: dict[tuple[str, int, int], Citation] = {}
    for citations, share in zip(groups, shares):
        for citation in citations:
            key = (citation.file, citation.start, citation.end)
            weight = share * citation.weight + (pooled[key].weight if key in pooled else 0.0)
            pooled[key] = replace(citation, weight=weight)
    ranked = sorted(pooled.values(), key=lambda citation: -citation.weight)
    return normalized(ranked[:limit])
