"""``prefix``: Fast-dLLM's prefix cache (arXiv 2505.22618; NVlabs/Fast-dLLM).

At the first step of each block a full forward computes K/V for every
position. The policy keeps the slots before ``block_start - lead``, which
hold the prompt and the finished blocks. The block's later steps feed the canvas from
``block_start - lead`` to the end (the block and every still-masked block
after it), whose fresh K/V are appended to the kept prefix for that step
only. Dream's ``lead`` of 1 feeds the last finished position too, because
its logit row predicts the block's first token.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from wavefilter_cli.cache.base import CachePolicy, Feed
from wavefilter_cli.cache.contexts import PrefixStepAttention


@dataclass(frozen=True)
class PrefixOptions:
    """Options of the prefix cache.

    Attributes:
        refresh_every: also refresh at every step whose index inside the
            block is a multiple of this (1 refreshes every step, which must
            reproduce ``none``); None refreshes at block starts only.
    """

    refresh_every: int | None = None

    def __post_init__(self) -> None:
        check_refresh_every(self.refresh_every)


def check_refresh_every(value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"refresh_every={value!r} is invalid: use a whole number of steps ≥ 1, or None")


def refresh_due(step: int, refresh_every: int | None) -> bool:
    """Return True when ``step`` of a block refreshes: at block starts, and every ``refresh_every`` steps."""
    return step == 0 or (refresh_every is not None and step % refresh_every == 0)


class PrefixCache(CachePolicy):
    """Keep K/V of the finished prefix; recompute the block and the masked suffix at every step."""

    name = "prefix"
    options_type = PrefixOptions

    def feed(self, canvas: Tensor, block_start: int, block_end: int, step: int, lead: int) -> Feed:
        if refresh_due(step, self.options.refresh_every):
            # An in-block refresh recomputes the whole canvas, so the filter selects with the decoded tokens in view.
            return self.refresh_feed(block_start, block_end, step, lead, store="prefix", reselect=step > 0)
        return Feed(block_start - lead, canvas.shape[1], PrefixStepAttention(self.state))
