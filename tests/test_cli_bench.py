"""``wavefilter bench`` end to end on a tiny random LLaDA with a tokenizer trained here."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch
from synthetic_books import write_books

from wavefilter_cli.cli.app import main
from wavefilter_cli.models import LLaDAConfig, LLaDAModelLM
from wavefilter_cli.training.tokenizer import SPECIAL_TOKENS, train_tokenizer

ROW_KEYS = {
    "method", "length", "task", "samples", "accuracy", "seconds", "generated_tokens", "forward_passes",
    "kv_bytes_peak", "kept_tokens_mean", "tokens_per_second",
}


@pytest.fixture(scope="module")
def books(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_books(tmp_path_factory.mktemp("books"), books=2, paragraphs=40)


@pytest.fixture(scope="module")
def model_dir(books: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint folder in the official layout: config, safetensors and the tokenizer files."""
    folder = train_tokenizer(tmp_path_factory.mktemp("model"), books, vocab_size=400)
    torch.manual_seed(0)
    config = LLaDAConfig(
        d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, mlp_hidden_size=48, vocab_size=400, embedding_size=400,
        max_sequence_length=1024, mask_token_id=SPECIAL_TOKENS.index("<|mdm_mask|>"),
        eos_token_id=SPECIAL_TOKENS.index("<|endoftext|>"), pad_token_id=SPECIAL_TOKENS.index("<|pad|>"),
    )
    LLaDAModelLM(config).float().eval().save_pretrained(folder)
    return folder


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the user's config files and WAVEFILTER_* variables out of the runs."""
    for name in list(os.environ):
        if name.startswith("WAVEFILTER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as caught:
        main(list(argv))
    captured = capsys.readouterr()
    return caught.value.code, captured.out, captured.err


def test_ruler_json_schema(capsys, books: Path, model_dir: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "results.json"
    code, out, err = run_cli(
        capsys, "bench", "--suite", "ruler", "--lengths", "512", "--samples", "2", "--tasks", "niah_single_1",
        "--methods", "none,prefix", "--haystack", str(books), "-m", str(model_dir), "--gen-length", "32",
        "--json", "-o", str(out_file),
    )
    assert code == 0, err
    assert out.count("\n") == 1
    document = json.loads(out)
    assert {"model", "device", "suite", "budget", "results"} <= set(document)
    assert document["suite"] == "ruler"
    assert document["device"] == "cpu"
    assert document["model"] == str(model_dir)
    rows = document["results"]
    assert [row["method"] for row in rows] == ["none", "prefix"]
    for row in rows:
        assert set(row) == ROW_KEYS
        assert row["samples"] == 2
        assert row["length"] == 512
        assert row["task"] == "niah_single_1"
        assert 0.0 <= row["accuracy"] <= 100.0
        # One 32-token block per sample at one step per token: 32 forward passes each.
        assert row["forward_passes"] == 64
    assert rows[1]["kv_bytes_peak"] > 0
    assert json.loads(out_file.read_text()) == document
    assert "wavefilter bench" in err


def test_several_budgets_csv(capsys, books: Path, model_dir: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "results.csv"
    code, out, err = run_cli(
        capsys, "bench", "--lengths", "512", "--samples", "1", "--tasks", "niah_multikey_2",
        "--methods", "prefix+snapkv", "--budgets", "0.25,0.5", "--haystack", str(books), "-m", str(model_dir),
        "--gen-length", "32", "--no-early-stop", "--json", "-o", str(out_file),
    )
    assert code == 0, err
    document = json.loads(out)
    assert document["budget"] == [0.25, 0.5]
    assert [row["budget"] for row in document["results"]] == [0.25, 0.5]
    assert document["results"][0]["kept_tokens_mean"] < document["results"][1]["kept_tokens_mean"]
    assert document["settings"]["stop_early"] is False
    lines = out_file.read_text().splitlines()
    assert lines[0].split(",")[:4] == ["method", "length", "task", "budget"]
    assert len(lines) == 3


def test_longbench_suite(capsys, model_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    record = {"input": "Where is the mill?", "context": "Passage 1: The mill is in Dover.", "answers": ["Dover"], "_id": "x"}
    (data / "hotpotqa.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8")
    code, out, err = run_cli(
        capsys, "bench", "--suite", "longbench", "--data", str(data), "--methods", "none", "-m", str(model_dir),
        "--json",
    )
    assert code == 0, err
    document = json.loads(out)
    (row,) = document["results"]
    assert row["task"] == "hotpotqa"
    assert row["length"] == 1024
    assert row["samples"] == 1
    assert len(document["settings"]["data_sha256"]["hotpotqa"]) == 64


def test_unknown_method_exit_2(capsys, books: Path, model_dir: Path) -> None:
    code, out, err = run_cli(capsys, "bench", "--methods", "none,prefix+nosuch", "--haystack", str(books), "-m", str(model_dir))
    assert code == 2
    assert out == ""
    assert "filter 'nosuch' is unknown" in err
    assert "snapkv" in err


def test_unknown_host_exit_2(capsys, books: Path) -> None:
    code, _, err = run_cli(capsys, "bench", "--methods", "fast-dllm", "--haystack", str(books))
    assert code == 2
    assert "host 'fast-dllm' is unknown: use one of none, prefix" in err


def test_unknown_task_exit_2(capsys, books: Path) -> None:
    code, _, err = run_cli(capsys, "bench", "--tasks", "niah_single_9", "--haystack", str(books))
    assert code == 2
    assert "niah_single_9" in err


def test_longbench_needs_data(capsys) -> None:
    code, _, err = run_cli(capsys, "bench", "--suite", "longbench")
    assert code == 2
    assert "--data DIR" in err


def test_plot_without_matplotlib_exit_2(capsys, books: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, _, err = run_cli(capsys, "bench", "--plot", "plots", "--haystack", str(books))
    assert code == 2
    assert "pip install 'wavefilter[plot]'" in err


def test_length_too_short_exit_4(capsys, books: Path, model_dir: Path) -> None:
    code, _, err = run_cli(
        capsys, "bench", "--lengths", "200", "--tasks", "vt", "--methods", "none", "--haystack", str(books),
        "-m", str(model_dir),
    )
    assert code == 4
    assert "too short for vt" in err


def test_plots_written(capsys, books: Path, model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    code, _, err = run_cli(
        capsys, "-q", "bench", "--lengths", "512", "--samples", "1", "--tasks", "niah_single_1", "--methods",
        "none,prefix+snapkv", "--budgets", "0.25,0.5", "--haystack", str(books), "-m", str(model_dir),
        "--gen-length", "32", "--plot", str(tmp_path / "plots"),
    )
    assert code == 0, err
    names = sorted(path.name for path in (tmp_path / "plots").iterdir())
    assert names == ["accuracy_vs_budget.png", "kv_bytes_vs_length.png", "time_vs_length.png"]


def test_lookup_suite_scores_exact_match(capsys, books: Path, model_dir: Path) -> None:
    code, out, err = run_cli(
        capsys, "bench", "--suite", "lookup", "--lengths", "300", "--samples", "2", "--tasks", "niah_single",
        "--methods", "prefix,prefix+wavefilter", "--haystack", str(books), "-m", str(model_dir), "--json",
    )
    assert code == 0, err
    document = json.loads(out)
    assert document["suite"] == "lookup"
    rows = document["results"]
    assert [row["method"] for row in rows] == ["prefix", "prefix+wavefilter"]
    for row in rows:
        assert row["task"] == "niah_single"
        assert row["samples"] == 2
        # A random model does not restate the fact, so exact match scores it 0.
        assert row["accuracy"] == 0.0


def test_lookup_unknown_task_exit_2(capsys, books: Path) -> None:
    code, _, err = run_cli(capsys, "bench", "--suite", "lookup", "--tasks", "niah_single_1", "--haystack", str(books))
    assert code == 2
    assert "lookup task 'niah_single_1' is unknown" in err
