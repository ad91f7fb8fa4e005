"""Haystack prose for the look-up tasks: book loading, normalisation, train/eval split and a token cache.

Books are plain-text files read in place. Each is normalised to paragraphs
separated by one blank line, with single spaces between words and, unless
lines are unwrapped, the book's line breaks inside paragraphs. The eval
split is the last ``eval_fraction`` of each book's characters, cut at a
paragraph boundary, and the train split is the rest, so the two splits read
disjoint parts of every book.

The token cache keeps, per book and split, the token ids with each token's
character offset and the positions where the text may be cut without changing
how either side tokenises. Those positions rely on the byte-level BPE
pre-tokenizer of ``tokenizer.py``: none of its pre-tokens contains a
non-space character followed by a space or newline, so such a transition is
always a pre-token boundary and BPE merges never cross it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Public-domain books kept next to a source checkout; the package does not ship them.
DEFAULT_HAYSTACK_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "haystack"

SPLITS = ("train", "eval")
EVAL_FRACTION = 0.1
PARAGRAPH_SEPARATOR = "\n\n"

_NEWLINE = ord("\n")
_WHITESPACE_CODES = np.array([ord(c) for c in " \t\n\r\x0b\x0c"], dtype=np.uint32)
_SENTENCE_ENDS = ".!?"
_SENTENCE_END_CODES = np.array([ord(c) for c in _SENTENCE_ENDS], dtype=np.uint32)
#: Characters that may close a sentence after its final punctuation, e.g. ``."`` or ``.)``.
_CLOSERS = "'\")]_"
_CLOSER_CODES = np.array([ord(c) for c in _CLOSERS], dtype=np.uint32)
#: Characters other than letters and digits that may open a sentence.
_OPENERS = "\n'\"([_"
#: Words ending in a full stop that rarely end a sentence.
_ABBREVIATIONS = frozenset(
    (
        "Mr.", "Mrs.", "Dr.", "St.", "Messrs.", "Mme.", "Mlle.", "Capt.", "Col.", "Gen.",
        "Lieut.", "Rev.", "Prof.", "Sr.", "Jr.", "vs.", "viz.", "i.e.", "e.g.",
    )
)


def normalize_book(raw: str, unwrap_lines: bool = False) -> list[str]:
    """Split a book into paragraphs with single spaces between words.

    Blank lines separate paragraphs. Line breaks inside a paragraph are kept,
    as the CLI's text ingestion keeps them, unless ``unwrap_lines`` joins
    the lines with spaces. Other runs of spaces and tabs become one space, and
    lines lose their leading and trailing spaces.
    """
    text = raw.replace("\r\n", "\n").replace("\r", "\n")
    paragraphs = []
    for block in re.split(r"\n[ \t]*\n", text):
        lines = [" ".join(line.split()) for line in block.split("\n")]
        lines = [line for line in lines if line]
        if lines:
            paragraphs.append((" " if unwrap_lines else "\n").join(lines))
    return paragraphs


def split_paragraphs(paragraphs: list[str], split: str, eval_fraction: float = EVAL_FRACTION) -> list[str]:
    """Return the paragraphs of ``split``: eval is the last ``eval_fraction`` of the characters, train the rest.

    The cut falls at the first paragraph that starts at or after the
    ``1 - eval_fraction`` mark, and each side keeps at least one paragraph.
    """
    check_split(split)
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be between 0 and 1 exclusive, got {eval_fraction}")
    if len(paragraphs) < 2:
        raise ValueError(f"a book needs at least 2 paragraphs to split into train and eval, got {len(paragraphs)}")
    total = sum(len(p) for p in paragraphs)
    mark = (1.0 - eval_fraction) * total
    position = 0
    cut = len(paragraphs) - 1
    for index, paragraph in enumerate(paragraphs):
        if index > 0 and position >= mark:
            cut = index
            break
        position += len(paragraph)
    return paragraphs[:cut] if split == "train" else paragraphs[cut:]


def check_split(split: str) -> None:
    """Raise ``ValueError`` unless ``split`` is one of ``SPLITS``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")


