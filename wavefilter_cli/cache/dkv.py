"""``dkv``: dKV-Cache's decode variant, delayed caching of decoded tokens (arXiv 2505.15781; horseee/dKV-Cache).

A token's K/V settle only once the token is decoded, so the cache takes a
token one step late: a token committed at step t is cached from the K/V
that step t + 1 computes with its real identity. Masked tokens are never
reused. The cache is rebuilt at the start of every block. At in-block step
i, with R = ``refresh_every`` (dKV-Cache's ``cache_reloading_step``):

- Step 0 is a full forward that stores nothing.
- Steps 1 and every step with i mod R = 0 are full forwards that store the
  K/V of every position. Every position that was decoded before the step
  starts is then cached.
- The other steps are cached steps. They reuse the stored K/V of the
  positions decoded before the previous step started, and use fresh K/V
  for every other position: the masks and the tokens decoded at the
  previous step. The fresh K/V of the positions decoded before this step
  join the cache afterwards.

Default R = 2, the ``--cache-steps`` default of dKV-Cache's
``llada_generate.py``. Its README runs LLaDA with 8 and Dream with 16, and
its Dream batch script uses 4.

NOTE: dKV-Cache feeds only the uncached positions. The generation loop
needs the block's logit rows as one contiguous run, so a cached step here
feeds ``[block_start - lead, end)``: the block and every masked block after
it. The decoded block tokens that are cached are fed too, but their stored
K/V replace the fresh ones, so attention is the method's and only their
query rows are wasted compute. Each layer stores a slot for every position,
masks included (masked slots are overwritten at every step), so the bytes
held do not grow with the number of decoded tokens as dKV-Cache's do.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from wavefilter_cli.cache.base import CachePolicy, Feed
from wavefilter_cli.cache.contexts import step_selection_bias, write_window
from wavefilter_cli.cache.kv_store import KVState
from wavefilter_cli.models.attention import sdpa


@dataclass(frozen=True)
class DKVOptions:
    """Options of dKV-Cache's decode variant.

    Attributes:
        refresh_every: R, dKV-Cache's ``cache_reloading_step``. In-block steps
            0 and 1, and every step i with i mod R = 0, are full forwards.
            1 refreshes every step, which must reproduce ``none``.
    """

    refresh_every: int = 2

    def __post_init__(self) -> None:
        value = self.refresh_every
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"refresh_every={value!r} is invalid: use a whole number of steps ≥ 1")


def dkv_refresh_due(step: int, refresh_every: int) -> bool:
    """Return True when in-block ``step`` is a full forward: steps 0 and 1, and every multiple of ``refresh_every``."""
    return step <= 1 or step % refresh_every == 0


class DKVCache(CachePolicy):
    """Reuse the K/V of tokens decoded at least two steps ago, and recompute masks and freshly decoded tokens."""

    name = "dkv"
    options_type = DKVOptions

    def __init__(self, options=None, key_filter=None, evict: bool = False) -> None:
        super().__init__(options, key_filter, evict)
        self._mask_token: Tensor | None = None  # (B, 1): the mask token, read from the last canvas position at begin()
        self._cached: Tensor | None = None  # (B, N) bool: positions whose stored K/V a cached step reuses

    def begin(self, canvas: Tensor, prompt_length: int, key_mask: Tensor | None = None) -> None:
        """Start a generation. The canvas's answer region must contain only mask tokens, as the loop builds it."""
        super().begin(canvas, prompt_length, key_mask)
        self._mask_token = canvas[:, -1:].clone()
        self._cached = None

    def feed(self, canvas: Tensor, block_start: int, block_end: int, step: int, lead: int) -> Feed:
        decoded = canvas != self._mask_token  # (B, N), before this step commits anything
        if step == 0:
            self.state.layers.clear()
            self._cached = None
            return self.refresh_feed(block_start, block_end, step, lead, store=None)
        if dkv_refresh_due(step, self.options.refresh_every):
            self._cached = decoded
            return self.refresh_feed(block_start, block_end, step, lead, store="all")
        window_start = block_start - lead
        reuse = self._cached[:, window_start:]
        self._cached = decoded
        return Feed(window_start, canvas.shape[1], DelayedStepAttention(self.state, window_start, reuse))

    def end(self) -> None:
        super().end()
        self._cached = None


class DelayedStepAttention:
    """A dKV-Cache cached step over the fed run ``[window_start, N)``.

    ``reuse`` (B, T) marks the fed positions whose stored K/V replace the
    fresh ones. Every other fed position writes its fresh K/V into its slot,
    so the tokens decoded at the previous step are cached from now on.
    Queries attend to every stored slot.
    """

    def __init__(self, state: KVState, window_start: int, reuse: Tensor) -> None:
        self.state = state
        self.window_start = window_start
        self.reuse = reuse

    def attend(self, layer: int, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        stored = self.state.layers[layer]
        start = self.window_start + stored.offset
        rows = k.shape[2]
        reuse = self.reuse[:, None, :, None]  # (B, 1, T, 1)
        merged_k = torch.where(reuse, stored.k[:, :, start : start + rows], k)
        merged_v = torch.where(reuse, stored.v[:, :, start : start + rows], v)
        write_window(stored, self.window_start, merged_k, merged_v)
        bias = stored.bias
        if self.state.step_filter is not None:
            bias = step_selection_bias(self.state, layer, q, stored.k, bias)
        return sdpa(q, stored.k, stored.v, bias)
