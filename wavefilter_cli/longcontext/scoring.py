"""Per-token importance of a chunk's document text, from one dense forward and a key-token filter.

The chunk's prompt is followed by the answer's mask slots, as in the first
refresh forward of a generation. In every layer the filter scores the
prompt keys from the observation queries: the last ``window`` prompt tokens
(the question) and the first answer block. The scores of the document rows
are turned into relative importances and averaged over KV heads and layers.

Relative importance: each (layer, KV head) row of finite scores is shifted
so that its minimum is at least 0, then divided by its mean over the
chunk's document tokens. A token the filter ranks like the average gets 1,
in every chunk whatever its length, so importances of different chunks can
be ranked together. Unscored tokens (a score of -inf, as beam filters give
the tokens they never reach) get 0.

Shapes: B = 1, H query heads, H_kv KV heads, T fed tokens (prompt P plus
answer G), D head dim, n document tokens of the chunk.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from wavefilter_cli.filters.base import FilterInput, KeyFilter, grouped_queries
from wavefilter_cli.models.attention import sdpa

#: Neighbouring tokens over which a chunk's importances are max-pooled (odd).
POOL_TOKENS = 15


def relative_importance(scores: Tensor) -> Tensor:
    """Turn scores (..., n) into non-negative importances with mean 1 per row, as the module docstring says."""
    scores = scores.float()
    scores = scores.masked_fill(scores.isnan(), float("-inf"))
    finite = torch.isfinite(scores)
    lowest = torch.where(finite, scores, torch.full_like(scores, float("inf"))).amin(dim=-1, keepdim=True)
    shift = torch.where(torch.isfinite(lowest), lowest.clamp(max=0), torch.zeros_like(lowest))
    shifted = torch.where(finite, scores - shift, torch.zeros_like(scores))
    mean = shifted.mean(dim=-1, keepdim=True)
    return torch.where(mean > 0, shifted / mean.clamp(min=torch.finfo(torch.float32).tiny), torch.ones_like(shifted))


def observation_probs(queries: Tensor, keys: Tensor) -> Tensor:
    """Compute the dense attention probabilities (B, H, W, T) of queries (B, H, W, D) over every key (B, H_kv, T, D)."""
    batch, heads, rows, dim = queries.shape
    grouped = grouped_queries(queries, keys.shape[1]).float()  # (B, H_kv, (H / H_kv)·W, D)
    logits = grouped @ keys.float().transpose(-1, -2) / dim**0.5
    return logits.reshape(batch, heads, rows, -1).softmax(dim=-1)


class ScoringAttention:
    """Dense attention that also scores the document rows of the prompt keys in every layer.

    ``observed`` (W,) lists the rows of the observation queries, ``documents``
    (n,) the prompt rows holding document text. ``total`` (n,) accumulates
    the relative importance averaged over KV heads, one term per layer, on
    the model's device.
    """

    def __init__(self, key_filter: KeyFilter, prompt_length: int, observed: Tensor, documents: Tensor, lead: int) -> None:
        self.key_filter = key_filter
        self.prompt_length = prompt_length
        self.observed = observed
        self.documents = documents
        self.lead = lead
        self.layers = 0
        self.total = torch.zeros(documents.shape[0], device=documents.device)

    def attend(self, layer: int, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        queries = q.index_select(2, self.observed)  # (B, H, W, D)
        keys = k[:, :, : self.prompt_length]  # (B, H_kv, P, D)
        probs = None
        if self.key_filter.needs_probs:
            probs = observation_probs(queries, k)[..., : self.prompt_length]
        inputs = FilterInput(layer=layer, queries=queries, keys=keys, probs=probs, min_tail=self.lead)
        scores = self.key_filter.score(inputs)  # (B, H_kv, P)
        importance = relative_importance(scores.index_select(-1, self.documents))  # (B, H_kv, n)
        self.total += importance.mean(dim=(0, 1))
        self.layers += 1
        return sdpa(q, k, v)


def observed_rows(prompt_length: int, window: int, block_length: int, device: torch.device) -> Tensor:
    """Return the rows of the observation queries: the last ``window`` prompt tokens, then the first answer block."""
    return torch.cat(
        [
            torch.arange(max(0, prompt_length - window), prompt_length, device=device),
            torch.arange(prompt_length, prompt_length + block_length, device=device),
        ]
    )


def pooled(importance: Tensor, kernel: int) -> Tensor:
    """Max-pool ``importance`` (n,) over ``kernel`` neighbouring tokens, an odd count. A kernel of 1 changes nothing."""
    if kernel <= 1 or importance.numel() == 0:
        return importance
    return F.max_pool1d(importance[None, None], kernel, stride=1, padding=kernel // 2)[0, 0]


def score_document_tokens(
    model,
    prompt_ids: Sequence[int],
    document_rows: Sequence[int],
    key_filter: KeyFilter,
    answer_length: int,
    block_length: int,
    mask_id: int,
    kernel: int = POOL_TOKENS,
) -> Tensor:
    """Score each prompt row in ``document_rows`` and return the importances (n,) on the model's device.

    Runs one dense forward over the prompt followed by ``answer_length`` mask
    tokens, with positions 0 … T − 1, and reads nothing back to the host.
    The layer average is max-pooled over ``kernel`` neighbouring document
    tokens, so the tokens around an important one (the rest of its phrase,
    such as the value after a matched key) rank with it.
    """
    device = next(model.parameters()).device
    if len(document_rows) == 0:
        return torch.zeros(0, device=device)
    prompt_length = len(prompt_ids)
    canvas = torch.tensor([list(prompt_ids) + [mask_id] * answer_length], dtype=torch.long, device=device)
    documents = torch.from_numpy(np.asarray(document_rows, dtype=np.int64)).to(device)
    observed = observed_rows(prompt_length, key_filter.window, block_length, device)
    lead = int(getattr(model, "logit_shift", 0))
    context = ScoringAttention(key_filter, prompt_length, observed, documents, lead)
    with torch.inference_mode():
        model(canvas, attention=context, logits_index=slice(-1, None))
    return pooled(context.total / max(1, context.layers), kernel)
