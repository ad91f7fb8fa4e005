"""The masked-diffusion generation loop: model + cache policy + sampler, yielding events.

The answer region after the prompt is split into blocks of ``block_length``
mask tokens, decoded left to right (semi-autoregressive); inside a block the
sampler commits tokens step by step in any order. The loop prints nothing:
callers render the events it yields. ``generate`` decodes one prompt and
``generate_batch`` several, left-padded into one canvas (see ``batching``);
both run the same loop.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Iterator, Sequence, Union

import torch
from torch import Tensor

from wavefilter_cli.batching import PaddedBatch, left_pad, pad_token_id
from wavefilter_cli.cache.base import CachePolicy, feed_positions, feed_tokens
from wavefilter_cli.cache.none import NoCache
from wavefilter_cli.sampling import Sampler, make_sampler

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
    """One denoising step: ``committed`` positions filled, ``masked`` still open in the block.

    In a batch both counts add up the rows.
    """

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
    """A block with no masks left; ``text`` is its decoded text up to any stop token.

    ``row`` is the batch row (0 for ``generate``). A batch yields one per
    row still decoding, in row order.
    """

    block: int
    text: str
    tokens: list[int]
    finished: bool
    row: int = 0


@dataclass
class Finished:
    """The whole answer of one row and what it cost.

    In a batch, ``steps``, ``forward_passes`` and ``kv_bytes_peak`` are those
    of the whole batch up to this row's end, ``seconds`` runs from the start
    of the batch, and ``kept_tokens`` is the policy's kept count capped at the
    row's ``context_tokens`` (its own prompt length).
    """

    answer: str
    tokens_in: int
    tokens_out: int
    steps: int
    forward_passes: int
    seconds: float
    kv_bytes_peak: int
    kept_tokens: int
    context_tokens: int
    row: int = 0


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

    One prompt (B = 1), the batch of one of ``generate_batch``. The caller
    has checked that prompt plus answer fit the model's window.
    ``positions`` gives the RoPE position of every canvas slot (prompt, then
    ``config.answer_length`` answer slots); None uses the slot index.
    Policies still address slots by canvas index.
    """
    tables = None if positions is None else [positions]
    return generate_batch(model, tokenizer, [prompt_ids], config, policy, sampler, positions=tables)


def generate_batch(
    model,
    tokenizer,
    prompts: Sequence[Sequence[int]],
    config: GenerationConfig,
    policy: CachePolicy | None = None,
    sampler: Sampler | None = None,
    positions: Sequence[Sequence[int] | None] | None = None,
    seeds: Sequence[int] | None = None,
) -> Iterator[Event]:
    """Decode answers to several prompts in one batch and yield events as it goes.

    The prompts are left-padded to the longest with the pad token (see
    ``batching``). Every policy masks the pad slots in attention, and each
    row's RoPE positions start at 0 at its first real token. Each row draws
    from its own random stream, seeded by ``seeds[r]`` (default
    ``config.seed``), so row r yields the tokens it yields alone, up to
    floating-point rounding. ``positions[r]`` is row r's position table as
    in ``generate``, or None.

    Rows finish independently: under ``config.stop_early`` a row whose
    block holds a stop token stops changing and gets its ``Finished`` event
    at once, and the batch ends when every row has finished. Each step reads
    back the per-row open mask counts in one host sync, which ends the
    step loop of threshold and factor samplers when no row has masks left.
    """
    started = time.perf_counter()
    device = next(model.parameters()).device
    policy = policy if policy is not None else NoCache()
    sampler = sampler if sampler is not None else make_sampler(config.sampler, **config.sampler_options)
    mask_id = mask_token_id(model, tokenizer)
    stop_ids = stop_token_ids(model, tokenizer)
    shift = int(getattr(model, "logit_shift", 0))
    prompts = [list(prompt) for prompt in prompts]
    if shift and any(len(prompt) < 1 for prompt in prompts):
        raise ValueError("a model with a logit shift needs at least one prompt token")
    seeds = [config.seed] * len(prompts) if seeds is None else list(seeds)
    if len(seeds) != len(prompts):
        raise ValueError(f"seeds has {len(seeds)} entries for {len(prompts)} prompts: give one seed per prompt")
    generators = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]
    fill = pad_token_id(model, tokenizer, stop_ids[0] if stop_ids else mask_id)
    batch = left_pad(prompts, config.answer_length, fill, mask_id, device, positions)
    return _decode(model, tokenizer, batch, config, policy, sampler, generators, started)


