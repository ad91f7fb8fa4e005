"""LongBench v1 loader for user-supplied data: prompt templates, answer lengths and middle truncation.

Nothing is bundled. The user points at a folder holding ``<task>.jsonl``
files in LongBench's format (one JSON object per line with ``input``,
``context``, ``answers`` and optionally ``all_classes``, ``length``,
``dataset``, ``language`` and ``_id``), and ``<task>_e.jsonl`` for the
LongBench-E variants.

Each task has a prompt template with ``{context}`` and ``{input}`` slots that
follows the structure of LongBench's ``dataset2prompt.json``: an
instruction, the labelled context, the instruction again and the question
with an answer cue. The wording is this module's own, so scores are close to
but not identical with runs on the official prompts. The maximum answer
lengths are LongBench's ``dataset2maxlen.json`` values. Few-shot and code
tasks (trec, triviaqa, samsum, lsht, lcc, repobench-p) are encoded as plain
text; the others go through the tokenizer's chat template when it has one.

A prompt longer than the budget keeps its first and last halves of the
budget in tokens and drops the middle (LongBench's ``pred.py`` does the
same), so the instruction at the head and the question at the tail survive.
Scores come from ``longbench_metrics``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from wavefilter_cli.eval.longbench_metrics import score_sample
from wavefilter_cli.prompt import encode_prompt

__all__ = [
    "LONGBENCH_E_TASKS",
    "TASKS",
    "DataError",
    "LongBenchLoader",
    "LongBenchRecord",
    "LongBenchSample",
    "LongBenchTask",
    "base_task",
    "truncate_middle",
]


class DataError(ValueError):
    """A LongBench file that cannot be used: invalid JSON or a missing or mistyped field."""


@dataclass(frozen=True)
class LongBenchTask:
    """One task's prompt template, maximum answer tokens and whether the chat template wraps it."""

    template: str
    max_new_tokens: int
    chat: bool = True
    language: str = "en"


_QA_RULE = "Answer as briefly as you can, in one phrase if possible, and give no explanation."
_PASSAGES_QA = (
    "Answer the question using the passages below. Give only the answer and no other words.\n\n"
    "The passages:\n{context}\n\n"
    "Using the passages above, answer the question. Give only the answer and no other words.\n\n"
    "Question: {input}\nAnswer:"
)

