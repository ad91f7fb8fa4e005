"""Tests for PDF ingestion on fixtures built by tests/pdf_writer.py."""

from __future__ import annotations

import io
import random

import pytest
from pypdf import PageObject, PdfReader
from pypdf.errors import DependencyError

from pdf_writer import IMAGE_PAGE, build_pdf, encrypt_pdf
from wavefilter_cli.errors import InputError
from wavefilter_cli.ingest import IngestOptions, load_bytes, parse_page_spec
from wavefilter_cli.ingest.pdf import MAX_PASSWORD_PROMPTS, PasswordSource, read_pdf

THREE_PAGES = [["First page text."], ["Second page, a docu-", "ment split by a hyphen."], ["Third page text."]]
PROSE = ["The committee reviewed the budget and approved the plan for the new library."]
GARBLED = ["\ue000\ue001\ufffd\ue002 \u2219\u25a0\ufffd\ue003" * 4]


def test_pdf_text_per_page() -> None:
    document = read_pdf(build_pdf(THREE_PAGES), "r.pdf")
    assert document.pages == 3
    assert [span.page for span in document.spans] == [1, 2, 3]
    assert document.text[document.spans[0].start : document.spans[0].end] == "First page text."
    assert document.text[document.spans[2].start : document.spans[2].end] == "Third page text."
    assert document.warnings == []


def test_pdf_fixture_yields_raw_ligature() -> None:
    # Guards the next test: without NFKC the extracted text would keep U+FB01.
    reader = PdfReader(io.BytesIO(build_pdf([["the \ufb01nal \ufb02ow"]])))
    assert "\ufb01" in reader.pages[0].extract_text()


def test_pdf_ligature_normalised() -> None:
    document = read_pdf(build_pdf([["the \ufb01nal \ufb02ow"]]), "r.pdf")
    assert document.text == "the final flow"


def test_pdf_nul_removed() -> None:
    data = build_pdf([["nul\x00here"]])
    assert "\x00" in PdfReader(io.BytesIO(data)).pages[0].extract_text()
    assert read_pdf(data, "r.pdf").text == "nulhere"


def test_pdf_hyphenated_line_joined() -> None:
    document = read_pdf(build_pdf(THREE_PAGES), "r.pdf")
    page = document.text[document.spans[1].start : document.spans[1].end]
    assert page == "Second page, a document split by a hyphen."


def test_pdf_page_selection_keeps_numbers() -> None:
    document = read_pdf(build_pdf(THREE_PAGES), "r.pdf", parse_page_spec("2-3"))
    assert [span.page for span in document.spans] == [2, 3]
    assert document.pages == 3
    assert "First" not in document.text
    assert document.text[document.spans[1].start : document.spans[1].end] == "Third page text."


def test_pdf_page_beyond_count() -> None:
    with pytest.raises(InputError) as caught:
        read_pdf(build_pdf(THREE_PAGES), "r.pdf", parse_page_spec("2,7"))
    assert "page 7" in str(caught.value)
    assert "3 pages" in str(caught.value)


def test_pdf_image_page_warned() -> None:
    document = read_pdf(build_pdf([PROSE, IMAGE_PAGE, PROSE, IMAGE_PAGE]), "r.pdf")
    assert len(document.warnings) == 1
    assert "r.pdf: no text on pages 2, 4" in document.warnings[0]
    assert [span.length > 0 for span in document.spans] == [True, False, True, False]


def test_pdf_scanned_exact_message() -> None:
    with pytest.raises(InputError) as caught:
        read_pdf(build_pdf([IMAGE_PAGE] * 12), "report.pdf")
    assert str(caught.value) == "report.pdf: no extractable text on any of its 12 pages (scanned?); run OCR first"


def test_pdf_scanned_selection_message() -> None:
    with pytest.raises(InputError) as caught:
        read_pdf(build_pdf([PROSE, IMAGE_PAGE, IMAGE_PAGE]), "report.pdf", parse_page_spec("2-3"))
    assert "no extractable text on any of the selected pages 2-3 (of 3)" in str(caught.value)


def test_pdf_garbled_page_warned() -> None:
    document = read_pdf(build_pdf([PROSE, GARBLED, PROSE]), "odd.pdf")
    assert len(document.warnings) == 1
    assert "odd.pdf" in document.warnings[0]
    assert "page 2 looks garbled" in document.warnings[0]


def test_pdf_prose_not_garbled() -> None:
    document = read_pdf(build_pdf([PROSE, ["Totals: 12.5, 13.75, 99 (2023-2024)"]]), "r.pdf")
    assert document.warnings == []


