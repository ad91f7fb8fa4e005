"""Train the built-in LLaDA-architecture model on long-document look-ups, on a CPU.

Objective (LLaDA's SFT loss): for each sample draw t ~ U(ε, 1), mask each
answer token with probability t, and score the masked tokens with cross
entropy weighted 1/t, normalised by the answer length. A share of batches is
masked-LM over plain book text, scored on one contiguous span so that the
model also learns to continue quotations.

Training grows the context length in stages (a curriculum); each stage's
batch holds about the same number of tokens. The run checkpoints every few
minutes and the same command resumes from the last checkpoint, so it can be
stopped at any moment:

    python -m wavefilter_cli.training.train --out training/runs/builtin

The finished model is exported with ``--export DIR`` (weights, config and
tokenizer, loadable with ``load_model``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch.nn import functional as F

from wavefilter_cli.models.llada import LLaDAConfig, LLaDAModelLM
from wavefilter_cli.training.cached_prompt import CachedPromptAttention, record_prompt
from wavefilter_cli.training.supervision import NO_SOURCE, CopySources, SupervisedAttention

logger = logging.getLogger(__name__)

EPS = 1e-3  # LLaDA's floor on the mask ratio: p = (1 - ε) t + ε.


@dataclass
class ModelShape:
    """Architecture of the built-in model (LLaDA ``llama`` block type)."""

    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 8
    mlp_hidden_size: int = 512
    rope_theta: float = 500000.0
    max_sequence_length: int = 4096


@dataclass
class Stage:
    """One curriculum stage: prompts of ``min_length``…``max_length`` tokens for ``steps`` optimizer steps.

    ``restart_lr``, when set, starts a new learning-rate cycle at this stage:
    warm-up to that peak, then cosine decay until the next restart or the end.
    ``copy_layers``, when set, replaces the run's ``copy_layer`` for this stage.
    ``cached_prompt_share`` is the share of look-up batches whose answer is
    trained against the prompt K/V a prefix cache serves (training/cached_prompt.py).
    ``task_weights``, when set, replaces the run's task mix for this stage.
    """

    min_length: int
    max_length: int
    steps: int
    restart_lr: float | None = None
    copy_layers: list[int] | None = None
    cached_prompt_share: float = 0.0
    task_weights: dict[str, float] | None = None


#: Task mix of the fourth learning-rate cycle.
FOURTH_CYCLE_TASKS = {
    "niah_single": 2.0,
    "niah_multikey": 6.0,
    "niah_multivalue": 1.0,
    "niah_multiquery": 1.5,
    "quote": 0.5,
    "vartrack": 0.5,
}


@dataclass
class TrainConfig:
    """Everything that determines a run; saved beside its checkpoints."""

    seed: int = 0
    shape: ModelShape = field(default_factory=ModelShape)
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 200
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    batch_tokens: int = 4096
    answer_length: int = 32
    mlm_share: float = 0.1
    task_weights: dict[str, float] = field(
        default_factory=lambda: {
            "niah_single": 2.0,
            "niah_multikey": 3.0,
            "niah_multivalue": 1.0,
            "niah_multiquery": 1.0,
            "quote": 1.0,
            "vartrack": 1.0,
        }
    )
    stages: list[Stage] = field(
        default_factory=lambda: [
            Stage(96, 192, 2000),
            Stage(192, 768, 900),
            Stage(512, 2048, 400),
            Stage(1024, 4096, 150),
            # Second cycle: more recall practice on short prompts, then the curriculum again. From its
            # second stage, head 0 of the last layer is a supervised copy head too (it feeds the logits).
            Stage(96, 256, 664, restart_lr=1e-3),
            Stage(96, 256, 1336, copy_layers=[1, 3]),
            Stage(256, 1024, 700, copy_layers=[1, 3]),
            Stage(1024, 4096, 150, copy_layers=[1, 3]),
            # Third cycle: the 4,096-token prompts had only 300 of the first 6,300 steps.
            # Half of its look-up batches answer from the prompt K/V a prefix cache would serve.
            Stage(256, 2048, 800, restart_lr=6e-4, copy_layers=[1, 3], cached_prompt_share=0.5),
            Stage(1024, 4096, 400, copy_layers=[1, 3], cached_prompt_share=0.5),
            # Fourth cycle: twice the multi-key share, where the heads confuse facts that share a
            # sentence pattern, and no prefix-cache batches (a mid-answer refresh closes that gap).
            Stage(256, 1024, 500, restart_lr=5e-4, copy_layers=[1, 3], task_weights=FOURTH_CYCLE_TASKS),
            Stage(1024, 4096, 1000, copy_layers=[1, 3], task_weights=FOURTH_CYCLE_TASKS),
        ]
    )
    # Random start offset added to every position, so absolute positions up to
    # this value occur while training on short prompts.
    max_position_offset: int = 0
    # Attention supervision (training/supervision.py). These set the weight of
    # the auxiliary loss and the number of previous-token heads in layer 0.
    # They also set the layer and count of the copy heads (answer token to the
    # prompt token it copies) and the positions per row scored for previous tokens.
    supervision_weight: float = 0.1
    previous_heads: int = 4
    copy_layer: int = 1
    copy_heads: int = 1
    supervised_positions: int = 256
    checkpoint_minutes: float = 10.0
    eval_every: int = 500
    eval_samples: int = 8

    def __post_init__(self):
        if not 0.0 <= self.mlm_share < 1.0:
            raise ValueError(f"mlm_share={self.mlm_share} is invalid: use a value in [0, 1)")
        if self.batch_tokens < self.stages[-1].max_length:
            raise ValueError(f"batch_tokens={self.batch_tokens} is smaller than the longest stage ({self.stages[-1].max_length})")

    @property
    def total_steps(self) -> int:
        return sum(stage.steps for stage in self.stages)

    @classmethod
    def from_dict(cls, raw: dict) -> "TrainConfig":
        raw = dict(raw)
        raw["shape"] = ModelShape(**raw.get("shape", {}))
        raw["stages"] = [Stage(**s) for s in raw.get("stages", [])] or cls().stages
        return cls(**raw)


def stage_at(config: TrainConfig, step: int) -> Stage:
    done = 0
    for stage in config.stages:
        done += stage.steps
        if step < done:
            return stage
    return config.stages[-1]


def lr_cycles(config: TrainConfig) -> list[tuple[int, int, float]]:
    """Return (first step, end step, peak lr) per learning-rate cycle. A stage with ``restart_lr`` opens one."""
    starts, peaks, done = [0], [config.lr], 0
    for stage in config.stages:
        if stage.restart_lr is not None and done > 0:
            starts.append(done)
            peaks.append(stage.restart_lr)
        done += stage.steps
    ends = starts[1:] + [config.total_steps]
    return list(zip(starts, ends, peaks))


def learning_rate(config: TrainConfig, step: int) -> float:
    """Per cycle: linear warm-up, then cosine decay to ``min_lr_ratio`` × its peak at the cycle's end."""
    start, end, peak = next(c for c in reversed(lr_cycles(config)) if c[0] <= step)
    local = step - start
    if local < config.warmup_steps:
        return peak * (local + 1) / config.warmup_steps
    progress = min(1.0, (local - config.warmup_steps) / max(1, end - start - config.warmup_steps))
    floor = config.min_lr_ratio
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def build_model(shape: ModelShape, tokenizer) -> LLaDAModelLM:
    vocab = len(tokenizer)
    config = LLaDAConfig(
        d_model=shape.d_model,
        n_layers=shape.n_layers,
        n_heads=shape.n_heads,
        n_kv_heads=shape.n_heads,
        mlp_hidden_size=shape.mlp_hidden_size,
        vocab_size=vocab,
        embedding_size=vocab,
        rope_theta=shape.rope_theta,
        max_sequence_length=shape.max_sequence_length,
        mask_token_id=tokenizer.mask_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eot_token_id=tokenizer.convert_tokens_to_ids("<|eot_id|>"),
        architectures=["LLaDAModelLM"],
    )
    return LLaDAModelLM(config)


