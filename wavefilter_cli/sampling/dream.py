"""Dream ``diffusion_generate`` orders: ``origin`` and the confidence algorithms.

Dream spends S steps on a time grid t_i = 1 - i (1 - ε) / S, i = 0 … S, with
t = t_i and s = t_(i+1) at step i. The confidence algorithms (``maskgit_plus``,
``topk_margin``, ``entropy``) commit k = floor(N · (1 - s/t)) positions per row
and step, and floor(N) on the last step, where N is the number of masks left.
``origin`` commits each masked position with probability 1 - s/t (1 on the
last step).

Deviation from Dream: Dream uses one shared N, the batch's total masks
divided by B, while here N is each row's own count, so a row behaves exactly
as it would alone. The two agree at B = 1 and whenever all rows hold the same
number of masks, as with left-padded prompts.

The floor starves step 0 when N = S: 256 masks over 256 steps give 0 commits
at step 0, then 1 per step and 2 on the last step. The grid and k use
float32 as Dream does.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor

from wavefilter_cli.sampling.base import (
    BlockPlan,
    RandomSource,
    Sampler,
    check_masked,
    check_step_inputs,
    check_steps,
    check_temperature,
    gumbel_noise,
    select_top_per_row,
    uniform_noise,
)
from wavefilter_cli.sampling.dream_tokens import (
    draw_tokens,
    margin_confidence,
    negative_entropy,
    token_distribution,
)


@dataclass(frozen=True)
class DreamOptions:
    """Token drawing and schedule options shared by all Dream orders.

    Attributes:
        temperature: 0 takes the argmax of π, and values above 0 sample from softmax(logits / T).
        top_p: nucleus mass in (0, 1], or None for no nucleus filter.
        top_k: kept logits per position, >= 1, or None for no top-k filter.
        eps: ε, the last time of the grid, in (0, 1); Dream's default is 1e-3.
    """

    temperature: float = 0.0
    top_p: float | None = None
    top_k: int | None = None
    eps: float = 1e-3

    def __post_init__(self) -> None:
        check_temperature(self.temperature)
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p={self.top_p} is invalid: use a value in (0, 1], or None to disable it")
        valid_top_k = isinstance(self.top_k, int) and not isinstance(self.top_k, bool) and self.top_k >= 1
        if self.top_k is not None and not valid_top_k:
            raise ValueError(f"top_k={self.top_k!r} is invalid: use an integer >= 1, or None to disable it")
        if not 0 < self.eps < 1:
            raise ValueError(f"eps={self.eps} is invalid: use a value in (0, 1)")


@dataclass(frozen=True)
class DreamConfidenceOptions(DreamOptions):
    """Options of the confidence algorithms.

    Attributes:
        alg_temp: None or 0 commits the top-k confidences. Values above 0 sample the k
            positions without replacement from softmax(confidence / alg_temp).
    """

    alg_temp: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.alg_temp is not None and not 0 <= self.alg_temp < float("inf"):
            raise ValueError(f"alg_temp={self.alg_temp} is invalid: use a finite value >= 0, or None for top-k")


def dream_step_fractions(steps: int, eps: float, device: torch.device | str = "cpu") -> Tensor:
    """Return the share 1 - s/t of the remaining masks each step commits.

    Args:
        steps: S, the number of steps, >= 1.
        eps: ε, the last time of the grid.

    Returns:
        (S,) float32: 1 - t_(i+1) / t_i for i < S - 1 and 1 for the last step.
    """
    steps = check_steps(steps)
    grid = torch.linspace(1, eps, steps + 1, dtype=torch.float32, device=device)
    fractions = 1 - grid[1:] / grid[:-1]
    fractions[-1] = 1.0
    return fractions


def dream_transfer_counts(mask_counts: Tensor, fraction: Tensor) -> Tensor:
    """Return k = floor(N · fraction) per row, multiplied in float32 as Dream does.

    Args:
        mask_counts: (B,) int64 masks left per row.
        fraction: 0-d float32 share from ``dream_step_fractions``.

    Returns:
        (B,) int64, never above the row's mask count.
    """
    return (mask_counts.to(torch.float32) * fraction).to(torch.int64)


class _DreamSampler(Sampler):
    """Shared block plan of the Dream orders: S steps on Dream's time grid."""

    def begin_block(self, masked: Tensor, steps: int | None) -> BlockPlan:
        """Plan ``steps`` steps with the per-step shares 1 - s/t."""
        check_masked(masked)
        steps = check_steps(steps)
        batch, block_length = masked.shape
        fractions = dream_step_fractions(steps, self.options.eps, masked.device)
        return BlockPlan(batch_size=batch, block_length=block_length, max_steps=steps, step_fractions=fractions)


