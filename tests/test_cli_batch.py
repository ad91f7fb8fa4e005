"""`wavefilter ask --questions`, `wavefilter batch` and their data-parallel runs, on a tiny random LLaDA model."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_models import make_tokenizer, save_tiny_llada

from wavefilter_cli.cli.batch_records import parse_records
from wavefilter_cli.cli.batch_run import JobResult, OrderedResults
from wavefilter_cli.cli.distributed import Ranks, interleave, ranks_from_environment
from wavefilter_cli.cli.questions import parse_questions
from wavefilter_cli.errors import InputError, UsageError

QUESTIONS = ["What is the passcode for the north gate?", "Who wrote the minutes?", "When is the next meeting?"]
DOCUMENT = "Minutes of the meeting, written by Ada.\n\nThe passcode for the north gate is 4817. The next meeting is on Friday.\n"


@pytest.fixture(scope="module")
def llada_dir(tmp_path_factory) -> Path:
    tokenizer_dir = make_tokenizer(tmp_path_factory.mktemp("tok"))
    return save_tiny_llada(tmp_path_factory.mktemp("llada") / "m", tokenizer_dir)


@pytest.fixture
def document(tmp_path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text(DOCUMENT)
    return path


def environment() -> dict[str, str]:
    env = {**os.environ, "WAVEFILTER_CACHE": "none", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    for name in ("WAVEFILTER_CONFIG", "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env


def run(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "wavefilter_cli", *args], capture_output=True, text=True, env=environment(),
        input=stdin, timeout=180, cwd=cwd,
    )


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


# ask --questions


def test_questions_answers_match_single_asks(llada_dir, document, tmp_path):
    questions = tmp_path / "questions.txt"
    questions.write_text(QUESTIONS[0] + "\n\n" + "\n".join(QUESTIONS[1:]) + "\n")
    common = ("--context", str(document), "-m", str(llada_dir), "--max-tokens", "16", "--json")
    result = run("ask", "--questions", str(questions), "--batch-size", "2", *common)
    assert result.returncode == 0, result.stderr
    records = json_lines(result.stdout)
    assert [record["question"] for record in records] == QUESTIONS
    assert [record["batch_size"] for record in records] == [2, 2, 1]
    for record in records:
        single = run("ask", record["question"], *common)
        assert single.returncode == 0, single.stderr
        assert record["answer"] == json.loads(single.stdout)["answer"]
        assert record["tokens_in"] == json.loads(single.stdout)["tokens_in"]


def test_questions_jsonl_plain_output(llada_dir, document, tmp_path):
    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(json.dumps({"question": q, "source": "faq"}) + "\n" for q in QUESTIONS))
    common = ("--context", str(document), "-m", str(llada_dir), "--max-tokens", "8")
    plain = run("ask", "--questions", str(questions), *common)
    assert plain.returncode == 0, plain.stderr
    as_json = run("ask", "--questions", str(questions), *common, "--json")
    answers = [record["answer"] for record in json_lines(as_json.stdout)]
    assert plain.stdout == "".join(answer + "\n" for answer in answers)


def test_questions_from_stdin(llada_dir, document):
    result = run("ask", "--questions", "-", "--context", str(document), "-m", str(llada_dir), "--max-tokens", "8",
                 "--json", stdin="\n".join(QUESTIONS[:2]) + "\n")
    assert result.returncode == 0, result.stderr
    assert [record["question"] for record in json_lines(result.stdout)] == QUESTIONS[:2]


@pytest.mark.parametrize(
    ("content", "status", "message"),
    [
        (None, 3, "file not found; pass a file with one question per line"),
        ("\n  \n", 3, "no questions in it; write one question per line"),
        ('{"question": "a?"}\n{"q": "b?"}\n', 3, 'line 2: no "question" string'),
    ],
    ids=["missing", "empty", "no-question-field"],
)
def test_questions_file_errors(llada_dir, document, tmp_path, content, status, message):
    questions = tmp_path / "questions.txt"
    if content is not None:
        questions.write_text(content)
    result = run("ask", "--questions", str(questions), "--context", str(document), "-m", str(llada_dir))
    assert result.returncode == status
    assert str(questions) in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("What?", "--questions", "q.txt"), "pass one of them"),
        (("--questions", "q.txt", "--cite"), "--cite works with one QUESTION"),
        (("--questions", "q.txt", "--batch-size", "0"), "--batch-size 0 is invalid"),
        ((), "no question given"),
    ],
    ids=["question-and-file", "cite", "batch-size", "nothing"],
)
def test_questions_usage_errors(document, tmp_path, args, message):
    (tmp_path / "q.txt").write_text("What?\n")
    result = run("ask", "--context", str(document), *args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr


def test_parse_questions_detects_format():
    assert [q.text for q in parse_questions("a?\n\n b? \n", "f")] == ["a?", "b?"]
    assert [q.line for q in parse_questions("a?\n\n b? \n", "f")] == [1, 3]
    assert [q.text for q in parse_questions('{"question": "x?"}\n{"question": " y? "}\n', "f")] == ["x?", "y?"]
    # A first line that is not a JSON object means plain text, braces and all.
    assert [q.text for q in parse_questions("{not json} ok?\n", "f")] == ["{not json} ok?"]
    with pytest.raises(InputError, match="f line 2: invalid JSON"):
        parse_questions('{"question": "x?"}\n{oops\n', "f")


# wavefilter batch


def batch_input(document: Path) -> str:
    records = [
        {"id": 1, "context": [str(document)], "question": QUESTIONS[0]},
        {"id": "two", "text": "The south gate code is 1234.", "question": "What is the south gate code?"},
        {"id": 3, "context": [str(document.parent / "missing.txt")], "question": QUESTIONS[1]},
        {"id": 4, "text": "The passcode is 99.", "question": "What is the passcode?"},
        {"id": 5, "text": "Ada wrote it.", "question": QUESTIONS[1], "extra": True},
        {"id": 6, "context": [str(document)], "question": QUESTIONS[2]},
    ]
    return "\n".join(json.dumps(record) for record in records) + "\n\nnot json\n"


def test_batch_writes_one_result_per_record(llada_dir, document, tmp_path):
    records = tmp_path / "records.jsonl"
    records.write_text(batch_input(document))
    result = run("batch", str(records), "-m", str(llada_dir), "--max-tokens", "16", "--batch-size", "2")
    assert result.returncode == 3, result.stderr
    lines = json_lines(result.stdout)
    assert [line["id"] for line in lines] == [1, "two", 3, 4, 5, 6, None]
    failed = {line["id"]: line for line in lines if "error" in line}
    assert set(failed) == {3, 5, None}
    assert "missing.txt" in failed[3]["error"]
    assert failed[3]["status"] == 3
    assert "unknown field 'extra'" in failed[5]["error"]
    assert "line 8: invalid JSON" in failed[None]["error"]
    for line in lines:
        if "error" not in line:
            assert {"answer", "tokens_in", "tokens_out", "steps", "forward_passes", "seconds"} <= set(line)
    assert "3 of 7 records failed, the first with id 3 and status 3" in result.stderr

    single = run("ask", QUESTIONS[2], "--context", str(document), "-m", str(llada_dir), "--max-tokens", "16", "--json")
    assert lines[5]["answer"] == json.loads(single.stdout)["answer"]


def test_batch_reads_stdin_and_succeeds(llada_dir):
    records = "".join(
        json.dumps({"id": index, "text": f"The code of box {index} is {index * 7}.", "question": "What is the code?"})
        + "\n"
        for index in range(3)
    )
    result = run("batch", "-", "-m", str(llada_dir), "--max-tokens", "8", stdin=records)
    assert result.returncode == 0, result.stderr
    assert [line["id"] for line in json_lines(result.stdout)] == [0, 1, 2]


def test_batch_record_over_window(llada_dir, document, tmp_path):
    long_text = " ".join(f"Item {index} is stored on shelf {index % 7}." for index in range(60))
    records = tmp_path / "records.jsonl"
    records.write_text(
        json.dumps({"id": "long", "text": long_text, "question": "Where is item 3?"}) + "\n"
        + json.dumps({"id": "short", "context": [str(document)], "question": QUESTIONS[0]}) + "\n"
    )
    common = ("batch", str(records), "-m", str(llada_dir), "--max-tokens", "8", "--ctx-tokens", "200")
    refused = run(*common, "--no-chunk")
    assert refused.returncode == 4
    lines = json_lines(refused.stdout)
    assert lines[0]["status"] == 4
    assert "--no-chunk" in lines[0]["error"]
    assert "answer" in lines[1]
    chunked = run(*common, "--chunk-overlap", "8")
    assert chunked.returncode == 0, chunked.stderr
    assert [("answer" in line) for line in json_lines(chunked.stdout)] == [True, True]


def test_batch_input_errors(llada_dir, tmp_path):
    missing = run("batch", str(tmp_path / "none.jsonl"), "-m", str(llada_dir))
    assert missing.returncode == 3
    assert "none.jsonl: file not found" in missing.stderr
    (tmp_path / "empty.jsonl").write_text("\n")
    empty = run("batch", str(tmp_path / "empty.jsonl"), "-m", str(llada_dir))
    assert empty.returncode == 3
    assert "no records in it" in empty.stderr


def test_parse_records_rules():
    lines = [
        '{"id": "a", "text": "t", "question": "q"}',
        '{"id": "b", "context": ["x.pdf"], "task": "summarize"}',
        '{"text": "t", "question": "q"}',
        '{"id": "c", "text": "t", "context": ["x"], "question": "q"}',
        '{"id": "d", "text": "t"}',
        '{"id": "e", "text": "t", "task": "translate"}',
        '{"id": "f", "context": ["-"], "question": "q"}',
        '{"id": "a", "text": "t", "question": "q"}',
        "[1, 2]",
    ]
    records = parse_records("\n".join(lines), "in.jsonl")
    assert records[0].error is None
    assert records[0].question == "q"
    assert records[1].error is None
    assert records[1].question is None
    assert records[1].context == ("x.pdf",)
    expected = ['missing "id"', 'exactly one of "context"', 'exactly one of "question"', "task 'translate'",
                "cannot name - (stdin)", "used by an earlier record", "not a JSON object"]
    for record, message in zip(records[2:], expected):
        assert message in record.error
        assert record.error.startswith(f"in.jsonl line {record.line}:")


def test_ordered_results_release_in_input_order():
    ordered = OrderedResults()
    assert ordered.add(JobResult(1, answer="b")) == []
    assert [r.index for r in ordered.add(JobResult(0, answer="a"))] == [0, 1]
    assert [r.index for r in ordered.add(JobResult(2, answer="c"))] == [2]


# Data-parallel runs


def test_ranks_from_environment():
    assert ranks_from_environment({}) == Ranks()
    ranks = ranks_from_environment({"RANK": "1", "WORLD_SIZE": "3", "LOCAL_RANK": "1"})
    assert ranks == Ranks(1, 3, 1)
    assert ranks.shard(list("abcdefg")) == ["b", "e"]
    with pytest.raises(UsageError, match="RANK=3 with WORLD_SIZE=2 is invalid"):
        ranks_from_environment({"RANK": "3", "WORLD_SIZE": "2"})
    with pytest.raises(UsageError, match="WORLD_SIZE='x' is invalid"):
        ranks_from_environment({"RANK": "0", "WORLD_SIZE": "x"})


def test_interleave_undoes_round_robin():
    items = list(range(7))
    shards = [Ranks(rank, 3).shard(items) for rank in range(3)]
    assert interleave(shards) == items


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def comparable(line: dict) -> dict:
    """A result line without the fields that depend on how records were batched."""
    return {key: value for key, value in line.items() if key not in ("seconds", "steps", "forward_passes", "batch_size")}


def test_batch_under_torchrun_matches_single_process(llada_dir, document, tmp_path):
    records = tmp_path / "records.jsonl"
    records.write_text(batch_input(document))
    args = ("batch", str(records), "-m", str(llada_dir), "--max-tokens", "16", "--batch-size", "2", "--progress", "none")
    single = run(*args)
    assert single.returncode == 3, single.stderr

    env = environment()
    env["GLOO_SOCKET_IFNAME"] = "lo"  # keep gloo's sockets on loopback
    launcher = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
        "--master-port", str(free_loopback_port()), "-m", "wavefilter_cli", *args,
    ]
    parallel = subprocess.run(launcher, capture_output=True, text=True, env=env, timeout=300)
    # torchrun reports rank 0's status 3 (a failed record) as its own failure.
    assert parallel.returncode != 0
    assert "3 of 7 records failed" in parallel.stderr
    single_lines, parallel_lines = json_lines(single.stdout), json_lines(parallel.stdout)
    assert [comparable(line) for line in parallel_lines] == [comparable(line) for line in single_lines]
    assert {line["batch_size"] for line in parallel_lines if "answer" in line} == {1, 2}
