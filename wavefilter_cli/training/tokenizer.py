"""Train the built-in model's byte-level BPE tokenizer and save it for ``AutoTokenizer``.

The tokenizer learns its merges from the train split of the haystack books
(see ``haystack.py``) plus synthetic task sentences from ``facts.py``, so the
key phrases, ``VAR`` and the question forms get tokens of their own. Digits
are always split one per token, which lets the model copy numbers token by
token. The seven special tokens take ids 0 to 6 in ``SPECIAL_TOKENS`` order,
and the chat template follows the LLaDA-Instruct layout.

Run ``python -m wavefilter_cli.training.tokenizer --out DIR --haystack DIR``.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Iterator

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from wavefilter_cli.prompt import ASK_INSTRUCTION, SUMMARIZE_INSTRUCTION
from wavefilter_cli.training.facts import synthetic_sentences
from wavefilter_cli.training.haystack import DEFAULT_HAYSTACK_DIR, load_books, split_paragraphs

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
EOT_TOKEN = "<|eot_id|>"
MASK_TOKEN = "<|mdm_mask|>"
START_HEADER_TOKEN = "<|start_header_id|>"
END_HEADER_TOKEN = "<|end_header_id|>"

#: Special tokens in id order: each one's index is its token id.
SPECIAL_TOKENS: tuple[str, ...] = (
    BOS_TOKEN,
    EOS_TOKEN,
    PAD_TOKEN,
    EOT_TOKEN,
    MASK_TOKEN,
    START_HEADER_TOKEN,
    END_HEADER_TOKEN,
)

DEFAULT_VOCAB_SIZE = 4096
#: Synthetic task sentences added to the books when training the merges.
SYNTHETIC_SENTENCES = 5000
#: Copies of each prompt scaffolding text in the training corpus.
SCAFFOLDING_REPEATS = 500
#: Roles the chat template writes between the header tokens.
CHAT_ROLES = ("system", "user", "assistant")
#: Far above any prompt the project builds, so ``transformers`` does not warn about long documents.
MODEL_MAX_LENGTH = 1_000_000

#: LLaDA-Instruct chat layout: BOS once, then one header-delimited turn per
#: message with trimmed content, then an open assistant header on request.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}"
    "{{ message['content'] | trim }}"
    "{{ '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)


def build_tokenizer() -> Tokenizer:
    """Create an untrained byte-level BPE tokenizer that isolates every digit."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def scaffolding_texts() -> list[str]:
    """Return the fixed prompt pieces of every request: instructions, labels and role names."""
    return [
        ASK_INSTRUCTION,
        SUMMARIZE_INSTRUCTION,
        "Question:",
        "[Document:",
        *CHAT_ROLES,
    ]


def training_texts(haystack_dir: Path, seed: int) -> Iterator[str]:
    """Yield the train-split paragraphs of the books, synthetic task sentences and prompt scaffolding.

    The scaffolding is repeated ``SCAFFOLDING_REPEATS`` times so that BPE
    merges its words, which otherwise start a line and rarely occur without
    a leading space in the books.
    """
    for paragraphs in load_books(haystack_dir).values():
        yield from split_paragraphs(paragraphs, "train")
    yield from synthetic_sentences(random.Random(seed), SYNTHETIC_SENTENCES)
    for _ in range(SCAFFOLDING_REPEATS):
        yield from scaffolding_texts()


def train_tokenizer(
    out_dir: Path,
    haystack_dir: Path = DEFAULT_HAYSTACK_DIR,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    seed: int = 0,
) -> Path:
    """Train the tokenizer on ``haystack_dir`` and save it to ``out_dir`` for ``AutoTokenizer``.

    ``vocab_size`` counts the special tokens and the 256 byte tokens, so it must
    exceed 263. The same books, size and seed give the same files. Returns
    ``out_dir``.
    """
    minimum = len(SPECIAL_TOKENS) + len(pre_tokenizers.ByteLevel.alphabet()) + 1
    if vocab_size < minimum:
        raise ValueError(
            f"vocab_size must be at least {minimum} (special and byte tokens plus one merge), got {vocab_size}"
        )
    tokenizer = build_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(training_texts(Path(haystack_dir), seed), trainer=trainer)
    for token_id, token in enumerate(SPECIAL_TOKENS):
        assert tokenizer.token_to_id(token) == token_id, f"{token} got id {tokenizer.token_to_id(token)}"
    save_pretrained(tokenizer, Path(out_dir))
    return Path(out_dir)


def save_pretrained(tokenizer: Tokenizer, out_dir: Path) -> None:
    """Save ``tokenizer`` as a fast-tokenizer folder that ``AutoTokenizer`` of ``transformers`` 4.46+ loads.

    ``save_pretrained`` of ``transformers`` 5 writes a ``TokenizersBackend``
    class name and a separate ``chat_template.jinja``, which 4.x does not read.
    The config is therefore rewritten with the class name both versions know,
    the chat template inline, and a ``special_tokens_map.json`` beside it.
    Checked with 4.46.3 (tokenizers 0.20.3) and 5.25.0 (tokenizers 0.23.3),
    which give the same ids for the same chat.
    """
    from transformers import PreTrainedTokenizerFast

    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        mask_token=MASK_TOKEN,
        model_max_length=MODEL_MAX_LENGTH,
        clean_up_tokenization_spaces=False,
        padding_side="right",
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    wrapped.save_pretrained(out_dir)
    (out_dir / "chat_template.jinja").unlink(missing_ok=True)

    extra_special = [EOT_TOKEN, START_HEADER_TOKEN, END_HEADER_TOKEN]
    special_map = {
        "bos_token": BOS_TOKEN,
        "eos_token": EOS_TOKEN,
        "pad_token": PAD_TOKEN,
        "mask_token": MASK_TOKEN,
        "additional_special_tokens": extra_special,
    }
    config = {
        **special_map,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": MODEL_MAX_LENGTH,
        "clean_up_tokenization_spaces": False,
        "padding_side": "right",
        "chat_template": CHAT_TEMPLATE,
    }
    write_json(out_dir / "tokenizer_config.json", config)
    write_json(out_dir / "special_tokens_map.json", special_map)


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` as indented JSON with a trailing newline."""
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    """Train the tokenizer from the command line and print the output folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write the tokenizer files to")
    parser.add_argument(
        "--haystack", type=Path, default=DEFAULT_HAYSTACK_DIR, help="folder of plain-text books to train on"
    )
    parser.add_argument(
        "--vocab-size", type=int, default=DEFAULT_VOCAB_SIZE, help="vocabulary size, special tokens included"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic task sentences")
    args = parser.parse_args(argv)
    print(train_tokenizer(args.out, args.haystack, vocab_size=args.vocab_size, seed=args.seed))


if __name__ == "__main__":
    main()
