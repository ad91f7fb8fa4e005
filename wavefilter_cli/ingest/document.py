"""The extracted text of one input and the page spans that cite into it."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Span:
    """A page's place in ``Document.text``, as character offsets ``[start, end)``.

    ``page`` is the 1-based page number in the original PDF (also when
    ``--pages`` selected a subset), or None for a text file.
    """

    source: str
    page: int | None
    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end:
            raise ValueError(f"span offsets must satisfy 0 <= start <= end, got start={self.start}, end={self.end}")

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass
class Document:
    """Normalised text of one input, with one span per page (PDF) or one span (text file).

    ``text[span.start:span.end]`` is exactly that page's text. Pages are
    joined by ``PAGE_SEPARATOR``, which belongs to no span. A page without
    text has an empty span at the offset where its text would be. ``pages``
    is the page count of the whole PDF (not just the selection), or None for
    text. ``warnings`` lists the problems found while reading, one line each.
    """

    source: str
    text: str
    spans: list[Span]
    pages: int | None
    warnings: list[str] = field(default_factory=list)

    def span_at(self, offset: int) -> Span:
        """Find the span that contains character ``offset`` of ``text``.

        An offset inside a page separator maps to the page before it, so every
        offset in ``[0, len(text))`` has a span. Raises IndexError outside it.
        """
        if not 0 <= offset < len(self.text):
            raise IndexError(f"offset {offset} is outside the text of {self.source} (length {len(self.text)})")
        nonempty = [span for span in self.spans if span.length > 0]
        starts = [span.start for span in nonempty]
        index = bisect.bisect_right(starts, offset) - 1
        return nonempty[max(index, 0)]

    def spans_overlapping(self, start: int, end: int) -> list[Span]:
        """Return the non-empty spans that share at least one character with ``[start, end)``."""
        return [span for span in self.spans if span.length > 0 and span.start < end and start < span.end]


PAGE_SEPARATOR = "\n\n"


def join_pages(source: str, page_texts: list[tuple[int | None, str]]) -> tuple[str, list[Span]]:
    """Concatenate page texts with ``PAGE_SEPARATOR`` and return the text and one span per page.

    Empty pages get a zero-length span and add no separator, so the text
    has no runs of blank lines where scanned pages were.
    """
    parts: list[str] = []
    spans: list[Span] = []
    offset = 0
    for page, text in page_texts:
        if text:
            if parts:
                parts.append(PAGE_SEPARATOR)
                offset += len(PAGE_SEPARATOR)
            parts.append(text)
        spans.append(Span(source=source, page=page, start=offset, end=offset + len(text)))
        offset += len(text)
    return "".join(parts), spans
