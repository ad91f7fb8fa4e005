"""Batched generation: every row of a left-padded batch decodes what it decodes alone.

Tiny random LLaDA and Dream models in float32 on the CPU. The matrix runs
every registered filter under every registered cache policy, masking and
evicting, on prompts of three lengths, with a ratio budget so each row keeps
its own number of context tokens.
"""

from __future__ import annotations

import copy
import dataclasses
import functools

import pytest
import torch
from tiny_models import StubTokenizer, random_tiny_model

from wavefilter_cli.batching import left_pad
from wavefilter_cli.cache import CACHE_POLICIES, build_cache
from wavefilter_cli.cache.base import feed_positions, feed_tokens
from wavefilter_cli.filters.registry import FILTERS
from wavefilter_cli.generation import (
    BlockDone,
    Finished,
    GenerationConfig,
    StepDone,
    generate,
    generate_batch,
)

LENGTHS = (64, 41, 52)
CONFIG = GenerationConfig(max_tokens=16, block_length=8, steps=4, stop_early=False)
FILTER_OPTIONS = {"budget": 0.4, "sink": 4, "tail": 8}
PAD_ID = 301


@functools.lru_cache(maxsize=None)
def tiny_model(family: str):
    """A tiny random model whose weight matrices have std 0.4, so its answers vary and its logits are peaked."""
    return random_tiny_model(family, seed=3, weight_std=0.4)


def prompts(lengths=LENGTHS, seed: int = 11) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 290, (length,), generator=generator).tolist() for length in lengths]


def row_tokens(events) -> dict[int, list[int]]:
    tokens: dict[int, list[int]] = {}
    for event in events:
        if isinstance(event, BlockDone):
            tokens.setdefault(event.row, []).extend(event.tokens)
    return tokens


def alone_tokens(model, prompt, config, make_policy, tokenizer=None, sampler=None) -> list[int]:
    events = generate(model, tokenizer or StubTokenizer(), prompt, config, make_policy(), sampler=sampler)
    return row_tokens(events)[0]


def batch_tokens(model, batch, config, make_policy, tokenizer=None) -> dict[int, list[int]]:
    return row_tokens(generate_batch(model, tokenizer or StubTokenizer(), batch, config, make_policy()))


def matrix_cases():
    for method in sorted(CACHE_POLICIES):
        for filter_name in [None, *sorted(FILTERS)]:
            for evict in (False, True):
                if evict and (filter_name is None or FILTERS[filter_name].per_step):
                    continue
                yield method, filter_name, evict


CASES = list(matrix_cases())


@pytest.mark.parametrize(("method", "filter_name", "evict"), CASES, ids=[f"{m}+{f}-{'evict' if e else 'mask'}" for m, f, e in CASES])
@pytest.mark.parametrize("family", ["llada", "dream"])
def test_batch_rows_match_single_runs(family, method, filter_name, evict):
    model = tiny_model(family)
    options = FILTER_OPTIONS if filter_name is not None else {}

    def make_policy():
        return build_cache(method, filter_name, evict=evict, **options)

    batch = prompts()
    got = batch_tokens(model, batch, CONFIG, make_policy)
    for row, prompt in enumerate(batch):
        assert got[row] == alone_tokens(model, prompt, CONFIG, make_policy), f"row {row} ({len(prompt)} tokens)"


# Samplers, stop tokens and padding.

SAMPLERS = [
    ("low-confidence", {}),
    ("random", {"temperature": 1.0}),
    ("low-confidence", {"temperature": 0.8}),
    ("threshold", {"threshold": 0.3}),
    ("threshold", {"threshold": 0.2, "temperature": 0.7}),
    ("factor", {"factor": 2.0}),
    ("origin", {"temperature": 1.0}),
    ("maskgit_plus", {}),
    ("topk_margin", {"temperature": 0.5}),
    ("entropy", {"alg_temp": 0.5}),
]


