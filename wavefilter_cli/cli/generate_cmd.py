"""``wavefilter ask`` and ``wavefilter summarize``."""

from __future__ import annotations

from typing import List, Optional

import typer

from wavefilter_cli.cli.answer import InputOptions, OutputOptions, run_answer
from wavefilter_cli.cli.app import app
from wavefilter_cli.cli.config_cmd import config_from_context

ASK_HELP = """Answer QUESTION, or every question in --questions FILE, from the documents given with --context.

Examples:

\b
  wavefilter ask --context report.pdf "What is the passcode for the north gate?"
  wavefilter ask --context docs/ --cache prefix --filter wavefilter --budget 0.1 "Who signed the lease?"
  cat notes.md | wavefilter ask --context - "When is the review?"
  wavefilter ask --context report.pdf --json "What was the Q3 budget?"
  wavefilter ask --context book.pdf --cite --ctx-tokens 4096 "Who wrote the letter?"
  wavefilter ask --context report.pdf --questions questions.txt --batch-size 8 --json

An input longer than the window is split into chunks, and the tokens the
key-token filter ranks highest across all chunks are kept (--strategy
filter); --no-chunk stops with exit status 4 instead.

The answer streams to stdout block by block; progress and notices go to
stderr. Exit status: 0 success, 2 usage, 3 input, 4 too long or budget,
5 model, 6 device, 130 interrupted.
"""

SUMMARIZE_HELP = """Summarise the documents INPUT... with an instruction-tuned model.

Examples:

\b
  wavefilter summarize report.pdf --model ~/models/LLaDA-8B-Instruct
  wavefilter summarize notes/ --include '*.md' -m GSAI-ML/LLaDA-8B-Instruct --offline

An input longer than the window is split into chunks: each chunk is
summarised, then the summaries (--strategy map-reduce). The built-in model
answers look-ups only, so summaries need --model.
"""


def _overrides(**flags) -> dict[str, object]:
    """Dotted config keys for the flags that were given (None means not given)."""
    mapping = {
        "model": "model.name", "device": "model.device", "dtype": "model.dtype", "offline": "model.offline",
        "max_tokens": "generate.max_tokens", "steps": "generate.steps", "block_length": "generate.block_length",
        "sampler": "generate.sampler", "threshold": "generate.threshold", "temperature": "generate.temperature",
        "seed": "generate.seed", "system": "generate.system", "cache": "cache.method", "filter": "cache.filter",
        "refresh_every": "cache.refresh_every",
        "budget": "cache.budget", "sink": "cache.sink", "tail": "cache.tail", "evict": "cache.evict",
        "progress": "output.progress", "ctx_tokens": "model.ctx_tokens", "chunk": "generate.chunk",
        "strategy": "generate.strategy", "chunk_tokens": "generate.chunk_tokens", "chunk_overlap": "generate.chunk_overlap",
        "positions": "generate.positions", "keep_unit": "generate.keep_unit", "keep_tokens": "generate.keep_tokens",
    }
    return {mapping[name]: value for name, value in flags.items() if value is not None}


def _parse_budget(value: Optional[str]) -> Optional[float]:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        from wavefilter_cli.errors import UsageError

        raise UsageError(f"--budget {value!r} is not a number: use a ratio in (0, 1] such as 0.1 or a token count ≥ 16") from None
    if 0 < number <= 1:
        return number
    if number >= 16 and number.is_integer():
        return int(number)
    from wavefilter_cli.errors import LengthError

    raise LengthError(f"--budget {value} is invalid: use a ratio in (0, 1] such as 0.1 or a token count ≥ 16")


def _parse_keep_tokens(value: Optional[str]) -> int | str | None:
    """Turn ``--keep-tokens`` into a whole number, or keep ``none`` for the config to read as no cap."""
    if value is None or value.strip().lower() == "none":
        return value
    try:
        return int(value)
    except ValueError:
        from wavefilter_cli.errors import UsageError

        raise UsageError(f"--keep-tokens {value!r} is invalid: use a whole token count ≥ 16, or none") from None


