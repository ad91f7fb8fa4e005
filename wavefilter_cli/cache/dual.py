"""``dual``: Fast-dLLM's dual cache (arXiv 2505.22618; NVlabs/Fast-dLLM).

At the first step of each block a full forward computes K/V for every
position and the policy keeps all of them. The block's later steps feed
only the block (from ``block_start - lead``), write its fresh K/V over the
stored slots in place, and attend to every slot: the masked suffix keeps
its block-start K/V until the next block.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from wavefilter_cli.cache.base import CachePolicy, Feed
from wavefilter_cli.cache.contexts import DualStepAttention
from wavefilter_cli.cache.prefix import check_refresh_every, refresh_due


@dataclass(frozen=True)
class DualOptions:
    """Options of the dual cache.

    Attributes:
        refresh_every: also refresh at every step whose index inside the
            block is a multiple of this (1 must reproduce ``none``); None
            refreshes at block starts only.
    """

    refresh_every: int | None = None

    def __post_init__(self) -> None:
        check_refresh_every(self.refresh_every)


class DualCache(CachePolicy):
    """Keep K/V of the whole canvas; recompute only the block at each step."""

    name = "dual"
    options_type = DualOptions

    def feed(self, canvas: Tensor, block_start: int, block_end: int, step: int, lead: int) -> Feed:
        if refresh_due(step, self.options.refresh_every):
            # An in-block refresh recomputes the whole canvas, so the filter selects with the decoded tokens in view.
            return self.refresh_feed(block_start, block_end, step, lead, store="all", reselect=step > 0)
        return Feed(block_start - lead, block_end, DualStepAttention(self.state, block_start - lead))
