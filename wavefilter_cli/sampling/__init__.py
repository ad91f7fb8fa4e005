"""Samplers for masked diffusion LLMs: which masked positions to commit at each step, and with which tokens."""

from wavefilter_cli.sampling.base import BlockPlan, RandomSource, Sampler
from wavefilter_cli.sampling.dream import (
    DreamConfidenceOptions,
    DreamConfidenceSampler,
    DreamOptions,
    DreamOriginSampler,
    EntropySampler,
    MaskGitPlusSampler,
    TopKMarginSampler,
    dream_step_fractions,
    dream_transfer_counts,
)
from wavefilter_cli.sampling.dream_tokens import (
    filter_top_k,
    filter_top_p,
    margin_confidence,
    negative_entropy,
    token_distribution,
)
from wavefilter_cli.sampling.fast_dllm import (
    FactorOptions,
    FactorSampler,
    ThresholdOptions,
    ThresholdSampler,
    factor_rule_counts,
)
from wavefilter_cli.sampling.llada import (
    LLaDAOptions,
    LowConfidenceSampler,
    RandomRemaskingSampler,
    llada_quotas,
)
from wavefilter_cli.sampling.registry import SAMPLERS, make_sampler
from wavefilter_cli.sampling.shift import align_logits, block_logits
from wavefilter_cli.sampling.stopping import block_is_finished

__all__ = [
    "SAMPLERS",
    "BlockPlan",
    "DreamConfidenceOptions",
    "DreamConfidenceSampler",
    "DreamOptions",
    "DreamOriginSampler",
    "EntropySampler",
    "FactorOptions",
    "FactorSampler",
    "LLaDAOptions",
    "LowConfidenceSampler",
    "MaskGitPlusSampler",
    "RandomRemaskingSampler",
    "RandomSource",
    "Sampler",
    "ThresholdOptions",
    "ThresholdSampler",
    "TopKMarginSampler",
    "align_logits",
    "block_is_finished",
    "block_logits",
    "dream_step_fractions",
    "dream_transfer_counts",
    "factor_rule_counts",
    "filter_top_k",
    "filter_top_p",
    "llada_quotas",
    "make_sampler",
    "margin_confidence",
    "negative_entropy",
    "token_distribution",
]
