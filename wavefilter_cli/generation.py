"""The masked-diffusion generation loop: model + cache policy + sampler, yielding events.

The answer region after the prompt is split into blocks of ``block_length``
mask tokens, decoded left to right (semi-autoregressive); inside a block the
sampler commits tokens step by step in any order. The loop prints nothing:
callers render the events it yields.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Iterator, Sequence, Union

import torch
from torch import Tensor

from wavefilter_cli.cache.base import CachePolicy, feed_positions, feed_tokens
from wavefilter_cli.cache.none import NoCache
from wavefilter_cli.sampling import Sampler, block_is_finished, make_sampler

logger = logging.getLogger(__name__)


@dataclass
class GenerationConfig:
    """How the answer is decoded.

    ``max_tokens`` is rounded up to a whole number of blocks; a
    ``block_length`` above ``max_tokens`` shrinks to it. ``steps`` is the
    total number of denoising steps, split evenly over the blocks (default:
    one step per token); threshold and factor samplers ignore it and run each
    block until it has no masks.
    """

    max_tokens: int = 64
    block_length: int = 32
    steps: int | None = None
    sampler: str = "low-confidence"
    sampler_options: dict = field(default_factory=dict)
    seed: int = 0
    stop_early: bool = True

    def __post_init__(self):
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens={self.max_tokens} is invalid: use a positive number of tokens")
        if self.block_length < 1:
            raise ValueError(f"block_length={self.block_length} is invalid: use a positive number of tokens")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps={self.steps} is invalid: use a positive number of steps")
        self.block_length = min(self.block_length, self.max_tokens)

    @property
    def num_blocks(self) -> int:
        return math.ceil(self.max_tokens / self.block_length)

    @property
    def answer_length(self) -> int:
        return self.num_blocks * self.block_length

    def steps_per_block(self) -> int:
        total = self.steps if self.steps is not None else self.answer_length
        return max(1, total // self.num_blocks)


@dataclass
class StepDone:
    """One denoising step: ``committed`` positions filled, ``masked`` still open in the block."""

    block: int
    step: int
    committed: int
    masked: int
    forward_passes: int
    kept_tokens: int
    context_tokens: int
    kv_bytes: int


@dataclass
class BlockDone:
    """A block with no masks left; ``text`` is its decoded text up to any stop token."""

    block: int
    text: str
    tokens: list[int]
    finished: bool


@dataclass
class Finished:
    """The whole answer and what it cost."""

    answer: str
    tokens_in: int
    tokens_out: int
    steps: int
    forward_passes: int
    seconds: float
    kv_bytes_peak: int
    kept_tokens: int
    context_tokens: int


Event = Union[StepDone, BlockDone, Finished]


def stop_token_ids(model, tokenizer) -> list[int]:
    """EOS and end-of-turn ids from the model config and the tokenizer (never hard-coded per family)."""
    ids = set()
    for source in (model.config, getattr(model, "generation_config", None)):
        value = getattr(source, "eos_token_id", None) if source is not None else None
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(v for v in value if isinstance(v, int))
    eot = getattr(model.config, "eot_token_id", None)
    if isinstance(eot, int):
        ids.add(eot)
    if tokenizer is not None:
        if tokenizer.eos_token_id is not None:
            ids.add(tokenizer.eos_token_id)
        for token in ("<|eot_id|>", "<|im_end|>", "<|endoftext|>"):
            token_id = tokenizer.convert_tokens_to_ids(token)
            if isinstance(token_id, int) and token_id != tokenizer.unk_token_id and token_id >= 0:
                ids.add(token_id)
    return sorted(ids)


def mask_token_id(model, tokenizer) -> int:
    value = getattr(model.config, "mask_token_id", None)
    if value is None and tokenizer is not None:
        value = tokenizer.mask_token_id
    if value is None:
        raise ValueError("the model config and tokenizer name no mask token; set mask_token_id in config.json")
    return int(value)


def decode_answer(tokenizer, tokens: Sequence[int], stop_ids: Sequence[int]) -> str:
    """Text of ``tokens`` up to the first stop token, special tokens removed."""
    stops = set(stop_ids)
    kept = []
    for token in tokens:
        if token in stops:
            break
        kept.append(token)
    return tokenizer.decode(kept, skip_special_tokens=True)


def generate(
    model,
    tokenizer,
    prompt_ids: Sequence[int],
    config: GenerationConfig,
    policy: CachePolicy | None = None,
    sampler: Sampler | None = None,
    positions: Sequence[int] | None = None,
) -> Iterator[Event]:
    """Decode an answer to ``prompt_ids`` and yield events as it goes.

    One prompt (B = 1). The caller has checked that prompt plus answer fit
    the model's window. ``positions`` gives the RoPE position of every
    canvas slot (prompt, then ``config.answer_length`` answer slots); None
    uses the slot index. Policies still address slots by canvas index.
    """
    started = time.perf_counter()
    device = next(model.parameters()).device
    policy = policy if policy is not None else NoCache()
    sampler = sampler if sampler is not None else make_sampler(config.sampler, **config.sampler_options)
    mask_id = mask_token_id(model, tokenizer)
    stop_ids = stop_token_ids(model, tokenizer)
    stop_tensor = torch.tensor(stop_ids, device=device, dtype=torch.long)
    shift = int(getattr(model, "logit_shift", 0))
    generator = torch.Generator(device=device).manual_seed(config.seed)

    prompt = torch.tensor([list(prompt_ids)], dtype=torch.long, device=device)
    prompt_length = prompt.shape[1]
    if shift and prompt_length < 1:
        raise ValueError("a model with a logit shift needs at least one prompt token")
    canvas = torch.cat([prompt, torch.full((1, config.answer_length), mask_id, device=device, dtype=torch.long)], dim=1)
    position_table = None
    if positions is not None:
        position_table = torch.as_tensor(positions, dtype=torch.long, device=device)
        if position_table.shape != (canvas.shape[1],):
            raise ValueError(f"positions has {position_table.numel()} entries for a canvas of {canvas.shape[1]} slots: give one per slot")
    policy.begin(canvas, prompt_length)
    steps_per_block = config.steps_per_block()
    forward_passes = total_steps = 0
    answer_tokens: list[int] = []
    finished = False

    with torch.inference_mode():
        for block in range(config.num_blocks):
            start = prompt_length + block * config.block_length
            end = start + config.block_length
            masked = canvas[:, start:end] == mask_id
            plan = sampler.begin_block(masked, steps_per_block if sampler.uses_steps else None)
            for step in range(plan.max_steps):
                feed = policy.feed(canvas, start, end, step, shift)
                # Logit rows for the block: Dream's row i predicts position i + 1,
                # so its rows sit one position earlier than the block. Gathered
                # positions, if any, come ahead of the fed slice.
                assert feed.start <= start - shift, "policy fed too little before the block"
                assert feed.end >= end - shift, "policy fed too little of the block"
                first_row = feed.gathered + start - shift - feed.start
                rows = slice(first_row, first_row + end - start)
                fed_positions = feed_positions(feed, 1, device)
                if position_table is not None:
                    # NOTE: no policy sets Feed.positions today; one that did would be mapped as canvas slots too.
                    fed_positions = position_table[fed_positions]
                logits = model(
                    feed_tokens(canvas, feed),
                    position_ids=fed_positions,
                    attention=feed.attention,
                    logits_index=rows,
                ).logits
                policy.end_step()
                forward_passes += 1
                total_steps += 1
                tokens, committed = sampler.step(plan, step, logits, canvas[:, start:end], masked, generator)
                canvas[:, start:end] = tokens
                masked = masked & ~committed
                # NOTE: one host sync per step (both counts in one read), needed to end threshold loops early.
                committed_count, open_count = torch.stack([committed.sum(), masked.sum()]).tolist()
                stats = policy.stats
                yield StepDone(block, step, committed_count, open_count, forward_passes,
                               stats.kept_tokens, stats.context_tokens, stats.kv_bytes)
                if open_count == 0:
                    break
            policy.end_block()
            block_tokens = canvas[0, start:end].tolist()
            answer_tokens.extend(block_tokens)
            finished = bool(block_is_finished(canvas[:, start:end], stop_tensor)[0]) or any(t in stop_ids for t in block_tokens)
            text = decode_answer(tokenizer, block_tokens, stop_ids)
            yield BlockDone(block, text, block_tokens, finished)
            if finished and config.stop_early:
                break

    policy.end()
    answer = decode_answer(tokenizer, answer_tokens, stop_ids)
    out_tokens = next((i for i, t in enumerate(answer_tokens) if t in stop_ids), len(answer_tokens))
    yield Finished(
        answer=answer,
        tokens_in=prompt_length,
        tokens_out=out_tokens,
        steps=total_steps,
        forward_passes=forward_passes,
        seconds=time.perf_counter() - started,
        kv_bytes_peak=policy.stats.kv_bytes_peak,
        kept_tokens=policy.stats.kept_tokens,
        context_tokens=policy.stats.context_tokens,
    )
