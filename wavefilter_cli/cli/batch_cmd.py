"""``wavefilter batch``: answer the records of a JSON Lines file, one JSON result per record on stdout.

Records (see ``batch_records``) are decoded ``--batch-size`` at a time.
Results are written in input order, each as soon as it and every record
before it have finished: ``{"id", "answer", ...costs}``, or ``{"id",
"error", "status"}`` for a record that failed, which does not stop the
others. Under ``torchrun`` the records are sharded over the ranks and
rank 0 writes the gathered results (see ``cli.distributed``).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Optional

import typer

from wavefilter_cli.cli.app import app
from wavefilter_cli.cli.batch_records import BatchRecord, parse_records, record_error
from wavefilter_cli.cli.config_cmd import config_from_context
from wavefilter_cli.cli.distributed import ProcessGroup, Ranks, ranks_from_environment, worker_device
from wavefilter_cli.cli.generate_cmd import _overrides, _parse_budget, _parse_keep_tokens
from wavefilter_cli.cli.output import Diagnostics, write_result
from wavefilter_cli.config import Config
from wavefilter_cli.errors import InputError, UsageError, WavefilterError

BATCH_HELP = """Answer every record of INPUT (JSON Lines, - for stdin) and write one JSON result per record.

Examples:

\b
  wavefilter batch questions.jsonl > answers.jsonl
  cat records.jsonl | wavefilter batch - --batch-size 8 -m ~/models/LLaDA-8B-Instruct
  torchrun --nproc-per-node 4 -m wavefilter_cli batch records.jsonl > answers.jsonl

\b
A record is one JSON object per line:
  {"id": 1, "context": ["report.pdf", "notes/"], "question": "Who signed the lease?"}
  {"id": "b", "text": "The passcode is 4817.", "question": "What is the passcode?"}
  {"id": 3, "context": ["report.pdf"], "task": "summarize"}

