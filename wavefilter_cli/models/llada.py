"""LLaDA (``model_type: llada``) in plain PyTorch, loadable from the official checkpoints.

Weight names follow the official ``LLaDAModelLM`` exactly
(``model.transformer.wte``, ``model.transformer.blocks.N.q_proj`` …,
``model.transformer.ln_f``, ``model.transformer.ff_out``), so
``from_pretrained`` reads official safetensors shards without renaming. Note
the name clash kept from the original: ``blocks.N.ff_out`` is the MLP down
projection while the top-level ``transformer.ff_out`` is the LM head.

The network is bidirectional (no causal mask). RoPE runs in float32
(``rope_full_precision``) and positions are absolute indices into the fed
canvas unless the caller passes ``position_ids``.
"""

from __future__ import annotations

from torch import Tensor, nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput

from wavefilter_cli.models.attention import AttentionContext, DenseAttention
from wavefilter_cli.models.layers import (
    RMSNorm,
    RopeScaling,
    default_positions,
    rope_scaling_fields,
    rope_tables,
    select_rows,
    self_attention,
)


class LLaDAConfig(RopeScaling, PretrainedConfig):
    """The fields of the official LLaDA ``config.json`` that the forward pass reads.

    Unknown fields in a checkpoint's file (``init_fn``, ``precision`` …) are
    kept as attributes by ``PretrainedConfig`` and ignored here.
    """

    model_type = "llada"

    def __init__(
        self,
        d_model: int = 4096,
        n_layers: int = 32,
        n_heads: int = 32,
        n_kv_heads: int | None = None,
        multi_query_attention: bool | None = None,
        mlp_hidden_size: int | None = 12288,
        mlp_ratio: int = 4,
        vocab_size: int = 126464,
        embedding_size: int | None = 126464,
        rope_theta: float = 500000.0,
        rope_full_precision: bool = True,
        max_sequence_length: int = 4096,
        rms_norm_eps: float = 1e-5,
        include_bias: bool = False,
        include_qkv_bias: bool = False,
        weight_tying: bool = False,
        block_type: str = "llama",
        activation_type: str = "silu",
        layer_norm_type: str = "rms",
        attention_layer_norm: bool = False,
        mask_token_id: int = 126336,
        eos_token_id: int = 126081,
        pad_token_id: int = 126081,
        **kwargs,
    ):
        self.d_model = d_model
        self.n_layers = n_layers
        self.n_heads = n_heads
        if multi_query_attention:
            n_kv_heads = 1
        self.n_kv_heads = n_kv_heads if n_kv_heads is not None else n_heads
        self.multi_query_attention = multi_query_attention
        self.mlp_hidden_size = mlp_hidden_size
        self.mlp_ratio = mlp_ratio
        self.vocab_size = vocab_size
        self.embedding_size = embedding_size
        self.rope_theta = rope_theta
        self.rope_full_precision = rope_full_precision
        self.max_sequence_length = max_sequence_length
        self.rms_norm_eps = rms_norm_eps
        self.include_bias = include_bias
        self.include_qkv_bias = include_qkv_bias
        self.weight_tying = weight_tying
        self.block_type = block_type
        self.activation_type = activation_type
        self.layer_norm_type = layer_norm_type
        self.attention_layer_norm = attention_layer_norm
        self.mask_token_id = mask_token_id
        # Popped so transformers 5 does not warn about the legacy field; see ``rope_theta_for``.
        self.rope_scaling_type, self.rope_scaling_factor = rope_scaling_fields(kwargs.pop("rope_scaling", None))
        super().__init__(eos_token_id=eos_token_id, pad_token_id=pad_token_id, **kwargs)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def ffn_size(self) -> int:
        return self.mlp_hidden_size if self.mlp_hidden_size is not None else self.mlp_ratio * self.d_model

    @property
    def padded_vocab(self) -> int:
        return self.embedding_size or self.vocab_size

    @property
    def context_window(self) -> int:
        """Tokens the model was trained on (prompt plus answer)."""
        return self.max_sequence_length

    @property
    def rope_trained_length(self) -> int:
        return self.max_sequence_length

    def unsupported_features(self) -> list[str]:
        """Config settings this implementation does not compute, as ``field=value`` strings."""
        found = self.rope_scaling_unsupported()
        checks = {
            "block_type": (self.block_type, "llama"),
            "activation_type": (self.activation_type, "silu"),
            "layer_norm_type": (self.layer_norm_type, "rms"),
            "attention_layer_norm": (self.attention_layer_norm, False),
            "include_bias": (self.include_bias, False),
            "weight_tying": (self.weight_tying, False),
        }
        return found + [f"{name}={value!r}" for name, (value, expected) in checks.items() if value != expected]


