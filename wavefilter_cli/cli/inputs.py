"""Reading the documents named on a command line, shared by ``ask``, ``summarize`` and ``inspect``."""

from __future__ import annotations

import logging
import sys

from wavefilter_cli.cli.extract import _build_options, _resolve_inputs
from wavefilter_cli.cli.output import Diagnostics
from wavefilter_cli.errors import InputError, UsageError
from wavefilter_cli.ingest import Document, Skipped, check_inputs, iter_documents


def read_documents(
    inputs: list[str] | None,
    diagnostics: Diagnostics,
    verbosity: int,
    pages: str | None = None,
    password_env: str | None = None,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    max_file_mb: float = 50.0,
    missing_hint: str | None = None,
) -> list[Document]:
    """Documents for ``inputs`` (stdin when none and stdin is piped); skips are warned about on stderr.

    ``missing_hint`` names the option to use when no input is given on a terminal.
    """
    options = _build_options(pages, password_env, include or [], exclude or [], max_file_mb)
    if not inputs and missing_hint and sys.stdin.isatty():
        raise UsageError(f"no document given; pass {missing_hint}")
    names = _resolve_inputs(inputs)
    check_inputs(names)
    if verbosity < 1:
        logging.getLogger("pypdf").setLevel(logging.ERROR)
    documents, skipped = [], 0
    try:
        for result in iter_documents(names, options, sys.stdin.buffer):
            if isinstance(result, Skipped):
                skipped += 1
                diagnostics.warn(result.message)
                continue
            for warning in result.warnings:
                diagnostics.warn(warning)
            documents.append(result)
    except InputError:
        if inputs or not missing_hint:
            raise
        # No input was named, so stdin was read because it is not a terminal (closed, or an empty pipe).
        raise InputError(f"no document given and stdin has no text; pass {missing_hint}") from None
    if not documents:
        if skipped:
            raise InputError(f"no text to read: all {skipped} inputs were skipped; see the warnings above")
        raise InputError(f"no files found in {', '.join(names)}; check the paths and the --include/--exclude patterns")
    if not any(doc.text.strip() for doc in documents):
        raise InputError(f"the context is empty: {', '.join(d.source for d in documents)} hold no text")
    return documents
