"""Read each input's bytes, choose PDF or text by content, and return Documents or skips."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator

from wavefilter_cli.errors import InputError
from wavefilter_cli.ingest.document import Document
from wavefilter_cli.ingest.globs import PathFilter
from wavefilter_cli.ingest.pages import PageSelection
from wavefilter_cli.ingest.pdf import PasswordSource, has_pdf_header, read_pdf
from wavefilter_cli.ingest.sources import InputFile, Skipped, expand_inputs
from wavefilter_cli.ingest.text import binary_reason, read_text

logger = logging.getLogger(__name__)

BYTES_PER_MB = 1024 * 1024
DEFAULT_MAX_FILE_MB = 50.0


@dataclass(frozen=True)
class IngestOptions:
    """Settings shared by every input of one run."""

    pages: PageSelection | None = None
    passwords: PasswordSource = field(default_factory=PasswordSource)
    max_file_mb: float = DEFAULT_MAX_FILE_MB
    path_filter: PathFilter = field(default_factory=PathFilter)

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * BYTES_PER_MB)


def _too_large(source: str, size: int, options: IngestOptions) -> InputError:
    return InputError(
        f"{source}: {size / BYTES_PER_MB:.1f} MB is over the --max-file-mb {options.max_file_mb:g} limit; "
        f"raise --max-file-mb to read it"
    )


def read_input_bytes(item: InputFile, options: IngestOptions, stdin: BinaryIO) -> bytes:
    """Read an input's bytes, opened read-only, and raise InputError when it is over the size limit.

    The size check reads at most one byte past the limit, so a huge file or
    stream is never loaded whole.
    """
    limit = options.max_file_bytes
    if item.path is None:
        data = stdin.read(limit + 1)
    else:
        try:
            size = os.stat(item.path).st_size
            if size > limit:
                raise _too_large(item.source, size, options)
            with open(item.path, "rb") as handle:
                data = handle.read(limit + 1)
        except PermissionError:
            raise InputError(f"{item.source}: permission denied; make the file readable") from None
        except IsADirectoryError:
            raise InputError(f"{item.source}: is a directory; pass the directory itself, not a file inside it") from None
        except OSError as exc:
            raise InputError(f"{item.source}: cannot read ({exc.strerror}); check the file") from None
    if len(data) > limit:
        raise _too_large(item.source, len(data), options)
    return data


def load_bytes(data: bytes, source: str, options: IngestOptions) -> Document:
    """Turn one input's bytes into a Document, as PDF when ``has_pdf_header`` finds a header and as text otherwise.

    Raises InputError for a ``.pdf`` name without a PDF header, binary
    content, or any error of the PDF or text reader.
    """
    named_pdf = source.lower().endswith(".pdf")
    if has_pdf_header(data, named_pdf):
        return read_pdf(data, source, options.pages, options.passwords)
    if named_pdf:
        start = data[:8]
        raise InputError(f"{source}: not a PDF (it starts with {start!r}, not %PDF-); check that the file is complete")
    reason = binary_reason(data)
    if reason is not None:
        raise InputError(f"{source}: {reason}, neither text nor PDF; pass a text, Markdown or PDF file")
    document = read_text(data, source)
    if options.pages is not None:
        document.warnings.append(f"{source}: --pages applies only to PDFs; reading the whole text file")
    return document


def load_input(item: InputFile, options: IngestOptions, stdin: BinaryIO) -> Document:
    """Read and convert one input; raises InputError as ``load_bytes`` and ``read_input_bytes`` do."""
    data = read_input_bytes(item, options, stdin)
    return load_bytes(data, item.source, options)


def iter_documents(inputs: list[str], options: IngestOptions, stdin: BinaryIO) -> Iterator[Document | Skipped]:
    """Yield a Document for each readable input and a Skipped for each one left out, in input order.

    An error in a file named on the command line propagates as InputError.
    An error in a file found inside a directory becomes a Skipped, so one bad
    file does not stop a whole folder.
    """
    for item in expand_inputs(inputs, options.path_filter):
        if isinstance(item, Skipped):
            yield item
            continue
        try:
            yield load_input(item, options, stdin)
        except InputError as exc:
            if item.explicit:
                raise
            message = str(exc)
            prefix = f"{item.source}: "
            reason = message[len(prefix):] if message.startswith(prefix) else message
            yield Skipped(item.source, f"{item.source}: skipped, {reason}")
