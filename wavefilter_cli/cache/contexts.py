"""Attention contexts the cache policies hand to the model: one refresh kind and two step kinds.

Each is an ``AttentionContext``: the model calls ``attend(layer, q, k, v)``
once per layer with the fed tokens' queries and post-RoPE keys and values,
and the context decides what they attend to and what it stores in the
policy's ``KVState``. All work is batched tensor code: no loop over tokens
or heads and no read-back to the host.

Shapes: B batch, H query heads, H_kv key/value heads, T fed tokens, D head
dim, P context tokens, G answer tokens, S stored slots, W observation queries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from wavefilter_cli.cache.kv_store import (
    KVState,
    LayerKV,
    Selection,
    additive,
    gather_slots,
    observation_pads,
    with_answer_slots,
)
from wavefilter_cli.filters.base import FilterInput, KeyFilter, grouped_queries
from wavefilter_cli.models.attention import sdpa


@dataclass
class RefreshPlan:
    """How one refresh forward treats its layers.

    Attributes:
        key_filter: the filter to select with in this forward, or None.
        evict: whether a selection removes the unkept context K/V.
        window: canvas range [start, end) of the rows the policy's steps feed
            (the block, ``lead`` positions earlier).
        block: canvas range of the block being decoded (its queries observe).
        lead: the model's logit shift.
        store: ``"all"``, ``"prefix"`` (slots before ``window[0]``) or None.
        sparse: the fed tokens are the union of an evicting selection's kept
            positions followed by the answer, and attention gathers each
            layer's kept keys from them.
        keep_through: layers up to this index keep their stored K/V and take
            fresh K/V only for the window; -1 refreshes every layer.
        inspect: called as ``inspect(layer, q, window_rows, layer_kv)`` for
            each layer with a store, after storing.
    """

    key_filter: KeyFilter | None
    evict: bool
    window: tuple[int, int]
    block: tuple[int, int]
    lead: int
    store: str | None
    sparse: bool = False
    keep_through: int = -1
    inspect: Callable | None = None


class RefreshAttention:
    """A forward that recomputes the K/V of every fed token, optionally selecting and storing.

    The fed tokens are either the whole canvas or, for a sparse refresh, the
    union of kept context positions followed by the answer; T - G rows
    precede canvas position P in both. Queries attend to the kept context of
    their layer (all of it without a selection) plus the whole answer. In a
    selecting forward attention is dense and the filter picks afterwards, so
    the selection applies from the next forward on.
    """

    def __init__(self, state: KVState, plan: RefreshPlan) -> None:
        self.state = state
        self.plan = plan

    def window_rows(self, k: Tensor) -> tuple[int, int]:
        """Fed rows [start, end) of the plan's window, given the fed keys k (B, H_kv, T, D)."""
        fed_context = k.shape[2] - self.state.answer_length
        prompt = self.state.prompt_length
        return self.plan.window[0] - prompt + fed_context, self.plan.window[1] - prompt + fed_context

    def attend(self, layer: int, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        state, plan = self.state, self.plan
        prompt, canvas = state.prompt_length, state.canvas_length
        answer = canvas - prompt
        fed_context = k.shape[2] - answer
        window_rows = self.window_rows(k)
        if layer <= plan.keep_through and layer in state.layers:
            return self._attend_stored(layer, q, k, v, window_rows)

        heads, dtype = q.shape[1], q.dtype
        if plan.sparse:
            index = state.selection.kept_in_union[layer]
            keys = torch.cat([gather_slots(k[:, :, :fed_context], index), k[:, :, fed_context:]], dim=2)
            values = torch.cat([gather_slots(v[:, :, :fed_context], index), v[:, :, fed_context:]], dim=2)
            offset = index.shape[-1] - prompt
            bias = with_answer_slots(state.context_bias(layer, heads, dtype, evicted=True), answer)
        else:
            keys, values, offset = k, v, 0
            bias = with_answer_slots(state.context_bias(layer, heads, dtype, evicted=False), answer)
        if state.step_filter is not None and plan.key_filter is None:
            observed = q.index_select(2, self._observed_rows(q.device))
            attend_bias = step_selection_bias(state, layer, observed, k, bias, self._query_pads())
        else:
            attend_bias = bias
        out = sdpa(q, keys, values, attend_bias)

        if plan.key_filter is not None:
            kept = self._select(layer, q, k, bias)
            if plan.evict and kept.shape[-1] < prompt:
                keys = torch.cat([gather_slots(k[:, :, :prompt], kept), k[:, :, prompt:]], dim=2)
                values = torch.cat([gather_slots(v[:, :, :prompt], kept), v[:, :, prompt:]], dim=2)
                offset = kept.shape[-1] - prompt
                bias = with_answer_slots(state.context_bias(layer, heads, dtype, evicted=True), answer)
            else:
                bias = with_answer_slots(state.context_bias(layer, heads, dtype, evicted=False), answer)

        if plan.store == "all":
            state.layers[layer] = LayerKV(keys, values, offset, bias)
        elif plan.store == "prefix":
            # Clone the kept slots, so the fresh K/V of the fed suffix are freed.
            cut = plan.window[0] + offset
            state.layers[layer] = LayerKV(
                keys[:, :, :cut].clone(), values[:, :, :cut].clone(), offset, None if bias is None else bias[..., :cut]
            )
        if plan.inspect is not None and layer in state.layers:
            plan.inspect(layer, q, window_rows, state.layers[layer])
        return out

    def _attend_stored(self, layer: int, q: Tensor, k: Tensor, v: Tensor, window_rows: tuple[int, int]) -> Tensor:
        """Depth-aware refresh of a shallow layer: keep its store, take fresh K/V for the window only."""
        stored = self.state.layers[layer]
        start, end = self.plan.window
        rows = slice(*window_rows)
        stored.k[:, :, start + stored.offset : end + stored.offset] = k[:, :, rows]
        stored.v[:, :, start + stored.offset : end + stored.offset] = v[:, :, rows]
        bias = stored.bias
        if self.state.step_filter is not None:
            bias = step_selection_bias(self.state, layer, q[:, :, rows], stored.k, bias)
        out = sdpa(q, stored.k, stored.v, bias)
        if self.plan.inspect is not None:
            self.plan.inspect(layer, q, window_rows, stored)
        return out

    def _select(self, layer: int, q: Tensor, k: Tensor, bias: Tensor | None) -> Tensor:
        """Run the filter on this layer; the fed tokens are the whole canvas here. Returns (B, H_kv, K)."""
        state, plan = self.state, self.plan
        prompt = state.prompt_length
        key_filter = plan.key_filter
        if state.selection is None:
            state.selection = Selection(context_length=prompt)
        queries = q.index_select(2, self._observed_rows(q.device))  # (B, H, W, D)
        probs = None
        if key_filter.needs_probs:
            probs = dense_probs(queries, k, bias)[..., :prompt]
        context_mask = None if state.key_mask is None else state.key_mask[:, :prompt]
        inputs = FilterInput(
            layer=layer,
            queries=queries,
            keys=k[:, :, :prompt],
            probs=probs,
            key_mask=context_mask,
            min_tail=plan.lead,
            pads=state.pads,
            query_pads=self._query_pads(),
        )
        kept = key_filter.select(inputs)
        state.selection.add(layer, kept, context_mask)
        return kept

    def _query_pads(self) -> tuple[int, ...] | None:
        """Padded rows at the front of each row's observation queries (see ``_observed_rows``)."""
        prompt = self.state.prompt_length
        key_filter = self.plan.key_filter or self.state.step_filter
        return observation_pads(self.state.pads, prompt, min(key_filter.window, prompt))

    def _observed_rows(self, device: torch.device) -> Tensor:
        """Fed rows of the observation queries: the last ``window`` prompt tokens, then the block.

        Only valid when the whole canvas is fed, as in every forward that selects.
        """
        prompt = self.state.prompt_length
        key_filter = self.plan.key_filter or self.state.step_filter
        return torch.cat(
            [
                torch.arange(max(0, prompt - key_filter.window), prompt, device=device),
                torch.arange(self.plan.block[0], self.plan.block[1], device=device),
            ]
        )


class PrefixStepAttention:
    """Fast-dLLM prefix step: fed tokens attend to the stored prefix slots plus themselves."""

    def __init__(self, state: KVState) -> None:
        self.state = state

    def attend(self, layer: int, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        stored = self.state.layers[layer]
        keys = torch.cat([stored.k, k], dim=2)
        values = torch.cat([stored.v, v], dim=2)
        bias = with_answer_slots(stored.bias, k.shape[2])
        if self.state.step_filter is not None:
            bias = step_selection_bias(self.state, layer, q, keys, bias)
        return sdpa(q, keys, values, bias)


class DualStepAttention:
    """Fast-dLLM dual step: write the fed window's fresh K/V in place, attend to every slot.

    ``window_start`` is the canvas position of the first fed token.
    """

    def __init__(self, state: KVState, window_start: int) -> None:
        self.state = state
        self.window_start = window_start

    def attend(self, layer: int, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        stored = write_window(self.state.layers[layer], self.window_start, k, v)
        bias = stored.bias
        if self.state.step_filter is not None:
            bias = step_selection_bias(self.state, layer, q, stored.k, bias)
        return sdpa(q, stored.k, stored.v, bias)


def write_window(stored: LayerKV, window_start: int, k: Tensor, v: Tensor) -> LayerKV:
    """Overwrite the slots of canvas positions [window_start, window_start + T) with k, v (B, H_kv, T, D)."""
    start = window_start + stored.offset
    stored.k[:, :, start : start + k.shape[2]] = k
    stored.v[:, :, start : start + v.shape[2]] = v
    return stored


def dense_probs(queries: Tensor, keys: Tensor, bias: Tensor | None) -> Tensor:
    """Attention probabilities (B, H, W, S) of queries (B, H, W, D) over keys (B, H_kv, S, D), in float32.

    ``bias`` broadcasts to (B, H, 1, S).
    """
    batch, heads, rows, dim = queries.shape
    kv_heads = keys.shape[1]
    grouped = grouped_queries(queries, kv_heads).float()  # (B, H_kv, G·W, D)
    logits = grouped @ keys.float().transpose(-1, -2) / math.sqrt(dim)
    logits = logits.reshape(batch, heads, rows, -1)
    if bias is not None:
        logits = logits + bias.float()
    return logits.softmax(dim=-1)


def step_selection_bias(
    state: KVState,
    layer: int,
    queries: Tensor,
    keys: Tensor,
    bias: Tensor | None,
    query_pads: tuple[int, ...] | None = None,
) -> Tensor | None:
    """Select context slots for this forward only (a filter with ``per_step``) and mask the others.

    queries: (B, H, W, D) observation queries of this forward. keys: (B,
    H_kv, S, D) the keys it attends to, whose first P slots are the context
    in canvas order (masking stores every slot). bias: (B, H or 1, 1, S) or
    None. ``query_pads``: padded query rows at the front of each row, when
    the queries include prompt rows. Returns the bias with the unkept
    context slots masked as well.
    """
    key_filter = state.step_filter
    prompt = state.prompt_length
    context_mask = None if state.key_mask is None else state.key_mask[:, :prompt]
    probs = dense_probs(queries, keys, bias)[..., :prompt] if key_filter.needs_probs else None
    inputs = FilterInput(
        layer=layer, queries=queries, keys=keys[:, :, :prompt], probs=probs, key_mask=context_mask,
        pads=state.pads, query_pads=query_pads,
    )
    kept = key_filter.select(inputs)  # (B, H_kv, K)
    if kept.shape[-1] == prompt:
        return bias
    batch, kv_heads, slots, _ = keys.shape
    keep = torch.ones(batch, kv_heads, slots, dtype=torch.bool, device=keys.device)
    keep[..., :prompt] = False
    keep[..., :prompt].scatter_(2, kept, True)
    heads = queries.shape[1]
    selected = additive(keep.repeat_interleave(heads // kv_heads, dim=1)[:, :, None, :], queries.dtype)
    return selected if bias is None else torch.minimum(selected, bias)
