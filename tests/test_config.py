"""Tests for wavefilter_cli.config: types, rules, file and environment parsing, and precedence."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import typer

from wavefilter_cli import config as cfg
from wavefilter_cli.config import (
    KEYS,
    CacheConfig,
    Config,
    GenerateConfig,
    IngestConfig,
    ModelConfig,
    OutputConfig,
    config_paths,
    format_value,
    key_table_markdown,
    load_config,
)
from wavefilter_cli.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Layout:
    """Isolated config locations: a user folder, a project folder and an explicit file."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def xdg(self) -> Path:
        return self.root / "xdg"

    @property
    def cwd(self) -> Path:
        return self.root / "project"

    @property
    def user_file(self) -> Path:
        return self.xdg / "wavefilter" / "config.toml"

    @property
    def project_file(self) -> Path:
        return self.cwd / "wavefilter.toml"

    @property
    def explicit_file(self) -> Path:
        return self.root / "explicit.toml"

    def load(self, config_path: str | None = None, overrides: dict[str, object] | None = None):
        return load_config(config_path=config_path, overrides=overrides, env=self.env, cwd=self.cwd)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    result = Layout(tmp_path)
    result.cwd.mkdir()
    result.env["XDG_CONFIG_HOME"] = str(result.xdg)
    return result


# ---------------------------------------------------------------------------
# Precedence
# ---------------------------------------------------------------------------

LEVELS = ["default", "user", "project", "explicit", "env", "flag"]


def set_budget(layout: Layout, level: str, value: float) -> tuple[str | None, dict[str, object]]:
    """Set cache.budget at one level; return the config_path and overrides that level needs."""
    body = f"[cache]\nbudget = {value}\n"
    if level == "user":
        write(layout.user_file, body)
    elif level == "project":
        write(layout.project_file, body)
    elif level == "explicit":
        write(layout.explicit_file, body)
        return str(layout.explicit_file), {}
    elif level == "env":
        layout.env["WAVEFILTER_BUDGET"] = str(value)
    elif level == "flag":
        return None, {"cache.budget": value}
    return None, {}


def expected_source(layout: Layout, level: str) -> str:
    return {
        "default": "default",
        "user": f"user file {layout.user_file}",
        "project": "./wavefilter.toml",
        "explicit": f"--config {layout.explicit_file}",
        "env": "env WAVEFILTER_BUDGET",
        "flag": "flag",
    }[level]


@pytest.mark.parametrize("lower, higher", list(zip(LEVELS, LEVELS[1:])))
def test_precedence_neighbours(layout: Layout, lower: str, higher: str) -> None:
    config_path: str | None = None
    overrides: dict[str, object] = {}
    for level, value in ((lower, 0.2), (higher, 0.3)):
        if level == "default":
            continue
        path, extra = set_budget(layout, level, value)
        config_path = path or config_path
        overrides.update(extra)

    config, sources = layout.load(config_path, overrides)

    assert config.cache.budget == 0.3
    assert sources["cache.budget"] == expected_source(layout, higher)


def test_precedence_all_levels(layout: Layout) -> None:
    config_path: str | None = None
    overrides: dict[str, object] = {}
    for index, level in enumerate(LEVELS[1:], start=2):
        path, extra = set_budget(layout, level, index / 10)
        config_path = path or config_path
        overrides.update(extra)

    config, sources = layout.load(config_path, overrides)

    assert config.cache.budget == 0.6
    assert sources["cache.budget"] == "flag"


@pytest.mark.parametrize("level", LEVELS[1:])
def test_precedence_each_level_alone(layout: Layout, level: str) -> None:
    path, overrides = set_budget(layout, level, 0.25)

    config, sources = layout.load(path, overrides)

    assert config.cache.budget == 0.25
    assert sources["cache.budget"] == expected_source(layout, level)
    assert sources["cache.sink"] == "default"


def test_layers_merge_per_key(layout: Layout) -> None:
    write(layout.user_file, "[cache]\nsink = 8\nbudget = 0.5\n")
    write(layout.project_file, "[cache]\nbudget = 0.25\n")

    config, sources = layout.load()

    assert config.cache.sink == 8
    assert sources["cache.sink"] == f"user file {layout.user_file}"
    assert config.cache.budget == 0.25
    assert sources["cache.budget"] == "./wavefilter.toml"


