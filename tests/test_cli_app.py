"""Exit codes that no single command owns: internal errors, interrupts and usage errors."""

from __future__ import annotations

import pytest
import typer

from wavefilter_cli.cli import app as app_module


def _run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        app_module.main(argv)
    return exit_info.value.code


@pytest.fixture
def failing_command(monkeypatch):
    """Registers a hidden command that raises whatever the test sets."""
    holder = {}

    @app_module.app.command("raise-for-test", hidden=True)
    def _raise() -> None:
        raise holder["error"]

    yield holder
    app_module.app.registered_commands[:] = [c for c in app_module.app.registered_commands if c.name != "raise-for-test"]


def test_internal_error_is_one_line_exit_1(failing_command, capsys, monkeypatch):
    monkeypatch.delenv("WAVEFILTER_DEBUG", raising=False)
    failing_command["error"] = RuntimeError("boom")
    assert _run(["raise-for-test"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: internal error: RuntimeError: boom")
    assert "Traceback" not in err


def test_debug_env_shows_traceback(failing_command, monkeypatch):
    monkeypatch.setenv("WAVEFILTER_DEBUG", "1")
    failing_command["error"] = RuntimeError("boom")
    with pytest.raises(RuntimeError):
        app_module.main(["raise-for-test"])


def test_interrupt_exits_130(failing_command, capsys):
    failing_command["error"] = KeyboardInterrupt()
    assert _run(["raise-for-test"]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_unknown_command_exits_2(capsys):
    assert _run(["no-such-command"]) == 2
    assert "No such command" in capsys.readouterr().err


def test_version_exits_0(capsys):
    assert _run(["--version"]) == 0
    assert capsys.readouterr().out.startswith("wavefilter ")


def test_bad_color_exits_2(capsys):
    assert _run(["--color", "purple", "config", "path"]) == 2


def test_typer_exit_code_kept(failing_command):
    failing_command["error"] = typer.Exit(code=4)
    assert _run(["raise-for-test"]) == 4
