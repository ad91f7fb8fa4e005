"""Building blocks shared by the LLaDA and Dream implementations: RMSNorm, RoPE and the SwiGLU MLP.

Shapes: B batch, T tokens fed this forward, H query heads, H_kv key/value
heads, D head dim.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class RMSNorm(nn.Module):
    """RMSNorm computed in float32; the weight multiplies after casting back.

    Both families normalise in fp32, cast the normalised activations to the
    input dtype, and only then apply the weight in that dtype.
    """

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * normed.to(x.dtype)


#: RoPE scaling types the models compute: none, and dynamic NTK-aware scaling of the base.
ROPE_SCALING_TYPES = ("default", "dynamic")


def rope_scaling_fields(raw: dict | None) -> tuple[str, float]:
    """Return (type, factor) of a config's ``rope_scaling`` entry; None means unscaled RoPE."""
    raw = raw or {}
    return raw.get("rope_type", raw.get("type", "default")), float(raw.get("factor", 1.0))


def dynamic_rope_theta(theta: float, head_dim: int, span: int, trained: int, factor: float = 1.0) -> float:
    """Return the RoPE base for a canvas of ``span`` positions under dynamic NTK-aware scaling.

    Up to ``trained`` positions the base stays ``theta``. Past it the base is
    multiplied by (factor · span / trained − (factor − 1)) ** (D / (D − 2)),
    the rule of the ``dynamic`` rope type in transformers. The slowest
    frequency then turns over the longer canvas as far as it turned over the
    trained length, while the fastest hardly changes.
    """
    if span <= trained:
        return theta
    return theta * (factor * span / trained - (factor - 1)) ** (head_dim / (head_dim - 2))


class RopeScaling:
    """Mixin for a model config with an optional ``rope_scaling`` entry.

    The config pops ``rope_scaling`` from its keyword arguments into
    ``rope_scaling_type`` and ``rope_scaling_factor`` (``rope_scaling_fields``)
    and names its trained length in ``rope_trained_length``. ``to_dict`` writes
    the entry back in the config.json form.
    """

    rope_scaling_type: str
    rope_scaling_factor: float
    rope_theta: float
    head_dim: int

    @property
    def rope_trained_length(self) -> int:
        raise NotImplementedError

    def rope_theta_for(self, span: int | None) -> float:
        """Return the RoPE base for a canvas of ``span`` positions (None: the configured base).

        Under ``"rope_scaling": {"rope_type": "dynamic"}`` a canvas longer than
        ``rope_trained_length`` gets a larger base (``dynamic_rope_theta``).
        """
        if span is None or self.rope_scaling_type != "dynamic":
            return self.rope_theta
        return dynamic_rope_theta(self.rope_theta, self.head_dim, span, self.rope_trained_length, self.rope_scaling_factor)

    def rope_scaling_unsupported(self) -> list[str]:
        """Return ``["rope_scaling.rope_type=…"]`` for a scaling type not in ``ROPE_SCALING_TYPES``, else []."""
        if self.rope_scaling_type in ROPE_SCALING_TYPES:
            return []
        return [f"rope_scaling.rope_type={self.rope_scaling_type!r}"]

    def to_dict(self) -> dict:
        output = super().to_dict()
        output.pop("rope_scaling_type", None)
        output.pop("rope_scaling_factor", None)
        if self.rope_scaling_type != "default":
            output["rope_scaling"] = {"rope_type": self.rope_scaling_type, "factor": self.rope_scaling_factor}
        return output


def rope_tables(position_ids: Tensor, head_dim: int, theta: float) -> tuple[Tensor, Tensor]:
    """Cos and sin tables of rotate-half RoPE, in float32.

    position_ids: (B, T) integer positions. Returns cos, sin: (B, 1, T, D),
    ready to broadcast over heads. Frequencies are base^(-2j/D).
    """
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=position_ids.device, dtype=torch.float32) / head_dim))
    angles = position_ids.to(torch.float32)[..., None] * inv_freq  # (B, T, D/2)
    emb = torch.cat((angles, angles), dim=-1)[:, None]  # (B, 1, T, D)
    return emb.cos(), emb.sin()


def _rotate_half(x: Tensor) -> Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor, full_precision: bool) -> Tensor:
    """Rotate x (B, H, T, D) by the tables.

    ``full_precision`` rotates in float32 and casts back (LLaDA); otherwise the
    tables are cast to x's dtype first and the rotation runs in that dtype
    (Dream), which matters for bit parity in bf16.
    """
    if full_precision:
        x32 = x.float()
        return (x32 * cos + _rotate_half(x32) * sin).to(x.dtype)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return x * cos + _rotate_half(x) * sin


def default_positions(input_ids: Tensor) -> Tensor:
    """Positions 0 … T-1 for every row: (B, T) long."""
    batch, length = input_ids.shape
    return torch.arange(length, device=input_ids.device).expand(batch, length)


def self_attention(
    x: Tensor,
    q_proj: nn.Linear,
    k_proj: nn.Linear,
    v_proj: nn.Linear,
    o_proj: nn.Linear,
    heads: int,
    kv_heads: int,
    rope: tuple[Tensor, Tensor],
    rope_full_precision: bool,
    layer: int,
    attention,
) -> Tensor:
    """Project x (B, T, D_model) to heads, rotate, let ``attention`` attend, and project back.

    Head h uses output rows h·D … (h+1)·D − 1 of each projection, as in both
    official checkpoints. ``attention`` is an ``AttentionContext``.
    """
    batch, length, _ = x.shape
    q = q_proj(x).view(batch, length, heads, -1).transpose(1, 2)  # (B, H, T, D)
    k = k_proj(x).view(batch, length, kv_heads, -1).transpose(1, 2)  # (B, H_kv, T, D)
    v = v_proj(x).view(batch, length, kv_heads, -1).transpose(1, 2)
    cos, sin = rope
    q = apply_rope(q, cos, sin, rope_full_precision)
    k = apply_rope(k, cos, sin, rope_full_precision)
    out = attention.attend(layer, q, k, v)  # (B, H, T, D)
    return o_proj(out.transpose(1, 2).reshape(batch, length, -1))


def select_rows(x: Tensor, index: Tensor | slice | None) -> Tensor:
    """Rows of x (B, T, D) picked by a slice or a (B, K) index tensor."""
    if index is None:
        return x
    if isinstance(index, slice):
        return x[:, index]
    return torch.gather(x, 1, index[..., None].expand(-1, -1, x.shape[-1]))
