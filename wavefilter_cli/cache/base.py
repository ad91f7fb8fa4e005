"""The cache-policy protocol that the generation loop drives.

Per denoising step the loop asks the policy what to feed (``feed``): a
contiguous slice [start, end) of the canvas and the attention context that
the model's layers call with the slice's q, k and v. The policy owns any
keys and values kept from earlier forwards, decides when to refresh them,
and reports the bytes it holds. Keys are stored after RoPE, so a kept key
keeps its original position even when neighbours are dropped.

Canvas layout: (B, N) token ids, prompt first, then the answer blocks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor

from wavefilter_cli.models.attention import AttentionContext


@dataclass
class Feed:
    """What one forward pass computes.

    ``start``/``end``: the canvas slice fed to the model. ``attention``: the
    context its layers call. ``positions``: (B, end - start) RoPE positions,
    or None for the canvas indices start … end-1.
    """

    start: int
    end: int
    attention: AttentionContext
    positions: Tensor | None = None


@dataclass
class CacheStats:
    """Numbers a policy reports for the live view and the benchmarks."""

    kv_bytes: int = 0
    kv_bytes_peak: int = 0
    context_tokens: int = 0
    kept_tokens: int = 0
    refreshes: int = 0
    kept_per_layer: list[int] = field(default_factory=list)

    def record_bytes(self, held: int) -> None:
        self.kv_bytes = held
        self.kv_bytes_peak = max(self.kv_bytes_peak, held)


class CachePolicy(ABC):
    """One host KV-cache method. A fresh instance serves one generation.

    Subclasses set ``name`` (the registry key) and implement ``feed``.
    ``key_mask`` (B, N) marks real canvas tokens (False for left padding).
    """

    name: ClassVar[str]

    def __init__(self) -> None:
        self.stats = CacheStats()
        self.key_mask: Tensor | None = None
        self.prompt_length = 0

    def begin(self, canvas: Tensor, prompt_length: int, key_mask: Tensor | None = None) -> None:
        """Start a generation over ``canvas`` (B, N) whose first ``prompt_length`` tokens are the prompt."""
        self.prompt_length = prompt_length
        self.key_mask = key_mask
        self.stats = CacheStats(context_tokens=prompt_length, kept_tokens=prompt_length)

    @abstractmethod
    def feed(self, canvas: Tensor, block_start: int, block_end: int, step: int, lead: int) -> Feed:
        """Plan the forward for ``step`` of the block [block_start, block_end).

        ``lead`` is the model's logit shift: the fed slice must start at or
        before ``block_start - lead`` so the block's logit rows exist.
        """

    def end_block(self) -> None:
        """Called once a block has no masks left."""

    def end(self) -> None:
        """Release stored keys and values."""


def tensor_bytes(*tensors: Tensor | None) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def canvas_key_mask(key_mask: Tensor | None, start: int, end: int) -> Tensor | None:
    return None if key_mask is None else key_mask[:, start:end]


def as_positions(start: int, end: int, batch: int, device: torch.device) -> Tensor:
    return torch.arange(start, end, device=device).expand(batch, end - start)
