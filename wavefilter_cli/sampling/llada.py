"""LLaDA remasking: fixed per-step quotas with low-confidence or random order.

Follows ``generate()`` of ML-GSAI/LLaDA at commit 65cbed29: tokens are drawn
by Gumbel-max on float64 logits, each block of M masks gets s steps, and step
t commits the n_t = floor(M / s) + [t < M mod s] masked positions ranked
highest, so the remainder goes to the earliest steps.
"""

from __future__ import annotations

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
    check_token_ids,
    select_top_per_row,
    uniform_noise,
)


@dataclass(frozen=True)
class LLaDAOptions:
    """Token drawing options shared by the LLaDA and Fast-dLLM samplers.

    Attributes:
        temperature: 0 takes the argmax, and values above 0 sample from softmax(logits / T)
            with LLaDA's float64 Gumbel-max, exp(l) / (-log U)^T.
        suppressed_token_ids: tokens whose logits are set to -inf before drawing,
            so they are never proposed (LLaDA's ``logits_eos_inf`` with the EOS id).
        confidence_excluded_token_ids: tokens whose logits are set to -inf after
            drawing and before the confidence softmax. A position that drew one of
            them gets confidence 0 and is committed last, and the other
            probabilities are renormalised without them. LLaDA's
            ``confidence_eos_eot_inf`` does this for EOS and EoT at temperature 0
            but only for EoT above 0, so pass the ids that match the temperature.
    """

    temperature: float = 0.0
    suppressed_token_ids: tuple[int, ...] = ()
    confidence_excluded_token_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        check_temperature(self.temperature)
        suppressed = check_token_ids("suppressed_token_ids", self.suppressed_token_ids)
        excluded = check_token_ids("confidence_excluded_token_ids", self.confidence_excluded_token_ids)
        object.__setattr__(self, "suppressed_token_ids", suppressed)
        object.__setattr__(self, "confidence_excluded_token_ids", excluded)


def llada_quotas(mask_counts: Tensor, steps: int) -> Tensor:
    """Split each row's mask count over ``steps`` steps, remainder to the earliest steps.

    Args:
        mask_counts: (B,) int64 masks per row at the start of the block.
        steps: steps for the block, >= 1.

    Returns:
        (B, steps) int64 with n[r, t] = floor(M_r / steps) + [t < M_r mod steps];
        each row sums to M_r.
    """
    steps = check_steps(steps)
    base = torch.div(mask_counts, steps, rounding_mode="floor")
    remainder = mask_counts - base * steps
    step_index = torch.arange(steps, device=mask_counts.device)
    extra = (step_index.unsqueeze(0) < remainder.unsqueeze(-1)).to(torch.int64)
    return base.unsqueeze(-1).to(torch.int64) + extra


def fill_token_ids(logits: Tensor, token_ids: tuple[int, ...], value: float) -> Tensor:
    """Return a copy of (…, V) ``logits`` with the listed vocabulary columns set to ``value``."""
    vocab_size = logits.shape[-1]
    if max(token_ids) >= vocab_size:
        raise ValueError(
            f"token id {max(token_ids)} is outside the vocabulary of {vocab_size} logits: "
            "pass ids of this model's tokenizer"
        )
    index = torch.tensor(token_ids, dtype=torch.int64, device=logits.device)
    return logits.index_fill(-1, index, value)