def test_defaults_without_files(layout: Layout) -> None:
    config, sources = layout.load()
    builtin_source = f"model {cfg.BUILTIN_DIR / 'config.json'}"

    assert config == Config().replace({"cache.refresh_every": 8})
    assert set(sources) == {info.key for info in KEYS}
    assert sources.pop("cache.refresh_every") == builtin_source
    assert set(sources.values()) == {"default"}


# ---------------------------------------------------------------------------
# Settings a checkpoint recommends
# ---------------------------------------------------------------------------


def checkpoint(tmp_path: Path, defaults: object) -> Path:
    """Write a checkpoint folder whose config.json carries ``defaults`` as its wavefilter_defaults."""
    folder = tmp_path / "model"
    write(folder / "config.json", json.dumps({"model_type": "llada", "wavefilter_defaults": defaults}))
    return folder


def test_model_defaults_fill_unset_keys(layout: Layout, tmp_path: Path) -> None:
    folder = checkpoint(tmp_path, {"cache.refresh_every": 4, "generate.block_length": 16})
    config, sources = layout.load(overrides={"model.name": str(folder), "generate.block_length": 64})

    assert config.cache.refresh_every == 4
    assert sources["cache.refresh_every"] == f"model {folder / 'config.json'}"
    assert config.generate.block_length == 64
    assert sources["generate.block_length"] == "flag"


@pytest.mark.parametrize("level", ["project", "env", "flag"])
def test_model_defaults_yield_to_user(layout: Layout, level: str) -> None:
    if level == "project":
        write(layout.project_file, "[cache]\nrefresh_every = 0\n")
    elif level == "env":
        layout.env["WAVEFILTER_REFRESH_EVERY"] = "none"
    config, _ = layout.load(overrides={"cache.refresh_every": 0} if level == "flag" else None)

    assert not config.cache.refresh_every


def test_model_without_defaults_keeps_defaults(layout: Layout, tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    write(folder / "config.json", json.dumps({"model_type": "llada"}))
    config, sources = layout.load(overrides={"model.name": str(folder)})

    assert config == Config().replace({"model.name": str(folder)})
    assert sources["cache.refresh_every"] == "default"


@pytest.mark.parametrize(
    "defaults, message",
    [
        ({"cache.refresh": 8}, "unknown key cache.refresh"),
        ({"cache.refresh_every": -1}, "cache.refresh_every"),
        ([8], "must be an object"),
    ],
)
def test_bad_model_defaults_name_the_file(layout: Layout, tmp_path: Path, defaults: object, message: str) -> None:
    folder = checkpoint(tmp_path, defaults)
    with pytest.raises(UsageError) as caught:
        layout.load(overrides={"model.name": str(folder)})

    assert message in str(caught.value)
    assert str(folder / "config.json") in str(caught.value)


def test_default_values_match_spec() -> None:
    config = Config()
    assert config.model == ModelConfig(name="builtin", device="auto", dtype="auto", offline=False)
    assert config.generate.max_tokens == 64
    assert config.generate.steps is None
    assert config.generate.block_length == 32
    assert config.generate.sampler == "low-confidence"
    assert config.generate.threshold == 0.9
    assert config.generate.temperature == 0.0
    assert config.generate.seed == 0
    assert config.cache.method == "prefix"
    assert config.cache.filter is None
    assert config.cache.budget == 0.1
    assert (config.cache.sink, config.cache.tail, config.cache.levels, config.cache.beam) == (4, 32, 2, 8)
    assert config.cache.evict is True
    assert config.cache.wavelet == "haar"
    assert config.ingest == IngestConfig(max_file_mb=50.0, include=[], exclude=[])
    assert config.output == OutputConfig(color="auto", progress="auto")


# ---------------------------------------------------------------------------
# File locations
# ---------------------------------------------------------------------------


def test_user_file_under_xdg(layout: Layout) -> None:
    write(layout.user_file, "[model]\nname = 'from-user'\n")

    config, sources = layout.load()

    assert config.model.name == "from-user"
    assert sources["model.name"] == f"user file {layout.user_file}"


def test_user_file_without_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    expected = Path(typer.get_app_dir("wavefilter")) / "config.toml"
    write(expected, "[cache]\nsink = 7\n")
    cwd = tmp_path / "project"
    cwd.mkdir()

    config, sources = load_config(env={"HOME": str(tmp_path)}, cwd=cwd)

    assert str(expected).startswith(str(tmp_path))
    assert config.cache.sink == 7
    assert sources["cache.sink"] == f"user file {expected}"


def test_empty_xdg_counts_as_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))

    assert cfg.user_config_path({"XDG_CONFIG_HOME": ""}) == Path(typer.get_app_dir("wavefilter")) / "config.toml"


