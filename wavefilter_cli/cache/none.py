"""``none``: every step recomputes every canvas position; the reference the other policies approximate.

With a filter, the first step of each block (masking) or of the whole
generation (eviction) attends densely and selects; the other steps attend
only to the kept context plus the answer. Under eviction those steps feed
only the kept context positions and the answer. Nothing is stored between
forwards, so the policy holds no K/V bytes.
"""

from __future__ import annotations

from torch import Tensor

from wavefilter_cli.cache.base import CachePolicy, Feed


class NoCache(CachePolicy):
    """Feed the canvas at every step (or its kept part, under eviction); store nothing."""

    name = "none"

    def feed(self, canvas: Tensor, block_start: int, block_end: int, step: int, lead: int) -> Feed:
        return self.refresh_feed(block_start, block_end, step, lead, store=None)
