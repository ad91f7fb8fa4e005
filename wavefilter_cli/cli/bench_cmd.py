"""``wavefilter bench``: accuracy, total time and K/V memory of cache methods on RULER-style tasks or LongBench."""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import typer

from wavefilter_cli.cli.answer import build_policy, generation_config, load_for_run
from wavefilter_cli.cli.app import app
from wavefilter_cli.cli.config_cmd import config_from_context
from wavefilter_cli.cli.distributed import ProcessGroup, Ranks, interleave, ranks_from_environment, worker_device
from wavefilter_cli.cli.generate_cmd import _parse_budget
from wavefilter_cli.cli.output import Diagnostics, write_result
from wavefilter_cli.config import Config
from wavefilter_cli.errors import InputError, LengthError, UsageError

BENCH_HELP = """Measure accuracy, total time, generated tokens and K/V memory of cache methods side by side.

Examples:

\b
  wavefilter bench --suite ruler --lengths 4096,8192 --samples 50 --methods none,prefix,prefix+snapkv
  wavefilter bench --suite ruler --tasks niah_single_1,vt --budgets 0.05,0.1 --plot plots/
  wavefilter bench --suite longbench --data ~/longbench --tasks hotpotqa,trec -m ~/models/LLaDA-8B-Instruct
  wavefilter bench --gen-length 256 --no-early-stop --json -o results.csv

A method is HOST[+FILTER]: a cache policy (none, prefix, dual, elastic, dllm-cache, sparse-dllm, dkv)
with an optional key-token filter. Every method runs on the same samples,
interleaved sample by sample. The results table goes to stderr, and --json
prints one JSON document on stdout. See docs/evaluation.md.

Under torchrun (torchrun --nproc-per-node 4 -m wavefilter_cli bench ...)
the samples are split over the ranks and rank 0 reports them all.
"""

SUITES = ("ruler", "lookup", "longbench")
DEFAULT_RULER_LENGTH = 4096
#: Base seed of the RULER sample generator (RULER's default), kept apart from the generation seed.
RULER_DATA_SEED = 42
#: Tasks of the ``lookup`` suite: the built-in model's training tasks, on held-out text.
LOOKUP_TASKS = ("niah_single", "niah_multikey", "niah_multivalue", "niah_multiquery", "vartrack", "quote")
#: Answer slots of a look-up: a restated fact takes up to about 20 tokens.
LOOKUP_ANSWER_TOKENS = 24
PLOT_HINT = "pip install 'wavefilter[plot]'"


# ---------------------------------------------------------------------------
# Option parsing
# ---------------------------------------------------------------------------


def parse_lengths(text: str | None) -> list[int] | None:
    """Parse ``--lengths``, comma-separated token counts, or return None when it is not given."""
    if text is None:
        return None
    lengths = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or int(part) < 1:
            raise UsageError(
                f"--lengths {text!r} is invalid: use positive token counts separated by commas, such as 4096,8192"
            )
        lengths.append(int(part))
    return lengths


def parse_names(text: str | None) -> list[str] | None:
    """Split a comma-separated list of names; None when not given."""
    if text is None:
        return None
    names = [part.strip() for part in text.split(",")]
    if not all(names):
        raise UsageError(f"{text!r} has an empty name: separate names with single commas")
    return names


def parse_budgets(budget: str | None, budgets: str | None, config: Config) -> list[float | int]:
    """Return the budgets to run: ``--budgets`` wins over ``--budget``, which wins over ``cache.budget``."""
    if budgets is not None:
        values = [_parse_budget(part.strip()) for part in budgets.split(",")]
    elif budget is not None:
        values = [_parse_budget(budget)]
    else:
        values = [config.cache.budget]
    # A budget given twice would run twice; keep the first of each.
    return list(dict.fromkeys(values))


def default_methods() -> str:
    """Return the default method list: none, prefix, and prefix+wavefilter when that filter is registered."""
    from wavefilter_cli.filters.registry import FILTERS

    return "none,prefix,prefix+wavefilter" if "wavefilter" in FILTERS else "none,prefix"


