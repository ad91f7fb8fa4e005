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

In a batch each row has its own ℓ*, and a row without drift keeps
stepping. When the rows disagree, one forward over the whole canvas gives
each row what it would compute alone (``RowwiseRefreshAttention``).

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
from wavefilter_cli.cache.contexts import RefreshAttention, dense_probs, step_selection_bias, write_window
from wavefilter_cli.cache.kv_store import LayerKV
from wavefilter_cli.filters.base import grouped_probs
from wavefilter_cli.models.attention import sdpa


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
        # The next step's refresh: one ℓ* for every row, one per row (None for a row that
        # steps), or None for no refresh.
        self._refresh_through: int | list[int | None] | None = None
        self._decoded_end = 0
        self.drift_refreshes = 0

    def begin(self, canvas: Tensor, prompt_length: int, key_mask: Tensor | None = None) -> None:
        super().begin(canvas, prompt_length, key_mask)
        self._reset()

    def feed(self, canvas: Tensor, block_start: int, block_end: int, step: int, lead: int) -> Feed:
        self._decoded_end = block_start
        self._first_drift = None
        through = -1 if step == 0 else self._refresh_through
        self._refresh_through = None
        if through is None:
            return Feed(block_start - lead, block_end, ElasticStepAttention(self, block_start - lead))
        self.drift_refreshes += step != 0
        if isinstance(through, int):
            return self.refresh_feed(
                block_start, block_end, step, lead, store="all", keep_through=through, inspect=self._track
            )
        # Rows disagree: one forward refreshes each row from its own ℓ*, and steps the rows without drift.
        feed = self.refresh_feed(block_start, block_end, step, lead, store="all", inspect=self._track)
        feed.attention = RowwiseRefreshAttention(self, feed.attention, through, block_start - lead, canvas.device)
        return feed

    def end_step(self) -> None:
        super().end_step()
        if self._first_drift is None:
            return
        layers = len(self.state.layers)
        firsts = self._first_drift.tolist()  # one read-back per step decides the next refresh of every row
        self._first_drift = None
        through = [first if first < layers else None for first in firsts]
        if all(first is None for first in through):
            return
        self._refresh_through = through[0] if len(set(through)) == 1 else through

    def _track(self, layer: int, q: Tensor, window_rows: tuple[int, int], stored: LayerKV) -> None:
        """Pick the tracked keys of ``layer`` from a refresh and record the window's attention toward them."""
        self._tracked[layer], self._previous[layer] = self._tracked_keys(q, window_rows, stored)

    def _tracked_keys(self, q: Tensor, window_rows: tuple[int, int], stored: LayerKV) -> tuple[Tensor, Tensor]:
        """Pick the most-attended decoded slots (B, H_kv, track) of a store.

        Returns them and the window's attention toward them (B, H_kv, G·Tw, track).
        """
        queries = q[:, :, window_rows[0] : window_rows[1]]
        grouped = grouped_probs(dense_probs(queries, stored.k, stored.bias), stored.k.shape[1])
        decoded_slots = self._decoded_end + stored.offset
        mass = grouped.sum(dim=2)  # (B, H_kv, S)
        mass[..., decoded_slots:] = float("-inf")
        tracked = mass.topk(min(self.options.track_num, decoded_slots), dim=-1).indices
        return tracked, gather_tracked(grouped, tracked)

    def _observe(self, layer: int, grouped: Tensor, rows: Tensor | None = None) -> None:
        """Compare one step's attention (B, H_kv, G·T, S) toward the tracked keys with the previous step's.

        ``rows`` (B,) bool limits the drift test to the rows that stepped; None tests every row.
        """
        current = gather_tracked(grouped, self._tracked[layer])
        previous = self._previous[layer]
        similarity = torch.nn.functional.cosine_similarity(current.flatten(1), previous.flatten(1), dim=1)
        self._previous[layer] = current
        layers = len(self.state.layers)
        drifts = similarity < self.options.gamma
        if rows is not None:
            drifts = drifts & rows
        drifting = torch.where(
            drifts,
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
        return step_attention(self.policy, layer, q, stored)


def step_attention(policy: ElasticCache, layer: int, q: Tensor, stored: LayerKV, rows: Tensor | None = None) -> Tensor:
    """Attend the window's queries q (B, H, T, D) to every stored slot and run the drift test on ``rows``."""
    batch, heads, length, dim = q.shape
    kv_heads = stored.k.shape[1]
    bias = stored.bias
    if policy.state.step_filter is not None:
        bias = step_selection_bias(policy.state, layer, q, stored.k, bias)
    probs = dense_probs(q, stored.k, bias)  # (B, H, T, S)
    grouped = grouped_probs(probs, kv_heads)  # (B, H_kv, G·T, S)
    policy._observe(layer, grouped, rows)
    out = grouped @ stored.v.float()  # (B, H_kv, G·T, D)
    return out.reshape(batch, heads, length, dim).to(q.dtype)


class RowwiseRefreshAttention:
    """A drift refresh in which every row has its own ℓ*, and the rows without drift take a step.

    ``through[r]`` is row r's ℓ*, or None when row r did not drift. Each
    layer computes the three kinds a single row can take and keeps, per
    row, the one it takes alone:

    - a fresh refresh (layers after ℓ*): the host's refresh attention,
      which stores fresh K/V and tracks new keys;
    - a kept layer (layers up to ℓ*): the window's fresh K/V written into
      the store, every fed query attending to the store, new tracked keys;
    - a step (no drift): the window's queries attending to the store, and
      the drift test, whose outcome decides that row's next step.

    The whole canvas is fed, so a row that only steps spends the compute of
    a refresh. Its window rows still see exactly the inputs of a step.
    """

    def __init__(
        self,
        policy: ElasticCache,
        inner: RefreshAttention,
        through: list[int | None],
        window_start: int,
        device: torch.device,
    ) -> None:
        self.policy = policy
        self.inner = inner
        self.window_start = window_start
        self.through = through
        # (B,) bool rows that take a step, and (B,) each row's ℓ*, -1 for a row that steps.
        self.steps = torch.tensor([first is None for first in through], device=device)
        self.deepest_kept = torch.tensor([-1 if first is None else first for first in through], device=device)

    def attend(self, layer: int, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        policy, state = self.policy, self.policy.state
        steps = self.steps
        fresh = ~steps & (self.deepest_kept < layer)
        kept = ~steps & (self.deepest_kept >= layer)
        window_rows = self.inner.window_rows(k)
        rows = slice(*window_rows)
        tracked = policy._tracked[layer]

        # The kept store: the old K/V with the window's fresh K/V written in place, as a step
        # writes them. The refresh below stores new tensors and leaves these as they are.
        stored = write_window(state.layers[layer], self.window_start, k[:, :, rows], v[:, :, rows])
        step_out = step_attention(policy, layer, q[:, :, rows], stored, steps)
        stepped_previous = policy._previous[layer]
        bias = stored.bias
        if state.step_filter is not None:
            bias = step_selection_bias(state, layer, q[:, :, rows], stored.k, bias)
        kept_out = sdpa(q, stored.k, stored.v, bias)
        kept_tracked, kept_previous = policy._tracked_keys(q, window_rows, stored)

        fresh_out = self.inner.attend(layer, q, k, v)  # stores fresh K/V and tracks them, for every row
        refreshed = state.layers[layer]
        keys = rows_where(fresh, refreshed.k, stored.k)
        values = rows_where(fresh, refreshed.v, stored.v)
        state.layers[layer] = LayerKV(keys, values, stored.offset, stored.bias)
        policy._tracked[layer] = rows_where(fresh, policy._tracked[layer], rows_where(kept, kept_tracked, tracked))
        policy._previous[layer] = rows_where(
            fresh, policy._previous[layer], rows_where(kept, kept_previous, stepped_previous)
        )

        out = rows_where(fresh, fresh_out, kept_out)
        window_out = rows_where(steps, step_out, out[:, :, rows])
        return torch.cat([out[:, :, : window_rows[0]], window_out, out[:, :, window_rows[1] :]], dim=2)


def rows_where(rows: Tensor, chosen: Tensor, other: Tensor) -> Tensor:
    """Take batch rows of ``chosen`` where ``rows`` (B,) is True and of ``other`` elsewhere."""
    return torch.where(rows.view(-1, *([1] * (chosen.dim() - 1))), chosen, other)

