"""``block-mean``: score a block of keys by the queries' logits on its mean key.

Splits the context into blocks of ``block_size`` tokens, scores block j for
query q by q·mean(K_j) / √D, takes a softmax over blocks per query and sums
it over the observation queries and the query heads of the KV group. A token
scores its block's score. With 4-token blocks this is the first pass of the
published WaveFilter (a level-2 Haar approximation is 2 × the block mean)
without its temperature and its finer second pass: the single-level control.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from wavefilter_cli.filters.base import FilterInput, KeyFilter, grouped_queries


@dataclass
class BlockMean(KeyFilter):
    """Mean-key block retrieval.

    Attributes:
        block_size: tokens per block.
    """

    block_size: int = 4

    name = "block-mean"

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.block_size, bool) or not isinstance(self.block_size, int) or self.block_size < 1:
            raise ValueError(f"block_size={self.block_size!r} is invalid: use a whole number of tokens ≥ 1")

    def score(self, inputs: FilterInput) -> Tensor:
        keys = inputs.keys.float()
        batch, kv_heads, length, dim = keys.shape
        blocks = math.ceil(length / self.block_size)
        padded = blocks * self.block_size
        real = torch.ones(batch, length, device=keys.device)
        if inputs.key_mask is not None:
            real = inputs.key_mask.float()
        real = torch.nn.functional.pad(real, (0, padded - length)).reshape(batch, 1, blocks, self.block_size, 1)
        keys = torch.nn.functional.pad(keys, (0, 0, 0, padded - length)).reshape(batch, kv_heads, blocks, self.block_size, dim)
        counts = real.sum(dim=3)  # (B, 1, blocks, 1)
        means = (keys * real).sum(dim=3) / counts.clamp(min=1)  # (B, H_kv, blocks, D)

        queries = grouped_queries(inputs.queries, kv_heads).float()
        logits = queries @ means.transpose(-1, -2) / math.sqrt(dim)  # (B, H_kv, G·W, blocks)
        logits = logits.masked_fill((counts == 0).reshape(batch, 1, 1, blocks), float("-inf"))
        block_scores = logits.softmax(dim=-1).sum(dim=2)
        return block_scores.repeat_interleave(self.block_size, dim=-1)[..., :length]
