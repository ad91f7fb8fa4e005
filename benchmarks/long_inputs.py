"""Accuracy and time of the long-input strategies on look-up samples far longer than the window.

For each document length and task, builds ``--samples`` look-up samples
from the evaluation split of the haystack books, with the asked fact at
depths spread evenly over the document ((i + 0.5) / samples). Each sample
is answered with the model's window set to ``--window`` by every method, one
sample at a time, so slow drift of the machine hits all methods alike:

- ``filter+NAME``: ``--strategy filter --filter NAME``, where NAME scores the
  chunks and, under ``--generation-filter method``, also filters the host
  cache at ``--budget`` while generating.
- ``retrieve``: ``--strategy retrieve`` (BM25 chunk ranking), generating
  with no filter under ``--generation-filter method``. ``retrieve+NAME``
  generates with filter NAME.

``--generation-filter NAME`` (or ``none``) sets the generation-side filter of
every method to NAME instead, so only the selection differs between methods.

``--keep-unit`` and ``--keep-tokens`` set what the ``filter`` strategy keeps
(``generate.keep_unit`` and ``generate.keep_tokens``, by default whole
sentences and at most 1,024 document tokens).

An answer is exact when it equals the expected sentence ("The PIN for the
blue vault is 4817."). It is a value match when the expected value (the
sentence's last word) appears in it as a whole word and no other number
does. Independent of the model's skill, ``fact_kept`` records whether the
selection kept that sentence whole: whether the decoded prompt the model
answered contains it. Seconds per answer run from handing the document over to the end of
generation: tokenising and chunking, chunk scoring (``filter``) or ranking
(``retrieve``), selection and generation. Model loading and process start
are excluded, and one untimed answer per method on a short sample warms up
first. A least-squares line of mean seconds against document length per
method shows whether time grows linearly with the document.

The evaluation split (the last 10 % of each book) holds about 116,000
tokens of the built-in tokenizer, fewer than a 131,072-token document needs.
For a length whose document exceeds the split, the split's books are listed
several times over (``haystack_copies`` in the output), so the filler text
repeats while the planted facts stay unique.

Prints a table and the fits to stdout, or with ``--json`` one JSON document
to stdout and the table to stderr. One progress line per answer goes to
stderr.

    python benchmarks/long_inputs.py --lengths 8192 --samples 2 --threads 1
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from wavefilter_cli.cli.answer import build_policy, generation_config
from wavefilter_cli.cli.answer_run import AnswerRun, OutputOptions
from wavefilter_cli.cli.live import LiveView
from wavefilter_cli.cli.long_inputs import answer_in_chunks
from wavefilter_cli.cli.output import Diagnostics
from wavefilter_cli.config import Config, GenerateConfig
from wavefilter_cli.filters.registry import FILTERS
from wavefilter_cli.ingest import Document, Span
from wavefilter_cli.training.data import STREAM_SLACK, Sample, SampleGenerator
from wavefilter_cli.training.haystack import DEFAULT_HAYSTACK_DIR, Haystack

#: Strategies a method may name before ``+``.
STRATEGIES = ("filter", "retrieve")
#: Tokens the warm-up sample has, as a multiple of the window.
WARM_UP_WINDOWS = 2
#: Prompt tokens decoded to find the document's header name.
HEADER_SEARCH_TOKENS = 256

_HEADER = re.compile(r"\[Document: ([^\]\n]+)\]")
_NUMBER = re.compile(r"\d+")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Method:
    """A strategy and the key-token filter named with it (None for the CLI's default)."""

    label: str
    strategy: str
    filter: str | None


def parse_method(text: str) -> Method:
    """Parse ``STRATEGY`` or ``STRATEGY+FILTER``; raises ValueError naming the bad part."""
    strategy, _, filter_name = text.partition("+")
    if strategy not in STRATEGIES:
        raise ValueError(f"method {text!r} has an unknown strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    if filter_name and filter_name not in FILTERS:
        raise ValueError(f"method {text!r} names an unknown filter {filter_name!r}: use one of {', '.join(FILTERS)}")
    return Method(text, strategy, filter_name or None)


def int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def optional_int(text: str) -> int | None:
    """Parse a whole number, or ``none`` for no value."""
    return None if text.strip().lower() == "none" else int(text)


def name_list(text: str) -> list[str]:
    return [part for part in text.split(",") if part]


def method_list(text: str) -> list[Method]:
    try:
        return [parse_method(part) for part in name_list(text)]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="builtin", help="checkpoint folder, cached hub id, or builtin")
    parser.add_argument("--haystack", type=Path, default=DEFAULT_HAYSTACK_DIR,
                        help="folder of plain-text books, read in place (default: the haystack next to the checkout)")
    parser.add_argument("--lengths", type=int_list, default=[8192, 32768, 65536, 131072],
                        help="document prompt lengths in tokens, each above --window")
    parser.add_argument("--tasks", type=name_list, default=["niah_single", "niah_multikey"])
    parser.add_argument("--samples", type=int, default=5, help="samples per length and task")

    parser.add_argument("--window", type=int, default=4096, help="tokens of prompt plus answer per model call")
    parser.add_argument("--methods", type=method_list,
                        default=method_list("filter+wavefilter,filter+snapkv,filter+streaming,retrieve"),
                        help="comma-separated STRATEGY[+FILTER] entries, STRATEGY being filter or retrieve")
    parser.add_argument("--generation-filter", default="method",
                        help="filter of the host cache while generating: method (each method's own), none, or a name")
    parser.add_argument("--cache", default="prefix", help="host cache method")
    parser.add_argument("--refresh-every", type=int, default=None,
                        help="prefix and dual hosts: also refresh every N steps of a block (cache.refresh_every)")
    parser.add_argument("--budget", type=float, default=0.1,
                        help="filter budget: a ratio of the context in (0, 1] or a token count")

    parser.add_argument("--max-tokens", type=int, default=32, help="answer length in tokens")
    parser.add_argument("--block-length", type=int, default=32, help="tokens per diffusion block")
    parser.add_argument("--sampler", default="low-confidence")
    parser.add_argument("--chunk-overlap", type=int, default=64, help="tokens consecutive chunks share")
    parser.add_argument("--positions", choices=("compact", "original"), default="compact",
                        help="RoPE positions of the kept tokens (generate.positions)")
    parser.add_argument("--keep-unit", choices=("tokens", "sentences"), default=GenerateConfig.keep_unit,
                        help="what the filter strategy keeps: tokens or whole sentences (generate.keep_unit)")
    parser.add_argument("--keep-tokens", type=optional_int, default=GenerateConfig.keep_tokens,
                        help="maximum document tokens the filter strategy keeps, or none (generate.keep_tokens)")

    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads; 1 avoids stalls between threads on a busy machine")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON document to stdout, the table to stderr")

    args = parser.parse_args(argv)
    if args.samples < 1:
        parser.error(f"--samples {args.samples} is invalid: use 1 or more")
    short = [length for length in args.lengths if length + args.max_tokens <= args.window]
    if short:
        parser.error(f"--lengths {short} fit the {args.window}-token window with the answer, so nothing is chunked: "
                     "use lengths above --window")
    if args.generation_filter not in ("method", "none") and args.generation_filter not in FILTERS:
        parser.error(f"--generation-filter {args.generation_filter!r} is unknown: use method, none or one of "
                     f"{', '.join(FILTERS)}")
    return args