#: The 21 LongBench v1 tasks.
TASKS: dict[str, LongBenchTask] = {
    "narrativeqa": LongBenchTask(
        "You are given a story, which may be a book or a movie script, and a question about it. " + _QA_RULE
        + "\n\nStory: {context}\n\nNow answer the question about the story. " + _QA_RULE
        + "\n\nQuestion: {input}\n\nAnswer:",
        128,
    ),
    "qasper": LongBenchTask(
        "You are given a scientific article and a question about it. " + _QA_RULE
        + ' If the article does not contain the answer, write "unanswerable". If the question can be answered '
        'with yes or no, write "yes", "no" or "unanswerable".\n\nArticle: {context}\n\n'
        "Answer the question about the article above. " + _QA_RULE
        + ' Write "unanswerable" if the article does not contain the answer, and "yes", "no" or '
        '"unanswerable" for a yes-or-no question.\n\nQuestion: {input}\n\nAnswer:',
        128,
    ),
    "multifieldqa_en": LongBenchTask(
        "Read the text below and answer the question briefly.\n\n{context}\n\n"
        "Using the text above, answer the question. Give only the answer and no other words.\n\n"
        "Question: {input}\nAnswer:",
        64,
    ),
    "multifieldqa_zh": LongBenchTask(
        "请阅读下面的文字，然后用中文简要回答问题。\n\n{context}\n\n请根据上面的文字回答问题，只给出答案，不要写其他内容。\n\n问题：{input}\n答案：",
        64,
        language="zh",
    ),
    "hotpotqa": LongBenchTask(_PASSAGES_QA, 32),
    "2wikimqa": LongBenchTask(_PASSAGES_QA, 32),
    "musique": LongBenchTask(_PASSAGES_QA, 32),
    "dureader": LongBenchTask(
        "请根据下面的多篇文章回答问题。\n\n文章：{context}\n\n请根据上面的文章回答问题。\n\n问题：{input}\n答案：",
        128,
        language="zh",
    ),
    "gov_report": LongBenchTask(
        "Below is a report by a government agency. Write a one-page summary of it.\n\nReport:\n{context}\n\n"
        "Now write a one-page summary of the report above.\n\nSummary:",
        512,
    ),
    "qmsum": LongBenchTask(
        "Below is a meeting transcript and a query about it. Answer the query in one or more sentences.\n\n"
        "Transcript:\n{context}\n\nNow answer the query about the transcript above in one or more sentences.\n\n"
        "Query: {input}\nAnswer:",
        512,
    ),
    "multi_news": LongBenchTask(
        "Below are several news articles. Write a one-page summary of all of them.\n\nNews:\n{context}\n\n"
        "Now write a one-page summary of all the news above.\n\nSummary:",
        512,
    ),
    "vcsum": LongBenchTask(
        "下面是一份会议记录。请写一份一页左右的会议总结。\n\n会议记录：\n{context}\n\n请为上面的会议记录写一份总结。\n\n会议总结：",
        512,
        language="zh",
    ),
    "trec": LongBenchTask(
        "Name the type of answer each question asks for. Examples follow.\n\n{context}\n{input}", 64, chat=False
    ),
    "triviaqa": LongBenchTask(
        "Answer the question using the passage. Give only the answer and no other words. Examples follow.\n\n"
        "{context}\n\n{input}",
        32,
        chat=False,
    ),
    "samsum": LongBenchTask(
        "Summarize the dialogue in a few sentences. Examples follow.\n\n{context}\n\n{input}", 128, chat=False
    ),
    "lsht": LongBenchTask("请判断下面新闻的类别。以下是一些例子。\n\n{context}\n{input}", 64, chat=False, language="zh"),
    "passage_count": LongBenchTask(
        "Below are several paragraphs from Wikipedia. Some of them may repeat others. Read them all and count "
        "how many different paragraphs there are.\n\n{context}\n\n"
        "Give only the number of different paragraphs, as a bare number such as 1, 2 or 3, and no other text."
        "\n\nThe number of different paragraphs is:",
        32,
    ),
    "passage_retrieval_en": LongBenchTask(
        "Below are 30 paragraphs from Wikipedia, then an abstract. Find the paragraph the abstract was written "
        "from.\n\n{context}\n\nAbstract:\n{input}\n\n"
        'Which paragraph was the abstract written from? Answer as "Paragraph 1", "Paragraph 2" and so on, '
        "with no other text.\n\nThe answer is:",
        32,
    ),
    "passage_retrieval_zh": LongBenchTask(
        "下面是30个段落和一段摘要。请找出摘要是根据哪个段落写的。\n\n{context}\n\n摘要：\n{input}\n\n"
        "请只回答段落编号，格式为“段落1”“段落2”等，不要写其他内容。\n\n答案是：",
        32,
        language="zh",
    ),
    "lcc": LongBenchTask("Complete the code below.\n{context}Next line of code:\n", 64, chat=False, language="code"),
    "repobench-p": LongBenchTask(
        "Complete the code below.\n{context}{input}Next line of code:\n", 64, chat=False, language="code"
    ),
}

#: Tasks with a LongBench-E variant, read from ``<task>_e.jsonl``.
LONGBENCH_E_TASKS: tuple[str, ...] = (
    "qasper", "multifieldqa_en", "hotpotqa", "2wikimqa", "gov_report", "multi_news", "trec", "triviaqa",
    "samsum", "passage_count", "passage_retrieval_en", "lcc", "repobench-p",
)

