"""Left padding of several prompts into one canvas, with the key mask and per-row RoPE positions.

Prompts of different lengths share one canvas (B, N). Row r contains
``pads[r]`` pad tokens, then its prompt, then the answer slots, so every
row's answer starts at the same canvas index P, the length of the longest
prompt. The key mask marks the pad slots, which the cache policies mask in
attention.
Positions are per row: a row's first real token gets RoPE position 0, so
a padded row sees exactly the positions it would see alone. Pad slots get
position 0; they are never attended, so their position does not matter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor


@dataclass
class PaddedBatch:
    """A left-padded canvas and what the generation loop needs to decode it.

    Attributes:
        canvas: (B, N) int64 token ids, N = P + answer length: pads, prompt, then mask tokens.
        prompt_length: P, the length of the longest prompt, where every row's answer starts.
        prompt_lengths: each row's own prompt length P_r.
        key_mask: (B, N) bool, True for real tokens (prompt and answer), or
            None when no row is padded.
        positions: (B, N) int64 RoPE position of every slot, or None when
            every row uses the slot index (no padding and no position table).
    """

    canvas: Tensor
    prompt_length: int
    prompt_lengths: list[int]
    key_mask: Tensor | None
    positions: Tensor | None

    @property
    def pads(self) -> list[int]:
        """Pad slots at the front of each row."""
        return [self.prompt_length - length for length in self.prompt_lengths]


def left_pad(
    prompts: Sequence[Sequence[int]],
    answer_length: int,
    pad_id: int,
    mask_id: int,
    device: torch.device,
    positions: Sequence[Sequence[int] | None] | None = None,
) -> PaddedBatch:
    """Build the canvas of a batch of prompts, padding each on the left to the longest.

    ``positions``, when given, contains one entry per row: None, or a table
    of RoPE positions with one entry per slot of that row alone, which are
    its prompt and then ``answer_length`` answer slots. Rows without a table
    count 0, 1, 2, … from their first real token. Raises ValueError for an
    empty batch or a table of the wrong length.
    """
    if not prompts:
        raise ValueError("the batch has no prompts: pass at least one list of prompt token ids")
    if positions is not None and len(positions) != len(prompts):
        raise ValueError(
            f"positions has {len(positions)} entries for {len(prompts)} prompts: give one table (or None) per prompt"
        )
    lengths = [len(prompt) for prompt in prompts]
    prompt_length = max(lengths)
    width = prompt_length + answer_length
    rows = [[pad_id] * (prompt_length - len(p)) + list(p) + [mask_id] * answer_length for p in prompts]
    canvas = torch.tensor(rows, dtype=torch.long, device=device)

    padded = any(length < prompt_length for length in lengths)
    key_mask = None
    if padded:
        slots = torch.arange(width, device=device)
        pads = torch.tensor([prompt_length - length for length in lengths], device=device)
        key_mask = slots[None, :] >= pads[:, None]

    tables = positions if positions is not None else [None] * len(prompts)
    if not padded and all(table is None for table in tables):
        return PaddedBatch(canvas, prompt_length, lengths, None, None)
    table_rows = []
    for row, (length, table) in enumerate(zip(lengths, tables)):
        own = length + answer_length
        if table is None:
            values = torch.arange(own, dtype=torch.long, device=device)
        else:
            values = torch.as_tensor(table, dtype=torch.long, device=device)
            if values.shape != (own,):
                prefix = "" if len(prompts) == 1 else f"row {row}: "
                raise ValueError(
                    f"{prefix}positions has {values.numel()} entries for a canvas of {own} slots: give one per slot"
                )
        table_rows.append(torch.cat([values.new_zeros(width - own), values]))
    return PaddedBatch(canvas, prompt_length, lengths, key_mask, torch.stack(table_rows))


def pad_token_id(model, tokenizer, fallback: int) -> int:
    """Return the id that fills pad slots: the model's or tokenizer's pad token, else ``fallback``.

    Pad slots are masked out of attention, so any id in the vocabulary works.
    """
    for source in (getattr(model, "config", None), tokenizer):
        value = getattr(source, "pad_token_id", None) if source is not None else None
        if isinstance(value, int) and value >= 0:
            return value
    return fallback
