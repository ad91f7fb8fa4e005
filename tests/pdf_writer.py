"""A minimal PDF writer for test fixtures, so no binary PDFs live in the repository.

Each page is a list of text lines drawn in Helvetica, or an image-only page
that draws a small grey XObject and has no text. Lines whose characters all
exist in WinAnsiEncoding (cp1252) use font /F1 with literal strings. Any
other line, for example one with the ligature U+FB01, uses font /F2, whose
ToUnicode CMap maps one-byte codes to arbitrary code points, so pypdf
extracts exactly the characters given here.

The output follows PDF 1.4 structure closely enough for pypdf: numbered
objects, a classic cross-reference table with correct offsets, a trailer and
``startxref``. It is not meant to be a general PDF library.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from pypdf import PdfReader, PdfWriter

IMAGE_PAGE = None
"""Marker for a page that contains only an image and no text layer."""

_FONT_SIZE = 12
_LINE_HEIGHT = 14
_PAGE_WIDTH = 612
_PAGE_HEIGHT = 792


@dataclass
class _Objects:
    """PDF objects in file order; object numbers start at 1."""

    bodies: list[bytes] = field(default_factory=list)

    def reserve(self) -> int:
        self.bodies.append(b"")
        return len(self.bodies)

    def set(self, number: int, body: bytes) -> None:
        self.bodies[number - 1] = body

    def add(self, body: bytes) -> int:
        number = self.reserve()
        self.set(number, body)
        return number


def _stream(content: bytes, extra: str = "") -> bytes:
    return b"<< /Length %d%s >>\nstream\n" % (len(content), extra.encode("ascii")) + content + b"\nendstream"


def _literal(text: str) -> bytes:
    raw = text.encode("cp1252")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def _fits_winansi(text: str) -> bool:
    try:
        text.encode("cp1252")
    except UnicodeEncodeError:
        return False
    return all(ord(ch) >= 0x20 for ch in text)


class _CustomCodes:
    """One-byte codes for font /F2, allocated per document, one per distinct character."""

    def __init__(self) -> None:
        self.code_of: dict[str, int] = {}

    def encode(self, text: str) -> bytes:
        codes = bytearray()
        for ch in text:
            if ch not in self.code_of:
                if len(self.code_of) >= 255:
                    raise ValueError("pdf_writer supports at most 255 distinct non-WinAnsi characters per document")
                self.code_of[ch] = len(self.code_of) + 1
            codes.append(self.code_of[ch])
        return b"<" + codes.hex().upper().encode("ascii") + b">"

    def to_unicode_cmap(self) -> bytes:
        entries = []
        for ch, code in sorted(self.code_of.items(), key=lambda item: item[1]):
            utf16 = ch.encode("utf-16-be").hex().upper()
            entries.append(f"<{code:02X}> <{utf16}>")
        lines = [
            "/CIDInit /ProcSet findresource begin",
            "12 dict begin",
            "begincmap",
            "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def",
            "/CMapName /Test-UCS def",
            "/CMapType 2 def",
            "1 begincodespacerange",
            "<00> <FF>",
            "endcodespacerange",
        ]
        for start in range(0, len(entries), 100):
            block = entries[start : start + 100]
            lines.append(f"{len(block)} beginbfchar")
            lines.extend(block)
            lines.append("endbfchar")
        lines += ["endcmap", "CMapName currentdict /CMap defineresource pop", "end", "end"]
        return "\n".join(lines).encode("ascii")


def _text_content(lines: list[str], codes: _CustomCodes) -> bytes:
    ops = [b"BT", b"%d TL" % _LINE_HEIGHT, b"72 %d Td" % (_PAGE_HEIGHT - 72)]
    for index, line in enumerate(lines):
        if index:
            ops.append(b"T*")
        if _fits_winansi(line):
            ops.append(b"/F1 %d Tf %s Tj" % (_FONT_SIZE, _literal(line)))
        else:
            ops.append(b"/F2 %d Tf %s Tj" % (_FONT_SIZE, codes.encode(line)))
    ops.append(b"ET")
    return b"\n".join(ops)


def _image_content() -> bytes:
    return b"q 200 0 0 200 72 400 cm /Im1 Do Q"


def build_pdf(pages: list[list[str] | None]) -> bytes:
    """Return the bytes of a PDF with one page per entry of ``pages``.

    An entry is a list of text lines, or ``IMAGE_PAGE`` (None) for a page that
    draws an image and has no text. An empty list gives a blank page.
    """
    objects = _Objects()
    codes = _CustomCodes()
    catalog = objects.reserve()
    pages_root = objects.reserve()
    font_winansi = objects.add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    font_custom = objects.reserve()
    image = objects.add(
        _stream(
            bytes([0x80, 0xC0, 0x40, 0xFF]),
            " /Type /XObject /Subtype /Image /Width 2 /Height 2 /ColorSpace /DeviceGray /BitsPerComponent 8",
        )
    )

    page_numbers = []
    for entry in pages:
        content = _image_content() if entry is IMAGE_PAGE else _text_content(entry, codes)
        content_number = objects.add(_stream(content))
        resources = b"<< /Font << /F1 %d 0 R /F2 %d 0 R >> /XObject << /Im1 %d 0 R >> >>" % (
            font_winansi,
            font_custom,
            image,
        )
        page_numbers.append(
            objects.add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %d %d] /Resources %s /Contents %d 0 R >>"
                % (pages_root, _PAGE_WIDTH, _PAGE_HEIGHT, resources, content_number)
            )
        )

    cmap = objects.add(_stream(codes.to_unicode_cmap()))
    objects.set(
        font_custom,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /FirstChar 1 /LastChar 255 "
        b"/Widths [%s] /ToUnicode %d 0 R >>" % (b" ".join([b"500"] * 255), cmap),
    )
    kids = b" ".join(b"%d 0 R" % number for number in page_numbers)
    objects.set(pages_root, b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(page_numbers)))
    objects.set(catalog, b"<< /Type /Catalog /Pages %d 0 R >>" % pages_root)
    return _serialize(objects, catalog)


def _serialize(objects: _Objects, catalog: int) -> bytes:
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects.bodies, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref_offset = out.tell()
    out.write(b"xref\n0 %d\n" % (len(objects.bodies) + 1))
    out.write(b"0000000000 65535 f \n")
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root %d 0 R >>\n" % (len(objects.bodies) + 1, catalog))
    out.write(b"startxref\n%d\n%%%%EOF\n" % xref_offset)
    return out.getvalue()


def encrypt_pdf(data: bytes, user_password: str, algorithm: str, owner_password: str = "owner-secret") -> bytes:
    """Return ``data`` encrypted by pypdf with ``algorithm`` ("AES-256", "RC4-128", ...).

    An empty ``user_password`` gives a file that opens without a password but
    is still encrypted, as many PDFs with only permission restrictions are.
    """
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm=algorithm)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