def _decode(
    model,
    tokenizer,
    batch: PaddedBatch,
    config: GenerationConfig,
    policy: CachePolicy,
    sampler: Sampler,
    generators: list[torch.Generator],
    started: float,
) -> Iterator[Event]:
    """Run the denoising loop over a padded batch; the shared body of ``generate`` and ``generate_batch``."""
    mask_id = mask_token_id(model, tokenizer)
    stop_ids = stop_token_ids(model, tokenizer)
    stops = set(stop_ids)
    shift = int(getattr(model, "logit_shift", 0))
    canvas = batch.canvas
    rows = canvas.shape[0]
    prompt_length = batch.prompt_length
    # A single generator draws exactly what a list of one draws. Passing it keeps the B = 1 path unchanged.
    random_source = generators[0] if rows == 1 else generators
    policy.begin(canvas, prompt_length, batch.key_mask)
    # Positions the canvas spans, which set the RoPE base of a model with dynamic scaling.
    span = canvas.shape[1] if batch.positions is None else int(batch.positions.max()) + 1
    steps_per_block = config.steps_per_block()
    counters = _Counters()
    answers: list[list[int]] = [[] for _ in range(rows)]
    active = [True] * rows
    reported = [False] * rows

    def finished_event(row: int) -> Finished:
        return _finished(tokenizer, policy, batch, row, answers[row], stop_ids, counters, started)

    with torch.inference_mode():
        for block in range(config.num_blocks):
            start = prompt_length + block * config.block_length
            end = start + config.block_length
            masked = canvas[:, start:end] == mask_id
            if not all(active):
                masked &= torch.tensor(active, device=canvas.device)[:, None]
            open_rows = [config.block_length if is_active else 0 for is_active in active]
            plan = sampler.begin_block(masked, steps_per_block if sampler.uses_steps else None)
            for step in range(plan.max_steps):
                logits = _block_logits(model, policy, canvas, batch.positions, start, end, step, shift, span)
                policy.end_step()
                counters.forward_passes += 1
                counters.steps += 1
                # A row without open masks commits nothing. Restoring its stream afterwards keeps its
                # later draws equal to those of a single-row run, which has already left the block.
                idle = [row for row in range(rows) if open_rows[row] == 0]
                saved = [generators[row].get_state() for row in idle]
                tokens, committed = sampler.step(plan, step, logits, canvas[:, start:end], masked, random_source)
                for row, state in zip(idle, saved):
                    generators[row].set_state(state)
                canvas[:, start:end] = tokens
                masked = masked & ~committed
                # NOTE: one host sync per step reads the commit count and each row's open masks,
                # which threshold loops need to end early.
                counts = torch.cat([committed.sum().view(1), masked.sum(dim=1)]).tolist()
                committed_count, open_rows = counts[0], counts[1:]
                stats = policy.stats
                yield StepDone(block, step, committed_count, sum(open_rows), counters.forward_passes,
                               stats.kept_tokens, stats.context_tokens, stats.kv_bytes)
                if not any(open_rows):
                    break
            policy.end_block()
            block_rows = canvas[:, start:end].tolist()
            newly_done = []
            for row in range(rows):
                if not active[row]:
                    continue
                block_tokens = block_rows[row]
                answers[row].extend(block_tokens)
                finished = any(token in stops for token in block_tokens)
                yield BlockDone(block, decode_answer(tokenizer, block_tokens, stop_ids), block_tokens, finished, row)
                if finished and config.stop_early:
                    active[row] = False
                    newly_done.append(row)
            if not any(active):
                break
            for row in newly_done:
                reported[row] = True
                yield finished_event(row)

    policy.end()
    for row in range(rows):
        if not reported[row]:
            yield finished_event(row)


@dataclass
class _Counters:
    """Denoising steps and forward passes of a batch so far."""

    steps: int = 0
    forward_passes: int = 0


def _block_logits(
    model,
    policy: CachePolicy,
    canvas: Tensor,
    position_table: Tensor | None,
    start: int,
    end: int,
    step: int,
    shift: int,
    span: int,
) -> Tensor:
    """Run the forward the policy plans for ``step`` of block [start, end); returns the block's logits (B, Lb, V)."""
    feed = policy.feed(canvas, start, end, step, shift)
    # Logit rows for the block: Dream's row i predicts position i + 1, so its rows sit
    # one position earlier than the block. Gathered positions, if any, come ahead of the fed slice.
    assert feed.start <= start - shift, "policy fed too little before the block"
    assert feed.end >= end - shift, "policy fed too little of the block"
    first_row = feed.gathered + start - shift - feed.start
    rows = slice(first_row, first_row + end - start)
    fed_positions = feed_positions(feed, canvas.shape[0], canvas.device)
    if position_table is not None:
        # NOTE: no policy sets Feed.positions today; one that did would be mapped as canvas slots too.
        fed_positions = position_table.gather(1, fed_positions)
    return model(
        feed_tokens(canvas, feed),
        position_ids=fed_positions,
        attention=feed.attention,
        logits_index=rows,
        rope_span=span,
    ).logits


def _finished(
    tokenizer,
    policy: CachePolicy,
    batch: PaddedBatch,
    row: int,
    answer_tokens: list[int],
    stop_ids: Sequence[int],
    counters: _Counters,
    started: float,
) -> Finished:
    """Build the ``Finished`` event of ``row`` from its answer tokens and the batch's costs so far."""
    stops = set(stop_ids)
    out_tokens = next((i for i, token in enumerate(answer_tokens) if token in stops), len(answer_tokens))
    context = batch.prompt_lengths[row]
    return Finished(
        answer=decode_answer(tokenizer, answer_tokens, stop_ids),
        tokens_in=context,
        tokens_out=out_tokens,
        steps=counters.steps,
        forward_passes=counters.forward_passes,
        seconds=time.perf_counter() - started,
        kv_bytes_peak=policy.stats.kv_bytes_peak,
        kept_tokens=min(policy.stats.kept_tokens, context),
        context_tokens=context,
        row=row,
    )