@pytest.mark.parametrize("method", ["none", "prefix", "dual"])
@pytest.mark.parametrize(("sampler", "options"), SAMPLERS, ids=[f"{s}-{'-'.join(map(str, o.values()))}" for s, o in SAMPLERS])
@pytest.mark.parametrize("family", ["llada", "dream"])
def test_samplers_run_per_row(family, sampler, options, method):
    model = tiny_model(family)
    config = GenerationConfig(max_tokens=16, block_length=8, steps=8, sampler=sampler, sampler_options=options,
                              seed=7, stop_early=False)
    batch = prompts((30, 44, 37), seed=2)
    got = batch_tokens(model, batch, config, lambda: build_cache(method))
    for row, prompt in enumerate(batch):
        assert got[row] == alone_tokens(model, prompt, config, lambda: build_cache(method)), f"row {row}"


def test_threshold_rows_take_their_own_step_counts():
    """A threshold row whose block fills early commits nothing more while the others finish."""
    model = tiny_model("llada")
    config = GenerationConfig(max_tokens=8, block_length=8, sampler="threshold",
                              sampler_options={"threshold": 0.3}, stop_early=False)
    batch = prompts((30, 44, 37), seed=2)
    alone_steps = []
    for prompt in batch:
        events = list(generate(model, StubTokenizer(), prompt, config, build_cache("none")))
        alone_steps.append(sum(isinstance(event, StepDone) for event in events))
    events = list(generate_batch(model, StubTokenizer(), batch, config, build_cache("none")))
    steps = [event for event in events if isinstance(event, StepDone)]
    assert len(set(alone_steps)) > 1, "pick prompts whose rows need different step counts"
    assert len(steps) == max(alone_steps)
    assert steps[-1].masked == 0
    assert sum(step.committed for step in steps) == config.block_length * len(batch)


class StopAtTokenizer(StubTokenizer):
    """The stub tokenizer with a chosen end-of-sequence token."""

    def __init__(self, eos_token_id: int) -> None:
        self.eos_token_id = eos_token_id


def test_rows_finish_at_different_blocks():
    model = tiny_model("llada")
    config = GenerationConfig(max_tokens=32, block_length=8, steps=16)
    batch = prompts((30, 44, 37), seed=5)
    open_config = dataclasses.replace(config, stop_early=False)
    first_blocks = [alone_tokens(model, prompt, open_config, lambda: build_cache("dual"))[:8] for prompt in batch]
    later = {token for blocks in first_blocks[1:] for token in blocks}
    # A stop token that row 0 emits in its first block and no other row emits there.
    stop = next(token for token in first_blocks[0] if token not in later)
    tokenizer = StopAtTokenizer(stop)

    events = list(generate_batch(model, tokenizer, batch, config, build_cache("dual")))
    finished = [event for event in events if isinstance(event, Finished)]
    blocks = [event for event in events if isinstance(event, BlockDone)]
    assert finished[0].row == 0
    assert [event.block for event in blocks if event.row == 0] == [0]
    assert max(event.block for event in blocks) > 0
    assert sorted(event.row for event in finished) == [0, 1, 2]
    got = row_tokens(events)
    for row, prompt in enumerate(batch):
        alone = list(generate(model, tokenizer, prompt, config, build_cache("dual")))
        assert got[row] == row_tokens(alone)[0], f"row {row}"
        alone_finished = alone[-1]
        row_finished = next(event for event in finished if event.row == row)
        assert row_finished.answer == alone_finished.answer
        assert row_finished.tokens_out == alone_finished.tokens_out
        assert row_finished.tokens_in == len(prompt)


@pytest.mark.parametrize(("method", "filter_name"), [("none", None), ("dual", "snapkv"), ("prefix", "wavefilter")])
@pytest.mark.parametrize("family", ["llada", "dream"])
def test_pad_token_ids_change_nothing(family, method, filter_name):
    """Other token ids in the pad slots leave every logit unchanged: padding is never attended."""
    model = tiny_model(family)
    batch = prompts()
    pads = [max(LENGTHS) - length for length in LENGTHS]
    options = FILTER_OPTIONS if filter_name is not None else {}
    runs = []
    for fill in (PAD_ID, 7, 150):
        spy = PadSpy(model, fill)
        tokens = row_tokens(generate_batch(spy, StubTokenizer(), batch, CONFIG, build_cache(method, filter_name, **options)))
        first_input = spy.inputs[0]
        for row, pad in enumerate(pads):
            assert first_input[row, :pad].tolist() == [fill] * pad
        runs.append((tokens, spy.logits))
    reference_tokens, reference_logits = runs[0]
    for tokens, logits in runs[1:]:
        assert tokens == reference_tokens
        assert len(logits) == len(reference_logits)
        for got, expected in zip(logits, reference_logits):
            torch.testing.assert_close(got, expected, rtol=0, atol=0)