class LLaDABlock(nn.Module):
    """One pre-norm transformer block of the ``llama`` block type."""

    def __init__(self, config: LLaDAConfig, layer: int):
        super().__init__()
        d, hd = config.d_model, config.head_dim
        qkv_bias = config.include_qkv_bias
        self.layer = layer
        self.heads, self.kv_heads = config.n_heads, config.n_kv_heads
        self.rope_full_precision = config.rope_full_precision
        self.attn_norm = RMSNorm(d, config.rms_norm_eps)
        self.q_proj = nn.Linear(d, config.n_heads * hd, bias=qkv_bias)
        self.k_proj = nn.Linear(d, config.n_kv_heads * hd, bias=qkv_bias)
        self.v_proj = nn.Linear(d, config.n_kv_heads * hd, bias=qkv_bias)
        self.attn_out = nn.Linear(d, d, bias=False)
        self.ff_norm = RMSNorm(d, config.rms_norm_eps)
        self.ff_proj = nn.Linear(d, config.ffn_size, bias=False)  # gate
        self.up_proj = nn.Linear(d, config.ffn_size, bias=False)
        self.ff_out = nn.Linear(config.ffn_size, d, bias=False)  # down

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor], attention: AttentionContext) -> Tensor:
        x = x + self_attention(
            self.attn_norm(x), self.q_proj, self.k_proj, self.v_proj, self.attn_out,
            self.heads, self.kv_heads, rope, self.rope_full_precision, self.layer, attention,
        )
        h = self.ff_norm(x)
        return x + self.ff_out(nn.functional.silu(self.ff_proj(h)) * self.up_proj(h))


class LLaDAModel(nn.Module):
    """Holds ``transformer``, the module dict whose names the checkpoints use."""

    def __init__(self, config: LLaDAConfig):
        super().__init__()
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.padded_vocab, config.d_model),
                blocks=nn.ModuleList(LLaDABlock(config, i) for i in range(config.n_layers)),
                ln_f=RMSNorm(config.d_model, config.rms_norm_eps),
                ff_out=nn.Linear(config.d_model, config.padded_vocab, bias=False),
            )
        )


class LLaDAModelLM(PreTrainedModel):
    """LLaDA with its LM head; ``forward`` returns raw logits (no shift)."""

    config_class = LLaDAConfig
    base_model_prefix = "model"
    _no_split_modules = ["LLaDABlock"]
    supports_gradient_checkpointing = False

    #: Logit row i scores the token at position i.
    logit_shift = 0

    def __init__(self, config: LLaDAConfig):
        super().__init__(config)
        self.model = LLaDAModel(config)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        std = getattr(self.config, "init_std", 0.02)
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, RMSNorm):
            nn.init.ones_(module.weight)

    @property
    def blocks(self) -> nn.ModuleList:
        return self.model.transformer["blocks"]

    def forward(
        self,
        input_ids: Tensor,
        position_ids: Tensor | None = None,
        attention: AttentionContext | None = None,
        logits_index: Tensor | slice | None = None,
        rope_span: int | None = None,
        **kwargs,
    ) -> MaskedLMOutput:
        """Logits for the fed tokens.

        input_ids: (B, T). position_ids: (B, T), default 0 … T-1 (absolute
        canvas positions, as the official code uses). ``attention`` decides
        what the fed tokens attend to (default: each other, no cache).
        ``logits_index`` selects the rows of the final hidden states that get
        logits (a slice along T, or a (B, K) index tensor). Returns logits
        (B, T or K, V). ``rope_span`` is the number of positions of the
        whole canvas, which sets the RoPE base under dynamic scaling
        (``RopeScaling.rope_theta_for``); None uses the configured base.
        """
        t = self.model.transformer
        attention = attention if attention is not None else DenseAttention()
        positions = position_ids if position_ids is not None else default_positions(input_ids)
        rope = rope_tables(positions, self.config.head_dim, self.config.rope_theta_for(rope_span))
        x = t["wte"](input_ids)
        for block in t["blocks"]:
            x = block(x, rope, attention)
        x = select_rows(x, logits_index)
        logits = t["ff_out"](t["ln_f"](x))
        return MaskedLMOutput(logits=logits)

