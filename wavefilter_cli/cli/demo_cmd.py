"""``wavefilter demo``: the whole pipeline on a long document, with the built-in model, on a CPU.

Builds a document of at least 8K tokens from Python's bundled documentation
topics with three planted facts, answers a question about each with the
host cache plus WaveFilter (answers stream to stdout), then answers the
first question once more with each method side by side and prints a table:
correct or not, total seconds, K/V megabytes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import typer

from wavefilter_cli.cli.app import app
from wavefilter_cli.cli.config_cmd import config_from_context
from wavefilter_cli.cli.output import Diagnostics, write_result

DEMO_HELP = """Answer questions about a long generated document with the built-in model, comparing cache methods.

Example:

\b
  wavefilter demo
  wavefilter demo --tokens 16384 --methods none,prefix,prefix+wavefilter

The document is Python's bundled documentation topics (no download) with
three planted facts. Answers and the comparison table go to stdout; the
live view goes to stderr.
"""


@dataclass
class MethodResult:
    method: str
    answer: str
    correct: bool
    seconds: float
    kv_megabytes: float


def _answer(model, tokenizer, prompt_ids, method, gen_config, config, view):
    from wavefilter_cli.generation import Finished, StepDone, generate

    from wavefilter_cli.cli.answer import build_policy

    host, _, filter_name = method.partition("+")
    policy = build_policy(config, host, filter_name or "none")
    finished = None
    for event in generate(model, tokenizer, prompt_ids, gen_config, policy):
        if isinstance(event, StepDone):
            stats = policy.stats
            view.update(stage=f"generating ({method})", block=event.block + 1, step=event.step + 1,
                        kept_tokens=stats.kept_tokens, context_tokens=stats.context_tokens, kv_bytes=stats.kv_bytes,
                        kept_per_layer=list(stats.kept_per_layer))
        elif isinstance(event, Finished):
            finished = event
    return finished


@app.command("demo", help=DEMO_HELP)
def demo(
    ctx: typer.Context,
    tokens: int = typer.Option(8192, "--tokens", help="Minimum document length in model tokens."),
    methods: str = typer.Option("none,prefix,prefix+wavefilter", "--methods", help="Methods to compare, HOST[+FILTER], comma-separated."),
    model: str = typer.Option("builtin", "-m", "--model", help="Model to run (the built-in one by default)."),
) -> None:
    from wavefilter_cli.cli.answer import generation_config, load_for_run
    from wavefilter_cli.cli.live import LiveView, host_kv_bytes, resolve_progress
    from wavefilter_cli.demo import build_demo_document
    from wavefilter_cli.prompt import PromptDocument, chat_messages, encode_prompt

    diagnostics: Diagnostics = ctx.obj["diagnostics"]
    config, _ = config_from_context(ctx, {"model.name": model, "generate.max_tokens": 24, "generate.sampler": "threshold"})
    method_list = [m.strip() for m in methods.split(",") if m.strip()]
    main_method = next((m for m in method_list if "+" in m), method_list[-1])
    gen_config = generation_config(config)
    view = LiveView(resolve_progress(config.output.progress, diagnostics.console), diagnostics.console)
    results: list[MethodResult] = []
    with view:
        view.set_stage("loading model")
        loaded, tokenizer = load_for_run(config, diagnostics)
        view.set_stage("building document")
        document = build_demo_document(tokenizer, min_tokens=tokens)
        prompts = []
        for fact in document.facts:
            messages = chat_messages([PromptDocument("python-topics.txt", document.text)], fact.question)
            prompts.append(encode_prompt(tokenizer, messages))
        diagnostics.notice(
            f"document: {len(prompts[0])} prompt tokens, facts at depths "
            + ", ".join(f"{f.depth:.0%}" for f in document.facts)
        )
        view.update(blocks=gen_config.num_blocks, context_tokens=len(prompts[0]),
                    host_kv_bytes=host_kv_bytes(loaded, len(prompts[0]) + gen_config.answer_length))
        for fact, prompt_ids in zip(document.facts, prompts):
            finished = _answer(loaded, tokenizer, prompt_ids, main_method, gen_config, config, view)
            write_result(f"Q: {fact.question}\nA: {finished.answer.strip()}\n")
        fact, prompt_ids = document.facts[0], prompts[0]
        for method in method_list:
            started = time.perf_counter()
            finished = _answer(loaded, tokenizer, prompt_ids, method, gen_config, config, view)
            results.append(MethodResult(method, finished.answer.strip(), fact.is_correct(finished.answer),
                                        time.perf_counter() - started, finished.kv_bytes_peak / 2**20))
    lines = [f"{'method':<24} {'correct':<8} {'seconds':>8} {'K/V MB':>8}  answer"]
    for r in results:
        lines.append(f"{r.method:<24} {'yes' if r.correct else 'no':<8} {r.seconds:>8.1f} {r.kv_megabytes:>8.2f}  {r.answer!r}")
    write_result("\n" + "\n".join(lines) + "\n")
