"""Overhead of the live cache-sparsity view on a whole answer.

Runs the same prompt through ``generate`` with the view off and with the
Rich view rendering to a terminal console that writes into memory (so the
rendering cost is real but nothing reaches the screen), feeding the view
exactly what ``wavefilter ask`` feeds it per step. The two modes alternate
run by run, so machine noise hits both alike. Prints the median seconds of
each and their ratio:

    python benchmarks/live_view.py --tokens 2048 --repeats 5 --method prefix+wavefilter
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import torch
from rich.console import Console

from wavefilter_cli.cache import build_cache
from wavefilter_cli.cli.live import LiveView
from wavefilter_cli.demo import build_demo_document
from wavefilter_cli.generation import GenerationConfig, StepDone, generate
from wavefilter_cli.models import load_model, load_tokenizer
from wavefilter_cli.prompt import PromptDocument, chat_messages, encode_prompt


def answer_once(model, tokenizer, prompt_ids, method: str, view: LiveView) -> float:
    """Generate one answer, updating ``view`` at every step; return the seconds taken."""
    host, _, filter_name = method.partition("+")
    policy = build_cache(host, filter_name or None, budget=0.1, evict=bool(filter_name))
    config = GenerationConfig(max_tokens=32, block_length=32, stop_early=False)
    started = time.perf_counter()
    with view:
        for event in generate(model, tokenizer, prompt_ids, config, policy):
            if isinstance(event, StepDone):
                stats = policy.stats
                view.update(stage="generating", block=event.block + 1, step=event.step + 1,
                            kept_tokens=stats.kept_tokens, context_tokens=stats.context_tokens,
                            kv_bytes=stats.kv_bytes, kept_per_layer=list(stats.kept_per_layer))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="builtin")
    parser.add_argument("--tokens", type=int, default=2048, help="document length in model tokens")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--method", default="prefix+wavefilter", help="HOST[+FILTER]")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = load_model(args.model, device="cpu")
    tokenizer = load_tokenizer(model.checkpoint_dir, model.config)
    document = build_demo_document(tokenizer, min_tokens=args.tokens)
    messages = chat_messages([PromptDocument("topics.txt", document.text)], document.facts[0].question)
    prompt_ids = encode_prompt(tokenizer, messages)
    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    times: dict[str, list[float]] = {"none": [], "rich": []}
    answer_once(model, tokenizer, prompt_ids, args.method, LiveView("none", None))  # warm-up
    for _ in range(args.repeats):
        for mode in ("none", "rich"):
            view = LiveView(mode, console if mode == "rich" else None)
            times[mode].append(answer_once(model, tokenizer, prompt_ids, args.method, view))
    off, on = statistics.median(times["none"]), statistics.median(times["rich"])
    print(f"prompt {len(prompt_ids)} tokens, {args.method}, {args.repeats} runs each")
    print(f"view off: {off:.3f} s   view on: {on:.3f} s   overhead: {(on / off - 1) * 100:+.1f} %")


if __name__ == "__main__":
    main()