def mask_batch(input_ids: torch.Tensor, loss_region: torch.Tensor, mask_id: int, generator: torch.Generator):
    """Mask the loss region at a random ratio per row.

    input_ids, loss_region: (B, T). Returns the noised ids (B, T), the masked
    positions (B, T) bool and the per-row ratio p (B,).
    """
    batch = input_ids.shape[0]
    t = torch.rand(batch, generator=generator)
    p = (1 - EPS) * t + EPS
    draw = torch.rand(input_ids.shape, generator=generator)
    masked = (draw < p[:, None]) & loss_region
    # Every row scores at least one token, so no batch row is wasted.
    empty = ~masked.any(dim=1)
    if empty.any():
        first = loss_region.float().argmax(dim=1)
        masked[empty, first[empty]] = True
    noised = torch.where(masked, torch.full_like(input_ids, mask_id), input_ids)
    return noised, masked, p


def diffusion_loss(model, input_ids, loss_region, mask_id, generator, position_offset: torch.Tensor | None = None,
                   attention=None, cached_prompt: int | None = None):
    """LLaDA's masked-diffusion loss, with logits computed only on the loss region.

    input_ids, loss_region: (B, T); every row has the same number K of loss
    positions. ``attention`` is the context the layers call (dense when
    None). ``cached_prompt``, when set, is the prompt length P of rows whose
    loss region is everything after it; the answer then attends to the
    prompt K/V recorded with a fully masked answer (training/cached_prompt.py).
    Returns the scalar loss and the masked-token accuracy.
    """
    noised, masked, p = mask_batch(input_ids, loss_region, mask_id, generator)
    batch, length = input_ids.shape
    region_size = int(loss_region[0].sum())
    index = loss_region.nonzero()[:, 1].view(batch, region_size)  # (B, K)
    positions = None
    if position_offset is not None:
        positions = torch.arange(length)[None, :] + position_offset[:, None]
    if cached_prompt is not None:
        recorded = record_prompt(model, input_ids, cached_prompt, mask_id, positions)
        attention = CachedPromptAttention(recorded, attention)
    logits = model(noised, position_ids=positions, attention=attention, logits_index=index).logits.float()  # (B, K, V)
    targets = torch.gather(input_ids, 1, index)
    scored = torch.gather(masked, 1, index)
    ce = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")  # (B, K)
    loss = ((ce * scored).sum(dim=1) / p / region_size).mean()
    with torch.no_grad():
        correct = ((logits.argmax(-1) == targets) & scored).sum()
        accuracy = correct.float() / scored.sum().clamp(min=1)
    return loss, accuracy


