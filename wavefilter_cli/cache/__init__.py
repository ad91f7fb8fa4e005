"""KV-cache policies for masked-diffusion decoding, one class per method behind ``CachePolicy``."""

from wavefilter_cli.cache.base import CachePolicy, Feed
from wavefilter_cli.cache.none import NoCache
from wavefilter_cli.cache.registry import CACHE_POLICIES, make_cache_policy

__all__ = ["CACHE_POLICIES", "CachePolicy", "Feed", "NoCache", "make_cache_policy"]
