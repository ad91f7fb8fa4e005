"""``wavefilter`` and ``wavefilter-denoise``: wavelet key-token selection that a host reuses until its next refresh.

``wavefilter`` descends a Haar pyramid of the cached context keys, coarse
to fine, with a beam. At level b the context is cut into blocks of 2^b
tokens with mean key μ and RMS deviation σ = sqrt(Σ‖k_i − μ‖² / n) (by
Parseval, the energy of the block's Haar detail coefficients). For a query
q, Cauchy–Schwarz and Σ(k_i − μ) = 0 give

    max_i q·k_i ≤ q·μ + √(n − 1) · ‖q‖ · σ,

so scoring a block by q·μ + λ‖q‖σ with λ = detail_weight · √(n − 1)
interpolates between the published mean score (detail_weight 0), which
averages a lone needle away, and a strict upper bound (detail_weight 1),
which never drops the block holding the best key but is loose on random
keys. Each level keeps the best ``beam × K / 2^b`` blocks (K the token
budget), the next level scores only their children, and the last step
scores the candidate tokens exactly.

``wavefilter-denoise`` instead takes the dense attention mass the host's
refresh forward computes anyway, soft-thresholds its wavelet detail
coefficients (the universal threshold, noise from the finest details'
median absolute deviation), and keeps positions by the denoised signal
plus the positive residual spikes: regions of sustained attention plus
isolated needles.

Both run once per refresh: the host reuses the selection, and evicts what
is not kept, until its next refresh.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from wavefilter_cli.filters.base import FilterInput, KeyFilter, context_attention, grouped_probs, grouped_queries
from wavefilter_cli.filters.wavelets import max_level, wavedec, waverec


def block_bound_logits(queries: Tensor, means: Tensor, deviation: Tensor, counts: Tensor, detail_weight: float) -> Tensor:
    """Upper-bound-style logits of each query on each block.

    queries: (B, H_kv, Q, D); means: (B, H_kv, N, D); deviation: (B, H_kv, N),
    the RMS deviation σ of each block's keys; counts: (N,) or (B, H_kv, N)
    tokens per block. Returns (B, H_kv, Q, N) = (q·μ + λ‖q‖σ) / √D with
    λ = detail_weight · √(n − 1). With detail_weight 1 each entry is at least
    the largest q·k / √D inside the block.
    """
    dim = queries.shape[-1]
    mean_logits = queries @ means.transpose(-1, -2)  # (B, H_kv, Q, N)
    spread = detail_weight * torch.sqrt((counts.to(queries.dtype) - 1).clamp(min=0)) * deviation  # (..., N)
    norms = queries.norm(dim=-1, keepdim=True)  # (B, H_kv, Q, 1)
    return (mean_logits + norms * spread.unsqueeze(-2)) / math.sqrt(dim)


def _pair_sum(x: Tensor, dim: int) -> Tensor:
    """Sum neighbouring pairs along ``dim`` (zero-padding an odd length): the unnormalised Haar approximation."""
    length = x.shape[dim]
    if length % 2:
        pad = [0, 0] * (x.ndim - 1 - dim % x.ndim) + [0, 1]
        x = torch.nn.functional.pad(x, pad)
    shape = list(x.shape)
    shape[dim : dim + 1] = [shape[dim] // 2, 2]
    return x.reshape(shape).sum(dim=dim + 1)


def block_moments(keys: Tensor, real: Tensor | None, levels: int) -> list[tuple[Tensor, Tensor, Tensor]]:
    """Per-level block means, RMS deviations and token counts of the keys, finest level first.

    keys: (B, H_kv, P, D); real: (B, P) bool or None. Level b (index b − 1)
    has ceil(P / 2^b) blocks. Each level is built from the one below by
    pairwise sums of Σk, Σ‖k‖² and counts, so the whole pyramid costs one
    pass over the keys. Returns [(mean (B, H_kv, N, D), deviation (B, H_kv, N),
    counts (B, 1, N))], where deviation² · n = Σ‖k_i − μ‖², the block's
    Haar detail energy by Parseval.
    """
    weight = torch.ones(keys.shape[0], 1, keys.shape[2], device=keys.device) if real is None else real[:, None, :].float()
    sums = keys * weight[..., None]
    squares = keys.square().sum(dim=-1) * weight
    counts = weight
    moments = []
    for _ in range(levels):
        sums, squares, counts = _pair_sum(sums, 2), _pair_sum(squares, 2), _pair_sum(counts, 2)
        safe = counts.clamp(min=1)
        mean = sums / safe[..., None]
        energy = (squares - safe * mean.square().sum(dim=-1)).clamp(min=0)
        moments.append((mean, torch.sqrt(energy / safe), counts))
    return moments


def _gather_blocks(values: Tensor, index: Tensor) -> Tensor:
    """values (B, H_kv, N, ...) gathered along N by index (B, H_kv, C)."""
    extra = values.shape[3:]
    expanded = index.reshape(*index.shape, *([1] * len(extra))).expand(*index.shape, *extra)
    return torch.gather(values, 2, expanded)


@dataclass
class WaveFilter(KeyFilter):
    """Coarse-to-fine Haar selection with detail-energy bounds and a beam.

    Attributes:
        levels: coarsest level; blocks there hold 2^levels tokens.
        detail_weight: λ as a fraction of the strict bound √(n − 1), in [0, 1].
        beam: blocks kept at each level, as a multiple of the budget's share.
    """

    levels: int = 2
    detail_weight: float = 0.5
    beam: int = 8

    name = "wavefilter"

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.levels, bool) or not isinstance(self.levels, int) or not 1 <= self.levels <= 8:
            raise ValueError(f"levels={self.levels!r} is invalid: use a whole number from 1 to 8")
        if not 0.0 <= float(self.detail_weight) <= 1.0:
            raise ValueError(f"detail_weight={self.detail_weight!r} is invalid: use a value in [0, 1]")
        if isinstance(self.beam, bool) or not isinstance(self.beam, int) or self.beam < 1:
            raise ValueError(f"beam={self.beam!r} is invalid: use a whole number ≥ 1")

    def score(self, inputs: FilterInput) -> Tensor:
        keys = inputs.keys.float()
        batch, kv_heads, length, dim = keys.shape
        queries = grouped_queries(inputs.queries, kv_heads).float()  # (B, H_kv, Q, D)
        budget = self.kept_count(length, inputs.layer, inputs.min_tail)
        levels = min(self.levels, max(0, math.floor(math.log2(max(1, length)))))
        real = inputs.key_mask

        moments = block_moments(keys, real, levels)
        candidates = None  # (B, H_kv, C) block indices at the current level
        for level in range(levels, 0, -1):
            means, deviation, counts = moments[level - 1]
            blocks = means.shape[2]
            if candidates is None:
                index = torch.arange(blocks, device=keys.device).expand(batch, kv_heads, blocks)
            else:
                # Children of the blocks kept one level up.
                index = torch.stack([2 * candidates, 2 * candidates + 1], dim=-1).flatten(-2).clamp(max=blocks - 1)
            cand_counts = torch.gather(counts.expand(-1, kv_heads, -1), 2, index)
            logits = block_bound_logits(queries, _gather_blocks(means, index), torch.gather(deviation, 2, index),
                                        cand_counts, self.detail_weight)
            logits = logits.masked_fill((cand_counts == 0)[:, :, None, :], float("-inf"))
            block_scores = logits.softmax(dim=-1).sum(dim=2)  # (B, H_kv, C)
            keep = min(index.shape[-1], math.ceil(self.beam * budget / 2**level))
            top = block_scores.topk(keep, dim=-1).indices
            candidates = torch.gather(index, 2, top)

        if candidates is None:
            token_index = torch.arange(length, device=keys.device).expand(batch, kv_heads, length)
        else:
            token_index = torch.stack([2 * candidates, 2 * candidates + 1], dim=-1).flatten(-2).clamp(max=length - 1)
        cand_keys = _gather_blocks(keys, token_index)  # (B, H_kv, C, D)
        logits = queries @ cand_keys.transpose(-1, -2) / math.sqrt(dim)
        if real is not None:
            token_real = torch.gather(real[:, None, :].expand(-1, kv_heads, -1), 2, token_index)
            logits = logits.masked_fill(~token_real[:, :, None, :], float("-inf"))
        token_scores = logits.softmax(dim=-1).sum(dim=2)  # (B, H_kv, C)
        scores = torch.full((batch, kv_heads, length), float("-inf"), device=keys.device)
        # Duplicate indices (from the clamp at the end) write the same value.
        return scores.scatter(2, token_index, token_scores)


def universal_soft_threshold(details: Tensor, finest: Tensor) -> Tensor:
    """Soft-threshold ``details`` (..., n) at σ√(2 ln N), σ = MAD(finest) / 0.6745 per row."""
    sigma = finest.abs().median(dim=-1, keepdim=True).values / 0.6745
    length = 2 * finest.shape[-1]
    threshold = sigma * math.sqrt(2 * math.log(max(2, length)))
    return details.sign() * (details.abs() - threshold).clamp(min=0)


@dataclass
class WaveFilterDenoise(KeyFilter):
    """Wavelet-denoised attention importance: regions plus isolated spikes.

    Attributes:
        wavelet: PyWavelets name of the filter bank.
        levels: decomposition levels (capped by the context length).
        spike_weight: weight of the positive residual (raw minus denoised) in the score.
    """

    wavelet: str = "haar"
    levels: int = 4
    spike_weight: float = 1.0

    name = "wavefilter-denoise"
    needs_probs = True

    def __post_init__(self) -> None:
        super().__post_init__()
        import pywt

        if self.wavelet not in pywt.wavelist(kind="discrete"):
            raise ValueError(f"wavelet={self.wavelet!r} is invalid: use a discrete PyWavelets name such as haar, db2 or sym4")
        if isinstance(self.levels, bool) or not isinstance(self.levels, int) or not 1 <= self.levels <= 12:
            raise ValueError(f"levels={self.levels!r} is invalid: use a whole number from 1 to 12")
        if not self.spike_weight >= 0:
            raise ValueError(f"spike_weight={self.spike_weight!r} is invalid: use a value ≥ 0")

    def score(self, inputs: FilterInput) -> Tensor:
        kv_heads = inputs.keys.shape[1]
        if inputs.probs is None:
            mass = context_attention(inputs).sum(dim=2)
        else:
            mass = grouped_probs(inputs.probs.float(), kv_heads).sum(dim=2)  # (B, H_kv, P)
        length = mass.shape[-1]
        levels = min(self.levels, max_level(length, self.wavelet))
        if levels < 1:
            return mass
        coeffs = wavedec(mass, self.wavelet, level=levels, mode="symmetric")
        finest = coeffs[-1]
        denoised = [coeffs[0]] + [universal_soft_threshold(d, finest) for d in coeffs[1:]]
        smooth = waverec(denoised, self.wavelet, mode="symmetric")[..., :length]
        spikes = (mass - smooth).clamp(min=0)
        return smooth + self.spike_weight * spikes
