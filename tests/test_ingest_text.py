"""Tests for text and Markdown ingestion: encodings, line endings, binary detection."""

from __future__ import annotations

import codecs

import pytest

from wavefilter_cli.errors import InputError
from wavefilter_cli.ingest import IngestOptions, load_bytes, parse_page_spec
from wavefilter_cli.ingest.text import binary_reason, decode_text, read_text


def test_utf8_without_bom() -> None:
    document = read_text("naïve café\n".encode("utf-8"), "n.md")
    assert document.text == "naïve café"
    assert document.warnings == []
    assert document.pages is None


def test_utf8_bom_stripped() -> None:
    document = read_text(codecs.BOM_UTF8 + "# Title\nbody".encode("utf-8"), "n.md")
    assert document.text == "# Title\nbody"
    assert document.warnings == []


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_utf16_and_utf32_with_bom(encoding: str) -> None:
    data = "wide text ü".encode(encoding)
    assert binary_reason(data) is None
    assert read_text(data, "w.txt").text == "wide text ü"


def test_cp1252_fallback_warns() -> None:
    document = read_text("smart “quotes” and café".encode("cp1252"), "old.txt")
    assert document.text == "smart “quotes” and café"
    assert len(document.warnings) == 1
    assert "old.txt: not valid UTF-8" in document.warnings[0]
    assert "cp1252" in document.warnings[0]


def test_latin1_fallback_when_cp1252_fails() -> None:
    # 0x81 is undefined in cp1252 but valid in latin-1.
    text, warnings = decode_text(b"abc \x81 \xe9", "odd.txt")
    assert text == "abc \x81 é"
    assert "latin-1" in warnings[0]


def test_crlf_and_cr_normalised() -> None:
    document = read_text(b"one\r\ntwo\rthree\r\n", "dos.txt")
    assert document.text == "one\ntwo\nthree"


def test_text_controls_and_ligatures_cleaned() -> None:
    document = read_text("a\x00b \ufb01le\x07".encode("utf-8"), "c.txt")
    assert document.text == "ab file"


def test_text_single_span() -> None:
    document = read_text(b"line one\nline two", "s.txt")
    assert len(document.spans) == 1
    span = document.spans[0]
    assert span.page is None
    assert document.text[span.start : span.end] == document.text


def test_empty_text_is_input_error() -> None:
    with pytest.raises(InputError) as caught:
        read_text(b" \n\r\n\t", "blank.md")
    assert str(caught.value).startswith("blank.md: no text")


def test_nul_bytes_are_binary() -> None:
    assert binary_reason(b"PK\x03\x04\x00\x00 zip data") is not None


def test_control_heavy_bytes_are_binary() -> None:
    assert binary_reason(bytes(range(1, 32)) * 10) is not None


def test_nul_after_sniff_window_is_text() -> None:
    data = b"a" * 9000 + b"\x00"
    assert binary_reason(data) is None


def test_plain_text_not_binary() -> None:
    assert binary_reason("ordinary text\twith tabs\r\nand é".encode("utf-8")) is None


def test_binary_input_rejected() -> None:
    with pytest.raises(InputError) as caught:
        load_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "photo.png", IngestOptions())
    assert str(caught.value).startswith("photo.png: binary file")


def test_pages_option_warns_for_text() -> None:
    document = load_bytes(b"text", "n.md", IngestOptions(pages=parse_page_spec("2")))
    assert document.warnings == ["n.md: --pages applies only to PDFs; reading the whole text file"]