def draw_llada_tokens(logits: Tensor, temperature: float, generator: RandomSource) -> Tensor:
    """Pick one token per position: argmax at temperature 0, else float64 Gumbel-max.

    The formula is LLaDA's exp(l) / (-log U)^T, whose argmax is a sample from
    softmax(l / T). Like LLaDA, it overflows to inf for logits above about 709.

    Args:
        logits: (B, Lb, V) float logits.

    Returns:
        (B, Lb) int64 token ids.
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    noise = uniform_noise(tuple(logits.shape), generator, dtype=torch.float64, device=logits.device)
    noise.log_().neg_().pow_(temperature)
    scores = logits.to(torch.float64, copy=True).exp_().div_(noise)
    return scores.argmax(dim=-1)


def token_probability(logits: Tensor, token_ids: Tensor) -> Tensor:
    """Return softmax(logits)[token] per position, computed in float64.

    Gathering the token's logit and subtracting a float64 logsumexp keeps one
    float64 copy of the logits instead of a full softmax tensor.

    Args:
        logits: (B, Lb, V) float logits.
        token_ids: (B, Lb) int64.

    Returns:
        (B, Lb) float64 probabilities.
    """
    log_normaliser = torch.logsumexp(logits.to(torch.float64), dim=-1)
    chosen = logits.gather(-1, token_ids.unsqueeze(-1)).squeeze(-1).to(torch.float64)
    return (chosen - log_normaliser).exp()


def propose_llada(
    logits: Tensor,
    options: LLaDAOptions,
    generator: RandomSource,
    *,
    random_confidence: bool = False,
) -> tuple[Tensor, Tensor]:
    """Draw candidate tokens and their float64 confidences for every block position.

    The random draws follow LLaDA's order: Gumbel noise first (only when the
    temperature is above 0), then the uniform confidences of random remasking.

    Args:
        logits: (B, Lb, V) float logits.
        random_confidence: use Uniform[0, 1) confidences (LLaDA's ``random``
            remasking) instead of the drawn token's probability.

    Returns:
        ``(candidates, confidence)``: (B, Lb) int64 and (B, Lb) float64.
    """
    if options.suppressed_token_ids:
        logits = fill_token_ids(logits, options.suppressed_token_ids, float("-inf"))
    candidates = draw_llada_tokens(logits, options.temperature, generator)

    if random_confidence:
        batch, block_length = candidates.shape
        # LLaDA draws these in float32, the torch.rand default.
        confidence = uniform_noise((batch, block_length), generator, dtype=torch.float32, device=logits.device)
        return candidates, confidence.to(torch.float64)

    if options.confidence_excluded_token_ids:
        logits = fill_token_ids(logits, options.confidence_excluded_token_ids, float("-inf"))
    return candidates, token_probability(logits, candidates)


class LowConfidenceSampler(Sampler):
    """LLaDA ``low_confidence`` remasking: commit the n_t most probable masked positions per row."""

    name = "low-confidence"
    options_type = LLaDAOptions
    random_confidence = False

    def begin_block(self, masked: Tensor, steps: int | None) -> BlockPlan:
        """Plan ``steps`` steps with per-row quotas that sum to each row's mask count."""
        check_masked(masked)
        steps = check_steps(steps)
        batch, block_length = masked.shape
        quotas = llada_quotas(masked.sum(dim=-1), steps)
        return BlockPlan(batch_size=batch, block_length=block_length, max_steps=steps, quotas=quotas)

    def step(
        self,
        plan: BlockPlan,
        step: int,
        logits: Tensor,
        tokens: Tensor,
        masked: Tensor,
        generator: RandomSource = None,
    ) -> tuple[Tensor, Tensor]:
        """Commit this step's quota of top-ranked masked positions in every row."""
        check_step_inputs(plan, step, logits, tokens, masked)
        assert plan.quotas is not None, "begin_block of a quota sampler always sets quotas"
        candidates, confidence = propose_llada(
            logits, self.options, generator, random_confidence=self.random_confidence
        )
        # The plan assumes the caller clears exactly the committed positions. The
        # clamp keeps a row from over-committing if masks were cleared elsewhere.
        counts = torch.minimum(plan.quotas[:, step], masked.sum(dim=-1))
        committed = select_top_per_row(confidence, masked, counts)
        return torch.where(committed, candidates, tokens), committed


class RandomRemaskingSampler(LowConfidenceSampler):
    """LLaDA ``random`` remasking: the same quotas, filled in uniformly random order."""

    name = "random"
    random_confidence = True
