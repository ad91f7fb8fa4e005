"""KV-cache policies for masked-diffusion decoding, one class per method behind ``CachePolicy``."""

from wavefilter_cli.cache.base import CachePolicy, CacheStats, Feed
from wavefilter_cli.cache.dkv import DKVCache
from wavefilter_cli.cache.dllm_cache import DLLMCache
from wavefilter_cli.cache.dual import DualCache
from wavefilter_cli.cache.elastic import ElasticCache
from wavefilter_cli.cache.none import NoCache
from wavefilter_cli.cache.prefix import PrefixCache
from wavefilter_cli.cache.registry import CACHE_POLICIES, build_cache, make_cache_policy
from wavefilter_cli.cache.sparse_dllm import SparseDLLMCache

__all__ = [
    "CACHE_POLICIES",
    "CachePolicy",
    "CacheStats",
    "DKVCache",
    "DLLMCache",
    "DualCache",
    "ElasticCache",
    "Feed",
    "NoCache",
    "PrefixCache",
    "SparseDLLMCache",
    "build_cache",
    "make_cache_policy",
]
