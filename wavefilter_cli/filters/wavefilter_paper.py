"""``wavefilter-paper``: WaveFilter as published (arXiv 2606.00724), kept faithful as the baseline to beat.

Haar pyramid of the cached prompt keys, B levels (default 2). At level B
each block's approximation coefficient (2^(B/2) × its mean key) is scored
against every observation query, a softmax is taken over blocks per query
and summed over queries, and the top fraction m_B of blocks is kept; then
the same one level finer inside the kept blocks, down to single tokens. The
paper tuned the per-level fractions per dataset within [0.3, 1] and
published no values; here m_b = budget^(1/B) at every level, so the kept
share equals the budget and comparisons at equal budget are fair.

The published method recomputes the selection at every denoising step and
layer and evicts nothing; hosts honour that through ``per_step`` and by
masking rather than evicting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from wavefilter_cli.filters.base import FilterInput, KeyFilter, grouped_queries
from wavefilter_cli.filters.wavelets import haar_pyramid


@dataclass
class PaperWaveFilter(KeyFilter):
    """The published coarse-to-fine Haar selection.

    Attributes:
        levels: pyramid levels B.
    """

    levels: int = 2

    name = "wavefilter-paper"
    #: Recompute the selection at every step with the current queries.
    per_step: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.levels, bool) or not isinstance(self.levels, int) or not 1 <= self.levels <= 8:
            raise ValueError(f"levels={self.levels!r} is invalid: use a whole number from 1 to 8")

    def level_fraction(self, context_length: int) -> float:
        """m_b: the share of candidates kept at each level."""
        ratio = self.budget if isinstance(self.budget, float) else min(1.0, self.budget / max(1, context_length))
        return ratio ** (1.0 / self.levels)

    def score(self, inputs: FilterInput) -> Tensor:
        keys = inputs.keys.float()
        batch, kv_heads, length, dim = keys.shape
        queries = grouped_queries(inputs.queries, kv_heads).float()
        fraction = self.level_fraction(length)
        pyramid = haar_pyramid(keys, self.levels, axis=2)
        coefficients = [keys] + pyramid.approximations  # level 0 is the keys themselves

        candidates = None
        for level in range(self.levels, -1, -1):
            coeffs = coefficients[level]  # (B, H_kv, N, D)
            blocks = coeffs.shape[2]
            if candidates is None:
                index = torch.arange(blocks, device=keys.device).expand(batch, kv_heads, blocks)
            else:
                index = torch.stack([2 * candidates, 2 * candidates + 1], dim=-1).flatten(-2).clamp(max=blocks - 1)
            chosen = torch.gather(coeffs, 2, index[..., None].expand(-1, -1, -1, dim))
            logits = queries @ chosen.transpose(-1, -2) / math.sqrt(dim)  # (B, H_kv, Q, C)
            scores = logits.softmax(dim=-1).sum(dim=2)
            if level == 0:
                out = torch.full((batch, kv_heads, length), float("-inf"), device=keys.device)
                return out.scatter(2, index, scores)
            keep = max(1, math.ceil(fraction * index.shape[-1]))
            candidates = torch.gather(index, 2, scores.topk(keep, dim=-1).indices)
        raise AssertionError("unreachable: the loop returns at level 0")