# ---------------------------------------------------------------------------
# Samples
# ---------------------------------------------------------------------------


class RepeatedHaystack:
    """A haystack whose split lists every book ``copies`` times, for documents longer than the split.

    ``SampleGenerator`` reads only ``regions``, so this object can replace a ``Haystack`` there.
    """

    def __init__(self, haystack: Haystack, copies: int) -> None:
        self.haystack = haystack
        self.copies = copies

    def regions(self, tokenizer, split: str):
        return self.haystack.regions(tokenizer, split) * self.copies


class SampleSource:
    """Look-up samples of the evaluation split, with the split repeated where a length needs it."""

    def __init__(self, tokenizer, haystack: Haystack) -> None:
        self.tokenizer = tokenizer
        self.haystack = haystack
        self.split_tokens = sum(region.num_tokens for region in haystack.regions(tokenizer, "eval"))
        self.generators: dict[int, SampleGenerator] = {}

    def copies_for(self, length: int) -> int:
        """Return how many times the split must be listed to hold a ``length``-token document."""
        return max(1, math.ceil((length + STREAM_SLACK) / self.split_tokens))

    def make(self, task: str, length: int, rng: random.Random, depth: float) -> Sample:
        copies = self.copies_for(length)
        if copies not in self.generators:
            haystack = self.haystack if copies == 1 else RepeatedHaystack(self.haystack, copies)
            self.generators[copies] = SampleGenerator(self.tokenizer, haystack, split="eval")
        return self.generators[copies].make(task, length, rng, depth=depth)


def document_name(tokenizer, sample: Sample) -> str:
    """Return the header name the sample's prompt gives its document."""
    head = tokenizer.decode(sample.prompt_ids[:HEADER_SEARCH_TOKENS])
    match = _HEADER.search(head)
    if match is None:
        raise ValueError(f"no [Document: NAME] header in the first {HEADER_SEARCH_TOKENS} prompt tokens: {head[:200]!r}")
    return match.group(1)