class PadSpy:
    """Wraps a model with ``pad_id`` as its pad token, and records the input ids and logits of every forward."""

    def __init__(self, model, pad_id: int) -> None:
        self.model = model
        self.config = copy.copy(model.config)
        self.config.pad_token_id = pad_id
        self.logit_shift = model.logit_shift
        self.inputs: list[torch.Tensor] = []
        self.logits: list[torch.Tensor] = []

    def parameters(self):
        return self.model.parameters()

    def __call__(self, input_ids, **kwargs):
        output = self.model(input_ids, **kwargs)
        self.inputs.append(input_ids.clone())
        self.logits.append(output.logits.clone())
        return output


@pytest.mark.parametrize(("filter_name", "evict"), [(None, False), ("snapkv", True), ("wavefilter-paper", False)])
@pytest.mark.parametrize("family", ["llada", "dream"])
def test_elastic_rows_refresh_on_their_own_drift(family, filter_name, evict, monkeypatch):
    """Rows whose attention drifts at different steps or layers each refresh as they would alone."""
    from wavefilter_cli.cache import elastic

    rowwise = []
    original = elastic.RowwiseRefreshAttention.__init__

    def record(self, *args, **kwargs):
        original(self, *args, **kwargs)
        rowwise.append(self.through)

    monkeypatch.setattr(elastic.RowwiseRefreshAttention, "__init__", record)
    config = GenerationConfig(max_tokens=32, block_length=16, steps=32, stop_early=False)
    options = FILTER_OPTIONS if filter_name is not None else {}

    def make_policy():
        return build_cache("elastic", filter_name, evict=evict, cache_options={"gamma": 0.9}, **options)

    model = tiny_model(family)
    batch = prompts()
    got = batch_tokens(model, batch, config, make_policy)
    assert rowwise, "no step where the rows disagreed; raise gamma or the step count"
    assert any(None in through for through in rowwise)
    for row, prompt in enumerate(batch):
        assert got[row] == alone_tokens(model, prompt, config, make_policy), f"row {row}"


@pytest.mark.parametrize(
    ("filter_name", "evict"), [(None, False), ("wavefilter", True), ("quest", False), ("wavefilter-paper", False)]
)
@pytest.mark.parametrize("method", sorted(CACHE_POLICIES))
def test_padded_forward_path_never_syncs(method, filter_name, evict, monkeypatch):
    """Per-row selections and per-row refreshes plan and attend without reading a tensor back to the host."""
    model = tiny_model("dream")
    options = FILTER_OPTIONS if filter_name is not None else {}
    policy = build_cache(method, filter_name, evict=evict, **options)
    batch = left_pad(prompts(), 16, PAD_ID, 300, torch.device("cpu"))
    canvas = batch.canvas
    policy.begin(canvas, batch.prompt_length, batch.key_mask)

    def reject_read_back(*args, **kwargs):
        raise AssertionError("host read-back inside feed or attend")

    for block_start, step in [(64, 0), (64, 1), (64, 2), (72, 0), (72, 1), (72, 2)]:
        if method == "elastic" and step == 2:
            policy._refresh_through = [0, None, 1]
        with monkeypatch.context() as patch:
            for name in ("item", "tolist", "__bool__", "__int__", "__float__", "nonzero"):
                patch.setattr(torch.Tensor, name, reject_read_back)
            feed = policy.feed(canvas, block_start, block_start + 8, step, model.logit_shift)
            positions = batch.positions.gather(1, feed_positions(feed, canvas.shape[0], canvas.device))
            with torch.inference_mode():
                model(feed_tokens(canvas, feed), position_ids=positions, attention=feed.attention)
        policy.end_step()
        canvas[:, block_start + step] = 5 + step
