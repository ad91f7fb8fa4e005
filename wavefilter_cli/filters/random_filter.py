"""``random``: a seeded uniform draw per layer and KV head, the floor any scorer must beat."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from wavefilter_cli.filters.base import FilterInput, KeyFilter


@dataclass
class RandomFilter(KeyFilter):
    """Uniform random scores.

    Attributes:
        seed: base seed; layer l draws from ``seed`` and ``l``, so a run repeats exactly.
    """

    seed: int = 0

    name = "random"

    def score(self, inputs: FilterInput) -> Tensor:
        batch, kv_heads, length, _ = inputs.keys.shape
        generator = torch.Generator().manual_seed(self.seed * 100_003 + inputs.layer)
        # One draw serves every row, so a row scores the same alone and in a batch.
        scores = torch.rand(1, kv_heads, length, generator=generator)
        return scores.to(inputs.keys.device).expand(batch, kv_heads, length)
