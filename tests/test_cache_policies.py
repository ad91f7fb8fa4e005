"""Cache policies on tiny random LLaDA and Dream models: exactness invariants and mechanics.

All runs are float32 on the CPU with a fixed low-confidence sampler, so two
policies that compute the same attention must commit the same tokens.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from tiny_models import StubTokenizer, forward_logits

from wavefilter_cli.cache import CACHE_POLICIES, build_cache, make_cache_policy
from wavefilter_cli.cache.base import feed_positions, feed_tokens
from wavefilter_cli.filters.keep_all import KeepAll
from wavefilter_cli.filters.streaming import Streaming as StreamingFilter
from wavefilter_cli.generation import BlockDone, Finished, GenerationConfig, generate
from wavefilter_cli.models.dream import DreamConfig, DreamModel
from wavefilter_cli.models.llada import LLaDAConfig, LLaDAModelLM

PROMPT_LENGTH = 72
CONFIG = GenerationConfig(max_tokens=24, block_length=8, steps=12, stop_early=False)




def tiny_llada() -> LLaDAModelLM:
    torch.manual_seed(0)
    config = LLaDAConfig(
        d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, mlp_hidden_size=96, vocab_size=320,
        embedding_size=320, max_sequence_length=512, mask_token_id=300, eos_token_id=301, pad_token_id=301,
        init_std=0.2,
    )
    return LLaDAModelLM(config).float().eval()


def tiny_dream() -> DreamModel:
    torch.manual_seed(1)
    config = DreamConfig(
        vocab_size=320, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, mask_token_id=300, pad_token_id=301,
        bos_token_id=302, eos_token_id=301,
    )
    return DreamModel(config).float().eval()


@pytest.fixture(scope="module", params=["llada", "dream"])
def model(request):
    return tiny_llada() if request.param == "llada" else tiny_dream()


def prompt_ids(length: int = PROMPT_LENGTH) -> list[int]:
    generator = torch.Generator().manual_seed(7)
    return torch.randint(0, 290, (length,), generator=generator).tolist()


def run(model, policy, config: GenerationConfig = CONFIG) -> tuple[list[int], Finished]:
    events = list(generate(model, StubTokenizer(), prompt_ids(), config, policy))
    tokens = [t for event in events if isinstance(event, BlockDone) for t in event.tokens]
    return tokens, events[-1]


@pytest.mark.parametrize("method", ["prefix", "dual"])
def test_refresh_every_step_equals_none(model, method):
    reference, _ = run(model, build_cache("none"))
    tokens, _ = run(model, build_cache(method, cache_options={"refresh_every": 1}))
    assert tokens == reference


@pytest.mark.parametrize("evict", [False, True])
@pytest.mark.parametrize("method", sorted(CACHE_POLICIES))
def test_keep_all_equals_host(model, method, evict):
    reference, finished = run(model, build_cache(method))
    policy = build_cache(method, "keep-all", budget=0.1, evict=evict)
    tokens, kept_finished = run(model, policy)
    assert tokens == reference
    assert kept_finished.kv_bytes_peak == finished.kv_bytes_peak
    assert policy.stats.kept_tokens == PROMPT_LENGTH


def start_canvas(answer: int = 24) -> torch.Tensor:
    prompt = torch.tensor([prompt_ids()])
    return torch.cat([prompt, torch.full((1, answer), 300)], dim=1)


@pytest.mark.parametrize("method", ["prefix", "dual", "elastic"])
def test_step_without_change_equals_refresh(model, method):
    """A cached step on an unchanged canvas recomputes what the refresh computed."""
    canvas = start_canvas()
    block_start = PROMPT_LENGTH + 8
    canvas[:, PROMPT_LENGTH:block_start] = torch.arange(10, 18)
    policy = make_cache_policy(method)
    policy.begin(canvas, PROMPT_LENGTH)
    refreshed = forward_logits(model, policy, canvas, block_start, block_start + 8, step=0)
    cached = forward_logits(model, policy, canvas, block_start, block_start + 8, step=1)
    torch.testing.assert_close(cached, refreshed, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", ["none", "prefix", "dual"])
def test_evict_equals_mask_within_block(model, method):
    """Inside the selecting block, evicting the unkept keys computes what masking them does."""
    canvas = start_canvas()
    block_start = PROMPT_LENGTH
    logits = {}
    for evict in (False, True):
        policy = build_cache(method, "snapkv", budget=0.25, sink=2, tail=8, evict=evict)
        policy.begin(canvas, PROMPT_LENGTH)
        forward_logits(model, policy, canvas, block_start, block_start + 8, step=0)
        logits[evict] = forward_logits(model, policy, canvas, block_start, block_start + 8, step=1)
    torch.testing.assert_close(logits[True], logits[False], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", ["prefix", "dual"])
def test_in_block_refresh_selects_anew(model, method):
    """An in-block refresh under eviction recomputes the whole canvas and selects again, like a block start."""
    canvas = start_canvas()
    block = (PROMPT_LENGTH, PROMPT_LENGTH + 8)
    refreshed = build_cache(method, "snapkv", budget=0.25, sink=2, tail=8, evict=True,
                            cache_options={"refresh_every": 2})
    refreshed.begin(canvas, PROMPT_LENGTH)
    forward_logits(model, refreshed, canvas, *block, step=0)
    decoded = canvas.clone()
    decoded[:, PROMPT_LENGTH : PROMPT_LENGTH + 3] = torch.tensor([10, 11, 12])
    forward_logits(model, refreshed, decoded, *block, step=1)
    forward_logits(model, refreshed, decoded, *block, step=2)
    after_refresh = forward_logits(model, refreshed, decoded, *block, step=3)

    fresh = build_cache(method, "snapkv", budget=0.25, sink=2, tail=8, evict=True)
    fresh.begin(decoded, PROMPT_LENGTH)
    forward_logits(model, fresh, decoded, *block, step=0)
    expected = forward_logits(model, fresh, decoded, *block, step=1)
    torch.testing.assert_close(after_refresh, expected, rtol=1e-5, atol=1e-5)


def test_selection_changes_attention(model):
    """A filter that drops context must change the logits (the selection is applied)."""
    canvas = start_canvas()
    full = make_cache_policy("dual")
    full.begin(canvas, PROMPT_LENGTH)
    forward_logits(model, full, canvas, PROMPT_LENGTH, PROMPT_LENGTH + 8, step=0)
    dense = forward_logits(model, full, canvas, PROMPT_LENGTH, PROMPT_LENGTH + 8, step=1)
    filtered = build_cache("dual", "streaming", budget=16, sink=2, tail=4, evict=True)
    filtered.begin(canvas, PROMPT_LENGTH)
    forward_logits(model, filtered, canvas, PROMPT_LENGTH, PROMPT_LENGTH + 8, step=0)
    sparse = forward_logits(model, filtered, canvas, PROMPT_LENGTH, PROMPT_LENGTH + 8, step=1)
    assert not torch.allclose(sparse, dense)


@pytest.mark.parametrize("method", ["prefix", "dual", "elastic"])
def test_evicted_bytes_scale_with_budget(model, method):
    held = {}
    for budget in (16, 32, 48, 1.0):
        policy = build_cache(method, "snapkv", budget=budget, sink=2, tail=8, evict=True)
        _, finished = run(model, policy)
        held[budget] = finished.kv_bytes_peak
    _, masked = run(model, build_cache(method, "snapkv", budget=16, sink=2, tail=8, evict=False))
    # Every 16 kept context tokens add the same measured bytes, up to the whole context.
    step = held[32] - held[16]
    assert step > 0
    assert held[48] - held[32] == step
    assert held[1.0] - held[48] == step * (PROMPT_LENGTH - 48) / 16
    assert masked.kv_bytes_peak == held[1.0]


def test_none_holds_no_bytes(model):
    _, finished = run(model, build_cache("none", "snapkv", budget=16, evict=True))
    assert finished.kv_bytes_peak == 0


@pytest.mark.parametrize("variant", ["evict", "mask", "per-step"])
@pytest.mark.parametrize("method", sorted(CACHE_POLICIES))
def test_forward_path_never_syncs(model, method, variant, monkeypatch):
    """Planning a forward and attending never read a tensor back to the host."""
    canvas = start_canvas()
    if variant == "per-step":
        policy = make_cache_policy(method, key_filter=PerStepStreaming(budget=16, sink=2, tail=4))
    else:
        policy = build_cache(method, "oracle", budget=16, sink=2, tail=4, evict=variant == "evict")
    policy.begin(canvas, PROMPT_LENGTH)
    lead = model.logit_shift

    def refuse(*args, **kwargs):
        raise AssertionError("host read-back inside feed or attend")

    for block_start, step in [(PROMPT_LENGTH, 0), (PROMPT_LENGTH, 1), (PROMPT_LENGTH + 8, 0), (PROMPT_LENGTH + 8, 1)]:
        with monkeypatch.context() as patch:
            for name in ("item", "tolist", "__bool__", "__int__", "__float__", "nonzero"):
                patch.setattr(torch.Tensor, name, refuse)
            feed = policy.feed(canvas, block_start, block_start + 8, step, lead)
            with torch.inference_mode():
                model(feed_tokens(canvas, feed), position_ids=feed_positions(feed, 1, canvas.device),
                      attention=feed.attention)
        policy.end_step()
        canvas[:, block_start : block_start + 8] = 5


def test_elastic_drift_triggers_refresh(model):
    never = make_cache_policy("elastic", gamma=1e-6)
    run(model, never)
    always = make_cache_policy("elastic", gamma=1.0)
    run(model, always)
    assert never.drift_refreshes == 0
    assert never.stats.refreshes == CONFIG.num_blocks
    assert always.drift_refreshes > 0
    assert always.stats.refreshes == CONFIG.num_blocks + always.drift_refreshes


def test_elastic_keeps_shallow_layers(model):
    """A refresh triggered at layer 0 keeps layer 0's stored K/V outside the window."""
    canvas = start_canvas()
    policy = make_cache_policy("elastic")
    policy.begin(canvas, PROMPT_LENGTH)
    window = (PROMPT_LENGTH - model.logit_shift, PROMPT_LENGTH + 8)
    forward_logits(model, policy, canvas, PROMPT_LENGTH, PROMPT_LENGTH + 8, step=0)
    before = {layer: stored.k.clone() for layer, stored in policy.state.layers.items()}
    canvas[:, PROMPT_LENGTH : PROMPT_LENGTH + 8] = torch.arange(20, 28)
    policy._refresh_through = 0
    forward_logits(model, policy, canvas, PROMPT_LENGTH, PROMPT_LENGTH + 8, step=1)
    after = {layer: stored.k for layer, stored in policy.state.layers.items()}
    outside = torch.ones(canvas.shape[1], dtype=torch.bool)
    outside[window[0] : window[1]] = False
    assert torch.equal(after[0][:, :, outside], before[0][:, :, outside])
    assert not torch.equal(after[0][:, :, ~outside], before[0][:, :, ~outside])
    assert not torch.equal(after[1][:, :, outside], before[1][:, :, outside])


