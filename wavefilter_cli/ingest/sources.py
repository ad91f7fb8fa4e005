"""Turn command-line inputs (files, directories, ``-`` for stdin) into a deterministic list of files to read."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from wavefilter_cli.errors import InputError, UsageError
from wavefilter_cli.ingest.globs import PathFilter

logger = logging.getLogger(__name__)

STDIN = "-"
# The source name of piped text. It is also the document's name in the prompt, where a small
# model reads a plain word better than punctuation such as "<stdin>".
STDIN_SOURCE = "stdin"

_HIDDEN_EXAMPLES = 5


@dataclass(frozen=True)
class InputFile:
    """One file to read.

    ``source`` is the name shown in output and stored in Documents. ``path``
    is None for stdin. ``explicit`` is True for files named on the command
    line, whose errors stop the run, and False for files found in a
    directory, whose errors only skip them.
    """

    source: str
    path: Path | None
    explicit: bool


@dataclass(frozen=True)
class Skipped:
    """An input left out, with a one-line message for a warning."""

    source: str
    message: str


def check_inputs(inputs: list[str]) -> None:
    """Raise before any reading when an input is missing or stdin is named twice.

    Missing paths raise InputError naming the path. ``-`` twice is a UsageError.
    """
    if inputs.count(STDIN) > 1:
        raise UsageError("'-' (stdin) is given more than once; name it once")
    for name in inputs:
        if name == STDIN:
            continue
        if not os.path.lexists(name):
            raise InputError(f"{name}: no such file or directory; check the path")
        if not os.path.exists(name):
            raise InputError(f"{name}: broken symbolic link (its target does not exist); check the link")


def _relative(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def walk_directory(root: str, path_filter: PathFilter, visited: set[str]) -> Iterator[InputFile | Skipped]:
    """Yield the files under ``root`` in sorted, depth-first order, and a Skipped for each left out.

    Names starting with "." are skipped and summarised in one Skipped at the
    end. Symbolic links are followed. ``visited`` contains the real paths of
    directories already entered and is shared across inputs, so a link loop
    or a directory reached twice is entered once. Include and exclude patterns
    see paths relative to ``root`` with "/" separators.
    """
    visited.add(os.path.realpath(root))
    hidden: list[str] = []
    # Each stack entry is (absolute path, path relative to root); entries are
    # pushed in reverse so they pop in sorted order.
    stack: list[tuple[str, str]] = []

    def push_children(directory: str, relative: str) -> Iterator[Skipped]:
        try:
            names = sorted(os.listdir(directory))
        except OSError as exc:
            yield Skipped(os.path.join(root, relative), f"cannot list directory ({exc.strerror}); check its permissions")
            return
        for name in reversed(names):
            stack.append((os.path.join(directory, name), _relative(relative, name)))

    yield from push_children(root, "")
    while stack:
        path, relative = stack.pop()
        source = os.path.normpath(os.path.join(root, relative))
        if os.path.basename(relative).startswith("."):
            hidden.append(relative)
            continue
        if os.path.isdir(path):
            if not path_filter.enters_directory(relative):
                logger.debug("%s: excluded by --exclude", source)
                continue
            real = os.path.realpath(path)
            if real in visited:
                message = f"{source}: skipped, it leads to {real}, a directory already read (symbolic link loop?)"
                yield Skipped(source, message)
                continue
            visited.add(real)
            yield from push_children(path, relative)
        elif os.path.isfile(path):
            if path_filter.keeps_file(relative):
                yield InputFile(source=source, path=Path(path), explicit=False)
            else:
                logger.debug("%s: left out by --include/--exclude", source)
        elif os.path.islink(path) and not os.path.exists(path):
            yield Skipped(source, f"{source}: skipped, broken symbolic link")
        else:
            yield Skipped(source, f"{source}: skipped, not a regular file (FIFO, socket or device)")

    if hidden:
        examples = ", ".join(hidden[:_HIDDEN_EXAMPLES]) + (", ..." if len(hidden) > _HIDDEN_EXAMPLES else "")
        yield Skipped(
            root,
            f"{root}: skipped {len(hidden)} hidden file{'s' if len(hidden) != 1 else ''} or folder"
            f"{'s' if len(hidden) != 1 else ''} ({examples}); name a hidden file explicitly to read it",
        )


def expand_inputs(inputs: list[str], path_filter: PathFilter) -> Iterator[InputFile | Skipped]:
    """Yield every file to read, in command-line order, expanding directories recursively.

    Call ``check_inputs`` first; this generator assumes every path exists.
    """
    visited: set[str] = set()
    for name in inputs:
        if name == STDIN:
            yield InputFile(source=STDIN_SOURCE, path=None, explicit=True)
        elif os.path.isdir(name):
            yield from walk_directory(name, path_filter, visited)
        else:
            yield InputFile(source=name, path=Path(name), explicit=True)
