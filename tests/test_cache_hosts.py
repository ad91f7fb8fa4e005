"""The dLLM-Cache, Sparse-dLLM and dKV-Cache hosts on tiny random LLaDA and Dream models.

Float32 on the CPU with the fixed low-confidence sampler, so two runs that
compute the same attention commit the same tokens. The generation config
runs eight steps per block, so every host reaches its cached steps.
"""

from __future__ import annotations

import dataclasses
import functools

import pytest
import torch
from tiny_models import StubTokenizer, forward_logits, random_tiny_model

from wavefilter_cli.cache import build_cache, make_cache_policy
from wavefilter_cli.cache.base import feed_positions, feed_tokens
from wavefilter_cli.cache.dkv import DelayedStepAttention, DKVOptions, dkv_refresh_due
from wavefilter_cli.cache.dllm_cache import (
    DLLMCacheOptions,
    PromptRefreshAttention,
    ResponseStepAttention,
    dllm_cache_refresh,
    verify_values,
)
from wavefilter_cli.cache.kv_store import LayerKV
from wavefilter_cli.cache.sparse_dllm import SparseDLLMOptions, retained_rows, sparse_dllm_phase
from wavefilter_cli.filters.base import FilterInput
from wavefilter_cli.filters.registry import FILTERS
from wavefilter_cli.filters.sparse_dllm import SparseDLLMFilter, block_saliency
from wavefilter_cli.filters.streaming import Streaming
from wavefilter_cli.generation import BlockDone, GenerationConfig, generate

PROMPT_LENGTH = 64
BLOCK = 8
CONFIG = GenerationConfig(max_tokens=24, block_length=BLOCK, steps=24, stop_early=False)
MASK_ID = 300

#: Each new host with its published defaults, and with options that make every schedule branch run in CONFIG.
HOSTS = [
    ("dllm-cache", {}),
    ("dllm-cache", {"prompt_interval_steps": 5, "gen_interval_steps": 3}),
    ("sparse-dllm", {}),
    ("sparse-dllm", {"refresh_every": 3}),
    ("dkv", {}),
    ("dkv", {"refresh_every": 4}),
]
HOST_IDS = [name + "".join(f"-{value}" for value in options.values()) for name, options in HOSTS]
METHODS = ["dllm-cache", "sparse-dllm", "dkv"]
EVERY_STEP = {
    "dllm-cache": {"prompt_interval_steps": 1, "gen_interval_steps": 1},
    "sparse-dllm": {"refresh_every": 1},
    "dkv": {"refresh_every": 1},
}


@functools.lru_cache(maxsize=None)
def tiny_model(family: str):
    return random_tiny_model(family, seed=5, init_std=0.2)


@pytest.fixture(params=["llada", "dream"])
def family(request) -> str:
    return request.param


def prompt_ids(length: int = PROMPT_LENGTH) -> list[int]:
    generator = torch.Generator().manual_seed(9)
    return torch.randint(0, 290, (length,), generator=generator).tolist()


def run(family: str, policy, config: GenerationConfig = CONFIG):
    events = list(generate(tiny_model(family), StubTokenizer(), prompt_ids(), config, policy))
    tokens = [t for event in events if isinstance(event, BlockDone) for t in event.tokens]
    return tokens, events[-1]


@functools.lru_cache(maxsize=None)
def host_run(family: str, method: str, options: tuple = ()):
    tokens, finished = run(family, make_cache_policy(method, **dict(options)))
    return tokens, finished.kv_bytes_peak


def start_canvas(answer: int = 24) -> torch.Tensor:
    prompt = torch.tensor([prompt_ids()])
    return torch.cat([prompt, torch.full((1, answer), MASK_ID)], dim=1)


# Exactness invariants.


@pytest.mark.parametrize("evict", [False, True], ids=["mask", "evict"])
@pytest.mark.parametrize(("method", "options"), HOSTS, ids=HOST_IDS)
def test_keep_all_equals_host(family, method, options, evict):
    reference, host_bytes = host_run(family, method, tuple(options.items()))
    policy = build_cache(method, "keep-all", budget=0.1, evict=evict, cache_options=options)
    tokens, finished = run(family, policy)
    assert tokens == reference
    assert finished.kv_bytes_peak == host_bytes
    assert policy.stats.kept_tokens == PROMPT_LENGTH