def _warn_unused_budget(ctx: typer.Context, config, budget) -> None:
    """Warn when ``--budget`` was typed but no filter will use it."""
    if budget is not None and config.cache.filter in (None, "none"):
        ctx.obj["diagnostics"].warn(
            f"--budget {budget} has no effect without a filter; add --filter wavefilter (or another filter)"
        )


def _run(ctx: typer.Context, question: Optional[str], inputs, pages, password_env, as_json, no_stream, cite, **flags) -> None:
    flags["budget"] = _parse_budget(flags.get("budget"))
    flags["keep_tokens"] = _parse_keep_tokens(flags.get("keep_tokens"))
    config, _ = config_from_context(ctx, _overrides(**flags))
    _warn_unused_budget(ctx, config, flags["budget"])
    run_answer(
        config,
        ctx.obj["diagnostics"],
        ctx.obj.get("verbosity", 0),
        InputOptions(inputs, pages, password_env),
        question,
        OutputOptions(stream=not no_stream, as_json=as_json, cite=cite),
    )


def _run_questions(ctx: typer.Context, question: Optional[str], questions: str, batch_size: int, inputs, pages,
                   password_env, as_json: bool, cite: bool, **flags) -> None:
    from wavefilter_cli.cli.questions import run_questions
    from wavefilter_cli.errors import UsageError

    if question is not None:
        raise UsageError(f"QUESTION {question!r} and --questions both give questions; pass one of them")
    if cite:
        raise UsageError("--cite works with one QUESTION; drop --cite or ask without --questions")
    flags["budget"] = _parse_budget(flags.get("budget"))
    flags["keep_tokens"] = _parse_keep_tokens(flags.get("keep_tokens"))
    config, _ = config_from_context(ctx, _overrides(**flags))
    _warn_unused_budget(ctx, config, flags["budget"])
    run_questions(config, ctx.obj["diagnostics"], ctx.obj.get("verbosity", 0), InputOptions(inputs, pages, password_env),
                  questions, batch_size, as_json)


