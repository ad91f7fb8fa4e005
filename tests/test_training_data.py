"""Tests for the look-up training data: haystack splits, exact-length prompts, answers and batches.

Most tests run on synthetic books written to a temporary folder, with a
tokenizer trained on them. ``test_shared_haystack_exact_lengths`` runs on the
public-domain books and the built-in tokenizer, and skips when the books are
missing.
"""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from synthetic_books import write_books
from transformers import AutoTokenizer

from wavefilter_cli.prompt import ASK_INSTRUCTION, PromptDocument, chat_messages, encode_prompt
from wavefilter_cli.training.batch import collate
from wavefilter_cli.training.data import TASKS, Sample, SampleGenerator, check_tokenizer
from wavefilter_cli.training.haystack import DEFAULT_HAYSTACK_DIR, Haystack, normalize_book, split_paragraphs
from wavefilter_cli.training.tokenizer import train_tokenizer

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "wavefilter_cli" / "builtin_model"
QUESTION_TASKS = tuple(task for task in TASKS if task != "mlm")
NIAH_TASKS = ("niah_single", "niah_multikey", "niah_multivalue", "niah_multiquery")
#: Smallest prompt length at which every task builds with the test tokenizer.
ALL_TASKS_LENGTH = 200


@pytest.fixture(scope="module")
def books(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_books(tmp_path_factory.mktemp("books"))


@pytest.fixture(scope="module")
def tokenizer(books: Path, tmp_path_factory: pytest.TempPathFactory):
    folder = train_tokenizer(tmp_path_factory.mktemp("tokenizer"), books, vocab_size=4096, seed=0)
    return AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="module")
def haystack(books: Path) -> Haystack:
    return Haystack(books)


@pytest.fixture(scope="module")
def train_generator(tokenizer, haystack: Haystack) -> SampleGenerator:
    return SampleGenerator(tokenizer, haystack, split="train")


@pytest.fixture(scope="module")
def eval_generator(tokenizer, haystack: Haystack) -> SampleGenerator:
    return SampleGenerator(tokenizer, haystack, split="eval")


def flat(text: str) -> str:
    """Collapse every run of whitespace to one space."""
    return " ".join(text.split())


def answer_values(sample: Sample) -> list[str]:
    # Single and multi-key answers restate the fact sentence; the others list values.
    if sample.task in ("niah_single", "niah_multikey"):
        return [sample.answer_text.rsplit(" is ", 1)[1].removesuffix(".")]
    return sample.answer_text.split(", ")


# --- haystack -------------------------------------------------------------------------------


def test_normalize_book_keeps_lines() -> None:
    raw = "Title\r\n\r\nFirst  line\nsecond\tline  \n\n\n  Next para.\n"
    assert normalize_book(raw) == ["Title", "First line\nsecond line", "Next para."]


def test_normalize_book_unwraps_lines() -> None:
    raw = "First line\nsecond line\n \nNext para."
    assert normalize_book(raw, unwrap_lines=True) == ["First line second line", "Next para."]


def test_split_paragraphs_partition() -> None:
    paragraphs = [f"paragraph {index} " + "x" * (index % 7) * 10 for index in range(40)]
    train = split_paragraphs(paragraphs, "train")
    evaluation = split_paragraphs(paragraphs, "eval")
    assert train + evaluation == paragraphs
    total = sum(len(p) for p in paragraphs)
    eval_chars = sum(len(p) for p in evaluation)
    # Eval starts at the first paragraph at or after the 90% mark.
    assert eval_chars <= 0.1 * total
    assert eval_chars + len(train[-1]) > 0.1 * total


def test_split_paragraphs_keeps_both_sides() -> None:
    assert split_paragraphs(["a" * 1000, "b"], "eval") == ["b"]
    assert split_paragraphs(["a" * 1000, "b"], "train") == ["a" * 1000]


def test_split_paragraphs_rejects_unknown_split() -> None:
    with pytest.raises(ValueError, match="split must be one of"):
        split_paragraphs(["a", "b"], "test")


def test_haystack_splits_share_no_paragraph(haystack: Haystack) -> None:
    train = haystack.paragraphs("train")
    evaluation = haystack.paragraphs("eval")
    for book in haystack.books:
        assert train[book] and evaluation[book]
        assert not set(train[book]) & set(evaluation[book])


def test_haystack_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="haystack folder not found"):
        Haystack(tmp_path / "missing")