def book_paths(directory: Path) -> list[Path]:
    """Return the ``*.txt`` books of ``directory`` in name order."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"haystack folder not found: {directory}; pass a folder of plain-text books")
    paths = sorted(directory.glob("*.txt"))
    if not paths:
        raise FileNotFoundError(f"no *.txt books in the haystack folder {directory}")
    return paths


def load_books(directory: Path, unwrap_lines: bool = False) -> dict[str, list[str]]:
    """Read and normalise every book of ``directory``, keyed by file stem in name order."""
    books = {}
    for path in book_paths(directory):
        paragraphs = normalize_book(path.read_text(encoding="utf-8"), unwrap_lines)
        if paragraphs:
            books[path.stem] = paragraphs
    if not books:
        raise ValueError(f"every book in {directory} is empty")
    return books


@dataclass
class Region:
    """One book's paragraphs of one split with their tokens and safe cut positions.

    ``text`` starts with the paragraph separator, so every paragraph,
    including the first, is preceded by ``"\\n\\n"``, and ends with the last
    paragraph's final (non-space) character. With ``n`` tokens:

    - ``ids`` (n,) int64: token ids, equal to tokenising ``text`` in one call.
    - ``starts`` (n + 1,) int64: character offset of each token in ``text``,
      then ``len(text)``.
    - ``cut`` (n + 1,) bool: cutting before token ``i`` splits the text between
      a non-space and a whitespace character, so the tokens on each side are
      exactly those of tokenising each side alone. Both ends count as cuts.
    - ``sentence_end`` (n + 1,) bool: a cut right after ``.``, ``!`` or ``?``,
      optionally followed by a closing quote or bracket. The next character
      must be a capital, digit, opening quote or newline, and the word before
      must not be a title such as ``Mr.`` or an initial. False at 0.
    - ``separators`` (p,) int64: for each of the p paragraphs, the index of
      the first token of the ``"\\n\\n"`` before it.
    - ``paragraph_starts`` (p,) int64: index of each paragraph's first token.
    """

    book: str
    text: str
    ids: np.ndarray
    starts: np.ndarray
    cut: np.ndarray
    sentence_end: np.ndarray
    separators: np.ndarray
    paragraph_starts: np.ndarray

    @property
    def num_tokens(self) -> int:
        """Number of tokens in the region."""
        return int(self.ids.shape[0])


def text_codes(text: str) -> np.ndarray:
    """Return the code points of ``text`` as a (len(text),) uint32 array."""
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def ends_sentence(text: str) -> bool:
    """Return whether ``text`` ends with sentence-final punctuation, optionally followed by one closer."""
    if text[-1:] and text[-1] in _SENTENCE_ENDS:
        return True
    return len(text) >= 2 and text[-1] in _CLOSERS and text[-2] in _SENTENCE_ENDS


def opens_sentence(codes: np.ndarray) -> np.ndarray:
    """Return which code points may start a sentence: capitals, digits, quotes, brackets and newlines."""
    unique = np.unique(codes)
    openers = [code for code in unique if chr(code).isupper() or chr(code).isdigit() or chr(code) in _OPENERS]
    return np.isin(codes, np.asarray(openers, dtype=np.uint32))


def ends_with_abbreviation(text: str, end: int) -> bool:
    """Return whether the word before ``end`` is a title such as ``Mr.`` or an initial such as ``J.``."""
    word_start = text.rfind(" ", 0, end) + 1
    word_start = max(word_start, text.rfind("\n", 0, end) + 1)
    word = text[word_start:end].lstrip("\"'(_[")
    if word in _ABBREVIATIONS:
        return True
    return len(word) == 2 and word[0].isupper() and word[1] == "."


def tokenize_region(tokenizer, book: str, paragraphs: list[str]) -> Region:
    """Tokenise ``paragraphs`` in one batch call and locate the safe cuts.

    Each paragraph is encoded together with the separator before it. The
    separator starts with whitespace right after a non-space character, so
    concatenating the per-paragraph encodings equals encoding the whole text.
    """
    chunks = [PARAGRAPH_SEPARATOR + paragraph for paragraph in paragraphs]
    encoded = tokenizer(chunks, add_special_tokens=False, return_offsets_mapping=True, return_attention_mask=False)
    ids_parts, start_parts = [], []
    origin = 0
    for chunk, chunk_ids, offsets in zip(chunks, encoded["input_ids"], encoded["offset_mapping"]):
        ids_parts.append(np.asarray(chunk_ids, dtype=np.int64))
        start_parts.append(origin + np.asarray([start for start, _ in offsets], dtype=np.int64))
        origin += len(chunk)
    text = "".join(chunks)
    ids = np.concatenate(ids_parts)
    starts = np.concatenate(start_parts + [np.asarray([len(text)], dtype=np.int64)])

    codes = text_codes(text)
    current = np.isin(codes[np.minimum(starts, len(text) - 1)], _WHITESPACE_CODES)
    previous_index = np.maximum(starts - 1, 0)
    previous = codes[previous_index]
    before_previous = codes[np.maximum(starts - 2, 0)]
    previous_space = np.isin(previous, _WHITESPACE_CODES)

    cut = ~previous_space & current
    cut[0] = True
    cut[-1] = True
    closes = np.isin(previous, _CLOSER_CODES) & np.isin(before_previous, _SENTENCE_END_CODES)
    next_codes = codes[np.minimum(starts + 1, len(text) - 1)]
    sentence_end = cut & (np.isin(previous, _SENTENCE_END_CODES) | closes) & opens_sentence(next_codes)
    sentence_end[0] = False
    sentence_end[-1] = ends_sentence(text)
    for index in np.flatnonzero(sentence_end):
        if ends_with_abbreviation(text, int(starts[index])):
            sentence_end[index] = False

    token_starts = starts[:-1]
    after = codes[np.minimum(token_starts + 1, len(text) - 1)]
    separators = np.flatnonzero(cut[:-1] & (codes[token_starts] == _NEWLINE) & (after == _NEWLINE))
    after_separator = (previous[:-1] == _NEWLINE) & (before_previous[:-1] == _NEWLINE) & (token_starts > 1)
    paragraph_starts = np.flatnonzero(after_separator & ~current[:-1])
    if not len(separators) == len(paragraphs) == len(paragraph_starts):
        raise ValueError(
            f"{book}: found {len(separators)} separators and {len(paragraph_starts)} paragraph starts for "
            f"{len(paragraphs)} paragraphs, so the tokenizer merges newlines with other text; "
            "use the tokenizer from wavefilter_cli.training.tokenizer"
        )
    return Region(
        book=book,
        text=text,
        ids=ids,
        starts=starts,
        cut=cut,
        sentence_end=sentence_end,
        separators=separators,
        paragraph_starts=paragraph_starts,
    )


class Haystack:
    """Normalised books of a folder, read once, with a per-tokenizer token cache.

    Any folder of UTF-8 ``*.txt`` files works. Each book needs at least two
    paragraphs so that both splits get text. ``unwrap_lines`` joins the lines
    of each paragraph (see ``normalize_book``).
    """

    def __init__(
        self,
        directory: Path = DEFAULT_HAYSTACK_DIR,
        eval_fraction: float = EVAL_FRACTION,
        unwrap_lines: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self.eval_fraction = eval_fraction
        self.books = load_books(self.directory, unwrap_lines)
        # Keyed by id(tokenizer). Each entry keeps the tokenizer alive, so its id is not reused.
        self._regions: dict[tuple[int, str], tuple[object, list[Region]]] = {}

    def paragraphs(self, split: str) -> dict[str, list[str]]:
        """Return each book's paragraphs of ``split``."""
        return {
            book: split_paragraphs(paragraphs, split, self.eval_fraction) for book, paragraphs in self.books.items()
        }

    def regions(self, tokenizer, split: str) -> list[Region]:
        """Return the tokenised regions of ``split``, one per book, tokenising on first use."""
        check_split(split)
        key = (id(tokenizer), split)
        if key not in self._regions:
            regions = [
                tokenize_region(tokenizer, book, paragraphs) for book, paragraphs in self.paragraphs(split).items()
            ]
            self._regions[key] = (tokenizer, regions)
        return self._regions[key][1]