def parse_method_list(text: str):
    """Parse ``--methods`` against the registered hosts and filters (exit 2 naming an unknown one)."""
    from wavefilter_cli.cache import CACHE_POLICIES
    from wavefilter_cli.eval.runner import parse_methods
    from wavefilter_cli.filters.registry import FILTERS

    try:
        return parse_methods(text, CACHE_POLICIES, FILTERS)
    except ValueError as error:
        raise UsageError(str(error)) from None


def check_output_path(path: Optional[Path]) -> None:
    if path is None:
        return
    if path.suffix.lower() not in (".json", ".csv"):
        raise UsageError(f"-o {path} is invalid: name the results file *.json or *.csv")
    if not path.parent.is_dir():
        raise UsageError(f"-o {path} is invalid: the folder {path.parent} does not exist")


def check_plotting() -> None:
    """Exit 2 before any work when ``--plot`` is given but matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError(f"--plot needs matplotlib, which is not installed; run: {PLOT_HINT}") from None


# ---------------------------------------------------------------------------
# Benchmark sources: the samples each suite runs
# ---------------------------------------------------------------------------


@dataclass
class Source:
    """The samples of one suite: tasks, lengths, the run count and a lazy item stream.

    ``items`` yields ``BenchItem`` values in run order (length, task, index);
    ``details`` goes into the JSON document.
    """

    tasks: list[str]
    lengths: list[int]
    samples_per_task: dict[str, int]
    items: Callable[[], Iterator]
    details: dict = field(default_factory=dict)

    @property
    def total_items(self) -> int:
        return len(self.lengths) * sum(self.samples_per_task[task] for task in self.tasks)


def resolve_haystack(haystack: Optional[Path]) -> Path:
    from wavefilter_cli.eval.ruler import DEFAULT_HAYSTACK_DIR

    if haystack is not None:
        return haystack
    if DEFAULT_HAYSTACK_DIR.is_dir():
        return DEFAULT_HAYSTACK_DIR
    raise InputError(
        f"no haystack folder: {DEFAULT_HAYSTACK_DIR} does not exist; pass --haystack DIR with plain-text books"
    )


def window_warner(model, diagnostics: Diagnostics) -> Callable[[str, int, int, int], None]:
    """Return a check that warns once per (task, length) when prompt plus answer exceed the model's window."""
    window = model.config.context_window
    warned: set[tuple[str, int]] = set()

    def check(task: str, length: int, prompt_tokens: int, answer_tokens: int) -> None:
        total = prompt_tokens + answer_tokens
        if total > window and (task, length) not in warned:
            warned.add((task, length))
            diagnostics.warn(
                f"{task} at length {length}: prompt {prompt_tokens} + answer {answer_tokens} = {total} tokens, "
                f"over the model's {window}-token window; results measure extrapolation"
            )

    return check