def test_config_env_var_selects_file(layout: Layout) -> None:
    write(layout.explicit_file, "[cache]\ntail = 9\n")
    layout.env["WAVEFILTER_CONFIG"] = str(layout.explicit_file)

    config, sources = layout.load()

    assert config.cache.tail == 9
    assert sources["cache.tail"] == f"env WAVEFILTER_CONFIG {layout.explicit_file}"


def test_config_path_beats_config_env(layout: Layout) -> None:
    other = write(layout.root / "other.toml", "[cache]\ntail = 1\n")
    write(layout.explicit_file, "[cache]\ntail = 9\n")
    layout.env["WAVEFILTER_CONFIG"] = str(other)

    config, sources = layout.load(str(layout.explicit_file))

    assert config.cache.tail == 9
    assert sources["cache.tail"] == f"--config {layout.explicit_file}"


def test_relative_config_path_uses_cwd(layout: Layout) -> None:
    write(layout.cwd / "conf" / "run.toml", "[cache]\nbeam = 3\n")

    config, _ = layout.load("conf/run.toml")

    assert config.cache.beam == 3


def test_missing_config_file(layout: Layout) -> None:
    missing = layout.root / "nope.toml"

    with pytest.raises(UsageError) as caught:
        layout.load(str(missing))

    assert str(missing) in str(caught.value)
    assert "not found" in str(caught.value)


def test_missing_config_env_file(layout: Layout) -> None:
    missing = layout.root / "nope.toml"
    layout.env["WAVEFILTER_CONFIG"] = str(missing)

    with pytest.raises(UsageError) as caught:
        layout.load()

    assert str(missing) in str(caught.value)
    assert "WAVEFILTER_CONFIG" in str(caught.value)


def test_config_path_is_folder(layout: Layout) -> None:
    with pytest.raises(UsageError) as caught:
        layout.load(str(layout.cwd))

    assert str(layout.cwd) in str(caught.value)
    assert "is a folder, not a file" in str(caught.value)


def test_config_paths_order_and_existence(layout: Layout) -> None:
    write(layout.user_file, "")
    write(layout.explicit_file, "")

    files = config_paths(str(layout.explicit_file), env=layout.env, cwd=layout.cwd)

    assert [item.label for item in files] == ["--config", "./wavefilter.toml", "user file"]
    assert [item.path for item in files] == [layout.explicit_file, layout.project_file, layout.user_file]
    assert [item.exists for item in files] == [True, False, True]


def test_config_paths_without_explicit(layout: Layout) -> None:
    files = config_paths(env=layout.env, cwd=layout.cwd)

    assert [item.label for item in files] == ["./wavefilter.toml", "user file"]


# ---------------------------------------------------------------------------
# TOML errors
# ---------------------------------------------------------------------------


def load_error(layout: Layout, text: str) -> str:
    write(layout.project_file, text)
    with pytest.raises(UsageError) as caught:
        layout.load()
    return str(caught.value)


def test_unknown_section(layout: Layout) -> None:
    message = load_error(layout, "[cach]\nbudget = 0.2\n")

    assert str(layout.project_file) in message
    assert "unknown section [cach]" in message
    assert "did you mean cache?" in message


def test_unknown_key_suggests_close_match(layout: Layout) -> None:
    message = load_error(layout, "[cache]\nbudgt = 0.2\n")

    assert message == f"{layout.project_file}: unknown key cache.budgt: did you mean cache.budget?"


def test_unknown_key_lists_keys(layout: Layout) -> None:
    message = load_error(layout, "[output]\nzzz = 1\n")

    assert "unknown key output.zzz" in message
    assert "color, progress" in message


def test_key_outside_section(layout: Layout) -> None:
    message = load_error(layout, "budget = 0.2\n")

    assert "budget is outside a section" in message
    assert "[cache]" in message