def as_document(name: str, text: str) -> Document:
    """Wrap a sample's document text as an ingested text file."""
    return Document(name, text, [Span(name, None, 0, len(text))], None)


# ---------------------------------------------------------------------------
# Answers and scores
# ---------------------------------------------------------------------------


@dataclass
class SilentOutput(OutputOptions):
    """Write nothing to stdout and compute no citations: the benchmark reads the answer from the result."""

    as_json: bool = True

    @property
    def wants_citations(self) -> bool:
        return False


def expected_value(answer_text: str) -> str:
    """Return the value a fact sentence states: its last word ("4817" in "The PIN … is 4817.")."""
    words = _WORD.findall(answer_text)
    return words[-1] if words else ""


def is_value_match(value: str, answer: str) -> bool:
    """Return whether ``value`` appears in ``answer`` as a whole word and no other number does."""
    if not value or not re.search(rf"\b{re.escape(value)}\b", answer, flags=re.IGNORECASE):
        return False
    return all(number == value for number in _NUMBER.findall(answer))


def method_config(base: Config, method: Method) -> Config:
    return base.replace({"generate.strategy": method.strategy, "cache.filter": method.filter})


def answer_sample(model, tokenizer, base: Config, sample: Sample, name: str, method: Method, generation_filter: str) -> dict:
    """Answer one sample with one method and return its row (answer, scores, seconds, chunking)."""
    config = method_config(base, method)
    policy = build_policy(config) if generation_filter == "method" else build_policy(config, filter_name=generation_filter)
    run = AnswerRun(config, model, tokenizer, [as_document(name, sample.document)], sample.question,
                    generation_config(config), LiveView("none", None), SilentOutput(), Diagnostics(verbosity=-1))
    prompt_tokens = len(sample.prompt_ids) + run.gen_config.answer_length
    started = time.perf_counter()
    result = answer_in_chunks(run, policy, prompt_tokens)
    if model.placement.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started

    finished = result.generated.finished
    value = expected_value(sample.answer_text)
    chunking = result.chunking or {}
    return {
        "method": method.label,
        "answer": finished.answer,
        "expected": sample.answer_text,
        "exact": sample.answer_text.strip() == finished.answer.strip(),
        "value_match": is_value_match(value, finished.answer),
        "fact_kept": sample.answer_text in tokenizer.decode(result.generated.prompt_ids),
        "seconds": round(seconds, 4),
        "generation_seconds": round(finished.seconds, 4),
        "chunks": chunking.get("chunks"),
        "kept_document_tokens": chunking.get("kept_document_tokens"),
        "document_tokens": chunking.get("document_tokens"),
        "tokens_in": finished.tokens_in,
        "kv_kept_tokens": finished.kept_tokens,
    }


# ---------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------


def summarize(rows: list[dict]) -> list[dict]:
    """Average the scores and seconds per (method, length, task), in the order first seen."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["method"], row["length"], row["task"]), []).append(row)
    summary = []
    for (method, length, task), members in groups.items():
        summary.append({
            "method": method,
            "length": length,
            "task": task,
            "samples": len(members),
            "accuracy": float(np.mean([row["exact"] for row in members])),
            "value_accuracy": float(np.mean([row["value_match"] for row in members])),
            "fact_kept": float(np.mean([row["fact_kept"] for row in members])),
            "mean_seconds": float(np.mean([row["seconds"] for row in members])),
            "mean_generation_seconds": float(np.mean([row["generation_seconds"] for row in members])),
        })
    return summary


def fit_line(lengths: list[int], seconds: list[float]) -> dict:
    """Fit seconds = slope · length + intercept by least squares over distinct ``lengths``.

    The slope needs two lengths. R² needs three, because a line through two
    points always fits, and is None below that or when the seconds do not vary.
    """
    if len(set(lengths)) < 2:
        return {"slope_seconds_per_token": None, "intercept_seconds": None, "r2": None, "points": len(lengths)}
    x = np.asarray(lengths, dtype=np.float64)
    y = np.asarray(seconds, dtype=np.float64)
    slope, intercept = np.polyfit(x, y, 1)
    residual = float(((y - (slope * x + intercept)) ** 2).sum())
    total = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - residual / total if total > 0 and len(set(lengths)) >= 3 else None
    return {"slope_seconds_per_token": float(slope), "intercept_seconds": float(intercept), "r2": r2,
            "points": len(lengths)}


def fits_by_method(rows: list[dict]) -> list[dict]:
    """Fit each method's mean seconds per document length (over tasks and samples) against that length."""
    fits = []
    for method in dict.fromkeys(row["method"] for row in rows):
        lengths = sorted({row["length"] for row in rows if row["method"] == method})
        means = [float(np.mean([r["seconds"] for r in rows if r["method"] == method and r["length"] == length]))
                 for length in lengths]
        fits.append({"method": method, **fit_line(lengths, means)})
    return fits


