"""Helpers of benchmarks/long_inputs.py: method names, answer scores, line fits, and samples longer than the split."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import pytest
from synthetic_books import write_books
from transformers import AutoTokenizer

from wavefilter_cli.training.facts import DOCUMENT_NAMES
from wavefilter_cli.training.haystack import Haystack
from wavefilter_cli.training.tokenizer import train_tokenizer

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "long_inputs.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("long_inputs_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_parse_method_splits_filter(bench) -> None:
    assert bench.parse_method("filter+snapkv") == bench.Method("filter+snapkv", "filter", "snapkv")
    assert bench.parse_method("retrieve") == bench.Method("retrieve", "retrieve", None)


@pytest.mark.parametrize("text, message", [("sliding+snapkv", "unknown strategy 'sliding'"),
                                           ("filter+nonesuch", "unknown filter 'nonesuch'")])
def test_parse_method_rejects_unknown(bench, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bench.parse_method(text)


def test_lengths_within_window_rejected(bench, capsys) -> None:
    with pytest.raises(SystemExit):
        bench.parse_args(["--lengths", "2048,8192", "--window", "4096"])
    assert "[2048]" in capsys.readouterr().err


def test_expected_value_is_last_word(bench) -> None:
    assert bench.expected_value("The PIN for the blue vault is 4817.") == "4817"
    assert bench.expected_value("The call sign for the south chapel is flint.") == "flint"


@pytest.mark.parametrize("answer, match", [
    ("The PIN for the blue vault is 4817.", True),
    ("4817", True),
    ("The PIN for the blue vault is 48170.", False),
    ("The PIN for the blue vault is 4817 or 1234.", False),
    ("The PIN is unknown.", False),
])
def test_value_match_cases(bench, answer: str, match: bool) -> None:
    assert bench.is_value_match("4817", answer) is match


def test_value_match_word_rejects_numbers(bench) -> None:
    assert bench.is_value_match("flint", "The call sign is Flint.")
    assert not bench.is_value_match("flint", "The call sign is flint, code 12.")


def test_fit_line_recovers_linear_time(bench) -> None:
    fit = bench.fit_line([1000, 2000, 4000], [1.5, 2.5, 4.5])
    assert fit["slope_seconds_per_token"] == pytest.approx(0.001)
    assert fit["intercept_seconds"] == pytest.approx(0.5)
    assert fit["r2"] == pytest.approx(1.0)


def test_fit_line_needs_two_lengths(bench) -> None:
    fit = bench.fit_line([8192], [3.0])
    assert fit["slope_seconds_per_token"] is None
    assert fit["points"] == 1


def test_fit_line_two_lengths_no_r2(bench) -> None:
    fit = bench.fit_line([8192, 16384], [3.0, 5.0])
    assert fit["slope_seconds_per_token"] == pytest.approx(2 / 8192)
    assert fit["r2"] is None


def test_summarize_averages_per_group(bench) -> None:
    rows = [
        {"method": "retrieve", "length": 8192, "task": "niah_single", "exact": True, "value_match": True,
         "fact_kept": True, "seconds": 1.0, "generation_seconds": 0.5},
        {"method": "retrieve", "length": 8192, "task": "niah_single", "exact": False, "value_match": True,
         "fact_kept": False, "seconds": 3.0, "generation_seconds": 0.5},
    ]
    (row,) = bench.summarize(rows)
    assert row["samples"] == 2
    assert row["accuracy"] == 0.5
    assert row["value_accuracy"] == 1.0
    assert row["fact_kept"] == 0.5
    assert row["mean_seconds"] == 2.0


def test_sample_source_repeats_short_split(bench, tmp_path) -> None:
    books = write_books(tmp_path / "books", books=2, paragraphs=60)
    tokenizer = AutoTokenizer.from_pretrained(train_tokenizer(tmp_path / "tok", books, vocab_size=1024, seed=0))
    source = bench.SampleSource(tokenizer, Haystack(books))
    length = 3 * source.split_tokens
    assert source.copies_for(length) == 4
    sample = source.make("niah_multikey", length, random.Random(0), 0.5)
    assert len(sample.prompt_ids) == length
    assert sample.document.count(sample.answer_text) == 1
    assert bench.document_name(tokenizer, sample) in DOCUMENT_NAMES


def test_flags_reach_config(bench) -> None:
    assert bench.base_config(bench.parse_args([])).generate.positions == "compact"
    args = bench.parse_args(["--positions", "original", "--refresh-every", "8"])
    assert bench.base_config(args).generate.positions == "original"
    assert bench.base_config(args).cache.refresh_every == 8