def test_section_not_a_table(layout: Layout) -> None:
    message = load_error(layout, "model = 3\n")

    assert f"{layout.project_file}: model must be a table" in message


def test_wrong_type_names_key_file_and_type(layout: Layout) -> None:
    write(layout.user_file, '[cache]\nbudget = "ten"\n')

    with pytest.raises(UsageError) as caught:
        layout.load()

    assert str(caught.value) == f'{layout.user_file}: cache.budget must be a number, got "ten"'


def test_bool_rejected_for_int(layout: Layout) -> None:
    message = load_error(layout, "[generate]\nmax_tokens = true\n")

    assert message == f"{layout.project_file}: generate.max_tokens must be an integer, got true"


def test_bool_rejected_for_float(layout: Layout) -> None:
    message = load_error(layout, "[generate]\ntemperature = false\n")

    assert "generate.temperature must be a number, got false" in message


def test_float_rejected_for_int(layout: Layout) -> None:
    message = load_error(layout, "[cache]\nsink = 4.0\n")

    assert "cache.sink must be an integer, got 4.0" in message


def test_int_rejected_for_bool(layout: Layout) -> None:
    message = load_error(layout, "[cache]\nevict = 1\n")

    assert "cache.evict must be true or false, got 1" in message


def test_int_accepted_for_float(layout: Layout) -> None:
    write(layout.project_file, "[generate]\nthreshold = 1\ntemperature = 0\n")

    config, _ = layout.load()

    assert config.generate.threshold == 1.0
    assert isinstance(config.generate.threshold, float)
    assert isinstance(config.generate.temperature, float)


def test_literal_choice_rejected(layout: Layout) -> None:
    message = load_error(layout, '[model]\ndtype = "f16"\n')

    assert 'model.dtype must be one of "auto", "bf16", "fp16", "fp32", got "f16"' in message


def test_sampler_choice_rejected(layout: Layout) -> None:
    message = load_error(layout, '[generate]\nsampler = "greedy"\n')

    assert 'generate.sampler must be one of "low-confidence"' in message


def test_list_must_hold_strings(layout: Layout) -> None:
    message = load_error(layout, "[ingest]\ninclude = [1, 2]\n")

    assert "ingest.include must be a list of strings, got [1, 2]" in message


def test_table_given_for_value(layout: Layout) -> None:
    message = load_error(layout, "[cache.budget]\nx = 1\n")

    assert "cache.budget must be a number, got a table" in message


def test_rule_violation_names_file(layout: Layout) -> None:
    message = load_error(layout, "[cache]\nbudget = 1.5\n")

    assert message == f"{layout.project_file}: cache.budget=1.5 is invalid: use a ratio in (0, 1] or a token count ≥ 16"


def test_bad_toml_names_file_and_line(layout: Layout) -> None:
    message = load_error(layout, "[cache]\nbudget = = 2\n")

    assert message.startswith(f"{layout.project_file}: invalid TOML")
    assert "line 2" in message


def test_non_utf8_file(layout: Layout) -> None:
    layout.project_file.write_bytes(b"[model]\nname = '\xff'\n")

    with pytest.raises(UsageError) as caught:
        layout.load()

    assert str(layout.project_file) in str(caught.value)
    assert "UTF-8" in str(caught.value)


def test_none_word_unsets_optional(layout: Layout) -> None:
    write(layout.user_file, "[generate]\nsteps = 8\ntop_k = 5\n")
    write(layout.project_file, '[generate]\nsteps = "none"\n')

    config, sources = layout.load()

    assert config.generate.steps is None
    assert sources["generate.steps"] == "./wavefilter.toml"
    assert config.generate.top_k == 5


def test_optional_wrong_type_mentions_none(layout: Layout) -> None:
    message = load_error(layout, '[generate]\nsteps = "many"\n')

    assert 'generate.steps must be an integer or "none", got "many"' in message


