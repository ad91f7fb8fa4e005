"""Names of the key-token filters, each mapped to its class, and the factory that builds them."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from wavefilter_cli.filters.base import KeyFilter
from wavefilter_cli.filters.block_mean import BlockMean
from wavefilter_cli.filters.keep_all import KeepAll
from wavefilter_cli.filters.oracle import Oracle
from wavefilter_cli.filters.quest import Quest
from wavefilter_cli.filters.random_filter import RandomFilter
from wavefilter_cli.filters.snapkv import SnapKV
from wavefilter_cli.filters.sparse_dllm import SparseDLLMFilter
from wavefilter_cli.filters.streaming import Streaming
from wavefilter_cli.filters.wavefilter import WaveFilter, WaveFilterDenoise
from wavefilter_cli.filters.wavefilter_paper import PaperWaveFilter

FILTERS: dict[str, type[KeyFilter]] = {
    cls.name: cls
    for cls in (
        KeepAll, Oracle, SnapKV, Quest, BlockMean, Streaming, RandomFilter, WaveFilter, WaveFilterDenoise,
        PaperWaveFilter, SparseDLLMFilter,
    )
}


def make_filter(name: str, budget: float | int = 0.1, sink: int = 4, tail: int = 32, **options: Any) -> KeyFilter:
    """Build a fresh filter by registry name.

    ``options`` are the filter's own fields (``window``, and for example
    ``kernel`` for snapkv). Raises ValueError for an unknown name, an option
    the filter does not take, or an invalid value.
    """
    try:
        cls = FILTERS[name]
    except KeyError:
        raise ValueError(f"filter={name!r} is unknown: use one of {', '.join(FILTERS)}") from None
    valid = [f.name for f in fields(cls) if f.name not in ("budget", "sink", "tail")]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"filter {name!r} has no option {unknown[0]!r}: valid options are {', '.join(valid)}")
    return cls(budget=budget, sink=sink, tail=tail, **options)
