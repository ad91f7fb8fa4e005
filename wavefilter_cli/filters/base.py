"""Key-token filters: the contract between a cache policy and a token selector.

A cache policy calls its filter once per layer during a selecting forward
(a refresh in which every context key is fresh). The filter scores each
context position per KV head from that layer's observation queries, the
context keys and, when it sets ``needs_probs``, the dense attention
probabilities the host computed. This base class turns the scores into a
selection (budget, always-kept sinks and prompt tail, top-k and sorting), so
a filter only implements ``score``.

Shapes: B batch, H query heads, H_kv key/value heads (query head h reads KV
head h // (H / H_kv)), W observation queries, P context (prompt) tokens,
D head dim, K kept tokens. Keys and queries carry RoPE already.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

#: Smallest token-count budget: below it a selection keeps little more than sinks and tail.
MIN_BUDGET_TOKENS = 16


@dataclass
class FilterInput:
    """Inputs of a filter for one layer.

    Attributes:
        layer: the layer index.
        queries: (B, H, W, D) observation queries: the last ``window`` prompt
            tokens followed by the block being decoded.
        keys: (B, H_kv, P, D) context keys.
        probs: (B, H, W, P) dense attention probabilities of the queries on
            the context keys, normalised over every key of the forward
            (context and answer); only when the filter sets ``needs_probs``.
        key_mask: (B, P) bool, True for real tokens (False for left
            padding), or None when nothing is padded.
        min_tail: prompt-end positions the host needs kept whatever ``tail``
            says (Dream's last prompt token predicts the first answer token).
        pads: left-padding slots at the front of each row's keys, as host
            ints, or None. With any pad, ``select`` runs each row on its own
            real tokens, so a padded row selects what it selects alone.
        query_pads: padded rows at the front of each row's observation
            queries (prompt-tail rows that fall in the padding), or None for none.
    """

    layer: int
    queries: Tensor
    keys: Tensor
    probs: Tensor | None = None
    key_mask: Tensor | None = None
    min_tail: int = 0
    pads: tuple[int, ...] | None = None
    query_pads: tuple[int, ...] | None = None

    def row(self, index: int) -> "FilterInput":
        """Row ``index`` cut to its real keys and observation queries, as a single-row input."""
        pad = self.pads[index] if self.pads is not None else 0
        query_pad = self.query_pads[index] if self.query_pads is not None else 0
        rows = slice(index, index + 1)
        return FilterInput(
            layer=self.layer,
            queries=self.queries[rows, :, query_pad:],
            keys=self.keys[rows, :, pad:],
            probs=None if self.probs is None else self.probs[rows, :, query_pad:, pad:],
            key_mask=None if self.key_mask is None else self.key_mask[rows, pad:],
            min_tail=self.min_tail,
        )


def check_budget(budget: float | int) -> None:
    """Raise ValueError unless ``budget`` is a ratio in (0, 1] or an int token count ≥ 16."""
    fix = f"use a ratio in (0, 1] or a token count ≥ {MIN_BUDGET_TOKENS}"
    if isinstance(budget, bool) or not isinstance(budget, (int, float)):
        raise ValueError(f"budget={budget!r} is invalid: {fix}")
    if isinstance(budget, float):
        if not (math.isfinite(budget) and 0 < budget <= 1):
            raise ValueError(f"budget={budget} is invalid: {fix}")
    elif budget < MIN_BUDGET_TOKENS:
        raise ValueError(f"budget={budget} is invalid: {fix}")


def grouped_queries(queries: Tensor, kv_heads: int) -> Tensor:
    """Fold query heads into their KV group: (B, H, W, D) -> (B, H_kv, (H / H_kv)·W, D)."""
    batch, heads, length, dim = queries.shape
    return queries.reshape(batch, kv_heads, (heads // kv_heads) * length, dim)


def grouped_probs(probs: Tensor, kv_heads: int) -> Tensor:
    """Fold query heads of probabilities into their KV group: (B, H, W, P) -> (B, H_kv, (H / H_kv)·W, P)."""
    batch, heads, length, keys = probs.shape
    return probs.reshape(batch, kv_heads, (heads // kv_heads) * length, keys)


def context_attention(inputs: FilterInput) -> Tensor:
    """Softmax of the observation queries over the context keys only, per KV group.

    Returns (B, H_kv, (H / H_kv)·W, P) float32; padded keys get probability 0.
    """
    keys = inputs.keys
    queries = grouped_queries(inputs.queries, keys.shape[1])
    logits = torch.matmul(queries.float(), keys.float().transpose(-1, -2)) / math.sqrt(keys.shape[-1])
    if inputs.key_mask is not None:
        logits = logits.masked_fill(~inputs.key_mask[:, None, None, :], float("-inf"))
    return logits.softmax(dim=-1)


@dataclass
class KeyFilter(ABC):
    """A key-token selector; a fresh instance serves one generation.

    Attributes:
        budget: context tokens kept per layer and KV head, as a ratio of the
            context in (0, 1] (rounded up) or a token count ≥ 16.
        sink: the first real context tokens always kept (attention sinks).
        tail: the last context tokens always kept; a long-document prompt
            ends with the question, so the tail holds it.
        window: trailing prompt tokens whose queries observe (the block being
            decoded is observed too); SnapKV's observation window.
        share_heads: keep one set of positions per layer for all KV heads,
            ranked by the scores summed over heads. Per-head selections keep
            more of what each head needs, but a sparse refresh recomputes
            their union, which grows with the number of heads.

    Sinks and tail are a floor: a budget smaller than ``sink + tail`` keeps
    exactly the sinks and the tail. Subclasses set ``name`` (the registry
    key), may set ``needs_probs`` and ``per_step``, and implement ``score``.
    """

    budget: float | int = 0.1
    sink: int = 4
    tail: int = 32
    window: int = 32
    share_heads: bool = False

    name: ClassVar[str]
    #: True when ``score`` reads ``FilterInput.probs``; the host then computes them.
    needs_probs: ClassVar[bool] = False
    #: True to select again in every forward from that forward's queries (masking only).
    per_step: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_budget(self.budget)
        for field_name in ("sink", "tail"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{field_name}={value!r} is invalid: use a whole number of tokens ≥ 0")
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 1:
            raise ValueError(f"window={self.window!r} is invalid: use a whole number of tokens ≥ 1")
        if not isinstance(self.share_heads, bool):
            raise ValueError(f"share_heads={self.share_heads!r} is invalid: use True or False")

    @abstractmethod
    def score(self, inputs: FilterInput) -> Tensor:
        """Importance of each context position: (B, H_kv, P), higher is kept first.

        Scores of sinks, tail and padding are overridden by ``select``.
        """

    def kept_count(self, context_length: int, layer: int, min_tail: int = 0) -> int:
        """Tokens kept per KV head in ``layer`` for a context of ``context_length`` tokens."""
        if isinstance(self.budget, float):
            requested = math.ceil(self.budget * context_length)
        else:
            requested = self.budget
        forced = self.sink + max(self.tail, min_tail)
        return min(context_length, max(requested, forced))

    def select(self, inputs: FilterInput) -> Tensor:
        """Context positions to keep: (B, H_kv, K) int64, sorted ascending, unique per head.

        K is the same for every row and head of the layer. Sinks (the first
        ``sink`` real tokens) and the last ``max(tail, min_tail)`` positions
        are always in it; padding is picked only when K exceeds the real tokens.
        With ``inputs.pads``, each row keeps the count its own length gives.
        """
        if inputs.pads is not None and any(inputs.pads):
            return self._select_rows(inputs)
        batch, kv_heads, length, _ = inputs.keys.shape
        count = self.kept_count(length, inputs.layer, inputs.min_tail)
        if count >= length:
            positions = torch.arange(length, device=inputs.keys.device)
            return positions.expand(batch, kv_heads, length)

        scores = self.score(inputs).float()
        if self.share_heads:
            scores = scores.sum(dim=1, keepdim=True)
        scores = torch.nan_to_num(scores, nan=float("-inf"))
        forced = self.forced_positions(inputs)  # (B, P)
        real = inputs.key_mask if inputs.key_mask is not None else torch.ones_like(forced)
        scores = scores.masked_fill(~real[:, None, :], float("-inf"))
        scores = scores.masked_fill(forced[:, None, :], float("inf"))
        kept = scores.topk(count, dim=-1, sorted=False).indices
        return kept.sort(dim=-1).values.expand(batch, kv_heads, count)

    def _select_rows(self, inputs: FilterInput) -> Tensor:
        """Select for each left-padded row on its own real tokens, then fill every row up to the largest K.

        A row that keeps fewer than K positions is filled with its first pad
        slots, which attention masks. Its own count never falls more than
        its padding short of the largest, because ``kept_count`` grows by at
        most one per context token.
        """
        # NOTE: this makes one filter call per row in each selecting layer, because length-dependent
        # filters (pyramids, pages, ratio budgets) must see each row's own context.
        kept_rows = [self.select(inputs.row(index)) + pad for index, pad in enumerate(inputs.pads)]
        count = max(kept.shape[-1] for kept in kept_rows)
        filled = []
        for kept, pad in zip(kept_rows, inputs.pads):
            missing = count - kept.shape[-1]
            assert missing <= pad, "a row's kept count fell short of the largest by more than its padding"
            filler = torch.arange(missing, device=kept.device).expand(1, kept.shape[1], missing)
            filled.append(torch.cat([filler, kept], dim=-1))
        return torch.cat(filled, dim=0)

    def forced_positions(self, inputs: FilterInput) -> Tensor:
        """(B, P) bool: the first ``sink`` real tokens and the last ``max(tail, min_tail)`` positions."""
        batch, _, length, _ = inputs.keys.shape
        device = inputs.keys.device
        positions = torch.arange(length, device=device).expand(batch, length)
        if inputs.key_mask is None:
            real_rank = positions
            real = torch.ones(batch, length, dtype=torch.bool, device=device)
        else:
            real = inputs.key_mask
            real_rank = real.long().cumsum(dim=-1) - 1
        tail = max(self.tail, inputs.min_tail)
        return (real & (real_rank < self.sink)) | (positions >= length - tail)
