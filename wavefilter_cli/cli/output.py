"""The two output streams.

Results go to stdout as raw text, flushed at once, so pipes never see ANSI
codes or Rich's 80-column wrapping. Diagnostics go to a Rich console bound to
stderr, which exists only when stderr is a terminal and ``--quiet`` is off.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Literal

from rich.console import Console

ColorMode = Literal["auto", "always", "never"]


class StdoutClosed(Exception):
    """The reader of stdout went away (``| head``); the CLI stops quietly with status 0.

    Not an OSError on purpose: Typer turns a broken pipe it sees into exit 1.
    """


def write_result(text: str) -> None:
    """Write ``text`` to stdout and flush it immediately."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        raise StdoutClosed() from None


def color_enabled(mode: ColorMode, stream) -> bool:
    """Decide whether ``stream`` gets colour under ``mode`` and the environment.

    ``always`` and ``FORCE_COLOR`` win over ``NO_COLOR`` and ``TERM=dumb``;
    ``auto`` colours only a terminal.
    """
    if mode == "always":
        return True
    if mode == "never":
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return stream.isatty()


@dataclass
class Diagnostics:
    """Where warnings, notices and progress are written (always stderr).

    ``verbosity`` is -1 with ``--quiet``, 0 by default, 1 with ``-v`` and 2
    with ``-vv``. ``console`` is a Rich console on stderr for live views, or
    None when stderr is not a terminal or output is quiet.
    """

    verbosity: int = 0
    color: ColorMode = "auto"
    console: Console | None = None

    @classmethod
    def create(cls, verbosity: int, color: ColorMode) -> "Diagnostics":
        console = None
        if verbosity >= 0 and sys.stderr.isatty():
            console = Console(
                file=sys.stderr,
                no_color=not color_enabled(color, sys.stderr),
                force_terminal=True,
                highlight=False,
            )
        return cls(verbosity=verbosity, color=color, console=console)

    @property
    def styled(self) -> bool:
        return color_enabled(self.color, sys.stderr)

    def _emit(self, prefix: str, style: str, message: str) -> None:
        if self.console is not None and self.styled:
            self.console.print(f"[{style}]{prefix}[/{style}]{message}", markup=True, soft_wrap=True)
        else:
            sys.stderr.write(f"{prefix}{message}\n")
            sys.stderr.flush()

    def warn(self, message: str) -> None:
        """Print a warning unless ``--quiet``."""
        if self.verbosity >= 0:
            self._emit("warning: ", "yellow", message)

    def notice(self, message: str) -> None:
        """Print an informational line (device in use, strategy chosen) unless ``--quiet``."""
        if self.verbosity >= 0:
            self._emit("", "dim", message)

    def debug(self, message: str) -> None:
        """Print a line only with ``-v``."""
        if self.verbosity >= 1:
            self._emit("", "dim", message)

    def error(self, message: str) -> None:
        """Print a one-line error; shown even with ``--quiet``."""
        self._emit("error: ", "bold red", message)
