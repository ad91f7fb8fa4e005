"""``wavefilter extract``: show the text the model will see for each input."""

from __future__ import annotations

import getpass
import json
import logging
import math
import re
import sys
from dataclasses import dataclass, field
from typing import Any, List, Optional

import typer

from wavefilter_cli.cli.app import app
from wavefilter_cli.cli.config_cmd import config_from_context
from wavefilter_cli.cli.output import Diagnostics, write_result
from wavefilter_cli.errors import InputError, UsageError
from wavefilter_cli.ingest import (
    DEFAULT_MAX_FILE_MB,
    STDIN,
    Document,
    IngestOptions,
    PasswordSource,
    PathFilter,
    Skipped,
    check_inputs,
    iter_documents,
    parse_page_spec,
)

_ENV_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

EXTRACT_HELP = """Print the normalised text the model will see, with a marker line before each page or file.

Examples:

\b
  wavefilter extract report.pdf --pages 3-10,15
  wavefilter extract notes/ --include '*.md' --exclude 'drafts/**'
  PDF_PASSWORD=... wavefilter extract locked.pdf --password-env PDF_PASSWORD
  cat paper.pdf | wavefilter extract -
  wavefilter extract report.pdf notes.md --json

INPUT is a PDF, a text or Markdown file, a directory (read recursively,
sorted, hidden and binary files skipped) or - for stdin. With no INPUT,
stdin is read when it is not a terminal. Text is NFKC-normalised, control
characters are removed and hyphenated line breaks are joined. Warnings go
to stderr. Exit status: 0 on success, 2 for invalid usage, 3 when an input
is missing or unreadable or no text was extracted.
"""


def _page_marker(source: str, page: int | None) -> str:
    return f"--- {source} ---" if page is None else f"--- {source} · page {page} ---"


def render_document(document: Document) -> str:
    """Render a Document as text blocks, each a marker line and that page's text; empty pages are left out."""
    blocks = []
    for span in document.spans:
        if span.length == 0:
            continue
        blocks.append(f"{_page_marker(document.source, span.page)}\n{document.text[span.start:span.end]}\n")
    return "\n".join(blocks)


def _document_record(document: Document) -> dict[str, Any]:
    is_pdf = document.pages is not None
    return {
        "source": document.source,
        "status": "ok",
        "type": "pdf" if is_pdf else "text",
        "pages": document.pages,
        "selected_pages": [span.page for span in document.spans] if is_pdf else None,
        "pages_with_text": sum(1 for span in document.spans if span.length > 0) if is_pdf else None,
        "characters": len(document.text),
        "warnings": list(document.warnings),
    }


def _skipped_record(skipped: Skipped) -> dict[str, Any]:
    return {"source": skipped.source, "status": "skipped", "warnings": [skipped.message]}


@dataclass
class _Run:
    """Counts and JSON records collected while extracting."""

    records: list[dict[str, Any]] = field(default_factory=list)
    read: int = 0
    skipped: int = 0
    characters: int = 0


def _password_source(password_env: Optional[str]) -> PasswordSource:
    if password_env is not None:
        if not _ENV_VAR_NAME.match(password_env):
            # The value is not echoed, because users sometimes pass the password itself here.
            raise UsageError(
                "--password-env takes the name of an environment variable (letters, digits and underscores), "
                "not the password itself; for example --password-env PDF_PASSWORD"
            )
        return PasswordSource(env_var=password_env)
    if sys.stdin.isatty():
        return PasswordSource(prompt=lambda source: getpass.getpass(f"Password for {source}: "))
    return PasswordSource()


def _resolve_inputs(inputs: Optional[List[str]]) -> list[str]:
    if inputs:
        return list(inputs)
    if sys.stdin.isatty():
        raise UsageError(
            "no INPUT given; name files or directories, or pipe text in and pass - (see wavefilter extract --help)"
        )
    return [STDIN]


