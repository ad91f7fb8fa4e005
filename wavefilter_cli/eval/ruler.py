"""RULER-style synthetic tasks over real text, with prompts of an exact length in the tested model's tokens.

The tasks follow the generators of RULER (NVIDIA/RULER, ``scripts/data/synthetic``):
needle in a haystack with single, multi-key, multi-value and multi-query
variants, variable tracking (vt), common-words extraction (cwe) and
frequent-words extraction (fwe). The wording of needles, instructions and
answer prefixes is this module's own. Differences from RULER:

* The essay haystack is any folder of plain-text books instead of Paul
  Graham's essays, and each sample starts at its own random sentence.
* Word keys and values, and the cwe vocabulary, are lower-case words of the
  haystack books instead of the wonderwords lists, so nothing extra is
  installed. A word key joins two such words with a hyphen.
* The prompt is the project's layout (``wavefilter_cli.prompt``): the task
  instruction, the text as one document, then the question, wrapped by the
  tokenizer's chat template, followed by the answer prefix.
* vt's one-shot example is ``min(500, length // 8)`` tokens long instead of
  500, so short lengths still fit.

Lengths follow RULER's convention: ``length`` counts the prompt plus the
task's tokens to generate, so every prompt has exactly ``length -
max_new_tokens`` tokens. Fitting works with any Hugging Face tokenizer,
including ones whose merges cross whitespace: a search over the haystack
amount (sentences, lines, words) finds the largest prompt that fits, then
the next haystack unit, cut to a number of characters, fills the remaining
tokens. When no cut gives the exact count, the sample keeps the longest
prompt below it and ``RulerSample.shortfall`` says by how many tokens; more
than ``LENGTH_TOLERANCE`` tokens raises ``ValueError``.

Samples are deterministic: the same tokenizer, haystack, seed, task, length,
index and count give the same prompt. NIAH needle depths are spread evenly
over a task's samples (sample ``i`` of ``n`` at ``100 * i / (n - 1)`` percent).
"""

from __future__ import annotations

import math
import random
import re
import string
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, NamedTuple, Sequence

from wavefilter_cli.prompt import PromptDocument, chat_messages, encode_prompt
from wavefilter_cli.training.haystack import DEFAULT_HAYSTACK_DIR

__all__ = [
    "DEFAULT_HAYSTACK_DIR",
    "LENGTH_TOLERANCE",
    "TASKS",
    "HaystackText",
    "RulerGenerator",
    "RulerSample",
    "spread_depths",
    "split_sentences",
]

#: Largest number of tokens a prompt may fall short of its target when no cut fits exactly.
LENGTH_TOLERANCE = 4
#: Display name of the single document in every prompt.
DOCUMENT_NAME = "document.txt"
#: The noise haystack: one line of five short sentences, repeated.
NOISE_LINE = "The river runs east. The hills are quiet. The lamp is lit. Time moves on. Nothing changes here."
#: Depth grid (percent) that needles other than the sample's anchor needle are drawn from, as in RULER.
DEPTH_GRID = tuple(round(100 * i / 39) for i in range(40))
#: Characters tried on each side of the cut the binary search finds, for tokenizers whose count is not monotonic.
CUT_SCAN = 8
#: Haystack amounts tried, from the largest that fits downwards, before settling for a near-exact prompt.
AMOUNTS_TRIED = 4
#: Alternative tails per draft, tried in turn when a cut of the first misses the target.
TAIL_CHOICES = 3
#: Fresh words in each cwe and fwe tail, which exact fitting may cut into.
TAIL_WORDS = 8

HaystackKind = Literal["noise", "essay", "needle"]
ItemType = Literal["words", "numbers", "uuids"]

_ABBREVIATIONS = frozenset(
    ("mr.", "mrs.", "dr.", "st.", "messrs.", "mme.", "mlle.", "capt.", "col.", "gen.", "lieut.", "rev.", "prof.",
     "sr.", "jr.", "vs.", "viz.", "i.e.", "e.g.", "no.")
)
_SENTENCE_BOUNDARY = re.compile(r"[.!?]+[\"'\u2019\u201d)\]_]*\s+")
_SENTENCE_OPENERS = "\"'\u2018\u201c([_"
_VOCABULARY_WORD = re.compile(r"(?<![A-Za-z'\-])[a-z]{4,12}(?![A-Za-z'\-])")
_KINDS = {"words": ("word", "words"), "numbers": ("number", "numbers"), "uuids": ("UUID", "UUIDs")}


# ---------------------------------------------------------------------------
# Haystack text
# ---------------------------------------------------------------------------


