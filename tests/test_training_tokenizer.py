"""Tests for the built-in model's tokenizer trainer, on small synthetic books."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from synthetic_books import write_books
from transformers import AutoTokenizer

from wavefilter_cli.prompt import PromptDocument, chat_messages, encode_prompt
from wavefilter_cli.training.tokenizer import SPECIAL_TOKENS, main, train_tokenizer

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "wavefilter_cli" / "builtin_model"
TINY_VOCAB = 400


@pytest.fixture(scope="module")
def books(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_books(tmp_path_factory.mktemp("books"), books=2, paragraphs=20)


@pytest.fixture(scope="module")
def tokenizer_dir(books: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tokenizer(tmp_path_factory.mktemp("tokenizer"), books, vocab_size=TINY_VOCAB, seed=0)


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir: Path):
    return AutoTokenizer.from_pretrained(tokenizer_dir)


def test_books_are_small(books: Path) -> None:
    size = sum(path.stat().st_size for path in books.glob("*.txt"))
    assert 2_000 < size < 20_000


def test_folder_has_transformers_files(tokenizer_dir: Path) -> None:
    names = {path.name for path in tokenizer_dir.iterdir()}
    assert {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"} <= names


def test_config_names_portable_class(tokenizer_dir: Path) -> None:
    config = json.loads((tokenizer_dir / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert "{% for message in messages %}" in config["chat_template"]
    assert config["mask_token"] == "<|mdm_mask|>"


def test_vocab_size(tokenizer) -> None:
    assert len(tokenizer) == TINY_VOCAB


def test_special_ids_are_fixed(tokenizer) -> None:
    for token_id, token in enumerate(SPECIAL_TOKENS):
        assert tokenizer.convert_tokens_to_ids(token) == token_id


def test_special_token_roles(tokenizer) -> None:
    assert tokenizer.bos_token == "<|startoftext|>"
    assert tokenizer.bos_token_id == 0
    assert tokenizer.eos_token_id == 1
    assert tokenizer.pad_token_id == 2
    assert tokenizer.mask_token_id == 4
    assert tokenizer.pad_token_id != tokenizer.eos_token_id


def test_no_special_tokens_added_to_plain_text(tokenizer) -> None:
    ids = tokenizer("hello there")["input_ids"]
    assert all(token_id >= len(SPECIAL_TOKENS) for token_id in ids)


def test_digits_are_single_tokens(tokenizer) -> None:
    tokens = tokenizer.tokenize("code 4817 and 2024290")
    digit_tokens = [token for token in tokens if any(ch.isdigit() for ch in token)]
    assert digit_tokens == list("48172024290")


@pytest.mark.parametrize(
    "text",
    [
        "The passcode for the north gate is 4817.",
        "Line one\nline two\n\n  indented  twice,\tand a tab.",
        "Unicode: café — naïve “quotes” 東京 🙂",
        "VAR QXK = 58213. VAR PLM = VAR QXK.",
        "",
        "   leading and trailing spaces   ",
    ],
)
def test_round_trip(tokenizer, text: str) -> None:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text


def test_special_strings_encode_as_one_token(tokenizer) -> None:
    ids = tokenizer("answer<|eot_id|><|endoftext|>", add_special_tokens=False)["input_ids"]
    assert ids[-2:] == [3, 1]
    assert tokenizer.decode(ids) == "answer<|eot_id|><|endoftext|>"


def test_chat_template_text(tokenizer) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "  Hi there \n"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|startoftext|>"
        "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_chat_template_without_generation_prompt(tokenizer) -> None:
    messages = [{"role": "user", "content": "Hi"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    assert text == "<|startoftext|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"


def test_encode_prompt_has_one_bos(tokenizer) -> None:
    messages = chat_messages([PromptDocument("notes.txt", "Some text.")], "What is it?")
    ids = encode_prompt(tokenizer, messages)
    assert ids[0] == tokenizer.bos_token_id
    assert ids.count(tokenizer.bos_token_id) == 1
    assert tokenizer.decode(ids).endswith("<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")


def test_training_is_deterministic(books: Path, tokenizer_dir: Path, tmp_path: Path) -> None:
    again = train_tokenizer(tmp_path / "again", books, vocab_size=TINY_VOCAB, seed=0)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        assert (again / name).read_bytes() == (tokenizer_dir / name).read_bytes()


def test_vocab_size_too_small(books: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="vocab_size must be at least"):
        train_tokenizer(tmp_path / "small", books, vocab_size=100)


def test_missing_haystack_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="haystack folder not found"):
        train_tokenizer(tmp_path / "out", tmp_path / "missing", vocab_size=TINY_VOCAB)


def test_command_line_prints_folder(books: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    main(["--out", str(out), "--haystack", str(books), "--vocab-size", str(TINY_VOCAB)])
    assert capsys.readouterr().out.strip() == str(out)
    assert (out / "tokenizer.json").is_file()


def test_builtin_tokenizer_loads() -> None:
    tokenizer = AutoTokenizer.from_pretrained(BUILTIN_DIR)
    assert len(tokenizer) == 4096
    assert [tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS] == list(range(7))
    assert tokenizer.model_max_length == 1_000_000
    assert tokenizer.tokenize("4817") == ["4", "8", "1", "7"]
