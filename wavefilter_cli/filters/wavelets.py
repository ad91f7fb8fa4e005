"""Discrete wavelet transforms along one axis of a torch tensor.

`wavedec` and `waverec` reproduce `pywt.wavedec` and `pywt.waverec`
(PyWavelets 1.8): same coefficient order ``[cA_n, cD_n, ..., cD_1]``, same
lengths and the same values up to floating-point rounding. They work on any
floating dtype and device, and batch over every axis except the transformed
one, so a key tensor ``(layers, heads, T, d)`` is transformed along ``T`` in
one call per level. Filter banks come from ``pywt.Wavelet(name)``, so every
discrete family that PyWavelets ships (``haar``, ``db2``, ``sym4``,
``coif1``, ``bior3.5``, ...) works.

Boundary handling. One analysis step with a filter of length F maps N
samples to ``floor((N + F - 1) / 2)`` coefficients. Coefficient k is
``sum_j f[j] * x[2k + 1 - j]``, so it reads up to F - 2 samples before the
start and F - 1 samples after the end. Those samples come from an extension
of the signal, built as a gather over precomputed indices (or a zero pad),
and the result is one strided ``conv1d``:

- ``symmetric`` (pywt's default): half-sample mirror, ``... x1 x0 | x0 x1 ...
  x_{N-1} | x_{N-1} x_{N-2} ...``, repeated for extensions longer than N.
- ``reflect``: whole-sample mirror, ``... x2 x1 | x0 x1 ... | x_{N-2} ...``.
  It needs N >= 2.
- ``periodic``: ``x[n mod N]``.
- ``constant``: the edge sample repeated.
- ``zero``: zeros.
- ``periodization``: an odd-length signal first gets its last sample
  repeated, so N' = N + 1 is even. The transform is then circular on N'
  samples and returns exactly ``N' / 2 = ceil(N / 2)`` coefficients, with no
  redundant boundary coefficients.

Synthesis inverts one step with a strided ``conv_transpose1d`` of
``[cA, cD]`` against ``[rec_lo, rec_hi]``. For every mode except
periodization it keeps the central ``2 * len(cA) - F + 2`` samples. For
periodization it extends the coefficients periodically and keeps
``2 * len(cA)`` samples.

Odd lengths. An odd-length input is not always recovered at its own length:
``waverec(wavedec(x))`` can be one sample longer than ``x`` (for example
``haar`` on 5 samples returns 6). This matches pywt, and callers slice the
result back to the input length. Inside `waverec`, an approximation that is
one longer than the next detail is trimmed by its last sample, which is the
rule pywt applies between levels.

`haar_pyramid`, `block_detail_energy` and `block_statistics` are a fast path
for the Haar transform that the filters use to summarise blocks of 2^b
tokens. They need no convolution, only sums and differences of neighbours.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import pywt
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "MODES",
    "BlockStatistics",
    "HaarPyramid",
    "block_detail_energy",
    "block_statistics",
    "haar_pyramid",
    "max_level",
    "wavedec",
    "waverec",
]

MODES: tuple[str, ...] = (
    "symmetric",
    "reflect",
    "periodic",
    "constant",
    "zero",
    "periodization",
)
"""Boundary modes that `wavedec` and `waverec` accept, named as in pywt."""

WaveletLike = str | pywt.Wavelet

_INV_SQRT2 = 1.0 / math.sqrt(2.0)


class _FilterBank(NamedTuple):
    dec_lo: tuple[float, ...]
    dec_hi: tuple[float, ...]
    rec_lo: tuple[float, ...]
    rec_hi: tuple[float, ...]


@functools.lru_cache(maxsize=64)
def _filter_bank_by_name(name: str) -> _FilterBank:
    try:
        wavelet = pywt.Wavelet(name)
    except ValueError as error:
        raise ValueError(
            f"invalid wavelet {name!r}: {error} "
            "pywt.wavelist(kind='discrete') lists the valid names."
        ) from error
    return _filter_bank_of(wavelet)


def _filter_bank_of(wavelet: pywt.Wavelet) -> _FilterBank:
    return _FilterBank(
        tuple(wavelet.dec_lo),
        tuple(wavelet.dec_hi),
        tuple(wavelet.rec_lo),
        tuple(wavelet.rec_hi),
    )


def _filter_bank(wavelet: WaveletLike) -> _FilterBank:
    if isinstance(wavelet, pywt.Wavelet):
        return _filter_bank_of(wavelet)
    return _filter_bank_by_name(wavelet)


def max_level(length: int, wavelet: WaveletLike | int) -> int:
    """Return the deepest useful decomposition level, as `pywt.dwt_max_level`.

    It is the largest L with ``(F - 1) * 2**L <= length``, where F is the
    filter length, so the coarsest level still has at least F - 1 samples
    that are free of boundary effects. `wavelet` may be a name, a
    `pywt.Wavelet` or the filter length itself. Integer arithmetic avoids
    the rounding of a floating-point log2.
    """
    if length < 0:
        raise ValueError(f"invalid length {length}: expected a length >= 0")
    if isinstance(wavelet, int):
        filter_length = wavelet
        if filter_length < 2:
            raise ValueError(f"invalid filter length {filter_length}: expected >= 2")
    else:
        filter_length = len(_filter_bank(wavelet).dec_lo)
    if length < filter_length - 1:
        return 0
    return (length // (filter_length - 1)).bit_length() - 1


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"invalid mode {mode!r}: expected one of {', '.join(MODES)}")


def _check_floating(x: Tensor) -> None:
    if not x.is_floating_point():
        raise TypeError(
            f"invalid dtype {x.dtype}: the wavelet transform needs a floating-point "
            "tensor, so convert it first, for example with x.double()"
        )


def _extension_indices(start: int, size: int, length: int, mode: str, device: torch.device) -> Tensor:
    """Map padded positions ``start .. start + size - 1`` to indices in ``[0, length)``."""
    positions = torch.arange(start, start + size, device=device)
    if mode == "symmetric":
        folded = torch.remainder(positions, 2 * length)
        return torch.where(folded >= length, 2 * length - 1 - folded, folded)
    if mode == "reflect":
        period = 2 * length - 2
        folded = torch.remainder(positions, period)
        return torch.where(folded >= length, period - folded, folded)
    if mode in ("periodic", "periodization"):
        return torch.remainder(positions, length)
    if mode == "constant":
        return positions.clamp(0, length - 1)
    raise ValueError(f"mode {mode!r} has no index extension")


def _extend(rows: Tensor, start: int, size: int, mode: str) -> Tensor:
    """Return ``size`` samples of the extended rows from position ``start``.

    ``rows``: (B, N). The result is (B, size), and its position p is sample
    ``start + p`` of the infinite extension of each row.
    """
    length = rows.shape[-1]
    if mode == "zero":
        left = -start
        right = start + size - length
        return F.pad(rows, (left, right))
    indices = _extension_indices(start, size, length, mode, rows.device)
    return rows.index_select(-1, indices)


def _analysis_weight(bank: _FilterBank, like: Tensor) -> Tensor:
    """Stack the reversed decomposition filters as a conv1d weight (2, 1, F)."""
    # conv1d computes a cross-correlation, so reversing the filters turns it
    # into the convolution that pywt applies.
    weight = torch.tensor([bank.dec_lo[::-1], bank.dec_hi[::-1]], dtype=like.dtype, device=like.device)
    return weight.unsqueeze(1)


def _synthesis_weight(bank: _FilterBank, like: Tensor) -> Tensor:
    """Stack the reconstruction filters as a conv_transpose1d weight (2, 1, F)."""
    weight = torch.tensor([bank.rec_lo, bank.rec_hi], dtype=like.dtype, device=like.device)
    return weight.unsqueeze(1)


def _dwt_rows(rows: Tensor, weight: Tensor, mode: str) -> tuple[Tensor, Tensor]:
    """Run one analysis step on ``rows`` (B, N) and return cA and cD, each (B, K)."""
    filter_length = weight.shape[-1]
    if mode == "reflect" and rows.shape[-1] < 2:
        raise ValueError(
            "invalid input: mode 'reflect' needs at least 2 samples at every level; "
            "lower the level or use another mode"
        )
    if mode == "periodization":
        if rows.shape[-1] % 2 == 1:
            rows = torch.cat([rows, rows[:, -1:]], dim=-1)
        count = rows.shape[-1] // 2
        # Coefficient k is sum_j f[j] * x[(2k + F/2 - j) mod N'].
        start = 1 - filter_length // 2
    else:
        count = (rows.shape[-1] + filter_length - 1) // 2
        # Coefficient k is sum_j f[j] * x[2k + 1 - j].
        start = 2 - filter_length
    padded = _extend(rows, start, 2 * count + filter_length - 2, mode)
    coefficients = F.conv1d(padded.unsqueeze(1), weight, stride=2)
    return coefficients[:, 0], coefficients[:, 1]


def _idwt_rows(approx: Tensor, detail: Tensor, weight: Tensor, mode: str) -> Tensor:
    """Invert one analysis step: (B, K) approximation and detail rows to (B, M) samples."""
    filter_length = weight.shape[-1]
    count = approx.shape[-1]
    stacked = torch.stack([approx, detail], dim=1)
    if mode == "periodization":
        # Sample n is sum_k c[k mod K] * g[n - 2k + F/2 - 1] over all integers k.
        # F/2 extra coefficients on each side cover every k that reaches [0, 2K).
        margin = filter_length // 2
        indices = _extension_indices(-margin, count + 2 * margin, count, mode, approx.device)
        full = F.conv_transpose1d(stacked.index_select(-1, indices), weight, stride=2)
        offset = filter_length // 2 - 1 + 2 * margin
        return full[:, 0, offset : offset + 2 * count]
    output_length = 2 * count - filter_length + 2
    if output_length < 1:
        raise ValueError(
            f"invalid coefficient length {count} for a filter of length {filter_length}: "
            f"mode {mode!r} reconstructs 2 * {count} - {filter_length} + 2 = {output_length} "
            "samples; use the wavelet and mode of the decomposition"
        )
    full = F.conv_transpose1d(stacked, weight, stride=2)
    return full[:, 0, filter_length - 2 : 2 * count]


def _to_rows(x: Tensor, axis: int) -> tuple[Tensor, torch.Size]:
    """Move ``axis`` last and flatten the rest: (..., N) -> (B, N)."""
    moved = x.movedim(axis, -1)
    return moved.reshape(-1, moved.shape[-1]), moved.shape[:-1]


def _from_rows(rows: Tensor, batch_shape: torch.Size, axis: int) -> Tensor:
    return rows.reshape(*batch_shape, rows.shape[-1]).movedim(-1, axis)


def wavedec(
    x: Tensor,
    wavelet: WaveletLike = "haar",
    level: int | None = None,
    axis: int = -1,
    mode: str = "symmetric",
) -> list[Tensor]:
    """Decompose ``x`` along ``axis`` into ``[cA_n, cD_n, ..., cD_1]``, as `pywt.wavedec`.

    ``x``: (..., T, ...) with T on ``axis``, and every other axis is a batch
    axis. Each returned tensor has the shape of ``x`` except on ``axis``,
    where its length is the one pywt gives for that level and mode. ``level``
    defaults to ``max_level(T, wavelet)``. A deeper level works but warns,
    as pywt does, because all its coefficients then depend on the boundary
    extension. Level 0 returns ``[x]``.
    """
    _check_floating(x)
    _check_mode(mode)
    length = x.shape[axis]
    if length == 0:
        raise ValueError(f"invalid input: axis {axis} has length 0")
    bank = _filter_bank(wavelet)
    deepest = max_level(length, len(bank.dec_lo))
    if level is None:
        level = deepest
    elif level < 0:
        raise ValueError(f"invalid level {level}: expected level >= 0")
    elif level > deepest:
        warnings.warn(
            f"level {level} exceeds max_level = {deepest} for length {length}, "
            "so all coefficients depend on the boundary extension",
            UserWarning,
            stacklevel=2,
        )

    rows, batch_shape = _to_rows(x, axis)
    weight = _analysis_weight(bank, x)
    details: list[Tensor] = []
    approx = rows
    for _ in range(level):
        approx, detail = _dwt_rows(approx, weight, mode)
        details.append(detail)

    coefficients = [approx, *reversed(details)]
    return [_from_rows(c, batch_shape, axis) for c in coefficients]


def waverec(
    coeffs: Sequence[Tensor | None],
    wavelet: WaveletLike = "haar",
    axis: int = -1,
    mode: str = "symmetric",
) -> Tensor:
    """Reconstruct a signal from ``[cA_n, cD_n, ..., cD_1]``, as `pywt.waverec`.

    ``coeffs[0]`` is required, and a detail entry may be None, which counts
    as all zeros. All entries share their shape except on ``axis``. The output
    can be one sample longer than the signal that `wavedec` decomposed when
    that signal had an odd length, as in pywt, so slice it back. Raises
    ValueError when a detail length does not fit the approximation of the
    level above.
    """
    if len(coeffs) == 0:
        raise ValueError("invalid coefficients: expected at least the approximation cA_n")
    _check_mode(mode)
    approx_full = coeffs[0]
    if approx_full is None:
        raise ValueError("invalid coefficients: the approximation coeffs[0] must not be None")
    _check_floating(approx_full)
    if len(coeffs) == 1:
        return approx_full

    bank = _filter_bank(wavelet)
    weight = _synthesis_weight(bank, approx_full)
    approx, batch_shape = _to_rows(approx_full, axis)
    for level_index, detail_full in enumerate(coeffs[1:], start=1):
        if detail_full is None:
            detail = torch.zeros_like(approx)
        else:
            detail, _ = _to_rows(detail_full, axis)
            if approx.shape[-1] == detail.shape[-1] + 1:
                approx = approx[:, :-1]
            elif approx.shape[-1] != detail.shape[-1]:
                raise ValueError(
                    f"invalid coefficients: coeffs[{level_index}] has length {detail.shape[-1]} "
                    f"on axis {axis} but the approximation above it has {approx.shape[-1]}"
                )
        approx = _idwt_rows(approx, detail, weight, mode)
    return _from_rows(approx, batch_shape, axis)


@dataclass(frozen=True)
class HaarPyramid:
    """Haar approximation and detail coefficients, finest level first.

    ``approximations[b - 1]`` and ``details[b - 1]`` hold level b, with
    ``ceil(T / 2**b)`` entries on the transformed axis. Coefficient j of
    level b covers tokens ``j * 2**b .. (j + 1) * 2**b - 1``, and the
    approximation equals ``2**(b / 2)`` times the mean of that block. A
    partial last block counts its missing tokens as zeros, so its
    approximation is ``2**(-b / 2)`` times the sum of its real tokens.
    """

    approximations: list[Tensor]
    details: list[Tensor]


def haar_pyramid(x: Tensor, levels: int, axis: int = -1) -> HaarPyramid:
    """Compute ``levels`` Haar analysis steps along ``axis`` with pairwise sums.

    ``x``: (..., T, ...). Level b has ``ceil(T / 2**b)`` coefficients.
    Whenever a level has an odd length, one zero is appended before pairing,
    which is the same as zero-padding ``x`` at the end to a multiple of
    ``2**b``. The values therefore equal ``pywt.wavedec(x, "haar",
    mode="zero", level=levels)``. Detail j of a level is ``(a[2j] - a[2j+1])
    / sqrt(2)`` of the level below. Levels beyond ``log2(T)`` are allowed
    and keep a single coefficient.
    """
    _check_floating(x)
    if levels < 0:
        raise ValueError(f"invalid levels {levels}: expected levels >= 0")
    if x.shape[axis] == 0:
        raise ValueError(f"invalid input: axis {axis} has length 0")

    current = x.movedim(axis, -1)
    approximations: list[Tensor] = []
    details: list[Tensor] = []
    for _ in range(levels):
        if current.shape[-1] % 2 == 1:
            current = F.pad(current, (0, 1))
        even = current[..., 0::2]
        odd = current[..., 1::2]
        details.append(((even - odd) * _INV_SQRT2).movedim(-1, axis))
        current = (even + odd) * _INV_SQRT2
        approximations.append(current.movedim(-1, axis))
    return HaarPyramid(approximations=approximations, details=details)


def _sum_groups(values: Tensor, group: int) -> Tensor:
    """Sum consecutive groups of ``group`` entries on the last axis, zero-padding the tail."""
    length = values.shape[-1]
    groups = -(-length // group)
    padded = F.pad(values, (0, groups * group - length))
    return padded.reshape(*padded.shape[:-1], groups, group).sum(dim=-1)


def block_detail_energy(details: Sequence[Tensor], block_log2: int, axis: int = -1) -> Tensor:
    """Sum the squared Haar details of levels 1..b inside each block of ``2**b`` tokens.

    ``details``: the `HaarPyramid.details` list, finest first, with at least
    ``b = block_log2`` levels. Returns (..., ceil(T / 2**b), ...). By
    Parseval's identity for the orthonormal Haar basis, a full block's value
    equals ``sum_i (x_i - mean)**2`` over its tokens, which is the
    ``deviation_energy`` of `block_statistics`. A partial last block matches
    that sum only when its missing tokens are counted as zeros.
    """
    if block_log2 < 1:
        raise ValueError(f"invalid block_log2 {block_log2}: expected >= 1")
    if len(details) < block_log2:
        raise ValueError(f"invalid details: block_log2 = {block_log2} needs that many levels, got {len(details)}")

    # Every level's sums have ceil(T / 2**b) entries, one per block.
    energies = [
        _sum_groups(details[level - 1].movedim(axis, -1).square(), 2 ** (block_log2 - level))
        for level in range(1, block_log2 + 1)
    ]
    return torch.stack(energies).sum(dim=0).movedim(-1, axis)


class BlockStatistics(NamedTuple):
    """Per-block mean and deviation energy of a sequence split into ``2**b``-token blocks."""

    mean: Tensor
    """(..., n_blocks, ...): the mean of the tokens in each block."""
    deviation_energy: Tensor
    """(..., n_blocks, ...): ``sum_i (x_i - mean)**2`` over the tokens of each block."""
    counts: Tensor
    """(n_blocks,): the number of tokens in each block. Only the last can be below ``2**b``."""


def block_statistics(
    x: Tensor,
    block_log2: int,
    axis: int = -1,
    feature_axis: int | None = None,
) -> BlockStatistics:
    """Compute the mean and the deviation energy of each block of ``2**b`` tokens.

    ``x``: (..., T, ...) with the tokens on ``axis``, and ``b = block_log2 >= 0``.
    Blocks are ``[j * 2**b, (j + 1) * 2**b)`` and there are
    ``ceil(T / 2**b)`` of them. The last block keeps only the tokens that
    exist, so its mean and energy ignore the missing positions, unlike the
    zero-padded `haar_pyramid`. With ``feature_axis`` (for example the head
    dimension of keys) the energy is also summed over that axis, giving
    ``sum_i ||k_i - mean||**2``, and that axis is removed from
    ``deviation_energy``. ``mean`` keeps every axis.
    """
    _check_floating(x)
    if block_log2 < 0:
        raise ValueError(f"invalid block_log2 {block_log2}: expected >= 0")
    axis = axis % x.ndim
    if feature_axis is not None:
        feature_axis = feature_axis % x.ndim
        if feature_axis == axis:
            raise ValueError(f"invalid feature_axis {feature_axis}: it is the sequence axis")
    length = x.shape[axis]
    if length == 0:
        raise ValueError(f"invalid input: axis {axis} has length 0")

    block = 2**block_log2
    blocks = -(-length // block)
    padding = blocks * block - length
    tokens = F.pad(x.movedim(axis, -1), (0, padding))
    tokens = tokens.reshape(*tokens.shape[:-1], blocks, block)

    valid = torch.arange(blocks * block, device=x.device).reshape(blocks, block) < length
    counts = valid.sum(dim=-1)
    mean = tokens.sum(dim=-1) / counts.to(x.dtype)
    deviations = (tokens - mean.unsqueeze(-1)) * valid.to(x.dtype)
    energy = deviations.square().sum(dim=-1)

    mean = mean.movedim(-1, axis)
    energy = energy.movedim(-1, axis)
    if feature_axis is not None:
        energy = energy.sum(dim=feature_axis)
    return BlockStatistics(mean=mean, deviation_energy=energy, counts=counts)
