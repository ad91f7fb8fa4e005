"""PDF inputs: decryption, per-page text extraction with pypdf, and checks for missing or garbled text."""

from __future__ import annotations

import io
import logging
import os
import struct
import warnings
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

from pypdf import PdfReader, PasswordType
from pypdf.errors import DependencyError, PyPdfError

from wavefilter_cli.errors import InputError
from wavefilter_cli.ingest.document import Document, join_pages
from wavefilter_cli.ingest.normalize import normalize_text
from wavefilter_cli.ingest.pages import PageSelection
from wavefilter_cli.ingest.quality import GARBLED_MIN_WORD_SHARE, looks_garbled

logger = logging.getLogger(__name__)

PDF_HEADER = b"%PDF-"

# pypdf's errors module warns that broken files "might cause other Exceptions" than
# its own. Random damage to test files made pypdf 7.1 raise ValueError,
# TypeError and AttributeError. The other built-in types are the usual
# failures of parsing code on bad input.
MALFORMED_PDF_ERRORS: tuple[type[BaseException], ...] = (
    PyPdfError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    RecursionError,
    zlib.error,
    struct.error,
)

MAX_PASSWORD_PROMPTS = 3

_PASSWORD_HINT = "put the password in an environment variable and pass its name with --password-env VAR"


@dataclass(frozen=True)
class PasswordSource:
    """Sources for the password of an encrypted PDF, used when the empty user password fails.

    ``env_var`` names an environment variable that is read only when a file
    needs it. ``prompt`` reads a password from the user and is called with
    the file's name. The CLI sets it only when stdin is a terminal. With
    neither, an encrypted file raises InputError.
    """

    env_var: str | None = None
    prompt: Callable[[str], str] | None = None


PDF_HEADER_SEARCH_BYTES = 1024
"""How far into a ``.pdf`` file the header may start; pypdf 7.1 reads such files despite the leading bytes."""


def has_pdf_header(data: bytes, named_pdf: bool = False) -> bool:
    """Return True when ``data`` starts with ``%PDF-``, or contains it early in a file named ``*.pdf``.

    Some PDF writers put junk before the header. Without a ``.pdf`` name only
    a header at byte 0 counts, so a text file that merely mentions the header
    stays text.
    """
    if data.startswith(PDF_HEADER):
        return True
    return named_pdf and PDF_HEADER in data[:PDF_HEADER_SEARCH_BYTES]


def _malformed(source: str, exc: BaseException) -> InputError:
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return InputError(
        f"{source}: malformed or truncated PDF ({detail}); re-download it or repair it, for example with qpdf"
    )


@contextmanager
def _pdf_errors(source: str) -> Iterator[None]:
    """Turn pypdf's failures while opening or decrypting into one-line InputErrors."""
    try:
        yield
    except NotImplementedError as exc:
        # pypdf raises this for security handlers and encryption versions it lacks.
        raise InputError(
            f"{source}: uses an encryption method pypdf cannot open ({exc}); decrypt it first with qpdf"
        ) from None
    except DependencyError as exc:
        raise InputError(f"{source}: {exc}; install it with pip install 'pypdf[crypto]'") from None
    except MALFORMED_PDF_ERRORS as exc:
        raise _malformed(source, exc) from None


def _open_reader(data: bytes, source: str) -> PdfReader:
    with _pdf_errors(source):
        return PdfReader(io.BytesIO(data))


def _try_password(reader: PdfReader, source: str, password: str) -> bool:
    with _pdf_errors(source):
        return reader.decrypt(password) != PasswordType.NOT_DECRYPTED


def _unlock(reader: PdfReader, source: str, passwords: PasswordSource) -> None:
    """Decrypt ``reader`` in place, trying the empty user password before asking for one."""
    if not reader.is_encrypted or _try_password(reader, source, ""):
        return
    if passwords.env_var is not None:
        password = os.environ.get(passwords.env_var)
        if password is None:
            raise InputError(
                f"{source}: encrypted, but environment variable {passwords.env_var} (from --password-env) "
                f"is not set; export {passwords.env_var} with the PDF's password"
            )
        if not _try_password(reader, source, password):
            raise InputError(
                f"{source}: wrong password in environment variable {passwords.env_var}; "
                f"set it to the PDF's user or owner password"
            )
        return
    if passwords.prompt is not None:
        for _ in range(MAX_PASSWORD_PROMPTS):
            try:
                password = passwords.prompt(source)
            except EOFError:
                break
            if _try_password(reader, source, password):
                return
            logger.info("%s: wrong password", source)
        raise InputError(
            f"{source}: no correct password entered; rerun and type the user or owner password, or {_PASSWORD_HINT}"
        )
    raise InputError(f"{source}: encrypted and needs a password; {_PASSWORD_HINT}")