@pytest.mark.parametrize("method", METHODS)
def test_refresh_every_step_equals_none(family, method):
    reference, _ = host_run(family, "none")
    tokens, _ = run(family, make_cache_policy(method, **EVERY_STEP[method]))
    assert tokens == reference


@pytest.mark.parametrize(
    ("method", "options"),
    [
        ("dkv", {"refresh_every": 8}),
        ("sparse-dllm", {"keep_ratio": 1.0}),
        ("dllm-cache", {"transfer_ratio": 0.0}),
        ("dllm-cache", {"transfer_ratio": 0.25}),
        ("dllm-cache", {"transfer_ratio": 1.0}),
    ],
)
def test_cached_step_on_unchanged_canvas_equals_refresh(family, method, options):
    """With nothing committed since the last store, a cached step recomputes what a full forward does."""
    model = tiny_model(family)
    canvas = start_canvas()
    block_start = PROMPT_LENGTH + BLOCK
    canvas[:, PROMPT_LENGTH:block_start] = torch.arange(10, 10 + BLOCK)
    policy = make_cache_policy(method, **options)
    policy.begin(canvas, PROMPT_LENGTH)
    for step in range(2):
        refreshed = forward_logits(model, policy, canvas, block_start, block_start + BLOCK, step)
    cached = forward_logits(model, policy, canvas, block_start, block_start + BLOCK, step=2)
    torch.testing.assert_close(cached, refreshed, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("method", "options"), HOSTS, ids=HOST_IDS)
def test_cached_steps_reuse_stale_state(family, method, options):
    """After commits, the cached steps differ from recomputing everything: the cache is really read."""
    model = tiny_model(family)
    canvas = start_canvas()
    policy = make_cache_policy(method, **options)
    dense = make_cache_policy("none")
    policy.begin(canvas, PROMPT_LENGTH)
    dense.begin(canvas, PROMPT_LENGTH)
    differs = []
    for step in range(4):
        cached = forward_logits(model, policy, canvas, PROMPT_LENGTH, PROMPT_LENGTH + BLOCK, step)
        full = forward_logits(model, dense, canvas, PROMPT_LENGTH, PROMPT_LENGTH + BLOCK, step)
        differs.append(not torch.allclose(cached, full, rtol=1e-5, atol=1e-5))
        canvas[:, PROMPT_LENGTH + 2 * step : PROMPT_LENGTH + 2 * step + 2] = torch.tensor([40 + step, 50 + step])
    assert not differs[0]  # every host's first forward is a full one
    assert any(differs[2:])


# Every filter under every new host.


