"""RULER-style generators: gold answers in the text, exact prompt lengths, determinism and needle depths."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from synthetic_books import write_books
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from wavefilter_cli.eval.ruler import (
    LENGTH_TOLERANCE,
    TASKS,
    HaystackText,
    RulerGenerator,
    split_sentences,
    spread_depths,
)
from wavefilter_cli.training.tokenizer import train_tokenizer

#: Long enough for every task with the tiny tokenizer, whose tokens are short.
LENGTH = 2048
NIAH_TASKS = [name for name in TASKS if name.startswith("niah")]


@pytest.fixture(scope="module")
def books(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_books(tmp_path_factory.mktemp("books"), books=2, paragraphs=40)


@pytest.fixture(scope="module")
def tokenizer(books: Path, tmp_path_factory: pytest.TempPathFactory):
    return AutoTokenizer.from_pretrained(train_tokenizer(tmp_path_factory.mktemp("tokenizer"), books, vocab_size=400))


@pytest.fixture(scope="module")
def haystack(books: Path) -> HaystackText:
    return HaystackText(books)


@pytest.fixture(scope="module")
def generator(tokenizer, haystack: HaystackText) -> RulerGenerator:
    return RulerGenerator(tokenizer, haystack, seed=7)


@pytest.fixture(scope="module")
def merging_tokenizer(books: Path):
    """A byte-level BPE without a pre-tokenizer split, so its merges cross spaces and sentence ends."""
    text = "\n".join(path.read_text() for path in sorted(books.glob("*.txt")))
    model = Tokenizer(models.BPE())
    model.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    model.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False, max_token_length=10
    )
    model.train_from_iterator([text[i : i + 1000] for i in range(0, len(text), 1000)], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=model)


@pytest.mark.parametrize("task", list(TASKS))
def test_prompt_length_exact(generator: RulerGenerator, task: str) -> None:
    for index in range(2):
        sample = generator.sample(task, LENGTH, index, 2)
        assert len(sample.prompt_ids) == LENGTH - TASKS[task].max_new_tokens
        assert sample.shortfall == 0


@pytest.mark.parametrize("task", list(TASKS))
def test_gold_strings_in_prompt(generator: RulerGenerator, tokenizer, task: str) -> None:
    sample = generator.sample(task, LENGTH, 1, 3)
    prompt = tokenizer.decode(sample.prompt_ids)
    assert sample.outputs
    for gold in sample.outputs:
        assert gold in sample.document
    assert sample.document.strip() in prompt
    assert prompt.endswith(sample.answer_prefix)


@pytest.mark.parametrize("task", ["niah_single_2", "niah_multikey_3", "vt", "cwe", "fwe"])
def test_same_seed_same_sample(tokenizer, haystack: HaystackText, task: str) -> None:
    first = RulerGenerator(tokenizer, haystack, seed=3).sample(task, LENGTH, 2, 4)
    second = RulerGenerator(tokenizer, haystack, seed=3).sample(task, LENGTH, 2, 4)
    assert first.prompt_ids == second.prompt_ids
    assert first.outputs == second.outputs


def test_other_seed_or_index_differs(tokenizer, haystack: HaystackText) -> None:
    base = RulerGenerator(tokenizer, haystack, seed=3).sample("niah_single_2", 1024, 0, 4)
    other_seed = RulerGenerator(tokenizer, haystack, seed=4).sample("niah_single_2", 1024, 0, 4)
    other_index = RulerGenerator(tokenizer, haystack, seed=3).sample("niah_single_2", 1024, 1, 4)
    assert base.outputs != other_seed.outputs
    assert base.outputs != other_index.outputs


def test_spread_depths_even() -> None:
    assert spread_depths(5) == [0.0, 25.0, 50.0, 75.0, 100.0]
    assert spread_depths(1) == [50.0]


@pytest.mark.parametrize("task", ["niah_single_1", "niah_single_2", "niah_multikey_2"])
def test_needle_depths_follow_samples(generator: RulerGenerator, task: str) -> None:
    count = 5
    samples = generator.samples(task, 1024, count)
    assert [sample.depth for sample in samples] == spread_depths(count)
    positions = [sample.document.index(sample.outputs[0]) / len(sample.document) for sample in samples]
    assert positions == sorted(positions)
    assert positions[0] < 0.1
    assert positions[-1] > 0.9


def test_non_niah_tasks_have_no_depth(generator: RulerGenerator) -> None:
    assert generator.sample("cwe", LENGTH, 0, 2).depth is None


def test_multivalue_golds_are_four_values(generator: RulerGenerator) -> None:
    sample = generator.sample("niah_multivalue", LENGTH, 0, 1)
    assert len(sample.outputs) == 4
    assert len(set(sample.outputs)) == 4
    assert "are:" in sample.answer_prefix


def test_single_needle_wording_is_singular(generator: RulerGenerator) -> None:
    sample = generator.sample("niah_single_1", 1024, 0, 1)
    assert re.fullmatch(r"\d{7}", sample.outputs[0])
    assert sample.answer_prefix.endswith("is:")


def test_uuid_values(generator: RulerGenerator) -> None:
    sample = generator.sample("niah_single_3", 1024, 0, 1)
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", sample.outputs[0])


def test_vt_chain_links_every_name(generator: RulerGenerator) -> None:
    sample = generator.sample("vt", LENGTH, 0, 1)
    names = sample.outputs
    assert len(names) == 5
    lines = sample.document.split("\n")
    first = [line for line in lines if line.startswith(f"VAR {names[0]} = ")]
    assert len(first) == 1
    assert first[0].split(" = ")[1].isdigit()
    for previous, name in zip(names, names[1:]):
        assert f"VAR {name} = VAR {previous}" in lines


def test_cwe_common_words_most_frequent(generator: RulerGenerator) -> None:
    sample = generator.sample("cwe", LENGTH, 0, 1)
    counts = Counter(line.split(". ", 1)[1] for line in sample.document.split("\n") if ". " in line)
    # Below length 4096 the common words appear 6 times and the others at most once.
    for word in sample.outputs:
        assert counts[word] == 6
    assert max(count for word, count in counts.items() if word not in sample.outputs) <= 1
    assert len(sample.outputs) == 10


def test_fwe_gold_are_top_three_coded_words(generator: RulerGenerator) -> None:
    sample = generator.sample("fwe", LENGTH, 0, 1)
    counts = Counter(word for word in sample.document.split(" ") if word != "...")
    assert [word for word, _ in counts.most_common(3)] == list(sample.outputs)
    assert counts.most_common(4)[2][1] > counts.most_common(4)[3][1]


@pytest.mark.parametrize("task", ["niah_single_2", "niah_multikey_2", "vt", "cwe", "fwe"])
def test_merging_tokenizer_fits(merging_tokenizer, haystack: HaystackText, task: str) -> None:
    generator = RulerGenerator(merging_tokenizer, haystack, seed=1)
    for index in range(3):
        sample = generator.sample(task, LENGTH, index, 3)
        assert 0 <= sample.shortfall <= LENGTH_TOLERANCE
        assert len(sample.prompt_ids) == LENGTH - TASKS[task].max_new_tokens - sample.shortfall


def test_too_short_length_rejected(generator: RulerGenerator) -> None:
    with pytest.raises(ValueError, match="too short for vt"):
        generator.sample("vt", 200, 0, 1)


def test_unknown_task_rejected(generator: RulerGenerator) -> None:
    with pytest.raises(ValueError, match="task='qa_1' is unknown"):
        generator.sample("qa_1", LENGTH, 0, 1)


def test_index_outside_count_rejected(generator: RulerGenerator) -> None:
    with pytest.raises(ValueError, match="index=3 is invalid for 3 samples"):
        generator.sample("niah_single_1", LENGTH, 3, 3)


def test_split_sentences_keeps_titles() -> None:
    text = "Mr. Smith went home. He left! 'Yes,' she said? Then J. Doe came. the end"
    assert split_sentences(text) == ["Mr. Smith went home.", "He left!", "'Yes,' she said?", "Then J. Doe came. the end"]


def test_missing_haystack_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="haystack folder not found"):
        HaystackText(tmp_path / "missing")


def test_haystack_without_text_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no \\*.txt files"):
        HaystackText(tmp_path)


def test_real_books_builtin_tokenizer(haystack_dir: Path) -> None:
    builtin = AutoTokenizer.from_pretrained(Path(__file__).resolve().parent.parent / "wavefilter_cli" / "builtin_model")
    generator = RulerGenerator(builtin, haystack_dir)
    for task in ("niah_single_2", "cwe"):
        sample = generator.sample(task, 4096, 0, 1)
        assert len(sample.prompt_ids) == 4096 - TASKS[task].max_new_tokens