def test_every_key_readable_from_toml(layout: Layout) -> None:
    values = {
        "model.name": "my/model", "model.device": "cuda:1", "model.dtype": "bf16", "model.offline": True,
        "model.ctx_tokens": 2048,
        "generate.max_tokens": 128, "generate.steps": 64, "generate.block_length": 16, "generate.sampler": "entropy",
        "generate.threshold": 0.5, "generate.factor": 1.5, "generate.temperature": 0.7, "generate.top_p": 0.95,
        "generate.top_k": 40, "generate.alg_temp": 0.1, "generate.seed": 7, "generate.system": 'Say "hi"\n',
        "generate.chunk": False, "generate.strategy": "map-reduce", "generate.chunk_tokens": 1024,
        "generate.chunk_overlap": 0, "generate.positions": "original", "generate.keep_unit": "sentences",
        "generate.keep_tokens": 1024,
        "cache.method": "dual", "cache.refresh_every": 8, "cache.filter": "wavefilter", "cache.budget": 512, "cache.sink": 0, "cache.tail": 0,
        "cache.evict": False, "cache.wavelet": "db2", "cache.levels": 8, "cache.beam": 1,
        "ingest.max_file_mb": 0.5, "ingest.include": ["*.pdf", "*.md"], "ingest.exclude": ["draft*"],
        "output.color": "never", "output.progress": "jsonl",
    }
    assert set(values) == {info.key for info in KEYS}
    sections: dict[str, list[str]] = {}
    for key, value in values.items():
        section, name = key.split(".")
        sections.setdefault(section, []).append(f"{name} = {format_value(value)}")
    write(layout.project_file, "".join(f"[{s}]\n" + "\n".join(lines) + "\n" for s, lines in sections.items()))

    config, sources = layout.load()

    for key, value in values.items():
        assert config.get(key) == value, key
        assert sources[key] == "./wavefilter.toml", key


# ---------------------------------------------------------------------------
# Environment variables
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [("1", True), ("true", True), ("TRUE", True), ("yes", True), ("0", False), ("false", False), ("No", False)],
)
def test_env_bool_words(layout: Layout, text: str, expected: bool) -> None:
    layout.env["WAVEFILTER_OFFLINE"] = text

    config, sources = layout.load()

    assert config.model.offline is expected
    assert sources["model.offline"] == "env WAVEFILTER_OFFLINE"


def test_env_bad_bool_names_variable(layout: Layout) -> None:
    layout.env["WAVEFILTER_EVICT"] = "maybe"

    with pytest.raises(UsageError) as caught:
        layout.load()

    assert str(caught.value) == 'WAVEFILTER_EVICT="maybe" is invalid: cache.evict must be one of 1, 0, true, false, yes, no'


def test_env_bad_int_names_variable(layout: Layout) -> None:
    layout.env["WAVEFILTER_MAX_TOKENS"] = "1.5"

    with pytest.raises(UsageError) as caught:
        layout.load()

    assert str(caught.value) == 'WAVEFILTER_MAX_TOKENS="1.5" is invalid: generate.max_tokens must be an integer'


def test_env_bad_float_names_variable(layout: Layout) -> None:
    layout.env["WAVEFILTER_BUDGET"] = "ten"

    with pytest.raises(UsageError) as caught:
        layout.load()

    assert "WAVEFILTER_BUDGET" in str(caught.value)
    assert "cache.budget must be a number" in str(caught.value)


def test_env_rule_violation_names_variable(layout: Layout) -> None:
    layout.env["WAVEFILTER_LEVELS"] = "9"

    with pytest.raises(UsageError) as caught:
        layout.load()

    assert str(caught.value) == 'WAVEFILTER_LEVELS="9" is invalid: use an integer from 1 to 8'


def test_env_literal_rejected(layout: Layout) -> None:
    layout.env["WAVEFILTER_PROGRESS"] = "bar"

    with pytest.raises(UsageError) as caught:
        layout.load()

    assert "WAVEFILTER_PROGRESS" in str(caught.value)
    assert '"rich"' in str(caught.value)


def test_env_values_parsed_to_field_type(layout: Layout) -> None:
    layout.env.update(
        {
            "WAVEFILTER_MODEL": "org/name",
            "WAVEFILTER_CACHE": "elastic",
            "WAVEFILTER_MAX_TOKENS": " 256 ",
            "WAVEFILTER_THRESHOLD": "0.75",
            "WAVEFILTER_BUDGET": "1024",
            "WAVEFILTER_INCLUDE": "*.pdf, *.txt,,",
        }
    )

    config, sources = layout.load()

    assert config.model.name == "org/name"
    assert config.cache.method == "elastic"
    assert sources["cache.method"] == "env WAVEFILTER_CACHE"
    assert config.generate.max_tokens == 256
    assert config.generate.threshold == 0.75
    assert config.cache.budget == 1024
    assert isinstance(config.cache.budget, int)
    assert config.ingest.include == ["*.pdf", "*.txt"]


