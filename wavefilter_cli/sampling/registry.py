"""Sampler registry: names to classes and a factory that validates options."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from wavefilter_cli.sampling.base import Sampler
from wavefilter_cli.sampling.dream import (
    DreamOriginSampler,
    EntropySampler,
    MaskGitPlusSampler,
    TopKMarginSampler,
)
from wavefilter_cli.sampling.fast_dllm import FactorSampler, ThresholdSampler
from wavefilter_cli.sampling.llada import LowConfidenceSampler, RandomRemaskingSampler

SAMPLERS: dict[str, type[Sampler]] = {
    sampler.name: sampler
    for sampler in (
        LowConfidenceSampler,
        RandomRemaskingSampler,
        ThresholdSampler,
        FactorSampler,
        DreamOriginSampler,
        MaskGitPlusSampler,
        TopKMarginSampler,
        EntropySampler,
    )
}


def make_sampler(name: str, **options: Any) -> Sampler:
    """Build a fresh sampler by registry name, passing ``options`` to its options dataclass.

    Raises:
        ValueError: for an unknown name, an option the sampler does not take,
            or an invalid option value.
    """
    try:
        sampler_type = SAMPLERS[name]
    except KeyError:
        raise ValueError(f"unknown sampler {name!r}: use one of {', '.join(SAMPLERS)}") from None

    valid = [field.name for field in fields(sampler_type.options_type)]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(
            f"sampler {name!r} has no option {unknown[0]!r}: valid options are {', '.join(valid)}"
        )
    return sampler_type(sampler_type.options_type(**options))
