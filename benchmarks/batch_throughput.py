"""Answers per minute at batch sizes 1, 4 and 8: the same questions over the same long document.

Builds one document of about ``--tokens`` tokens from Python's bundled
documentation topics (no download) and asks ``--questions`` questions about
it, decoded ``--batch-sizes`` at a time with ``generate_batch``. Every answer
decodes all of its blocks (no early stop), so each batch size does the same
decoding work per answer. Sizes alternate round by round, so machine noise
hits them alike. Prints answers per minute per batch size and the speed-up
over batch 1:

    python benchmarks/batch_throughput.py --tokens 4096 --questions 8 --batch-sizes 1,4,8
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from wavefilter_cli.cache import build_cache
from wavefilter_cli.demo import build_demo_document
from wavefilter_cli.generation import Finished, GenerationConfig, generate_batch
from wavefilter_cli.models import load_model, load_tokenizer
from wavefilter_cli.prompt import PromptDocument, chat_messages, encode_prompt


def prompts_for(tokenizer, tokens: int, count: int) -> list[list[int]]:
    """Return ``count`` prompts over one document: its planted facts' questions, repeated in turn."""
    document = build_demo_document(tokenizer, min_tokens=tokens)
    prompts = []
    for index in range(count):
        question = document.facts[index % len(document.facts)].question
        messages = chat_messages([PromptDocument("topics.txt", document.text)], question)
        prompts.append(encode_prompt(tokenizer, messages))
    return prompts


def run_all(model, tokenizer, prompts, batch_size: int, method: str, max_tokens: int) -> float:
    """Answer every prompt ``batch_size`` at a time; return the total seconds."""
    host, _, filter_name = method.partition("+")
    config = GenerationConfig(max_tokens=max_tokens, block_length=32, stop_early=False)
    started = time.perf_counter()
    for first in range(0, len(prompts), batch_size):
        policy = build_cache(host, filter_name or None, budget=0.1, evict=bool(filter_name))
        events = generate_batch(model, tokenizer, prompts[first : first + batch_size], config, policy)
        finished = [event for event in events if isinstance(event, Finished)]
        assert len(finished) == len(prompts[first : first + batch_size])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="builtin")
    parser.add_argument("--tokens", type=int, default=4096, help="document length in model tokens")
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--batch-sizes", default="1,4,8")
    parser.add_argument("--method", default="prefix", help="HOST[+FILTER]")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = load_model(args.model, device="cpu")
    tokenizer = load_tokenizer(model.checkpoint_dir, model.config)
    prompts = prompts_for(tokenizer, args.tokens, args.questions)
    sizes = [int(part) for part in args.batch_sizes.split(",")]
    seconds: dict[int, list[float]] = {size: [] for size in sizes}
    for _ in range(args.rounds):
        for size in sizes:
            seconds[size].append(run_all(model, tokenizer, prompts, size, args.method, args.max_tokens))
    base = statistics.median(seconds[sizes[0]])
    print(f"prompt {len(prompts[0])} tokens, {args.questions} answers of {args.max_tokens} tokens, "
          f"{args.method}, {args.threads} thread(s), median of {args.rounds} rounds")
    print(f"{'batch':>5} {'seconds':>8} {'answers/min':>12} {'vs batch ' + str(sizes[0]):>11}")
    for size in sizes:
        total = statistics.median(seconds[size])
        print(f"{size:>5} {total:>8.1f} {args.questions * 60 / total:>12.2f} {base / total:>10.2f}x")


if __name__ == "__main__":
    main()
