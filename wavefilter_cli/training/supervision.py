"""Attention supervision: an auxiliary loss that shortens the look-up plateau.

A small transformer trained only on answer tokens sits for thousands of
steps at chance among the values in the document before it learns to look
them up. Look-up in these tasks is copying by induction: the answer token
that follows "blue vault is" is the token that follows "blue vault is" in
the document. That needs two attention steps: a head that reads the
previous tokens (so each position knows its left context) and, one layer
up, a head from the answer position to the document position whose left
context matches. Neither gets a useful gradient until the other works,
which is the plateau.

This module supervises both heads directly, as a small extra cross-entropy
on their attention probabilities: in layer 0, head ``h`` (``h`` <
``previous_heads``) attends from each position to ``h + 1`` tokens back. In
each layer of ``copy_layer``, the first ``copy_heads`` heads attend from each
answer position to the prompt position it copies (``copy_sources``). The model's
architecture and inference path do not change; the heads only start in the
right place, and the task loss shapes everything else.

Shapes: B rows, T tokens, K answer positions per row, S sampled positions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from wavefilter_cli.models.attention import sdpa

#: Target value for an answer position that copies nothing (ignored by the loss).
NO_SOURCE = -100
#: Left-context tokens compared when choosing an answer token's source.
MAX_CONTEXT = 8


class CopySources:
    """Finds, for each answer token, the prompt position it copies.

    The source of answer token i is the prompt position with the same token
    whose left context agrees with the answer's left context for the most
    tokens. Tokens are compared case-folded and without leading spaces, so
    "The PIN" in an answer matches "the PIN" in the question. Of equal
    matches, the last one wins. A token whose best match has no agreeing context has no source,
    unless it occurs only once in the prompt.
    """

    def __init__(self, tokenizer) -> None:
        pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        folded: dict[str, int] = {}
        # Byte-level BPE marks a leading space with "Ġ".
        self.fold = np.array([folded.setdefault(p.lstrip("Ġ").lower(), len(folded)) for p in pieces], dtype=np.int64)

    def __call__(self, prompt_ids: list[int], answer_ids: list[int], skip: set[int]) -> list[int]:
        """Source prompt position per answer token (``NO_SOURCE`` for none); tokens in ``skip`` get none."""
        prompt = np.asarray(prompt_ids, dtype=np.int64)
        answer = np.asarray(answer_ids, dtype=np.int64)
        prompt_fold, answer_fold = self.fold[prompt], self.fold[answer]
        sources = [NO_SOURCE] * len(answer_ids)
        for i, token in enumerate(answer_ids):
            if token in skip:
                continue
            candidates = np.flatnonzero(prompt == token)
            if candidates.size == 0:
                continue
            agree = np.zeros(candidates.size, dtype=np.int64)
            alive = np.ones(candidates.size, dtype=bool)
            for back in range(1, min(MAX_CONTEXT, i) + 1):
                before = candidates - back
                same = (before >= 0) & (prompt_fold[np.maximum(before, 0)] == answer_fold[i - back])
                alive &= same
                agree += alive
            best = agree.max()
            if best > 0:
                # Ties are copies of the same text (the question restates the fact's key); take the
                # one nearest the answer.
                sources[i] = int(candidates[np.flatnonzero(agree == best)[-1]])
            elif candidates.size == 1:
                sources[i] = int(candidates[0])
        return sources


@dataclass
class SupervisedAttention:
    """Dense attention that also scores chosen heads against target positions.

    ``copy_index`` (B, K): the answer positions; ``copy_targets`` (B, K): the
    position each should attend to, or ``NO_SOURCE``. ``previous_index``
    (B, S): positions (all ≥ ``previous_heads``) whose previous-token
    attention is scored. After the forward, ``loss`` contains the sum of the
    mean cross-entropies, one per supervised head.
    """

    copy_index: Tensor
    copy_targets: Tensor
    previous_index: Tensor
    previous_heads: int = 2
    copy_layer: int | tuple[int, ...] = 1
    copy_heads: int = 1
    loss: Tensor | float = field(default=0.0)

    def attend(self, layer: int, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        group = q.shape[1] // k.shape[1]
        if layer == 0:
            for head in range(self.previous_heads):
                targets = self.previous_index - (head + 1)
                self.loss = self.loss + head_loss(q, k, head, group, self.previous_index, targets)
        copy_layers = (self.copy_layer,) if isinstance(self.copy_layer, int) else self.copy_layer
        if layer in copy_layers:
            for head in range(self.copy_heads):
                self.loss = self.loss + head_loss(q, k, head, group, self.copy_index, self.copy_targets)
        return sdpa(q, k, v)


def head_loss(q: Tensor, k: Tensor, head: int, group: int, rows: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy of one head's attention from ``rows`` (B, R) against ``targets`` (B, R).

    q: (B, H, T, D); k: (B, H_kv, T, D). Targets equal to ``NO_SOURCE`` are ignored.
    """
    dim = q.shape[-1]
    queries = q[:, head].gather(1, rows[..., None].expand(-1, -1, dim))  # (B, R, D)
    scores = queries @ k[:, head // group].transpose(-1, -2) / math.sqrt(dim)  # (B, R, T)
    if not (targets != NO_SOURCE).any():
        return scores.sum() * 0.0
    return F.cross_entropy(scores.float().transpose(1, 2), targets, ignore_index=NO_SOURCE)