def test_build_cache_rejects_invalid_values():
    with pytest.raises(ValueError, match=r"budget=1.5 is invalid: use a ratio in \(0, 1\] or a token count ≥ 16"):
        build_cache("prefix", "snapkv", budget=1.5)
    with pytest.raises(ValueError, match="cache='fast' is unknown"):
        build_cache("fast")
    with pytest.raises(ValueError, match="filter='wave' is unknown"):
        build_cache("prefix", "wave")
    with pytest.raises(ValueError, match="evict=True is invalid without a filter"):
        build_cache("prefix", None, evict=True)
    with pytest.raises(ValueError, match="has no option 'kernal'"):
        build_cache("prefix", "snapkv", kernal=5)
    with pytest.raises(ValueError, match="refresh_every=0 is invalid"):
        build_cache("dual", cache_options={"refresh_every": 0})
    with pytest.raises(ValueError, match="has no option 'gamma'"):
        build_cache("dual", cache_options={"gamma": 0.5})


@pytest.mark.parametrize("method", ["none", "prefix", "dual", "elastic"])
def test_left_padded_row_matches_single_run(model, method):
    """A left-padded row of a batch computes what it computes alone, selection and sparse refresh included."""
    pad = 5
    single = start_canvas()
    other = torch.randint(0, 290, (1, PROMPT_LENGTH + pad), generator=torch.Generator().manual_seed(4))
    padded = torch.cat([torch.full((1, pad), 301), single], dim=1)
    batch = torch.cat([padded, torch.cat([other, single[:, PROMPT_LENGTH:]], dim=1)])
    key_mask = torch.ones_like(batch, dtype=torch.bool)
    key_mask[0, :pad] = False

    alone = build_cache(method, "oracle", budget=24, sink=2, tail=8, evict=True)
    alone.begin(single, PROMPT_LENGTH)
    batched = build_cache(method, "oracle", budget=24, sink=2, tail=8, evict=True)
    batched.begin(batch, PROMPT_LENGTH + pad, key_mask)
    for block, step in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        start = PROMPT_LENGTH + 8 * block
        expected = forward_logits(model, alone, single, start, start + 8, step)
        got = forward_logits(model, batched, batch, start + pad, start + pad + 8, step)
        torch.testing.assert_close(got[:1], expected, rtol=1e-4, atol=1e-4)
        fill = torch.arange(8) + 40 + 8 * block + step
        single[:, start : start + 8] = fill
        batch[:, start + pad : start + pad + 8] = fill
    kept_alone = alone.state.selection.kept[1]
    kept_batched = batched.state.selection.kept[1][:1]
    assert torch.equal(kept_batched - pad, kept_alone)