def test_region_tokens_match_one_call(tokenizer, haystack: Haystack) -> None:
    for region in haystack.regions(tokenizer, "eval"):
        assert region.ids.tolist() == tokenizer(region.text, add_special_tokens=False)["input_ids"]
        assert region.starts[-1] == len(region.text)


def test_region_sentence_ends_follow_punctuation(tokenizer, haystack: Haystack) -> None:
    region = haystack.regions(tokenizer, "eval")[0]
    assert region.sentence_end.sum() > 20
    for index in region.sentence_end.nonzero()[0]:
        before = region.text[: region.starts[index]].rstrip("\"')]_")
        assert before[-1] in ".!?"
        assert not before.endswith(("Mr.", "Mrs.", "Dr."))


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab Z9.,!?'\"\n-é—")), min_size=2, max_size=60))
def test_cuts_split_tokens_exactly(tokenizer, text: str) -> None:
    """A cut between a non-space and a whitespace character never changes how either side tokenises."""
    whole = tokenizer(text, add_special_tokens=False)["input_ids"]
    for index in range(1, len(text)):
        if not text[index - 1].isspace() and text[index].isspace():
            left = tokenizer(text[:index], add_special_tokens=False)["input_ids"]
            right = tokenizer(text[index:], add_special_tokens=False)["input_ids"]
            assert left + right == whole, (text[:index], text[index:])


# --- exact lengths --------------------------------------------------------------------------


@pytest.mark.parametrize("length", [64, 100, 1000, 4096])
@pytest.mark.parametrize("task", ["niah_single", "mlm"])
def test_prompt_length_exact_small_tasks(train_generator: SampleGenerator, task: str, length: int) -> None:
    for seed in range(3):
        sample = train_generator.make(task, length, random.Random(seed))
        assert len(sample.prompt_ids) == length


@pytest.mark.parametrize("length", [ALL_TASKS_LENGTH, 1000, 4096])
@pytest.mark.parametrize("task", TASKS)
def test_prompt_length_exact_all_tasks(train_generator: SampleGenerator, task: str, length: int) -> None:
    for seed in range(3):
        sample = train_generator.make(task, length, random.Random(seed))
        assert len(sample.prompt_ids) == length


@pytest.mark.parametrize("task", TASKS)
def test_prompt_length_exact_eval_split(eval_generator: SampleGenerator, task: str) -> None:
    for length in (ALL_TASKS_LENGTH, 333, 4096):
        sample = eval_generator.make(task, length, random.Random(length))
        assert len(sample.prompt_ids) == length


@pytest.mark.parametrize("task", QUESTION_TASKS)
def test_prompt_length_many_seeds(train_generator: SampleGenerator, task: str) -> None:
    rng = random.Random(7)
    for _ in range(40):
        length = rng.randint(ALL_TASKS_LENGTH, 1500)
        assert len(train_generator.make(task, length, rng).prompt_ids) == length


@pytest.mark.parametrize("task", ["niah_multivalue", "vartrack", "quote"])
def test_too_short_raises_naming_length(train_generator: SampleGenerator, task: str) -> None:
    with pytest.raises(ValueError, match=r"exactly 40 tokens"):
        train_generator.make(task, 40, random.Random(0))


def test_eval_split_too_small_raises(eval_generator: SampleGenerator) -> None:
    with pytest.raises(ValueError, match="fewer than"):
        eval_generator.make("niah_single", 200_000, random.Random(0))


# --- prompt layout --------------------------------------------------------------------------


@pytest.mark.parametrize("task", QUESTION_TASKS)
def test_prompt_matches_cli_encoding(tokenizer, train_generator: SampleGenerator, task: str) -> None:
    sample = train_generator.make(task, 500, random.Random(3))
    text = tokenizer.decode(sample.prompt_ids)
    name = re.search(r"\[Document: ([^\]]+)\]", text).group(1)
    messages = chat_messages([PromptDocument(name, sample.document)], sample.question, ASK_INSTRUCTION)
    assert sample.prompt_ids == encode_prompt(tokenizer, messages)


@pytest.mark.parametrize("task", QUESTION_TASKS)
def test_question_follows_document(tokenizer, train_generator: SampleGenerator, task: str) -> None:
    sample = train_generator.make(task, 800, random.Random(4))
    text = tokenizer.decode(sample.prompt_ids)
    document_at = text.index(sample.document)
    question_at = text.index("Question: " + sample.question)
    assert document_at + len(sample.document) < question_at
    assert text.endswith(sample.question + "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")


