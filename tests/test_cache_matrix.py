"""Every registered filter under every registered cache policy, masking and evicting.

The matrix is built from ``FILTERS`` and ``CACHE_POLICIES``, so a new filter
or policy joins it by being registered.
"""

from __future__ import annotations

import functools

import pytest
import torch
from tiny_models import StubTokenizer, random_tiny_model

from wavefilter_cli.cache import CACHE_POLICIES, build_cache
from wavefilter_cli.filters.registry import FILTERS
from wavefilter_cli.generation import BlockDone, GenerationConfig, generate

PROMPT_LENGTH = 64
BUDGET = 24
CONFIG = GenerationConfig(max_tokens=16, block_length=8, steps=4, stop_early=False)




@functools.lru_cache(maxsize=None)
def tiny_model(family: str):
    return random_tiny_model(family, seed=3)


def run(family: str, policy):
    generator = torch.Generator().manual_seed(11)
    prompt = torch.randint(0, 290, (PROMPT_LENGTH,), generator=generator).tolist()
    events = list(generate(tiny_model(family), StubTokenizer(), prompt, CONFIG, policy))
    tokens = [t for event in events if isinstance(event, BlockDone) for t in event.tokens]
    return tokens, events[-1]


@functools.lru_cache(maxsize=None)
def host_bytes(family: str, method: str) -> int:
    return run(family, build_cache(method))[1].kv_bytes_peak


@pytest.mark.parametrize("evict", [False, True], ids=["mask", "evict"])
@pytest.mark.parametrize("method", sorted(CACHE_POLICIES))
@pytest.mark.parametrize("filter_name", sorted(FILTERS))
@pytest.mark.parametrize("family", ["llada", "dream"])
def test_filter_under_policy(family, filter_name, method, evict):
    if evict and FILTERS[filter_name].per_step:
        with pytest.raises(ValueError, match="set evict=False"):
            build_cache(method, filter_name, budget=BUDGET, sink=4, tail=8, evict=True)
        return
    policy = build_cache(method, filter_name, budget=BUDGET, sink=4, tail=8, evict=evict)
    tokens, finished = run(family, policy)

    assert len(tokens) == CONFIG.answer_length
    assert all(0 <= t < 320 for t in tokens)
    expected_kept = policy.key_filter.kept_count(PROMPT_LENGTH, 0)
    assert policy.stats.kept_per_layer == [expected_kept, expected_kept]
    assert finished.kept_tokens == expected_kept
    assert finished.context_tokens == PROMPT_LENGTH
    assert 0 < policy.stats.refresh_context_tokens <= PROMPT_LENGTH
    if evict and expected_kept < PROMPT_LENGTH and method != "none":
        assert finished.kv_bytes_peak < host_bytes(family, method)
    else:
        assert finished.kv_bytes_peak == host_bytes(family, method)
