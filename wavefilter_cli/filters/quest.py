"""``quest``: Quest's page upper bounds (Tang et al. 2024, arXiv 2406.10774; mit-han-lab/Quest).

Keys are split into pages of ``page_size`` tokens (16, Quest's ``chunk_size``).
Each page keeps its element-wise min and max key; for a query q, the page's
bound U = Σ_c max(q_c·kmin_c, q_c·kmax_c) is an upper bound on q·k over the
page. Quest ranks pages for one decoding query, but here several
observation queries vote. Each query's bounds therefore go through a softmax
over pages (scaled by 1/√D), and the results are summed over the queries and
the query heads of the KV group. A token scores its page's score, so whole pages are kept, except
at the budget's edge. Quest keeps its first two layers dense; set
``dense_layers=2`` to match (the default filters every layer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from wavefilter_cli.filters.base import FilterInput, KeyFilter, grouped_queries


@dataclass
class Quest(KeyFilter):
    """Page min/max key bounds.

    Attributes:
        page_size: tokens per page.
        dense_layers: the first this many layers keep every context token.
    """

    page_size: int = 16
    dense_layers: int = 0

    name = "quest"

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.page_size, bool) or not isinstance(self.page_size, int) or self.page_size < 1:
            raise ValueError(f"page_size={self.page_size!r} is invalid: use a whole number of tokens ≥ 1")
        if isinstance(self.dense_layers, bool) or not isinstance(self.dense_layers, int) or self.dense_layers < 0:
            raise ValueError(f"dense_layers={self.dense_layers!r} is invalid: use a whole number of layers ≥ 0")

    def kept_count(self, context_length: int, layer: int, min_tail: int = 0) -> int:
        if layer < self.dense_layers:
            return context_length
        return super().kept_count(context_length, layer, min_tail)

    def score(self, inputs: FilterInput) -> Tensor:
        keys = inputs.keys.float()
        batch, kv_heads, length, dim = keys.shape
        pages = math.ceil(length / self.page_size)
        padded = pages * self.page_size
        real = torch.ones(batch, length, dtype=torch.bool, device=keys.device)
        if inputs.key_mask is not None:
            real = inputs.key_mask
        real = torch.nn.functional.pad(real, (0, padded - length), value=False)  # (B, P')
        keys = torch.nn.functional.pad(keys, (0, 0, 0, padded - length))
        keys = keys.reshape(batch, kv_heads, pages, self.page_size, dim)
        real = real.reshape(batch, 1, pages, self.page_size, 1)
        kmin = keys.masked_fill(~real, float("inf")).amin(dim=3)  # (B, H_kv, pages, D)
        kmax = keys.masked_fill(~real, float("-inf")).amax(dim=3)
        empty = ~real.any(dim=3).squeeze(-1)  # (B, 1, pages): pages of padding only
        kmin = kmin.masked_fill(empty[..., None], 0.0)
        kmax = kmax.masked_fill(empty[..., None], 0.0)

        queries = grouped_queries(inputs.queries, kv_heads).float()  # (B, H_kv, G·W, D)
        bound = queries.clamp(min=0) @ kmax.transpose(-1, -2) + queries.clamp(max=0) @ kmin.transpose(-1, -2)
        bound = bound.masked_fill(empty[:, :, None, :], float("-inf")) / math.sqrt(dim)
        page_scores = bound.softmax(dim=-1).sum(dim=2)  # (B, H_kv, pages)
        return page_scores.repeat_interleave(self.page_size, dim=-1)[..., :length]
