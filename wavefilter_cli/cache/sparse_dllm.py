"""``sparse-dllm``: Sparse-dLLM's delayed bidirectional sparse cache (arXiv 2508.02558; OpenMOSS/Sparse-dLLM).

Each block starts a new cache. In-block steps run in three phases:

- Step 0 is a full forward that stores nothing. Its all-mask block gives
  unstable scores, so the selection waits a step ("delayed").
- Step 1 is a full forward that builds the cache (a build). Each layer
  scores every position outside the block by the block's mean query (``block_saliency``:
  raw q̄·k averaged over heads), max-pools the scores along the sequence
  (kernel 3), and keeps the top ⌊keep_ratio · N⌋ of the N positions. The
  positions are the prompt, the finished blocks and the masked suffix, and
  every KV head keeps the same ones. Their post-RoPE K/V are stored.
- Later steps feed only the block and attend to the retained K/V plus the
  block's fresh K/V. The retained cache stays frozen until the next block.

Defaults: ``keep_ratio`` 0.5 and ``kernel`` 3, as in every published
configuration and script. ``refresh_every`` is an addition: it rebuilds the
cache at every such step inside the block (1 reproduces ``none``).

With a key filter, the filter selects in a build, never in the all-mask
step 0: under masking at every build, under eviction once, at the first
build. Under masking, retention ranks every position as without a filter,
and the unkept context slots it retains stay masked. Under eviction, each
KV head ranks only the context positions it kept plus the answer, and
keeps ⌊keep_ratio · N_c⌋ of its N_c candidates, so memory falls with the
filter's budget.

NOTE: Sparse-dLLM runs at batch size 1. In a batch, each row keeps
⌊keep_ratio · its real candidates⌋ positions, and the slots that rows with
left padding do not fill are masked.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from wavefilter_cli.cache.base import CachePolicy, Feed, feed_positions
from wavefilter_cli.cache.contexts import RefreshAttention, dense_probs
from wavefilter_cli.cache.kv_store import KVState, LayerKV, additive, gather_slots, with_answer_slots
from wavefilter_cli.filters.base import FilterInput
from wavefilter_cli.filters.sparse_dllm import block_saliency, check_kernel, max_pool_scores
from wavefilter_cli.models.attention import sdpa

DENSE, BUILD, CACHED = "dense", "build", "cached"


@dataclass(frozen=True)
class SparseDLLMOptions:
    """Options of Sparse-dLLM.

    Attributes:
        keep_ratio: share of the positions outside the block that each layer
            retains, in (0, 1].
        kernel: max-pooling width of the saliency scores, odd. 1 turns pooling off.
        refresh_every: also rebuild the cache at every in-block step that is a
            multiple of this (1 rebuilds at every step and must reproduce
            ``none``); None builds at step 1 only, as published.
    """

    keep_ratio: float = 0.5
    kernel: int = 3
    refresh_every: int | None = None

    def __post_init__(self) -> None:
        ratio = self.keep_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
            raise ValueError(f"keep_ratio={ratio!r} is invalid: use a share in (0, 1]")
        check_kernel(self.kernel)
        value = self.refresh_every
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"refresh_every={value!r} is invalid: use a whole number of steps ≥ 1, or None")


def sparse_dllm_phase(step: int, refresh_every: int | None) -> str:
    """Return what in-block ``step`` does: ``dense`` (step 0), ``build`` (step 1 and refreshes) or ``cached``."""
    if step == 0:
        return DENSE
    if step == 1 or (refresh_every is not None and step % refresh_every == 0):
        return BUILD
    return CACHED


class SparseDLLMCache(CachePolicy):
    """Per block: a dense step, a step that retains the most salient K/V, then block-only steps.

    ``state.layers[l]`` contains the retained K/V of layer l, (B, H_kv, R,
    D), whose canvas positions are ``retained_positions[l]`` (B, H_kv, R).
    Its ``offset`` is unused.
    """

    name = "sparse-dllm"
    options_type = SparseDLLMOptions

    def __init__(self, options=None, key_filter=None, evict: bool = False) -> None:
        super().__init__(options, key_filter, evict)
        self.retained_positions: dict[int, Tensor] = {}

    def begin(self, canvas: Tensor, prompt_length: int, key_mask: Tensor | None = None) -> None:
        super().begin(canvas, prompt_length, key_mask)
        self.retained_positions = {}

    def selection_due(self, step: int) -> bool:
        """Select in build forwards only, once under eviction: never from an all-mask step 0."""
        if self.key_filter is None or step == 0:
            return False
        return self.state.selection is None if self.evict else True

    def feed(self, canvas: Tensor, block_start: int, block_end: int, step: int, lead: int) -> Feed:
        phase = sparse_dllm_phase(step, self.options.refresh_every)
        if phase == CACHED:
            return Feed(block_start - lead, block_end, RetainedStepAttention(self.state, self.retained_positions))
        self.state.layers.clear()
        self.retained_positions.clear()
        feed = self.refresh_feed(block_start, block_end, step, lead, store=None)
        if phase == BUILD:
            positions = feed_positions(feed, canvas.shape[0], canvas.device)
            window = (block_start - lead, block_end)
            feed.attention = RetentionAttention(self, feed.attention, positions, window, block_start)
        return feed

    def end(self) -> None:
        super().end()
        self.retained_positions.clear()

    def retained_context_tokens(self) -> list[float]:
        """Return the attended context positions per layer, averaged over rows and KV heads.

        Reads the counts back to the host, so call it between steps.
        """
        counts = []
        for layer in sorted(self.retained_positions):
            positions = self.retained_positions[layer]  # (B, H_kv, R)
            attended = positions < self.prompt_length
            bias = self.state.layers[layer].bias  # (B, H or 1, 1, R) or None
            if bias is not None:
                groups = max(1, bias.shape[1] // positions.shape[1])
                attended = attended & (bias[:, ::groups, 0, :] == 0)
            counts.append(attended.sum(dim=-1).float().mean())
        return torch.stack(counts).tolist() if counts else []


class RetentionAttention:
    """A build forward: the host's refresh attention, then each layer retains its most salient K/V.

    ``positions`` (B, T) are the fed tokens' canvas positions. ``window`` is
    the canvas range the cached steps feed fresh, and ``block_start`` the
    first block position: the block's queries score the keys.
    """

    def __init__(
        self,
        policy: SparseDLLMCache,
        inner: RefreshAttention,
        positions: Tensor,
        window: tuple[int, int],
        block_start: int,
    ) -> None:
        self.policy = policy
        self.inner = inner
        self.positions = positions
        self.window = window
        self.block_start = block_start

    def attend(self, layer: int, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        out = self.inner.attend(layer, q, k, v)
        state, options = self.policy.state, self.policy.options
        prompt = state.prompt_length
        first_answer_row = k.shape[2] - state.answer_length
        window_rows = (self.window[0] - prompt + first_answer_row, self.window[1] - prompt + first_answer_row)
        block_rows = slice(self.block_start - prompt + first_answer_row, window_rows[1])
        scores = block_saliency(q[:, :, block_rows], k)  # (B, T)

        candidates, attendable, candidate_count = self._candidates(layer, k.shape[1], window_rows)
        count = int(options.keep_ratio * candidate_count)
        rows, filled = retained_rows(scores, candidates, window_rows, count, options.keep_ratio, options.kernel)
        rows = rows.expand(-1, k.shape[1], -1)  # (B, H_kv, R)
        bias = None
        if attendable is not None:
            keep = filled & attendable.gather(2, rows)
            bias = additive(keep.repeat_interleave(q.shape[1] // k.shape[1], dim=1)[:, :, None, :], k.dtype)
        state.layers[layer] = LayerKV(gather_slots(k, rows), gather_slots(v, rows), 0, bias)
        self.policy.retained_positions[layer] = self.positions[:, None, :].expand(-1, k.shape[1], -1).gather(2, rows)
        return out

    def _candidates(
        self, layer: int, kv_heads: int, window_rows: tuple[int, int]
    ) -> tuple[Tensor, Tensor | None, int]:
        """The fed rows each KV head ranks, the rows attention may read, and the static candidate count N.

        Returns three values. ``candidates`` (B, H', T) bool marks the rows
        each KV head ranks, and H' is 1 when all heads rank the same rows.
        ``attendable`` (B, H_kv, T) bool marks the rows attention may read.
        It is None when every retained slot is attendable, because there is
        neither padding nor a masking selection. N counts the candidates per
        head without padding.
        """
        state = self.policy.state
        batch, length = self.positions.shape
        outside = torch.ones(length, dtype=torch.bool, device=self.positions.device)
        outside[window_rows[0] : window_rows[1]] = False
        candidates = outside.expand(batch, 1, length)
        if state.key_mask is not None:
            candidates = candidates & state.key_mask.gather(1, self.positions)[:, None, :]
        window = window_rows[1] - window_rows[0]
        head_keep = self._filter_keep(layer, kv_heads)
        if head_keep is None:
            attendable = None if state.key_mask is None else candidates.expand(-1, kv_heads, -1)
            return candidates, attendable, state.canvas_length - window
        attendable = candidates & head_keep
        if self.policy.evict:
            kept = state.selection.kept[layer].shape[-1]
            attendable_or_none = None if state.key_mask is None else attendable
            return attendable, attendable_or_none, kept + state.answer_length - window
        return candidates, attendable, state.canvas_length - window

    def _filter_keep(self, layer: int, kv_heads: int) -> Tensor | None:
        """(B, H_kv, T) bool: the fed rows that this layer's filter selection keeps per KV head, or None for all."""
        state = self.policy.state
        selection = state.selection
        prompt = state.prompt_length
        kept = None if selection is None else selection.kept.get(layer)
        if kept is None or kept.shape[-1] == prompt or state.step_filter is not None:
            return None
        batch, rows = self.positions.shape
        in_context = self.positions < prompt
        index = self.positions.clamp(max=prompt - 1)[:, None, :].expand(batch, kv_heads, rows)
        return selection.context_keep[layer].gather(2, index) | ~in_context[:, None, :]


def retained_rows(
    scores: Tensor, candidates: Tensor, window_rows: tuple[int, int], count: int, keep_ratio: float, kernel: int
) -> tuple[Tensor, Tensor]:
    """Rows to retain per KV head, ranked by pooled saliency, and which of them each row fills.

    scores: (B, T) saliency of the fed rows. candidates: (B, H', T) bool, the
    rows each KV head may keep (H' is 1 when all heads share them).
    ``window_rows`` [start, end) are cut out before pooling, as Sparse-dLLM
    drops the block. ``count`` is the static number of slots. Each row fills
    ⌊keep_ratio · its candidates⌋ of them, which is ``count`` without
    padding. Returns rows (B, H', count) ascending and filled (B, H', count) bool.
    """
    length = candidates.shape[-1]
    device = scores.device
    ranked = scores.masked_fill(~candidates.any(dim=1), float("-inf"))
    outside = torch.cat(
        [torch.arange(window_rows[0], device=device), torch.arange(window_rows[1], length, device=device)]
    )
    pooled = torch.full_like(ranked, float("-inf"))
    pooled[:, outside] = max_pool_scores(ranked[:, outside], kernel)
    per_head = pooled[:, None, :].masked_fill(~candidates, float("-inf"))
    # Max-pooling makes exact ties; a stable sort breaks them by position, whatever the row's padding.
    top = per_head.sort(dim=-1, descending=True, stable=True).indices[..., :count]  # (B, H', count), best first
    row_count = (candidates.sum(dim=-1).double() * keep_ratio).floor().long()  # (B, H')
    filled = torch.arange(count, device=scores.device) < row_count[..., None]
    rows, order = top.sort(dim=-1)
    return rows, filled.gather(2, order)


class RetainedStepAttention:
    """A cached step: the fed window attends to the retained K/V plus its own fresh K/V.

    ``positions[l]`` (B, H_kv, R) gives the canvas positions of layer l's
    retained slots, which a per-step filter needs to map them to the context.
    """

    def __init__(self, state: KVState, positions: dict[int, Tensor]) -> None:
        self.state = state
        self.positions = positions

    def attend(self, layer: int, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        stored = self.state.layers[layer]
        keys = torch.cat([stored.k, k], dim=2)
        values = torch.cat([stored.v, v], dim=2)
        bias = with_answer_slots(stored.bias, k.shape[2])
        if self.state.step_filter is not None:
            bias = retained_step_bias(self.state, layer, q, keys, self.positions[layer], bias)
        return sdpa(q, keys, values, bias)


def retained_step_bias(
    state: KVState, layer: int, queries: Tensor, keys: Tensor, positions: Tensor, bias: Tensor | None
) -> Tensor | None:
    """Run a per-step filter on the retained context and mask the retained context slots it drops.

    queries: (B, H, W, D), the fed queries. keys: (B, H_kv, R + W, D), the
    R retained slots, then the fed ones. positions: (B, H_kv, R), the canvas
    positions of the retained slots. bias: (B, H or 1, 1, R + W) or None.
    The filter receives the context keys at their canvas positions, with the
    positions that were not retained marked as padding. A per-step filter
    only masks, so every KV head retained the same positions and head 0's
    positions stand for all.
    """
    key_filter = state.step_filter
    prompt = state.prompt_length
    batch, kv_heads, retained = positions.shape
    dim = keys.shape[-1]
    slots = torch.where(positions < prompt, positions, prompt)  # the extra slot P collects non-context slots
    context_keys = keys.new_zeros(batch, kv_heads, prompt + 1, dim)
    context_keys.scatter_(2, slots[..., None].expand(-1, -1, -1, dim), keys[:, :, :retained])
    present = torch.zeros(batch, prompt + 1, dtype=torch.bool, device=keys.device)
    present.scatter_(1, slots[:, 0], True)
    context_mask = present[:, :prompt]
    if state.key_mask is not None:
        context_mask = context_mask & state.key_mask[:, :prompt]
    probs = None
    if key_filter.needs_probs:
        attended = dense_probs(queries, keys, bias)[..., :retained]  # (B, H, W, R)
        probs = attended.new_zeros(*attended.shape[:3], prompt + 1)
        probs.scatter_(3, slots[:, 0][:, None, None, :].expand_as(attended), attended)
        probs = probs[..., :prompt]
    inputs = FilterInput(
        layer=layer, queries=queries, keys=context_keys[:, :, :prompt], probs=probs, key_mask=context_mask,
        pads=state.pads,
    )
    kept = key_filter.select(inputs)  # (B, H_kv, K)
    if kept.shape[-1] == prompt:
        return bias
    keep = torch.zeros(batch, kv_heads, prompt + 1, dtype=torch.bool, device=keys.device)
    keep.scatter_(2, kept, True)
    keep[..., prompt] = True
    fed = torch.ones(batch, kv_heads, keys.shape[2] - retained, dtype=torch.bool, device=keys.device)
    keep = torch.cat([keep.gather(2, slots), fed], dim=2)
    heads = queries.shape[1]
    selected = additive(keep.repeat_interleave(heads // kv_heads, dim=1)[:, :, None, :], queries.dtype)
    return selected if bias is None else torch.minimum(selected, bias)
