"""End-to-end tests of `wavefilter ask` and `summarize` on tiny random models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_models import make_tokenizer, save_tiny_dream, save_tiny_llada

QUESTION = "What is the passcode for the north gate?"


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    return make_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def llada_dir(tokenizer_dir, tmp_path_factory) -> Path:
    return save_tiny_llada(tmp_path_factory.mktemp("llada") / "m", tokenizer_dir)


@pytest.fixture(scope="module")
def dream_dir(tokenizer_dir, tmp_path_factory) -> Path:
    return save_tiny_dream(tmp_path_factory.mktemp("dream") / "m", tokenizer_dir)


@pytest.fixture
def document(tmp_path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("Minutes of the meeting.\n\nThe passcode for the north gate is 4817. The rest was routine.\n")
    return path


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    # One thread: tiny models gain nothing from more, and it keeps the tests fast on a busy machine.
    env = {**os.environ, "WAVEFILTER_CACHE": "none", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("WAVEFILTER_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "wavefilter_cli", *args], capture_output=True, text=True, env=env, input=stdin, timeout=120
    )


def test_ask_json_fields(llada_dir, document):
    result = run("ask", QUESTION, "--context", str(document), "-m", str(llada_dir), "--json", "--max-tokens", "16")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    expected = {"answer", "model", "device", "dtype", "tokens_in", "tokens_out", "steps", "forward_passes",
                "seconds", "inputs", "cache", "filter", "budget", "kept_tokens", "context_tokens", "kv_bytes_peak"}
    assert expected <= set(record)
    assert record["device"] == "cpu"
    assert record["inputs"][0]["source"] == str(document)
    assert record["forward_passes"] == record["steps"] > 0
    assert "on cpu" in result.stderr


def test_ask_same_seed_same_answer(llada_dir, document):
    args = ("ask", QUESTION, "--context", str(document), "-m", str(llada_dir), "--json", "--max-tokens", "16",
            "--temperature", "1.0", "--seed", "7")
    first, second = run(*args), run(*args)
    assert json.loads(first.stdout)["answer"] == json.loads(second.stdout)["answer"]


def test_ask_streams_plain_text(dream_dir, document):
    result = run("ask", QUESTION, "--context", str(document), "-m", str(dream_dir), "--max-tokens", "16")
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("\n")
    assert "\x1b[" not in result.stdout
    json_run = run("ask", QUESTION, "--context", str(document), "-m", str(dream_dir), "--max-tokens", "16", "--json")
    assert result.stdout.rstrip("\n") == json.loads(json_run.stdout)["answer"]


def test_ask_reads_stdin(llada_dir):
    result = run("ask", QUESTION, "--context", "-", "-m", str(llada_dir), "--json", "--max-tokens", "8",
                 stdin="The passcode for the north gate is 4817.\n")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["inputs"][0]["source"] == "stdin"


def test_prompt_over_window_exits_4(tokenizer_dir, tmp_path, document):
    small = save_tiny_llada(tmp_path / "small", tokenizer_dir, window=64)
    result = run("ask", QUESTION, "--context", str(document), "-m", str(small), "--max-tokens", "32")
    assert result.returncode == 4
    assert "64-token window" in result.stderr
    assert result.stdout == ""


def test_summarize_with_lookup_model_exits_5(tokenizer_dir, tmp_path, document):
    lookup = save_tiny_llada(tmp_path / "lookup", tokenizer_dir, wavefilter_capabilities=["lookup-only"])
    result = run("summarize", str(document), "-m", str(lookup))
    assert result.returncode == 5
    assert "--model" in result.stderr


def test_summarize_runs(llada_dir, document):
    result = run("summarize", str(document), "-m", str(llada_dir), "--json", "--max-tokens", "8")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tokens_out"] <= 8


def test_missing_model_exits_5(document, tmp_path):
    result = run("ask", QUESTION, "--context", str(document), "-m", str(tmp_path / "absent"))
    assert result.returncode == 5
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr


def test_missing_context_exits_3(llada_dir, tmp_path):
    result = run("ask", QUESTION, "--context", str(tmp_path / "absent.txt"), "-m", str(llada_dir))
    assert result.returncode == 3


def test_empty_context_exits_3(llada_dir, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("   \n")
    result = run("ask", QUESTION, "--context", str(empty), "-m", str(llada_dir))
    assert result.returncode == 3
    assert "empty" in result.stderr


def test_budget_out_of_range_exits_4(llada_dir, document):
    result = run("ask", QUESTION, "--context", str(document), "-m", str(llada_dir), "--budget", "1.5")
    assert result.returncode == 4
    assert "--budget 1.5" in result.stderr


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the no-GPU error")
def test_cuda_without_gpu_exits_6(llada_dir, document):
    result = run("ask", QUESTION, "--context", str(document), "-m", str(llada_dir), "--device", "cuda")
    assert result.returncode == 6
    assert "--device cpu" in result.stderr


def test_empty_question_exits_2(llada_dir, document):
    result = run("ask", "  ", "--context", str(document), "-m", str(llada_dir))
    assert result.returncode == 2
    assert "the question '  ' is empty" in result.stderr


def test_empty_implicit_stdin_names_context(llada_dir):
    result = run("ask", QUESTION, "-m", str(llada_dir), stdin="")
    assert result.returncode == 3
    assert "no document given and stdin has no text; pass --context FILE" in result.stderr


def test_budget_without_filter_warns(llada_dir, document):
    result = run("ask", QUESTION, "--context", str(document), "-m", str(llada_dir), "--budget", "0.5",
                 "--max-tokens", "8")
    assert result.returncode == 0, result.stderr
    assert "--budget 0.5 has no effect without a filter" in result.stderr
    with_filter = run("ask", QUESTION, "--context", str(document), "-m", str(llada_dir), "--budget", "0.5",
                      "--filter", "snapkv", "--cache", "prefix", "--max-tokens", "8")
    assert with_filter.returncode == 0, with_filter.stderr
    assert "has no effect" not in with_filter.stderr


def test_refresh_every_in_json(llada_dir, document):
    base = ("ask", QUESTION, "--context", str(document), "-m", str(llada_dir), "--json", "--max-tokens", "16",
            "--block-length", "16", "--steps", "16", "--cache", "prefix")
    plain = run(*base)
    refreshed = run(*base, "--refresh-every", "4")
    assert plain.returncode == 0, plain.stderr
    assert refreshed.returncode == 0, refreshed.stderr
    plain_record, refreshed_record = json.loads(plain.stdout), json.loads(refreshed.stdout)
    assert plain_record["refresh_every"] is None
    assert refreshed_record["refresh_every"] == 4
    # The refresh steps (4, 8, 12) feed the whole canvas, so the step count is unchanged.
    assert refreshed_record["steps"] == plain_record["steps"]
    block_starts = run(*base, "--refresh-every", "0")
    assert block_starts.returncode == 0, block_starts.stderr
    assert json.loads(block_starts.stdout)["refresh_every"] is None
    assert run(*base, "--refresh-every", "-1").returncode == 2


@pytest.mark.parametrize("method, expected", [("prefix", 4), ("dual", 4), ("none", None), ("dkv", 2)])
def test_build_policy_passes_refresh_every(method, expected):
    from wavefilter_cli.cli.answer import build_policy
    from wavefilter_cli.config import Config

    policy = build_policy(Config().replace({"cache.method": method, "cache.refresh_every": 4}))
    assert getattr(policy.options, "refresh_every", None) == expected
