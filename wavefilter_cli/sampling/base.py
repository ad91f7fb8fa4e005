"""Sampler contract, block plans, random draws and per-row selection helpers.

A sampler decides, once per denoising step, which masked positions of the
current diffusion block to commit and which tokens go there. The generation
loop drives it as follows (B batch rows, Lb block length, V vocabulary)::

    plan = sampler.begin_block(masked, steps)          # masked: (B, Lb) bool
    for step in range(plan.max_steps):                 # stop early once nothing is masked
        logits = ...                                   # (B, Lb, V), aligned to block positions
        tokens, committed = sampler.step(plan, step, logits, tokens, masked, generator)
        masked = masked & ~committed

Every rule works per row: quotas, thresholds and rankings of one row never
depend on another row, so a row gets the same result in a batch as alone.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

RandomSource = torch.Generator | Sequence[torch.Generator] | None
"""Random number source of a stochastic step.

``None`` uses the global torch RNG and one ``torch.Generator`` draws the
whole batch at once: both are reproducible for a fixed batch, but a row's
draws depend on its position in the batch. A sequence of B generators gives
every row its own stream, so row r of a batch draws exactly what a
single-row run with generator r draws.
"""


@dataclass(frozen=True)
class BlockPlan:
    """Per-block schedule returned by ``Sampler.begin_block``.

    Attributes:
        batch_size: B, the number of rows.
        block_length: Lb, the number of positions in the block.
        max_steps: the maximum number of steps of the block loop, which may
            stop earlier once no position is masked.
        quotas: (B, max_steps) int64 commits per row and step for samplers
            with a fixed quota, else None.
        step_fractions: (max_steps,) float32 share of the remaining masks to
            commit at each step (Dream's 1 - s/t, and 1 on the last step)
            for Dream samplers, else None.
    """

    batch_size: int
    block_length: int
    max_steps: int
    quotas: Tensor | None = None
    step_fractions: Tensor | None = None


class Sampler(ABC):
    """One remasking rule: a fresh instance per generation, configured by an options dataclass.

    Subclasses set ``name`` (the registry key), ``options_type`` (the options
    dataclass) and ``uses_steps`` (False where the rule ignores the step count
    and runs until the block has no masks).
    """

    name: ClassVar[str]
    options_type: ClassVar[type]
    uses_steps: ClassVar[bool] = True

    def __init__(self, options: Any = None) -> None:
        if options is None:
            options = self.options_type()
        if not isinstance(options, self.options_type):
            raise TypeError(
                f"sampler {self.name!r} takes {self.options_type.__name__}, "
                f"got {type(options).__name__}"
            )
        self.options = options

    @abstractmethod
    def begin_block(self, masked: Tensor, steps: int | None) -> BlockPlan:
        """Plan one block.

        Args:
            masked: (B, Lb) bool, True where the block position still holds the mask token.
            steps: denoising steps for this block; None is accepted only by
                samplers with ``uses_steps`` False.
        """

    @abstractmethod
    def step(
        self,
        plan: BlockPlan,
        step: int,
        logits: Tensor,
        tokens: Tensor,
        masked: Tensor,
        generator: RandomSource = None,
    ) -> tuple[Tensor, Tensor]:
        """Commit tokens for one denoising step.

        Args:
            plan: the plan from ``begin_block`` for this block.
            step: step index in [0, plan.max_steps).
            logits: (B, Lb, V) float logits aligned to the block positions
                (Dream's one-position shift already applied).
            tokens: (B, Lb) int64 current block tokens; left unchanged.
            masked: (B, Lb) bool, True where the position is still masked.
            generator: random source for stochastic rules (see ``RandomSource``).

        Returns:
            ``(new_tokens, committed)``: (B, Lb) int64 block tokens with this
            step's commits written, and (B, Lb) bool marking those commits.
            Only masked positions are ever committed, and a row with no
            masked position commits nothing.
        """


def uniform_noise(
    shape: tuple[int, ...],
    generator: RandomSource,
    *,
    dtype: torch.dtype,
    device: torch.device,
) -> Tensor:
    """Draw Uniform[0, 1) numbers of ``shape``, whose first dimension is the batch.

    With a sequence of generators, row r is drawn from generator r with the
    row's own shape, which consumes that stream exactly as a single-row draw.
    """
    if generator is None or isinstance(generator, torch.Generator):
        return torch.rand(shape, generator=generator, dtype=dtype, device=device)
    if len(generator) != shape[0]:
        raise ValueError(
            f"got {len(generator)} generators for a batch of {shape[0]} rows: "
            "pass one generator per row, a single generator, or None"
        )
    rows = [
        torch.rand(shape[1:], generator=row_generator, dtype=dtype, device=device)
        for row_generator in generator
    ]
    return torch.stack(rows)


def gumbel_noise(
    shape: tuple[int, ...],
    generator: RandomSource,
    *,
    dtype: torch.dtype,
    device: torch.device,
) -> Tensor:
    """Draw standard Gumbel noise -log(-log U), U ~ Uniform[0, 1), in ``dtype``."""
    noise = uniform_noise(shape, generator, dtype=dtype, device=device)
    return noise.log_().neg_().log_().neg_()


def rank_masked_first(confidence: Tensor, masked: Tensor) -> Tensor:
    """Rank block positions per row: masked ones by descending confidence, then the rest.

    Ties keep the lower position first. Putting every masked position ahead
    of every unmasked one means the top n ranks are masked whenever the row
    has n masks, even if some masked confidences are -inf.

    Args:
        confidence: (B, Lb) float scores.
        masked: (B, Lb) bool.

    Returns:
        (B, Lb) int64 rank of each position, 0 for the best.
    """
    order = torch.argsort(confidence, dim=-1, descending=True, stable=True)
    masked_in_order = masked.gather(-1, order).to(torch.int8)
    # A stable sort on the mask flag keeps the confidence order inside each group.
    regroup = torch.argsort(masked_in_order, dim=-1, descending=True, stable=True)
    order = order.gather(-1, regroup)
    positions = torch.arange(order.shape[-1], device=order.device).expand_as(order)
    return torch.empty_like(order).scatter_(-1, order, positions)


def select_top_per_row(confidence: Tensor, masked: Tensor, counts: Tensor) -> Tensor:
    """Mark the ``counts[r]`` most confident masked positions of each row r.

    Args:
        confidence: (B, Lb) float scores.
        masked: (B, Lb) bool.
        counts: (B,) int64 commits per row. A count above the row's mask
            count commits every mask of the row.

    Returns:
        (B, Lb) bool, True at the chosen positions.
    """
    ranks = rank_masked_first(confidence, masked)
    return masked & (ranks < counts.unsqueeze(-1))


def check_masked(masked: Tensor) -> None:
    """Raise ValueError unless ``masked`` is a (B, Lb) bool tensor."""
    if masked.dtype != torch.bool or masked.dim() != 2:
        raise ValueError(
            f"masked has dtype {masked.dtype} and shape {tuple(masked.shape)}: "
            "pass a (batch, block_length) bool tensor"
        )


def check_steps(steps: int | None) -> int:
    """Return ``steps`` after checking it is a positive int."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r} is invalid: use an integer >= 1")
    return steps


def check_step_inputs(plan: BlockPlan, step: int, logits: Tensor, tokens: Tensor, masked: Tensor) -> None:
    """Raise ValueError when the step index or a tensor shape does not match the plan.

    Only shapes and dtypes are read, so the check never waits on the device.
    """
    if not 0 <= step < plan.max_steps:
        raise ValueError(f"step={step} is out of range: this block plan has steps 0 to {plan.max_steps - 1}")
    block_shape = (plan.batch_size, plan.block_length)
    if tuple(masked.shape) != block_shape or masked.dtype != torch.bool:
        raise ValueError(
            f"masked has dtype {masked.dtype} and shape {tuple(masked.shape)}: "
            f"pass a bool tensor of shape {block_shape}, as given to begin_block"
        )
    if tuple(tokens.shape) != block_shape:
        raise ValueError(f"tokens has shape {tuple(tokens.shape)}: pass the block tokens, shape {block_shape}")
    if logits.dim() != 3 or tuple(logits.shape[:2]) != block_shape:
        raise ValueError(
            f"logits has shape {tuple(logits.shape)}: pass block-aligned logits of shape "
            f"({plan.batch_size}, {plan.block_length}, vocab)"
        )
    if not logits.is_floating_point():
        raise ValueError(f"logits has dtype {logits.dtype}: pass floating-point logits")


def check_temperature(temperature: float) -> None:
    """Raise ValueError unless ``temperature`` is a finite number >= 0."""
    if not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature={temperature} is invalid: use a finite value >= 0 (0 picks the argmax)")


def check_token_ids(field: str, token_ids: Sequence[int]) -> tuple[int, ...]:
    """Return ``token_ids`` as a tuple after checking each is an int >= 0."""
    checked = tuple(token_ids)
    for token_id in checked:
        if isinstance(token_id, bool) or not isinstance(token_id, int) or token_id < 0:
            raise ValueError(f"{field} contains {token_id!r}, which is invalid: use integer token ids >= 0")
    return checked