@app.command("ask", help=ASK_HELP)
def ask(
    ctx: typer.Context,
    question: Optional[str] = typer.Argument(None, help="The question to answer (omit it with --questions)."),
    context: Optional[List[str]] = typer.Option(None, "--context", metavar="PATH", help="Document, directory or - for stdin (repeatable)."),
    model: Optional[str] = typer.Option(None, "-m", "--model", help="Checkpoint folder, cached hub id, or 'builtin'. [env WAVEFILTER_MODEL]"),
    offline: Optional[bool] = typer.Option(None, "--offline", help="Never contact the Hugging Face hub. [env WAVEFILTER_OFFLINE]", show_default=False),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:N or mps. [env WAVEFILTER_DEVICE]"),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="auto (bf16 on CUDA, fp32 on CPU), bf16, fp16 or fp32. [env WAVEFILTER_DTYPE]"),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help="Answer length in tokens, rounded up to whole blocks. [env WAVEFILTER_MAX_TOKENS]"),
    steps: Optional[int] = typer.Option(None, "--steps", help="Total denoising steps (default: one per token). [env WAVEFILTER_STEPS]"),
    block_length: Optional[int] = typer.Option(None, "--block-length", help="Tokens per diffusion block. [env WAVEFILTER_BLOCK_LENGTH]"),
    sampler: Optional[str] = typer.Option(None, "--sampler", help="low-confidence, random, threshold, factor, maskgit_plus, topk_margin or entropy. [env WAVEFILTER_SAMPLER]"),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Confidence threshold of the threshold sampler, in (0, 1]. [env WAVEFILTER_THRESHOLD]"),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="Sampling temperature; 0 is greedy. [env WAVEFILTER_TEMPERATURE]"),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed. [env WAVEFILTER_SEED]"),
    system: Optional[str] = typer.Option(None, "-s", "--system", help="System prompt. [env WAVEFILTER_SYSTEM]"),
    cache: Optional[str] = typer.Option(None, "--cache", help="KV-cache policy: none, prefix, dual, elastic, dllm-cache, sparse-dllm or dkv. [env WAVEFILTER_CACHE]"),
    refresh_every: Optional[int] = typer.Option(None, "--refresh-every", metavar="N", help="prefix and dual caches: also refresh every N steps of a block; 0 refreshes at block starts only. [env WAVEFILTER_REFRESH_EVERY]"),
    filter: Optional[str] = typer.Option(None, "--filter", help="Key-token filter of the cache, or 'none'. [env WAVEFILTER_FILTER]"),
    budget: Optional[str] = typer.Option(None, "--budget", help="Context kept by the filter: a ratio in (0, 1] or a token count ≥ 16. [env WAVEFILTER_BUDGET]"),
    sink: Optional[int] = typer.Option(None, "--sink", help="First prompt tokens always kept. [env WAVEFILTER_SINK]"),
    tail: Optional[int] = typer.Option(None, "--tail", help="Last prompt tokens (the question) always kept. [env WAVEFILTER_TAIL]"),
    evict: Optional[bool] = typer.Option(None, "--evict/--no-evict", help="Drop unkept K/V (saves memory) or only mask it. [env WAVEFILTER_EVICT]", show_default=False),
    pages: Optional[str] = typer.Option(None, "--pages", metavar="SPEC", help="PDF pages to read, such as 3-10,15."),
    password_env: Optional[str] = typer.Option(None, "--password-env", metavar="VAR", help="Environment variable holding the PDF password."),
    progress: Optional[str] = typer.Option(None, "--progress", help="Live view on stderr: auto, rich, jsonl or none. [env WAVEFILTER_PROGRESS]"),
    ctx_tokens: Optional[int] = typer.Option(None, "--ctx-tokens", metavar="N", help="Window in tokens, prompt plus answer (default: the model's trained window). [env WAVEFILTER_CTX_TOKENS]"),
    chunk: Optional[bool] = typer.Option(None, "--chunk/--no-chunk", help="Split inputs longer than the window into chunks, or stop with exit status 4. [env WAVEFILTER_CHUNK]", show_default=False),
    strategy: Optional[str] = typer.Option(None, "--strategy", help="Long inputs: filter (keep the tokens the filter ranks highest; default for ask), retrieve (keep the chunks BM25 ranks highest against the question) or map-reduce. [env WAVEFILTER_STRATEGY]"),
    chunk_tokens: Optional[int] = typer.Option(None, "--chunk-tokens", metavar="N", help="Document tokens per chunk (default: fill the window). [env WAVEFILTER_CHUNK_TOKENS]"),
    chunk_overlap: Optional[int] = typer.Option(None, "--chunk-overlap", metavar="N", help="Tokens shared by consecutive chunks (default 64). [env WAVEFILTER_CHUNK_OVERLAP]"),
    positions: Optional[str] = typer.Option(None, "--positions", help="RoPE positions of kept tokens under --strategy filter or retrieve: compact or original. [env WAVEFILTER_POSITIONS]"),
    keep_unit: Optional[str] = typer.Option(None, "--keep-unit", help="What --strategy filter keeps: sentences (whole, ranked by their best token; default) or tokens. [env WAVEFILTER_KEEP_UNIT]"),
    keep_tokens: Optional[str] = typer.Option(None, "--keep-tokens", metavar="N", help="Maximum document tokens --strategy filter keeps (default 1024); none keeps as many as fit the window. [env WAVEFILTER_KEEP_TOKENS]"),
    cite: bool = typer.Option(False, "--cite", help="Print the source spans the answer attended to most on stderr."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object with the answer, its costs and citations."),
    no_stream: bool = typer.Option(False, "--no-stream", help="Print the answer at the end instead of block by block."),
    questions: Optional[str] = typer.Option(None, "--questions", metavar="FILE", help="Answer every question in FILE (one per line, or JSON Lines with a \"question\" field; - for stdin), in batches."),
    batch_size: int = typer.Option(4, "--batch-size", metavar="N", help="Questions decoded together with --questions."),
) -> None:
    if questions is not None:
        _run_questions(ctx, question, questions, batch_size, context, pages, password_env, as_json, cite,
                       model=model, offline=offline, device=device, dtype=dtype, max_tokens=max_tokens, steps=steps,
                       block_length=block_length, sampler=sampler, threshold=threshold, temperature=temperature,
                       seed=seed, system=system, cache=cache, refresh_every=refresh_every, filter=filter, budget=budget, sink=sink, tail=tail,
                       evict=evict, progress=progress, ctx_tokens=ctx_tokens, chunk=chunk, strategy=strategy,
                       chunk_tokens=chunk_tokens, chunk_overlap=chunk_overlap, positions=positions, keep_unit=keep_unit, keep_tokens=keep_tokens)
        return
    if question is None or not question.strip():
        from wavefilter_cli.errors import UsageError

        problem = "no question given" if question is None else f"the question {question!r} is empty"
        raise UsageError(f"{problem}; pass QUESTION, or --questions FILE with one question per line")
    _run(ctx, question, context, pages, password_env, as_json, no_stream, cite, model=model, offline=offline,
         device=device, dtype=dtype, max_tokens=max_tokens, steps=steps, block_length=block_length, sampler=sampler,
         threshold=threshold, temperature=temperature, seed=seed, system=system, cache=cache, refresh_every=refresh_every, filter=filter,
         budget=budget, sink=sink, tail=tail, evict=evict, progress=progress, ctx_tokens=ctx_tokens, chunk=chunk,
         strategy=strategy, chunk_tokens=chunk_tokens, chunk_overlap=chunk_overlap, positions=positions, keep_unit=keep_unit, keep_tokens=keep_tokens)


