"""Names of the cache policies, each mapped to its class, and the factories the CLI calls."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from wavefilter_cli.cache.base import CachePolicy
from wavefilter_cli.cache.dkv import DKVCache
from wavefilter_cli.cache.dllm_cache import DLLMCache
from wavefilter_cli.cache.dual import DualCache
from wavefilter_cli.cache.elastic import ElasticCache
from wavefilter_cli.cache.none import NoCache
from wavefilter_cli.cache.prefix import PrefixCache
from wavefilter_cli.cache.sparse_dllm import SparseDLLMCache
from wavefilter_cli.filters.base import KeyFilter
from wavefilter_cli.filters.registry import make_filter

CACHE_POLICIES: dict[str, type[CachePolicy]] = {
    cls.name: cls for cls in (NoCache, PrefixCache, DualCache, ElasticCache, DLLMCache, SparseDLLMCache, DKVCache)
}


def make_cache_policy(
    name: str, key_filter: KeyFilter | None = None, evict: bool = False, **options: Any
) -> CachePolicy:
    """Build a fresh policy for ``name``; ``options`` are the fields of its options dataclass."""
    try:
        cls = CACHE_POLICIES[name]
    except KeyError:
        known = ", ".join(CACHE_POLICIES)
        raise ValueError(f"cache={name!r} is unknown: use one of {known}") from None
    valid = [f.name for f in fields(cls.options_type)]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        listed = ", ".join(valid) if valid else "none"
        raise ValueError(f"cache {name!r} has no option {unknown[0]!r}: valid options are {listed}")
    return cls(cls.options_type(**options), key_filter=key_filter, evict=evict)


def build_cache(
    method: str,
    filter: str | None = None,
    budget: float | int = 0.1,
    sink: int = 4,
    tail: int = 32,
    evict: bool = False,
    cache_options: dict[str, Any] | None = None,
    **filter_options: Any,
) -> CachePolicy:
    """Build a policy with an optional key-token filter, as the CLI flags describe them.

    ``filter`` None (or ``"none"``) runs the host alone. ``budget``, ``sink``,
    ``tail`` and ``filter_options`` configure the filter (see
    ``filters.base.KeyFilter``); ``cache_options`` the policy (for example
    ``{"refresh_every": 1}``). Raises ValueError naming the invalid value.
    """
    key_filter = None
    if filter is not None and filter != "none":
        key_filter = make_filter(filter, budget=budget, sink=sink, tail=tail, **filter_options)
    elif filter_options:
        first = sorted(filter_options)[0]
        raise ValueError(f"filter option {first!r} is invalid without a filter: name a filter, or drop the option")
    if evict and key_filter is None:
        raise ValueError("evict=True is invalid without a filter: name a filter, or set evict=False")
    return make_cache_policy(method, key_filter=key_filter, evict=evict, **(cache_options or {}))