def split_sentences(text: str) -> list[str]:
    """Split whitespace-normalised text into sentences.

    A sentence ends at ``.``, ``!`` or ``?`` (plus closing quotes or brackets)
    followed by whitespace and a capital, digit or opening quote, unless the
    word before is a title or an initial such as ``Mr.`` or ``J.``.
    """
    sentences = []
    start = 0
    for match in _SENTENCE_BOUNDARY.finditer(text):
        following = text[match.end() : match.end() + 1]
        if not (following.isupper() or following.isdigit() or (following and following in _SENTENCE_OPENERS)):
            continue
        word = text[text.rfind(" ", 0, match.start()) + 1 : match.start() + 1].lstrip(_SENTENCE_OPENERS)
        if word.lower() in _ABBREVIATIONS or (len(word) == 2 and word[0].isupper()):
            continue
        sentence = text[start : match.end()].strip()
        if sentence:
            sentences.append(sentence)
        start = match.end()
    rest = text[start:].strip()
    if rest:
        sentences.append(rest)
    return sentences


class HaystackText:
    """The books of a folder as one sequence of sentences, plus their lower-case word vocabulary.

    Every ``*.txt`` file is read in name order, its whitespace collapsed to
    single spaces, and the books are joined in that order. ``vocabulary`` is
    the sorted set of lower-case words of 4 to 12 letters.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise FileNotFoundError(f"haystack folder not found: {self.directory}; pass a folder of plain-text files")
        paths = sorted(self.directory.glob("*.txt"))
        if not paths:
            raise FileNotFoundError(f"no *.txt files in the haystack folder {self.directory}; add plain-text books")
        texts = [" ".join(path.read_text(encoding="utf-8", errors="replace").split()) for path in paths]
        joined = " ".join(text for text in texts if text)
        self.sentences = split_sentences(joined)
        self.vocabulary = sorted(set(_VOCABULARY_WORD.findall(joined)))
        if len(self.sentences) < 2 or len(self.vocabulary) < 20:
            raise ValueError(
                f"the haystack folder {self.directory} holds {len(self.sentences)} sentences and "
                f"{len(self.vocabulary)} distinct lower-case words; add more text (at least 2 and 20)"
            )


# ---------------------------------------------------------------------------
# Samples, frames and drafts
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RulerSample:
    """One prompt with its gold strings.

    ``length`` is the nominal sequence length (prompt plus ``max_new_tokens``)
    and ``target_tokens`` the requested prompt length. ``prompt_ids`` has
    ``target_tokens - shortfall`` tokens, where ``shortfall`` is 0 unless the
    tokenizer made an exact fit impossible. ``depth`` is the anchor needle's
    depth in percent of the haystack for NIAH tasks, else None. ``document``
    is the haystack text with the needles, as placed in the prompt.
    """

    task: str
    length: int
    index: int
    prompt_ids: list[int]
    outputs: tuple[str, ...]
    max_new_tokens: int
    metric: Literal["all", "part"]
    target_tokens: int
    depth: float | None
    document: str
    question: str
    answer_prefix: str

    @property
    def shortfall(self) -> int:
        """Tokens the prompt is short of ``target_tokens`` (0 for an exact fit)."""
        return self.target_tokens - len(self.prompt_ids)


@dataclass(frozen=True)
class Frame:
    """The parts of a prompt around the document: instruction, question, answer prefix and the gold strings."""

    instruction: str
    question: str
    answer_prefix: str
    outputs: tuple[str, ...]


class Cut(NamedTuple):
    """Part of a draft's tail: the first (or with ``from_end``, the last) ``chars`` characters of ``tails[tail]``.

    Whitespace at the cut edge is dropped.
    """

    tail: int
    chars: int
    from_end: bool = False


@dataclass
class Draft:
    """A sample at one haystack amount, with an open end for exact fitting.

    The document is ``units`` joined by ``separator``. A ``Cut`` inserts
    part of one tail as one more unit before ``units[tail_index]``. The
    tails are alternative next units: where a tokenizer merge makes one
    tail skip the target count, another may hit it.
    """

    frame: Frame
    units: list[str]
    separator: str
    tails: tuple[str, ...]
    tail_index: int

    def piece(self, cut: Cut) -> str:
        """Return the tail text that ``cut`` inserts."""
        tail = self.tails[cut.tail]
        if cut.from_end:
            return tail[len(tail) - cut.chars :].lstrip() if cut.chars else ""
        return tail[: cut.chars].rstrip()

    def document(self, cut: Cut | None = None) -> str:
        """Return the document with the tail text of ``cut``."""
        piece = self.piece(cut) if cut is not None else ""
        if not piece:
            return self.separator.join(self.units)
        return self.separator.join(self.units[: self.tail_index] + [piece] + self.units[self.tail_index :])


@dataclass(frozen=True)
class Plan:
    """How to build one sample: its frame, the draft for each haystack amount and the amounts allowed.

    ``maximum`` is None when the haystack never runs out because it cycles.
    Otherwise ``limit_reason`` names what runs out.
    """

    draft: Callable[[int], Draft]
    minimum: int
    maximum: int | None = None
    limit_reason: str = ""


def insert_items(units: list[str], items: list[tuple[int, str]]) -> tuple[list[str], int]:
    """Insert ``(index, text)`` items before ``units[index]``; return the merged list and the tail index.

    Items with equal indices keep their list order. Items at ``len(units)``
    go after the tail, so a needle at depth 100 ends the document.
    """
    by_index: dict[int, list[str]] = {}
    for index, text in items:
        by_index.setdefault(index, []).append(text)
    merged: list[str] = []
    for position, unit in enumerate(units):
        merged.extend(by_index.get(position, []))
        merged.append(unit)
    tail_index = len(merged)
    merged.extend(by_index.get(len(units), []))
    return merged, tail_index


def spread_depths(count: int) -> list[float]:
    """Return ``count`` depths in percent, evenly spaced from 0 to 100 (50 for a single sample)."""
    if count < 1:
        raise ValueError(f"count={count} is invalid: use at least 1 sample")
    if count == 1:
        return [50.0]
    return [100.0 * index / (count - 1) for index in range(count)]


def depth_index(units: int, depth: float) -> int:
    """Return the unit index a needle at ``depth`` percent goes before, as RULER computes it."""
    return min(units, int(units * depth / 100))


# ---------------------------------------------------------------------------
# Random items
# ---------------------------------------------------------------------------


def random_item(rng: random.Random, kind: ItemType, vocabulary: Sequence[str]) -> str:
    """Draw one key or value: two haystack words joined by a hyphen, a 7-digit number or a UUID4 string."""
    if kind == "words":
        first, second = rng.sample(vocabulary, 2)
        return f"{first}-{second}"
    if kind == "numbers":
        return str(rng.randint(1_000_000, 9_999_999))
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def distinct_items(
    rng: random.Random, kind: ItemType, count: int, vocabulary: Sequence[str], used: set[str]
) -> list[str]:
    """Draw ``count`` items not in ``used``, adding each to it."""
    items = []
    while len(items) < count:
        item = random_item(rng, kind, vocabulary)
        if item not in used:
            used.add(item)
            items.append(item)
    return items


def join_phrases(phrases: Sequence[str]) -> str:
    """Join phrases as ``a``, ``a and b`` or ``a, b, and c``."""
    if len(phrases) == 1:
        return phrases[0]
    if len(phrases) == 2:
        return f"{phrases[0]} and {phrases[1]}"
    return ", ".join(phrases[:-1]) + ", and " + phrases[-1]


def variable_names(rng: random.Random, count: int, letters: int) -> list[str]:
    """Draw ``count`` distinct upper-case names of ``letters`` letters other than ``VAR``."""
    names: list[str] = []
    while len(names) < count:
        name = "".join(rng.choice(string.ascii_uppercase) for _ in range(letters))
        if name != "VAR" and name not in names:
            names.append(name)
    return names


def coded_words(rng: random.Random, count: int) -> list[str]:
    """Draw ``count`` distinct random 6-letter lower-case words."""
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < count:
        word = "".join(rng.choice(string.ascii_lowercase) for _ in range(6))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


class ItemStream:
    """A reproducible, growing list of items drawn one by one from a seeded generator."""

    def __init__(self, draw: Callable[[random.Random], str], seed: str) -> None:
        self._draw = draw
        self._rng = random.Random(seed)
        self.items: list[str] = []

    def take(self, count: int) -> list[str]:
        """Return the first ``count`` items, drawing more as needed."""
        while len(self.items) < count:
            self.items.append(self._draw(self._rng))
        return self.items[:count]


# ---------------------------------------------------------------------------
# Task specifications
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NiahTask:
    """A needle-in-a-haystack task.

    ``num_keys`` keys each get ``values_per_key`` needles; ``num_queries`` of
    the keys are asked for, and the gold strings are all their values.
    """

    haystack: HaystackKind
    key_type: ItemType
    value_type: ItemType
    num_keys: int = 1
    values_per_key: int = 1
    num_queries: int = 1
    max_new_tokens: int = 128
    metric: Literal["all", "part"] = "all"
    uses_depth: bool = True

    def plan(self, generator: "RulerGenerator", seed: str, length: int, depth: float) -> Plan:
        """Draw the needles and question of one sample and return its plan."""
        return niah_plan(self, generator, seed, depth)


@dataclass(frozen=True)
class VariableTrackingTask:
    """Variable tracking: a chain of ``num_hops`` copies from one assigned value, hidden in noise."""

    num_hops: int = 4
    max_new_tokens: int = 30
    metric: Literal["all", "part"] = "all"
    uses_depth: bool = False

    def plan(self, generator: "RulerGenerator", seed: str, length: int, depth: float) -> Plan:
        """Draw the chain, the one-shot example and the question of one sample and return its plan."""
        return vt_plan(self, generator, seed, length)


@dataclass(frozen=True)
class CommonWordsTask:
    """Common-words extraction: find the ``num_common`` words repeated most in a numbered list."""

    num_common: int = 10
    max_new_tokens: int = 120
    metric: Literal["all", "part"] = "all"
    uses_depth: bool = False

    def plan(self, generator: "RulerGenerator", seed: str, length: int, depth: float) -> Plan:
        """Draw the word list settings and the one-shot example of one sample and return its plan."""
        return cwe_plan(self, generator, seed, length)


@dataclass(frozen=True)
class FrequentWordsTask:
    """Frequent-words extraction: Zipf-distributed coded words; find the three most frequent real ones."""

    alpha: float = 2.0
    max_new_tokens: int = 50
    metric: Literal["all", "part"] = "all"
    uses_depth: bool = False

    def plan(self, generator: "RulerGenerator", seed: str, length: int, depth: float) -> Plan:
        """Draw the coded vocabulary of one sample and return its plan."""
        return fwe_plan(self, generator, seed, length)


Task = NiahTask | VariableTrackingTask | CommonWordsTask | FrequentWordsTask

#: Every task by name, with RULER's settings.
TASKS: dict[str, Task] = {
    "niah_single_1": NiahTask("noise", "words", "numbers"),
    "niah_single_2": NiahTask("essay", "words", "numbers"),
    "niah_single_3": NiahTask("essay", "words", "uuids"),
    "niah_multikey_1": NiahTask("essay", "words", "numbers", num_keys=4),
    "niah_multikey_2": NiahTask("needle", "words", "numbers"),
    "niah_multikey_3": NiahTask("needle", "uuids", "uuids"),
    "niah_multivalue": NiahTask("essay", "words", "numbers", values_per_key=4),
    "niah_multiquery": NiahTask("essay", "words", "numbers", num_keys=4, num_queries=4),
    "vt": VariableTrackingTask(),
    "cwe": CommonWordsTask(),
    "fwe": FrequentWordsTask(),
}


# ---------------------------------------------------------------------------
# Task plans
# ---------------------------------------------------------------------------


def needle_sentence(kind: ItemType, key: str, value: str) -> str:
    """Return the sentence that hides one value of ``key``."""
    return f"A special magic {_KINDS[kind][0]} for {key} is {value}."


def niah_frame(task: NiahTask, queried: list[str], outputs: list[str]) -> Frame:
    """Return the instruction, question and answer prefix, singular when one value is expected."""
    singular, plural = _KINDS[task.value_type]
    query = join_phrases(queried)
    instruction = (
        f"Special magic {plural} are hidden in the document below. "
        "Memorize them, because a question about them follows."
    )
    if len(outputs) == 1:
        question = f"Which special magic {singular} for {query} does the document mention?"
        prefix = f"The special magic {singular} for {query} in the document is:"
    else:
        question = f"Which special magic {plural} for {query} does the document mention? List all of them."
        prefix = f"The special magic {plural} for {query} in the document are:"
    return Frame(instruction, question, prefix, tuple(outputs))


def niah_plan(task: NiahTask, generator: "RulerGenerator", seed: str, depth: float) -> Plan:
    """Plan a NIAH sample: the anchor needle (first value of the first queried key) sits at ``depth``."""
    rng = random.Random(seed)
    vocabulary = generator.haystack.vocabulary
    used: set[str] = set()
    keys = distinct_items(rng, task.key_type, task.num_keys, vocabulary, used)
    values = {key: distinct_items(rng, task.value_type, task.values_per_key, vocabulary, used) for key in keys}
    queried = rng.sample(keys, task.num_queries)
    outputs = [value for key in queried for value in values[key]]
    frame = niah_frame(task, queried, outputs)

    anchor = (queried[0], values[queried[0]][0])
    others = [(key, value) for key in keys for value in values[key] if (key, value) != anchor]
    grid = [point for point in DEPTH_GRID if abs(point - depth) >= 100 / 39 / 2]
    other_depths = rng.sample(grid, len(others))
    needles = [(depth, needle_sentence(task.value_type, *anchor))]
    needles += [(d, needle_sentence(task.value_type, key, value)) for d, (key, value) in zip(other_depths, others)]
    needles.sort(key=lambda pair: pair[0])

    # Each haystack returns ``amount`` units and the alternative tails that may follow them.
    if task.haystack == "noise":
        separator = "\n"

        def haystack(amount: int) -> tuple[list[str], tuple[str, ...]]:
            return [NOISE_LINE] * amount, noise_tails()

    elif task.haystack == "essay":
        separator = " "
        sentences = generator.haystack.sentences
        offset = rng.randrange(len(sentences))

        def haystack(amount: int) -> tuple[list[str], tuple[str, ...]]:
            units = [sentences[(offset + i) % len(sentences)] for i in range(amount + TAIL_CHOICES)]
            return units[:amount], tuple(units[amount:])

    else:
        separator = "\n"
        distractors = ItemStream(
            lambda r: distractor_needle(r, task, vocabulary, used), f"{seed}:distractors"
        )

        def haystack(amount: int) -> tuple[list[str], tuple[str, ...]]:
            units = distractors.take(amount + TAIL_CHOICES)
            return units[:amount], tuple(units[amount:])

    def draft(amount: int) -> Draft:
        units, tails = haystack(amount)
        items = [(depth_index(amount, d), sentence) for d, sentence in needles]
        merged, tail_index = insert_items(units, items)
        return Draft(frame, merged, separator, tails, tail_index)

    return Plan(draft, minimum=0)


def noise_tails() -> tuple[str, ...]:
    """Return the noise line starting at its first, second, … sentence, as alternative tails."""
    sentences = split_sentences(NOISE_LINE)
    return tuple(" ".join(sentences[i:] + sentences[:i]) for i in range(TAIL_CHOICES))


def distractor_needle(rng: random.Random, task: NiahTask, vocabulary: Sequence[str], used: set[str]) -> str:
    """Draw a needle for a key that is not asked about, for the all-needles haystack."""
    key = distinct_items(rng, task.key_type, 1, vocabulary, used)[0]
    return needle_sentence(task.value_type, key, random_item(rng, task.value_type, vocabulary))


def chain_statements(names: list[str], value: int) -> list[str]:
    """Return the assignments of a chain: the value to the first name, then each name to the next."""
    statements = [f"VAR {names[0]} = {value}"]
    statements += [f"VAR {name} = VAR {previous}" for previous, name in zip(names, names[1:])]
    return statements


def vt_question(value: int) -> str:
    return f"Which variables are assigned the value {value}? Name all of them."


def vt_prefix(count: int, value: int) -> str:
    return f"Following the assignments, {count} variables hold the value {value}. They are:"


def chain_document(rng: random.Random, statements: list[str], lines: int) -> tuple[list[str], int]:
    """Return noise lines with the statements at distinct sorted random gaps, and the tail index.

    ``lines + 1`` must be at least the number of statements.
    """
    positions = sorted(rng.sample(range(lines + 1), len(statements)))
    return insert_items([NOISE_LINE] * lines, list(zip(positions, statements)))


def vt_plan(task: VariableTrackingTask, generator: "RulerGenerator", seed: str, length: int) -> Plan:
    """Plan a vt sample: one chain of ``num_hops + 1`` five-letter names, after a one-shot example."""
    rng = random.Random(seed)
    value = rng.randint(10_000, 99_999)
    names = variable_names(rng, task.num_hops + 1, letters=5)
    statements = chain_statements(names, value)

    example_value = rng.randint(10_000, 99_999)
    example_names = variable_names(rng, task.num_hops + 1, letters=3)
    example_tokens = min(500, length // 8)
    # Each statement needs its own gap between lines, so the example has at least one line per statement.
    example_lines = max(len(statements), round(example_tokens / generator.count_tokens(NOISE_LINE + "\n")))
    example_units, _ = chain_document(rng, chain_statements(example_names, example_value), example_lines)
    instruction = (
        "Memorize every variable assignment in the document below, because a question about them follows.\n\n"
        "Example:\n"
        + "\n".join(example_units)
        + f"\nQuestion: {vt_question(example_value)}\n"
        + f"Answer: {vt_prefix(len(example_names), example_value)} {' '.join(example_names)}"
    )
    frame = Frame(instruction, vt_question(value), vt_prefix(len(names), value), tuple(names))

    def draft(amount: int) -> Draft:
        units, tail_index = chain_document(random.Random(f"{seed}:{amount}"), statements, amount)
        return Draft(frame, units, "\n", noise_tails(), tail_index)

    return Plan(draft, minimum=len(statements))


def numbered(words: Sequence[str], start: int = 1) -> list[str]:
    """Return the entries ``"1. w"``, ``"2. w"``, … of a numbered word list."""
    return [f"{start + index}. {word}" for index, word in enumerate(words)]


def word_list(rng: random.Random, words: Sequence[str], common: int, freq_common: int, freq_rare: int) -> list[str]:
    """Repeat the first ``common`` words ``freq_common`` times and the rest ``freq_rare`` times, shuffled."""
    entries = [word for word in words[:common] for _ in range(freq_common)]
    entries += [word for word in words[common:] for _ in range(freq_rare)]
    rng.shuffle(entries)
    return entries


def cwe_plan(task: CommonWordsTask, generator: "RulerGenerator", seed: str, length: int) -> Plan:
    """Plan a cwe sample: RULER's frequencies 30/3 (example 40 words, 10/3), or 6/1 (20 words, 3/1) below 4096."""
    rng = random.Random(seed)
    vocabulary = list(generator.haystack.vocabulary)
    rng.shuffle(vocabulary)
    if length >= 4096:
        freq_common, freq_rare, example_size, example_common, example_rare = 30, 3, 40, 10, 3
    else:
        freq_common, freq_rare, example_size, example_common, example_rare = 6, 1, 20, 3, 1
    k = task.num_common
    example_words = vocabulary[-example_size:]
    words = vocabulary[: len(vocabulary) - example_size]
    example = numbered(word_list(rng, example_words, k, example_common, example_rare))
    question = f"What are the {k} most frequent words in the list?"
    prefix = f"The {k} most frequent words in the list are:"
    instruction = (
        "The document below is a numbered list of words. A few words occur far more often than the others; "
        "remember which ones.\n\nExample:\n"
        + "\n".join(example)
        + f"\nQuestion: {question}\nAnswer: {prefix} {', '.join(example_words[:k])}"
    )
    frame = Frame(instruction, question, prefix, tuple(words[:k]))

    def draft(amount: int) -> Draft:
        entries = numbered(word_list(random.Random(f"{seed}:{amount}"), words[:amount], k, freq_common, freq_rare))
        tails = tuple(
            "\n".join(numbered(words[start : start + TAIL_WORDS], start=len(entries) + 1))
            for start in range(amount, amount + TAIL_WORDS * TAIL_CHOICES, TAIL_WORDS)
        )
        return Draft(frame, entries, "\n", tails, len(entries))

    reason = f"the haystack vocabulary has only {len(vocabulary)} distinct words; add more text to the haystack folder"
    return Plan(draft, minimum=k + 1, maximum=len(words) - TAIL_WORDS * TAIL_CHOICES, limit_reason=reason)


