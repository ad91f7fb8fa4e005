"""Early stopping of semi-autoregressive generation at stop tokens."""

from __future__ import annotations

import torch
from torch import Tensor


def block_is_finished(tokens_block: Tensor, stop_ids: Tensor) -> Tensor:
    """Mark rows whose finished block holds nothing but stop tokens.

    A block that decodes to stop tokens only (EOS or end-of-turn) means the
    generated text ended before it, so later blocks can be skipped for that row.
    Call it after the block has no masks, since the mask token is not a
    stop token.

    Args:
        tokens_block: (B, Lb) integer tokens of the block, Lb >= 1.
        stop_ids: (K,) integer stop token ids; it is moved to the block's device.

    Returns:
        (B,) bool, True where every token of the row is in ``stop_ids``.
    """
    if tokens_block.dim() != 2 or tokens_block.shape[1] == 0:
        raise ValueError(
            f"tokens_block has shape {tuple(tokens_block.shape)}: pass a (batch, block_length) tensor "
            "with block_length >= 1"
        )
    if stop_ids.dim() != 1:
        raise ValueError(f"stop_ids has shape {tuple(stop_ids.shape)}: pass a 1-D tensor of token ids")
    is_stop = torch.isin(tokens_block, stop_ids.to(tokens_block.device))
    return is_stop.all(dim=-1)
