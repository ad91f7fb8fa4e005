"""Key-token filters: selection properties for every registered filter, and each baseline's own rule."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from wavefilter_cli.filters.base import FilterInput, check_budget
from wavefilter_cli.filters.registry import FILTERS, make_filter


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Run on one CPU thread: tiny tensors gain nothing from more, and on a busy machine thread hand-offs dominate."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_input(batch, heads, kv_heads, length, window, dim=8, seed=0, padding=0, layer=1, min_tail=0):
    generator = torch.Generator().manual_seed(seed)
    queries = torch.randn(batch, heads, window, dim, generator=generator)
    keys = torch.randn(batch, kv_heads, length, dim, generator=generator)
    key_mask = None
    if padding:
        key_mask = torch.ones(batch, length, dtype=torch.bool)
        key_mask[0, :padding] = False
    logits = queries.reshape(batch, kv_heads, -1, dim) @ keys.transpose(-1, -2) / math.sqrt(dim)
    if key_mask is not None:
        logits = logits.masked_fill(~key_mask[:, None, None, :], float("-inf"))
    probs = logits.softmax(-1).reshape(batch, heads, window, length)
    return FilterInput(layer=layer, queries=queries, keys=keys, probs=probs, key_mask=key_mask, min_tail=min_tail)


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(sorted(FILTERS)),
    length=st.integers(8, 150),
    budget=st.one_of(st.floats(0.01, 1.0), st.integers(16, 200)),
    sink=st.integers(0, 6),
    tail=st.integers(0, 40),
    kv_heads=st.sampled_from([1, 2]),
    padding=st.integers(0, 5),
    min_tail=st.integers(0, 1),
    share_heads=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_selection_properties(name, length, budget, sink, tail, kv_heads, padding, min_tail, share_heads, seed):
    key_filter = make_filter(name, budget=budget, sink=sink, tail=tail, share_heads=share_heads)
    inputs = random_input(2, 4, kv_heads, length, window=5, seed=seed, padding=min(padding, length - 1), min_tail=min_tail)
    kept = key_filter.select(inputs)

    count = key_filter.kept_count(length, inputs.layer, min_tail)
    assert kept.shape == (2, kv_heads, count)
    assert kept.dtype == torch.int64
    assert bool((kept >= 0).all())
    assert bool((kept < length).all())
    assert bool((kept[..., 1:] > kept[..., :-1]).all()), "positions must be sorted and unique"
    if share_heads:
        assert bool((kept == kept[:, :1]).all()), "shared selection differs across heads"
    if name == "keep-all":
        assert count == length
    else:
        wanted = math.ceil(budget * length) if isinstance(budget, float) else budget
        assert count == min(length, max(wanted, sink + max(tail, min_tail)))

    chosen = torch.zeros(2, kv_heads, length, dtype=torch.bool).scatter_(2, kept, True)
    tail_start = length - max(tail, min_tail)
    assert bool(chosen[..., max(0, tail_start) :].all()), "tail missing"
    real_first = padding if inputs.key_mask is not None else 0
    assert bool(chosen[0, :, real_first : real_first + sink].all()), "sinks missing in the padded row"
    assert bool(chosen[1, :, :sink].all()), "sinks missing"


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_padding_kept_last(name):
    """Padded positions are chosen only when the budget exceeds the real tokens."""
    key_filter = make_filter(name, budget=16, sink=2, tail=4)
    inputs = random_input(2, 4, 2, 48, window=6, padding=20)
    kept = key_filter.select(inputs)
    if name != "keep-all":
        assert bool((kept[0] >= 20).all())


def test_oracle_matches_exact_top_k():
    inputs = random_input(1, 4, 2, 64, window=6, seed=5)
    kept = make_filter("oracle", budget=20, sink=0, tail=0).select(inputs)
    mass = inputs.probs.reshape(1, 2, -1, 64).sum(2)
    exact = mass.topk(20, dim=-1).indices.sort(-1).values
    assert torch.equal(kept, exact)


def test_heads_keep_different_positions():
    inputs = random_input(1, 4, 2, 96, window=6, seed=9)
    kept = make_filter("oracle", budget=20, sink=0, tail=0).select(inputs)
    assert not torch.equal(kept[0, 0], kept[0, 1])


def test_streaming_keeps_sinks_and_latest():
    inputs = random_input(1, 2, 1, 100, window=3)
    kept = make_filter("streaming", budget=24, sink=4, tail=8).select(inputs)
    expected = torch.cat([torch.arange(4), torch.arange(80, 100)])
    assert torch.equal(kept[0, 0], expected)


def test_random_is_seeded():
    inputs = random_input(1, 2, 1, 100, window=3)
    first = make_filter("random", budget=20, sink=0, tail=0, seed=3).select(inputs)
    again = make_filter("random", budget=20, sink=0, tail=0, seed=3).select(inputs)
    other = make_filter("random", budget=20, sink=0, tail=0, seed=4).select(inputs)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def needle_input(length=128, needle=70, dim=16):
    """One query, random small keys, and one key at ``needle`` aligned with the query."""
    generator = torch.Generator().manual_seed(2)
    query = torch.randn(1, 1, 1, dim, generator=generator)
    keys = 0.1 * torch.randn(1, 1, length, dim, generator=generator)
    keys[0, 0, needle] = 3 * query[0, 0, 0]
    return FilterInput(layer=0, queries=query, keys=keys)


@pytest.mark.parametrize("name", ["snapkv", "quest", "block-mean", "oracle"])
def test_scorers_find_a_needle(name):
    kept = make_filter(name, budget=16, sink=0, tail=0).select(needle_input())
    assert 70 in kept[0, 0].tolist()


def test_quest_keeps_whole_pages():
    kept = make_filter("quest", budget=16, sink=0, tail=0, page_size=16).select(needle_input())
    assert torch.equal(kept[0, 0], torch.arange(64, 80))


def test_snapkv_pooling_spreads_to_neighbours():
    kept = make_filter("snapkv", budget=16, sink=0, tail=0, kernel=7).select(needle_input())
    assert set(range(67, 74)) <= set(kept[0, 0].tolist())


def test_quest_dense_layers_keep_everything():
    key_filter = make_filter("quest", budget=16, dense_layers=2)
    assert key_filter.kept_count(100, layer=1) == 100
    assert key_filter.kept_count(100, layer=2) == 36


@pytest.mark.parametrize("budget", [1.5, 0.0, -0.2, 8, 15, True, "0.1", float("nan")])
def test_invalid_budget_rejected(budget):
    with pytest.raises(ValueError, match=r"is invalid: use a ratio in \(0, 1\] or a token count ≥ 16"):
        check_budget(budget)


def test_make_filter_rejects_unknown_names_and_options():
    with pytest.raises(ValueError, match="filter='h2o' is unknown: use one of"):
        make_filter("h2o")
    with pytest.raises(ValueError, match="filter 'snapkv' has no option 'page_size'"):
        make_filter("snapkv", page_size=16)
    with pytest.raises(ValueError, match="kernel=4 is invalid"):
        make_filter("snapkv", kernel=4)
    with pytest.raises(ValueError, match="sink=-1 is invalid"):
        make_filter("streaming", sink=-1)


def test_make_filter_returns_fresh_instances():
    assert make_filter("snapkv") is not make_filter("snapkv")
