"""Needle recall and selection cost of the key-token filters on synthetic layers.

Recall: 1,024 random keys (dimension 32) with one key nudged towards the
query by ``strength`` × √D, four noisy observation queries, budget 5 %
(sink 4, tail 8); counts how often each filter keeps the needle over seeded
trials. Cost: one ``select`` call on keys (1, 8, 2048, 128) with 64
observation queries at budget 0.1. Prints both tables and, last, one JSON line.

    python benchmarks/filter_selection.py --trials 40 --threads 1
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

from wavefilter_cli.filters.base import FilterInput
from wavefilter_cli.filters.registry import make_filter

RECALL_FILTERS = [
    ("oracle", {}),
    ("wavefilter-paper", {}),
    ("block-mean", {"block_size": 16}),
    ("wavefilter", {}),
    ("wavefilter", {"detail_weight": 0.0}),
    ("wavefilter", {"levels": 3, "beam": 4}),
]
COST_FILTERS = ["snapkv", "oracle", "wavefilter", "wavefilter-denoise", "wavefilter-paper"]


def needle_layer(seed: int, strength: float, length: int = 1024, dim: int = 32) -> tuple[FilterInput, int]:
    generator = torch.Generator().manual_seed(seed)
    keys = torch.randn(1, 1, length, dim, generator=generator)
    direction = torch.randn(dim, generator=generator)
    direction = direction / direction.norm()
    needle = length // 2 + 5
    keys[0, 0, needle] += strength * math.sqrt(dim) * direction
    queries = (direction * math.sqrt(dim)).expand(1, 1, 4, dim) + 0.5 * torch.randn(1, 1, 4, dim, generator=generator)
    return FilterInput(layer=0, queries=queries, keys=keys), needle


def recall(name: str, options: dict, strength: float, trials: int) -> int:
    selector = make_filter(name, budget=0.05, sink=4, tail=8, **options)
    hits = 0
    for seed in range(trials):
        inputs, needle = needle_layer(seed, strength)
        hits += needle in selector.select(inputs)[0, 0].tolist()
    return hits


def selection_seconds(name: str, repeats: int) -> float:
    generator = torch.Generator().manual_seed(0)
    keys = torch.randn(1, 8, 2048, 128, generator=generator)
    queries = torch.randn(1, 8, 64, 128, generator=generator)
    selector = make_filter(name, budget=0.1)
    probs = torch.rand(1, 8, 64, 2048, generator=generator).softmax(-1) if selector.needs_probs else None
    inputs = FilterInput(layer=0, queries=queries, keys=keys, probs=probs)
    selector.select(inputs)  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        selector.select(inputs)
    return (time.perf_counter() - started) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--strengths", default="0.5,1.0")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    strengths = [float(s) for s in args.strengths.split(",")]

    recall_rows = []
    print(f"{'filter':<22} {'options':<32} " + " ".join(f"{'s=' + str(s):>8}" for s in strengths))
    for name, options in RECALL_FILTERS:
        hits = [recall(name, options, s, args.trials) for s in strengths]
        recall_rows.append({"filter": name, "options": options, "hits": hits, "trials": args.trials})
        print(f"{name:<22} {json.dumps(options):<32} " + " ".join(f"{h:>5}/{args.trials}" for h in hits))

    cost_rows = []
    print(f"\n{'filter':<22} {'ms per select':>14}")
    for name in COST_FILTERS:
        seconds = selection_seconds(name, args.repeats)
        cost_rows.append({"filter": name, "milliseconds": round(seconds * 1000, 2)})
        print(f"{name:<22} {seconds * 1000:>14.1f}")
    print(json.dumps({"benchmark": "filter_selection", "strengths": strengths, "recall": recall_rows,
                      "threads": torch.get_num_threads(), "cost": cost_rows}))


if __name__ == "__main__":
    main()
