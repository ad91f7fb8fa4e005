"""The input records of ``wavefilter batch``: one JSON object per line.

Each record names an ``id`` (a string or number, unique in the input), its
context as ``context`` (a list of file or folder paths) or ``text`` (the
document itself), and its task as ``question`` (a string) or ``task``
(``"summarize"``). Blank lines are skipped. A line that breaks these rules
becomes a record with an ``error``; it is reported in the output and the
other records still run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional

from wavefilter_cli.errors import InputError

FIELDS = ("id", "context", "text", "question", "task")
TASKS = ("summarize",)


@dataclass(frozen=True)
class BatchRecord:
    """One checked record of the input; ``error`` is the reason it cannot run, else None.

    ``index`` counts the records (blank lines excluded) from 0, ``line`` is
    the record's 1-based line in the input, and ``question`` None means a
    summary.
    """

    index: int
    line: int
    id: Any = None
    context: Optional[tuple[str, ...]] = None
    text: Optional[str] = None
    question: Optional[str] = None
    error: Optional[str] = None


def parse_records(text: str, source: str) -> list[BatchRecord]:
    """Parse the lines of ``text`` (read from ``source``) into records, invalid ones carrying their error."""
    records: list[BatchRecord] = []
    seen_ids: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        record = parse_record(line, len(records), number, source)
        key = json.dumps(record.id)
        if record.error is None and key in seen_ids:
            record = BatchRecord(record.index, number, record.id, error=(
                f"{source} line {number}: id {key} is used by an earlier record; give every record a unique id"
            ))
        seen_ids.add(key)
        records.append(record)
    return records


def parse_record(line: str, index: int, number: int, source: str) -> BatchRecord:
    """Check one line; returns a record, with ``error`` set when the line breaks a rule."""
    where = f"{source} line {number}"

    def invalid(message: str, record_id: Any = None) -> BatchRecord:
        return BatchRecord(index, number, record_id, error=f"{where}: {message}")

    try:
        value = json.loads(line)
    except json.JSONDecodeError as error:
        return invalid(f"invalid JSON ({error.msg}); write one JSON object per line")
    if not isinstance(value, dict):
        return invalid("not a JSON object; write one object per line, such as {\"id\": 1, \"text\": \"...\", \"question\": \"...\"}")
    record_id = value.get("id")
    if isinstance(record_id, bool) or not isinstance(record_id, (str, int, float)):
        return invalid("missing \"id\"; give every record a string or number id")
    unknown = sorted(set(value) - set(FIELDS))
    if unknown:
        return invalid(f"unknown field {unknown[0]!r}; use {', '.join(FIELDS)}", record_id)

    has_context, has_text = "context" in value, "text" in value
    if has_context == has_text:
        return invalid("give exactly one of \"context\" (a list of paths) and \"text\" (the document)", record_id)
    context = text = None
    if has_context:
        context = value["context"]
        if not isinstance(context, list) or not context or not all(isinstance(p, str) and p for p in context):
            return invalid("\"context\" must be a non-empty list of file or folder paths", record_id)
        if "-" in context:
            return invalid("\"context\" cannot name - (stdin) in a batch; name files, or put the document in \"text\"",
                           record_id)
        context = tuple(context)
    else:
        text = value["text"]
        if not isinstance(text, str) or not text.strip():
            return invalid("\"text\" must be a non-empty string", record_id)

    has_question, has_task = "question" in value, "task" in value
    if has_question == has_task:
        return invalid("give exactly one of \"question\" and \"task\": \"summarize\"", record_id)
    question = None
    if has_question:
        question = value["question"]
        if not isinstance(question, str) or not question.strip():
            return invalid("\"question\" must be a non-empty string", record_id)
        question = question.strip()
    elif value["task"] not in TASKS:
        return invalid(f"task {value['task']!r} is unknown; use \"summarize\", or ask a \"question\"", record_id)
    return BatchRecord(index, number, record_id, context, text, question)


def record_error(record: BatchRecord) -> InputError:
    """Return the error of an invalid record as an input problem (exit 3)."""
    assert record.error is not None, "only invalid records have an error"
    return InputError(record.error)