@pytest.mark.parametrize("algorithm", ["AES-256", "RC4-128"])
def test_encrypted_empty_password_opens(algorithm: str) -> None:
    data = encrypt_pdf(build_pdf(THREE_PAGES), "", algorithm)
    assert PdfReader(io.BytesIO(data)).is_encrypted
    document = read_pdf(data, "e.pdf", passwords=PasswordSource())
    assert "First page text." in document.text


@pytest.mark.parametrize("algorithm", ["AES-256", "RC4-128"])
def test_encrypted_password_from_env(algorithm: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = encrypt_pdf(build_pdf(THREE_PAGES), "s3cret", algorithm)
    monkeypatch.setenv("TEST_PDF_PASSWORD", "s3cret")
    document = read_pdf(data, "e.pdf", passwords=PasswordSource(env_var="TEST_PDF_PASSWORD"))
    assert "Third page text." in document.text


def test_encrypted_owner_password_opens(monkeypatch: pytest.MonkeyPatch) -> None:
    data = encrypt_pdf(build_pdf(THREE_PAGES), "user-pw", "AES-256", owner_password="owner-pw")
    monkeypatch.setenv("TEST_PDF_PASSWORD", "owner-pw")
    document = read_pdf(data, "e.pdf", passwords=PasswordSource(env_var="TEST_PDF_PASSWORD"))
    assert "First page text." in document.text


@pytest.mark.parametrize("algorithm", ["AES-256", "RC4-128"])
def test_encrypted_wrong_env_password(algorithm: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = encrypt_pdf(build_pdf(THREE_PAGES), "s3cret", algorithm)
    monkeypatch.setenv("TEST_PDF_PASSWORD", "not-the-password")
    with pytest.raises(InputError) as caught:
        read_pdf(data, "e.pdf", passwords=PasswordSource(env_var="TEST_PDF_PASSWORD"))
    assert "wrong password" in str(caught.value)
    assert "TEST_PDF_PASSWORD" in str(caught.value)
    assert "not-the-password" not in str(caught.value)


def test_encrypted_env_var_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    data = encrypt_pdf(build_pdf(THREE_PAGES), "s3cret", "AES-256")
    monkeypatch.delenv("TEST_PDF_PASSWORD", raising=False)
    with pytest.raises(InputError) as caught:
        read_pdf(data, "e.pdf", passwords=PasswordSource(env_var="TEST_PDF_PASSWORD"))
    assert "TEST_PDF_PASSWORD" in str(caught.value)
    assert "is not set" in str(caught.value)


def test_encrypted_no_password_source() -> None:
    data = encrypt_pdf(build_pdf(THREE_PAGES), "s3cret", "RC4-128")
    with pytest.raises(InputError) as caught:
        read_pdf(data, "e.pdf", passwords=PasswordSource())
    assert str(caught.value).startswith("e.pdf: encrypted and needs a password")
    assert "--password-env VAR" in str(caught.value)


def test_encrypted_prompt_correct() -> None:
    data = encrypt_pdf(build_pdf(THREE_PAGES), "s3cret", "AES-256")
    asked: list[str] = []

    def prompt(source: str) -> str:
        asked.append(source)
        return "wrong" if len(asked) == 1 else "s3cret"

    document = read_pdf(data, "e.pdf", passwords=PasswordSource(prompt=prompt))
    assert asked == ["e.pdf", "e.pdf"]
    assert "First page text." in document.text


def test_encrypted_prompt_gives_up() -> None:
    data = encrypt_pdf(build_pdf(THREE_PAGES), "s3cret", "AES-256")
    asked: list[str] = []

    def prompt(source: str) -> str:
        asked.append(source)
        return "wrong"

    with pytest.raises(InputError) as caught:
        read_pdf(data, "e.pdf", passwords=PasswordSource(prompt=prompt))
    assert len(asked) == MAX_PASSWORD_PROMPTS
    assert "--password-env VAR" in str(caught.value)


def test_encrypted_prompt_eof() -> None:
    data = encrypt_pdf(build_pdf(THREE_PAGES), "s3cret", "AES-256")

    def prompt(source: str) -> str:
        raise EOFError

    with pytest.raises(InputError):
        read_pdf(data, "e.pdf", passwords=PasswordSource(prompt=prompt))


def test_missing_crypto_dependency(monkeypatch: pytest.MonkeyPatch) -> None:
    data = encrypt_pdf(build_pdf(THREE_PAGES), "", "AES-256")

    def decrypt(self: PdfReader, password: str) -> None:
        raise DependencyError("cryptography>=3.1 is required for AES algorithm")

    monkeypatch.setattr(PdfReader, "decrypt", decrypt)
    with pytest.raises(InputError) as caught:
        read_pdf(data, "e.pdf")
    assert "pypdf[crypto]" in str(caught.value)


def test_unsupported_encryption_is_input_error(monkeypatch: pytest.MonkeyPatch) -> None:
    data = encrypt_pdf(build_pdf(THREE_PAGES), "", "AES-256")

    def decrypt(self: PdfReader, password: str) -> None:
        raise NotImplementedError("only Standard PDF encryption handler is available")

    monkeypatch.setattr(PdfReader, "decrypt", decrypt)
    with pytest.raises(InputError) as caught:
        read_pdf(data, "e.pdf")
    assert "encryption method pypdf cannot open" in str(caught.value)


@pytest.mark.parametrize("keep", [0.2, 0.5, 0.9, 0.99])
def test_truncated_pdf_is_input_error(keep: float) -> None:
    data = build_pdf(THREE_PAGES)
    with pytest.raises(InputError) as caught:
        read_pdf(data[: int(len(data) * keep)], "cut.pdf")
    assert str(caught.value).startswith("cut.pdf: malformed or truncated PDF")
    assert "\n" not in str(caught.value)


def test_header_only_pdf_is_input_error() -> None:
    with pytest.raises(InputError):
        read_pdf(b"%PDF-1.7\n", "stub.pdf")


def test_damaged_pdfs_never_leak_exceptions() -> None:
    # Random damage to a valid and an encrypted file: each attempt either
    # reads or raises InputError, never another exception.
    originals = [build_pdf(THREE_PAGES + [IMAGE_PAGE]), encrypt_pdf(build_pdf(THREE_PAGES), "", "RC4-128")]
    rng = random.Random(20240601)
    outcomes = {"read": 0, "rejected": 0}
    for original in originals:
        for _ in range(150):
            damaged = bytearray(original)
            for _ in range(rng.randint(1, 4)):
                position = rng.randrange(len(damaged))
                if rng.random() < 0.5:
                    damaged[position] = rng.choice(b"0123456789 /<>[]()Robj\xff")
                else:
                    del damaged[position : position + rng.randint(1, 40)]
            try:
                read_pdf(bytes(damaged), "damaged.pdf")
                outcomes["read"] += 1
            except InputError:
                outcomes["rejected"] += 1
    assert outcomes["rejected"] > 0


def test_not_a_pdf_with_pdf_name() -> None:
    with pytest.raises(InputError) as caught:
        load_bytes(b"hello, I am plain text", "fake.pdf", IngestOptions())
    assert str(caught.value).startswith("fake.pdf: not a PDF")


def test_empty_file_with_pdf_name() -> None:
    with pytest.raises(InputError) as caught:
        load_bytes(b"", "empty.pdf", IngestOptions())
    assert "empty.pdf: not a PDF" in str(caught.value)


def test_pdf_detected_by_header_not_name() -> None:
    document = load_bytes(build_pdf(THREE_PAGES), "noext", IngestOptions())
    assert document.pages == 3


def test_pdf_name_allows_leading_junk() -> None:
    data = b"junk before the header\n" + build_pdf(THREE_PAGES)
    document = load_bytes(data, "junk.pdf", IngestOptions())
    assert document.pages == 3


def test_header_mention_in_text_stays_text() -> None:
    document = load_bytes(b"Files start with\n%PDF-1.7 as a header.", "notes.md", IngestOptions())
    assert document.pages is None


def test_page_extraction_failure_warned(monkeypatch: pytest.MonkeyPatch) -> None:
    original = PageObject.extract_text

    def extract_text(self: PageObject, *args: object, **kwargs: object) -> str:
        text = original(self, *args, **kwargs)
        if "Second" in text:
            raise KeyError("/Font")
        return text

    monkeypatch.setattr(PageObject, "extract_text", extract_text)
    document = read_pdf(build_pdf(THREE_PAGES), "r.pdf")
    assert [span.length > 0 for span in document.spans] == [True, False, True]
    assert any("text extraction failed on page 2" in warning for warning in document.warnings)


def test_all_pages_failing_is_malformed(monkeypatch: pytest.MonkeyPatch) -> None:
    def extract_text(self: PageObject, *args: object, **kwargs: object) -> str:
        raise TypeError("can only concatenate str (not \"int\") to str")

    monkeypatch.setattr(PageObject, "extract_text", extract_text)
    with pytest.raises(InputError) as caught:
        read_pdf(build_pdf(THREE_PAGES), "r.pdf")
    assert "malformed PDF" in str(caught.value)