def test_document_has_no_outer_whitespace(train_generator: SampleGenerator) -> None:
    rng = random.Random(5)
    for task in QUESTION_TASKS:
        document = train_generator.make(task, 300, rng).document
        assert document == document.strip()


# --- answers --------------------------------------------------------------------------------


@pytest.mark.parametrize("task", QUESTION_TASKS)
def test_answer_padded_with_eos(tokenizer, train_generator: SampleGenerator, task: str) -> None:
    sample = train_generator.make(task, 600, random.Random(6))
    answer = tokenizer(sample.answer_text, add_special_tokens=False)["input_ids"]
    assert len(sample.answer_ids) == 32
    assert sample.answer_ids[: len(answer)] == answer
    assert sample.answer_ids[len(answer)] == tokenizer.convert_tokens_to_ids("<|eot_id|>")
    assert set(sample.answer_ids[len(answer) + 1 :]) == {tokenizer.eos_token_id}


def test_answer_length_option(tokenizer, haystack: Haystack) -> None:
    generator = SampleGenerator(tokenizer, haystack, answer_length=48)
    sample = generator.make("niah_multiquery", 600, random.Random(0))
    assert len(sample.answer_ids) == 48


def test_answer_length_too_small(tokenizer, haystack: Haystack) -> None:
    with pytest.raises(ValueError, match="answer_length must be at least 2"):
        SampleGenerator(tokenizer, haystack, answer_length=1)


@pytest.mark.parametrize("task", NIAH_TASKS)
def test_niah_values_in_document(train_generator: SampleGenerator, task: str) -> None:
    rng = random.Random(8)
    for _ in range(20):
        sample = train_generator.make(task, rng.randint(300, 2000), rng)
        for value in answer_values(sample):
            assert re.search(rf"\bis {re.escape(value)}\.", sample.document), value
        for fact in sample.facts:
            assert fact in sample.document


def test_niah_single_fact_matches_question(train_generator: SampleGenerator) -> None:
    sample = train_generator.make("niah_single", 700, random.Random(9))
    key = sample.question.removeprefix("What is ").removesuffix("?")
    assert sample.facts == [sample.answer_text]
    assert sample.answer_text.startswith(f"{key[0].upper()}{key[1:]} is ")


def test_niah_multikey_has_distractors(train_generator: SampleGenerator) -> None:
    rng = random.Random(10)
    counts = [len(train_generator.make("niah_multikey", 2000, rng).facts) for _ in range(10)]
    assert min(counts) >= 2


def test_niah_multivalue_in_document_order(train_generator: SampleGenerator) -> None:
    rng = random.Random(11)
    for _ in range(20):
        sample = train_generator.make("niah_multivalue", 2000, rng)
        values = answer_values(sample)
        assert len(values) >= 2
        key = sample.question.removeprefix("What are all the ").removesuffix(", in the order they appear?")
        found = [fact.rsplit(" is ", 1)[1][:-1] for fact in sample.facts if fact.startswith("One ")]
        asked = [value for value in found if value in values]
        assert asked == values, key
        positions = [sample.document.index(f" is {value}.") for value in values]
        assert positions == sorted(positions)


def test_niah_multiquery_in_question_order(train_generator: SampleGenerator) -> None:
    rng = random.Random(12)
    for _ in range(20):
        sample = train_generator.make("niah_multiquery", 2000, rng)
        phrases = sample.question.removeprefix("What are ").removesuffix(", in that order?")
        keys = re.split(r", | and (?=the )", phrases)
        by_key = {fact.rsplit(" is ", 1)[0].lower(): fact.rsplit(" is ", 1)[1][:-1] for fact in sample.facts}
        assert [by_key[key.lower()] for key in keys] == answer_values(sample)


def resolve_chains(document: str) -> dict[str, str]:
    """Follow the VAR statements of ``document`` in order and return each variable's final value."""
    values: dict[str, str] = {}
    for name, source in re.findall(r"VAR ([A-Z]+) = (VAR [A-Z]+|\d+)\.", document):
        values[name] = values[source[4:]] if source.startswith("VAR ") else source
    return values


def test_vartrack_answer_correct(train_generator: SampleGenerator) -> None:
    rng = random.Random(13)
    for _ in range(30):
        sample = train_generator.make("vartrack", rng.randint(300, 3000), rng)
        value = re.search(r"the value (\d+)\?", sample.question).group(1)
        resolved = resolve_chains(sample.document)
        holding = [name for name in re.findall(r"VAR ([A-Z]+) =", sample.document) if resolved[name] == value]
        assert sample.answer_text == " ".join(holding)
        assert len(holding) >= 2