def _build_options(
    pages: Optional[str], password_env: Optional[str], include: list[str], exclude: list[str], max_file_mb: float
) -> IngestOptions:
    if not (math.isfinite(max_file_mb) and max_file_mb > 0):
        raise UsageError(f"--max-file-mb {max_file_mb:g} is invalid; give a size in MB above 0, such as 50")
    return IngestOptions(
        pages=parse_page_spec(pages) if pages is not None else None,
        passwords=_password_source(password_env),
        max_file_mb=max_file_mb,
        path_filter=PathFilter.from_patterns(include, exclude),
    )


def _nothing_read_error(run: _Run, inputs: list[str]) -> InputError:
    if run.skipped:
        plural = "s" if run.skipped != 1 else ""
        return InputError(f"no text extracted: every input was skipped; see the {run.skipped} warning{plural} above")
    return InputError(
        f"no files found in {', '.join(inputs)}; check the paths and the --include/--exclude patterns"
    )


@app.command("extract", help=EXTRACT_HELP)
def extract(
    ctx: typer.Context,
    inputs: Optional[List[str]] = typer.Argument(
        None, metavar="INPUT", help="PDF, text or Markdown files, directories, or - for stdin.", show_default=False
    ),
    pages: Optional[str] = typer.Option(
        None, "--pages", metavar="SPEC", help="PDF pages to read, 1-based, such as 3-10,15 or 20- (default: all)."
    ),
    password_env: Optional[str] = typer.Option(
        None,
        "--password-env",
        metavar="VAR",
        help="Name of the environment variable that contains the password of encrypted PDFs. "
        "Without it, a terminal prompts for the password.",
    ),
    include: Optional[List[str]] = typer.Option(
        None,
        "--include",
        metavar="GLOB",
        help="In directories, read only files matching GLOB (repeatable), such as '*.md'. "
        "[config ingest.include, env WAVEFILTER_INCLUDE]",
    ),
    exclude: Optional[List[str]] = typer.Option(
        None,
        "--exclude",
        metavar="GLOB",
        help="In directories, skip files and folders matching GLOB (repeatable). "
        "[config ingest.exclude, env WAVEFILTER_EXCLUDE]",
    ),
    max_file_mb: Optional[float] = typer.Option(
        None,
        "--max-file-mb",
        metavar="MB",
        help=f"Maximum input size in MB (1 MB = 2^20 bytes, default {DEFAULT_MAX_FILE_MB:g}). Larger files in "
        "directories are skipped, and a larger named file is an error. "
        "[config ingest.max_file_mb, env WAVEFILTER_MAX_FILE_MB]",
        show_default=False,
    ),
    json_output: bool = typer.Option(
        False,
        "--json",
        help="Print one JSON document with each file's status, pages, characters and warnings instead of the text.",
    ),
) -> None:
    diagnostics: Diagnostics = ctx.obj["diagnostics"]
    # The flags override the [ingest] settings that ask and summarize also read,
    # so extract shows the same text those commands send to the model.
    config, _ = config_from_context(
        ctx, {"ingest.include": include or None, "ingest.exclude": exclude or None, "ingest.max_file_mb": max_file_mb}
    )
    ingest = config.ingest
    options = _build_options(pages, password_env, ingest.include, ingest.exclude, ingest.max_file_mb)
    names = _resolve_inputs(inputs)
    check_inputs(names)
    if ctx.obj.get("verbosity", 0) < 1:
        # pypdf logs the file defects it repairs as warnings. They are noise unless -v is given.
        logging.getLogger("pypdf").setLevel(logging.ERROR)

    run = _Run()
    for result in iter_documents(names, options, sys.stdin.buffer):
        if isinstance(result, Skipped):
            run.skipped += 1
            diagnostics.warn(result.message)
            run.records.append(_skipped_record(result))
            continue
        run.read += 1
        run.characters += len(result.text)
        for warning in result.warnings:
            diagnostics.warn(warning)
        if json_output:
            run.records.append(_document_record(result))
        else:
            write_result(("\n" if run.read > 1 else "") + render_document(result))

    if json_output:
        summary = {"files": run.records, "read": run.read, "skipped": run.skipped, "characters": run.characters}
        write_result(json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
    if run.read == 0:
        raise _nothing_read_error(run, names)
