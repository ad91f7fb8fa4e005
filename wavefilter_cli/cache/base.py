"""The cache-policy protocol that the generation loop drives.

Per denoising step the loop asks the policy what to feed (``feed``): a
contiguous slice [start, end) of the canvas, optionally preceded by a
gathered set of earlier canvas positions, and the attention context that
the model's layers call with the fed tokens' q, k and v. The policy owns any
keys and values kept from earlier forwards, decides when to refresh them,
and reports the bytes it holds. Keys are stored after RoPE, so a kept key
keeps its original position even when neighbours are dropped.

Canvas layout: (B, N) token ids, prompt (the context, P tokens) first, then
the answer blocks. Shapes: B batch, H query heads, H_kv key/value heads,
T fed tokens, D head dim, K kept context tokens.

A policy may take a key-token filter. The filter chooses, per layer and KV
head, which context positions later forwards attend to; ``evict`` decides
whether the dropped positions are only masked (the K/V stay in memory) or
removed (memory falls with the budget, and refreshes recompute only the
kept positions and the answer). The mechanics live in ``kv_store`` and
``contexts``; this module holds the protocol and the refresh plumbing all
policies share.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, ClassVar

import torch
from torch import Tensor

from wavefilter_cli.cache.contexts import RefreshAttention, RefreshPlan
from wavefilter_cli.cache.kv_store import KVState, left_padding
from wavefilter_cli.filters.base import KeyFilter
from wavefilter_cli.models.attention import AttentionContext


@dataclass
class Feed:
    """The plan of one forward pass.

    ``start``/``end``: the canvas slice fed to the model. ``gather_index``:
    (B, E) canvas positions fed ahead of the slice (all before ``start``), or
    None; the fed tokens are then ``canvas.gather(1, gather_index)``
    followed by the slice. ``attention``: the context the layers call.
    ``positions``: (B, E + end - start) RoPE positions, or None for the
    canvas positions of the fed tokens.
    """

    start: int
    end: int
    attention: AttentionContext
    positions: Tensor | None = None
    gather_index: Tensor | None = None

    @property
    def gathered(self) -> int:
        """E, the number of gathered positions fed ahead of the slice."""
        return 0 if self.gather_index is None else self.gather_index.shape[1]


@dataclass
class CacheStats:
    """Numbers a policy reports for the live view and the benchmarks.

    ``kv_bytes``: bytes of K/V held after the last forward, measured from the
    stored tensors' storages. ``kept_tokens``: context tokens attended per
    layer and KV head (mean over layers); ``kept_per_layer`` lists them.
    ``refresh_context_tokens``: context positions a sparse refresh recomputes
    (kept by at least one layer or head).
    """

    kv_bytes: int = 0
    kv_bytes_peak: int = 0
    context_tokens: int = 0
    kept_tokens: int = 0
    refreshes: int = 0
    selections: int = 0
    refresh_context_tokens: int = 0
    kept_per_layer: list[int] = field(default_factory=list)

    def record_bytes(self, held: int) -> None:
        self.kv_bytes = held
        self.kv_bytes_peak = max(self.kv_bytes_peak, held)


@dataclass(frozen=True)
class NoOptions:
    """A policy without options of its own."""


class CachePolicy(ABC):
    """One host KV-cache method. A fresh instance serves one generation.

    Subclasses set ``name`` (the registry key), optionally ``options_type``
    (a dataclass), and implement ``feed``. ``key_filter`` picks the context
    tokens later forwards attend to; ``evict`` removes the others from
    memory instead of masking them. The loop calls ``end_step`` after every
    forward: it finishes a new selection and measures the bytes held, the
    only places where a policy reads values back to the host.
    """

    name: ClassVar[str]
    options_type: ClassVar[type] = NoOptions

    def __init__(self, options=None, key_filter: KeyFilter | None = None, evict: bool = False) -> None:
        if options is None:
            options = self.options_type()
        if not isinstance(options, self.options_type):
            raise TypeError(f"cache {self.name!r} takes {self.options_type.__name__}, got {type(options).__name__}")
        if evict and key_filter is None:
            raise ValueError("evict=True is invalid without a filter: name a filter, or set evict=False")
        if evict and key_filter.per_step:
            raise ValueError(
                f"evict=True is invalid with filter {key_filter.name!r}, which selects again at every step "
                "from the whole context: set evict=False"
            )
        self.options = options
        self.key_filter = key_filter
        self.evict = evict
        self.stats = CacheStats()
        self.state = KVState()

    @property
    def key_mask(self) -> Tensor | None:
        """(B, N) bool, True for real canvas tokens, or None when nothing is padded."""
        return self.state.key_mask

    @property
    def prompt_length(self) -> int:
        return self.state.prompt_length

    def begin(self, canvas: Tensor, prompt_length: int, key_mask: Tensor | None = None) -> None:
        """Start a generation over ``canvas`` (B, N) whose first ``prompt_length`` tokens are the prompt.

        ``key_mask`` (B, N) marks real tokens; padding must be on the left
        (see ``kv_store.left_padding``, which reads it back once).
        """
        step_filter = self.key_filter if self.key_filter is not None and self.key_filter.per_step else None
        self.state = KVState(
            prompt_length=prompt_length,
            canvas_length=canvas.shape[1],
            key_mask=key_mask,
            pads=left_padding(key_mask, prompt_length),
            step_filter=step_filter,
        )
        self.stats = CacheStats(context_tokens=prompt_length, kept_tokens=prompt_length)

    @abstractmethod
    def feed(self, canvas: Tensor, block_start: int, block_end: int, step: int, lead: int) -> Feed:
        """Plan the forward for ``step`` of the block [block_start, block_end).

        ``lead`` is the model's logit shift: the fed tokens must include the
        canvas range [block_start - lead, block_end - lead) as one contiguous
        run, so the block's logit rows exist.
        """

    def end_step(self) -> None:
        """Called after every forward: finish a selection made in it and record the bytes held."""
        selection = self.state.selection
        if selection is not None and not selection.finished:
            selection.finish()
            self.stats.selections += 1
            self.stats.kept_per_layer = selection.kept_per_layer()
            self.stats.kept_tokens = round(sum(self.stats.kept_per_layer) / max(1, len(self.stats.kept_per_layer)))
            self.stats.refresh_context_tokens = selection.union_size
        self.stats.record_bytes(self.state.held_bytes())

    def end_block(self) -> None:
        """Called once a block has no masks left."""

    def end(self) -> None:
        """Release stored keys and values."""
        self.state.layers.clear()
        self.state.selection = None

    # Shared refresh plumbing.

    def selection_due(self, step: int) -> bool:
        """Return True when this forward should select context tokens.

        Masking selects anew at every block start. Eviction selects once, at
        the first forward, because later refreshes no longer hold the
        dropped keys.
        """
        if self.key_filter is None:
            return False
        if self.evict:
            return self.state.selection is None
        return step == 0

    def refresh_feed(
        self,
        block_start: int,
        block_end: int,
        step: int,
        lead: int,
        *,
        store: str | None,
        keep_through: int = -1,
        inspect: Callable | None = None,
        reselect: bool = False,
    ) -> Feed:
        """Plan a forward that recomputes the K/V of every fed token.

        It feeds the whole canvas, except under eviction after a selection,
        where it feeds the kept context positions and the answer (a sparse
        refresh). ``store``: ``"all"`` keeps every slot, ``"prefix"`` the
        slots before ``block_start - lead``, None keeps nothing. Layers up to
        ``keep_through`` keep their stored K/V and write only the window
        [block_start - lead, block_end). ``inspect(layer, q, window_rows,
        layer_kv)`` sees each layer after it stored. With ``reselect`` the
        filter selects again, and the whole canvas is fed even after an
        eviction.
        """
        assert self.state.selection is None or self.state.selection.finished, "call end_step() after each forward"
        select = self.selection_due(step) or (reselect and self.key_filter is not None)
        if select:
            self.state.selection = None
        selection = self.state.selection
        sparse = self.evict and selection is not None and not selection.identity
        self.stats.refreshes += 1
        canvas_length = self.state.canvas_length
        plan = RefreshPlan(
            key_filter=self.key_filter if select else None,
            evict=self.evict,
            window=(block_start - lead, block_end),
            block=(block_start, block_end),
            lead=lead,
            store=store,
            sparse=sparse,
            keep_through=keep_through,
            inspect=inspect,
        )
        attention = RefreshAttention(self.state, plan)
        if not sparse:
            return Feed(0, canvas_length, attention)
        union = selection.union
        return Feed(self.prompt_length - lead, canvas_length, attention, gather_index=union[:, : union.shape[1] - lead])


def tensor_bytes(*tensors: Tensor | None) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def canvas_key_mask(key_mask: Tensor | None, start: int, end: int) -> Tensor | None:
    return None if key_mask is None else key_mask[:, start:end]


def as_positions(start: int, end: int, batch: int, device: torch.device) -> Tensor:
    return torch.arange(start, end, device=device).expand(batch, end - start)


def feed_positions(feed: Feed, batch: int, device: torch.device) -> Tensor:
    """(B, T) RoPE positions of the fed tokens: ``feed.positions`` or their canvas positions."""
    if feed.positions is not None:
        return feed.positions
    positions = as_positions(feed.start, feed.end, batch, device)
    if feed.gather_index is None:
        return positions
    return torch.cat([feed.gather_index, positions], dim=1)


def feed_tokens(canvas: Tensor, feed: Feed) -> Tensor:
    """(B, T) token ids of the fed tokens."""
    tokens = canvas[:, feed.start : feed.end]
    if feed.gather_index is None:
        return tokens
    return torch.cat([canvas.gather(1, feed.gather_index), tokens], dim=1)