#: Every accepted task name: the 21 tasks and the 13 LongBench-E variants.
TASK_NAMES: tuple[str, ...] = (*TASKS, *(f"{name}_e" for name in LONGBENCH_E_TASKS))


def base_task(name: str) -> str:
    """Return the LongBench task behind ``name`` (``qasper_e`` → ``qasper``); raise ValueError if unknown."""
    if name in TASKS:
        return name
    if name.endswith("_e") and name[:-2] in LONGBENCH_E_TASKS:
        return name[:-2]
    raise ValueError(f"LongBench task {name!r} is unknown: use one of {', '.join(TASK_NAMES)}")


@dataclass(frozen=True)
class LongBenchRecord:
    """One line of a LongBench file; ``length`` is LongBench's word (or character) count, or None."""

    input: str
    context: str
    answers: tuple[str, ...]
    all_classes: tuple[str, ...] | None = None
    length: int | None = None
    record_id: str | None = None


@dataclass(frozen=True)
class LongBenchSample:
    """One prompt ready to generate from, with what its score needs.

    ``prompt_ids`` has at most the budget's tokens; ``original_tokens`` is
    the prompt length before truncation.
    """

    task: str
    index: int
    record_id: str | None
    prompt_ids: list[int]
    answers: tuple[str, ...]
    all_classes: tuple[str, ...] | None
    max_new_tokens: int
    original_tokens: int

    @property
    def truncated(self) -> bool:
        """Whether the middle of the prompt was dropped to fit the budget."""
        return len(self.prompt_ids) < self.original_tokens

    def score(self, prediction: str) -> float:
        """Score ``prediction`` in [0, 1] with the task's LongBench metric (max over the answers)."""
        return score_sample(base_task(self.task), prediction, self.answers, self.all_classes)


