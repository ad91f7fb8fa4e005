"""Tests for the `wavefilter config show` and `wavefilter config path` commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wavefilter_cli.cli.app import main
from wavefilter_cli.config import BUILTIN_DIR, KEYS, Config, model_defaults

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

REPO_ROOT = Path(__file__).resolve().parent.parent


class Dirs:
    """Config locations for one test: the user file, the project folder (cwd) and a spare file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.xdg = root / "xdg"
        self.cwd = root / "project"
        self.user_file = self.xdg / "wavefilter" / "config.toml"
        self.project_file = self.cwd / "wavefilter.toml"
        self.explicit_file = root / "run.toml"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Dirs:
    """Point every config location into tmp_path and clear WAVEFILTER_* variables."""
    result = Dirs(tmp_path)
    result.cwd.mkdir()
    for name in list(os.environ):
        if name.startswith("WAVEFILTER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(result.xdg))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(result.cwd)
    return result


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI in this process; return the exit code, stdout and stderr."""
    with pytest.raises(SystemExit) as caught:
        main(list(argv))
    captured = capsys.readouterr()
    return caught.value.code, captured.out, captured.err


def show_lines(out: str) -> dict[str, str]:
    """Map each key of `config show --sources` output to its "value  # source" text."""
    lines = {}
    for line in out.splitlines():
        key, _, rest = line.partition(" = ")
        lines[key] = rest
    return lines


# ---------------------------------------------------------------------------
# config show
# ---------------------------------------------------------------------------


def test_show_prints_every_key(dirs: Dirs, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "config", "show")

    assert code == 0
    assert err == ""
    keys = [line.split(" = ")[0] for line in out.splitlines()]
    assert keys == [info.key for info in KEYS]


def test_show_lines_are_toml(dirs: Dirs, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_cli(capsys, "config", "show")

    defaults = Config().replace(model_defaults("builtin")[0])
    for line in out.splitlines():
        key, _, value = line.partition(" = ")
        parsed = tomllib.loads(f"x = {value}")["x"]
        expected = defaults.get(key)
        assert parsed == ("none" if expected is None else expected), key


def test_show_sources_default(dirs: Dirs, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_cli(capsys, "config", "show", "--sources")

    lines = out.splitlines()
    builtin = f"cache.refresh_every = 8  # model {BUILTIN_DIR / 'config.json'}"

    assert "cache.budget = 0.1  # default" in lines
    assert builtin in lines
    assert all(line.endswith("  # default") for line in lines if line != builtin)


def test_show_without_sources_has_no_comments(dirs: Dirs, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_cli(capsys, "config", "show")

    assert "#" not in out


def test_show_sources_every_level(dirs: Dirs, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    write(dirs.user_file, "[cache]\nbeam = 2\nsink = 1\n")
    write(dirs.project_file, "[cache]\nsink = 2\ntail = 1\n")
    write(dirs.explicit_file, "[cache]\ntail = 2\nlevels = 1\n")
    monkeypatch.setenv("WAVEFILTER_LEVELS", "3")

    code, out, _ = run_cli(capsys, "--config", str(dirs.explicit_file), "config", "show", "--sources")

    lines = show_lines(out)
    assert code == 0
    assert lines["cache.beam"] == f"2  # user file {dirs.user_file}"
    assert lines["cache.sink"] == "2  # ./wavefilter.toml"
    assert lines["cache.tail"] == f"2  # --config {dirs.explicit_file}"
    assert lines["cache.levels"] == "3  # env WAVEFILTER_LEVELS"
    assert lines["cache.budget"] == "0.1  # default"


def test_show_config_from_env_var(dirs: Dirs, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    write(dirs.explicit_file, "[model]\nname = 'local/model'\n")
    monkeypatch.setenv("WAVEFILTER_CONFIG", str(dirs.explicit_file))

    _, out, _ = run_cli(capsys, "config", "show", "--sources")

    assert show_lines(out)["model.name"] == f'"local/model"  # env WAVEFILTER_CONFIG {dirs.explicit_file}'


def test_show_color_flag_is_flag_source(dirs: Dirs, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAVEFILTER_COLOR", "always")

    _, out, _ = run_cli(capsys, "--color", "never", "config", "show", "--sources")

    assert show_lines(out)["output.color"] == '"never"  # flag'


def test_show_color_env_source(dirs: Dirs, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAVEFILTER_COLOR", "always")

    _, out, _ = run_cli(capsys, "config", "show", "--sources")

    assert show_lines(out)["output.color"] == '"always"  # env WAVEFILTER_COLOR'


def test_show_json(dirs: Dirs, capsys: pytest.CaptureFixture[str]) -> None:
    write(dirs.project_file, "[ingest]\ninclude = ['*.pdf']\n")

    code, out, _ = run_cli(capsys, "config", "show", "--json")

    data = json.loads(out)
    assert code == 0
    assert list(data) == ["model", "generate", "cache", "ingest", "output"]
    assert data["generate"]["steps"] is None
    assert data["ingest"]["include"] == ["*.pdf"]
    assert data == Config().replace({"ingest.include": ["*.pdf"], **model_defaults("builtin")[0]}).to_dict()


def test_show_json_with_sources(dirs: Dirs, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAVEFILTER_BUDGET", "128")

    _, out, _ = run_cli(capsys, "config", "show", "--json", "--sources")

    data = json.loads(out)
    assert data["cache"]["budget"] == {"value": 128, "source": "env WAVEFILTER_BUDGET"}
    assert data["cache"]["sink"] == {"value": 4, "source": "default"}


# ---------------------------------------------------------------------------
# config path
# ---------------------------------------------------------------------------


def test_path_lists_locations_in_order(dirs: Dirs, capsys: pytest.CaptureFixture[str]) -> None:
    write(dirs.explicit_file, "")
    write(dirs.user_file, "")

    code, out, _ = run_cli(capsys, "--config", str(dirs.explicit_file), "config", "path")

    lines = out.splitlines()
    assert code == 0
    assert len(lines) == 3
    assert lines[0].startswith("--config")
    assert lines[0].endswith(f"{dirs.explicit_file}  (exists)")
    assert lines[1].startswith("./wavefilter.toml")
    assert lines[1].endswith(f"{dirs.project_file}  (not found)")
    assert lines[2].startswith("user file")
    assert lines[2].endswith(f"{dirs.user_file}  (exists)")


def test_path_without_config(dirs: Dirs, capsys: pytest.CaptureFixture[str]) -> None:
    write(dirs.project_file, "")

    _, out, _ = run_cli(capsys, "config", "path")

    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].endswith(f"{dirs.project_file}  (exists)")
    assert lines[1].endswith(f"{dirs.user_file}  (not found)")


def test_path_labels_config_env(dirs: Dirs, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAVEFILTER_CONFIG", str(dirs.explicit_file))

    _, out, _ = run_cli(capsys, "config", "path")

    assert out.splitlines()[0].startswith("env WAVEFILTER_CONFIG")
    assert out.splitlines()[0].endswith("(not found)")


# ---------------------------------------------------------------------------
# Errors: exit code 2 with the file and key on stderr
# ---------------------------------------------------------------------------


def test_unknown_key_exits_2(dirs: Dirs, capsys: pytest.CaptureFixture[str]) -> None:
    write(dirs.project_file, "[cache]\nbudgt = 0.2\n")

    code, out, err = run_cli(capsys, "config", "show")

    assert code == 2
    assert out == ""
    assert err == f"error: {dirs.project_file}: unknown key cache.budgt: did you mean cache.budget?\n"


def test_wrong_type_exits_2(dirs: Dirs, capsys: pytest.CaptureFixture[str]) -> None:
    write(dirs.user_file, '[cache]\nbudget = "ten"\n')

    code, _, err = run_cli(capsys, "config", "show")

    assert code == 2
    assert err == f'error: {dirs.user_file}: cache.budget must be a number, got "ten"\n'


def test_bad_toml_exits_2(dirs: Dirs, capsys: pytest.CaptureFixture[str]) -> None:
    write(dirs.explicit_file, "[cache\n")

    code, _, err = run_cli(capsys, "--config", str(dirs.explicit_file), "config", "show")

    assert code == 2
    assert str(dirs.explicit_file) in err
    assert "invalid TOML" in err
    assert "line 1" in err


def test_missing_config_exits_2(dirs: Dirs, capsys: pytest.CaptureFixture[str]) -> None:
    missing = dirs.root / "absent.toml"

    code, _, err = run_cli(capsys, "--config", str(missing), "config", "show")

    assert code == 2
    assert str(missing) in err
    assert "not found" in err


def test_invalid_env_exits_2(dirs: Dirs, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAVEFILTER_BUDGET", "1.5")

    code, _, err = run_cli(capsys, "config", "show")

    assert code == 2
    assert err == 'error: WAVEFILTER_BUDGET="1.5" is invalid: use a ratio in (0, 1] or a token count ≥ 16\n'


# ---------------------------------------------------------------------------
# As a separate process
# ---------------------------------------------------------------------------


def run_module(dirs: Dirs, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {name: value for name, value in os.environ.items() if not name.startswith("WAVEFILTER_")}
    base.update({"XDG_CONFIG_HOME": str(dirs.xdg), "HOME": str(dirs.root / "home"), "PYTHONPATH": str(REPO_ROOT)})
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "wavefilter_cli", *argv],
        cwd=dirs.cwd, env=base, capture_output=True, text=True, timeout=60, check=False,
    )


def test_module_show_sources(dirs: Dirs) -> None:
    write(dirs.project_file, "[generate]\nmax_tokens = 96\n")

    result = run_module(dirs, "config", "show", "--sources", env={"WAVEFILTER_SEED": "5"})

    assert result.returncode == 0, result.stderr
    lines = show_lines(result.stdout)
    assert lines["generate.max_tokens"] == "96  # ./wavefilter.toml"
    assert lines["generate.seed"] == "5  # env WAVEFILTER_SEED"


def test_module_unknown_section_exits_2(dirs: Dirs) -> None:
    write(dirs.project_file, "[modle]\nname = 'x'\n")

    result = run_module(dirs, "config", "show")

    assert result.returncode == 2
    assert result.stdout == ""
    assert f"{dirs.project_file}: unknown section [modle]: did you mean model?" in result.stderr
