"""Exact-length documents: haystack token streams with sentences inserted at sentence ends.

A document is built from a ``Stream`` of haystack tokens. Insertions go at
sentence-end cuts, each as ``" " + sentence``, or at the very start as the
bare sentence. The document ends either at a cut or with a fragment of the
next word whose token count is checked by tokenising it. Every joint between
the parts is a non-space character followed by whitespace, which the
byte-level pre-tokenizer always splits (see ``haystack.py``), so the
document's token count is the sum of its parts' counts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

import numpy as np

from wavefilter_cli.training.haystack import Region, ends_sentence

#: Maps a text to its number of tokens, without special tokens.
TokenCounter = Callable[[str], int]

#: Previous cuts tried when the exact end falls inside a word.
MAX_END_CANDIDATES = 8
#: Filler tokens kept free of insertions at the end of a document. The end
#: fitting may step back past them, and then the draw fails with ``FitError``.
END_MARGIN = 8


class FitError(ValueError):
    """A document of the requested token count cannot be built from this draw."""


@dataclass
class Stream:
    """Haystack tokens drawn for one document, with the same per-token arrays as ``Region``.

    The stream begins with the paragraph separator before its first paragraph,
    whose ``lead`` tokens are dropped unless a sentence is inserted at the
    document start. With ``n`` tokens: ``ids`` (n,), ``starts`` (n + 1,)
    character offsets into ``text``, ``cut`` and ``sentence_end`` (n + 1,) bool.
    """

    text: str
    ids: np.ndarray
    starts: np.ndarray
    cut: np.ndarray
    sentence_end: np.ndarray
    lead: int

    @property
    def num_tokens(self) -> int:
        """Number of tokens in the stream."""
        return int(self.ids.shape[0])


@dataclass(frozen=True)
class Insertion:
    """A sentence to insert before stream token ``position``; position 0 means the document start."""

    sentence: str
    position: int


def draw_stream(regions: list[Region], min_tokens: int, rng: random.Random) -> Stream:
    """Draw at least ``min_tokens`` haystack tokens starting at a random paragraph.

    The stream runs from that paragraph to the end of its region, then through
    the other regions in random order, then wraps to the start of the first
    region. Raises ``FitError`` if the regions hold fewer tokens in total.
    """
    if min_tokens < 1:
        raise ValueError(f"min_tokens must be positive, got {min_tokens}")
    weights = [region.num_tokens for region in regions]
    first_index = rng.choices(range(len(regions)), weights=weights)[0]
    first = regions[first_index]
    paragraph = rng.randrange(len(first.separators))
    begin = int(first.separators[paragraph])
    lead = int(first.paragraph_starts[paragraph]) - begin

    others = [index for index in range(len(regions)) if index != first_index]
    rng.shuffle(others)
    spans = [(first, begin, first.num_tokens)] + [(regions[index], 0, regions[index].num_tokens) for index in others]
    if begin > 0:
        spans.append((first, 0, begin))

    pieces = []
    total = 0
    for region, start, end in spans:
        end = min(end, start + (min_tokens - total))
        pieces.append((region, start, end))
        total += end - start
        if total >= min_tokens:
            return join_pieces(pieces, lead)
    raise FitError(f"the haystack split holds {total} tokens, fewer than the {min_tokens} this document needs")


def join_pieces(pieces: list[tuple[Region, int, int]], lead: int) -> Stream:
    """Concatenate region slices ``[start, end)`` into one stream.

    Every slice but the last ends at its region's end, which is a paragraph
    end, and every slice but the first starts at a paragraph separator. Each
    joint is therefore a cut, and a sentence end when the text before it ends
    one.
    """
    texts, ids, starts, cuts, sentence_ends = [], [], [], [], []
    origin = 0
    for region, start, end in pieces:
        text = region.text[region.starts[start] : region.starts[end]]
        cut = region.cut[start:end].copy()
        sentence_end = region.sentence_end[start:end].copy()
        cut[0] = True
        sentence_end[0] = bool(texts) and ends_sentence(texts[-1])
        texts.append(text)
        ids.append(region.ids[start:end])
        starts.append(region.starts[start:end] - region.starts[start] + origin)
        cuts.append(cut)
        sentence_ends.append(sentence_end)
        origin += len(text)

    last_region, _, last_end = pieces[-1]
    starts.append(np.asarray([origin], dtype=np.int64))
    cuts.append(np.asarray([last_region.cut[last_end]]))
    sentence_ends.append(np.asarray([last_region.sentence_end[last_end]]))
    return Stream(
        text="".join(texts),
        ids=np.concatenate(ids),
        starts=np.concatenate(starts),
        cut=np.concatenate(cuts),
        sentence_end=np.concatenate(sentence_ends),
        lead=lead,
    )


def choose_positions(stream: Stream, fractions: list[float], filler_tokens: int) -> list[int]:
    """Map each fraction of the filler to the nearest insertion point.

    Insertion points are the document start (position 0) and the sentence-end
    cuts that leave at least ``END_MARGIN`` filler tokens after them.
    ``filler_tokens`` is the expected number of haystack tokens in the
    document. Positions are non-decreasing in the fractions.
    """
    limit = stream.lead + filler_tokens - END_MARGIN
    interior = np.flatnonzero(stream.sentence_end[: max(limit, 0)])
    interior = interior[interior > stream.lead]
    # The document start sits at stream.lead in filler coordinates.
    locations = np.concatenate([[stream.lead], interior])
    positions = np.concatenate([[0], interior])
    result = []
    for fraction in fractions:
        target = stream.lead + fraction * filler_tokens
        index = int(np.searchsorted(locations, target))
        if index == len(locations) or (index > 0 and target - locations[index - 1] <= locations[index] - target):
            index -= 1
        result.append(int(positions[index]))
    return result


def insertion_texts(insertions: list[Insertion]) -> list[str]:
    """Return each insertion as it appears in the document: bare when it opens the document, else after a space."""
    ordered = sorted(insertions, key=lambda insertion: insertion.position)
    texts = []
    for index, insertion in enumerate(ordered):
        bare = index == 0 and insertion.position == 0
        texts.append(insertion.sentence if bare else " " + insertion.sentence)
    return texts


def fit_end(stream: Stream, start: int, end: int, count_tokens: TokenCounter) -> tuple[int, str]:
    """Find where the document's haystack text ends so that it spans exactly ``end - start`` tokens.

    Returns ``(cut, fragment)``: the text runs to stream token ``cut`` and
    then ``fragment``, a prefix of the next word that ends in a non-space
    character and tokenises to ``end - cut`` tokens (empty when ``end`` is
    itself a cut).
    """
    if end > stream.num_tokens:
        raise FitError(f"the haystack stream has {stream.num_tokens} tokens, fewer than the {end} needed")
    if end > start and stream.cut[end]:
        return end, ""
    candidates = [c for c in range(end - 1, start - 1, -1) if stream.cut[c] or c == start]
    for cut in candidates[:MAX_END_CANDIDATES]:
        following = np.flatnonzero(stream.cut[cut + 1 :])
        word_end = int(stream.starts[cut + 1 + following[0]]) if len(following) else len(stream.text)
        word_start = int(stream.starts[cut])
        for stop in range(word_start + 1, word_end):
            fragment = stream.text[word_start:stop]
            if not fragment[-1].isspace() and count_tokens(fragment) == end - cut:
                return cut, fragment
    raise FitError(f"no word boundary or word prefix ends the document at exactly {end - start} haystack tokens")


def build_document(
    stream: Stream,
    insertions: list[Insertion],
    document_tokens: int,
    count_tokens: TokenCounter,
) -> str:
    """Build a document of exactly ``document_tokens`` tokens from ``stream`` and ``insertions``.

    Insertions at position 0 open the document. The others must sit at
    sentence-end cuts of the stream, and those at the same position keep their
    list order. Raises ``FitError`` when the sentences leave no room or the
    end cannot be fitted.
    """
    ordered = sorted(insertions, key=lambda insertion: insertion.position)
    texts = insertion_texts(ordered)
    sentence_tokens = sum(count_tokens(text) for text in texts)
    filler = document_tokens - sentence_tokens
    opens_with_sentence = bool(ordered) and ordered[0].position == 0
    start = 0 if opens_with_sentence else stream.lead
    if filler < 0:
        raise FitError(
            f"the inserted sentences take {sentence_tokens} tokens, more than the document's {document_tokens}"
        )

    if filler == 0:
        if not all(insertion.position == 0 for insertion in ordered) or not ordered:
            raise FitError("no room for haystack text around the inserted sentences")
        return "".join(texts)
    if opens_with_sentence and filler <= stream.lead:
        raise FitError(f"{filler} filler tokens cannot hold the paragraph separator and any text")

    cut, fragment = fit_end(stream, start, start + filler, count_tokens)
    parts = texts[: sum(1 for insertion in ordered if insertion.position == 0)]
    previous = start
    for insertion, text in zip(ordered, texts):
        if insertion.position == 0:
            continue
        if not start < insertion.position < cut:
            raise FitError(f"insertion at token {insertion.position} falls outside the filler [{start}, {cut})")
        parts.append(stream.text[stream.starts[previous] : stream.starts[insertion.position]])
        parts.append(text)
        previous = insertion.position
    parts.append(stream.text[stream.starts[previous] : stream.starts[cut]])
    parts.append(fragment)
    return "".join(parts)
