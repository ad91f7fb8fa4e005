"""``snapkv``: SnapKV's pooled observation-window scores (Li et al. 2024, arXiv 2404.14469).

Per KV head, s_j = Σ_i softmax(q_i·K / √D)_j over the observation queries
(the last ``window`` prompt tokens and the block being decoded, all query
heads of the group), smoothed along the sequence by a 1-D pooling with
stride 1, then the top-k. Defaults follow SnapKV's LongBench configurations
(FasterDecoding/SnapKV): window 32, kernel 7, max-pooling. SnapKV keeps the
window itself; here the always-kept ``tail`` plays that part.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import Tensor
from torch.nn import functional as F

from wavefilter_cli.filters.base import FilterInput, KeyFilter, context_attention


@dataclass
class SnapKV(KeyFilter):
    """Observation-window attention, pooled.

    Attributes:
        kernel: pooling width in tokens, odd.
        pooling: ``max`` or ``avg``.
    """

    kernel: int = 7
    pooling: Literal["max", "avg"] = "max"

    name = "snapkv"

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.kernel, bool) or not isinstance(self.kernel, int) or self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"kernel={self.kernel!r} is invalid: use an odd number of tokens ≥ 1")
        if self.pooling not in ("max", "avg"):
            raise ValueError(f"pooling={self.pooling!r} is invalid: use 'max' or 'avg'")

    def score(self, inputs: FilterInput) -> Tensor:
        scores = context_attention(inputs).sum(dim=2)  # (B, H_kv, P)
        batch, kv_heads, length = scores.shape
        flat = scores.reshape(batch * kv_heads, 1, length)
        pad = self.kernel // 2
        if self.pooling == "max":
            pooled = F.max_pool1d(flat, self.kernel, stride=1, padding=pad)
        else:
            pooled = F.avg_pool1d(flat, self.kernel, stride=1, padding=pad, count_include_pad=False)
        return pooled.reshape(batch, kv_heads, length)
