"""``streaming``: StreamingLLM's attention sinks plus a recent window (Xiao et al. 2023, arXiv 2309.17453).

No scoring: the first ``sink`` tokens and the latest context tokens up to
the budget. In a bidirectional model "recent" has no causal meaning; the
window sits at the prompt's end, next to the answer and around the question.
Keys keep their original RoPE positions (no re-rotation into a rolling cache).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from wavefilter_cli.filters.base import FilterInput, KeyFilter


@dataclass
class Streaming(KeyFilter):
    """Sinks plus the last context tokens."""

    name = "streaming"

    def score(self, inputs: FilterInput) -> Tensor:
        batch, kv_heads, length, _ = inputs.keys.shape
        positions = torch.arange(length, device=inputs.keys.device, dtype=torch.float32)
        return positions.expand(batch, kv_heads, length)
