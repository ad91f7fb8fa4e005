"""``wavefilter ask --questions FILE``: many questions over one context, answered in batches.

The file contains one question per line, or JSON Lines whose objects carry a
``question`` field; the format is detected from the first non-blank line.
Blank lines are skipped. Answers are printed in input order, one per
question: plain text followed by a newline, or with ``--json`` one JSON
object per line with the question and its answer.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from wavefilter_cli.cli.output import Diagnostics, write_result
from wavefilter_cli.config import Config
from wavefilter_cli.errors import InputError, UsageError

FORMAT_HINT = "one question per line, or JSON Lines with a \"question\" field"


@dataclass(frozen=True)
class Question:
    """One question and the line of the file it came from (1-based)."""

    text: str
    line: int


def read_questions(name: str, stdin=None) -> list[Question]:
    """Read the questions in file ``name`` (``-`` for stdin).

    Raises InputError (exit 3) for a missing or unreadable file, a file
    without questions, or a JSON line that is invalid or has no non-empty
    string ``question``.
    """
    if name == "-":
        stream = stdin if stdin is not None else sys.stdin
        return parse_questions(stream.read(), "stdin")
    path = Path(name)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"--questions {name}: file not found; pass a file with {FORMAT_HINT}") from None
    except IsADirectoryError:
        raise InputError(f"--questions {name}: is a directory; pass a file with {FORMAT_HINT}") from None
    except UnicodeDecodeError:
        raise InputError(f"--questions {name}: not UTF-8 text; save the questions as UTF-8") from None
    except OSError as error:
        raise InputError(f"--questions {name}: cannot read ({error.strerror}); check the file") from None
    return parse_questions(text, name)


def parse_questions(text: str, source: str) -> list[Question]:
    """Split ``text`` into questions: JSON Lines when its first non-blank line is a JSON object, else plain lines."""
    lines = [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1)]
    lines = [(number, line) for number, line in lines if line]
    if not lines:
        raise InputError(f"--questions {source}: no questions in it; write {FORMAT_HINT}")
    if not _is_json_object(lines[0][1]):
        return [Question(line, number) for number, line in lines]
    questions = []
    for number, line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"--questions {source} line {number}: invalid JSON ({error.msg}); fix the line") from None
        value = record.get("question") if isinstance(record, dict) else None
        if not isinstance(value, str) or not value.strip():
            raise InputError(
                f"--questions {source} line {number}: no \"question\" string; give each JSON line a non-empty "
                "\"question\" field"
            )
        questions.append(Question(value.strip(), number))
    return questions


def _is_json_object(line: str) -> bool:
    if not line.startswith("{"):
        return False
    try:
        return isinstance(json.loads(line), dict)
    except json.JSONDecodeError:
        return False


def check_batch_size(batch_size: int) -> int:
    """Return ``batch_size`` after checking it is at least 1 (exit 2 otherwise)."""
    if batch_size < 1:
        raise UsageError(f"--batch-size {batch_size} is invalid: use a whole number of prompts ≥ 1, such as 4")
    return batch_size


def run_questions(
    config: Config,
    diagnostics: Diagnostics,
    verbosity: int,
    inputs,
    questions_file: str,
    batch_size: int,
    as_json: bool,
) -> None:
    """Answer every question of ``questions_file`` over the documents of ``inputs`` and print the answers in order."""
    from wavefilter_cli.cli.answer import build_policy, load_for_run
    from wavefilter_cli.cli.batch_run import BatchAnswerer, Job, OrderedResults
    from wavefilter_cli.cli.inputs import read_documents
    from wavefilter_cli.cli.live import LiveView, resolve_progress
    from wavefilter_cli.cli.long_inputs import check_chunk_options

    check_batch_size(batch_size)
    if questions_file == "-" and inputs.inputs and "-" in inputs.inputs:
        raise UsageError("--questions - and --context - both read stdin; put the questions or the context in a file")
    build_policy(config)  # a bad --cache, --filter or option fails before any slow work
    check_chunk_options(config)
    questions = read_questions(questions_file)
    ingest = config.ingest
    view = LiveView(resolve_progress(config.output.progress, diagnostics.console), diagnostics.console)
    with view:
        view.set_stage("reading")
        documents = read_documents(
            inputs.inputs, diagnostics, verbosity, inputs.pages, inputs.password_env, ingest.include, ingest.exclude,
            ingest.max_file_mb, missing_hint="--context FILE (or --context - for stdin)",
        )
        view.set_stage("loading model")
        model, tokenizer = load_for_run(config, diagnostics)
        answerer = BatchAnswerer(config, model, tokenizer, diagnostics, batch_size, view, capture_errors=False)
        jobs = [Job(index, question.text, lambda: documents) for index, question in enumerate(questions)]
        ordered = OrderedResults()
        for result in answerer.run(jobs):
            for ready in ordered.add(result):
                write_answer(questions[ready.index], ready, as_json)
    diagnostics.notice(f"answered {len(questions)} questions in batches of up to {batch_size}")


def write_answer(question: Question, result, as_json: bool) -> None:
    """Print one answer: a line of text, or a JSON object with the question, the answer and its costs."""
    if not as_json:
        write_result(result.answer + "\n")
        return
    record = {"question": question.text, "answer": result.answer, **result.timings()}
    write_result(json.dumps(record, ensure_ascii=False) + "\n")