def supervised_attention(config: TrainConfig, region: torch.Tensor, copy_targets: torch.Tensor,
                         generator: torch.Generator, stage: Stage | None = None) -> SupervisedAttention | None:
    """Build the attention context that adds the supervision loss, or return None when its weight is 0.

    region: (B, T) loss region with K positions per row; copy_targets: (B, K).
    """
    if config.supervision_weight <= 0:
        return None
    batch, length = region.shape
    region_size = int(region[0].sum())
    copy_index = region.nonzero()[:, 1].view(batch, region_size)
    count = min(config.supervised_positions, length - config.previous_heads)
    low = config.previous_heads
    previous_index = torch.stack([torch.randperm(length - low, generator=generator)[:count] + low for _ in range(batch)])
    copy_layer = config.copy_layer
    if stage is not None and stage.copy_layers is not None:
        copy_layer = tuple(stage.copy_layers)
    return SupervisedAttention(
        copy_index=copy_index, copy_targets=copy_targets, previous_index=previous_index,
        previous_heads=config.previous_heads, copy_layer=copy_layer, copy_heads=config.copy_heads,
    )


class BatchSource:
    """Draws training batches: look-up tasks plus a share of masked-LM spans over book text."""

    def __init__(self, config: TrainConfig, generator_factory, seed: int):
        self.config = config
        self.samples = generator_factory()
        self.rng = random.Random(seed)
        tokenizer = self.samples.tokenizer
        self.copy_sources = CopySources(tokenizer)
        self.no_copy = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|eot_id|>")}

    def next(self, stage: Stage):
        """One batch: input_ids (B, T), loss region (B, T) bool, copy targets (B, K) of the region's positions."""
        length = self.rng.randint(stage.min_length, stage.max_length)
        batch = max(1, self.config.batch_tokens // (length + self.config.answer_length))
        if self.rng.random() < self.config.mlm_share:
            rows = [self.samples.make("mlm", length + self.config.answer_length, self.rng) for _ in range(batch)]
            input_ids = torch.tensor([s.prompt_ids for s in rows], dtype=torch.long)
            region = torch.zeros_like(input_ids, dtype=torch.bool)
            total = input_ids.shape[1]
            for row in range(batch):
                start = self.rng.randint(0, total - self.config.answer_length)
                region[row, start : start + self.config.answer_length] = True
            return input_ids, region, torch.full((batch, self.config.answer_length), NO_SOURCE)
        rows = []
        weights = stage.task_weights or self.config.task_weights
        for _ in range(batch):
            task = self.rng.choices(list(weights), list(weights.values()))[0]
            try:
                rows.append(self.samples.make(task, length, self.rng))
            except ValueError:
                # Some tasks need more room than a short prompt has; single facts always fit.
                rows.append(self.samples.make("niah_single", length, self.rng))
        input_ids = torch.tensor([s.prompt_ids + s.answer_ids for s in rows], dtype=torch.long)
        region = torch.zeros_like(input_ids, dtype=torch.bool)
        region[:, length:] = True
        sources = [self.copy_sources(s.prompt_ids, s.answer_ids, self.no_copy) for s in rows]
        return input_ids, region, torch.tensor(sources, dtype=torch.long)


@torch.no_grad()
def quick_eval(model, tokenizer, samples, lengths, tasks, count, seed=1234) -> dict[str, float]:
    """Score exact match of the answers the real sampler decodes (low-confidence, two tokens per step, dense attention).

    A training-time signal on a few held-out samples; the shipping numbers
    come from ``wavefilter_cli.training.evaluate`` with more samples.
    """
    from wavefilter_cli.cache import build_cache
    from wavefilter_cli.generation import Finished, GenerationConfig, generate

    model.eval()
    rng = random.Random(seed)
    results = {}
    for length in lengths:
        for task in tasks:
            hits = tried = 0
            for index in range(count):
                try:
                    sample = samples.make(task, length, rng, depth=(index + 0.5) / count)
                except ValueError:
                    continue
                tried += 1
                config = GenerationConfig(max_tokens=len(sample.answer_ids), block_length=len(sample.answer_ids),
                                          steps=len(sample.answer_ids) // 2)
                events = generate(model, tokenizer, sample.prompt_ids, config, build_cache("none"))
                finished = next(e for e in events if isinstance(e, Finished))
                hits += finished.answer.strip() == sample.answer_text.strip()
            results[f"{task}@{length}"] = round(hits / max(1, tried), 3)
    model.train()
    return results


def save_checkpoint(run_dir: Path, model, optimizer, state: dict) -> None:
    """Write the checkpoint to a temporary folder and swap it in, so a kill never leaves half a checkpoint."""
    tmp = run_dir / "checkpoint.tmp"
    final = run_dir / "checkpoint"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp / "model.safetensors")
    model.config.to_json_file(tmp / "config.json")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps(state, indent=1))
    old = run_dir / "checkpoint.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def export_model(run_dir: Path, tokenizer_dir: Path, out_dir: Path) -> None:
    """Copy the last checkpoint's weights and config plus the tokenizer into ``out_dir``."""
    ckpt = run_dir / "checkpoint"
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ckpt / "model.safetensors", out_dir / "model.safetensors")
    config = json.loads((ckpt / "config.json").read_text())
    # The CLI refuses tasks this model was not trained for (summaries) before doing any work.
    config["wavefilter_capabilities"] = ["lookup-only"]
    # Under the prefix and dual hosts this model needs a refresh once the answer's key words are decoded.
    config["wavefilter_defaults"] = {"cache.refresh_every": 8}
    # Past its 4,096-token window this model decodes fragments under plain RoPE (docs/builtin-model.md).
    config["rope_scaling"] = {"rope_type": "dynamic", "factor": 1.0}
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for item in tokenizer_dir.iterdir():
        if item.name.startswith("tokenizer") or item.name == "special_tokens_map.json" or item.name.endswith(".jinja"):
            if item.resolve() != (out_dir / item.name).resolve():
                shutil.copy2(item, out_dir / item.name)


