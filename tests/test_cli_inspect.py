"""`wavefilter inspect` on a tiny random model: marked text, per-layer summary and the HTML report."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from tiny_models import make_tokenizer, save_tiny_llada


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("inspect")
    return save_tiny_llada(root / "m", make_tokenizer(root))


def run(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "wavefilter_cli", *args], capture_output=True, text=True, env=env, timeout=120)


def test_inspect_marks_tail_and_reports_layers(model_dir, tmp_path):
    doc = tmp_path / "doc.txt"
    doc.write_text("Notes.\n\nThe passcode for the north gate is 4817.\n\n" + "Filler sentence here. " * 40)
    report = tmp_path / "report.html"
    result = run("inspect", str(doc), "-q", "What is the passcode?", "-m", str(model_dir), "--budget", "16",
                 "--sink", "2", "--tail", "4", "-o", str(report))
    assert result.returncode == 0, result.stderr
    assert "[[" in result.stdout
    assert "]]" in result.stdout
    assert "kept per layer 16, 16" in result.stdout
    page = report.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "<mark" in page
    assert "data:image/png;base64," in page


def test_inspect_unknown_filter_exits_2(model_dir, tmp_path):
    doc = tmp_path / "doc.txt"
    doc.write_text("Some text.\n")
    result = run("inspect", str(doc), "-q", "Q?", "-m", str(model_dir), "--filter", "nope")
    assert result.returncode == 2
    assert "filter='nope' is unknown" in result.stderr
