"""Training the answer against the prompt keys and values a prefix cache serves.

A prefix cache (Fast-dLLM's, and the hosts built on it) computes the
prompt's keys and values once, in the block's first forward, when every
answer token is still a mask, and reuses them while the answer is
denoised. Plain diffusion training always shows the prompt beside the
partly unmasked answer, so the prompt's deeper layers may lean on the
answer's decoded tokens (the restated key, for instance). At inference
under a prefix cache those tokens were masks when the prompt was encoded,
and a model trained only densely loses much of its accuracy there.

For a share of the look-up batches the loss is therefore computed in two
passes. The first, without gradients, runs the prompt beside a fully
masked answer and records every layer's prompt keys and values. The
second runs the noised batch as usual, except that in every layer the
prompt rows of the keys and values are replaced by the recorded ones. The
answer rows then attend to exactly the K/V a prefix cache serves at
inference, and the loss (on answer rows only) is computed from them. The prompt
rows computed in the second pass feed nothing the loss reads.

Shapes: B rows, H query heads, H_kv KV heads, T tokens, P prompt tokens,
D head dim.
"""

from __future__ import annotations

import torch
from torch import Tensor

from wavefilter_cli.models.attention import sdpa


class RecordingAttention:
    """Dense attention that keeps each layer's prompt keys and values (B, H_kv, P, D), detached."""

    def __init__(self, prompt_length: int) -> None:
        self.prompt_length = prompt_length
        self.keys: list[Tensor] = []
        self.values: list[Tensor] = []

    def attend(self, layer: int, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        self.keys.append(k[:, :, : self.prompt_length].detach())
        self.values.append(v[:, :, : self.prompt_length].detach())
        return sdpa(q, k, v)


class CachedPromptAttention:
    """Attention over the recorded prompt keys and values plus the current answer rows.

    ``inner`` is the context the layers would otherwise call (the attention
    supervision, for instance); None means plain dense attention.
    """

    def __init__(self, recorded: RecordingAttention, inner=None) -> None:
        self.recorded = recorded
        self.inner = inner

    def attend(self, layer: int, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        prompt = self.recorded.prompt_length
        k = torch.cat([self.recorded.keys[layer], k[:, :, prompt:]], dim=2)
        v = torch.cat([self.recorded.values[layer], v[:, :, prompt:]], dim=2)
        if self.inner is not None:
            return self.inner.attend(layer, q, k, v)
        return sdpa(q, k, v)


def record_prompt(model, input_ids: Tensor, prompt_length: int, mask_id: int, position_ids: Tensor | None = None) -> RecordingAttention:
    """Run ``input_ids`` (B, T) with every token after ``prompt_length`` masked and return the recorded prompt K/V."""
    canvas = input_ids.clone()
    canvas[:, prompt_length:] = mask_id
    recorder = RecordingAttention(prompt_length)
    with torch.no_grad():
        model(canvas, position_ids=position_ids, attention=recorder, logits_index=slice(-1, None))
    return recorder
