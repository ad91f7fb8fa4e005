"""Plain-text and Markdown inputs: encoding detection, binary sniffing and normalisation."""

from __future__ import annotations

import codecs
import logging

from wavefilter_cli.errors import InputError
from wavefilter_cli.ingest.document import Document, Span
from wavefilter_cli.ingest.normalize import normalize_text

logger = logging.getLogger(__name__)

SNIFF_BYTES = 8192
"""How much of a file's start the binary check reads."""

BINARY_CONTROL_SHARE = 0.10
"""Share of control bytes (other than TAB, LF, CR, FF, BS and ESC) above which a file counts as binary."""

_TEXT_CONTROLS = frozenset(b"\t\n\r\f\b\x1b")

# UTF-32 first: its little-endian BOM starts with the UTF-16 one.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

# Tried in order after UTF-8 fails. latin-1 decodes any byte, so the chain always ends with text.
FALLBACK_ENCODINGS = ("cp1252", "latin-1")


def _bom_encoding(data: bytes) -> str | None:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding
    return None


def binary_reason(data: bytes) -> str | None:
    """Return why ``data`` looks binary, judged from its first ``SNIFF_BYTES`` bytes, or None for text.

    Files that start with a UTF-16 or UTF-32 byte-order mark are text even
    though they contain NUL bytes.
    """
    if _bom_encoding(data) is not None:
        return None
    head = data[:SNIFF_BYTES]
    if b"\x00" in head:
        return "binary file (NUL bytes in the first 8 KiB)"
    if not head:
        return None
    controls = sum(1 for byte in head if byte < 0x20 and byte not in _TEXT_CONTROLS)
    if controls / len(head) > BINARY_CONTROL_SHARE:
        return f"binary file ({controls} control bytes in the first {len(head)} bytes)"
    return None


def decode_text(data: bytes, source: str) -> tuple[str, list[str]]:
    """Decode ``data`` and return the text and any warnings about the encoding.

    A byte-order mark decides the encoding. Otherwise UTF-8 is tried first,
    then each of ``FALLBACK_ENCODINGS``, and a fallback adds a warning that
    names the first invalid UTF-8 byte.
    """
    bom_encoding = _bom_encoding(data)
    if bom_encoding is not None:
        try:
            return data.decode(bom_encoding), []
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{source}: starts with a {bom_encoding} byte-order mark but is not valid {bom_encoding} "
                f"(byte offset {exc.start}); re-save it as UTF-8"
            ) from None
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError as exc:
        utf8_error = exc
    for encoding in FALLBACK_ENCODINGS:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        bad_byte = data[utf8_error.start]
        warning = (
            f"{source}: not valid UTF-8 (byte 0x{bad_byte:02X} at offset {utf8_error.start}); "
            f"decoded as {encoding}, so check accented characters or re-save the file as UTF-8"
        )
        return text, [warning]
    raise AssertionError("latin-1 decodes every byte sequence")


def read_text(data: bytes, source: str) -> Document:
    """Build a one-span Document from a text or Markdown file's bytes.

    Raises InputError when nothing but whitespace remains after normalisation.
    """
    decoded, warnings = decode_text(data, source)
    text = normalize_text(decoded).rstrip().lstrip("\n")
    if not text:
        raise InputError(f"{source}: no text (the file is empty or only whitespace); pass a file with content")
    for warning in warnings:
        logger.debug("%s", warning)
    return Document(
        source=source,
        text=text,
        spans=[Span(source=source, page=None, start=0, end=len(text))],
        pages=None,
        warnings=warnings,
    )
