"""``sparse-dllm``: Sparse-dLLM's block-query saliency as a key-token filter (arXiv 2508.02558; OpenMOSS/Sparse-dLLM).

Sparse-dLLM scores each cached position j by I_j = mean over query heads h
of q̄_h · k_{h,j}, where q̄_h is the mean of the block's post-RoPE queries
and keys are shared within a GQA group. The products are raw (no softmax,
no 1/√D). A 1-D max-pool (kernel k, stride 1, padding k // 2) smooths the
scores along the sequence, and one ranking serves every KV head. The
published configurations use kernel 3.

The ``sparse-dllm`` cache policy uses the same two functions for its own
retention, so both rank tokens identically.

Shapes: B batch, H query heads, H_kv KV heads, W query rows, S keys, D head dim.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from wavefilter_cli.filters.base import FilterInput, KeyFilter


def block_saliency(queries: Tensor, keys: Tensor) -> Tensor:
    """Sparse-dLLM's raw saliency: (B, S) float32.

    queries: (B, H, W, D) post-RoPE queries of the block; keys: (B, H_kv, S,
    D) post-RoPE keys. Returns mean_h (mean_w q_{h,w}) · k_{h,j}, query head
    h reading KV head h // (H / H_kv).
    """
    batch, heads, _, dim = queries.shape
    kv_heads = keys.shape[1]
    mean_query = queries.float().mean(dim=2)  # (B, H, D)
    group_sum = mean_query.reshape(batch, kv_heads, heads // kv_heads, dim).sum(dim=2)  # (B, H_kv, D)
    return torch.einsum("bkd,bksd->bs", group_sum, keys.float()) / heads


def max_pool_scores(scores: Tensor, kernel: int) -> Tensor:
    """Max-pool scores (B, S) along S with stride 1 and padding kernel // 2. Kernel 1 returns them unchanged."""
    if kernel == 1:
        return scores
    return F.max_pool1d(scores[:, None, :], kernel, stride=1, padding=kernel // 2)[:, 0, :]


def check_kernel(kernel: int) -> None:
    if isinstance(kernel, bool) or not isinstance(kernel, int) or kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"kernel={kernel!r} is invalid: use an odd number of tokens ≥ 1 (1 turns pooling off)")


@dataclass
class SparseDLLMFilter(KeyFilter):
    """Block-query saliency, max-pooled, one ranking for all KV heads.

    The block's queries are the observation rows after the prompt tail (the
    host passes the last ``min(window, P)`` prompt tokens, then the block).
    Without block rows, all observation rows are averaged.

    Attributes:
        kernel: max-pooling width in tokens, odd; 1 turns pooling off.
    """

    kernel: int = 3

    name = "sparse-dllm"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_kernel(self.kernel)

    def score(self, inputs: FilterInput) -> Tensor:
        batch, kv_heads, length, _ = inputs.keys.shape
        prompt_rows = min(self.window, length)
        queries = inputs.queries
        if queries.shape[2] > prompt_rows:
            queries = queries[:, :, prompt_rows:]
        scores = block_saliency(queries, inputs.keys)  # (B, P)
        if inputs.key_mask is not None:
            scores = scores.masked_fill(~inputs.key_mask, float("-inf"))
        pooled = max_pool_scores(scores, self.kernel)
        return pooled[:, None, :].expand(batch, kv_heads, length)