class DreamOriginSampler(_DreamSampler):
    """Dream ``origin``: commit each masked position independently with probability 1 - s/t."""

    name = "origin"
    options_type = DreamOptions

    def step(
        self,
        plan: BlockPlan,
        step: int,
        logits: Tensor,
        tokens: Tensor,
        masked: Tensor,
        generator: RandomSource = None,
    ) -> tuple[Tensor, Tensor]:
        """Choose positions by a per-position coin flip, then draw their tokens."""
        check_step_inputs(plan, step, logits, tokens, masked)
        assert plan.step_fractions is not None, "begin_block of a Dream sampler always sets step_fractions"
        # Dream draws the coin flips before the tokens; the order is kept.
        coins = uniform_noise(tuple(masked.shape), generator, dtype=torch.float32, device=masked.device)
        committed = masked & (coins < plan.step_fractions[step])
        probs = token_distribution(logits, self.options.temperature, self.options.top_p, self.options.top_k)
        candidates, _ = draw_tokens(probs, self.options.temperature, generator)
        return torch.where(committed, candidates, tokens), committed


class DreamConfidenceSampler(_DreamSampler):
    """Base of Dream's confidence orders: commit the k highest-scoring masked positions per row.

    Subclasses define ``confidence``. With ``alg_temp`` > 0 the k positions
    are sampled without replacement from softmax(confidence / alg_temp) by
    adding Gumbel noise and taking the top k, which has the same distribution
    as Dream's ``torch.multinomial`` draw but a different random stream.
    """

    options_type = DreamConfidenceOptions

    @abstractmethod
    def confidence(self, probs: Tensor, chosen_probability: Tensor) -> Tensor:
        """Score each position from π (B, Lb, V) and π[token] (B, Lb). Higher scores commit first."""

    def step(
        self,
        plan: BlockPlan,
        step: int,
        logits: Tensor,
        tokens: Tensor,
        masked: Tensor,
        generator: RandomSource = None,
    ) -> tuple[Tensor, Tensor]:
        """Draw tokens, score positions, and commit k = floor(N · (1 - s/t)) per row."""
        check_step_inputs(plan, step, logits, tokens, masked)
        assert plan.step_fractions is not None, "begin_block of a Dream sampler always sets step_fractions"
        options = self.options
        probs = token_distribution(logits, options.temperature, options.top_p, options.top_k)
        candidates, chosen_probability = draw_tokens(probs, options.temperature, generator)
        scores = self.confidence(probs, chosen_probability).masked_fill(~masked, float("-inf"))

        if options.alg_temp:
            noise = gumbel_noise(tuple(masked.shape), generator, dtype=torch.float64, device=masked.device)
            scores = scores.to(torch.float64) / options.alg_temp + noise

        counts = dream_transfer_counts(masked.sum(dim=-1), plan.step_fractions[step])
        committed = select_top_per_row(scores, masked, counts)
        return torch.where(committed, candidates, tokens), committed


class MaskGitPlusSampler(DreamConfidenceSampler):
    """Dream ``maskgit_plus``: confidence is the probability of the drawn token."""

    name = "maskgit_plus"

    def confidence(self, probs: Tensor, chosen_probability: Tensor) -> Tensor:
        return chosen_probability


class TopKMarginSampler(DreamConfidenceSampler):
    """Dream ``topk_margin``: confidence is the gap between the two most likely tokens."""

    name = "topk_margin"

    def confidence(self, probs: Tensor, chosen_probability: Tensor) -> Tensor:
        return margin_confidence(probs)


class EntropySampler(DreamConfidenceSampler):
    """Dream ``entropy``: confidence is the negative entropy of π."""

    name = "entropy"

    def confidence(self, probs: Tensor, chosen_probability: Tensor) -> Tensor:
        return negative_entropy(probs)
