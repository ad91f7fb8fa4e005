"""``keep-all``: keeps every context token, so a host with it must reproduce the host alone."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from wavefilter_cli.filters.base import FilterInput, KeyFilter


@dataclass
class KeepAll(KeyFilter):
    """Keep the whole context whatever the budget; the control for the plug-in invariant."""

    name = "keep-all"

    def kept_count(self, context_length: int, layer: int, min_tail: int = 0) -> int:
        return context_length

    def score(self, inputs: FilterInput) -> Tensor:
        batch, kv_heads, length, _ = inputs.keys.shape
        return torch.zeros(batch, kv_heads, length, device=inputs.keys.device)
