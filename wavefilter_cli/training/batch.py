"""Collate samples into padded tensors for the diffusion training loop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from wavefilter_cli.training.data import Sample


@dataclass
class Batch:
    """Padded training batch of B sequences of T tokens.

    - ``input_ids`` (B, T) long: prompt then answer target, right-padded with
      the pad id.
    - ``loss_region`` (B, T) bool: positions the loss covers, which are the
      answer target of a question sample and every token of an ``mlm`` sample.
      Never true on padding.
    - ``attention_mask`` (B, T) bool: true on real tokens, false on padding.
    """

    input_ids: torch.Tensor
    loss_region: torch.Tensor
    attention_mask: torch.Tensor


def collate(samples: Sequence[Sample], pad_id: int) -> Batch:
    """Stack ``samples`` into a ``Batch``, right-padding shorter sequences with ``pad_id``."""
    if not samples:
        raise ValueError("collate needs at least one sample")
    sequences = [sample.prompt_ids + sample.answer_ids for sample in samples]
    width = max(len(sequence) for sequence in sequences)
    input_ids = torch.full((len(samples), width), pad_id, dtype=torch.long)
    loss_region = torch.zeros((len(samples), width), dtype=torch.bool)
    attention_mask = torch.zeros((len(samples), width), dtype=torch.bool)
    for row, (sample, sequence) in enumerate(zip(samples, sequences)):
        input_ids[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
        attention_mask[row, : len(sequence)] = True
        loss_start = 0 if sample.task == "mlm" else len(sample.prompt_ids)
        loss_region[row, loss_start : len(sequence)] = True
    return Batch(input_ids=input_ids, loss_region=loss_region, attention_mask=attention_mask)
