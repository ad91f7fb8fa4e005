"""The value-copy probe on the shipped model, over synthetic books."""

from __future__ import annotations

from pathlib import Path

import pytest
from synthetic_books import write_books

from wavefilter_cli.models import load_model, load_tokenizer
from wavefilter_cli.training.data import SampleGenerator
from wavefilter_cli.training.haystack import Haystack
from wavefilter_cli.training.probe import probe


@pytest.fixture(scope="module")
def shipped():
    model = load_model("builtin", device="cpu")
    return model, load_tokenizer(model.checkpoint_dir, model.config)


def test_probe_scores_value_digits(shipped, tmp_path: Path) -> None:
    model, tokenizer = shipped
    generator = SampleGenerator(tokenizer, Haystack(write_books(tmp_path)), split="eval")
    row = probe(model, tokenizer, generator, "niah_single", 160, samples=3, layers=(1, 2))
    assert row["samples"] == 3
    # Numeric values have four to seven digits, and word values add none.
    assert 4 <= row["digits"] <= 21
    assert 0.0 <= row["all_masked"] <= 1.0
    # The shipped model's supervised copy head in layer 1 finds the value's digits in the document.
    assert row["copy_mass"]["1"] > 0.8
    # Layer 2's head 0 is not supervised and spreads its attention elsewhere.
    assert row["copy_mass"]["2"] < row["copy_mass"]["1"]
    # Most digits are right when only one is hidden.
    assert row["one_masked"] > 0.5