def zipf_counts(total: int, ranks: int, alpha: float) -> list[int]:
    """Return ``floor(total * k**-alpha / zeta(alpha))`` for ranks k = 1..``ranks``."""
    zeta = sum(k**-alpha for k in range(1, 100_000)) if alpha != 2.0 else math.pi**2 / 6
    return [int(total * k**-alpha / zeta) for k in range(1, ranks + 1)]


def fwe_plan(task: FrequentWordsTask, generator: "RulerGenerator", seed: str, length: int) -> Plan:
    """Plan an fwe sample: ``(length - 50) // 50`` coded words whose rank-1 word is shown as ``...``."""
    rng = random.Random(seed)
    vocab_size = max(5, (length - 50) // 50)
    coded = coded_words(rng, vocab_size + TAIL_WORDS * TAIL_CHOICES)
    ranked, tail_words = coded[:vocab_size], coded[vocab_size:]
    frame = Frame(
        "The document below is a text of coded words separated by spaces. Count how often each coded word occurs.",
        "Ignore the dots '...'. Which three coded words occur most often in the text? Give no explanation.",
        "The three most frequent coded words in the text are:",
        tuple(ranked[1:4]),
    )
    tails = tuple(" ".join(tail_words[i : i + TAIL_WORDS]) for i in range(0, len(tail_words), TAIL_WORDS))

    def draft(amount: int) -> Draft:
        counts = zipf_counts(amount, vocab_size, task.alpha)
        words = ["..."] * counts[0]
        for word, count in zip(ranked[1:], counts[1:]):
            words.extend([word] * count)
        random.Random(f"{seed}:{amount}").shuffle(words)
        return Draft(frame, words, " ", tails, len(words))

    # With fewer words, rank 4 can tie with rank 5 or with the tail words, which occur once.
    # At 100 words the counts of ranks 2 to 5 are 15, 6, 3 and 2.
    return Plan(draft, minimum=100)


# ---------------------------------------------------------------------------
# Length fitting
# ---------------------------------------------------------------------------


NO_TAIL = Cut(0, 0)


@dataclass(frozen=True)
class FitResult:
    """A fitted prompt: the haystack amount, the prompt ids, the draft and the tail cut."""

    amount: int
    ids: list[int]
    draft: Draft
    cut: Cut


@dataclass
class Fitter:
    """Finds the haystack amount and tail cut whose prompt has ``target`` tokens.

    ``encode`` maps a draft and a cut to prompt ids. Results are cached, so
    each (amount, inserted tail text) is encoded once.
    """

    plan: Plan
    encode: Callable[[Draft, Cut], list[int]]
    target: int
    _drafts: dict[int, Draft] = field(default_factory=dict)
    _ids: dict[tuple[int, str], list[int]] = field(default_factory=dict)

    def draft(self, amount: int) -> Draft:
        if amount not in self._drafts:
            self._drafts[amount] = self.plan.draft(amount)
        return self._drafts[amount]

    def ids(self, amount: int, cut: Cut = NO_TAIL) -> list[int]:
        draft = self.draft(amount)
        key = (amount, draft.piece(cut))
        if key not in self._ids:
            self._ids[key] = self.encode(draft, cut)
        return self._ids[key]

    def fits(self, amount: int) -> bool:
        if self.plan.maximum is not None and amount > self.plan.maximum:
            return False
        return len(self.ids(amount)) <= self.target

    def largest_amount(self, guess: int) -> int:
        """Return the largest amount whose prompt without a tail fits, galloping from ``guess``."""
        minimum = self.plan.minimum
        if not self.fits(minimum):
            raise ValueError(f"needs at least {len(self.ids(minimum))} prompt tokens")
        low = max(minimum, guess)
        if self.fits(low):
            step = max(1, low // 16)
            while self.fits(low + step):
                low += step
                step *= 2
            high = low + step
        else:
            high = low
            step = max(1, high // 16)
            low = max(minimum, high - step)
            while not self.fits(low):
                high = low
                step *= 2
                low = max(minimum, high - step)
        while high - low > 1:
            middle = (low + high) // 2
            if self.fits(middle):
                low = middle
            else:
                high = middle
        return low

    def best_cut(self, amount: int, choice: int, from_end: bool) -> Cut:
        """Return the cut of tail ``choice`` whose prompt is exact, or else the longest within the target.

        A binary search over the characters kept assumes the count grows with
        them; ``CUT_SCAN`` characters on each side of its answer are then
        checked, because merges can make the count step back or skip.
        """
        tail = self.draft(amount).tails[choice]

        def count(chars: int) -> int:
            return len(self.ids(amount, Cut(choice, chars, from_end)))

        low, high = 0, len(tail)
        if count(high) <= self.target:
            low = high
        while high - low > 1:
            middle = (low + high) // 2
            if count(middle) <= self.target:
                low = middle
            else:
                high = middle
        if count(low) == self.target:
            return Cut(choice, low, from_end)
        nearby = range(max(0, low - CUT_SCAN), min(len(tail), low + CUT_SCAN) + 1)
        fitting = [chars for chars in nearby if count(chars) <= self.target]
        best = max(fitting, key=lambda chars: (count(chars), -abs(chars - low)), default=0)
        return Cut(choice, best, from_end)

    def fit(self, guess: int) -> FitResult:
        """Return the exact fit, or else the closest one below the target.

        Tries the start and then the end of each tail of the
        ``AMOUNTS_TRIED`` largest amounts that fit, stopping at the first
        exact prompt.
        """
        amount = self.largest_amount(guess)
        best: FitResult | None = None
        for candidate in range(amount, max(self.plan.minimum, amount - AMOUNTS_TRIED + 1) - 1, -1):
            tails = len(self.draft(candidate).tails)
            for choice, from_end in [(choice, from_end) for from_end in (False, True) for choice in range(tails)]:
                cut = self.best_cut(candidate, choice, from_end)
                ids = self.ids(candidate, cut)
                if best is None or len(ids) > len(best.ids):
                    best = FitResult(candidate, ids, self.draft(candidate), cut)
                if len(ids) == self.target:
                    return best
        assert best is not None, "the minimum amount fits, so there is a candidate"
        return best


# ---------------------------------------------------------------------------
# The generator
# ---------------------------------------------------------------------------


class RulerGenerator:
    """Builds RULER-style samples for one tokenizer and haystack.

    ``seed`` is the base seed; every sample derives its own from it and the
    task, length and index. ``system`` is an optional system prompt, and
    ``answer_prefix=False`` ends the prompt at the generation prompt instead
    of RULER's answer prefix.
    """

    def __init__(
        self,
        tokenizer,
        haystack: HaystackText | Path,
        seed: int = 42,
        system: str | None = None,
        answer_prefix: bool = True,
    ) -> None:
        self.tokenizer = tokenizer
        self.haystack = haystack if isinstance(haystack, HaystackText) else HaystackText(Path(haystack))
        self.seed = seed
        self.system = system
        self.answer_prefix = answer_prefix
        self._chat = bool(getattr(tokenizer, "chat_template", None))
        # The last fitted amount per (task, length): the next sample's starting guess.
        self._guesses: dict[tuple[str, int], int] = {}

    def count_tokens(self, text: str) -> int:
        """Return the number of tokens of ``text`` without special tokens."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode(self, frame: Frame, document: str) -> list[int]:
        """Return the prompt ids: the chat-wrapped instruction, document and question, then the answer prefix."""
        documents = [PromptDocument(DOCUMENT_NAME, document)]
        messages = chat_messages(documents, frame.question, frame.instruction, self.system)
        ids = list(encode_prompt(self.tokenizer, messages))
        if self.answer_prefix and frame.answer_prefix:
            # Without a chat template the prompt ends in "Answer:", so the prefix needs a space.
            prefix = frame.answer_prefix if self._chat else " " + frame.answer_prefix
            ids += self.tokenizer(prefix, add_special_tokens=False)["input_ids"]
        return ids

    def sample(self, task: str, length: int, index: int, count: int) -> RulerSample:
        """Build sample ``index`` of ``count`` for ``task`` at sequence length ``length``.

        Raises ValueError for an unknown task, an index outside the count, a
        length too short for the task's fixed text, or a haystack that runs
        out (cwe needs many distinct words).
        """
        if task not in TASKS:
            raise ValueError(f"task={task!r} is unknown: use one of {', '.join(TASKS)}")
        if not 0 <= index < count:
            raise ValueError(f"index={index} is invalid for {count} samples: use 0 to {count - 1}")
        spec = TASKS[task]
        target = length - spec.max_new_tokens
        if target < 1:
            raise ValueError(f"length={length} is invalid for {task}: use more than {spec.max_new_tokens} tokens")
        depth = spread_depths(count)[index]
        seed = f"{self.seed}:{task}:{length}:{index}"
        plan = spec.plan(self, seed, length, depth)
        fitter = Fitter(plan, lambda draft, cut: self.encode(draft.frame, draft.document(cut)), target)
        guess = self._guesses.get((task, length)) or self.estimate_amount(fitter)
        try:
            fitted = fitter.fit(guess)
        except ValueError as error:
            raise ValueError(f"length={length} is too short for {task}: it {error}; use a longer length") from None
        self._guesses[(task, length)] = fitted.amount
        ids, draft = fitted.ids, fitted.draft
        shortfall = target - len(ids)
        if shortfall > LENGTH_TOLERANCE:
            reason = plan.limit_reason if plan.maximum is not None and fitted.amount >= plan.maximum else (
                "this tokenizer leaves no cut closer to the target"
            )
            raise ValueError(
                f"{task} at length={length}: the closest prompt has {len(ids)} tokens, {shortfall} short of "
                f"{target}, more than the tolerance of {LENGTH_TOLERANCE}; {reason}"
            )
        return RulerSample(
            task=task,
            length=length,
            index=index,
            prompt_ids=ids,
            outputs=draft.frame.outputs,
            max_new_tokens=spec.max_new_tokens,
            metric=spec.metric,
            target_tokens=target,
            depth=depth if spec.uses_depth else None,
            document=draft.document(fitted.cut),
            question=draft.frame.question,
            answer_prefix=draft.frame.answer_prefix if self.answer_prefix else "",
        )

    def samples(self, task: str, length: int, count: int) -> list[RulerSample]:
        """Build all ``count`` samples of ``task`` at ``length``."""
        return [self.sample(task, length, index, count) for index in range(count)]

    @staticmethod
    def estimate_amount(fitter: Fitter) -> int:
        """Estimate the fitting amount from the prompt lengths at two small amounts."""
        low = fitter.plan.minimum
        high = low + 16
        if fitter.plan.maximum is not None:
            high = min(high, fitter.plan.maximum)
        if high <= low:
            return low
        low_tokens = len(fitter.ids(low))
        per_unit = max(1e-6, (len(fitter.ids(high)) - low_tokens) / (high - low))
        return max(low, int(low + (fitter.target - low_tokens) / per_unit))