def print_report(summary: list[dict], fits: list[dict], stream) -> None:
    header = f"{'method':<20} {'length':>7} {'task':<14} {'n':>3} {'accuracy':>8} {'value acc':>9} {'fact kept':>9} {'mean s':>8} {'gen s':>7}"
    print(header, file=stream)
    print("-" * len(header), file=stream)
    for row in summary:
        print(f"{row['method']:<20} {row['length']:>7} {row['task']:<14} {row['samples']:>3} {row['accuracy']:>8.2f} "
              f"{row['value_accuracy']:>9.2f} {row['fact_kept']:>9.2f} {row['mean_seconds']:>8.2f} {row['mean_generation_seconds']:>7.2f}",
              file=stream)
    print(file=stream)
    print(f"{'method':<20} {'s per 1K tokens':>15} {'intercept s':>11} {'R²':>6} {'lengths':>7}", file=stream)
    for fit in fits:
        if fit["slope_seconds_per_token"] is None:
            print(f"{fit['method']:<20} {'-':>15} {'-':>11} {'-':>6} {fit['points']:>7}", file=stream)
            continue
        r2 = "-" if fit["r2"] is None else f"{fit['r2']:.3f}"
        print(f"{fit['method']:<20} {fit['slope_seconds_per_token'] * 1000:>15.4f} {fit['intercept_seconds']:>11.3f} "
              f"{r2:>6} {fit['points']:>7}", file=stream)


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def base_config(args: argparse.Namespace) -> Config:
    return Config().replace({
        "model.name": args.model, "model.ctx_tokens": args.window, "cache.method": args.cache,
        "cache.budget": args.budget, "generate.max_tokens": args.max_tokens,
        "generate.block_length": args.block_length, "generate.sampler": args.sampler,
        "generate.chunk_overlap": args.chunk_overlap, "generate.seed": args.seed,
        "generate.positions": args.positions, "generate.keep_unit": args.keep_unit,
        "generate.keep_tokens": args.keep_tokens, "cache.refresh_every": args.refresh_every,
    })


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from wavefilter_cli.models import load_model, load_tokenizer

    base = base_config(args)
    model = load_model(args.model, device=args.device, offline=True)
    tokenizer = load_tokenizer(model.checkpoint_dir, model.config)
    if args.window > model.config.context_window:
        print(f"warning: --window {args.window} is above the model's {model.config.context_window}-token window",
              file=sys.stderr)
    source = SampleSource(tokenizer, Haystack(args.haystack))

    with torch.inference_mode():
        warm_up = source.make(args.tasks[0], WARM_UP_WINDOWS * args.window, random.Random("warm-up"), 0.5)
        for method in args.methods:
            answer_sample(model, tokenizer, base, warm_up, document_name(tokenizer, warm_up), method,
                          args.generation_filter)

        rows = []
        for length in args.lengths:
            for task in args.tasks:
                rng = random.Random(f"{args.seed}-{task}-{length}")
                for index in range(args.samples):
                    depth = (index + 0.5) / args.samples
                    sample = source.make(task, length, rng, depth)
                    name = document_name(tokenizer, sample)
                    for method in args.methods:
                        row = answer_sample(model, tokenizer, base, sample, name, method, args.generation_filter)
                        row.update(length=length, task=task, sample=index, depth=depth,
                                   haystack_copies=source.copies_for(length))
                        rows.append(row)
                        print(f"{length} {task} #{index} {method.label}: {row['seconds']:.2f} s, "
                              f"exact {row['exact']}, value {row['value_match']}, fact kept {row['fact_kept']}, "
                              f"answer {row['answer']!r}",
                              file=sys.stderr, flush=True)

    summary = summarize(rows)
    fits = fits_by_method(rows)
    print_report(summary, fits, sys.stderr if args.json else sys.stdout)
    if args.json:
        machine = {"processor": platform.processor(), "device": str(model.placement.device),
                   "threads": torch.get_num_threads(), "torch": torch.__version__}
        settings = {key: value for key, value in vars(args).items() if key != "methods"}
        settings["methods"] = [method.label for method in args.methods]
        settings["haystack"] = str(args.haystack)
        document = {"benchmark": "long_inputs", "machine": machine, "settings": settings, "summary": summary,
                    "fits": fits, "rows": rows}
        print(json.dumps(document))


if __name__ == "__main__":
    main()