def ruler_source(tokenizer, model, config: Config, diagnostics: Diagnostics, options: "BenchOptions") -> Source:
    from wavefilter_cli.eval.ruler import TASKS, HaystackText, RulerGenerator
    from wavefilter_cli.eval.ruler_metrics import METRICS
    from wavefilter_cli.eval.runner import BenchItem

    tasks = options.tasks or list(TASKS)
    haystack_dir = options.haystack
    try:
        haystack = HaystackText(haystack_dir)
    except (FileNotFoundError, ValueError) as error:
        raise InputError(str(error)) from None
    generator = RulerGenerator(tokenizer, haystack, seed=RULER_DATA_SEED, system=config.generate.system)
    lengths = options.lengths or [DEFAULT_RULER_LENGTH]
    check_window = window_warner(model, diagnostics)
    block = generation_config(config).block_length

    def build(task: str, length: int, index: int):
        try:
            return generator.sample(task, length, index, options.samples)
        except ValueError as error:
            raise LengthError(str(error)) from None

    # Build each (task, length)'s first sample now, so a length too short for a task fails before any run.
    first = {(task, length): build(task, length, 0) for length in lengths for task in tasks}

    def items() -> Iterator[BenchItem]:
        for length in lengths:
            for task in tasks:
                for index in range(options.samples):
                    sample = first.pop((task, length)) if index == 0 else build(task, length, index)
                    if sample.shortfall:
                        diagnostics.debug(
                            f"{task} sample {index} at length {length} is {sample.shortfall} tokens short"
                        )
                    answer = options.gen_length or sample.max_new_tokens
                    rounded = -(-answer // block) * block
                    check_window(task, length, len(sample.prompt_ids), rounded)
                    metric = METRICS[sample.metric]
                    outputs = sample.outputs
                    yield BenchItem(
                        task, length, index, sample.prompt_ids, sample.max_new_tokens,
                        lambda prediction, outputs=outputs, metric=metric: metric(prediction, outputs),
                    )

    return Source(
        tasks=tasks,
        lengths=lengths,
        samples_per_task={task: options.samples for task in tasks},
        items=items,
        details={"haystack": str(haystack_dir), "data_seed": RULER_DATA_SEED},
    )


def lookup_source(tokenizer, model, config: Config, diagnostics: Diagnostics, options: "BenchOptions") -> Source:
    """The built-in model's own look-up tasks on held-out text, scored by exact match of the answer.

    Samples come from the evaluation split of the haystack books (the last
    10 % of each), with the prompt layout the CLI uses and depths spread
    evenly; the answer restates the fact for single and multi-key look-ups.
    """
    from wavefilter_cli.eval.runner import BenchItem
    from wavefilter_cli.training.data import SampleGenerator
    from wavefilter_cli.training.haystack import Haystack

    tasks = options.tasks or list(LOOKUP_TASKS)
    lengths = options.lengths or [DEFAULT_RULER_LENGTH]
    check_window = window_warner(model, diagnostics)
    block = generation_config(config).block_length
    try:
        # The target ids are not used here, so a generous answer length only keeps small vocabularies from failing.
        generator = SampleGenerator(tokenizer, Haystack(options.haystack), answer_length=64, split="eval")
    except (FileNotFoundError, ValueError) as error:
        raise InputError(str(error)) from None

    def build(task: str, length: int, index: int):
        rng = random.Random(f"{RULER_DATA_SEED}-{task}-{length}-{index}")
        try:
            return generator.make(task, length, rng, depth=(index + 0.5) / options.samples)
        except ValueError as error:
            raise LengthError(str(error)) from None

    def items() -> Iterator[BenchItem]:
        for length in lengths:
            for task in tasks:
                for index in range(options.samples):
                    sample = build(task, length, index)
                    answer = options.gen_length or LOOKUP_ANSWER_TOKENS
                    check_window(task, length, len(sample.prompt_ids), -(-answer // block) * block)
                    expected = sample.answer_text.strip()
                    yield BenchItem(
                        task, length, index, sample.prompt_ids, LOOKUP_ANSWER_TOKENS,
                        lambda prediction, expected=expected: float(prediction.strip() == expected),
                    )

    return Source(
        tasks=tasks,
        lengths=lengths,
        samples_per_task={task: options.samples for task in tasks},
        items=items,
        details={"haystack": str(options.haystack), "data_seed": RULER_DATA_SEED, "split": "eval"},
    )


def longbench_source(tokenizer, model, config: Config, diagnostics: Diagnostics, options: "BenchOptions") -> Source:
    from wavefilter_cli.eval.longbench import DataError, LongBenchLoader
    from wavefilter_cli.eval.runner import BenchItem

    assert options.data is not None, "the command checks --data before loading the model"
    try:
        loader = LongBenchLoader(tokenizer, options.data, system=config.generate.system)
        tasks = options.tasks or loader.available_tasks()
        if not tasks:
            raise InputError(f"no LongBench files in {options.data}; add <task>.jsonl files such as hotpotqa.jsonl")
        counts = {task: min(options.samples, len(loader.records(task))) for task in tasks}
    except FileNotFoundError as error:
        raise InputError(str(error)) from None
    except DataError as error:
        raise InputError(str(error)) from None
    except ValueError as error:
        raise UsageError(str(error)) from None

    window = model.config.context_window
    lengths = options.lengths or [window]
    block = generation_config(config).block_length

    def items() -> Iterator[BenchItem]:
        from wavefilter_cli.eval.longbench import TASKS, base_task

        for length in lengths:
            for task in tasks:
                answer = options.gen_length or TASKS[base_task(task)].max_new_tokens
                rounded = -(-answer // block) * block
                budget = min(length, window - rounded)
                if budget < 1:
                    raise LengthError(
                        f"{task}: an answer of {rounded} tokens leaves no room in the {window}-token window; "
                        "lower --gen-length"
                    )
                for index in range(counts[task]):
                    try:
                        sample = loader.sample(task, index, budget)
                    except ValueError as error:
                        raise LengthError(f"{task} at length {length}: {error}") from None
                    yield BenchItem(task, length, index, sample.prompt_ids, sample.max_new_tokens, sample.score)

    return Source(
        tasks=tasks,
        lengths=lengths,
        samples_per_task=counts,
        items=items,
        details={"data": str(options.data), "data_sha256": loader.sha256},
    )


# ---------------------------------------------------------------------------
# Rendering: progress, table, plots
# ---------------------------------------------------------------------------


def format_bytes(count: int) -> str:
    return f"{count / 2**20:.1f} MiB" if count >= 2**20 else f"{count / 2**10:.1f} KiB"


def render_table(rows, several_budgets: bool, diagnostics: Diagnostics) -> None:
    """Print the results as a Rich table on stderr (plain text when stderr is not a terminal)."""
    from rich.console import Console
    from rich.measure import Measurement
    from rich.table import Table

    table = Table(title="wavefilter bench", caption="acc: accuracy; n: samples; kept: mean kept context tokens")
    columns = ["method", "length", "task"] + (["budget"] if several_budgets else [])
    columns += ["acc", "n", "seconds", "tokens", "passes", "K/V peak", "kept", "tok/s"]
    for name in columns:
        table.add_column(name, justify="left" if name in ("method", "task") else "right", no_wrap=True)
    for row in rows:
        cells = [row.method, str(row.length), row.task]
        if several_budgets:
            cells.append("-" if row.budget is None else str(row.budget))
        cells += [
            f"{row.accuracy:.2f}", str(row.samples), f"{row.seconds:.2f}", str(row.generated_tokens),
            str(row.forward_passes), format_bytes(row.kv_bytes_peak), f"{row.kept_tokens_mean:.0f}",
            f"{row.tokens_per_second:.1f}",
        ]
        table.add_row(*cells)
    console = diagnostics.console or Console(file=sys.stderr, no_color=True, highlight=False)
    # A table wider than the terminal is printed at full width rather than with cropped cells.
    needed = Measurement.get(console, console.options.update(width=1000), table).maximum
    if needed > console.width:
        console = Console(file=sys.stderr, width=needed, no_color=console.no_color, highlight=False)
    console.print(table)


def method_label(row, several_budgets: bool) -> str:
    return row.method if not several_budgets or row.budget is None else f"{row.method} @ {row.budget}"


def write_plots(rows, budgets: list, directory: Path) -> list[Path]:
    """Write accuracy-vs-budget, time-vs-length and K/V-vs-length PNGs; return their paths.

    Accuracy is the mean over tasks and lengths; time sums the tasks' total
    seconds at each length; K/V is the largest peak at each length.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    several = len(budgets) > 1
    paths = []

    figure, axes = plt.subplots(figsize=(6, 4))
    for method in dict.fromkeys(row.method for row in rows):
        mine = [row for row in rows if row.method == method]
        if mine[0].budget is None:
            mean = sum(row.accuracy for row in mine) / len(mine)
            axes.axhline(mean, linestyle="--", label=method)
            continue
        points = []
        for budget in budgets:
            chosen = [row.accuracy for row in mine if row.budget == budget]
            points.append(sum(chosen) / len(chosen))
        axes.plot(budgets, points, marker="o", label=method)
    axes.set(xlabel="budget", ylabel="accuracy (mean over tasks and lengths)", title="Accuracy vs budget")
    axes.legend()
    paths.append(save_figure(figure, directory / "accuracy_vs_budget.png"))

    for name, title, ylabel, value, combine in (
        ("time_vs_length.png", "Total time vs context length", "seconds (sum over tasks)", "seconds", sum),
        ("kv_bytes_vs_length.png", "Peak K/V bytes vs context length", "bytes (max over tasks)", "kv_bytes_peak", max),
    ):
        figure, axes = plt.subplots(figsize=(6, 4))
        for label in dict.fromkeys(method_label(row, several) for row in rows):
            mine = [row for row in rows if method_label(row, several) == label]
            lengths = sorted({row.length for row in mine})
            values = [combine(getattr(row, value) for row in mine if row.length == length) for length in lengths]
            axes.plot(lengths, values, marker="o", label=label)
        axes.set(xlabel="context length (tokens)", ylabel=ylabel, title=title)
        axes.legend()
        paths.append(save_figure(figure, directory / name))
    return paths


def save_figure(figure, path: Path) -> Path:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


class RunProgress:
    """A Rich progress bar with ETA on stderr (terminal only), or JSON lines with ``output.progress = jsonl``.

    ``--quiet`` turns both off.
    """

    def __init__(self, diagnostics: Diagnostics, mode: str, total: int) -> None:
        self.mode = mode if diagnostics.verbosity >= 0 else "none"
        self.bar = None
        if self.mode in ("auto", "rich") and diagnostics.console is not None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress
            from rich.progress import TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.bar = RichProgress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("ETA"), TimeRemainingColumn(), console=diagnostics.console, transient=True,
            )
            self.task = self.bar.add_task("bench", total=total)

    def __enter__(self) -> "RunProgress":
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()

    def advance(self, record) -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=1, description=f"{record.method} {record.task} {record.length}")
        elif self.mode == "jsonl":
            line = {"event": "run", "method": record.method, "task": record.task, "length": record.length,
                    "budget": record.budget, "index": record.index, "score": record.score,
                    "seconds": round(record.seconds, 3), "generated_tokens": record.generated_tokens}
            sys.stderr.write(json.dumps(line) + "\n")
            sys.stderr.flush()


# ---------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------


@dataclass
class BenchOptions:
    """The parsed options that choose the samples."""

    suite: str
    lengths: list[int] | None
    samples: int
    tasks: list[str] | None
    gen_length: int | None
    haystack: Path | None = None
    data: Path | None = None


def check_tasks(suite: str, tasks: list[str] | None) -> None:
    if tasks is None:
        return
    if suite == "ruler":
        from wavefilter_cli.eval.ruler import TASKS

        known = list(TASKS)
    elif suite == "lookup":
        known = list(LOOKUP_TASKS)
    else:
        from wavefilter_cli.eval.longbench import TASK_NAMES

        known = list(TASK_NAMES)
    for task in tasks:
        if task not in known:
            raise UsageError(f"--tasks: {suite} task {task!r} is unknown: use one of {', '.join(known)}")


def _overrides(**flags) -> dict[str, object]:
    mapping = {
        "model": "model.name", "device": "model.device", "dtype": "model.dtype", "offline": "model.offline",
        "steps": "generate.steps", "block_length": "generate.block_length", "sampler": "generate.sampler",
        "threshold": "generate.threshold", "seed": "generate.seed", "sink": "cache.sink", "tail": "cache.tail",
        "evict": "cache.evict", "refresh_every": "cache.refresh_every",
    }
    return {mapping[name]: value for name, value in flags.items() if value is not None}


@app.command("bench", help=BENCH_HELP)
def bench(
    ctx: typer.Context,
    suite: str = typer.Option("ruler", "--suite", help="Benchmark: ruler (synthetic, built here), lookup (the built-in model's tasks on held-out text) or longbench (your files)."),
    lengths: Optional[str] = typer.Option(None, "--lengths", help="Comma-separated lengths in tokens (ruler: prompt + answer, default 4096; longbench: prompt budget, default the model window)."),
    samples: int = typer.Option(50, "--samples", min=1, help="Samples per task and length."),
    tasks: Optional[str] = typer.Option(None, "--tasks", help="Comma-separated tasks (default: every RULER task, or every LongBench file in --data)."),
    methods: Optional[str] = typer.Option(None, "--methods", help="Comma-separated HOST[+FILTER] methods (default: none,prefix,prefix+wavefilter)."),
    budget: Optional[str] = typer.Option(None, "--budget", help="Context kept by filters: a ratio in (0, 1] or a token count ≥ 16. [env WAVEFILTER_BUDGET]"),
    budgets: Optional[str] = typer.Option(None, "--budgets", help="Several budgets, comma-separated; overrides --budget."),
    gen_length: Optional[int] = typer.Option(None, "--gen-length", min=1, help="Answer length in tokens for every task (default: the task's own)."),
    no_early_stop: bool = typer.Option(False, "--no-early-stop", help="Decode every block even after an end-of-answer token."),
    plot: Optional[Path] = typer.Option(None, "--plot", metavar="DIR", help="Write PNG plots to DIR (needs matplotlib)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document with the results on stdout."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", metavar="FILE", help="Also write the results to FILE (*.json or *.csv)."),
    model: Optional[str] = typer.Option(None, "-m", "--model", help="Checkpoint folder, cached hub id, or 'builtin'. [env WAVEFILTER_MODEL]"),
    offline: Optional[bool] = typer.Option(None, "--offline", help="Never contact the Hugging Face hub. [env WAVEFILTER_OFFLINE]", show_default=False),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:N or mps. [env WAVEFILTER_DEVICE]"),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="auto, bf16, fp16 or fp32. [env WAVEFILTER_DTYPE]"),
    steps: Optional[int] = typer.Option(None, "--steps", help="Total denoising steps (default: one per token). [env WAVEFILTER_STEPS]"),
    block_length: Optional[int] = typer.Option(None, "--block-length", help="Tokens per diffusion block. [env WAVEFILTER_BLOCK_LENGTH]"),
    sampler: Optional[str] = typer.Option(None, "--sampler", help="Sampler name (see ask --help). [env WAVEFILTER_SAMPLER]"),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Threshold sampler confidence, in (0, 1]. [env WAVEFILTER_THRESHOLD]"),
    seed: Optional[int] = typer.Option(None, "--seed", help="Generation seed, the same for every method. [env WAVEFILTER_SEED]"),
    sink: Optional[int] = typer.Option(None, "--sink", help="First prompt tokens filters always keep. [env WAVEFILTER_SINK]"),
    tail: Optional[int] = typer.Option(None, "--tail", help="Last prompt tokens filters always keep. [env WAVEFILTER_TAIL]"),
    refresh_every: Optional[int] = typer.Option(None, "--refresh-every", metavar="N", help="Hosts prefix and dual: also refresh every N steps of a block; 0 refreshes at block starts only. [env WAVEFILTER_REFRESH_EVERY]"),
    evict: Optional[bool] = typer.Option(None, "--evict/--no-evict", help="Drop unkept K/V (saves memory) or only mask it. [env WAVEFILTER_EVICT]", show_default=False),
    haystack: Optional[Path] = typer.Option(None, "--haystack", metavar="DIR", help="Folder of plain-text books for the ruler and lookup suites (default: ../shared/data/haystack beside the repository)."),
    data: Optional[Path] = typer.Option(None, "--data", metavar="DIR", help="Folder of LongBench <task>.jsonl files."),
) -> None:
    diagnostics: Diagnostics = ctx.obj["diagnostics"]
    if suite not in SUITES:
        raise UsageError(f"--suite {suite!r} is invalid: use ruler, lookup or longbench")
    options = BenchOptions(suite, parse_lengths(lengths), samples, parse_names(tasks), gen_length, haystack, data)
    check_tasks(suite, options.tasks)
    method_list = parse_method_list(methods or default_methods())
    check_output_path(output)
    if plot is not None:
        check_plotting()
    if suite in ("ruler", "lookup"):
        options.haystack = resolve_haystack(haystack)
    elif data is None:
        raise UsageError("--suite longbench needs --data DIR, the folder holding LongBench <task>.jsonl files")
    elif not data.is_dir():
        raise InputError(f"--data {data}: folder not found; pass the folder holding LongBench <task>.jsonl files")

    config, _ = config_from_context(
        ctx,
        _overrides(model=model, offline=offline, device=device, dtype=dtype, steps=steps, block_length=block_length,
                   sampler=sampler, threshold=threshold, seed=seed, sink=sink, tail=tail, evict=evict,
                   refresh_every=refresh_every),
    )
    budget_list = parse_budgets(budget, budgets, config)
    generation = dataclasses.replace(generation_config(config), stop_early=not no_early_stop)
    ranks = ranks_from_environment()
    device = worker_device(config.model.device, ranks)
    if device != config.model.device:
        config = config.replace({"model.device": device})
    if not ranks.is_main:
        diagnostics = Diagnostics(verbosity=-1, color=diagnostics.color)

    with ProcessGroup(ranks, device) as group:
        loaded_model, tokenizer = load_for_run(config, diagnostics)
        build_source = {"ruler": ruler_source, "lookup": lookup_source, "longbench": longbench_source}[suite]
        source = build_source(tokenizer, loaded_model, config, diagnostics, options)
        rows = execute(loaded_model, tokenizer, source, method_list, budget_list, generation, config, diagnostics,
                       gen_length, group)
    if not ranks.is_main:
        return

    from wavefilter_cli.eval.runner import results_document, write_results

    settings = {
        "lengths": source.lengths, "tasks": source.tasks, "samples": options.samples,
        "methods": [method.name for method in method_list], "gen_length": gen_length,
        "stop_early": not no_early_stop, "block_length": generation.block_length, "steps": generation.steps,
        "sampler": generation.sampler, "seed": generation.seed, "sink": config.cache.sink, "tail": config.cache.tail,
        "evict": config.cache.evict, "refresh_every": config.cache.refresh_every or None, "dtype": str(loaded_model.placement.dtype).removeprefix("torch."),
        **source.details,
    }
    document = results_document(
        rows, config.model.name, str(loaded_model.placement.device), suite, budget_list, {"settings": settings}
    )
    if diagnostics.verbosity >= 0:
        render_table(rows, len(budget_list) > 1, diagnostics)
    if output is not None:
        write_results(output, rows, document)
        diagnostics.notice(f"results written to {output}")
    if plot is not None:
        for path in write_plots(rows, budget_list, plot):
            diagnostics.notice(f"plot written to {path}")
    if as_json:
        write_result(json.dumps(document) + "\n")


def execute(
    model, tokenizer, source: Source, methods, budgets, generation, config: Config, diagnostics: Diagnostics,
    gen_length: int | None, group: ProcessGroup | None = None,
):
    """Run every method on the source's samples with a progress display and return the result rows.

    Under torchrun (``group`` started) each rank runs every WORLD_SIZE-th
    sample. Rank 0 gathers the records in sample order and returns the rows,
    and the other ranks return None.
    """
    from wavefilter_cli.eval.runner import planned_runs, run_benchmark, summarize

    ranks = group.ranks if group is not None else Ranks()
    runs_per_item = len(planned_runs(methods, budgets))
    items = itertools.islice(source.items(), ranks.rank, None, ranks.world_size)

    def make_policy(method, budget):
        values = {"cache.method": method.host, "cache.filter": method.filter}
        if budget is not None:
            values["cache.budget"] = budget
        return build_policy(config.replace(values))

    total = len(range(ranks.rank, source.total_items, ranks.world_size)) * runs_per_item
    with RunProgress(diagnostics, config.output.progress, total) as progress:
        records = list(
            run_benchmark(
                model, tokenizer, items, methods, budgets, generation, make_policy, gen_length, progress.advance,
            )
        )
    if ranks.distributed:
        gathered = group.gather(records)
        if not ranks.is_main:
            return None
        # Each rank's records come in groups of one sample's runs; put the samples back in order.
        per_sample = [
            [rank_records[i : i + runs_per_item] for i in range(0, len(rank_records), runs_per_item)]
            for rank_records in gathered
        ]
        records = [record for sample in interleave(per_sample) for record in sample]
    return summarize(records, [method.name for method in methods])
