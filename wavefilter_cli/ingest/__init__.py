"""Document ingestion: PDFs, text and Markdown files, directories and stdin, normalised to one text per input.

``iter_documents`` is the entry point; ``Document`` and ``Span`` are what
later stages (chunking, citations) consume.
"""

from wavefilter_cli.ingest.document import PAGE_SEPARATOR, Document, Span
from wavefilter_cli.ingest.globs import PathFilter
from wavefilter_cli.ingest.load import DEFAULT_MAX_FILE_MB, IngestOptions, iter_documents, load_bytes, load_input
from wavefilter_cli.ingest.normalize import normalize_text
from wavefilter_cli.ingest.pages import PageSelection, parse_page_spec
from wavefilter_cli.ingest.pdf import PasswordSource, read_pdf
from wavefilter_cli.ingest.sources import STDIN, InputFile, Skipped, check_inputs
from wavefilter_cli.ingest.text import read_text

__all__ = [
    "DEFAULT_MAX_FILE_MB",
    "PAGE_SEPARATOR",
    "Document",
    "IngestOptions",
    "InputFile",
    "PageSelection",
    "PasswordSource",
    "PathFilter",
    "STDIN",
    "Skipped",
    "Span",
    "check_inputs",
    "iter_documents",
    "load_bytes",
    "load_input",
    "normalize_text",
    "parse_page_spec",
    "read_pdf",
    "read_text",
]
