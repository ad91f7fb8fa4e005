"""The attention seam between the models and the cache policies.

Each attention layer computes q, k and v for the tokens fed in this forward
(after RoPE, so a cached key carries its position with it) and hands them to
the ``AttentionContext`` passed to the model's forward. The context decides
what the queries attend to: only the fed tokens (``DenseAttention``), or
those plus keys and values kept from earlier steps (the cache policies).
The model code never changes for a new cache method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor
from torch.nn import functional as F


class AttentionContext(Protocol):
    """The object a model's attention layers call once per layer and forward."""

    def attend(self, layer: int, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """Attention output for the fed queries.

        q: (B, H, T, D); k, v: (B, H_kv, T, D) for the same T fed tokens, RoPE
        applied. Returns (B, H, T, D) in q's dtype.
        """
        ...


def key_padding_bias(key_mask: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """Additive attention bias (B, 1, 1, T_k) from a key mask (B, T_k), True = attendable.

    Only keys are masked, so no query row is ever fully masked (a fully masked
    row would turn into NaN and spread through later layers).
    """
    if key_mask is None:
        return None
    bias = torch.zeros(key_mask.shape, dtype=dtype, device=key_mask.device)
    bias.masked_fill_(~key_mask, torch.finfo(dtype).min)
    return bias[:, None, None, :]


def sdpa(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None = None) -> Tensor:
    """Bidirectional scaled dot-product attention with grouped key/value heads.

    q: (B, H, Tq, D); k, v: (B, H_kv, Tk, D); bias broadcastable to (B, H, Tq, Tk).
    Query head h reads key/value head h // (H / H_kv), as both families do.
    """
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, enable_gqa=k.shape[1] != q.shape[1])


@dataclass
class DenseAttention:
    """No cache: the fed tokens attend to each other only.

    ``key_mask`` (B, T) marks real tokens (False for padding); None means no padding.
    """

    key_mask: Tensor | None = None

    def attend(self, layer: int, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        return sdpa(q, k, v, key_padding_bias(self.key_mask, q.dtype))