Each result line is {"id", "answer", "tokens_in", "tokens_out", "steps",
"forward_passes", "seconds", "batch_size"}, or {"id", "error", "status"}
for a record that failed. The other records still run, and results come
in input order. Exit status: 0 when every record succeeded, else the
status of the first failed record (3 input, 4 too long, 5 model), and 2
for invalid options. Under torchrun, rank 0 writes every result.
"""


def read_input(name: str) -> list[BatchRecord]:
    """Read and parse the records of file ``name`` (``-`` for stdin); exit 3 for a missing, unreadable or empty input."""
    hint = "pass a JSON Lines file with one record per line (see wavefilter batch --help)"
    if name == "-":
        if sys.stdin.isatty():
            raise UsageError(f"no records on stdin; pipe them in, or {hint}")
        text, source = sys.stdin.read(), "stdin"
    else:
        try:
            text, source = Path(name).read_text(encoding="utf-8-sig"), name
        except FileNotFoundError:
            raise InputError(f"{name}: file not found; {hint}") from None
        except IsADirectoryError:
            raise InputError(f"{name}: is a directory; {hint}") from None
        except UnicodeDecodeError:
            raise InputError(f"{name}: not UTF-8 text; save the records as UTF-8") from None
        except OSError as error:
            raise InputError(f"{name}: cannot read ({error.strerror}); check the file") from None
    records = parse_records(text, source)
    if not records:
        raise InputError(f"{source}: no records in it; {hint}")
    return records


def record_job(record: BatchRecord, config: Config, diagnostics: Diagnostics, verbosity: int):
    """The job that answers ``record``; its documents are read when it runs."""
    from wavefilter_cli.cli.batch_run import Job
    from wavefilter_cli.cli.inputs import read_documents
    from wavefilter_cli.ingest.text import read_text

    if record.error is not None:
        return Job(record.index, record.question, error=record_error(record))
    ingest = config.ingest

    def documents():
        if record.text is not None:
            return [read_text(record.text.encode("utf-8"), "text")]
        return read_documents(list(record.context), diagnostics, verbosity, None, None, ingest.include,
                              ingest.exclude, ingest.max_file_mb)

    return Job(record.index, record.question, documents)


def result_line(record: BatchRecord, result) -> str:
    """Format one output line: the answer with its costs, or the error with its exit status."""
    if result.failed:
        return json.dumps({"id": record.id, "error": result.error, "status": result.status}, ensure_ascii=False)
    return json.dumps({"id": record.id, "answer": result.answer, **result.timings()}, ensure_ascii=False)


def broadcast_records(group: ProcessGroup, ranks: Ranks, name: str) -> list[BatchRecord]:
    """Read the records on rank 0 and hand them to every rank; an input error stops every rank alike."""
    payload = None
    if ranks.is_main:
        try:
            payload = ("records", read_input(name))
        except WavefilterError as error:
            payload = ("error", error.exit_code, str(error))
    payload = group.broadcast(payload)
    if payload[0] == "error":
        error = WavefilterError(payload[2])
        error.exit_code = payload[1]
        raise error
    return payload[1]


def run_batch(config: Config, diagnostics: Diagnostics, verbosity: int, name: str, batch_size: int) -> int:
    """Answer every record of ``name``; returns the exit status (0, or the first failed record's status)."""
    from wavefilter_cli.cli.answer import build_policy, load_for_run
    from wavefilter_cli.cli.batch_run import BatchAnswerer, OrderedResults
    from wavefilter_cli.cli.live import LiveView, resolve_progress
    from wavefilter_cli.cli.long_inputs import check_chunk_options
    from wavefilter_cli.cli.questions import check_batch_size

    check_batch_size(batch_size)
    ranks = ranks_from_environment()
    device = worker_device(config.model.device, ranks)
    if device != config.model.device:
        config = config.replace({"model.device": device})
    if not ranks.is_main:
        diagnostics = Diagnostics(verbosity=-1, color=diagnostics.color)
    build_policy(config)  # a bad --cache, --filter or option fails before any slow work
    check_chunk_options(config)

    with ProcessGroup(ranks, device) as group:
        records = broadcast_records(group, ranks, name)
        view = LiveView(resolve_progress(config.output.progress, diagnostics.console), diagnostics.console)
        with view:
            view.set_stage("loading model")
            model, tokenizer = load_for_run(config, diagnostics)
            answerer = BatchAnswerer(config, model, tokenizer, diagnostics, batch_size, view)
            jobs = [record_job(record, config, diagnostics, verbosity) for record in ranks.shard(records)]
            ordered = OrderedResults()
            failures = []

            def write(results) -> None:
                for result in results:
                    for ready in ordered.add(result):
                        write_result(result_line(records[ready.index], ready) + "\n")
                        if ready.failed:
                            failures.append(ready)

            if not ranks.distributed:
                write(answerer.run(jobs))
            else:
                # Rounds of one batch per rank, so rank 0 writes results while later rounds run.
                rounds = math.ceil(math.ceil(len(records) / ranks.world_size) / batch_size)
                for number in range(rounds):
                    mine = list(answerer.run(jobs[number * batch_size : (number + 1) * batch_size]))
                    gathered = group.gather(mine)
                    if ranks.is_main:
                        write(result for results in gathered for result in results)
    if not ranks.is_main:
        return 0
    if failures:
        first = failures[0]
        diagnostics.error(
            f"{len(failures)} of {len(records)} records failed, the first with id {json.dumps(records[first.index].id)} "
            f"and status {first.status}; see the \"error\" lines on stdout"
        )
        return first.status
    diagnostics.notice(f"answered {len(records)} records in batches of up to {batch_size}")
    return 0


@app.command("batch", help=BATCH_HELP)
def batch(
    ctx: typer.Context,
    input_file: str = typer.Argument(..., metavar="INPUT", help="JSON Lines file of records, or - for stdin."),
    batch_size: int = typer.Option(4, "--batch-size", metavar="N", help="Records decoded together."),
    model: Optional[str] = typer.Option(None, "-m", "--model", help="Checkpoint folder, cached hub id, or 'builtin'. [env WAVEFILTER_MODEL]"),
    offline: Optional[bool] = typer.Option(None, "--offline", help="Never contact the Hugging Face hub. [env WAVEFILTER_OFFLINE]", show_default=False),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:N or mps; under torchrun, auto and cuda mean cuda:LOCAL_RANK. [env WAVEFILTER_DEVICE]"),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="auto (bf16 on CUDA, fp32 on CPU), bf16, fp16 or fp32. [env WAVEFILTER_DTYPE]"),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help="Answer length in tokens, rounded up to whole blocks. [env WAVEFILTER_MAX_TOKENS]"),
    steps: Optional[int] = typer.Option(None, "--steps", help="Total denoising steps (default: one per token). [env WAVEFILTER_STEPS]"),
    block_length: Optional[int] = typer.Option(None, "--block-length", help="Tokens per diffusion block. [env WAVEFILTER_BLOCK_LENGTH]"),
    sampler: Optional[str] = typer.Option(None, "--sampler", help="Sampler name (see ask --help). [env WAVEFILTER_SAMPLER]"),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Confidence threshold of the threshold sampler, in (0, 1]. [env WAVEFILTER_THRESHOLD]"),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="Sampling temperature; 0 is greedy. [env WAVEFILTER_TEMPERATURE]"),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed, the same for every record. [env WAVEFILTER_SEED]"),
    system: Optional[str] = typer.Option(None, "-s", "--system", help="System prompt. [env WAVEFILTER_SYSTEM]"),
    cache: Optional[str] = typer.Option(None, "--cache", help="KV-cache policy. [env WAVEFILTER_CACHE]"),
    refresh_every: Optional[int] = typer.Option(None, "--refresh-every", metavar="N", help="prefix and dual caches: also refresh every N steps of a block; 0 refreshes at block starts only. [env WAVEFILTER_REFRESH_EVERY]"),
    filter: Optional[str] = typer.Option(None, "--filter", help="Key-token filter of the cache, or 'none'. [env WAVEFILTER_FILTER]"),
    budget: Optional[str] = typer.Option(None, "--budget", help="Context kept by the filter: a ratio in (0, 1] or a token count ≥ 16. [env WAVEFILTER_BUDGET]"),
    sink: Optional[int] = typer.Option(None, "--sink", help="First prompt tokens always kept. [env WAVEFILTER_SINK]"),
    tail: Optional[int] = typer.Option(None, "--tail", help="Last prompt tokens (the question) always kept. [env WAVEFILTER_TAIL]"),
    evict: Optional[bool] = typer.Option(None, "--evict/--no-evict", help="Drop unkept K/V (saves memory) or only mask it. [env WAVEFILTER_EVICT]", show_default=False),
    progress: Optional[str] = typer.Option(None, "--progress", help="Live view on stderr: auto, rich, jsonl or none. [env WAVEFILTER_PROGRESS]"),
    ctx_tokens: Optional[int] = typer.Option(None, "--ctx-tokens", metavar="N", help="Window in tokens, prompt plus answer (default: the model's trained window). [env WAVEFILTER_CTX_TOKENS]"),
    chunk: Optional[bool] = typer.Option(None, "--chunk/--no-chunk", help="Answer a record over the window from chunks, or fail that record with status 4. [env WAVEFILTER_CHUNK]", show_default=False),
    strategy: Optional[str] = typer.Option(None, "--strategy", help="How a record over the window is answered (see ask --help). [env WAVEFILTER_STRATEGY]"),
    chunk_tokens: Optional[int] = typer.Option(None, "--chunk-tokens", metavar="N", help="Document tokens per chunk (default: fill the window). [env WAVEFILTER_CHUNK_TOKENS]"),
    chunk_overlap: Optional[int] = typer.Option(None, "--chunk-overlap", metavar="N", help="Tokens shared by consecutive chunks (default 64). [env WAVEFILTER_CHUNK_OVERLAP]"),
    positions: Optional[str] = typer.Option(None, "--positions", help="RoPE positions of kept tokens under the filter strategy: compact or original. [env WAVEFILTER_POSITIONS]"),
    keep_unit: Optional[str] = typer.Option(None, "--keep-unit", help="What --strategy filter keeps: sentences (whole, ranked by their best token; default) or tokens. [env WAVEFILTER_KEEP_UNIT]"),
    keep_tokens: Optional[str] = typer.Option(None, "--keep-tokens", metavar="N", help="Maximum document tokens --strategy filter keeps (default 1024); none keeps as many as fit the window. [env WAVEFILTER_KEEP_TOKENS]"),
) -> None:
    config, _ = config_from_context(
        ctx,
        _overrides(model=model, offline=offline, device=device, dtype=dtype, max_tokens=max_tokens, steps=steps,
                   block_length=block_length, sampler=sampler, threshold=threshold, temperature=temperature,
                   seed=seed, system=system, cache=cache, refresh_every=refresh_every, filter=filter,
                   budget=_parse_budget(budget), sink=sink,
                   tail=tail, evict=evict, progress=progress, ctx_tokens=ctx_tokens, chunk=chunk, strategy=strategy,
                   chunk_tokens=chunk_tokens, chunk_overlap=chunk_overlap, positions=positions, keep_unit=keep_unit, keep_tokens=_parse_keep_tokens(keep_tokens)),
    )
    code = run_batch(config, ctx.obj["diagnostics"], ctx.obj.get("verbosity", 0), input_file, batch_size)
    if code:
        raise typer.Exit(code)
