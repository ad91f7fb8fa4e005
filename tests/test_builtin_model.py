"""The shipped built-in model: it loads through ``load_model`` and answers a planted-fact question."""

from __future__ import annotations

import re

import pytest

from wavefilter_cli.cache import build_cache
from wavefilter_cli.demo import build_demo_document
from wavefilter_cli.generation import Finished, GenerationConfig, generate
from wavefilter_cli.models import load_model, load_tokenizer
from wavefilter_cli.prompt import PromptDocument, chat_messages, encode_prompt


@pytest.fixture(scope="module")
def builtin():
    model = load_model("builtin", device="cpu")
    return model, load_tokenizer(model.checkpoint_dir, model.config)


def test_builtin_loads_as_llada(builtin) -> None:
    model, tokenizer = builtin
    assert type(model).__name__ == "LLaDAModelLM"
    assert model.config.context_window == 4096
    assert tokenizer.mask_token_id == model.config.mask_token_id


def answer(model, tokenizer, text: str, question: str) -> tuple[str, int]:
    """Return the dense-attention answer to ``question`` about ``text`` and the prompt length in tokens."""
    messages = chat_messages([PromptDocument("python-topics.txt", text)], question)
    prompt_ids = encode_prompt(tokenizer, messages)
    config = GenerationConfig(max_tokens=32, block_length=32)
    events = generate(model, tokenizer, prompt_ids, config, build_cache("none"))
    finished = next(event for event in events if isinstance(event, Finished))
    return finished.answer.strip(), len(prompt_ids)


def test_builtin_answers_planted_fact(builtin) -> None:
    model, tokenizer = builtin
    document = build_demo_document(tokenizer, min_tokens=1000, planted=(0,))
    fact = document.facts[0]
    reply, prompt_tokens = answer(model, tokenizer, document.text, fact.question)
    assert 1000 <= prompt_tokens <= 1400
    assert fact.is_correct(reply), reply


def test_builtin_restates_key_among_facts(builtin) -> None:
    # NOTE: with three facts of one sentence pattern in this documentation text the shipped checkpoint
    # often copies another fact's value or invents one (docs/builtin-model.md), so this checks the key
    # and that a number follows.
    model, tokenizer = builtin
    document = build_demo_document(tokenizer, min_tokens=1000)
    fact = document.facts[0]
    reply, _ = answer(model, tokenizer, document.text, fact.question)
    key = fact.question.removeprefix("What is the ").removesuffix("?")
    assert re.fullmatch(rf"The {re.escape(key)} is \d+\.", reply), reply


def test_demo_document_plants_chosen_facts(builtin) -> None:
    _, tokenizer = builtin
    everything = build_demo_document(tokenizer, min_tokens=1000)
    single = build_demo_document(tokenizer, min_tokens=1000, planted=(1,))
    assert [fact.depth for fact in everything.facts] == [0.2, 0.5, 0.8]
    assert single.facts == [everything.facts[1]]
    assert everything.facts[1].sentence in single.text
    assert everything.facts[0].sentence not in single.text
