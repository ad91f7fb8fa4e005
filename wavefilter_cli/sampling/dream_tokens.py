"""Dream's per-position token distribution, token draw and confidence scores.

Mirrors ``sample_tokens`` of Dream's hub ``generation_utils.py``: divide by
the temperature when it is above 0, keep the top-p nucleus, keep the top-k
logits, take the softmax, then sample (temperature > 0) or take the argmax.
Two deliberate differences: the softmax runs in at least float32 where Dream
stays in the logits dtype (bfloat16 in practice), and the distribution is
computed for every block position, so a row never depends on the others.
"""

from __future__ import annotations

import torch
from torch import Tensor

from wavefilter_cli.sampling.base import RandomSource

ENTROPY_EPSILON = 1e-10
"""Added inside the log of Dream's negative-entropy confidence so p = 0 terms stay finite."""


def filter_top_p(logits: Tensor, top_p: float) -> Tensor:
    """Keep the smallest prefix of the sorted vocabulary whose probability reaches ``top_p``.

    A token is dropped when the cumulative probability of the tokens ranked
    above it already exceeds ``top_p``. That shift by one keeps the first token
    that crosses the threshold and always keeps the most likely token. Dropped
    logits become the dtype's minimum, as in Dream.

    Args:
        logits: (…, V) float logits.
        top_p: nucleus mass in (0, 1].

    Returns:
        (…, V) filtered copy.
    """
    sorted_logits, sorted_index = torch.sort(logits, dim=-1, descending=True)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    crossed = cumulative > top_p
    remove_sorted = torch.zeros_like(crossed)
    remove_sorted[..., 1:] = crossed[..., :-1]
    remove = torch.zeros_like(remove_sorted).scatter_(-1, sorted_index, remove_sorted)
    return logits.masked_fill(remove, torch.finfo(logits.dtype).min)


def filter_top_k(logits: Tensor, top_k: int) -> Tensor:
    """Drop logits below the k-th largest of each position, keeping ties with it.

    Args:
        logits: (…, V) float logits.
        top_k: number of logits to keep, >= 1. Values above V keep everything.

    Returns:
        (…, V) filtered copy.
    """
    kept_count = min(top_k, logits.shape[-1])
    kth_largest = torch.topk(logits, kept_count, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth_largest, torch.finfo(logits.dtype).min)


def token_distribution(logits: Tensor, temperature: float, top_p: float | None, top_k: int | None) -> Tensor:
    """Return Dream's filtered token distribution π for each position.

    Args:
        logits: (B, Lb, V) float logits.

    Returns:
        (B, Lb, V) probabilities in float32, or float64 for float64 logits.
    """
    work = logits if logits.dtype == torch.float64 else logits.to(torch.float32)
    if temperature > 0:
        work = work / temperature
    if top_p is not None and top_p < 1:
        work = filter_top_p(work, top_p)
    if top_k is not None:
        work = filter_top_k(work, top_k)
    return work.softmax(dim=-1)


def draw_categorical(probs: Tensor, generator: RandomSource) -> Tensor:
    """Sample one token per position from (B, Lb, V) ``probs`` with ``torch.multinomial``.

    ``torch.distributions.Categorical.sample``, which Dream uses, calls the
    same function. With a sequence of generators each row is drawn separately
    from its own generator.

    Returns:
        (B, Lb) int64 token ids.
    """
    batch, block_length, vocab_size = probs.shape
    if generator is None or isinstance(generator, torch.Generator):
        flat = torch.multinomial(probs.reshape(-1, vocab_size), 1, generator=generator)
        return flat.view(batch, block_length)
    if len(generator) != batch:
        raise ValueError(
            f"got {len(generator)} generators for a batch of {batch} rows: "
            "pass one generator per row, a single generator, or None"
        )
    rows = [
        torch.multinomial(row_probs, 1, generator=row_generator).squeeze(-1)
        for row_probs, row_generator in zip(probs, generator)
    ]
    return torch.stack(rows)


def draw_tokens(probs: Tensor, temperature: float, generator: RandomSource) -> tuple[Tensor, Tensor]:
    """Pick a token per position: a sample from π above temperature 0, else its argmax.

    Args:
        probs: (B, Lb, V) probabilities from ``token_distribution``.

    Returns:
        ``(tokens, chosen_probability)``: (B, Lb) int64 and (B, Lb) π[token].
    """
    if temperature == 0:
        chosen_probability, tokens = probs.max(dim=-1)
        return tokens, chosen_probability
    tokens = draw_categorical(probs, generator)
    chosen_probability = probs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    return tokens, chosen_probability


def margin_confidence(probs: Tensor) -> Tensor:
    """Return the gap π(1) − π(2) between the two most likely tokens, shape (B, Lb)."""
    top_two = torch.topk(probs, 2, dim=-1).values
    return top_two[..., 0] - top_two[..., 1]


def negative_entropy(probs: Tensor) -> Tensor:
    """Return Σ π log(π + 1e-10), shape (B, Lb). Higher values mean more confidence."""
    return (probs * torch.log(probs + ENTROPY_EPSILON)).sum(dim=-1)
