"""Keeping the most important document tokens of every chunk, and the prompt built from them.

``ScoredTokens`` gathers the document tokens of all chunk prompts with
their importance. ``select_tokens`` keeps the most important ones that fit
the room left in the window, charging each document's header line once,
and returns them in document order. ``merge_context`` assembles the prompt
over the kept tokens and, for ``original`` positions, the RoPE position of
every canvas slot. ``merge_within_window`` also trims the least important
tokens when the assembled prompt overshoots the window.

Positions. ``compact`` numbers the merged prompt 0, 1, 2, … as if the kept
tokens were the whole input. ``original`` gives each kept token the
position it has in the prompt over the whole input (instruction, every
document in full, question), so gaps stay gaps. The question and the answer
follow the end of the full input. Original positions run past the window
whenever chunking happens, beyond what the model was trained on.

Shapes: N scored tokens (all chunks), K kept tokens, D documents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import torch
from torch import Tensor

from wavefilter_cli.chunking import TokenizedDocument
from wavefilter_cli.longcontext.prompts import MappedPrompt, PromptFrame

PositionMode = Literal["compact", "original"]


@dataclass
class ScoredTokens:
    """Document tokens of the chunk prompts: ids, source document, character range and importance, each (N,)."""

    ids: np.ndarray
    document: np.ndarray
    start: np.ndarray
    end: np.ndarray
    importance: np.ndarray

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @classmethod
    def gather(cls, prompts: Sequence[MappedPrompt], importances: Sequence[Tensor]) -> "ScoredTokens":
        """Concatenate the document rows of ``prompts`` with their importances (one (n,) tensor per prompt).

        The importances are copied to the host in one transfer.
        """
        if not prompts:
            empty = np.zeros(0, dtype=np.int64)
            return cls(empty, empty, empty, empty, np.zeros(0, dtype=np.float32))
        rows = [prompt.document_rows for prompt in prompts]
        return cls(
            ids=np.concatenate([np.asarray(p.ids, dtype=np.int64)[r] for p, r in zip(prompts, rows)]),
            document=np.concatenate([p.document[r] for p, r in zip(prompts, rows)]),
            start=np.concatenate([p.start[r] for p, r in zip(prompts, rows)]),
            end=np.concatenate([p.end[r] for p, r in zip(prompts, rows)]),
            importance=torch.cat([value.float() for value in importances]).cpu().numpy(),
        )

    def take(self, index: np.ndarray) -> "ScoredTokens":
        return ScoredTokens(self.ids[index], self.document[index], self.start[index], self.end[index], self.importance[index])

    def deduplicated(self) -> "ScoredTokens":
        """Keep one copy of tokens that overlapping chunks share (same document and first character), the most important."""
        order = np.lexsort((-self.importance, self.start, self.document))
        ordered = self.take(order)
        same = (ordered.document[1:] == ordered.document[:-1]) & (ordered.start[1:] == ordered.start[:-1])
        keep = np.concatenate([[True], ~same]) if len(ordered) else np.zeros(0, dtype=bool)
        return ordered.take(np.flatnonzero(keep))


def select_tokens(scored: ScoredTokens, header_cost: np.ndarray, room: int, limit: int | None = None) -> np.ndarray:
    """Choose the tokens to keep and return their indices into ``scored``, in document order.

    Tokens are taken by importance (ties in document order) while their
    count plus ``header_cost[d]`` for each document d they come from stays
    within ``room``, and their count alone within ``limit`` when one is
    given. Of two kept tokens whose characters overlap (a chunk edge
    tokenised two ways), the later one is dropped.
    """
    if len(scored) == 0 or room <= 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((scored.start, scored.document, -scored.importance))
    documents = scored.document[order]
    first = np.zeros(len(order), dtype=bool)
    first[np.unique(documents, return_index=True)[1]] = True
    cost = 1 + np.where(first, header_cost[documents], 0)
    fits = np.cumsum(cost) <= room
    if limit is not None:
        fits &= np.arange(1, len(order) + 1) <= limit
    return _in_document_order(scored, order[fits])


def sentence_units(scored: ScoredTokens, tokenized: Sequence[TokenizedDocument], starts: Sequence[np.ndarray], longest: int) -> np.ndarray:
    """Number the unit (N,) each scored token belongs to: its sentence, cut into pieces of at most ``longest`` tokens.

    ``starts[d]`` contains the sorted token indices where a sentence of
    document d starts (``chunking.sentence_starts``). Units are numbered
    0 … U − 1 in document order.
    """
    if len(scored) == 0:
        return np.zeros(0, dtype=np.int64)
    token = np.zeros(len(scored), dtype=np.int64)
    sentence = np.zeros(len(scored), dtype=np.int64)
    first = np.zeros(len(scored), dtype=np.int64)
    for document in np.unique(scored.document).tolist():
        rows = np.flatnonzero(scored.document == document)
        token[rows] = tokenized[document].token_at(scored.start[rows])
        bounds = np.concatenate([[0], starts[document]])
        sentence[rows] = np.searchsorted(bounds, token[rows], side="right") - 1
        first[rows] = bounds[sentence[rows]]
    piece = (token - first) // max(1, longest)
    keys = np.stack([scored.document, sentence, piece], axis=1)
    return np.unique(keys, axis=0, return_inverse=True)[1].reshape(-1)


def select_units(
    scored: ScoredTokens, units: np.ndarray, header_cost: np.ndarray, room: int, limit: int | None = None
) -> np.ndarray:
    """Choose whole units (sentences) to keep and return the indices of their tokens into ``scored``, in document order.

    A unit ranks by the highest importance among its tokens (ties: the
    earlier unit first). In that order, a unit is kept when its token count
    fits the room still left, plus ``header_cost[d]`` if it is the first
    kept unit of document d. With ``limit``, its token count must also fit
    what is left of that limit. A unit that does not fit is skipped, and
    smaller ones after it may still fill the room.
    """
    if len(scored) == 0 or room <= 0:
        return np.zeros(0, dtype=np.int64)
    count = int(units.max()) + 1
    score = np.full(count, -np.inf)
    np.maximum.at(score, units, scored.importance)
    size = np.bincount(units, minlength=count)
    document = np.zeros(count, dtype=np.int64)
    document[units] = scored.document
    selected = np.zeros(count, dtype=bool)
    headed: set[int] = set()
    left = room
    tokens_left = len(scored) if limit is None else limit
    # One pass over the units (sentences, not tokens), outside the denoising loop.
    for unit in np.lexsort((np.arange(count), -score)).tolist():
        owner = int(document[unit])
        cost = int(size[unit]) + (0 if owner in headed else int(header_cost[owner]))
        if cost <= left and size[unit] <= tokens_left:
            selected[unit] = True
            headed.add(owner)
            left -= cost
            tokens_left -= int(size[unit])
    return _in_document_order(scored, np.flatnonzero(selected[units]))


def _in_document_order(scored: ScoredTokens, chosen: np.ndarray) -> np.ndarray:
    """Sort ``chosen`` into document order and drop tokens that overlap an earlier kept one."""
    chosen = chosen[np.lexsort((scored.start[chosen], scored.document[chosen]))]
    same = scored.document[chosen[1:]] == scored.document[chosen[:-1]]
    if np.any(same & (scored.start[chosen[1:]] < scored.end[chosen[:-1]])):
        chosen = _without_overlaps(scored, chosen)
    return chosen


def _without_overlaps(scored: ScoredTokens, chosen: np.ndarray) -> np.ndarray:
    """Drop each token that starts before the end of the last kept token of its document (rare: chunk edges)."""
    survivors = []
    document, reach = -1, 0
    for index in chosen.tolist():
        if scored.document[index] != document:
            document, reach = int(scored.document[index]), 0
        if scored.start[index] >= reach:
            survivors.append(index)
            reach = int(scored.end[index])
    return np.asarray(survivors, dtype=np.int64)


@dataclass
class MergedContext:
    """The prompt over the kept tokens.

    ``prompt`` maps its document tokens back to characters, for citations.
    ``positions`` (P + G,) gives the RoPE position of every canvas slot, or
    is None for compact positions.
    """

    prompt: MappedPrompt
    positions: np.ndarray | None
    kept: int


def merge_context(
    frame: PromptFrame,
    scored: ScoredTokens,
    chosen: np.ndarray,
    tokenized: Sequence[TokenizedDocument],
    answer_length: int,
    mode: PositionMode = "compact",
) -> MergedContext:
    """Assemble the prompt over ``scored[chosen]`` (document order) and its positions; see the module docstring."""
    kept_tokens = scored.take(chosen)
    cuts = np.flatnonzero(kept_tokens.document[1:] != kept_tokens.document[:-1]) + 1
    groups = np.split(np.arange(len(kept_tokens)), cuts) if len(kept_tokens) else []
    documents = [int(kept_tokens.document[g[0]]) for g in groups]

    ids = frame.assemble([(d, kept_tokens.ids[g].tolist()) for d, g in zip(documents, groups)])
    document = np.full(len(ids), -1, dtype=np.int64)
    start = np.zeros(len(ids), dtype=np.int64)
    end = np.zeros(len(ids), dtype=np.int64)
    rows = _kept_rows(frame, documents, groups)
    document[rows] = kept_tokens.document
    start[rows] = kept_tokens.start
    end[rows] = kept_tokens.end
    prompt = MappedPrompt(ids, document, start, end)

    positions = None
    if mode == "original":
        positions = _original_positions(frame, kept_tokens, documents, groups, tokenized, len(ids), answer_length)
    return MergedContext(prompt, positions, len(kept_tokens))


def merge_within_window(
    frame: PromptFrame,
    scored: ScoredTokens,
    chosen: np.ndarray,
    tokenized: Sequence[TokenizedDocument],
    answer_length: int,
    window: int,
    mode: PositionMode = "compact",
) -> MergedContext:
    """Merge ``scored[chosen]`` like ``merge_context``, dropping the least important tokens until it fits ``window``.

    The room estimate counts each header as tokenised alone, which can
    differ by a token from the header inside the prompt, so the merged
    prompt plus ``answer_length`` may exceed ``window`` by a few tokens.
    Ties in importance drop the earliest kept token first.
    """
    merged = merge_context(frame, scored, chosen, tokenized, answer_length, mode)
    while len(merged.prompt) + answer_length > window and len(chosen):
        excess = len(merged.prompt) + answer_length - window
        weakest = np.argsort(scored.importance[chosen], kind="stable")[:excess]
        chosen = np.delete(chosen, weakest)
        merged = merge_context(frame, scored, chosen, tokenized, answer_length, mode)
    return merged


def _kept_rows(frame: PromptFrame, documents: list[int], groups: list[np.ndarray]) -> np.ndarray:
    """Return the rows of the kept tokens in the assembled prompt, in order."""
    rows = []
    cursor = len(frame.prefix)
    for number, (document, group) in enumerate(zip(documents, groups)):
        cursor += len(frame.headers[document] if number == 0 else frame.joined_headers[document])
        rows.append(np.arange(cursor, cursor + len(group)))
        cursor += len(group)
    return np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)


def _original_positions(
    frame: PromptFrame,
    kept_tokens: ScoredTokens,
    documents: list[int],
    groups: list[np.ndarray],
    tokenized: Sequence[TokenizedDocument],
    prompt_length: int,
    answer_length: int,
) -> np.ndarray:
    """Compute the RoPE positions (P + G,) of the merged canvas under ``original`` positions."""
    # Where each document's first token sits in the prompt over the whole input.
    lengths = np.array([tokens.length for tokens in tokenized], dtype=np.int64)
    headers = np.array(
        [len(frame.headers[0])] + [len(frame.joined_headers[d]) for d in range(1, len(tokenized))], dtype=np.int64
    )
    ends = len(frame.prefix) + np.cumsum(headers + lengths)
    first_token = ends - lengths
    full_length = int(ends[-1]) if len(ends) else len(frame.prefix)

    positions = [np.arange(len(frame.prefix))]
    for number, (document, group) in enumerate(zip(documents, groups)):
        header = len(frame.headers[document] if number == 0 else frame.joined_headers[document])
        positions.append(first_token[document] - header + np.arange(header))
        token_index = tokenized[document].token_at(kept_tokens.start[group])
        positions.append(first_token[document] + token_index)
    tail = len(frame.suffix) + answer_length
    positions.append(full_length + np.arange(tail))
    table = np.concatenate(positions)
    assert table.shape[0] == prompt_length + answer_length, "position table does not cover the canvas"
    return table
