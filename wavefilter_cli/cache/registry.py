"""Names of the cache policies, each mapped to its class."""

from __future__ import annotations

from wavefilter_cli.cache.base import CachePolicy
from wavefilter_cli.cache.none import NoCache

CACHE_POLICIES: dict[str, type[CachePolicy]] = {
    NoCache.name: NoCache,
}


def make_cache_policy(name: str, **options) -> CachePolicy:
    """A fresh policy instance for ``name``."""
    try:
        cls = CACHE_POLICIES[name]
    except KeyError:
        known = ", ".join(CACHE_POLICIES)
        raise ValueError(f"cache={name!r} is unknown: use one of {known}") from None
    return cls(**options)