def test_env_empty_value_ignored(layout: Layout) -> None:
    write(layout.project_file, "[cache]\nsink = 6\n")
    layout.env["WAVEFILTER_SINK"] = ""

    config, sources = layout.load()

    assert config.cache.sink == 6
    assert sources["cache.sink"] == "./wavefilter.toml"


def test_env_none_word_unsets_optional(layout: Layout) -> None:
    write(layout.project_file, '[cache]\nfilter = "wavefilter"\n')
    layout.env["WAVEFILTER_FILTER"] = "none"

    config, sources = layout.load()

    assert config.cache.filter is None
    assert sources["cache.filter"] == "env WAVEFILTER_FILTER"


def test_env_unrelated_variables_ignored(layout: Layout) -> None:
    layout.env.update({"WAVEFILTER_DEBUG": "1", "WAVEFILTER_NOT_A_KEY": "x"})

    config, _ = layout.load()

    assert config == Config().replace(cfg.model_defaults("builtin")[0])


def test_load_reads_os_environ_by_default(layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(layout.xdg))
    monkeypatch.setenv("WAVEFILTER_SEED", "42")

    config, sources = load_config(cwd=layout.cwd)

    assert config.generate.seed == 42
    assert sources["generate.seed"] == "env WAVEFILTER_SEED"


# ---------------------------------------------------------------------------
# Flag overrides
# ---------------------------------------------------------------------------


def test_override_none_means_not_given(layout: Layout) -> None:
    layout.env["WAVEFILTER_TAIL"] = "5"

    config, sources = layout.load(overrides={"cache.tail": None})

    assert config.cache.tail == 5
    assert sources["cache.tail"] == "env WAVEFILTER_TAIL"


def test_override_unknown_key_raises(layout: Layout) -> None:
    with pytest.raises(ValueError, match="cache.budgt"):
        layout.load(overrides={"cache.budgt": 0.2})


def test_override_invalid_value(layout: Layout) -> None:
    with pytest.raises(UsageError) as caught:
        layout.load(overrides={"cache.budget": 1.5})

    assert "command-line flag" in str(caught.value)
    assert "cache.budget=1.5 is invalid" in str(caught.value)


def test_override_wrong_type(layout: Layout) -> None:
    with pytest.raises(UsageError) as caught:
        layout.load(overrides={"generate.seed": "x"})

    assert "generate.seed must be an integer" in str(caught.value)


def test_override_none_word_unsets(layout: Layout) -> None:
    write(layout.project_file, "[generate]\nsteps = 8\n")

    config, sources = layout.load(overrides={"generate.steps": "none"})

    assert config.generate.steps is None
    assert sources["generate.steps"] == "flag"


# ---------------------------------------------------------------------------
# Dataclass rules
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("budget, expected", [(0.1, 0.1), (1, 1.0), (1.0, 1.0), (16, 16), (256.0, 256), (1e-9, 1e-9)])
def test_budget_valid(budget: float, expected: float) -> None:
    cache = CacheConfig(budget=budget)

    assert cache.budget == expected
    assert type(cache.budget) is type(expected)
    assert cache.budget_is_ratio is isinstance(expected, float)


@pytest.mark.parametrize("budget", [0, 0.0, -0.5, 1.5, 2, 15, 16.5, math.nan, math.inf, -math.inf])
def test_budget_invalid(budget: float) -> None:
    with pytest.raises(ValueError) as caught:
        CacheConfig(budget=budget)

    assert "use a ratio in (0, 1] or a token count ≥ 16" in str(caught.value)
    assert "cache.budget=" in str(caught.value)