def test_vartrack_chain_in_order(train_generator: SampleGenerator) -> None:
    sample = train_generator.make("vartrack", 1500, random.Random(14))
    names = sample.answer_text.split(" ")
    positions = [sample.document.index(f"VAR {name} =") for name in names]
    assert positions == sorted(positions)


def test_quote_continuation_follows_span(train_generator: SampleGenerator) -> None:
    rng = random.Random(15)
    for _ in range(20):
        sample = train_generator.make("quote", rng.randint(300, 3000), rng)
        match = re.fullmatch(r'What are the next (\d) words after "(.+)" in the document\?', sample.question)
        count, span = int(match.group(1)), match.group(2)
        assert 5 <= len(span.split(" ")) <= 12
        assert len(sample.answer_text.split(" ")) == count
        assert flat(sample.document).count(span) == 1
        assert span + " " + sample.answer_text in flat(sample.document)


def test_mlm_is_plain_text(tokenizer, train_generator: SampleGenerator) -> None:
    sample = train_generator.make("mlm", 777, random.Random(16))
    assert sample.answer_ids == []
    assert sample.question == ""
    assert tokenizer.decode(sample.prompt_ids) == sample.document
    assert all(token_id >= 7 for token_id in sample.prompt_ids)


# --- depth ----------------------------------------------------------------------------------


def test_depth_zero_opens_document(train_generator: SampleGenerator) -> None:
    for seed in range(5):
        sample = train_generator.make("niah_single", 1000, random.Random(seed), depth=0.0)
        assert sample.document.startswith(sample.facts[0])


@pytest.mark.parametrize("depth", [0.25, 0.5, 1.0])
def test_depth_places_fact(train_generator: SampleGenerator, depth: float) -> None:
    for seed in range(5):
        sample = train_generator.make("niah_single", 2000, random.Random(seed), depth=depth)
        fraction = sample.document.index(sample.facts[0]) / len(sample.document)
        assert abs(fraction - depth) < 0.1


def test_depth_places_quote(train_generator: SampleGenerator) -> None:
    sample = train_generator.make("quote", 2000, random.Random(0), depth=0.5)
    span = re.search(r'"(.+)"', sample.question).group(1)
    fraction = flat(sample.document).index(span) / len(flat(sample.document))
    assert abs(fraction - 0.5) < 0.1


def test_depth_out_of_range(train_generator: SampleGenerator) -> None:
    with pytest.raises(ValueError, match="depth must be in"):
        train_generator.make("niah_single", 500, random.Random(0), depth=1.5)


def test_unknown_task(train_generator: SampleGenerator) -> None:
    with pytest.raises(ValueError, match="unknown task 'riddle'"):
        train_generator.make("riddle", 500, random.Random(0))


# --- reproducibility and splits -------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
def test_same_seed_same_sample(train_generator: SampleGenerator, task: str) -> None:
    first = train_generator.make(task, 900, random.Random(42))
    second = train_generator.make(task, 900, random.Random(42))
    assert first == second


@pytest.mark.parametrize("task", TASKS)
def test_different_seed_different_sample(train_generator: SampleGenerator, task: str) -> None:
    first = train_generator.make(task, 900, random.Random(1))
    second = train_generator.make(task, 900, random.Random(2))
    assert first.prompt_ids != second.prompt_ids


def test_fresh_generator_same_sample(tokenizer, books: Path, train_generator: SampleGenerator) -> None:
    fresh = SampleGenerator(tokenizer, Haystack(books), split="train")
    assert fresh.make("vartrack", 1200, random.Random(3)) == train_generator.make("vartrack", 1200, random.Random(3))


def haystack_lines(document: str, facts: list[str]) -> list[str]:
    """Return the document's lines of at least 30 characters with the inserted facts removed."""
    for fact in facts:
        document = document.replace(" " + fact, "").replace(fact, "")
    return [line for line in document.split("\n") if len(line) >= 30]


@pytest.mark.parametrize("task", ["niah_multikey", "mlm", "quote"])
def test_splits_use_disjoint_text(haystack: Haystack, train_generator, eval_generator, task: str) -> None:
    train_text = "\n\n".join(p for paragraphs in haystack.paragraphs("train").values() for p in paragraphs)
    eval_text = "\n\n".join(p for paragraphs in haystack.paragraphs("eval").values() for p in paragraphs)
    rng = random.Random(17)
    for _ in range(5):
        sample = eval_generator.make(task, 1500, rng)
        lines = haystack_lines(sample.document, sample.facts)
        assert lines
        assert all(line in eval_text and line not in train_text for line in lines)
        sample = train_generator.make(task, 1500, rng)
        lines = haystack_lines(sample.document, sample.facts)
        assert all(line in train_text and line not in eval_text for line in lines)