def format_page_list(pages: list[int]) -> str:
    """Format sorted page numbers compactly, for example ``[2, 3, 4, 9]`` as ``2-4, 9``."""
    parts: list[str] = []
    index = 0
    while index < len(pages):
        end = index
        while end + 1 < len(pages) and pages[end + 1] == pages[end] + 1:
            end += 1
        parts.append(str(pages[index]) if end == index else f"{pages[index]}-{pages[end]}")
        index = end + 1
    return ", ".join(parts)


def _pages_word(pages: list[int]) -> str:
    return f"page {pages[0]}" if len(pages) == 1 else f"pages {format_page_list(pages)}"


def _no_text_error(source: str, page_count: int, selected: list[int]) -> InputError:
    if len(selected) == page_count:
        where = "on its only page" if page_count == 1 else f"on any of its {page_count} pages"
    else:
        where = f"on any of the selected {_pages_word(selected)} (of {page_count})"
    return InputError(f"{source}: no extractable text {where} (scanned?); run OCR first")


def _extract_pages(reader: PdfReader, source: str, selected: list[int]) -> tuple[list[tuple[int, str]], dict[int, str]]:
    """Return normalised text per selected page, and the pages whose extraction raised, with the error."""
    texts: list[tuple[int, str]] = []
    failures: dict[int, str] = {}
    for number in selected:
        try:
            raw = reader.pages[number - 1].extract_text()
        except MALFORMED_PDF_ERRORS as exc:
            failures[number] = f"{type(exc).__name__}: {exc}"
            logger.debug("%s: page %d: text extraction failed: %s", source, number, failures[number])
            raw = ""
        texts.append((number, normalize_text(raw).strip()))
    return texts, failures


def _page_warnings(source: str, texts: list[tuple[int, str]], failures: dict[int, str]) -> list[str]:
    found: list[str] = []
    if failures:
        failed = sorted(failures)
        first = failures[failed[0]]
        subject = "it is" if len(failed) == 1 else "they are"
        found.append(f"{source}: text extraction failed on {_pages_word(failed)} ({first}), so {subject} left out")
    empty = [number for number, text in texts if not text and number not in failures]
    if empty:
        pronoun = "it" if len(empty) == 1 else "them"
        found.append(
            f"{source}: no text on {_pages_word(empty)} (scanned or image-only?); run OCR to include {pronoun}"
        )
    garbled = [number for number, text in texts if looks_garbled(text)]
    if garbled:
        found.append(
            f"{source}: text on {_pages_word(garbled)} looks garbled (under {GARBLED_MIN_WORD_SHARE:.0%} letters or "
            f"digits); the fonts may lack a Unicode mapping, so check the output or run OCR"
        )
    return found


def read_pdf(
    data: bytes,
    source: str,
    pages: PageSelection | None = None,
    passwords: PasswordSource = PasswordSource(),
) -> Document:
    """Extract the normalised text of a PDF's pages into a Document with one span per selected page.

    Raises InputError for a malformed, truncated or undecryptable file, a
    ``pages`` selection beyond the page count, or a file whose selected
    pages hold no text at all. Problems that leave some text (empty,
    failed or garbled pages) become warnings on the Document.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reader = _open_reader(data, source)
        _unlock(reader, source, passwords)
        with _pdf_errors(source):
            page_count = len(reader.pages)
        if page_count == 0:
            raise InputError(f"{source}: the PDF has no pages; pass a PDF with content")
        selected = pages.resolve(source, page_count) if pages is not None else list(range(1, page_count + 1))
        texts, failures = _extract_pages(reader, source, selected)
    for warning in caught:
        logger.debug("%s: pypdf: %s", source, warning.message)

    if not any(text for _, text in texts):
        if len(failures) == len(selected):
            first = failures[min(failures)]
            raise InputError(
                f"{source}: malformed PDF, text extraction failed on every page ({first}); "
                f"re-download it or repair it, for example with qpdf"
            )
        raise _no_text_error(source, page_count, selected)

    found = _page_warnings(source, texts, failures)
    for warning in found:
        logger.debug("%s", warning)
    text, spans = join_pages(source, list(texts))
    return Document(source=source, text=text, spans=spans, pages=page_count, warnings=found)
