"""``elastic``: Elastic-Cache's attention-drift-triggered, depth-aware refresh (arXiv 2510.14973).

Storage and steps work as in the dual cache: a refresh at each block start
keeps K/V of the whole canvas, and later steps feed only the block (the
window of active queries) and write its fresh K/V in place. At every
refresh each layer tracks the ``track_num`` decoded keys (prompt and
finished blocks) that receive the most attention from the window's queries.
At every step each layer compares the window's attention toward those keys
with the previous step's by cosine similarity. When a layer's similarity
falls below ``gamma``, the next step refreshes the layers after the
shallowest such layer ℓ*, and layers 0 … ℓ* keep their stored K/V.

Defaults: γ = 0.9 (the published default) and one tracked token (the
method tracks "the most-attended token"; its default count is not
published). The sources for the mechanics are the paper's abstract,
README copies and the project page; the code has not been checked.

NOTE: Elastic-Cache's active window is the leftmost β masked positions and
slides as tokens are committed; here the window is the current block, since
the generation loop decodes fixed blocks. The drift test runs inside the
step's forward, so its refresh lands one step later.
NOTE: A refresh feeds the whole canvas through every layer, because the
model seam starts each forward from the embeddings. Layers up to ℓ* keep
their stored K/V (only the window is rewritten), which follows the method,
but the compute of those layers is not saved.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from wavefilter_cli.cache.base import CachePolicy, Feed
from wavefilter_cli.cache.contexts import dense_probs, step_selection_bias, write_window
from wavefilter_cli.cache.kv_store import LayerKV
from wavefilter_cli.filters.base import grouped_probs


@dataclass(frozen=True)
class ElasticOptions:
    """Options of Elastic-Cache.

    Attributes:
        gamma: refresh when a layer's attention cosine similarity to the
            previous step falls below this, in (0, 1].
        track_num: decoded keys tracked per layer and KV head, ≥ 1.
    """

    gamma: float = 0.9
    track_num: int = 1

    def __post_init__(self) -> None:
        if not (isinstance(self.gamma, (int, float)) and 0 < self.gamma <= 1):
            raise ValueError(f"gamma={self.gamma!r} is invalid: use a similarity threshold in (0, 1]")
        if isinstance(self.track_num, bool) or not isinstance(self.track_num, int) or self.track_num < 1:
            raise ValueError(f"track_num={self.track_num!r} is invalid: use a whole number of tokens ≥ 1")


class ElasticCache(CachePolicy):
    """Dual-style storage with drift-triggered refreshes of the deeper layers."""

    name = "elastic"
    options_type = ElasticOptions

    def __init__(self, options=None, key_filter=None, evict: bool = False) -> None:
        super().__init__(options, key_filter, evict)
        self._reset()

    def _reset(self) -> None:
        self._tracked: dict[int, Tensor] = {}  # layer -> (B, H_kv, track) slots
        self._previous: dict[int, Tensor] = {}  # layer -> (B, H_kv, G·Tw, track) probabilities
        self._first_drift: Tensor | None = None  # (B,) shallowest drifting layer, or the layer count
        self._refresh_through: int | None = None
        self._decoded_end = 0
        self.drift_refreshes = 0

    def begin(self, canvas: Tensor, prompt_length: int, key_mask: Tensor | None = None) -> None:
        super().begin(canvas, prompt_length, key_mask)
        self._reset()

    def feed(self, canvas: Tensor, block_start: int, block_end: int, step: int, lead: int) -> Feed:
        self._decoded_end = block_start
        self._first_drift = None
        if step == 0 or self._refresh_through is not None:
            keep_through = -1 if step == 0 else self._refresh_through
            self.drift_refreshes += step != 0
            self._refresh_through = None
            return self.refresh_feed(
                block_start, block_end, step, lead, store="all", keep_through=keep_through, inspect=self._track
            )
        return Feed(block_start - lead, block_end, ElasticStepAttention(self, block_start - lead))

    def end_step(self) -> None:
        super().end_step()
        if self._first_drift is not None:
            first = int(self._first_drift.min())  # one read-back per step decides the next refresh
            if first < len(self.state.layers):
                self._refresh_through = first
            self._first_drift = None

    def _track(self, layer: int, q: Tensor, window_rows: tuple[int, int], stored: LayerKV) -> None:
        """Pick the tracked keys of ``layer`` from a refresh and record the window's attention toward them."""
        queries = q[:, :, window_rows[0] : window_rows[1]]
        grouped = grouped_probs(dense_probs(queries, stored.k, stored.bias), stored.k.shape[1])
        decoded_slots = self._decoded_end + stored.offset
        mass = grouped.sum(dim=2)  # (B, H_kv, S)
        mass[..., decoded_slots:] = float("-inf")
        tracked = mass.topk(min(self.options.track_num, decoded_slots), dim=-1).indices
        self._tracked[layer] = tracked
        self._previous[layer] = gather_tracked(grouped, tracked)

    def _observe(self, layer: int, grouped: Tensor) -> None:
        """Compare one step's attention (B, H_kv, G·T, S) toward the tracked keys with the previous step's."""
        current = gather_tracked(grouped, self._tracked[layer])
        previous = self._previous[layer]
        similarity = torch.nn.functional.cosine_similarity(current.flatten(1), previous.flatten(1), dim=1)
        self._previous[layer] = current
        layers = len(self.state.layers)
        drifting = torch.where(
            similarity < self.options.gamma,
            torch.full_like(similarity, layer, dtype=torch.long),
            torch.full_like(similarity, layers, dtype=torch.long),
        )
        self._first_drift = drifting if self._first_drift is None else torch.minimum(self._first_drift, drifting)


def gather_tracked(grouped: Tensor, tracked: Tensor) -> Tensor:
    """Probabilities (B, H_kv, R, S) at the tracked slots (B, H_kv, t): (B, H_kv, R, t)."""
    index = tracked[:, :, None, :].expand(-1, -1, grouped.shape[2], -1)
    return grouped.gather(-1, index)


class ElasticStepAttention:
    """A dual-style step that also measures attention drift toward the tracked keys.

    Attention is computed explicitly (not by SDPA) because the drift test
    needs the probabilities.
    """

    def __init__(self, policy: ElasticCache, window_start: int) -> None:
        self.policy = policy
        self.window_start = window_start

    def attend(self, layer: int, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        stored = write_window(self.policy.state.layers[layer], self.window_start, k, v)
        batch, heads, length, dim = q.shape
        kv_heads = stored.k.shape[1]
        bias = stored.bias
        if self.policy.state.step_filter is not None:
            bias = step_selection_bias(self.policy.state, layer, q, stored.k, bias)
        probs = dense_probs(q, stored.k, bias)  # (B, H, T, S)
        grouped = grouped_probs(probs, kv_heads)  # (B, H_kv, G·T, S)
        self.policy._observe(layer, grouped)
        out = grouped @ stored.v.float()  # (B, H_kv, G·T, D)
        return out.reshape(batch, heads, length, dim).to(q.dtype)

