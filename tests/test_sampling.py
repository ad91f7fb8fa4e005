"""Tests of the samplers, the logit shift helpers and block stopping."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from wavefilter_cli.sampling import (
    SAMPLERS,
    DreamConfidenceOptions,
    FactorOptions,
    LLaDAOptions,
    ThresholdOptions,
    align_logits,
    block_is_finished,
    block_logits,
    dream_step_fractions,
    dream_transfer_counts,
    factor_rule_counts,
    filter_top_k,
    filter_top_p,
    llada_quotas,
    make_sampler,
    margin_confidence,
    negative_entropy,
    token_distribution,
)

VOCAB = 11

# Options that make every sampler draw random numbers, so batch-versus-alone
# comparisons cover the stochastic paths.
STOCHASTIC_OPTIONS = {
    "low-confidence": {"temperature": 0.8},
    "random": {"temperature": 0.8},
    "threshold": {"temperature": 0.8, "threshold": 0.3},
    "factor": {"temperature": 0.8, "factor": 2.0},
    "origin": {"temperature": 0.8, "top_p": 0.9},
    "maskgit_plus": {"temperature": 0.8, "top_k": 5, "alg_temp": 0.5},
    "topk_margin": {"temperature": 0.8, "top_p": 0.9, "alg_temp": 0.5},
    "entropy": {"temperature": 0.8, "alg_temp": 0.5},
}


def run_block(sampler, masked, logits_per_step, steps, generator=None, tokens=None):
    """Drive one block as the generation loop does and record each step's commits.

    Returns the final tokens, the final mask and a list of (B, Lb) commit masks.
    """
    if tokens is None:
        tokens = torch.full(masked.shape, -1, dtype=torch.long)
    plan = sampler.begin_block(masked, steps)
    history = []
    for step in range(plan.max_steps):
        if not masked.any():
            break
        tokens, committed = sampler.step(plan, step, logits_per_step[step], tokens, masked, generator)
        history.append(committed)
        masked = masked & ~committed
    return tokens, masked, history


def random_logits(steps, batch, block_length, seed=0, scale=3.0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, block_length, VOCAB, generator=generator) * scale for _ in range(steps)]


def logits_for_probabilities(probabilities):
    """Build (1, Lb, V) logits whose softmax is the given (Lb, V) probabilities."""
    return torch.tensor(probabilities, dtype=torch.float64).log().unsqueeze(0)


# LLaDA quotas


def test_llada_quotas_remainder_first():
    quotas = llada_quotas(torch.tensor([10, 3, 0, 8]), 4)
    assert quotas.tolist() == [[3, 3, 2, 2], [1, 1, 1, 0], [0, 0, 0, 0], [2, 2, 2, 2]]


@settings(max_examples=200, deadline=None)
@given(
    counts=st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=6),
    steps=st.integers(min_value=1, max_value=64),
)
def test_llada_quotas_property(counts, steps):
    quotas = llada_quotas(torch.tensor(counts), steps)
    assert quotas.shape == (len(counts), steps)
    for row, count in zip(quotas.tolist(), counts):
        assert sum(row) == count
        assert row == sorted(row, reverse=True)
        assert max(row) - min(row) <= 1
        assert row[0] == count // steps + (1 if count % steps else 0)
        assert row.count(count // steps + 1) == count % steps


def test_low_confidence_commits_quota_per_row():
    masked = torch.tensor([[True] * 8, [True, False] * 4, [False] * 8])
    sampler = make_sampler("low-confidence")
    _, left, history = run_block(sampler, masked, random_logits(3, 3, 8), steps=3)
    commits = torch.stack(history, dim=1).sum(dim=-1)
    assert commits.tolist() == [[3, 3, 2], [2, 1, 1], [0, 0, 0]]
    assert not left.any()


def test_low_confidence_picks_top_confidences():
    probabilities = [
        [0.9, 0.05, 0.05],
        [0.4, 0.3, 0.3],
        [0.2, 0.7, 0.1],
        [0.1, 0.1, 0.8],
        [0.99, 0.005, 0.005],
    ]
    logits = logits_for_probabilities(probabilities)
    # Position 4 is the most confident but already decoded, so it must be skipped.
    masked = torch.tensor([[True, True, True, True, False]])
    tokens = torch.tensor([[-1, -1, -1, -1, 7]])
    sampler = make_sampler("low-confidence")
    plan = sampler.begin_block(masked, 2)
    new_tokens, committed = sampler.step(plan, 0, logits, tokens, masked)
    assert committed.tolist() == [[True, False, False, True, False]]
    assert new_tokens.tolist() == [[0, -1, -1, 2, 7]]


def test_low_confidence_temperature_zero_deterministic():
    masked = torch.ones(2, 6, dtype=torch.bool)
    logits = random_logits(3, 2, 6)
    sampler = make_sampler("low-confidence")
    first, _, first_history = run_block(sampler, masked, logits, steps=3)
    second, _, second_history = run_block(sampler, masked, logits, steps=3)
    assert torch.equal(first, second)
    assert all(torch.equal(a, b) for a, b in zip(first_history, second_history))
    # At temperature 0 every committed token is the argmax of its step's logits.
    for step, committed in enumerate(first_history):
        argmax = logits[step].argmax(dim=-1)
        assert torch.equal(first[committed], argmax[committed])


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_seeded_generator_reproducible(name):
    masked = torch.ones(2, 6, dtype=torch.bool)
    logits = random_logits(6, 2, 6, scale=1.0)
    sampler = make_sampler(name, **STOCHASTIC_OPTIONS[name])
    runs = []
    for _ in range(2):
        generator = torch.Generator().manual_seed(1234)
        tokens, _, history = run_block(sampler, masked, logits, steps=3, generator=generator)
        runs.append((tokens, torch.stack(history)))
    assert torch.equal(runs[0][0], runs[1][0])
    assert torch.equal(runs[0][1], runs[1][1])


def test_low_confidence_gumbel_matches_softmax():
    block_length = 4000
    temperature = 0.7
    row_logits = torch.tensor([1.0, 0.0, -1.0])
    logits = row_logits.expand(1, block_length, 3)
    masked = torch.ones(1, block_length, dtype=torch.bool)
    sampler = make_sampler("low-confidence", temperature=temperature)
    plan = sampler.begin_block(masked, 1)
    generator = torch.Generator().manual_seed(0)
    tokens, _ = sampler.step(plan, 0, logits, torch.zeros(1, block_length, dtype=torch.long), masked, generator)
    frequencies = torch.bincount(tokens[0], minlength=3).double() / block_length
    expected = torch.softmax(row_logits.double() / temperature, dim=-1)
    assert torch.allclose(frequencies, expected, atol=0.03)


def test_suppressed_token_never_proposed():
    logits = random_logits(1, 1, 16)[0]
    logits[..., 3] = 100.0
    masked = torch.ones(1, 16, dtype=torch.bool)
    sampler = make_sampler("low-confidence", suppressed_token_ids=(3,))
    plan = sampler.begin_block(masked, 1)
    tokens, committed = sampler.step(plan, 0, logits, torch.zeros(1, 16, dtype=torch.long), masked)
    assert committed.all()
    assert not (tokens == 3).any()


def test_confidence_excluded_token_committed_last():
    # Position 0 is certain to be token 2, which is excluded from confidence.
    probabilities = [[0.001, 0.001, 0.998], [0.6, 0.2, 0.2], [0.2, 0.5, 0.3]]
    logits = logits_for_probabilities(probabilities)
    masked = torch.ones(1, 3, dtype=torch.bool)
    sampler = make_sampler("low-confidence", confidence_excluded_token_ids=(2,))
    _, _, history = run_block(sampler, masked, [logits] * 3, steps=3)
    assert history[0].tolist() == [[False, True, False]]
    assert history[1].tolist() == [[False, False, True]]
    assert history[2].tolist() == [[True, False, False]]


def test_random_remasking_keeps_quotas():
    masked = torch.tensor([[True] * 7, [False, True] * 3 + [False]])
    sampler = make_sampler("random")
    generator = torch.Generator().manual_seed(5)
    _, left, history = run_block(sampler, masked, random_logits(2, 2, 7), steps=2, generator=generator)
    commits = torch.stack(history, dim=1).sum(dim=-1)
    assert commits.tolist() == [[4, 3], [2, 1]]
    assert not left.any()


# Fast-dLLM threshold and factor


def test_threshold_commits_all_above_tau():
    probabilities = [[0.95, 0.05], [0.92, 0.08], [0.6, 0.4], [0.97, 0.03]]
    logits = logits_for_probabilities(probabilities)
    masked = torch.tensor([[True, True, True, False]])
    sampler = make_sampler("threshold", threshold=0.9)
    plan = sampler.begin_block(masked, None)
    _, committed = sampler.step(plan, 0, logits, torch.zeros(1, 4, dtype=torch.long), masked)
    assert committed.tolist() == [[True, True, False, False]]


def test_threshold_commits_best_when_none_pass():
    probabilities = [[0.5, 0.5, 0.0], [0.7, 0.2, 0.1], [0.4, 0.3, 0.3]]
    logits = logits_for_probabilities(probabilities).expand(2, 3, 3).clone()
    masked = torch.tensor([[True, True, True], [False, False, False]])
    sampler = make_sampler("threshold", threshold=0.9)
    plan = sampler.begin_block(masked, None)
    _, committed = sampler.step(plan, 0, logits, torch.zeros(2, 3, dtype=torch.long), masked)
    assert committed[0].tolist() == [False, True, False]
    assert not committed[1].any()


def test_threshold_loop_finishes_block():
    masked = torch.ones(3, 9, dtype=torch.bool)
    masked[1, ::2] = False
    sampler = make_sampler("threshold")
    plan = sampler.begin_block(masked, None)
    assert plan.max_steps == 9
    _, left, history = run_block(sampler, masked, random_logits(9, 3, 9, scale=0.5), steps=None)
    assert not left.any()
    for committed, was_masked in zip(history, _masks_before(masked, history)):
        has_masks = was_masked.any(dim=-1)
        assert torch.equal(committed.any(dim=-1), has_masks)


def _masks_before(masked, history):
    masks = []
    for committed in history:
        masks.append(masked)
        masked = masked & ~committed
    return masks


def test_factor_rule_hand_built():
    confidence = torch.tensor(
        [
            [0.7, 0.99, 0.8, 0.9],  # sorted 0.99, 0.9, 0.8, 0.7: n = 3 since 0.7 < 1 - 1/5
            [0.3, 0.2, 0.1, 0.05],  # nothing passes, rank 1 is still accepted
            [0.99, 0.99, 0.99, 0.99],  # 0.99 >= 1 - 1/5 at every rank
            [0.99, 0.98, 0.97, 0.96],  # no masks in this row
        ],
        dtype=torch.float64,
    )
    masked = torch.ones(4, 4, dtype=torch.bool)
    masked[3] = False
    counts = factor_rule_counts(confidence, masked, factor=1.0)
    assert counts.tolist() == [3, 1, 4, 0]


def test_factor_rule_skips_unmasked():
    confidence = torch.tensor([[0.99, 0.9, 0.8, 0.7]], dtype=torch.float64)
    masked = torch.tensor([[False, True, True, True]])
    # Masked confidences 0.9, 0.8, 0.7 against thresholds 0.5, 0.667, 0.75.
    assert factor_rule_counts(confidence, masked, factor=1.0).tolist() == [2]


def test_factor_sampler_commits_prefix():
    probabilities = [[0.7, 0.3], [0.99, 0.01], [0.8, 0.2], [0.9, 0.1]]
    logits = logits_for_probabilities(probabilities)
    masked = torch.ones(1, 4, dtype=torch.bool)
    sampler = make_sampler("factor", factor=1.0)
    plan = sampler.begin_block(masked, None)
    _, committed = sampler.step(plan, 0, logits, torch.zeros(1, 4, dtype=torch.long), masked)
    assert committed.tolist() == [[False, True, True, True]]


# Dream orders


def dream_commit_counts(mask_count, steps):
    masked = torch.ones(1, mask_count, dtype=torch.bool)
    logits = random_logits(1, 1, mask_count)[0]
    _, left, history = run_block(make_sampler("entropy"), masked, [logits] * steps, steps=steps)
    assert not left.any()
    return [int(committed.sum()) for committed in history]


def test_dream_schedule_starves_step_zero():
    counts = dream_commit_counts(256, 256)
    assert counts[0] == 0
    assert counts[1:-1] == [1] * 254
    assert counts[-1] == 2


@pytest.mark.parametrize(
    ("steps", "first", "middle", "last"),
    [(128, 1, 2, 3), (64, 3, 4, 5)],
)
def test_dream_schedule_fewer_steps(steps, first, middle, last):
    counts = dream_commit_counts(256, steps)
    assert len(counts) == steps
    assert counts[0] == first
    assert set(counts[1:-1]) == {middle}
    assert counts[-1] == last
    assert sum(counts) == 256


def test_dream_step_fractions_grid():
    fractions = dream_step_fractions(4, 1e-3)
    grid = [1 - i * (1 - 1e-3) / 4 for i in range(5)]
    expected = [1 - grid[i + 1] / grid[i] for i in range(3)] + [1.0]
    assert torch.allclose(fractions.double(), torch.tensor(expected, dtype=torch.float64), atol=1e-6)
    assert fractions.dtype == torch.float32


def test_dream_transfer_counts_floor():
    fraction = torch.tensor(0.999 / 256, dtype=torch.float32)
    counts = dream_transfer_counts(torch.tensor([256, 512, 0]), fraction)
    assert counts.tolist() == [0, 1, 0]


def test_dream_counts_per_row():
    # Rows with different mask counts follow their own schedules.
    masked = torch.zeros(2, 16, dtype=torch.bool)
    masked[0] = True
    masked[1, :8] = True
    logits = random_logits(4, 2, 16)
    _, _, batch_history = run_block(make_sampler("maskgit_plus"), masked, logits, steps=4)
    batch_counts = torch.stack(batch_history).sum(dim=-1).T.tolist()
    alone = []
    for row in range(2):
        row_logits = [step_logits[row : row + 1] for step_logits in logits]
        _, _, history = run_block(make_sampler("maskgit_plus"), masked[row : row + 1], row_logits, steps=4)
        alone.append(torch.stack(history).sum(dim=-1).squeeze(-1).tolist())
    assert batch_counts == alone
    assert sum(batch_counts[1]) == 8


def test_top_p_keeps_first_crossing_token():
    probabilities = torch.tensor([0.15, 0.5, 0.05, 0.3], dtype=torch.float64)
    logits = probabilities.log()
    kept_07 = filter_top_p(logits, 0.7) > torch.finfo(torch.float64).min
    # Sorted: 0.5, 0.3, 0.15, 0.05 with cumulative 0.5, 0.8, 0.95, 1.0.
    assert kept_07.tolist() == [False, True, False, True]
    kept_04 = filter_top_p(logits, 0.4) > torch.finfo(torch.float64).min
    assert kept_04.tolist() == [False, True, False, False]
    kept_09 = filter_top_p(logits, 0.9) > torch.finfo(torch.float64).min
    assert kept_09.tolist() == [True, True, False, True]


def test_top_k_keeps_ties():
    logits = torch.tensor([1.0, 3.0, 2.0, 2.0, 0.0])
    kept = filter_top_k(logits, 2) > torch.finfo(torch.float32).min
    assert kept.tolist() == [False, True, True, True, False]


def test_token_distribution_renormalises():
    logits = torch.tensor([[[0.5, 0.3, 0.15, 0.05]]], dtype=torch.float64).log()
    probs = token_distribution(logits, temperature=0.0, top_p=0.7, top_k=None)
    assert torch.allclose(probs[0, 0], torch.tensor([0.625, 0.375, 0.0, 0.0], dtype=torch.float64))


def test_margin_confidence_hand_built():
    probs = torch.tensor([[[0.1, 0.6, 0.3], [0.34, 0.33, 0.33]]])
    margin = margin_confidence(probs)
    assert torch.allclose(margin, torch.tensor([[0.3, 0.01]]), atol=1e-6)


def test_negative_entropy_hand_built():
    probs = torch.tensor([[[1.0, 0.0], [0.5, 0.5]]], dtype=torch.float64)
    scores = negative_entropy(probs)
    assert scores[0, 0].item() == pytest.approx(math.log(1 + 1e-10))
    assert scores[0, 1].item() == pytest.approx(math.log(0.5 + 1e-10))


@pytest.mark.parametrize(
    ("name", "expected_first"),
    [("maskgit_plus", 2), ("topk_margin", 1), ("entropy", 0)],
)
def test_dream_confidence_orders(name, expected_first):
    # Position 0 has the lowest entropy, 1 the widest top-two margin, 2 the highest top probability.
    probabilities = [
        [0.49, 0.49, 0.02, 1e-12, 1e-12],
        [0.45, 0.1375, 0.1375, 0.1375, 0.1375],
        [0.5, 0.25, 0.25, 1e-12, 1e-12],
    ]
    logits = logits_for_probabilities(probabilities)
    masked = torch.ones(1, 3, dtype=torch.bool)
    sampler = make_sampler(name)
    # With 3 masks over 2 steps, step 0 commits floor(3 * 0.4995) = 1 position.
    plan = sampler.begin_block(masked, 2)
    _, committed = sampler.step(plan, 0, logits, torch.zeros(1, 3, dtype=torch.long), masked)
    assert committed.nonzero()[:, 1].tolist() == [expected_first]


def test_dream_alg_temp_commits_k():
    masked = torch.ones(2, 20, dtype=torch.bool)
    masked[1, :5] = False
    sampler = make_sampler("entropy", alg_temp=0.3)
    generator = torch.Generator().manual_seed(3)
    _, left, history = run_block(sampler, masked, random_logits(5, 2, 20), steps=5, generator=generator)
    assert not left.any()
    expected = []
    for row_masks in (20, 15):
        counts = []
        fractions = dream_step_fractions(5, 1e-3)
        for fraction in fractions:
            k = int(dream_transfer_counts(torch.tensor([row_masks]), fraction))
            counts.append(k)
            row_masks -= k
        expected.append(counts)
    assert torch.stack(history).sum(dim=-1).T.tolist() == expected


def test_origin_commit_rate():
    block_length = 4000
    masked = torch.ones(1, block_length, dtype=torch.bool)
    sampler = make_sampler("origin")
    plan = sampler.begin_block(masked, 4)
    logits = torch.zeros(1, block_length, VOCAB)
    generator = torch.Generator().manual_seed(0)
    tokens = torch.zeros(1, block_length, dtype=torch.long)
    _, committed = sampler.step(plan, 0, logits, tokens, masked, generator)
    rate = committed.float().mean().item()
    assert rate == pytest.approx(0.999 / 4, abs=0.03)
    _, last = sampler.step(plan, 3, logits, tokens, masked, generator)
    assert last.all()


def test_dream_sampling_matches_distribution():
    block_length = 4000
    row_logits = torch.tensor([2.0, 1.0, 0.0, -5.0])
    logits = row_logits.expand(1, block_length, 4)
    masked = torch.ones(1, block_length, dtype=torch.bool)
    sampler = make_sampler("origin", temperature=0.5, top_k=3)
    plan = sampler.begin_block(masked, 1)
    generator = torch.Generator().manual_seed(1)
    tokens, _ = sampler.step(plan, 0, logits, torch.zeros(1, block_length, dtype=torch.long), masked, generator)
    frequencies = torch.bincount(tokens[0], minlength=4).double() / block_length
    expected = torch.softmax(torch.tensor([4.0, 2.0, 0.0, -math.inf], dtype=torch.float64), dim=-1)
    assert torch.allclose(frequencies, expected, atol=0.03)


# Batch independence


@pytest.mark.parametrize("stochastic", [False, True])
@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_batch_rows_match_single_rows(name, stochastic):
    batch, block_length, steps = 3, 10, 4
    masked = torch.ones(batch, block_length, dtype=torch.bool)
    masked[1, ::3] = False
    masked[2] = False
    max_steps = block_length
    logits = random_logits(max_steps, batch, block_length, seed=7, scale=1.5)
    options = STOCHASTIC_OPTIONS[name] if stochastic else {}
    seeds = [11, 22, 33]

    # "random" and "origin" draw random numbers even with default options.
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    batch_sampler = make_sampler(name, **options)
    batch_tokens, batch_left, _ = run_block(batch_sampler, masked, logits, steps, generators)

    for row in range(batch):
        generator = torch.Generator().manual_seed(seeds[row])
        row_logits = [step_logits[row : row + 1] for step_logits in logits]
        tokens, left, _ = run_block(make_sampler(name, **options), masked[row : row + 1], row_logits, steps, generator)
        assert torch.equal(batch_tokens[row : row + 1], tokens), f"row {row} tokens differ"
        assert torch.equal(batch_left[row : row + 1], left), f"row {row} masks differ"
    assert torch.equal(batch_tokens[2], torch.full((block_length,), -1)), "a row without masks must not change"


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_step_leaves_inputs_unchanged(name):
    masked = torch.ones(2, 5, dtype=torch.bool)
    tokens = torch.full((2, 5), -1)
    logits = random_logits(1, 2, 5)[0]
    sampler = make_sampler(name, **STOCHASTIC_OPTIONS[name])
    plan = sampler.begin_block(masked, 5)
    masked_before, tokens_before, logits_before = masked.clone(), tokens.clone(), logits.clone()
    new_tokens, committed = sampler.step(plan, 0, logits, tokens, masked, torch.Generator().manual_seed(0))
    assert torch.equal(masked, masked_before)
    assert torch.equal(tokens, tokens_before)
    assert torch.equal(logits, logits_before)
    assert new_tokens.dtype == torch.long
    assert committed.dtype == torch.bool


# Options and registry


def test_threshold_option_rejected():
    with pytest.raises(ValueError, match=r"threshold=1.5 is invalid: use a value in \(0, 1\]"):
        ThresholdOptions(threshold=1.5)


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: FactorOptions(factor=0.0), "factor=0.0"),
        (lambda: LLaDAOptions(temperature=-1.0), "temperature=-1.0"),
        (lambda: LLaDAOptions(suppressed_token_ids=(-3,)), "-3"),
        (lambda: DreamConfidenceOptions(top_p=0.0), "top_p=0.0"),
        (lambda: DreamConfidenceOptions(top_k=0), "top_k=0"),
        (lambda: DreamConfidenceOptions(alg_temp=-0.5), "alg_temp=-0.5"),
        (lambda: DreamConfidenceOptions(eps=1.0), "eps=1.0"),
    ],
)
def test_invalid_options_rejected(factory, message):
    with pytest.raises(ValueError, match=message):
        factory()


def test_make_sampler_unknown_name():
    with pytest.raises(ValueError, match="unknown sampler 'greedy'"):
        make_sampler("greedy")


def test_make_sampler_unknown_option():
    with pytest.raises(ValueError, match="has no option 'alg_temp'"):
        make_sampler("low-confidence", alg_temp=0.1)


def test_make_sampler_fresh_instances():
    first = make_sampler("entropy", top_p=0.95)
    second = make_sampler("entropy", top_p=0.95)
    assert first is not second
    assert first.options.top_p == 0.95


def test_quota_sampler_requires_steps():
    with pytest.raises(ValueError, match="steps=None is invalid"):
        make_sampler("low-confidence").begin_block(torch.ones(1, 4, dtype=torch.bool), None)


def test_step_rejects_mismatched_logits():
    sampler = make_sampler("low-confidence")
    masked = torch.ones(1, 4, dtype=torch.bool)
    plan = sampler.begin_block(masked, 2)
    with pytest.raises(ValueError, match="logits has shape"):
        sampler.step(plan, 0, torch.zeros(1, 5, VOCAB), torch.zeros(1, 4, dtype=torch.long), masked)


def test_generator_count_must_match_batch():
    sampler = make_sampler("random")
    masked = torch.ones(2, 4, dtype=torch.bool)
    plan = sampler.begin_block(masked, 2)
    with pytest.raises(ValueError, match="got 1 generators for a batch of 2 rows"):
        logits = torch.zeros(2, 4, VOCAB)
        tokens = torch.zeros(2, 4, dtype=torch.long)
        sampler.step(plan, 0, logits, tokens, masked, [torch.Generator()])


# Logit shift


def test_align_logits_shift_one():
    raw = torch.arange(2 * 4 * 3, dtype=torch.float32).view(2, 4, 3)
    aligned = align_logits(raw, 1)
    assert torch.equal(aligned[:, 0], raw[:, 0])
    assert torch.equal(aligned[:, 1:], raw[:, :-1])


def test_align_logits_shift_zero_is_identity():
    raw = torch.randn(1, 5, 3)
    assert align_logits(raw, 0) is raw


def test_block_logits_matches_aligned_slice():
    raw = torch.randn(2, 9, 4)
    for shift in (0, 1):
        for start, end in [(1, 9), (3, 7), (5, 5)]:
            expected = align_logits(raw, shift)[:, start:end]
            assert torch.equal(block_logits(raw, start, end, shift), expected)
    assert torch.equal(block_logits(raw, 3, 6, 1), raw[:, 2:5])
    assert torch.equal(block_logits(raw, 0, 4, 0), raw[:, 0:4])


def test_block_logits_shift_needs_previous_row():
    with pytest.raises(ValueError, match="start=0 with shift=1"):
        block_logits(torch.randn(1, 4, 3), 0, 2, 1)


def test_block_logits_range_checked():
    with pytest.raises(ValueError, match="start=2, end=6"):
        block_logits(torch.randn(1, 4, 3), 2, 6, 0)


def test_shift_value_checked():
    with pytest.raises(ValueError, match="shift=2 is invalid"):
        align_logits(torch.randn(1, 4, 3), 2)


# Stopping


def test_block_is_finished():
    eos, eot = 5, 6
    block = torch.tensor([[5, 5, 5], [5, 6, 5], [5, 1, 5], [1, 2, 3]])
    finished = block_is_finished(block, torch.tensor([eos, eot]))
    assert finished.tolist() == [True, True, False, False]


def test_block_is_finished_rejects_empty_block():
    with pytest.raises(ValueError, match="block_length >= 1"):
        block_is_finished(torch.zeros(2, 0, dtype=torch.long), torch.tensor([5]))
