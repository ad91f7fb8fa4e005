"""Dream (``model_type: Dream``) in plain PyTorch, loadable from the official checkpoints.

Qwen2 layout: ``model.embed_tokens``, ``model.layers.N.self_attn.{q,k,v,o}_proj``
(q/k/v with biases), ``model.layers.N.mlp.{gate,up,down}_proj``,
``model.norm`` and an untied ``lm_head``. Grouped key/value heads.

Dream kept the autoregressive read-out of the Qwen2.5 model it was
initialised from: logit row i is the distribution of the token at i + 1.
``forward`` returns these raw rows; the samplers realign them
(``logit_shift = 1``). RoPE tables are cast to the activation dtype before
rotating, as the reference does.
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


class DreamConfig(RopeScaling, PretrainedConfig):
    """The fields of the official Dream ``config.json`` that the forward pass reads.

    The defaults are Dream-v0-7B's values; checkpoints set every field anyway.
    """

    model_type = "Dream"

    def __init__(
        self,
        vocab_size: int = 152064,
        hidden_size: int = 3584,
        intermediate_size: int = 18944,
        num_hidden_layers: int = 28,
        num_attention_heads: int = 28,
        num_key_value_heads: int = 4,
        hidden_act: str = "silu",
        max_position_embeddings: int = 131072,
        rms_norm_eps: float = 1e-6,
        rope_theta: float = 1000000.0,
        tie_word_embeddings: bool = False,
        use_sliding_window: bool = False,
        mask_token_id: int = 151666,
        pad_token_id: int = 151643,
        bos_token_id: int = 151643,
        eos_token_id: int = 151643,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_key_value_heads
        self.hidden_act = hidden_act
        self.max_position_embeddings = max_position_embeddings
        self.rms_norm_eps = rms_norm_eps
        self.rope_theta = rope_theta
        self.use_sliding_window = use_sliding_window
        self.mask_token_id = mask_token_id
        # Popped so transformers 5 does not warn about the legacy field; see ``rope_theta_for``.
        self.rope_scaling_type, self.rope_scaling_factor = rope_scaling_fields(kwargs.pop("rope_scaling", None))
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def n_layers(self) -> int:
        return self.num_hidden_layers

    @property
    def context_window(self) -> int:
        """Prompt plus answer tokens: the Dream authors ask users to stay within 2,048."""
        return min(2048, self.max_position_embeddings)

    @property
    def rope_trained_length(self) -> int:
        """Dynamic scaling starts past ``max_position_embeddings``, as in transformers."""
        return self.max_position_embeddings

    def unsupported_features(self) -> list[str]:
        """Config settings this implementation does not compute, as ``field=value`` strings."""
        found = []
        if self.hidden_act != "silu":
            found.append(f"hidden_act={self.hidden_act!r}")
        found.extend(self.rope_scaling_unsupported())
        if self.use_sliding_window:
            found.append("use_sliding_window=True")
        if getattr(self, "tie_word_embeddings", False):
            found.append("tie_word_embeddings=True")
        return found


class DreamAttention(nn.Module):
    def __init__(self, config: DreamConfig):
        super().__init__()
        d, hd = config.hidden_size, config.head_dim
        self.q_proj = nn.Linear(d, config.num_attention_heads * hd, bias=True)
        self.k_proj = nn.Linear(d, config.num_key_value_heads * hd, bias=True)
        self.v_proj = nn.Linear(d, config.num_key_value_heads * hd, bias=True)
        self.o_proj = nn.Linear(config.num_attention_heads * hd, d, bias=False)


class DreamMLP(nn.Module):
    def __init__(self, config: DreamConfig):
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


class DreamDecoderLayer(nn.Module):
    def __init__(self, config: DreamConfig, layer: int):
        super().__init__()
        self.layer = layer
        self.heads, self.kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = DreamAttention(config)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = DreamMLP(config)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor], attention: AttentionContext) -> Tensor:
        a = self.self_attn
        x = x + self_attention(
            self.input_layernorm(x), a.q_proj, a.k_proj, a.v_proj, a.o_proj,
            self.heads, self.kv_heads, rope, False, self.layer, attention,
        )
        return x + self.mlp(self.post_attention_layernorm(x))


class DreamBaseModel(nn.Module):
    def __init__(self, config: DreamConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DreamDecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)


class DreamModel(PreTrainedModel):
    """Dream with its LM head; ``forward`` returns raw, unshifted logits."""

    config_class = DreamConfig
    base_model_prefix = "model"
    _no_split_modules = ["DreamDecoderLayer"]

    #: Logit row i scores the token at position i + 1.
    logit_shift = 1

    def __init__(self, config: DreamConfig):
        super().__init__(config)
        self.model = DreamBaseModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, RMSNorm):
            nn.init.ones_(module.weight)

    @property
    def blocks(self) -> nn.ModuleList:
        return self.model.layers

    def forward(
        self,
        input_ids: Tensor,
        position_ids: Tensor | None = None,
        attention: AttentionContext | None = None,
        logits_index: Tensor | slice | None = None,
        rope_span: int | None = None,
        **kwargs,
    ) -> MaskedLMOutput:
        """Raw logits for the fed tokens; see ``LLaDAModelLM.forward`` for the arguments.

        Returns logits (B, T or K, V) where row i predicts position i + 1.
        """
        attention = attention if attention is not None else DenseAttention()
        positions = position_ids if position_ids is not None else default_positions(input_ids)
        rope = rope_tables(positions, self.config.head_dim, self.config.rope_theta_for(rope_span))
        x = self.model.embed_tokens(input_ids)
        for layer in self.model.layers:
            x = layer(x, rope, attention)
        x = select_rows(x, logits_index)
        return MaskedLMOutput(logits=self.lm_head(self.model.norm(x)))