@pytest.mark.parametrize(
    "cls, kwargs, fragment",
    [
        (ModelConfig, {"name": " "}, "model.name"),
        (ModelConfig, {"device": "gpu"}, "use auto, cpu, cuda, cuda:N"),
        (ModelConfig, {"device": "cuda:x"}, "model.device"),
        (ModelConfig, {"dtype": "int8"}, "model.dtype"),
        (GenerateConfig, {"max_tokens": 0}, "use an integer ≥ 1"),
        (GenerateConfig, {"steps": 0}, "generate.steps"),
        (GenerateConfig, {"block_length": 0}, "generate.block_length"),
        (GenerateConfig, {"sampler": "greedy"}, "generate.sampler"),
        (GenerateConfig, {"threshold": 0.0}, "use a number in (0, 1]"),
        (GenerateConfig, {"threshold": 1.01}, "generate.threshold"),
        (GenerateConfig, {"threshold": math.nan}, "generate.threshold"),
        (GenerateConfig, {"factor": 0.0}, "generate.factor"),
        (GenerateConfig, {"temperature": -0.1}, "use a finite number ≥ 0"),
        (GenerateConfig, {"temperature": math.inf}, "generate.temperature"),
        (GenerateConfig, {"top_p": 0.0}, "generate.top_p"),
        (GenerateConfig, {"top_k": 0}, "generate.top_k"),
        (GenerateConfig, {"alg_temp": -1.0}, "generate.alg_temp"),
        (GenerateConfig, {"seed": -1}, "generate.seed"),
        (GenerateConfig, {"seed": 2**64}, "generate.seed"),
        (CacheConfig, {"method": ""}, "cache.method"),
        (CacheConfig, {"filter": ""}, "cache.filter"),
        (CacheConfig, {"sink": -1}, "use an integer ≥ 0"),
        (CacheConfig, {"tail": -1}, "cache.tail"),
        (CacheConfig, {"wavelet": ""}, "cache.wavelet"),
        (CacheConfig, {"levels": 0}, "use an integer from 1 to 8"),
        (CacheConfig, {"levels": 9}, "cache.levels"),
        (CacheConfig, {"beam": 0}, "cache.beam"),
        (IngestConfig, {"max_file_mb": 0}, "use a finite number > 0"),
        (IngestConfig, {"include": ["*.pdf", ""]}, "use non-empty glob patterns"),
        (IngestConfig, {"exclude": [" "]}, "ingest.exclude"),
        (OutputConfig, {"color": "sometimes"}, "output.color"),
        (OutputConfig, {"progress": "bar"}, "output.progress"),
    ],
)
def test_section_rejects_invalid(cls: type, kwargs: dict, fragment: str) -> None:
    with pytest.raises(ValueError) as caught:
        cls(**kwargs)

    assert fragment in str(caught.value)
    assert "is invalid: use " in str(caught.value)


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (ModelConfig, {"device": "cuda"}),
        (ModelConfig, {"device": "cuda:12"}),
        (ModelConfig, {"device": "mps"}),
        (ModelConfig, {"device": "cpu"}),
        (GenerateConfig, {"threshold": 1.0, "temperature": 0.0, "top_p": 1.0, "top_k": 1, "alg_temp": 0.0}),
        (GenerateConfig, {"seed": 2**64 - 1, "steps": 1, "factor": 0.5}),
        (GenerateConfig, {"system": ""}),
        (CacheConfig, {"sink": 0, "tail": 0, "levels": 1, "beam": 1, "method": "none"}),
        (CacheConfig, {"levels": 8}),
        (IngestConfig, {"max_file_mb": 0.001, "include": ["*.pdf"]}),
    ],
)
def test_section_accepts_edges(cls: type, kwargs: dict) -> None:
    section = cls(**kwargs)

    for name, value in kwargs.items():
        assert getattr(section, name) == value


def test_section_rejects_wrong_type() -> None:
    with pytest.raises(ValueError) as caught:
        GenerateConfig(max_tokens="64")  # type: ignore[arg-type]

    assert "generate.max_tokens='64' is invalid: use an integer" in str(caught.value)


def test_section_rejects_bool_as_int() -> None:
    with pytest.raises(ValueError, match="cache.sink"):
        CacheConfig(sink=True)


def test_sections_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().cache.budget = 0.5  # type: ignore[misc]


def test_replace_sets_and_validates() -> None:
    config = Config().replace({"cache.budget": 64, "model.name": "x"})

    assert config.cache.budget == 64
    assert config.model.name == "x"
    assert config.cache.sink == 4
    with pytest.raises(ValueError, match="cache.levels"):
        Config().replace({"cache.levels": 0})


def test_replace_misspelt_key_raises() -> None:
    with pytest.raises(ValueError, match="unknown config key 'cache.sinks'"):
        Config().replace({"cache.sinks": 1})


