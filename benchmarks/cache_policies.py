"""Total time and K/V bytes of each cache policy, alone and with filters, on a long prompt.

Builds one LLaDA-shaped model with random weights (real widths by default,
reduced depth). For every prompt length, policy and filter it then generates
a fixed number of tokens with a fixed number of steps per block and no early
stop, so every run does the same decoding work. Random weights produce
meaningless tokens; only time and memory are compared.

Prints a table, then one JSON line with every row, to stdout; one progress
line per run goes to stderr.

    python benchmarks/cache_policies.py --lengths 1024,2048 --layers 1 --d-model 1024
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from contextlib import contextmanager, nullcontext

import torch

from wavefilter_cli.cache import build_cache
from wavefilter_cli.filters.base import KeyFilter
from wavefilter_cli.generation import Finished, GenerationConfig, generate
from wavefilter_cli.models.llada import LLaDAConfig, LLaDAModelLM


class StubTokenizer:
    """Just enough tokenizer for the generation loop: ids in, ids out."""

    eos_token_id = 126081
    mask_token_id = 126336
    unk_token_id = 0

    def convert_tokens_to_ids(self, token):
        return self.unk_token_id

    def decode(self, ids, skip_special_tokens=True):
        return ""


class SelectionTimer:
    """Wall time inside ``KeyFilter.select``: a filter's scoring, top-k and index work, every call.

    Off by default: on a GPU it synchronises around each selection, so the
    timed run is slightly slower than an untimed one.
    """

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")
        self.seconds = 0.0
        self.calls = 0
        self._depth = 0

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    @contextmanager
    def patched(self):
        original = KeyFilter.select
        timer = self

        def timed_select(key_filter, inputs):
            if timer._depth:  # a padded batch selects per row by calling select again
                return original(key_filter, inputs)
            timer._depth += 1
            timer._sync()
            started = time.perf_counter()
            try:
                return original(key_filter, inputs)
            finally:
                timer._sync()
                timer.seconds += time.perf_counter() - started
                timer.calls += 1
                timer._depth -= 1

        KeyFilter.select = timed_select
        try:
            yield self
        finally:
            KeyFilter.select = original


def int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def name_list(text: str) -> list[str]:
    return [part for part in text.split(",") if part]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int_list, default=[4096, 8192, 16384], help="prompt lengths in tokens")
    parser.add_argument("--gen", type=int, default=256, help="generated tokens per run")
    parser.add_argument("--block", type=int, default=32, help="block length in tokens")
    parser.add_argument("--steps-per-block", type=int, default=8, help="denoising steps per block")
    parser.add_argument("--methods", type=name_list, default=["none", "prefix", "dual", "elastic"])
    parser.add_argument("--filters", type=name_list, default=["none", "snapkv", "oracle"],
                        help="filters to pair with each method; 'none' runs the method alone")
    parser.add_argument("--budget", type=float, default=0.1, help="kept ratio of the context for the filters")
    parser.add_argument("--mask", action="store_true", help="mask instead of evicting the unkept tokens")
    parser.add_argument("--share-heads", action="store_true",
                        help="filters keep one set of positions per layer for all KV heads")
    parser.add_argument("--layers", type=int, default=2, help="transformer layers (LLaDA-8B has 32)")
    parser.add_argument("--d-model", type=int, default=4096)
    parser.add_argument("--heads", type=int, default=32, help="query heads; head dim is d_model / heads")
    parser.add_argument("--kv-heads", type=int, default=None, help="key/value heads (default: --heads)")
    parser.add_argument("--mlp", type=int, default=None, help="MLP width (default: 3 × d_model, LLaDA-8B's ratio)")
    parser.add_argument("--vocab", type=int, default=126464)
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads; 1 avoids stalls between threads on a busy machine")
    parser.add_argument("--time-selection", action="store_true",
                        help="also report the seconds spent selecting tokens (scoring, top-k) and their share")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def build_model(args: argparse.Namespace) -> LLaDAModelLM:
    config = LLaDAConfig(
        d_model=args.d_model,
        n_layers=args.layers,
        n_heads=args.heads,
        n_kv_heads=args.kv_heads or args.heads,
        mlp_hidden_size=args.mlp or 3 * args.d_model,
        vocab_size=args.vocab,
        embedding_size=args.vocab,
        max_sequence_length=max(args.lengths) + args.gen,
        mask_token_id=min(126336, args.vocab - 1),
        eos_token_id=min(126081, args.vocab - 2),
        pad_token_id=min(126081, args.vocab - 2),
    )
    torch.manual_seed(args.seed)
    with torch.device(args.device):
        model = LLaDAModelLM(config)
    return model.to(getattr(torch, args.dtype)).eval()


def run_one(model, prompt: list[int], config: GenerationConfig, method: str, filter_name: str, args) -> dict:
    key_filter = None if filter_name == "none" else filter_name
    filter_options = {"share_heads": True} if key_filter is not None and args.share_heads else {}
    evict = key_filter is not None and not args.mask
    policy = build_cache(method, key_filter, budget=args.budget, evict=evict, **filter_options)
    timer = SelectionTimer(args.device)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    finished = None
    with timer.patched() if args.time_selection else nullcontext():
        started = time.perf_counter()
        for event in generate(model, StubTokenizer(), prompt, config, policy):
            if isinstance(event, Finished):
                finished = event
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
    row = {
        "prompt_tokens": len(prompt),
        "method": method,
        "filter": filter_name,
        "evict": evict,
        "seconds": round(seconds, 3),
        "generated_tokens": config.answer_length,
        "forward_passes": finished.forward_passes,
        "kv_bytes_peak": finished.kv_bytes_peak,
        "kept_tokens": finished.kept_tokens,
        "refreshes": policy.stats.refreshes,
        "refresh_context_tokens": policy.stats.refresh_context_tokens,
    }
    if args.time_selection:
        row["selection_seconds"] = round(timer.seconds, 3)
        row["selection_calls"] = timer.calls
        row["selection_share"] = round(timer.seconds / seconds, 4)
    return row


def print_table(rows: list[dict]) -> None:
    header = f"{'prompt':>7} {'method':<8} {'filter':<8} {'seconds':>8} {'vs none':>8} {'KV MiB':>9} {'kept':>6} {'refresh':>7} {'union':>6}"
    if any("selection_seconds" in r for r in rows):
        header += f" {'select':>8} {'share':>6}"
    print(header)
    print("-" * len(header))
    baseline = {(r["prompt_tokens"]): r["seconds"] for r in rows if r["method"] == "none" and r["filter"] == "none"}
    for r in rows:
        base = baseline.get(r["prompt_tokens"])
        speedup = f"{base / r['seconds']:.2f}x" if base else "-"
        print(
            f"{r['prompt_tokens']:>7} {r['method']:<8} {r['filter']:<8} {r['seconds']:>8.2f} {speedup:>8} "
            f"{r['kv_bytes_peak'] / 2**20:>9.1f} {r['kept_tokens']:>6} {r['refreshes']:>7} {r['refresh_context_tokens']:>6}"
            + (f" {r['selection_seconds']:>7.2f}s {r['selection_share']:>6.1%} ({r['selection_calls']} calls)"
               if "selection_seconds" in r else "")
        )


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = build_model(args)
    config = GenerationConfig(
        max_tokens=args.gen,
        block_length=args.block,
        steps=args.steps_per_block * -(-args.gen // args.block),
        sampler="low-confidence",
        stop_early=False,
    )
    generator = torch.Generator().manual_seed(args.seed)
    rows = []
    with torch.inference_mode():
        # One short untimed run first, so one-time start-up costs (kernel selection, allocator
        # growth) do not land on the first timed row.
        warm_up = GenerationConfig(max_tokens=args.block, block_length=args.block, steps=2, stop_early=False)
        run_one(model, list(range(64)), warm_up, args.methods[0], args.filters[0], args)
        for length in args.lengths:
            prompt = torch.randint(0, min(126000, args.vocab - 2), (length,), generator=generator).tolist()
            for method in args.methods:
                for filter_name in args.filters:
                    rows.append(run_one(model, prompt, config, method, filter_name, args))
                    row = rows[-1]
                    print(f"{length} {method} {filter_name}: {row['seconds']:.2f} s", file=sys.stderr, flush=True)
    print_table(rows)
    machine = {
        "processor": platform.processor(),
        "device": args.device,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    settings = {k: v for k, v in vars(args).items()}
    print(json.dumps({"benchmark": "cache_policies", "machine": machine, "settings": settings, "rows": rows}))


if __name__ == "__main__":
    main()
