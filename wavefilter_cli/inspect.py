"""What a key-token filter keeps of a prompt, layer by layer, for ``wavefilter inspect``.

One dense forward over the prompt; in every layer the filter sees what a
host hands it at a refresh (the last ``window`` prompt queries and all
prompt keys, RoPE applied) and selects. Alongside, the attention mass of
those queries on each prompt position is recorded as the importance signal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from wavefilter_cli.filters.base import FilterInput, KeyFilter, context_attention
from wavefilter_cli.models.attention import sdpa


@dataclass
class LayerSelection:
    """One layer: kept (H_kv, K) positions and importance (P,), the attention mass summed over KV heads."""

    kept: Tensor
    importance: Tensor


@dataclass
class RecordingAttention:
    """Dense attention that also runs ``key_filter`` on each layer's prompt keys and records the result."""

    key_filter: KeyFilter
    layers: list[LayerSelection] = field(default_factory=list)

    def attend(self, layer: int, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        window = min(self.key_filter.window, q.shape[2])
        queries = q[:, :, -window:]
        inputs = FilterInput(layer=layer, queries=queries, keys=k)
        if self.key_filter.needs_probs:
            probs = torch.softmax(queries.float() @ torch.repeat_interleave(k, q.shape[1] // k.shape[1], dim=1).float().transpose(-1, -2)
                                  / k.shape[-1] ** 0.5, dim=-1)
            inputs = FilterInput(layer=layer, queries=queries, keys=k, probs=probs)
        kept = self.key_filter.select(inputs)[0]  # (H_kv, K)
        importance = context_attention(inputs).sum(dim=2)[0].sum(dim=0)  # (P,)
        self.layers.append(LayerSelection(kept.cpu(), importance.cpu()))
        return sdpa(q, k, v)


@dataclass
class Inspection:
    """The result: per-token keep share and per-layer selections."""

    token_ids: list[int]
    keep_share: Tensor  # (P,) fraction of layer × KV-head selections that keep each position
    layers: list[LayerSelection]

    def kept_per_layer(self) -> list[int]:
        return [layer.kept.shape[-1] for layer in self.layers]


def inspect_prompt(model, prompt_ids: list[int], key_filter: KeyFilter) -> Inspection:
    """Run one dense forward over ``prompt_ids`` and record what ``key_filter`` keeps in each layer."""
    device = next(model.parameters()).device
    recorder = RecordingAttention(key_filter)
    with torch.inference_mode():
        model(torch.tensor([prompt_ids], device=device), attention=recorder, logits_index=slice(-1, None))
    length = len(prompt_ids)
    counts = torch.zeros(length)
    total = 0
    for layer in recorder.layers:
        for head in layer.kept:
            counts[head] += 1
            total += 1
    return Inspection(list(prompt_ids), counts / max(1, total), recorder.layers)