# ---------------------------------------------------------------------------
# The key table, value formatting and docs
# ---------------------------------------------------------------------------


def test_keys_cover_every_field() -> None:
    fields = [
        f"{name}.{item.name}"
        for name, cls in cfg.SECTION_CLASSES.items()
        for item in dataclasses.fields(cls)
    ]
    assert [info.key for info in KEYS] == fields
    assert [item.name for item in dataclasses.fields(Config)] == list(cfg.SECTION_CLASSES)


def test_env_names_unique_and_prefixed() -> None:
    names = [info.env for info in KEYS]

    assert len(set(names)) == len(names)
    assert all(name.startswith("WAVEFILTER_") for name in names)
    assert "WAVEFILTER_CONFIG" not in names
    assert "WAVEFILTER_DEBUG" not in names


def test_env_names_match_documented_mapping() -> None:
    env = {info.key: info.env for info in KEYS}
    documented = {
        "model.name": "WAVEFILTER_MODEL", "model.device": "WAVEFILTER_DEVICE", "model.dtype": "WAVEFILTER_DTYPE",
        "model.offline": "WAVEFILTER_OFFLINE", "generate.max_tokens": "WAVEFILTER_MAX_TOKENS",
        "generate.steps": "WAVEFILTER_STEPS", "generate.block_length": "WAVEFILTER_BLOCK_LENGTH",
        "generate.sampler": "WAVEFILTER_SAMPLER", "generate.threshold": "WAVEFILTER_THRESHOLD",
        "generate.temperature": "WAVEFILTER_TEMPERATURE", "generate.seed": "WAVEFILTER_SEED",
        "cache.method": "WAVEFILTER_CACHE", "cache.filter": "WAVEFILTER_FILTER", "cache.budget": "WAVEFILTER_BUDGET",
        "cache.sink": "WAVEFILTER_SINK", "cache.tail": "WAVEFILTER_TAIL", "cache.evict": "WAVEFILTER_EVICT",
        "cache.wavelet": "WAVEFILTER_WAVELET", "cache.levels": "WAVEFILTER_LEVELS", "cache.beam": "WAVEFILTER_BEAM",
        "ingest.max_file_mb": "WAVEFILTER_MAX_FILE_MB", "output.color": "WAVEFILTER_COLOR",
        "output.progress": "WAVEFILTER_PROGRESS",
    }
    for key, name in documented.items():
        assert env[key] == name, key


@pytest.mark.parametrize(
    "value, text",
    [(None, '"none"'), (True, "true"), (False, "false"), (3, "3"), (0.1, "0.1"), ("a\"b", '"a\\"b"'),
     ("x\x7fy", '"x\\u007fy"'), ([], "[]"), (["a", "b"], '["a", "b"]')],
)
def test_format_value(value: object, text: str) -> None:
    assert format_value(value) == text


@pytest.mark.parametrize("value", ["plain", 'quote " and \\ slash', "tab\tnew\nline", "del\x7f", "ctrl\x01", "ünï"])
def test_format_value_round_trips_strings(value: str) -> None:
    assert tomllib.loads(f"x = {format_value(value)}")["x"] == value


def test_docs_key_table_current() -> None:
    table = key_table_markdown()
    docs = [REPO_ROOT / "docs" / "cli.md", REPO_ROOT / "docs" / "cli-config.md"]
    texts = [path.read_text(encoding="utf-8") for path in docs if path.is_file()]

    assert texts, "docs/cli-config.md or docs/cli.md is missing"
    assert any(table in text for text in texts), "regenerate the key table with wavefilter_cli.config.key_table_markdown()"


def test_docs_table_lists_every_key() -> None:
    table = key_table_markdown()

    for info in KEYS:
        assert f"| `{info.key}` |" in table
        assert f"`{info.env}`" in table


def test_config_names_match_registries() -> None:
    from typing import get_args

    from wavefilter_cli.cache import CACHE_POLICIES
    from wavefilter_cli.filters.registry import FILTERS

    assert set(get_args(cfg.CacheMethod)) == set(CACHE_POLICIES)
    assert set(get_args(cfg.FilterName)) == set(FILTERS)


def test_config_rejects_unknown_cache() -> None:
    with pytest.raises(ValueError, match="cache.method"):
        cfg.Config().replace({"cache.method": "bogus"})