def _string_list(value, path: Path, line: int, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise DataError(f"{path}:{line}: field {name!r} must be a list of strings, got {type(value).__name__}")
    return tuple(value)


def parse_record(data: object, path: Path, line: int) -> LongBenchRecord:
    """Check one decoded line and return it as a record; raise DataError naming the file, line and field."""
    if not isinstance(data, dict):
        raise DataError(f"{path}:{line}: expected a JSON object, got {type(data).__name__}")
    for name in ("input", "context"):
        if not isinstance(data.get(name), str):
            raise DataError(f"{path}:{line}: field {name!r} is missing or not a string; LongBench lines need it")
    if "answers" not in data:
        raise DataError(f"{path}:{line}: field 'answers' is missing; LongBench lines need a list of answers")
    answers = _string_list(data["answers"], path, line, "answers")
    classes = data.get("all_classes")
    all_classes = None if classes is None else _string_list(classes, path, line, "all_classes")
    length = data.get("length")
    record_id = data.get("_id")
    return LongBenchRecord(
        input=data["input"],
        context=data["context"],
        answers=answers,
        all_classes=all_classes,
        length=length if isinstance(length, int) else None,
        record_id=record_id if isinstance(record_id, str) else None,
    )


def read_records(path: Path) -> list[LongBenchRecord]:
    """Read and check every non-empty line of a LongBench ``.jsonl`` file."""
    records = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(
                    f"{path}:{number}: invalid JSON ({error.msg}); each line must be one JSON object"
                ) from None
            records.append(parse_record(data, Path(path), number))
    if not records:
        raise DataError(f"{path}: no records; the file must hold one JSON object per line")
    return records


def file_sha256(path: Path) -> str:
    """Return the hex SHA-256 of a file, recorded so a run names the exact data it used."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def encode_text(tokenizer, text: str, chat: bool, system: str | None = None) -> list[int]:
    """Encode a filled template: as one chat user turn when ``chat`` and the tokenizer has a template, else as text.

    Plain text gets the tokenizer's usual special tokens (a BOS token for
    most), as LongBench encodes its prompts.
    """
    if chat and getattr(tokenizer, "chat_template", None):
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
        return encode_prompt(tokenizer, messages)
    return list(tokenizer(text)["input_ids"])


def truncate_middle(tokenizer, text: str, budget: int, chat: bool, system: str | None = None) -> tuple[list[int], int]:
    """Encode ``text`` in at most ``budget`` tokens, dropping the middle of the text when it is too long.

    Returns ``(prompt_ids, original_tokens)``. The text keeps its first
    ``keep // 2`` and last ``keep - keep // 2`` tokens, where ``keep`` is the
    budget less the chat template's own tokens. Decoding and re-encoding the
    halves can merge tokens differently, so ``keep`` shrinks until the
    prompt fits. Raises ValueError when the template alone exceeds the budget.
    """
    ids = encode_text(tokenizer, text, chat, system)
    original = len(ids)
    if original <= budget:
        return ids, original
    body = tokenizer(text, add_special_tokens=False)["input_ids"]
    keep = budget - (original - len(body))
    while keep > 0:
        head = keep // 2
        tail = keep - head
        shortened = tokenizer.decode(body[:head]) + tokenizer.decode(body[len(body) - tail :])
        ids = encode_text(tokenizer, shortened, chat, system)
        if len(ids) <= budget:
            return ids, original
        keep -= len(ids) - budget
    raise ValueError(
        f"a budget of {budget} tokens leaves no room for the context: the template alone takes "
        f"{original - len(body)} tokens; use a longer length"
    )


@dataclass
class LongBenchLoader:
    """Reads the LongBench files of ``data_dir`` and builds prompts for one tokenizer.

    ``sha256`` maps each task read so far to its file's SHA-256.
    """

    tokenizer: object
    data_dir: Path
    system: str | None = None
    sha256: dict[str, str] = field(default_factory=dict)
    _records: dict[str, list[LongBenchRecord]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        if not self.data_dir.is_dir():
            raise FileNotFoundError(
                f"LongBench data folder not found: {self.data_dir}; pass the folder holding <task>.jsonl files"
            )

    def path(self, task: str) -> Path:
        """Return the file of ``task``; raise ValueError for an unknown task."""
        base_task(task)
        return self.data_dir / f"{task}.jsonl"

    def available_tasks(self) -> list[str]:
        """Return the known tasks that have a file in the folder, in LongBench's order."""
        return [task for task in TASK_NAMES if (self.data_dir / f"{task}.jsonl").is_file()]

    def records(self, task: str) -> list[LongBenchRecord]:
        """Return the task's records, reading and checking the file on first use."""
        if task not in self._records:
            path = self.path(task)
            if not path.is_file():
                raise FileNotFoundError(
                    f"LongBench file not found: {path}; add {task}.jsonl or drop {task} from the tasks"
                )
            self._records[task] = read_records(path)
            self.sha256[task] = file_sha256(path)
        return self._records[task]

    def sample(self, task: str, index: int, budget: int) -> LongBenchSample:
        """Build the prompt of record ``index`` in at most ``budget`` tokens."""
        spec = TASKS[base_task(task)]
        record = self.records(task)[index]
        text = spec.template.format(context=record.context, input=record.input)
        ids, original = truncate_middle(self.tokenizer, text, budget, spec.chat, self.system)
        return LongBenchSample(
            task=task,
            index=index,
            record_id=record.record_id,
            prompt_ids=ids,
            answers=record.answers,
            all_classes=record.all_classes,
            max_new_tokens=spec.max_new_tokens,
            original_tokens=original,
        )

    def samples(self, task: str, budget: int, count: int | None = None) -> Iterator[LongBenchSample]:
        """Yield the prompts of the first ``count`` records (all when None), one at a time."""
        records = self.records(task)
        total = len(records) if count is None else min(count, len(records))
        for index in range(total):
            yield self.sample(task, index, budget)
