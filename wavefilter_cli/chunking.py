"""Token-aware splitting of ingested documents into chunks that fit a model's window.

Each document is tokenised once with the model's fast tokenizer, and the
offset mapping ties every token to its characters. A chunk is a run of at
most ``size`` tokens of one document. It ends on a paragraph boundary when
one leaves the chunk at least half full, else on a sentence boundary under
the same rule, else after exactly ``size`` tokens. Consecutive chunks of a
document share ``overlap`` tokens. Every chunk records its source, its
character range in ``Document.text`` and the pages it covers.

Shapes: T tokens of one document; offsets are (T, 2) character ranges
``[start, end)`` into the document's text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from wavefilter_cli.errors import ModelError
from wavefilter_cli.ingest import Document

#: Smallest chunk size accepted, in tokens.
MIN_CHUNK_TOKENS = 16
#: A boundary cut must leave a chunk at least this share of ``size`` full.
MIN_FILL = 0.5

# A paragraph ends at a blank line (pages are joined by one, too).
_PARAGRAPH_END = re.compile(r"\n[ \t]*\n\s*")
# A sentence ends at . ! ? or … followed by closing quotes or brackets and whitespace.
_SENTENCE_END = re.compile(r"[.!?\u2026][\"'\u201d\u2019)\]]*\s+")


@dataclass(frozen=True)
class Chunk:
    """A run of document tokens ``[token_start, token_end)`` and the text it covers.

    ``document`` indexes the list given to ``chunk_documents``. ``start`` and
    ``end`` are character offsets into that document's text. ``pages`` lists
    the 1-based PDF pages the range touches, and is empty for text files.
    """

    document: int
    source: str
    token_start: int
    token_end: int
    start: int
    end: int
    pages: tuple[int, ...]

    @property
    def tokens(self) -> int:
        return self.token_end - self.token_start


@dataclass(frozen=True)
class TokenizedDocument:
    """One document's token ids (T,) and character offsets (T, 2) from the fast tokenizer."""

    ids: np.ndarray
    offsets: np.ndarray

    @property
    def length(self) -> int:
        return int(self.ids.shape[0])

    def token_at(self, chars: np.ndarray) -> np.ndarray:
        """Return the index of the token that contains each character offset, or of the next token after it."""
        return np.searchsorted(self.offsets[:, 1], chars, side="right")


def check_chunk_options(size: int, overlap: int) -> None:
    """Raise ValueError unless ``size`` ≥ 16 and 0 ≤ ``overlap`` < ``size``."""
    if size < MIN_CHUNK_TOKENS:
        raise ValueError(f"chunk size {size} is too small: use at least {MIN_CHUNK_TOKENS} tokens")
    if overlap < 0:
        raise ValueError(f"chunk overlap {overlap} is invalid: use 0 or more tokens")
    if overlap >= size:
        raise ValueError(f"chunk overlap {overlap} is not below the chunk size {size}: use an overlap smaller than the chunk size")


def tokenize_document(tokenizer, text: str) -> TokenizedDocument:
    """Tokenise ``text`` without special tokens and keep each token's character range.

    Needs a fast tokenizer, because only those return an offset mapping.
    Raises ModelError for a slow one.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(
            "long inputs need a fast tokenizer (tokenizer.json in the checkpoint) to map tokens to characters; "
            "add tokenizer.json or pass --no-chunk"
        )
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = np.asarray(encoded["input_ids"], dtype=np.int64)
    offsets = np.asarray(encoded["offset_mapping"], dtype=np.int64).reshape(-1, 2)
    return TokenizedDocument(ids, offsets)


def boundary_tokens(text: str, tokens: TokenizedDocument, pattern: re.Pattern) -> np.ndarray:
    """Return the sorted token indices where a chunk may start after a match of ``pattern`` in ``text``.

    A match ending at character c gives the index of the token that contains
    c, so the cut falls before it even when the token starts with the
    whitespace that ended the match.
    """
    ends = np.fromiter((match.end() for match in pattern.finditer(text)), dtype=np.int64)
    if ends.size == 0:
        return ends
    return np.unique(tokens.token_at(ends))


def cut_points(length: int, size: int, overlap: int, paragraphs: np.ndarray, sentences: np.ndarray) -> list[tuple[int, int]]:
    """Return the token ranges ``[start, end)`` of the chunks of a ``length``-token document.

    ``paragraphs`` and ``sentences`` are sorted token indices where a chunk
    may end. A cut is taken only when it leaves the chunk at least
    ``MIN_FILL`` full and longer than ``overlap``, so every chunk advances.
    """
    check_chunk_options(size, overlap)
    shortest = max(int(size * MIN_FILL), overlap + 1)
    ranges = []
    start = 0
    while start < length:
        limit = start + size
        if limit >= length:
            ranges.append((start, length))
            break
        end = _last_between(paragraphs, start + shortest, limit)
        if end is None:
            end = _last_between(sentences, start + shortest, limit)
        if end is None:
            end = limit
        ranges.append((start, end))
        start = end - overlap
    return ranges


def _last_between(points: np.ndarray, low: int, high: int) -> int | None:
    """Return the largest of the sorted ``points`` in ``[low, high]``, or None."""
    index = int(np.searchsorted(points, high, side="right")) - 1
    if index >= 0 and points[index] >= low:
        return int(points[index])
    return None


def page_numbers(document: Document, start: int, end: int) -> tuple[int, ...]:
    """Return the 1-based pages of ``document`` that share a character with ``[start, end)`` (none for text files)."""
    return tuple(span.page for span in document.spans_overlapping(start, end) if span.page is not None)


def sentence_starts(text: str, tokens: TokenizedDocument) -> np.ndarray:
    """Return the sorted token indices where a sentence or a paragraph of ``text`` starts (0 not included)."""
    return np.union1d(boundary_tokens(text, tokens, _SENTENCE_END), boundary_tokens(text, tokens, _PARAGRAPH_END))


def chunk_document(document: Document, index: int, tokens: TokenizedDocument, size: int, overlap: int) -> list[Chunk]:
    """Split one tokenised document into chunks of at most ``size`` tokens; see the module docstring."""
    if tokens.length == 0:
        return []
    paragraphs = boundary_tokens(document.text, tokens, _PARAGRAPH_END)
    sentences = np.union1d(boundary_tokens(document.text, tokens, _SENTENCE_END), paragraphs)
    chunks = []
    for token_start, token_end in cut_points(tokens.length, size, overlap, paragraphs, sentences):
        start = int(tokens.offsets[token_start, 0])
        end = int(tokens.offsets[token_end - 1, 1])
        chunks.append(Chunk(index, document.source, token_start, token_end, start, end, page_numbers(document, start, end)))
    return chunks


def chunk_documents(
    documents: Sequence[Document], tokenized: Sequence[TokenizedDocument], size: int, overlap: int
) -> list[Chunk]:
    """Chunk every document, in order. A chunk never spans two documents."""
    check_chunk_options(size, overlap)
    chunks: list[Chunk] = []
    for index, (document, tokens) in enumerate(zip(documents, tokenized)):
        chunks.extend(chunk_document(document, index, tokens, size, overlap))
    return chunks
