"""Stored keys and values per layer, and the context selection a filter made.

Slot layout of one layer's store (``LayerKV``): the kept context positions
in ascending order (per KV head, since heads may keep different positions),
then the answer positions P, P+1, …. Without eviction every context
position is kept, so slots equal canvas positions. With K kept context
tokens the layer's ``offset`` is K - P, and canvas position p sits at slot
p + offset for every p ≥ P - lead: the last ``lead`` context positions are
always kept (they end every head's kept list), so the window a step writes
maps to one contiguous run of slots.

Keys are stored after RoPE: a key keeps the rotation of its canvas position
when its neighbours are dropped, so no re-rotation is ever needed.
Shapes: B batch, H query heads, H_kv key/value heads, S slots, D head dim,
P context tokens, G answer tokens, K kept context tokens, U union size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from wavefilter_cli.filters.base import KeyFilter


@dataclass
class LayerKV:
    """One layer's stored K/V.

    Attributes:
        k, v: (B, H_kv, S, D), keys post-RoPE. Written by the policy that owns
            them: replaced at refreshes, and written in place by dual-style steps.
        offset: K - P, the slot of canvas position p ≥ P - lead is p + offset.
        bias: additive attention bias (B, H or 1, 1, S) in k's dtype: the
            finfo minimum on padded or masked-out slots; None when no slot is masked.
    """

    k: Tensor
    v: Tensor
    offset: int
    bias: Tensor | None


@dataclass
class Selection:
    """The context positions kept per layer and KV head, chosen during one forward.

    ``kept[l]``: (B, H_kv, K_l) sorted canvas positions < P. ``context_keep``:
    (B, H_kv, P) bool per layer, True where the position is kept and real.
    After ``finish`` (one host sync), ``union`` (B, U) lists the positions
    kept by any layer or head, which a sparse refresh recomputes. A row with
    fewer than U such positions is padded at the front with unkept ones, and
    its kept positions follow in ascending order, ending with P - lead … P - 1.
    ``kept_in_union[l]`` (B, H_kv, K_l) gives each kept position's index in ``union``.
    """

    context_length: int
    kept: dict[int, Tensor] = field(default_factory=dict)
    context_keep: dict[int, Tensor] = field(default_factory=dict)
    union: Tensor | None = None
    kept_in_union: dict[int, Tensor] = field(default_factory=dict)
    finished: bool = False

    @property
    def identity(self) -> bool:
        """True when every layer keeps the whole context, so the selection changes nothing."""
        return all(kept.shape[-1] == self.context_length for kept in self.kept.values())

    @property
    def union_size(self) -> int:
        return 0 if self.union is None else self.union.shape[1]

    def kept_per_layer(self) -> list[int]:
        return [self.kept[layer].shape[-1] for layer in sorted(self.kept)]

    def add(self, layer: int, kept: Tensor, key_mask: Tensor | None) -> None:
        """Record ``kept`` (B, H_kv, K) for ``layer``; ``key_mask`` (B, P) marks real context tokens."""
        batch, kv_heads, _ = kept.shape
        keep = torch.zeros(batch, kv_heads, self.context_length, dtype=torch.bool, device=kept.device)
        keep.scatter_(2, kept, True)
        if key_mask is not None:
            keep &= key_mask[:, None, :]
        self.kept[layer] = kept
        self.context_keep[layer] = keep

    def finish(self) -> None:
        """Build ``union`` and ``kept_in_union``; reads the union size back to the host once."""
        any_kept = None
        for kept in self.kept.values():
            batch = kept.shape[0]
            mask = torch.zeros(batch, self.context_length, dtype=torch.bool, device=kept.device)
            mask.scatter_(1, kept.reshape(batch, -1), True)
            any_kept = mask if any_kept is None else any_kept | mask
        if any_kept is None:
            self.finished = True
            return
        size = int(any_kept.sum(dim=1).max())
        positions = torch.arange(self.context_length, device=any_kept.device)
        # Unkept positions sort first (key -1), kept ones after in canvas order; the last
        # `size` entries hold every kept position of the row.
        order_key = torch.where(any_kept, positions, torch.full_like(positions, -1))
        order = order_key.sort(dim=1, stable=True).indices
        self.union = order[:, self.context_length - size :]
        inverse = torch.full_like(any_kept, -1, dtype=torch.long)
        inverse.scatter_(1, self.union, torch.arange(size, device=any_kept.device).expand_as(self.union))
        for layer, kept in self.kept.items():
            self.kept_in_union[layer] = inverse.gather(1, kept.reshape(kept.shape[0], -1)).view_as(kept)
        self.finished = True


@dataclass
class KVState:
    """Everything a policy keeps between forwards; shared with the attention contexts it hands out.

    ``layers``: layer index to its ``LayerKV`` (empty for policies that store
    nothing). ``key_mask``: (B, N) bool, True for real canvas tokens.
    ``pads``: the left-padding slots of each row, read from ``key_mask``
    once at ``begin`` so that filters can select per row without a host
    sync; None without a key mask.
    ``step_filter``: a filter with ``per_step`` set, which every forward that
    does not select for the store calls again (masking only).
    """

    prompt_length: int = 0
    canvas_length: int = 0
    key_mask: Tensor | None = None
    pads: tuple[int, ...] | None = None
    layers: dict[int, LayerKV] = field(default_factory=dict)
    selection: Selection | None = None
    step_filter: KeyFilter | None = None

    @property
    def answer_length(self) -> int:
        return self.canvas_length - self.prompt_length

    def held_bytes(self) -> int:
        """Bytes of the storages behind the stored K/V, each storage counted once.

        Counting storages rather than tensor views reports what memory the
        store really pins, including any larger tensor a view keeps alive.
        """
        seen: dict[int, int] = {}
        for layer in self.layers.values():
            for tensor in (layer.k, layer.v):
                storage = tensor.untyped_storage()
                seen[storage.data_ptr()] = storage.nbytes()
        return sum(seen.values())

    def context_bias(self, layer: int, heads: int, dtype: torch.dtype, evicted: bool) -> Tensor | None:
        """Additive bias over one layer's context slots: (B, H or 1, 1, K or P), or None.

        Without a selection for ``layer``, or with a ``step_filter`` (which
        masks per forward instead): padding only, over the P canvas positions. With one: when ``evicted``, the padding of the kept
        positions (K slots); otherwise the kept mask over all P positions.
        """
        selection = self.selection
        context_mask = None if self.key_mask is None else self.key_mask[:, : self.prompt_length]
        if selection is None or layer not in selection.kept or self.step_filter is not None:
            return None if context_mask is None else additive(context_mask[:, None, None, :], dtype)
        kept = selection.kept[layer]
        if kept.shape[-1] == self.prompt_length and not evicted:
            return None if context_mask is None else additive(context_mask[:, None, None, :], dtype)
        if evicted:
            if context_mask is None:
                return None
            keep = context_mask.gather(1, kept.reshape(kept.shape[0], -1)).view_as(kept)
        else:
            keep = selection.context_keep[layer]
        groups = heads // keep.shape[1]
        return additive(keep.repeat_interleave(groups, dim=1)[:, :, None, :], dtype)


def left_padding(key_mask: Tensor | None, prompt_length: int) -> tuple[int, ...] | None:
    """Count the pad slots at the front of each row of ``key_mask`` (B, N), in one host read.

    Returns None for no key mask. Raises ValueError unless the mask is left
    padding: a run of False at the start of the context and True everywhere else.
    """
    if key_mask is None:
        return None
    context = key_mask[:, :prompt_length]
    pads = (~context).sum(dim=1)
    expected = torch.arange(prompt_length, device=key_mask.device)[None, :] >= pads[:, None]
    is_left_padding = (context == expected).all() & key_mask[:, prompt_length:].all()
    values = torch.cat([pads, is_left_padding.view(1).long()]).tolist()
    if not values[-1]:
        raise ValueError(
            "key_mask is not left padding: mark each row's pad slots as one run of False at the start of the "
            "prompt and every other slot True"
        )
    return tuple(values[:-1])


def observation_pads(pads: tuple[int, ...] | None, prompt_length: int, prompt_rows: int) -> tuple[int, ...] | None:
    """Padded rows at the front of each row's observation queries, whose first ``prompt_rows`` are the prompt's last."""
    if pads is None:
        return None
    first = prompt_length - prompt_rows
    return tuple(max(0, pad - first) for pad in pads)


def additive(keep: Tensor, dtype: torch.dtype) -> Tensor:
    """Additive bias from a bool mask (True = attend): 0 or the dtype's finfo minimum."""
    bias = torch.zeros(keep.shape, dtype=dtype, device=keep.device)
    return bias.masked_fill_(~keep, torch.finfo(dtype).min)


def with_answer_slots(context_bias: Tensor | None, answer_slots: int) -> Tensor | None:
    """Extend a context bias (B, H', 1, C) with zeros for ``answer_slots`` unmasked slots."""
    if context_bias is None:
        return None
    batch, heads, _, _ = context_bias.shape
    zeros = context_bias.new_zeros(batch, heads, 1, answer_slots)
    return torch.cat([context_bias, zeros], dim=-1)


def gather_slots(x: Tensor, index: Tensor) -> Tensor:
    """Rows of x (B, H_kv, T, D) picked per head by index (B, H_kv, K): (B, H_kv, K, D)."""
    return x.gather(2, index[..., None].expand(-1, -1, -1, x.shape[-1]))
