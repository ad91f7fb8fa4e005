"""Measure the built-in model's look-up accuracy on held-out text, by task and length.

Samples come from the evaluation split of the haystack books (the last 10 %
of each book, never seen in training). Each answer is decoded with a real
sampler (Fast-dLLM's confidence threshold by default) and dense attention
(``--cache none`` by default) and scored by exact match of the whole answer
text, which for single and multi-key look-ups restates the fact sentence.
Prints a table and, last, one JSON line:

    python -m wavefilter_cli.training.evaluate --model wavefilter_cli/builtin_model \\
        --tasks niah_single,niah_multikey --lengths 1024,4096 --samples 20
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch

from wavefilter_cli.cache import build_cache
from wavefilter_cli.generation import Finished, GenerationConfig, generate
from wavefilter_cli.models import load_model, load_tokenizer
from wavefilter_cli.training.data import SampleGenerator
from wavefilter_cli.training.haystack import Haystack


def evaluate(model, tokenizer, haystack: Haystack, tasks: list[str], lengths: list[int], samples: int,
             cache: str = "none", filter_name: str | None = None, budget: float = 0.1, seed: int = 0,
             sampler: str = "threshold", max_tokens: int = 24, show: bool = False,
             block_length: int | None = None) -> list[dict]:
    """Exact-match accuracy per (task, length); depths spread evenly over the samples."""
    generator = SampleGenerator(tokenizer, haystack, split="eval")
    rows = []
    for length in lengths:
        for task in tasks:
            rng = random.Random(f"{seed}-{task}-{length}")
            hits, seconds = 0, 0.0
            for index in range(samples):
                depth = (index + 0.5) / samples
                sample = generator.make(task, length, rng, depth=depth)
                policy = build_cache(cache, filter_name, budget=budget, evict=filter_name is not None)
                config = GenerationConfig(max_tokens=max_tokens, block_length=block_length or max_tokens, sampler=sampler)
                started = time.perf_counter()
                finished = next(e for e in generate(model, tokenizer, sample.prompt_ids, config, policy) if isinstance(e, Finished))
                seconds += time.perf_counter() - started
                hits += finished.answer.strip() == sample.answer_text.strip()
                if show:
                    print(f"{task}@{length} expected {sample.answer_text.strip()!r} got {finished.answer.strip()!r}")
            rows.append({"task": task, "length": length, "samples": samples, "accuracy": hits / samples,
                         "seconds": round(seconds, 2)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="builtin")
    parser.add_argument("--haystack", type=Path, default=Path("../shared/data/haystack"))
    parser.add_argument("--tasks", default="niah_single,niah_multikey")
    parser.add_argument("--lengths", default="1024,4096")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--cache", default="none")
    parser.add_argument("--filter", default=None)
    parser.add_argument("--budget", type=float, default=0.1)
    parser.add_argument("--sampler", default="threshold", help="sampler name (threshold 0.9 or low-confidence, one token per step)")
    parser.add_argument("--max-tokens", type=int, default=24, help="answer slots; a restated fact takes up to about 20 tokens")
    parser.add_argument("--block-length", type=int, default=None,
                        help="tokens per diffusion block (default: the whole answer in one block)")
    parser.add_argument("--show", action="store_true", help="print each expected answer next to the decoded one")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--rope-scaling", choices=("config", "default", "dynamic"), default="config",
                        help="RoPE past the trained window: config follows the checkpoint, default is plain RoPE, dynamic is dynamic NTK scaling")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model, device="cpu")
    tokenizer = load_tokenizer(model.checkpoint_dir, model.config)
    if args.rope_scaling != "config":
        model.config.rope_scaling_type = args.rope_scaling
    rows = evaluate(model, tokenizer, Haystack(args.haystack), args.tasks.split(","),
                    [int(x) for x in args.lengths.split(",")], args.samples, args.cache, args.filter, args.budget,
                    sampler=args.sampler, max_tokens=args.max_tokens, show=args.show,
                    block_length=args.block_length)
    print(f"{'task':<18} {'length':>7} {'accuracy':>9} {'seconds':>8}")
    for row in rows:
        print(f"{row['task']:<18} {row['length']:>7} {row['accuracy']:>9.2f} {row['seconds']:>8.1f}")
    print(json.dumps({"model": args.model, "cache": args.cache, "filter": args.filter,
                      "rope_scaling": model.config.rope_scaling_type, "results": rows}))


if __name__ == "__main__":
    main()
