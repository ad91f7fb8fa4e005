"""End-to-end tests of `wavefilter extract` in a subprocess: output streams and exit codes."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from pdf_writer import IMAGE_PAGE, build_pdf, encrypt_pdf
from wavefilter_cli.cli import extract as extract_module

TIMEOUT_S = 60


def _env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("WAVEFILTER_")}
    env.pop("FORCE_COLOR", None)
    env["NO_COLOR"] = "1"
    # A user config file with [ingest] settings would change what extract reads.
    env["XDG_CONFIG_HOME"] = "/nonexistent/wavefilter-test-config"
    env.update(extra)
    return env


def _extract(
    cwd: Path, *args: str, stdin: bytes | None = b"", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        [sys.executable, "-m", "wavefilter_cli", "extract", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        env=env or _env(),
        timeout=TIMEOUT_S,
    )
    return subprocess.CompletedProcess(
        completed.args, completed.returncode, completed.stdout.decode("utf-8"), completed.stderr.decode("utf-8")
    )


def _error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.splitlines()
    assert "Traceback" not in result.stderr
    assert lines, "expected an error on stderr"
    return lines[-1]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "report.pdf").write_bytes(build_pdf([["Intro \ufb01rst page."], IMAGE_PAGE, ["Third page."]]))
    (tmp_path / "notes.md").write_bytes(b"# Notes\r\nsome text\r\n")
    return tmp_path


def test_text_output_has_page_markers(workdir: Path) -> None:
    result = _extract(workdir, "report.pdf", "notes.md")
    assert result.returncode == 0
    assert result.stdout == (
        "--- report.pdf · page 1 ---\nIntro first page.\n\n"
        "--- report.pdf · page 3 ---\nThird page.\n\n"
        "--- notes.md ---\n# Notes\nsome text\n"
    )


def test_warnings_only_on_stderr(workdir: Path) -> None:
    result = _extract(workdir, "report.pdf")
    assert result.returncode == 0
    assert "warning" not in result.stdout
    assert result.stderr == "warning: report.pdf: no text on page 2 (scanned or image-only?); run OCR to include it\n"


def test_json_output(workdir: Path) -> None:
    (workdir / "blob.bin").write_bytes(b"\x00\x01\x02")
    result = _extract(workdir, ".", "--json")
    assert result.returncode == 0
    summary = json.loads(result.stdout)
    by_source = {record["source"]: record for record in summary["files"]}
    assert by_source["report.pdf"]["status"] == "ok"
    assert by_source["report.pdf"]["pages"] == 3
    assert by_source["report.pdf"]["pages_with_text"] == 2
    assert by_source["report.pdf"]["characters"] == len("Intro first page.\n\nThird page.")
    assert "no text on page 2" in by_source["report.pdf"]["warnings"][0]
    assert by_source["notes.md"]["type"] == "text"
    assert by_source["blob.bin"]["status"] == "skipped"
    assert summary["read"] == 2
    assert summary["skipped"] == 1
    assert "warning: blob.bin: skipped" in result.stderr


def test_pages_selection(workdir: Path) -> None:
    result = _extract(workdir, "report.pdf", "--pages", "3")
    assert result.returncode == 0
    assert result.stdout == "--- report.pdf · page 3 ---\nThird page.\n"


def test_invalid_pages_exit_2(workdir: Path) -> None:
    result = _extract(workdir, "report.pdf", "--pages", "3-x")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "'3-x'" in _error_line(result)


def test_page_beyond_count_exit_3(workdir: Path) -> None:
    result = _extract(workdir, "report.pdf", "--pages", "2-9")
    assert result.returncode == 3
    assert "3 pages" in _error_line(result)


def test_missing_file_exit_3(workdir: Path) -> None:
    result = _extract(workdir, "absent.pdf")
    assert result.returncode == 3
    assert _error_line(result) == "error: absent.pdf: no such file or directory; check the path"


def test_scanned_pdf_exit_3(tmp_path: Path) -> None:
    (tmp_path / "report.pdf").write_bytes(build_pdf([IMAGE_PAGE] * 12))
    result = _extract(tmp_path, "report.pdf")
    assert result.returncode == 3
    assert result.stdout == ""
    assert result.stderr == "error: report.pdf: no extractable text on any of its 12 pages (scanned?); run OCR first\n"


def test_truncated_pdf_exit_3(tmp_path: Path) -> None:
    data = build_pdf([["some text"]] * 3)
    (tmp_path / "cut.pdf").write_bytes(data[: len(data) // 2])
    result = _extract(tmp_path, "cut.pdf")
    assert result.returncode == 3
    assert len(result.stderr.splitlines()) == 1
    assert _error_line(result).startswith("error: cut.pdf: malformed or truncated PDF")


def test_fake_pdf_exit_3(tmp_path: Path) -> None:
    (tmp_path / "fake.pdf").write_text("<html>not a pdf</html>")
    result = _extract(tmp_path, "fake.pdf")
    assert result.returncode == 3
    assert len(result.stderr.splitlines()) == 1
    assert _error_line(result).startswith("error: fake.pdf: not a PDF")


def test_all_skipped_exit_3(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "blob.bin").write_bytes(b"\x00" * 10)
    result = _extract(tmp_path, "docs")
    assert result.returncode == 3
    assert "warning: docs/blob.bin: skipped, binary file" in result.stderr
    assert _error_line(result) == "error: no text extracted: every input was skipped; see the 1 warning above"


def test_empty_directory_exit_3(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = _extract(tmp_path, "empty")
    assert result.returncode == 3
    assert "no files found in empty" in _error_line(result)


def test_encrypted_password_env(tmp_path: Path) -> None:
    (tmp_path / "locked.pdf").write_bytes(encrypt_pdf(build_pdf([["classified"]]), "s3cret", "AES-256"))
    result = _extract(tmp_path, "locked.pdf", "--password-env", "PDF_PW", env=_env(PDF_PW="s3cret"))
    assert result.returncode == 0
    assert result.stdout == "--- locked.pdf · page 1 ---\nclassified\n"


def test_encrypted_wrong_password_exit_3(tmp_path: Path) -> None:
    (tmp_path / "locked.pdf").write_bytes(encrypt_pdf(build_pdf([["classified"]]), "s3cret", "RC4-128"))
    result = _extract(tmp_path, "locked.pdf", "--password-env", "PDF_PW", env=_env(PDF_PW="guess"))
    assert result.returncode == 3
    assert "wrong password in environment variable PDF_PW" in _error_line(result)


def test_encrypted_without_password_exit_3(tmp_path: Path) -> None:
    (tmp_path / "locked.pdf").write_bytes(encrypt_pdf(build_pdf([["classified"]]), "s3cret", "AES-256"))
    result = _extract(tmp_path, "locked.pdf")
    assert result.returncode == 3
    assert "--password-env VAR" in _error_line(result)


def test_password_env_rejects_password_value(workdir: Path) -> None:
    result = _extract(workdir, "report.pdf", "--password-env", "hunter2!")
    assert result.returncode == 2
    assert "hunter2!" not in result.stderr


def test_no_password_flag(workdir: Path) -> None:
    result = _extract(workdir, "report.pdf", "--password", "x")
    assert result.returncode == 2


@pytest.mark.parametrize("value", ["0", "-1", "inf", "nan"])
def test_invalid_max_file_mb_exit_2(workdir: Path, value: str) -> None:
    result = _extract(workdir, "notes.md", "--max-file-mb", value)
    assert result.returncode == 2
    assert "max_file_mb" in _error_line(result)


def test_config_ingest_settings_apply(tmp_path: Path) -> None:
    (tmp_path / "wavefilter.toml").write_text('[ingest]\nexclude = ["drafts"]\n')
    (tmp_path / "docs" / "drafts").mkdir(parents=True)
    (tmp_path / "docs" / "final.md").write_text("final text")
    (tmp_path / "docs" / "drafts" / "draft.md").write_text("draft text")
    result = _extract(tmp_path, "docs")
    assert result.returncode == 0
    assert result.stdout == "--- docs/final.md ---\nfinal text\n"


def test_flags_override_config(tmp_path: Path) -> None:
    (tmp_path / "wavefilter.toml").write_text('[ingest]\nmax_file_mb = 0.001\nexclude = ["drafts"]\n')
    (tmp_path / "docs" / "drafts").mkdir(parents=True)
    (tmp_path / "docs" / "big.md").write_text("x" * 5000)
    (tmp_path / "docs" / "drafts" / "draft.md").write_text("draft text")
    result = _extract(tmp_path, "docs", "--max-file-mb", "1", "--exclude", "big.md")
    assert result.returncode == 0
    assert result.stdout == "--- docs/drafts/draft.md ---\ndraft text\n"


def test_config_env_variable_applies(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("markdown")
    (tmp_path / "docs" / "b.txt").write_text("plain")
    result = _extract(tmp_path, "docs", env=_env(WAVEFILTER_INCLUDE="*.txt"))
    assert result.returncode == 0
    assert result.stdout == "--- docs/b.txt ---\nplain\n"


def test_stdin_dash_pdf(tmp_path: Path) -> None:
    result = _extract(tmp_path, "-", stdin=build_pdf([["piped pdf"]]))
    assert result.returncode == 0
    assert result.stdout == "--- stdin · page 1 ---\npiped pdf\n"


def test_no_input_reads_piped_stdin(tmp_path: Path) -> None:
    result = _extract(tmp_path, stdin=b"piped text")
    assert result.returncode == 0
    assert result.stdout == "--- stdin ---\npiped text\n"


def test_no_input_with_tty_stdin_exit_2(tmp_path: Path) -> None:
    controller, terminal = pty.openpty()
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "wavefilter_cli", "extract"],
            cwd=tmp_path,
            stdin=terminal,
            capture_output=True,
            env=_env(),
            timeout=TIMEOUT_S,
        )
    finally:
        os.close(terminal)
        os.close(controller)
    assert completed.returncode == 2
    assert b"no INPUT given" in completed.stderr


def test_head_closes_pipe_quietly(tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_text("a line of text\n" * 200_000)
    process = subprocess.Popen(
        [sys.executable, "-m", "wavefilter_cli", "extract", "big.txt"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
    )
    assert process.stdout is not None
    assert process.stdout.readline() == b"--- big.txt ---\n"
    process.stdout.close()
    _, stderr = process.communicate(timeout=TIMEOUT_S)
    assert process.returncode == 0
    assert stderr == b""


def test_inputs_unchanged_by_cli(workdir: Path) -> None:
    before = {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in workdir.iterdir()}
    assert _extract(workdir, ".").returncode == 0
    after = {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in workdir.iterdir()}
    assert after == before


def test_prompt_used_when_stdin_is_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    prompts: list[str] = []

    def fake_getpass(prompt: str) -> str:
        prompts.append(prompt)
        return "typed"

    monkeypatch.setattr(extract_module.sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(extract_module.getpass, "getpass", fake_getpass)
    source = extract_module._password_source(None)
    assert source.prompt is not None
    assert source.prompt("locked.pdf") == "typed"
    assert prompts == ["Password for locked.pdf: "]


def test_no_prompt_without_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extract_module.sys.stdin, "isatty", lambda: False, raising=False)
    assert extract_module._password_source(None).prompt is None
