"""LLaDA and Dream in plain PyTorch, with one attention seam for cache policies."""

from wavefilter_cli.models.attention import AttentionContext, DenseAttention
from wavefilter_cli.models.dream import DreamConfig, DreamModel
from wavefilter_cli.models.llada import LLaDAConfig, LLaDAModelLM
from wavefilter_cli.models.loading import choose_placement, load_model, load_tokenizer

__all__ = [
    "AttentionContext",
    "DenseAttention",
    "DreamConfig",
    "DreamModel",
    "LLaDAConfig",
    "LLaDAModelLM",
    "choose_placement",
    "load_model",
    "load_tokenizer",
]
