"""Fast-dLLM parallel decoding: commit as many positions per step as confidence allows.

Both rules reuse LLaDA's token drawing and float64 confidence, always commit
the most confident masked position of a row that has masks, and run until the
block has no masks, so the step count has no effect (``uses_steps`` is False).
Each step commits at least one position per row with masks, so Lb steps
always suffice for a block of length Lb.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from wavefilter_cli.sampling.base import (
    BlockPlan,
    RandomSource,
    Sampler,
    check_masked,
    check_step_inputs,
    rank_masked_first,
)
from wavefilter_cli.sampling.llada import LLaDAOptions, propose_llada


@dataclass(frozen=True)
class ThresholdOptions(LLaDAOptions):
    """Options of the confidence-threshold rule.

    Attributes:
        threshold: τ in (0, 1]. Every masked position whose confidence is at
            least τ is committed. 0.9 is the setting of Fast-dLLM's evaluation scripts.
    """

    threshold: float = 0.9

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.threshold <= 1:
            raise ValueError(f"threshold={self.threshold} is invalid: use a value in (0, 1]")


@dataclass(frozen=True)
class FactorOptions(LLaDAOptions):
    """Options of the factor rule.

    Attributes:
        factor: f > 0. With confidences sorted c(1) >= c(2) >= …, the top n
            positions are committed for the largest n with c(n) >= 1 - f / (n + 1).
            Larger values commit more per step. The default 1.0 is this
            package's choice, not a published setting.
    """

    factor: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not math.isfinite(self.factor) or self.factor <= 0:
            raise ValueError(f"factor={self.factor} is invalid: use a finite value > 0")


class _UntilUnmaskedSampler(Sampler):
    """Shared block plan of the rules that run until the block has no masks."""

    uses_steps = False

    def begin_block(self, masked: Tensor, steps: int | None = None) -> BlockPlan:
        """Plan up to Lb steps and ignore ``steps``, as Fast-dLLM does."""
        check_masked(masked)
        batch, block_length = masked.shape
        return BlockPlan(batch_size=batch, block_length=block_length, max_steps=block_length)


class ThresholdSampler(_UntilUnmaskedSampler):
    """Commit {most confident masked position} ∪ {masked positions with confidence >= τ} per row."""

    name = "threshold"
    options_type = ThresholdOptions

    def step(
        self,
        plan: BlockPlan,
        step: int,
        logits: Tensor,
        tokens: Tensor,
        masked: Tensor,
        generator: RandomSource = None,
    ) -> tuple[Tensor, Tensor]:
        """Commit every masked position at or above the threshold, and at least the best one."""
        check_step_inputs(plan, step, logits, tokens, masked)
        candidates, confidence = propose_llada(logits, self.options, generator)
        best = rank_masked_first(confidence, masked) == 0
        committed = masked & (best | (confidence >= self.options.threshold))
        return torch.where(committed, candidates, tokens), committed


class FactorSampler(_UntilUnmaskedSampler):
    """Commit the top n masked positions per row, n the largest rank with c(n) >= 1 - f / (n + 1)."""

    name = "factor"
    options_type = FactorOptions

    def step(
        self,
        plan: BlockPlan,
        step: int,
        logits: Tensor,
        tokens: Tensor,
        masked: Tensor,
        generator: RandomSource = None,
    ) -> tuple[Tensor, Tensor]:
        """Commit the longest prefix of the confidence ranking that passes the factor rule."""
        check_step_inputs(plan, step, logits, tokens, masked)
        candidates, confidence = propose_llada(logits, self.options, generator)
        ranks = rank_masked_first(confidence, masked)
        counts = _count_factor_prefix(confidence, masked, ranks, self.options.factor)
        committed = masked & (ranks < counts.unsqueeze(-1))
        return torch.where(committed, candidates, tokens), committed


def factor_rule_counts(confidence: Tensor, masked: Tensor, factor: float) -> Tensor:
    """Count the positions the factor rule accepts in each row.

    The thresholds 1 - f / (n + 1) rise with n while sorted confidences fall,
    so the accepted ranks form a prefix. Rank 1 is always accepted when the
    row has a mask.

    Args:
        confidence: (B, Lb) float confidences.
        masked: (B, Lb) bool.
        factor: f > 0.

    Returns:
        (B,) int64 accepted count per row: 0 for rows without masks, else >= 1.
    """
    return _count_factor_prefix(confidence, masked, rank_masked_first(confidence, masked), factor)


def _count_factor_prefix(confidence: Tensor, masked: Tensor, ranks: Tensor, factor: float) -> Tensor:
    order = torch.argsort(ranks, dim=-1)
    sorted_confidence = confidence.gather(-1, order).to(torch.float64)
    sorted_masked = masked.gather(-1, order)

    rank_numbers = torch.arange(1, confidence.shape[-1] + 1, device=confidence.device, dtype=torch.float64)
    thresholds = 1.0 - factor / (rank_numbers + 1.0)
    passes = sorted_masked & (sorted_confidence >= thresholds)
    passes[:, 0] = sorted_masked[:, 0]
    accepted = torch.cumprod(passes.to(torch.int64), dim=-1)
    return accepted.sum(dim=-1)
