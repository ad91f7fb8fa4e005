"""``dllm-cache``: dLLM-Cache's interval refresh with value-verified updates (arXiv 2506.06295; maomaocun/dLLM-cache).

Each layer caches two parts: the **prompt** (the context, positions < P)
and the **response** (every answer position, masks of later blocks
included). For each part it keeps K and V, and for the response also the
attention output. A global forward counter t = 1, 2, … (not reset per
block) drives the refresh:

- The prompt part refreshes when (t − 1) mod K_p = 0: a full forward
  recomputes and stores the K/V of every position.
- The response part refreshes when (t − 1) mod K_r = 0: the response rows
  are recomputed against the cached prompt K/V, and their K/V and
  attention outputs are stored.
- Layer 0 always recomputes the response rows.
- Otherwise ("V-verify", when ρ > 0) the response rows' fresh V is compared
  with the cached V by cosine similarity per token. The ⌊ρ · G⌋ tokens with
  the lowest similarity get fresh K and a fresh attention row, computed
  over the prompt cache and the updated response cache. The cached V is
  replaced wholesale. Every other response row reuses its cached attention
  output.

Defaults K_p = 50, K_r = 7, ρ = 0.25: dLLM-Cache's LLaDA-8B-Instruct GSM8K
script (its LongBench-HotpotQA script uses 100 / 8). Its
``dLLMCacheConfig`` defaults (1, 1, 0) turn caching off.

A key filter selects at prompt refreshes, where every context key is fresh:
at each one under masking, and once, at the first forward, under eviction.
Later prompt refreshes then feed only the kept context and the answer.
``stats.kv_bytes`` counts the cached attention outputs with the K/V.

Differences from the published code, all forced by the attention seam,
which passes a policy only q, k and v:

- The FFN runs on every fed row, on the current residual stream. dLLM-Cache
  also caches FFN outputs and reuses them for the rows it does not
  recompute.
- Cached attention outputs are taken before the output projection, which
  is linear per row, so the reused rows are the published ones.
- The prompt rows are not fed between prompt refreshes. Their cached K/V
  are all that the response reads from them.
- Dream's logit shift needs the row before the answer, the last prompt
  token. Between prompt refreshes that row is fed and its attention is
  computed fresh against the caches, while its K/V stay on the prompt
  schedule. dLLM-Cache takes that row from its cached prompt features.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from wavefilter_cli.cache.base import CachePolicy, Feed
from wavefilter_cli.cache.contexts import RefreshAttention, step_selection_bias, write_window
from wavefilter_cli.cache.kv_store import LayerKV
from wavefilter_cli.models.attention import sdpa


@dataclass(frozen=True)
class DLLMCacheOptions:
    """Options of dLLM-Cache, named as in its evaluation wrappers.

    Attributes:
        prompt_interval_steps: K_p, forwards between prompt refreshes, ≥ 1.
        gen_interval_steps: K_r, forwards between response refreshes, ≥ 1.
            K_p = K_r = 1 recomputes everything and must reproduce ``none``.
        transfer_ratio: ρ, share of the response recomputed at the other
            forwards, chosen by the lowest value similarity, in [0, 1].
    """

    prompt_interval_steps: int = 50
    gen_interval_steps: int = 7
    transfer_ratio: float = 0.25

    def __post_init__(self) -> None:
        for name in ("prompt_interval_steps", "gen_interval_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} is invalid: use a whole number of forwards ≥ 1")
        ratio = self.transfer_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio <= 1:
            raise ValueError(f"transfer_ratio={ratio!r} is invalid: use a share in [0, 1]")


def dllm_cache_refresh(forward: int, prompt_interval_steps: int, gen_interval_steps: int) -> tuple[bool, bool]:
    """Return (prompt refreshes, response refreshes) at the 1-based ``forward`` of a generation."""
    return (forward - 1) % prompt_interval_steps == 0, (forward - 1) % gen_interval_steps == 0


class DLLMCache(CachePolicy):
    """Prompt and response K/V refreshed on separate intervals; response attention outputs reused in between.

    ``features[l]`` (B, H, G, D) contains layer l's cached response
    attention outputs, before the output projection.
    """

    name = "dllm-cache"
    options_type = DLLMCacheOptions

    def __init__(self, options=None, key_filter=None, evict: bool = False) -> None:
        super().__init__(options, key_filter, evict)
        self.forwards = 0
        self.features: dict[int, Tensor] = {}

    def begin(self, canvas: Tensor, prompt_length: int, key_mask: Tensor | None = None) -> None:
        super().begin(canvas, prompt_length, key_mask)
        self.forwards = 0
        self.features = {}

    def selection_due(self, step: int) -> bool:
        """Select at every prompt refresh under masking, and at the first forward only under eviction."""
        if self.key_filter is None:
            return False
        return self.state.selection is None if self.evict else True

    def feed(self, canvas: Tensor, block_start: int, block_end: int, step: int, lead: int) -> Feed:
        # NOTE: in a batch this counts the batch's forwards. Under threshold or factor sampling, a row
        # whose block fills early sits through extra forwards, so its schedule differs from a run alone.
        self.forwards += 1
        options = self.options
        prompt_due, response_due = dllm_cache_refresh(
            self.forwards, options.prompt_interval_steps, options.gen_interval_steps
        )
        if prompt_due:
            feed = self.refresh_feed(block_start, block_end, step, lead, store="all")
            feed.attention = PromptRefreshAttention(self, feed.attention, response_due)
            return feed
        return Feed(self.prompt_length - lead, canvas.shape[1], ResponseStepAttention(self, response_due))

    def end_step(self) -> None:
        super().end_step()
        feature_bytes = sum(t.untyped_storage().nbytes() for t in self.features.values())
        self.stats.record_bytes(self.state.held_bytes() + feature_bytes)

    def end(self) -> None:
        super().end()
        self.features.clear()


def verify_values(stored: LayerKV, keys: Tensor, values: Tensor, transfer_ratio: float) -> Tensor | None:
    """Run V-verify on one layer's response cache in place and return the rows it recomputes.

    Returns (B, ⌊ρ·G⌋) response rows, or None when ρ = 0.

    keys, values: (B, H_kv, G, D) fresh response K/V. The response slots are
    the last G of ``stored``. The rows whose fresh V (all heads as one
    vector) is least cosine-similar to the cached V get their fresh K, and
    the cached V is replaced by the fresh V.
    """
    if transfer_ratio == 0:
        return None
    batch, kv_heads, answer, dim = values.shape
    cached_k, cached_v = stored.k[:, :, -answer:], stored.v[:, :, -answer:]
    similarity = F.cosine_similarity(
        values.transpose(1, 2).reshape(batch, answer, -1).float(),
        cached_v.transpose(1, 2).reshape(batch, answer, -1).float(),
        dim=-1,
    )  # (B, G)
    # A stable sort breaks ties by position, so a row picks the same tokens whatever its batch or padding.
    rows = similarity.sort(dim=-1, stable=True).indices[:, : int(answer * transfer_ratio)]
    index = rows[:, None, :, None].expand(-1, kv_heads, -1, dim)
    cached_k.scatter_(2, index, keys.gather(2, index))
    cached_v.copy_(values)
    return rows


def update_features(features: Tensor, rows: Tensor, fresh: Tensor) -> None:
    """Write rows (B, n) of ``fresh`` (B, H, n, D) into ``features`` (B, H, G, D) in place."""
    index = rows[:, None, :, None].expand(-1, features.shape[1], -1, features.shape[3])
    features.scatter_(2, index, fresh)


class PromptRefreshAttention:
    """A prompt-refresh forward around the host's refresh attention.

    When the response refreshes too (or in layer 0, or before any features
    exist) every fed row is recomputed and the response rows' attention
    outputs are cached. Otherwise the prompt rows attend to their fresh K/V
    plus the cached response K/V, updated by V-verify first, and the
    response rows return their cached attention outputs with the verified
    rows replaced.
    """

    def __init__(self, policy: DLLMCache, inner: RefreshAttention, response_due: bool) -> None:
        self.policy = policy
        self.inner = inner
        self.response_due = response_due

    def attend(self, layer: int, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        policy = self.policy
        answer = policy.state.answer_length
        context_rows = k.shape[2] - answer
        features = policy.features.get(layer)
        if self.response_due or layer == 0 or features is None:
            out = self.inner.attend(layer, q, k, v)
            policy.features[layer] = out[:, :, context_rows:].clone()
            return out
        stored = policy.state.layers[layer]
        rows = verify_values(stored, k[:, :, context_rows:], v[:, :, context_rows:], policy.options.transfer_ratio)
        k = torch.cat([k[:, :, :context_rows], stored.k[:, :, -answer:]], dim=2)
        v = torch.cat([v[:, :, :context_rows], stored.v[:, :, -answer:]], dim=2)
        out = self.inner.attend(layer, q, k, v)
        if rows is not None:
            index = rows[:, None, :, None].expand(-1, out.shape[1], -1, out.shape[3])
            update_features(features, rows, out[:, :, context_rows:].gather(2, index))
        return torch.cat([out[:, :, :context_rows], features], dim=2)


class ResponseStepAttention:
    """A forward between prompt refreshes over the fed run ``[P - lead, N)``: the lead rows, then the response.

    The stored prompt K/V stay as they are. At a response refresh (and in
    layer 0) the response writes its fresh K/V and every fed row attends.
    Otherwise V-verify updates the response cache, only the verified rows
    and the lead rows attend, and the other response rows return their
    cached attention outputs.
    """

    def __init__(self, policy: DLLMCache, response_due: bool) -> None:
        self.policy = policy
        self.response_due = response_due

    def attend(self, layer: int, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        policy, state = self.policy, self.policy.state
        stored = state.layers[layer]
        lead = k.shape[2] - state.answer_length
        if self.response_due or layer == 0:
            write_window(stored, state.prompt_length, k[:, :, lead:], v[:, :, lead:])
            out = sdpa(q, stored.k, stored.v, self._bias(layer, q, stored))
            policy.features[layer] = out if lead == 0 else out[:, :, lead:].clone()
            return out
        features = policy.features[layer]
        rows = verify_values(stored, k[:, :, lead:], v[:, :, lead:], policy.options.transfer_ratio)
        bias = self._bias(layer, q, stored)
        if rows is not None:
            index = (rows + lead)[:, None, :, None].expand(-1, q.shape[1], -1, q.shape[3])
            update_features(features, rows, sdpa(q.gather(2, index), stored.k, stored.v, bias))
        # NOTE: dLLM-Cache reuses these rows' FFN outputs too, but the model runs its FFN on every
        # fed row, so only their attention is reused here.
        if lead == 0:
            return features
        return torch.cat([sdpa(q[:, :, :lead], stored.k, stored.v, bias), features], dim=2)

    def _bias(self, layer: int, q: Tensor, stored: LayerKV) -> Tensor | None:
        if self.policy.state.step_filter is None:
            return stored.bias
        return step_selection_bias(self.policy.state, layer, q, stored.k, stored.bias)