@dataclasses.dataclass
class PerStepStreaming(StreamingFilter):
    """Streaming selection redone in every forward, to exercise the hosts' per-step path."""

    name = "per-step-streaming"
    per_step = True


@dataclasses.dataclass
class PerStepKeepAll(KeepAll):
    name = "per-step-keep-all"
    per_step = True


@pytest.mark.parametrize("method", sorted(CACHE_POLICIES))
def test_per_step_keep_all_equals_host(model, method):
    reference, _ = run(model, build_cache(method))
    tokens, _ = run(model, make_cache_policy(method, key_filter=PerStepKeepAll()))
    assert tokens == reference


@pytest.mark.parametrize("method", ["prefix", "dual", "elastic"])
def test_per_step_filter_masks_cached_steps(model, method):
    """A per-step filter masks the unkept context at cached steps, without evicting."""
    canvas = start_canvas()
    logits = {}
    for name, key_filter in [("dense", None), ("per-step", PerStepStreaming(budget=16, sink=2, tail=4))]:
        policy = make_cache_policy(method, key_filter=key_filter)
        policy.begin(canvas, PROMPT_LENGTH)
        forward_logits(model, policy, canvas, PROMPT_LENGTH, PROMPT_LENGTH + 8, step=0)
        logits[name] = forward_logits(model, policy, canvas, PROMPT_LENGTH, PROMPT_LENGTH + 8, step=1)
    masked = make_cache_policy(method, key_filter=PerStepStreaming(budget=16, sink=2, tail=4))
    _, finished = run(model, masked)
    _, host = run(model, make_cache_policy(method))
    assert not torch.allclose(logits["per-step"], logits["dense"])
    assert finished.kv_bytes_peak == host.kv_bytes_peak


def test_per_step_filter_rejects_eviction():
    with pytest.raises(ValueError, match="evict=True is invalid with filter 'per-step-streaming'"):
        make_cache_policy("dual", key_filter=PerStepStreaming(), evict=True)