def train(run_dir: Path, tokenizer_dir: Path, haystack_dir: Path, config: TrainConfig, max_minutes: float | None = None) -> None:
    from transformers import AutoTokenizer

    from wavefilter_cli.training.data import Haystack, SampleGenerator

    run_dir.mkdir(parents=True, exist_ok=True)
    config_file = run_dir / "train_config.json"
    if config_file.exists():
        config = TrainConfig.from_dict(json.loads(config_file.read_text()))
        logger.info("resuming with the run's saved config %s", config_file)
    else:
        config_file.write_text(json.dumps(asdict(config), indent=1))

    torch.manual_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    model = build_model(config.shape, tokenizer)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
        betas=(0.9, 0.95),
    )
    state = {"step": 0, "elapsed_seconds": 0.0, "tokens": 0}
    ckpt = run_dir / "checkpoint"
    if (ckpt / "state.json").exists():
        model.load_state_dict(load_file(ckpt / "model.safetensors"))
        if (ckpt / "optimizer.pt").exists():
            optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", weights_only=True))
        else:
            # A checkpoint seeded from exported weights has no optimizer moments, so AdamW starts afresh.
            logger.warning("%s has no optimizer.pt: continuing with fresh optimizer moments", ckpt)
        state = json.loads((ckpt / "state.json").read_text())
        logger.info("resumed from %s at step %d", ckpt, state["step"])

    haystack = Haystack(haystack_dir)
    factory = lambda split: (lambda: SampleGenerator(tokenizer, haystack, answer_length=config.answer_length, split=split))  # noqa: E731
    # Seeding by step makes a resumed run draw fresh batches, not replay the first ones.
    source = BatchSource(config, factory("train"), seed=config.seed * 1_000_003 + state["step"])
    eval_samples = factory("eval")()
    generator = torch.Generator().manual_seed(config.seed * 7919 + state["step"])
    log_file = (run_dir / "train_log.jsonl").open("a")
    mask_id = tokenizer.mask_token_id

    model.train()
    started = time.time()
    last_save = started
    window_loss, window_acc, window_tokens, window_steps, window_start = 0.0, 0.0, 0, 0, time.time()
    window_aux = 0.0
    while state["step"] < config.total_steps:
        step = state["step"]
        stage = stage_at(config, step)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step)
        input_ids, region, copy_targets = source.next(stage)
        offset = None
        if config.max_position_offset:
            room = max(0, config.max_position_offset - input_ids.shape[1])
            offset = torch.randint(0, room + 1, (input_ids.shape[0],), generator=generator)
        supervision = supervised_attention(config, region, copy_targets, generator, stage)
        cached_prompt = None
        prompt_length = input_ids.shape[1] - int(region[0].sum())
        if stage.cached_prompt_share > 0 and bool(region[:, prompt_length:].all()):
            if float(torch.rand(1, generator=generator)) < stage.cached_prompt_share:
                cached_prompt = prompt_length
        loss, accuracy = diffusion_loss(model, input_ids, region, mask_id, generator, offset, supervision, cached_prompt)
        total = loss
        if supervision is not None:
            window_aux += float(supervision.loss.detach())
            total = loss + config.supervision_weight * supervision.loss
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        state["step"] += 1
        state["tokens"] += input_ids.numel()
        window_loss += loss.item()
        window_acc += accuracy.item()
        window_tokens += input_ids.numel()
        window_steps += 1

        if state["step"] % 50 == 0:
            seconds = time.time() - window_start
            record = {
                "step": state["step"],
                "loss": round(window_loss / window_steps, 4),
                "masked_accuracy": round(window_acc / window_steps, 4),
                "supervision_loss": round(window_aux / window_steps, 4),
                "lr": learning_rate(config, step),
                "stage_max_length": stage.max_length,
                "tokens_per_second": round(window_tokens / seconds),
                "elapsed_minutes": round((state["elapsed_seconds"] + time.time() - started) / 60, 1),
            }
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()
            logger.info("%s", record)
            window_loss, window_acc, window_tokens, window_steps, window_start = 0.0, 0.0, 0, 0, time.time()
            window_aux = 0.0

        if state["step"] % config.eval_every == 0:
            lengths = sorted({min(stage.max_length, 4096), max(128, stage.min_length)})
            scores = quick_eval(model, tokenizer, eval_samples, lengths, ["niah_single", "niah_multikey"],
                                config.eval_samples)
            record = {"step": state["step"], "eval": scores}
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()
            logger.info("%s", record)

        now = time.time()
        out_of_time = max_minutes is not None and now - started > max_minutes * 60
        if now - last_save > config.checkpoint_minutes * 60 or state["step"] == config.total_steps or out_of_time:
            state["elapsed_seconds"] += now - started
            started = now
            save_checkpoint(run_dir, model, optimizer, state)
            last_save = now
            logger.info("checkpoint saved at step %d", state["step"])
        if out_of_time:
            break
    log_file.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("training/runs/builtin"), help="run folder (checkpoints, log)")
    parser.add_argument("--tokenizer", type=Path, default=Path(__file__).resolve().parent.parent / "builtin_model")
    parser.add_argument("--haystack", type=Path, default=Path("../shared/data/haystack"))
    parser.add_argument("--config", type=Path, help="JSON file of TrainConfig fields for a new run")
    parser.add_argument("--max-minutes", type=float, help="stop (with a checkpoint) after this many minutes")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--export", type=Path, help="export the last checkpoint with the tokenizer to this folder and exit")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.export:
        export_model(args.out, args.tokenizer, args.export)
        return
    config = TrainConfig.from_dict(json.loads(args.config.read_text())) if args.config else TrainConfig()
    train(args.out, args.tokenizer, args.haystack, config, args.max_minutes)


if __name__ == "__main__":
    main()
