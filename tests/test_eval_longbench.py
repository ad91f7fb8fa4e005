"""LongBench loader: templates, middle truncation, record checks and scoring, on files written here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from synthetic_books import write_books
from transformers import AutoTokenizer

from wavefilter_cli.eval.longbench import (
    TASKS,
    DataError,
    LongBenchLoader,
    base_task,
    file_sha256,
    truncate_middle,
)
from wavefilter_cli.training.tokenizer import train_tokenizer

MIDDLE_MARKER = "zebra lighthouse marker"


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    books = write_books(tmp_path_factory.mktemp("books"), books=2, paragraphs=20)
    return AutoTokenizer.from_pretrained(train_tokenizer(tmp_path_factory.mktemp("tokenizer"), books, vocab_size=400))


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def long_context() -> str:
    head = "The head of the context tells where the story starts. " * 20
    tail = "The tail of the context holds the final clue about Dover. " * 20
    return head + MIDDLE_MARKER + " " + "filler words " * 300 + tail


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    write_jsonl(
        tmp_path / "hotpotqa.jsonl",
        [
            {"input": "Where is the mill?", "context": long_context(), "answers": ["Dover"], "length": 900,
             "dataset": "hotpotqa", "language": "en", "all_classes": None, "_id": "h1"},
            {"input": "Who built it?", "context": "Passage 1: Anna built the mill.", "answers": ["Anna"], "_id": "h2"},
        ],
    )
    write_jsonl(
        tmp_path / "trec.jsonl",
        [{"input": "Question: What is the capital of Peru?\nType:", "context": "Question: Who wrote Hamlet?\nType: Individual",
          "answers": ["City"], "all_classes": ["City", "Individual"], "_id": "t1"}],
    )
    return tmp_path


def test_template_applied_without_truncation(tokenizer, data_dir: Path) -> None:
    loader = LongBenchLoader(tokenizer, data_dir)
    sample = loader.sample("hotpotqa", 1, budget=4000)
    prompt = tokenizer.decode(sample.prompt_ids)
    assert not sample.truncated
    assert "Passage 1: Anna built the mill." in prompt
    assert "Question: Who built it?\nAnswer:" in prompt
    assert prompt.startswith("<|startoftext|><|start_header_id|>user")
    assert sample.max_new_tokens == 32
    assert sample.record_id == "h2"


def test_middle_truncation_keeps_head_and_tail(tokenizer, data_dir: Path) -> None:
    loader = LongBenchLoader(tokenizer, data_dir)
    sample = loader.sample("hotpotqa", 0, budget=300)
    prompt = tokenizer.decode(sample.prompt_ids)
    assert sample.truncated
    assert len(sample.prompt_ids) <= 300
    assert sample.original_tokens > 300
    assert "Answer the question using the passages below." in prompt
    assert "The head of the context" in prompt
    assert prompt.rstrip().endswith("Question: Where is the mill?\nAnswer:<|eot_id|><|start_header_id|>assistant<|end_header_id|>")
    assert MIDDLE_MARKER not in prompt


def test_few_shot_task_skips_chat_template(tokenizer, data_dir: Path) -> None:
    sample = LongBenchLoader(tokenizer, data_dir).sample("trec", 0, budget=4000)
    prompt = tokenizer.decode(sample.prompt_ids)
    assert "<|start_header_id|>" not in prompt
    assert prompt.endswith("Question: What is the capital of Peru?\nType:")
    assert sample.max_new_tokens == 64


def test_scores_with_longbench_metric(tokenizer, data_dir: Path) -> None:
    loader = LongBenchLoader(tokenizer, data_dir)
    assert loader.sample("hotpotqa", 1, 4000).score("Anna") == 1.0
    assert loader.sample("hotpotqa", 1, 4000).score("Bob") == 0.0
    # trec scores only the first line, with the classification metric.
    assert loader.sample("trec", 0, 4000).score("City\nIndividual") == 1.0


def test_available_tasks_and_sha256(tokenizer, data_dir: Path) -> None:
    loader = LongBenchLoader(tokenizer, data_dir)
    assert loader.available_tasks() == ["hotpotqa", "trec"]
    samples = list(loader.samples("hotpotqa", 4000, count=5))
    assert len(samples) == 2
    assert loader.sha256["hotpotqa"] == file_sha256(data_dir / "hotpotqa.jsonl")


def test_longbench_e_variant(tokenizer, data_dir: Path) -> None:
    (data_dir / "hotpotqa.jsonl").rename(data_dir / "hotpotqa_e.jsonl")
    loader = LongBenchLoader(tokenizer, data_dir)
    assert loader.available_tasks() == ["trec", "hotpotqa_e"]
    assert base_task("hotpotqa_e") == "hotpotqa"
    assert loader.sample("hotpotqa_e", 1, 4000).score("Anna") == 1.0


def test_unknown_task_rejected(tokenizer, data_dir: Path) -> None:
    with pytest.raises(ValueError, match="LongBench task 'narrativeqa_e' is unknown"):
        LongBenchLoader(tokenizer, data_dir).records("narrativeqa_e")


def test_missing_task_file(tokenizer, data_dir: Path) -> None:
    with pytest.raises(FileNotFoundError, match="qasper.jsonl"):
        LongBenchLoader(tokenizer, data_dir).records("qasper")


def test_missing_answers_names_line(tokenizer, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "qasper.jsonl", [{"input": "q", "context": "c", "answers": ["a"]}, {"input": "q", "context": "c"}])
    with pytest.raises(DataError, match=r"qasper.jsonl:2: field 'answers' is missing"):
        LongBenchLoader(tokenizer, tmp_path).records("qasper")


def test_invalid_json_names_line(tokenizer, tmp_path: Path) -> None:
    (tmp_path / "qasper.jsonl").write_text('{"input": "q"\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"qasper.jsonl:1: invalid JSON"):
        LongBenchLoader(tokenizer, tmp_path).records("qasper")


def test_mistyped_answers(tokenizer, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "qasper.jsonl", [{"input": "q", "context": "c", "answers": "a"}])
    with pytest.raises(DataError, match="'answers' must be a list of strings"):
        LongBenchLoader(tokenizer, tmp_path).records("qasper")


def test_missing_data_folder(tokenizer, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="LongBench data folder not found"):
        LongBenchLoader(tokenizer, tmp_path / "absent")


def test_budget_below_template_rejected(tokenizer) -> None:
    with pytest.raises(ValueError, match="leaves no room for the context"):
        truncate_middle(tokenizer, TASKS["gov_report"].template.format(context="x " * 200, input=""), 10, chat=True)


def test_every_template_has_both_slots_or_context() -> None:
    for name, task in TASKS.items():
        assert "{context}" in task.template, name
        filled = task.template.format(context="C", input="I")
        assert "{" not in filled, name
