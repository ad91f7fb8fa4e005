"""Tests for Document spans, page joining and the --pages parser."""

from __future__ import annotations

import pytest

from wavefilter_cli.errors import InputError, UsageError
from wavefilter_cli.ingest.document import PAGE_SEPARATOR, Document, Span, join_pages
from wavefilter_cli.ingest.pages import parse_page_spec


def _document(pages: list[tuple[int | None, str]]) -> Document:
    text, spans = join_pages("r.pdf", pages)
    return Document(source="r.pdf", text=text, spans=spans, pages=len(pages), warnings=[])


def test_join_pages_spans_slice_exactly() -> None:
    pages = [(3, "third page"), (4, ""), (5, "fifth\npage")]
    document = _document(pages)
    for span, (number, page_text) in zip(document.spans, pages):
        assert span.page == number
        assert document.text[span.start : span.end] == page_text


def test_join_pages_separator_only_between_text() -> None:
    document = _document([(1, ""), (2, "a"), (3, ""), (4, "b"), (5, "")])
    assert document.text == "a" + PAGE_SEPARATOR + "b"


def test_span_at_maps_offsets_to_pages() -> None:
    document = _document([(1, "one"), (2, ""), (3, "three")])
    assert document.span_at(0).page == 1
    assert document.span_at(2).page == 1
    assert document.span_at(len("one") + len(PAGE_SEPARATOR)).page == 3
    assert document.span_at(len(document.text) - 1).page == 3


def test_span_at_separator_belongs_to_previous_page() -> None:
    document = _document([(1, "one"), (2, "two")])
    assert document.span_at(len("one")).page == 1


def test_span_at_out_of_range_raises() -> None:
    document = _document([(1, "one")])
    with pytest.raises(IndexError):
        document.span_at(3)
    with pytest.raises(IndexError):
        document.span_at(-1)


def test_spans_overlapping_range() -> None:
    document = _document([(1, "one"), (2, ""), (3, "three"), (4, "four")])
    start = document.spans[2].start + 1
    end = document.spans[3].start + 2
    assert [span.page for span in document.spans_overlapping(start, end)] == [3, 4]


def test_span_rejects_negative_length() -> None:
    with pytest.raises(ValueError):
        Span(source="x", page=None, start=5, end=2)


@pytest.mark.parametrize(
    ("spec", "count", "expected"),
    [
        ("3-10,15", 20, [3, 4, 5, 6, 7, 8, 9, 10, 15]),
        ("2", 2, [2]),
        ("4-", 6, [4, 5, 6]),
        (" 5 , 1-2 ,2", 9, [1, 2, 5]),
    ],
)
def test_page_spec_resolves(spec: str, count: int, expected: list[int]) -> None:
    assert parse_page_spec(spec).resolve("r.pdf", count) == expected


@pytest.mark.parametrize("spec", ["", "a", "3-1", "0", "1,,2", "-4", "1-2-3", "1.5"])
def test_page_spec_invalid_is_usage_error(spec: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_page_spec(spec)
    assert repr(spec) in str(caught.value)


def test_page_beyond_count_names_page_count() -> None:
    with pytest.raises(InputError) as caught:
        parse_page_spec("3-10,15").resolve("report.pdf", 12)
    message = str(caught.value)
    assert "report.pdf" in message
    assert "15" in message
    assert "12 pages" in message