def test_long_eval_document_spans_books(haystack: Haystack, eval_generator: SampleGenerator) -> None:
    total = sum(region.num_tokens for region in eval_generator.regions)
    largest = max(region.num_tokens for region in eval_generator.regions)
    length = min(total - 200, largest + 1000)
    sample = eval_generator.make("niah_single", length, random.Random(18))
    assert len(sample.prompt_ids) == length
    lines = haystack_lines(sample.document, sample.facts)
    books = {
        book
        for book, paragraphs in haystack.paragraphs("eval").items()
        if any(line in "\n\n".join(paragraphs) for line in lines)
    }
    assert len(books) >= 2


def test_builds_16k_fast(train_generator: SampleGenerator) -> None:
    train_generator.make("niah_multikey", 16384, random.Random(0))
    started = time.perf_counter()
    sample = train_generator.make("niah_multikey", 16384, random.Random(1))
    elapsed = time.perf_counter() - started
    assert len(sample.prompt_ids) == 16384
    assert elapsed < 1.0


# --- tokenizer compatibility ----------------------------------------------------------------


def test_rejects_merging_tokenizer(tokenizer) -> None:
    class MergingTokenizer:
        name_or_path = "merging"

        def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
            # One token per run of "punctuation then newlines", as Llama-3-style pre-tokenizers do.
            return {"input_ids": [0] * len(re.findall(r"[.!?'\"]+\n*|\n+|[^.!?'\"\n]+", text))}

    with pytest.raises(ValueError, match="merges across the boundary"):
        check_tokenizer(MergingTokenizer())
    check_tokenizer(tokenizer)


# --- batches --------------------------------------------------------------------------------


def test_collate_same_length(train_generator: SampleGenerator) -> None:
    rng = random.Random(19)
    samples = [train_generator.make(task, 300, rng) for task in ("niah_single", "vartrack", "quote")]
    batch = collate(samples, pad_id=2)
    assert batch.input_ids.shape == (3, 332)
    assert batch.input_ids.dtype == torch.long
    assert batch.loss_region.dtype == torch.bool
    assert bool(batch.attention_mask.all())
    assert not batch.loss_region[:, :300].any()
    assert bool(batch.loss_region[:, 300:].all())
    assert batch.input_ids[0].tolist() == samples[0].prompt_ids + samples[0].answer_ids


def test_collate_pads_and_marks_mlm(train_generator: SampleGenerator) -> None:
    rng = random.Random(20)
    question = train_generator.make("niah_single", 300, rng)
    text = train_generator.make("mlm", 250, rng)
    batch = collate([question, text], pad_id=2)
    assert batch.input_ids.shape == (2, 332)
    assert batch.input_ids[1, 250:].tolist() == [2] * 82
    assert bool(batch.loss_region[1, :250].all())
    assert not batch.loss_region[1, 250:].any()
    assert not batch.attention_mask[1, 250:].any()
    assert bool(batch.attention_mask[1, :250].all())
    assert int(batch.loss_region[0].sum()) == 32


def test_collate_empty() -> None:
    with pytest.raises(ValueError, match="at least one sample"):
        collate([], pad_id=2)


# --- public-domain books --------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_generators() -> dict[str, SampleGenerator]:
    if not DEFAULT_HAYSTACK_DIR.is_dir():
        pytest.skip(f"haystack books not found at {DEFAULT_HAYSTACK_DIR}")
    tokenizer = AutoTokenizer.from_pretrained(BUILTIN_DIR)
    haystack = Haystack(DEFAULT_HAYSTACK_DIR)
    return {split: SampleGenerator(tokenizer, haystack, split=split) for split in ("train", "eval")}


@pytest.mark.parametrize("split", ["train", "eval"])
def test_shared_haystack_exact_lengths(shared_generators: dict[str, SampleGenerator], split: str) -> None:
    generator = shared_generators[split]
    rng = random.Random(21)
    for task in TASKS:
        for length in (128, 4096, 16384):
            assert len(generator.make(task, length, rng).prompt_ids) == length
    assert len(generator.make("niah_single", 64, rng).prompt_ids) == 64