@pytest.mark.parametrize("evict", [False, True], ids=["mask", "evict"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("filter_name", sorted(FILTERS))
def test_filter_under_host(family, filter_name, method, evict):
    budget = 24
    if evict and FILTERS[filter_name].per_step:
        with pytest.raises(ValueError, match="set evict=False"):
            build_cache(method, filter_name, budget=budget, sink=4, tail=8, evict=True)
        return
    policy = build_cache(method, filter_name, budget=budget, sink=4, tail=8, evict=evict)
    tokens, finished = run(family, policy)
    _, host_bytes = host_run(family, method)

    assert len(tokens) == CONFIG.answer_length
    assert all(0 <= t < 320 for t in tokens)
    # keep-all is the control that keeps the whole context whatever the budget.
    expected_kept = PROMPT_LENGTH if filter_name == "keep-all" else budget
    assert policy.stats.kept_per_layer == [expected_kept, expected_kept]
    assert finished.kept_tokens == expected_kept
    assert 0 < finished.kv_bytes_peak
    if evict and expected_kept < PROMPT_LENGTH:
        assert finished.kv_bytes_peak < host_bytes
    else:
        assert finished.kv_bytes_peak == host_bytes


@pytest.mark.parametrize("method", METHODS)
def test_evicted_bytes_fall_with_budget(family, method):
    peak_bytes = {}
    for budget in (16, 32, 48, 1.0):
        policy = build_cache(method, "snapkv", budget=budget, sink=2, tail=8, evict=True)
        _, finished = run(family, policy)
        peak_bytes[budget] = finished.kv_bytes_peak
    _, host_bytes = host_run(family, method)
    assert peak_bytes[16] < peak_bytes[32] < peak_bytes[48] < peak_bytes[1.0]
    assert peak_bytes[1.0] == host_bytes


def test_sparse_dllm_retains_within_filter_budget(family):
    model = tiny_model(family)
    canvas = start_canvas()
    policy = build_cache("sparse-dllm", "snapkv", budget=16, sink=2, tail=8, evict=True)
    policy.begin(canvas, PROMPT_LENGTH)
    for step in range(3):
        forward_logits(model, policy, canvas, PROMPT_LENGTH, PROMPT_LENGTH + BLOCK, step)
    retained = policy.retained_context_tokens()
    assert len(retained) == 2
    assert all(0 < count <= 16 for count in retained)


# Per-step work stays on the device, and padding is honoured.


@dataclasses.dataclass
class PerStepStreaming(Streaming):
    """Streaming selection redone in every forward, to exercise the hosts' per-step path."""

    name = "per-step-streaming"
    per_step = True


@pytest.mark.parametrize(
    ("method", "options"), [("dllm-cache", {}), ("sparse-dllm", {}), ("dkv", {"refresh_every": 8})]
)
def test_per_step_filter_masks_cached_steps(family, method, options):
    """A per-step filter masks the unkept context at a cached step and keeps the host's byte count."""
    model = tiny_model(family)
    canvas = start_canvas()
    logits = {}
    for name, key_filter in [("dense", None), ("per-step", PerStepStreaming(budget=16, sink=2, tail=4))]:
        policy = make_cache_policy(method, key_filter=key_filter, **options)
        policy.begin(canvas, PROMPT_LENGTH)
        for step in range(3):
            logits[name] = forward_logits(model, policy, canvas, PROMPT_LENGTH, PROMPT_LENGTH + BLOCK, step)
    per_step = PerStepStreaming(budget=16, sink=2, tail=4)
    _, finished = run(family, make_cache_policy(method, key_filter=per_step, **options))
    assert not torch.allclose(logits["per-step"], logits["dense"])
    assert finished.kv_bytes_peak == host_run(family, method, tuple(options.items()))[1]


@pytest.mark.parametrize("variant", ["host", "evict", "mask", "per-step"])
@pytest.mark.parametrize(("method", "options"), HOSTS, ids=HOST_IDS)
def test_forward_path_never_syncs(family, method, options, variant, monkeypatch):
    """Planning forwards and attending, cached steps included, never read a tensor back to the host."""
    model = tiny_model(family)
    canvas = start_canvas()
    if variant == "per-step":
        policy = make_cache_policy(method, key_filter=PerStepStreaming(budget=16, sink=2, tail=4), **options)
    elif variant == "host":
        policy = make_cache_policy(method, **options)
    else:
        evict = variant == "evict"
        policy = build_cache(method, "oracle", budget=16, sink=2, tail=4, evict=evict, cache_options=options)
    policy.begin(canvas, PROMPT_LENGTH)

    def reject_read_back(*args, **kwargs):
        raise AssertionError("host read-back inside feed or attend")

    for block in range(2):
        block_start = PROMPT_LENGTH + BLOCK * block
        for step in range(6):
            with monkeypatch.context() as patch:
                for name in ("item", "tolist", "__bool__", "__int__", "__float__", "nonzero"):
                    patch.setattr(torch.Tensor, name, reject_read_back)
                feed = policy.feed(canvas, block_start, block_start + BLOCK, step, model.logit_shift)
                with torch.inference_mode():
                    model(feed_tokens(canvas, feed), position_ids=feed_positions(feed, 1, canvas.device),
                          attention=feed.attention)
            policy.end_step()
            canvas[:, block_start + step] = 5 + step


# V-verify ranks masked tokens whose value similarities differ in the 8th digit, so a
# different batch shape changes its pick through rounding alone; ρ = 0 and ρ = 1 pick
# deterministic sets and still run every cached path.
PADDED_HOSTS = [(name, options) for name, options in HOSTS if name != "dllm-cache"] + [
    ("dllm-cache", {"transfer_ratio": 0.0}),
    ("dllm-cache", {"prompt_interval_steps": 5, "gen_interval_steps": 3, "transfer_ratio": 1.0}),
]


@pytest.mark.parametrize(("method", "options"), PADDED_HOSTS, ids=lambda value: str(value))
def test_left_padded_row_matches_single_run(family, method, options):
    """A left-padded row of a batch computes what it computes alone, cached steps and eviction included."""
    model = tiny_model(family)
    pad = 5
    single = start_canvas()
    other = torch.randint(0, 290, (1, PROMPT_LENGTH + pad), generator=torch.Generator().manual_seed(4))
    padded = torch.cat([torch.full((1, pad), 301), single], dim=1)
    batch = torch.cat([padded, torch.cat([other, single[:, PROMPT_LENGTH:]], dim=1)])
    key_mask = torch.ones_like(batch, dtype=torch.bool)
    key_mask[0, :pad] = False

    alone = build_cache(method, "oracle", budget=24, sink=2, tail=8, evict=True, cache_options=options)
    alone.begin(single, PROMPT_LENGTH)
    batched = build_cache(method, "oracle", budget=24, sink=2, tail=8, evict=True, cache_options=options)
    batched.begin(batch, PROMPT_LENGTH + pad, key_mask)
    for block in range(2):
        start = PROMPT_LENGTH + BLOCK * block
        for step in range(5):
            expected = forward_logits(model, alone, single, start, start + BLOCK, step)
            got = forward_logits(model, batched, batch, start + pad, start + pad + BLOCK, step)
            torch.testing.assert_close(got[:1], expected, rtol=1e-4, atol=1e-4)
            fill = torch.tensor([40 + 8 * block + step])
            single[:, start + step] = fill
            batch[:, start + pad + step] = fill
    assert torch.equal(batched.state.selection.kept[1][:1] - pad, alone.state.selection.kept[1])


# Refresh schedules against the published defaults.


def test_published_defaults():
    assert DLLMCacheOptions() == DLLMCacheOptions(prompt_interval_steps=50, gen_interval_steps=7, transfer_ratio=0.25)
    assert SparseDLLMOptions() == SparseDLLMOptions(keep_ratio=0.5, kernel=3, refresh_every=None)
    assert DKVOptions() == DKVOptions(refresh_every=2)
    assert SparseDLLMFilter().kernel == 3


def test_dllm_cache_schedule_defaults():
    forwards = range(1, 121)
    prompt = [t for t in forwards if dllm_cache_refresh(t, 50, 7)[0]]
    response = [t for t in forwards if dllm_cache_refresh(t, 50, 7)[1]]
    assert prompt == [1, 51, 101]
    assert response == list(range(1, 121, 7))
    # Forward 51 refreshes the prompt alone: 50 is not a multiple of 7.
    assert dllm_cache_refresh(51, 50, 7) == (True, False)


def test_dllm_cache_counter_spans_blocks():
    """The forward counter is global: block starts do not refresh, and the plans follow the schedule."""
    canvas = start_canvas()
    policy = make_cache_policy("dllm-cache", prompt_interval_steps=5, gen_interval_steps=3)
    policy.begin(canvas, PROMPT_LENGTH)
    kinds = []
    for block in range(2):
        start = PROMPT_LENGTH + BLOCK * block
        for step in range(4):
            attention = policy.feed(canvas, start, start + BLOCK, step, lead=0).attention
            if isinstance(attention, PromptRefreshAttention):
                kinds.append("both" if attention.response_due else "prompt")
            else:
                assert isinstance(attention, ResponseStepAttention)
                kinds.append("response" if attention.response_due else "verify")
    assert kinds == ["both", "verify", "verify", "response", "verify", "prompt", "response", "verify"]


def test_sparse_dllm_schedule_defaults():
    assert [sparse_dllm_phase(step, None) for step in range(5)] == ["dense", "build", "cached", "cached", "cached"]
    phases = [sparse_dllm_phase(step, 3) for step in range(7)]
    assert phases == ["dense", "build", "cached", "build", "cached", "cached", "build"]


def test_dkv_schedule_defaults():
    assert [step for step in range(10) if dkv_refresh_due(step, 2)] == [0, 1, 2, 4, 6, 8]
    assert [step for step in range(17) if dkv_refresh_due(step, 8)] == [0, 1, 8, 16]
    assert all(dkv_refresh_due(step, 1) for step in range(10))


def test_dkv_reuses_tokens_decoded_two_steps_ago(family):
    """A cached step reuses the tokens decoded before the previous step and recomputes the ones it decoded."""
    model = tiny_model(family)
    canvas = start_canvas()
    start = PROMPT_LENGTH
    policy = make_cache_policy("dkv", refresh_every=8)
    policy.begin(canvas, PROMPT_LENGTH)
    reused = []
    for step in range(4):
        feed = policy.feed(canvas, start, start + BLOCK, step, model.logit_shift)
        if isinstance(feed.attention, DelayedStepAttention):
            reused.append(feed.attention.reuse[0, model.logit_shift :].tolist())
        with torch.inference_mode():
            model(feed_tokens(canvas, feed), position_ids=feed_positions(feed, 1, canvas.device),
                  attention=feed.attention)
        policy.end_step()
        canvas[:, start + step] = 20 + step  # one commit per step
    answer = CONFIG.answer_length
    # Step 2 reuses what was decoded before step 1 started (the commit of step 0);
    # step 3 adds the commit of step 1. Masks are never reused.
    assert reused[0] == [True] + [False] * (answer - 1)
    assert reused[1] == [True, True] + [False] * (answer - 2)


def test_dkv_cache_resets_each_block(family):
    model = tiny_model(family)
    canvas = start_canvas()
    policy = make_cache_policy("dkv")
    policy.begin(canvas, PROMPT_LENGTH)
    bytes_held = []
    for block in range(2):
        start = PROMPT_LENGTH + BLOCK * block
        for step in range(2):
            forward_logits(model, policy, canvas, start, start + BLOCK, step)
            bytes_held.append(policy.stats.kv_bytes)
            canvas[:, start + step] = 7
    assert bytes_held[0] == 0
    assert bytes_held[2] == 0
    assert bytes_held[1] > 0
    assert bytes_held[3] == bytes_held[1]


# Sparse-dLLM retention and scoring.


def test_sparse_dllm_retention_size_and_sharing(family):
    model = tiny_model(family)
    lead = model.logit_shift
    canvas = start_canvas()
    policy = make_cache_policy("sparse-dllm")
    policy.begin(canvas, PROMPT_LENGTH)
    start = PROMPT_LENGTH + BLOCK
    for step in range(2):
        forward_logits(model, policy, canvas, start, start + BLOCK, step)
    candidates = PROMPT_LENGTH + CONFIG.answer_length - BLOCK - lead
    for layer, positions in policy.retained_positions.items():
        assert positions.shape[-1] == candidates // 2
        assert policy.state.layers[layer].k.shape[2] == candidates // 2
        assert torch.equal(positions[:, 0], positions[:, 1])
        inside = (positions >= start - lead) & (positions < start + BLOCK)
        assert not inside.any()


def test_retained_rows_pools_outside_window():
    scores = torch.tensor([[0.0, 5.0, 0.0, 9.0, 9.0, 0.0, 1.0, 0.0]])
    candidates = torch.ones(1, 1, 8, dtype=torch.bool)
    # Rows 3 and 4 are the window: cut out, so row 2 and row 5 become neighbours.
    rows, filled = retained_rows(scores, candidates, (3, 5), count=3, keep_ratio=0.5, kernel=3)
    assert rows.tolist() == [[[0, 1, 2]]]
    assert filled.all()
    unpooled, _ = retained_rows(scores, candidates, (3, 5), count=2, keep_ratio=0.5, kernel=1)
    assert unpooled.tolist() == [[[1, 6]]]


def test_retained_rows_fills_per_row_share():
    scores = torch.arange(8.0).expand(2, 8)
    candidates = torch.ones(2, 1, 8, dtype=torch.bool)
    candidates[1, :, :4] = False  # a left-padded row with four real rows
    rows, filled = retained_rows(scores, candidates, (8, 8), count=4, keep_ratio=0.5, kernel=1)
    assert rows[0].tolist() == [[4, 5, 6, 7]]
    assert filled[0].all()
    assert filled[1].sum() == 2
    assert set(rows[1][filled[1]].tolist()) == {6, 7}


def test_block_saliency_is_raw_head_mean():
    generator = torch.Generator().manual_seed(0)
    queries = torch.randn(1, 4, 3, 8, generator=generator)
    keys = torch.randn(1, 2, 10, 8, generator=generator)
    expected = torch.zeros(10)
    for head in range(4):
        expected += queries[0, head].mean(dim=0) @ keys[0, head // 2].T
    torch.testing.assert_close(block_saliency(queries, keys)[0], expected / 4)


def test_sparse_dllm_filter_ranks_by_block_queries():
    generator = torch.Generator().manual_seed(1)
    keys = torch.randn(1, 2, 40, 8, generator=generator)
    prompt_tail = torch.randn(1, 4, 6, 8, generator=generator)
    block = torch.zeros(1, 4, 3, 8)
    block[..., 0] = 1.0
    keys[:, :, 20, 0] = 50.0  # the key the block's queries align with
    key_filter = SparseDLLMFilter(budget=16, sink=0, tail=0, window=6, kernel=1)
    inputs = FilterInput(layer=0, queries=torch.cat([prompt_tail, block], dim=2), keys=keys)
    scores = key_filter.score(inputs)
    assert torch.equal(scores[:, 0], scores[:, 1])
    assert int(scores[0, 0].argmax()) == 20
    assert 20 in key_filter.select(inputs)[0, 0].tolist()


# dLLM-Cache V-verify.


def test_verify_values_updates_least_similar_rows():
    cached_k = torch.zeros(1, 2, 6, 4)
    cached_v = torch.ones(1, 2, 6, 4)
    stored = LayerKV(cached_k, cached_v, 0, None)
    fresh_v = torch.ones(1, 2, 4, 4)
    fresh_v[:, :, 1] = -1.0  # opposite direction: similarity -1
    fresh_v[:, :, 3, :2] = -1.0  # orthogonal: similarity 0
    fresh_k = torch.full((1, 2, 4, 4), 7.0)
    rows = verify_values(stored, fresh_k, fresh_v, transfer_ratio=0.5)
    assert sorted(rows[0].tolist()) == [1, 3]
    assert torch.equal(stored.v[:, :, 2:], fresh_v)
    assert torch.equal(stored.k[:, :, 2:][:, :, [1, 3]], fresh_k[:, :, [1, 3]])
    assert not stored.k[:, :, 2:][:, :, [0, 2]].any()
    assert not stored.k[:, :, :2].any()
    assert verify_values(stored, fresh_k, fresh_v, transfer_ratio=0.0) is None


def test_dllm_cache_prompt_refresh_keeps_response_cache(family):
    """A prompt-only refresh with ρ = 0 recomputes the prompt K/V and leaves the response K/V as cached."""
    model = tiny_model(family)
    canvas = start_canvas()
    policy = make_cache_policy("dllm-cache", prompt_interval_steps=2, gen_interval_steps=100, transfer_ratio=0.0)
    policy.begin(canvas, PROMPT_LENGTH)
    start = PROMPT_LENGTH
    forward_logits(model, policy, canvas, start, start + BLOCK, 0)
    before = policy.state.layers[1].k.clone()
    canvas[:, start : start + 4] = torch.arange(30, 34)
    forward_logits(model, policy, canvas, start, start + BLOCK, 1)
    forward_logits(model, policy, canvas, start, start + BLOCK, 2)  # forward 3: the prompt alone refreshes
    after = policy.state.layers[1].k
    assert torch.equal(after[:, :, PROMPT_LENGTH:], before[:, :, PROMPT_LENGTH:])
    assert not torch.allclose(after[:, :, :PROMPT_LENGTH], before[:, :, :PROMPT_LENGTH])


def test_dllm_cache_counts_attention_features(family):
    policy = make_cache_policy("dllm-cache")
    _, finished = run(family, policy)
    dual_bytes = host_run(family, "dual")[1]
    config = tiny_model(family).config
    heads = getattr(config, "n_heads", None) or config.num_attention_heads
    feature_bytes = 2 * heads * CONFIG.answer_length * (32 // heads) * 4  # layers × H × G × D × float32
    assert finished.kv_bytes_peak == dual_bytes + feature_bytes


def test_build_cache_rejects_invalid_host_options():
    cases = [
        ("dllm-cache", {"prompt_interval_steps": 0}, "prompt_interval_steps=0 is invalid"),
        ("dllm-cache", {"transfer_ratio": 1.5}, r"transfer_ratio=1.5 is invalid: use a share in \[0, 1\]"),
        ("sparse-dllm", {"keep_ratio": 0.0}, r"keep_ratio=0.0 is invalid: use a share in \(0, 1\]"),
        ("sparse-dllm", {"kernel": 2}, "kernel=2 is invalid: use an odd number"),
        ("dkv", {"refresh_every": 0}, "refresh_every=0 is invalid"),
        ("dkv", {"gamma": 0.5}, "has no option 'gamma'"),
    ]
    for method, options, message in cases:
        with pytest.raises(ValueError, match=message):
            build_cache(method, cache_options=options)
    with pytest.raises(ValueError, match="kernel=4 is invalid"):
        build_cache("dual", "sparse-dllm", kernel=4)
