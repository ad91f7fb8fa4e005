"""Alignment of next-token logits to the positions they predict.

Dream kept the autoregressive read-out of the model it was initialised from
(Qwen2.5-7B): the raw logit row at position i is the distribution for the
token at position i + 1. Samplers need one row per predicted position, so
row i must come from raw row i - 1. LLaDA predicts each position from its
own row and uses shift 0.

Shift after any classifier-free guidance combination; the two commute.
"""

from __future__ import annotations

import torch
from torch import Tensor

SUPPORTED_SHIFTS = (0, 1)


def _check_shift(shift: int) -> None:
    if shift not in SUPPORTED_SHIFTS:
        raise ValueError(f"shift={shift!r} is invalid: use 0 (LLaDA) or 1 (Dream)")


def _check_raw_logits(raw_logits: Tensor) -> None:
    if raw_logits.dim() != 3:
        raise ValueError(f"raw_logits has shape {tuple(raw_logits.shape)}: pass a (batch, length, vocab) tensor")


def align_logits(raw_logits: Tensor, shift: int) -> Tensor:
    """Realign raw logits so row i predicts position i.

    With shift 1, row i becomes raw row i - 1 and row 0 keeps raw row 0 as a
    placeholder: the first row is prepended and the last dropped. Position 0
    is always a prompt token, so its row is never used for sampling.

    Args:
        raw_logits: (B, T, V) logits whose row j was computed at fed position j.
        shift: 0 returns ``raw_logits`` itself; 1 applies Dream's shift.

    Returns:
        (B, T, V) aligned logits.
    """
    _check_shift(shift)
    _check_raw_logits(raw_logits)
    if shift == 0 or raw_logits.shape[1] == 0:
        return raw_logits
    return torch.cat([raw_logits[:, :1], raw_logits[:, :-1]], dim=1)


def block_logits(raw_logits: Tensor, start: int, end: int, shift: int) -> Tensor:
    """Slice the logits that predict positions [start, end) from a forward over a window.

    With shift 1 the rows read are raw rows start - 1 … end - 2, so the
    forward must include position start - 1 and ``start`` must be >= 1.

    Args:
        raw_logits: (B, T, V) logits whose row j was computed at fed position j
            of the window.
        start: first predicted position, relative to the window.
        end: one past the last predicted position, with start <= end <= T.
        shift: 0 (LLaDA) or 1 (Dream).

    Returns:
        (B, end - start, V) view of ``raw_logits``.
    """
    _check_shift(shift)
    _check_raw_logits(raw_logits)
    length = raw_logits.shape[1]
    if not 0 <= start <= end <= length:
        raise ValueError(
            f"block [start={start}, end={end}) does not fit the {length} fed positions: "
            f"use 0 <= start <= end <= {length}"
        )
    if start < shift:
        raise ValueError(
            f"start={start} with shift={shift} needs the logits of position {start - shift}, "
            f"which was not fed: include position start - 1 in the forward and pass start >= {shift}"
        )
    return raw_logits[:, start - shift : end - shift]
