"""Tiny random LLaDA and Dream checkpoints in the official layout, with a tokenizer, for end-to-end tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from synthetic_books import write_books

from wavefilter_cli.cache.base import feed_positions, feed_tokens
from wavefilter_cli.models.dream import DreamConfig, DreamModel
from wavefilter_cli.models.llada import LLaDAConfig, LLaDAModelLM
from wavefilter_cli.training.tokenizer import train_tokenizer

TINY_VOCAB = 400


class StubTokenizer:
    """The tokenizer surface the generation loop uses, for models with vocabulary 320, mask 300 and EOS 301."""

    eos_token_id = 301
    mask_token_id = 300
    unk_token_id = 0

    def convert_tokens_to_ids(self, token):
        return self.unk_token_id

    def decode(self, ids, skip_special_tokens=True):
        return " ".join(str(i) for i in ids)


def make_tokenizer(root: Path) -> Path:
    books = write_books(root / "books", books=2, paragraphs=20)
    return train_tokenizer(root / "tokenizer", books, vocab_size=TINY_VOCAB, seed=0)


def _special_ids(tokenizer_dir: Path) -> dict[str, int]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    return {
        "mask_token_id": tok.mask_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
        "bos_token_id": tok.bos_token_id,
        "eot_token_id": tok.convert_tokens_to_ids("<|eot_id|>"),
    }


def save_tiny_llada(folder: Path, tokenizer_dir: Path, window: int = 4096, seed: int = 0, **extra) -> Path:
    torch.manual_seed(seed)
    config = LLaDAConfig(
        d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, mlp_hidden_size=48, vocab_size=TINY_VOCAB,
        embedding_size=TINY_VOCAB, max_sequence_length=window, architectures=["LLaDAModelLM"],
        **_special_ids(tokenizer_dir), **extra,
    )
    LLaDAModelLM(config).save_pretrained(folder)
    _copy_tokenizer(tokenizer_dir, folder)
    return folder


def save_tiny_dream(folder: Path, tokenizer_dir: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    config = DreamConfig(
        vocab_size=TINY_VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=4096, architectures=["DreamModel"], **_special_ids(tokenizer_dir),
    )
    DreamModel(config).save_pretrained(folder)
    _copy_tokenizer(tokenizer_dir, folder)
    return folder


def _copy_tokenizer(tokenizer_dir: Path, folder: Path) -> None:
    for item in tokenizer_dir.iterdir():
        shutil.copy2(item, folder / item.name)


def forward_logits(model, policy, canvas, block_start, block_end, step):
    """Logit rows of the block for one planned forward, as the generation loop computes them."""
    lead = model.logit_shift
    feed = policy.feed(canvas, block_start, block_end, step, lead)
    first = feed.gathered + block_start - lead - feed.start
    with torch.inference_mode():
        logits = model(
            feed_tokens(canvas, feed), position_ids=feed_positions(feed, canvas.shape[0], canvas.device),
            attention=feed.attention, logits_index=slice(first, first + block_end - block_start),
        ).logits
    policy.end_step()
    return logits


def random_tiny_model(family: str, seed: int, window: int = 256, weight_std: float | None = None, **llada_extra):
    """A tiny random LLaDA or Dream model in eval mode: vocabulary 320, mask 300, EOS and pad 301.

    ``weight_std`` rescales every weight matrix to that standard deviation
    (peaked logits); ``llada_extra`` goes to the LLaDA config only.
    """
    torch.manual_seed(seed)
    if family == "llada":
        config = LLaDAConfig(
            d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, mlp_hidden_size=48, vocab_size=320,
            embedding_size=320, max_sequence_length=window, mask_token_id=300, eos_token_id=301, pad_token_id=301,
            **llada_extra,
        )
        model = LLaDAModelLM(config)
    else:
        config = DreamConfig(
            vocab_size=320, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=window, mask_token_id=300, pad_token_id=301,
            bos_token_id=302, eos_token_id=301,
        )
        model = DreamModel(config)
    if weight_std is not None:
        with torch.no_grad():
            for parameter in model.parameters():
                if parameter.dim() > 1:
                    parameter.mul_(weight_std / parameter.std())
    return model.float().eval()