@app.command("summarize", help=SUMMARIZE_HELP)
def summarize(
    ctx: typer.Context,
    inputs: Optional[List[str]] = typer.Argument(None, metavar="INPUT", help="PDF, text or Markdown files, directories, or - for stdin."),
    model: Optional[str] = typer.Option(None, "-m", "--model", help="Checkpoint folder, cached hub id, or 'builtin'. [env WAVEFILTER_MODEL]"),
    offline: Optional[bool] = typer.Option(None, "--offline", help="Never contact the Hugging Face hub. [env WAVEFILTER_OFFLINE]", show_default=False),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:N or mps. [env WAVEFILTER_DEVICE]"),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="auto, bf16, fp16 or fp32. [env WAVEFILTER_DTYPE]"),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help="Summary length in tokens. [env WAVEFILTER_MAX_TOKENS]"),
    steps: Optional[int] = typer.Option(None, "--steps", help="Total denoising steps. [env WAVEFILTER_STEPS]"),
    block_length: Optional[int] = typer.Option(None, "--block-length", help="Tokens per diffusion block. [env WAVEFILTER_BLOCK_LENGTH]"),
    sampler: Optional[str] = typer.Option(None, "--sampler", help="Sampler name (see ask --help). [env WAVEFILTER_SAMPLER]"),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Threshold sampler confidence, in (0, 1]. [env WAVEFILTER_THRESHOLD]"),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="Sampling temperature. [env WAVEFILTER_TEMPERATURE]"),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed. [env WAVEFILTER_SEED]"),
    system: Optional[str] = typer.Option(None, "-s", "--system", help="System prompt. [env WAVEFILTER_SYSTEM]"),
    cache: Optional[str] = typer.Option(None, "--cache", help="KV-cache policy. [env WAVEFILTER_CACHE]"),
    refresh_every: Optional[int] = typer.Option(None, "--refresh-every", metavar="N", help="prefix and dual caches: also refresh every N steps of a block; 0 refreshes at block starts only. [env WAVEFILTER_REFRESH_EVERY]"),
    filter: Optional[str] = typer.Option(None, "--filter", help="Key-token filter, or 'none'. [env WAVEFILTER_FILTER]"),
    budget: Optional[str] = typer.Option(None, "--budget", help="Ratio in (0, 1] or token count ≥ 16. [env WAVEFILTER_BUDGET]"),
    sink: Optional[int] = typer.Option(None, "--sink", help="First prompt tokens always kept. [env WAVEFILTER_SINK]"),
    tail: Optional[int] = typer.Option(None, "--tail", help="Last prompt tokens always kept. [env WAVEFILTER_TAIL]"),
    evict: Optional[bool] = typer.Option(None, "--evict/--no-evict", help="Drop unkept K/V or only mask it. [env WAVEFILTER_EVICT]", show_default=False),
    pages: Optional[str] = typer.Option(None, "--pages", metavar="SPEC", help="PDF pages to read, such as 3-10,15."),
    password_env: Optional[str] = typer.Option(None, "--password-env", metavar="VAR", help="Environment variable holding the PDF password."),
    progress: Optional[str] = typer.Option(None, "--progress", help="Live view on stderr: auto, rich, jsonl or none. [env WAVEFILTER_PROGRESS]"),
    ctx_tokens: Optional[int] = typer.Option(None, "--ctx-tokens", metavar="N", help="Window in tokens, prompt plus summary (default: the model's trained window). [env WAVEFILTER_CTX_TOKENS]"),
    chunk: Optional[bool] = typer.Option(None, "--chunk/--no-chunk", help="Split inputs longer than the window into chunks, or stop with exit status 4. [env WAVEFILTER_CHUNK]", show_default=False),
    strategy: Optional[str] = typer.Option(None, "--strategy", help="Long inputs: map-reduce (summarise each chunk, then the summaries; default for summarize), filter or retrieve. [env WAVEFILTER_STRATEGY]"),
    chunk_tokens: Optional[int] = typer.Option(None, "--chunk-tokens", metavar="N", help="Document tokens per chunk (default: fill the window). [env WAVEFILTER_CHUNK_TOKENS]"),
    chunk_overlap: Optional[int] = typer.Option(None, "--chunk-overlap", metavar="N", help="Tokens shared by consecutive chunks (default 64). [env WAVEFILTER_CHUNK_OVERLAP]"),
    positions: Optional[str] = typer.Option(None, "--positions", help="RoPE positions of kept tokens under --strategy filter or retrieve: compact or original. [env WAVEFILTER_POSITIONS]"),
    keep_unit: Optional[str] = typer.Option(None, "--keep-unit", help="What --strategy filter keeps: sentences (whole, ranked by their best token; default) or tokens. [env WAVEFILTER_KEEP_UNIT]"),
    keep_tokens: Optional[str] = typer.Option(None, "--keep-tokens", metavar="N", help="Maximum document tokens --strategy filter keeps (default 1024); none keeps as many as fit the window. [env WAVEFILTER_KEEP_TOKENS]"),
    cite: bool = typer.Option(False, "--cite", help="Print the source spans the summary attended to most on stderr."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object with the summary, its costs and citations."),
    no_stream: bool = typer.Option(False, "--no-stream", help="Print the summary at the end instead of block by block."),
) -> None:
    _run(ctx, None, inputs, pages, password_env, as_json, no_stream, cite, model=model, offline=offline, device=device,
         dtype=dtype, max_tokens=max_tokens, steps=steps, block_length=block_length, sampler=sampler,
         threshold=threshold, temperature=temperature, seed=seed, system=system, cache=cache, refresh_every=refresh_every, filter=filter,
         budget=budget, sink=sink, tail=tail, evict=evict, progress=progress, ctx_tokens=ctx_tokens, chunk=chunk,
         strategy=strategy, chunk_tokens=chunk_tokens, chunk_overlap=chunk_overlap, positions=positions, keep_unit=keep_unit, keep_tokens=keep_tokens)
