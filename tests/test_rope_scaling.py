"""Dynamic NTK-aware RoPE scaling: the base rule, the config field and its use in generation."""

from __future__ import annotations

import pytest
import torch
from tiny_models import StubTokenizer, random_tiny_model
from transformers import LlamaConfig
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from wavefilter_cli.cache import build_cache
from wavefilter_cli.generation import BlockDone, GenerationConfig, generate
from wavefilter_cli.models.dream import DreamConfig
from wavefilter_cli.models.layers import dynamic_rope_theta
from wavefilter_cli.models.llada import LLaDAConfig

DYNAMIC = {"rope_scaling": {"rope_type": "dynamic"}}


@pytest.mark.parametrize("span, trained, factor", [(8192, 4096, 1.0), (3000, 4096, 1.0), (10000, 4096, 2.0)])
def test_dynamic_theta_matches_transformers(span: int, trained: int, factor: float) -> None:
    head_dim, theta = 32, 500000.0
    reference = LlamaConfig(
        hidden_size=head_dim * 8, num_attention_heads=8, head_dim=head_dim, max_position_embeddings=trained,
        rope_parameters={"rope_type": "dynamic", "factor": factor, "rope_theta": theta},
    )
    expected, _ = ROPE_INIT_FUNCTIONS["dynamic"](reference, None, span)
    base = dynamic_rope_theta(theta, head_dim, span, trained, factor)
    ours = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)

    torch.testing.assert_close(ours, expected)


def test_llada_config_round_trips_rope_scaling() -> None:
    config = LLaDAConfig(max_sequence_length=4096, **DYNAMIC)
    saved = config.to_dict()
    loaded = LLaDAConfig.from_dict(saved)

    assert saved["rope_scaling"] == {"rope_type": "dynamic", "factor": 1.0}
    assert "rope_scaling_type" not in saved
    assert loaded.rope_scaling_type == "dynamic"
    assert loaded.rope_theta_for(4096) == config.rope_theta
    assert loaded.rope_theta_for(8192) > config.rope_theta
    assert loaded.rope_theta_for(None) == config.rope_theta
    assert "rope_scaling" not in LLaDAConfig().to_dict()


@pytest.mark.parametrize("config_class", [LLaDAConfig, DreamConfig])
def test_unknown_rope_scaling_is_unsupported(config_class) -> None:
    config = config_class(rope_scaling={"rope_type": "yarn", "factor": 4.0})

    assert "rope_scaling.rope_type='yarn'" in config.unsupported_features()
    assert config_class(**DYNAMIC).unsupported_features() == []


def test_dream_scales_past_max_position_embeddings() -> None:
    config = DreamConfig(max_position_embeddings=2048, **DYNAMIC)

    assert config.rope_theta_for(2048) == config.rope_theta
    assert config.rope_theta_for(4096) == dynamic_rope_theta(config.rope_theta, config.head_dim, 4096, 2048)


def answer(model, prompt: list[int], method: str, options: dict | None = None) -> list[int]:
    config = GenerationConfig(max_tokens=16, block_length=8, steps=8)
    events = generate(model, StubTokenizer(), prompt, config, build_cache(method, cache_options=options))
    return [token for event in events if isinstance(event, BlockDone) for token in event.tokens]


def test_scaling_leaves_prompts_within_window_alone() -> None:
    plain = random_tiny_model("llada", seed=3, window=64)
    scaled = random_tiny_model("llada", seed=3, window=64, **DYNAMIC)
    prompt = torch.randint(0, 290, (40,), generator=torch.Generator().manual_seed(1)).tolist()

    assert answer(scaled, prompt, "none") == answer(plain, prompt, "none")


def test_scaled_cache_matches_dense_past_window() -> None:
    # One RoPE base per generation: a prefix cache refreshed at every step must equal dense attention.
    scaled = random_tiny_model("llada", seed=3, window=64, **DYNAMIC)
    prompt = torch.randint(0, 290, (100,), generator=torch.Generator().manual_seed(2)).tolist()
    canvas = torch.tensor([prompt + [300] * 16])
    plain_logits = scaled(canvas).logits
    scaled_logits = scaled(canvas, rope_span=canvas.shape[1]).logits

    assert not torch.allclose(plain_logits, scaled_logits)
    assert answer(scaled, prompt, "prefix", {"refresh_every": 1}) == answer(scaled, prompt, "none")
