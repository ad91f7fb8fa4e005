"""The ``wavefilter`` Typer application and its exit-code handling.

Every command module registers itself on ``app``; ``main`` runs the app and
turns exceptions into the documented exit codes (see docs/cli.md).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Optional

import typer

try:  # Typer 0.2x ships its own copy of Click; older releases use the click package.
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - depends on the installed Typer
    from click import exceptions as click_exceptions

from wavefilter_cli import __version__
from wavefilter_cli.cli.output import ColorMode, Diagnostics, StdoutClosed
from wavefilter_cli.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, WavefilterError

#: Logging level for each verbosity (-1 quiet, 0 default, 1 for -v); -vv and more log everything.
LOG_LEVELS = {-1: logging.WARNING, 0: logging.WARNING, 1: logging.INFO}

app = typer.Typer(
    name="wavefilter",
    help=(
        "Answer questions over long documents with diffusion LLMs and a wavelet-filtered sparse KV cache.\n\n"
        "Examples:\n\n"
        "  wavefilter ask --context report.pdf \"What is the gate code?\"\n\n"
        "  wavefilter demo\n\n"
        "  wavefilter extract report.pdf --pages 3-10\n\n"
        "  wavefilter config show --sources"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        sys.stdout.write(f"wavefilter {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Print only results and errors."),
    verbose: int = typer.Option(0, "-v", "--verbose", count=True, help="More diagnostics; -vv also shows tracebacks."),
    color: str = typer.Option("auto", "--color", envvar="WAVEFILTER_COLOR", help="Colour on stderr: auto, always or never."),
    config: Optional[str] = typer.Option(
        None, "--config", envvar="WAVEFILTER_CONFIG", help="TOML config file, read after ./wavefilter.toml and the user file."
    ),
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."),
) -> None:
    if color not in ("auto", "always", "never"):
        raise typer.BadParameter(f"--color={color!r} is invalid: use auto, always or never")
    verbosity = -1 if quiet else verbose
    diagnostics = Diagnostics.create(verbosity, color)  # type: ignore[arg-type]
    logging.basicConfig(
        level=LOG_LEVELS.get(verbosity, logging.DEBUG if verbosity > 1 else logging.WARNING),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    ctx.obj = {"diagnostics": diagnostics, "config_path": config, "verbosity": verbosity}


def _register_commands() -> None:
    # Imported here so each command module can import ``app`` from this module.
    from wavefilter_cli.cli import commands  # noqa: F401


def _show_traceback() -> bool:
    return os.environ.get("WAVEFILTER_DEBUG") == "1" or any(arg in ("-vv", "-vvv") for arg in sys.argv)


def _silence_stdout() -> None:
    # After a closed pipe, point stdout at devnull so the interpreter's final
    # flush does not print "Exception ignored ... BrokenPipeError".
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: Optional[list[str]] = None) -> None:
    """Run the CLI and exit with the documented code."""
    _register_commands()
    diagnostics = Diagnostics()
    try:
        # Without standalone mode Typer returns the code of an Exit (130 for Ctrl-C) instead of exiting.
        result = app(args=argv, prog_name="wavefilter", standalone_mode=False)
        code = result if isinstance(result, int) else 0
        if code == EXIT_INTERRUPTED:
            sys.stderr.write("\ninterrupted\n")
    except typer.Exit as exc:
        code = exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        sys.stderr.write("\ninterrupted\n")
        code = EXIT_INTERRUPTED
    except click_exceptions.NoArgsIsHelpError as exc:
        # A bare command group: its help is the useful answer.
        exc.show(file=sys.stderr)
        code = exc.exit_code
    except click_exceptions.ClickException as exc:
        # Usage errors (unknown option, missing argument, invalid value): one line and where to look.
        command = exc.ctx.command_path if getattr(exc, "ctx", None) is not None else "wavefilter"
        message = " ".join(exc.format_message().split())
        diagnostics.error(f"{message} (see {command} --help)")
        code = exc.exit_code
    except (BrokenPipeError, StdoutClosed):
        # A reader such as `head` closed stdout: stop quietly with success.
        _silence_stdout()
        code = 0
    except WavefilterError as exc:
        if _show_traceback():
            raise
        diagnostics.error(str(exc))
        code = exc.exit_code
    except Exception as exc:  # noqa: BLE001 - last resort: one line instead of a traceback
        if _show_traceback():
            raise
        diagnostics.error(f"internal error: {type(exc).__name__}: {exc} (rerun with -vv for the traceback and report it)")
        code = EXIT_INTERNAL
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
    sys.exit(code)
