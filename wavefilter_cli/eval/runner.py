"""Runs cache methods side by side on benchmark samples and aggregates accuracy, time and K/V memory.

Methods are interleaved sample by sample: every (method, budget) run of one
sample happens before the next sample starts, with the same generation
seed. Drift in machine load therefore affects all methods alike, and a
stopped run still compares them on the same samples. The runner prints nothing; it
calls ``on_run`` after each generation so the caller can show progress.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

__all__ = [
    "BenchItem",
    "Method",
    "ResultRow",
    "RunRecord",
    "parse_methods",
    "run_benchmark",
    "results_csv",
    "results_document",
    "summarize",
]

#: Field order of a result row in JSON and CSV output.
ROW_FIELDS = (
    "method", "length", "task", "budget", "samples", "accuracy", "seconds", "generated_tokens",
    "forward_passes", "kv_bytes_peak", "kept_tokens_mean", "tokens_per_second",
)


@dataclass(frozen=True)
class Method:
    """A cache method: a host policy, optionally with a key-token filter (``HOST[+FILTER]``)."""

    host: str
    filter: str | None = None

    @property
    def name(self) -> str:
        """The method as written on the command line, such as ``prefix+snapkv``."""
        return self.host if self.filter is None else f"{self.host}+{self.filter}"

    @property
    def uses_budget(self) -> bool:
        """Whether the budget changes this method (only filters read it)."""
        return self.filter is not None


def parse_methods(text: str, hosts: Iterable[str], filters: Iterable[str]) -> list[Method]:
    """Parse a comma-separated ``HOST[+FILTER]`` list, checking each name against the registries.

    Raises ValueError naming the first unknown host or filter and listing the
    known ones, or naming a method given twice.
    """
    hosts, filters = list(hosts), list(filters)
    methods: list[Method] = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            raise ValueError(f"methods {text!r} has an empty entry: separate HOST[+FILTER] names with single commas")
        host, plus, filter_name = entry.partition("+")
        if host not in hosts:
            raise ValueError(f"method {entry!r}: host {host!r} is unknown: use one of {', '.join(hosts)}")
        if plus and filter_name not in filters:
            raise ValueError(f"method {entry!r}: filter {filter_name!r} is unknown: use one of {', '.join(filters)}")
        method = Method(host, filter_name or None)
        if method in methods:
            raise ValueError(f"method {entry!r} is listed twice: name each method once")
        methods.append(method)
    return methods


@dataclass(frozen=True)
class BenchItem:
    """One prompt to run every method on.

    ``scorer`` maps the decoded answer to a score in [0, 1]. ``max_new_tokens``
    is the task's answer length, used unless the run fixes one.
    """

    task: str
    length: int
    index: int
    prompt_ids: list[int]
    max_new_tokens: int
    scorer: Callable[[str], float]


@dataclass(frozen=True)
class RunRecord:
    """One generation: which method on which sample, its score and its costs (from ``generation.Finished``)."""

    method: str
    length: int
    task: str
    budget: float | int | None
    index: int
    score: float
    prediction: str
    seconds: float
    generated_tokens: int
    forward_passes: int
    kv_bytes_peak: int
    kept_tokens: int
    context_tokens: int


@dataclass(frozen=True)
class ResultRow:
    """Totals over the samples of one (method, length, task, budget).

    ``accuracy`` is the mean score × 100 rounded to 2 decimals, the task
    score of RULER and LongBench. ``seconds``, ``generated_tokens`` and
    ``forward_passes`` are sums, and ``kv_bytes_peak`` is the largest peak
    of any sample. ``budget`` is None for methods without a filter.
    """

    method: str
    length: int
    task: str
    budget: float | int | None
    samples: int
    accuracy: float
    seconds: float
    generated_tokens: int
    forward_passes: int
    kv_bytes_peak: int
    kept_tokens_mean: float
    tokens_per_second: float

    def to_dict(self, with_budget: bool) -> dict:
        """Return the row as a JSON object in ``ROW_FIELDS`` order, with ``budget`` only when asked."""
        values = dataclasses.asdict(self)
        return {name: values[name] for name in ROW_FIELDS if with_budget or name != "budget"}


def planned_runs(methods: Sequence[Method], budgets: Sequence[float | int]) -> list[tuple[Method, float | int | None]]:
    """Return the (method, budget) runs of one sample; a method without a filter runs once, without a budget."""
    runs: list[tuple[Method, float | int | None]] = []
    for method in methods:
        if method.uses_budget:
            runs.extend((method, budget) for budget in budgets)
        else:
            runs.append((method, None))
    return runs


def run_benchmark(
    model,
    tokenizer,
    items: Iterable[BenchItem],
    methods: Sequence[Method],
    budgets: Sequence[float | int],
    generation,
    make_policy: Callable[[Method, float | int | None], object],
    gen_length: int | None = None,
    on_run: Callable[[RunRecord], None] | None = None,
) -> Iterator[RunRecord]:
    """Generate an answer for every item with every (method, budget) run and yield one record each.

    ``generation`` is the base ``GenerationConfig``. Each run copies it with
    ``max_tokens`` set to ``gen_length`` when given, else to the item's
    ``max_new_tokens``. ``make_policy`` builds a fresh cache policy for a
    method and budget. The torch seed is reset before every run, so every
    method sees the same random stream.
    """
    import torch

    from wavefilter_cli.generation import Finished, generate

    runs = planned_runs(methods, budgets)
    for item in items:
        config = dataclasses.replace(generation, max_tokens=gen_length or item.max_new_tokens)
        for method, budget in runs:
            policy = make_policy(method, budget)
            torch.manual_seed(config.seed)
            finished: Finished | None = None
            for event in generate(model, tokenizer, item.prompt_ids, config, policy):
                if isinstance(event, Finished):
                    finished = event
            assert finished is not None, "generate always ends with a Finished event"
            record = RunRecord(
                method=method.name,
                length=item.length,
                task=item.task,
                budget=budget,
                index=item.index,
                score=item.scorer(finished.answer),
                prediction=finished.answer,
                seconds=finished.seconds,
                generated_tokens=finished.tokens_out,
                forward_passes=finished.forward_passes,
                kv_bytes_peak=finished.kv_bytes_peak,
                kept_tokens=finished.kept_tokens,
                context_tokens=finished.context_tokens,
            )
            if on_run is not None:
                on_run(record)
            yield record


def summarize(records: Iterable[RunRecord], methods: Sequence[str] | None = None) -> list[ResultRow]:
    """Aggregate records into one row per (method, length, task, budget).

    Rows follow the order of ``methods`` (else first appearance), then length,
    then task in first-appearance order, then budget.
    """
    groups: dict[tuple, list[RunRecord]] = {}
    task_order: dict[str, int] = {}
    for record in records:
        task_order.setdefault(record.task, len(task_order))
        groups.setdefault((record.method, record.length, record.task, record.budget), []).append(record)
    method_order = {name: index for index, name in enumerate(methods or [])}
    for method, *_ in groups:
        method_order.setdefault(method, len(method_order))

    def order(key: tuple) -> tuple:
        method, length, task, budget = key
        return (method_order[method], length, task_order[task], -1 if budget is None else budget)

    rows = []
    for key in sorted(groups, key=order):
        group = groups[key]
        seconds = sum(record.seconds for record in group)
        generated = sum(record.generated_tokens for record in group)
        rows.append(
            ResultRow(
                method=key[0],
                length=key[1],
                task=key[2],
                budget=key[3],
                samples=len(group),
                accuracy=round(100 * sum(record.score for record in group) / len(group), 2),
                seconds=round(seconds, 3),
                generated_tokens=generated,
                forward_passes=sum(record.forward_passes for record in group),
                kv_bytes_peak=max(record.kv_bytes_peak for record in group),
                kept_tokens_mean=round(sum(record.kept_tokens for record in group) / len(group), 1),
                tokens_per_second=round(generated / seconds, 2) if seconds > 0 else 0.0,
            )
        )
    return rows


def results_document(
    rows: Sequence[ResultRow],
    model: str,
    device: str,
    suite: str,
    budgets: Sequence[float | int],
    extra: dict | None = None,
) -> dict:
    """Return the JSON document of a run: ``{"model", "device", "suite", "budget", "results", ...extra}``.

    With one budget, ``budget`` is that number and rows carry none; with
    several, ``budget`` is the list and every row names its own.
    """
    several = len(budgets) > 1
    document = {
        "model": model,
        "device": device,
        "suite": suite,
        "budget": list(budgets) if several else budgets[0],
        "results": [row.to_dict(with_budget=several) for row in rows],
    }
    document.update(extra or {})
    return document


def results_csv(rows: Sequence[ResultRow]) -> str:
    """Return the rows as CSV text with a header line; an empty ``budget`` cell means no filter."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ROW_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        values = row.to_dict(with_budget=True)
        writer.writerow({name: "" if values[name] is None else values[name] for name in ROW_FIELDS})
    return buffer.getvalue()


def write_results(path: Path, rows: Sequence[ResultRow], document: dict) -> None:
    """Write the results as JSON (``.json``) or CSV (``.csv``), chosen by the file suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    elif suffix == ".csv":
        path.write_text(results_csv(rows), encoding="utf-8")
    else:
        raise ValueError(f"output file {str(path)!r} has an unknown type: name it *.json or *.csv")
