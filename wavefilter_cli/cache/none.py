"""``none``: every step recomputes every canvas position; the reference the other policies approximate."""

from __future__ import annotations

from torch import Tensor

from wavefilter_cli.cache.base import CachePolicy, Feed, canvas_key_mask
from wavefilter_cli.models.attention import DenseAttention


class NoCache(CachePolicy):
    """Feed the whole canvas at every step; nothing is stored between steps."""

    name = "none"

    def feed(self, canvas: Tensor, block_start: int, block_end: int, step: int, lead: int) -> Feed:
        self.stats.refreshes += 1
        return Feed(0, canvas.shape[1], DenseAttention(canvas_key_mask(self.key_mask, 0, canvas.shape[1])))
