"""Time one denoising step of a LLaDA-8B-shaped model (random weights).

One step is a full forward over the prompt plus a 32-token block, with
logits computed for the block rows only, as the generation loop does. On
a CPU, use the real widths with reduced depth; on a GPU, the full 8B shape
in bf16. Prints a table and, last, one JSON line.

    python benchmarks/denoise_step.py --layers 2 --lengths 1024,4096,8192          # CPU
    python benchmarks/denoise_step.py --layers 32 --dtype bf16 --device cuda --lengths 4096,8192,16384
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from wavefilter_cli.models.llada import LLaDAConfig, LLaDAModelLM

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def build(layers: int, d_model: int, heads: int, mlp: int, vocab: int, device: str, dtype: torch.dtype) -> LLaDAModelLM:
    config = LLaDAConfig(d_model=d_model, n_layers=layers, n_heads=heads, n_kv_heads=heads, mlp_hidden_size=mlp,
                         vocab_size=vocab, embedding_size=vocab, max_sequence_length=4096)
    with torch.device(device):
        model = LLaDAModelLM(config)
    return model.to(dtype).eval()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_step(model, length: int, block: int, device: str, repeats: int) -> list[float]:
    ids = torch.randint(0, model.config.vocab_size, (1, length), device=device)
    rows = slice(length - block, length)
    times = []
    with torch.inference_mode():
        model(ids, logits_index=rows)  # warm-up
        for _ in range(repeats):
            sync(device)
            start = time.perf_counter()
            model(ids, logits_index=rows)
            sync(device)
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--d-model", type=int, default=4096)
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--mlp", type=int, default=12288)
    parser.add_argument("--vocab", type=int, default=126464)
    parser.add_argument("--lengths", default="1024,4096,8192")
    parser.add_argument("--block", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model = build(args.layers, args.d_model, args.heads, args.mlp, args.vocab, args.device, DTYPES[args.dtype])
    rows = []
    print(f"{'tokens':>8} {'median s':>10} {'min s':>8} {'s/layer':>8}")
    for length in (int(x) for x in args.lengths.split(",")):
        times = time_step(model, length, args.block, args.device, args.repeats)
        median = statistics.median(times)
        rows.append({"tokens": length, "median_seconds": round(median, 4), "min_seconds": round(min(times), 4),
                     "seconds_per_layer": round(median / args.layers, 4)})
        print(f"{length:>8} {median:>10.3f} {min(times):>8.3f} {median / args.layers:>8.3f}")
    machine = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    print(json.dumps({"benchmark": "denoise_step", "layers": args.layers, "d_model": args.d_model, "dtype": args.dtype,
                      "device": args.device, "machine": machine, "results": rows}))


if __name__ == "__main__":
    main()
