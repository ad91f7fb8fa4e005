"""Benchmark runner: method parsing, interleaved runs and aggregation of scores and costs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from wavefilter_cli.cache import build_cache
from wavefilter_cli.eval.runner import (
    BenchItem,
    Method,
    RunRecord,
    parse_methods,
    planned_runs,
    results_csv,
    results_document,
    run_benchmark,
    summarize,
    write_results,
)
from wavefilter_cli.generation import GenerationConfig
from wavefilter_cli.models import LLaDAConfig, LLaDAModelLM

HOSTS = ["none", "prefix", "dual"]
FILTERS = ["snapkv", "keep-all", "block-mean"]


def record(method: str, score: float, seconds: float, tokens: int, kv: int, kept: int, task: str = "t",
           budget: float | None = None, length: int = 512, index: int = 0) -> RunRecord:
    return RunRecord(method, length, task, budget, index, score, "", seconds, tokens, tokens, kv, kept, 100)


def test_parse_methods_hosts_and_filters() -> None:
    assert parse_methods("none, prefix+snapkv,dual+block-mean", HOSTS, FILTERS) == [
        Method("none"), Method("prefix", "snapkv"), Method("dual", "block-mean"),
    ]
    assert Method("prefix", "snapkv").name == "prefix+snapkv"


def test_unknown_host_lists_known() -> None:
    with pytest.raises(ValueError, match="host 'fast' is unknown: use one of none, prefix, dual"):
        parse_methods("fast+snapkv", HOSTS, FILTERS)


def test_unknown_filter_lists_known() -> None:
    with pytest.raises(ValueError, match="filter 'wavefilter' is unknown: use one of snapkv, keep-all, block-mean"):
        parse_methods("prefix+wavefilter", HOSTS, FILTERS)


def test_empty_and_repeated_methods_rejected() -> None:
    with pytest.raises(ValueError, match="empty entry"):
        parse_methods("none,,prefix", HOSTS, FILTERS)
    with pytest.raises(ValueError, match="listed twice"):
        parse_methods("prefix,prefix", HOSTS, FILTERS)


def test_budgets_apply_only_to_filters() -> None:
    runs = planned_runs([Method("none"), Method("prefix", "snapkv")], [0.05, 0.1])
    assert runs == [(Method("none"), None), (Method("prefix", "snapkv"), 0.05), (Method("prefix", "snapkv"), 0.1)]


def test_summarize_totals() -> None:
    records = [
        record("prefix", 1.0, 2.0, 10, 500, 40),
        record("prefix", 0.5, 3.0, 20, 700, 60, index=1),
        record("prefix", 0.0, 1.0, 30, 600, 50, index=2),
    ]
    (row,) = summarize(records)
    assert row.samples == 3
    assert row.accuracy == 50.0
    assert row.seconds == 6.0
    assert row.generated_tokens == 60
    assert row.forward_passes == 60
    assert row.kv_bytes_peak == 700
    assert row.kept_tokens_mean == 50.0
    assert row.tokens_per_second == 10.0


def test_summarize_rounds_accuracy() -> None:
    records = [record("none", score, 1.0, 1, 0, 0, index=i) for i, score in enumerate([1.0, 2 / 3, 0.0])]
    assert summarize(records)[0].accuracy == 55.56


def test_summarize_orders_by_method_then_length_task_budget() -> None:
    records = [
        record("prefix+snapkv", 1.0, 1.0, 1, 0, 0, task="b", budget=0.5, length=1024),
        record("prefix+snapkv", 1.0, 1.0, 1, 0, 0, task="b", budget=0.1, length=1024),
        record("none", 1.0, 1.0, 1, 0, 0, task="b", length=1024),
        record("none", 1.0, 1.0, 1, 0, 0, task="a", length=512),
    ]
    rows = summarize(records, ["none", "prefix+snapkv"])
    assert [(r.method, r.length, r.task, r.budget) for r in rows] == [
        ("none", 512, "a", None), ("none", 1024, "b", None),
        ("prefix+snapkv", 1024, "b", 0.1), ("prefix+snapkv", 1024, "b", 0.5),
    ]


def test_document_with_one_budget() -> None:
    rows = summarize([record("none", 1.0, 1.0, 4, 0, 0)])
    document = results_document(rows, "m", "cpu", "ruler", [0.1])
    assert document["budget"] == 0.1
    assert list(document["results"][0]) == [
        "method", "length", "task", "samples", "accuracy", "seconds", "generated_tokens",
        "forward_passes", "kv_bytes_peak", "kept_tokens_mean", "tokens_per_second",
    ]


def test_document_with_several_budgets() -> None:
    rows = summarize([record("prefix+snapkv", 1.0, 1.0, 4, 0, 0, budget=0.1)])
    document = results_document(rows, "m", "cpu", "ruler", [0.1, 0.2], {"settings": {"seed": 0}})
    assert document["budget"] == [0.1, 0.2]
    assert document["results"][0]["budget"] == 0.1
    assert document["settings"] == {"seed": 0}


def test_csv_blank_budget_without_filter(tmp_path: Path) -> None:
    rows = summarize([record("none", 1.0, 2.0, 4, 0, 0)])
    lines = results_csv(rows).splitlines()
    assert lines[0].startswith("method,length,task,budget,samples,accuracy")
    assert lines[1].startswith("none,512,t,,1,100.0,2.0,4")
    write_results(tmp_path / "r.csv", rows, {})
    assert (tmp_path / "r.csv").read_text() == results_csv(rows)
    write_results(tmp_path / "r.json", rows, {"results": []})
    assert json.loads((tmp_path / "r.json").read_text()) == {"results": []}


def test_unknown_output_type(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"name it \*.json or \*.csv"):
        write_results(tmp_path / "r.txt", [], {})


class WordTokenizer:
    """The tokenizer surface ``generate`` needs: ids print as words, and nothing is special."""

    eos_token_id = None
    unk_token_id = None
    mask_token_id = None

    def convert_tokens_to_ids(self, token: str) -> None:
        return None

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        return " ".join(f"w{i}" for i in ids)


def test_runs_interleave_sample_by_sample() -> None:
    torch.manual_seed(0)
    config = LLaDAConfig(
        d_model=32, n_layers=1, n_heads=2, n_kv_heads=2, mlp_hidden_size=32, vocab_size=64, embedding_size=64,
        max_sequence_length=256, mask_token_id=60, eos_token_id=61, pad_token_id=61,
    )
    model = LLaDAModelLM(config).float().eval()
    items = [BenchItem("t", 64, index, list(range(3, 40)), 8, lambda answer: 1.0) for index in range(2)]
    methods = [Method("none"), Method("prefix", "snapkv")]
    seen = []
    records = list(
        run_benchmark(
            model, WordTokenizer(), items, methods, [0.25, 0.5], GenerationConfig(block_length=8),
            lambda method, budget: build_cache(method.host, method.filter, budget=budget or 0.1, sink=1, tail=2),
            on_run=seen.append,
        )
    )
    assert [(r.index, r.method, r.budget) for r in records] == [
        (0, "none", None), (0, "prefix+snapkv", 0.25), (0, "prefix+snapkv", 0.5),
        (1, "none", None), (1, "prefix+snapkv", 0.25), (1, "prefix+snapkv", 0.5),
    ]
    assert seen == records
    assert all(r.forward_passes == 8 and r.score == 1.0 for r in records)
    assert records[0].prediction == records[3].prediction
