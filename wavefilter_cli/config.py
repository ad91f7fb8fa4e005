"""Typed configuration, merged from defaults, TOML files, the environment and flags.

Each TOML section maps to one frozen dataclass that validates itself in
``__post_init__``. ``load_config`` merges the layers key by key, lowest first:

1. defaults (the dataclass field defaults),
2. the user file (``$XDG_CONFIG_HOME/wavefilter/config.toml``, else
   ``typer.get_app_dir("wavefilter")/config.toml``),
3. ``./wavefilter.toml`` in the current directory,
4. ``--config PATH`` or ``WAVEFILTER_CONFIG``,
5. ``WAVEFILTER_*`` environment variables,
6. command-line flags.

``KEYS`` is the single table of keys, environment variables and help text.
The CLI's ``config show``, the environment parsing and the key table in the
docs all derive from it.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import logging
import math
import os
import re
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal, Mapping, Optional, Union

import typer

from wavefilter_cli.errors import UsageError

#: ``--model`` name of the model shipped in the package, and its folder.
BUILTIN_NAME = "builtin"
BUILTIN_DIR = Path(__file__).resolve().parent / "builtin_model"
#: Key of a checkpoint's config.json whose object sets this tool's defaults for that model.
MODEL_DEFAULTS_KEY = "wavefilter_defaults"

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

logger = logging.getLogger(__name__)

Dtype = Literal["auto", "bf16", "fp16", "fp32"]
Sampler = Literal["low-confidence", "threshold", "factor", "maskgit_plus", "topk_margin", "entropy", "random"]
# The names in the cache and filter registries, listed here so that a bad
# name fails before torch is imported. A test keeps the lists equal.
CacheMethod = Literal["none", "prefix", "dual", "elastic", "dllm-cache", "sparse-dllm", "dkv"]
FilterName = Literal[
    "keep-all", "oracle", "snapkv", "quest", "block-mean", "streaming", "random",
    "wavefilter", "wavefilter-denoise", "wavefilter-paper", "sparse-dllm",
]
ColorChoice = Literal["auto", "always", "never"]
ProgressChoice = Literal["auto", "rich", "jsonl", "none"]
Strategy = Literal["auto", "filter", "retrieve", "map-reduce"]
PositionChoice = Literal["compact", "original"]
KeepUnit = Literal["tokens", "sentences"]

CONFIG_ENV = "WAVEFILTER_CONFIG"
PROJECT_FILE_NAME = "wavefilter.toml"
USER_FILE_NAME = "config.toml"
APP_NAME = "wavefilter"

# An optional key is unset with this string, because TOML has no null value.
NONE_WORD = "none"
_TRUE_WORDS = ("1", "true", "yes")
_FALSE_WORDS = ("0", "false", "no")
_DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
# torch.manual_seed accepts seeds up to 2**64 - 1.
_MAX_SEED = 2**64 - 1
_MIN_BUDGET_TOKENS = 16


# ---------------------------------------------------------------------------
# Value rules. Each returns None for a valid value, or the fix as "use ...".
# Type checks run first, so a rule receives a value of the field's type.
# ---------------------------------------------------------------------------

Rule = Callable[[Any], Optional[str]]


def _non_empty(value: str) -> str | None:
    return None if value.strip() else "use a non-empty string"


def _int_at_least(minimum: int) -> Rule:
    def check(value: int) -> str | None:
        return None if value >= minimum else f"use an integer ≥ {minimum}"

    return check


def _int_between(low: int, high: int) -> Rule:
    def check(value: int) -> str | None:
        return None if low <= value <= high else f"use an integer from {low} to {high}"

    return check


def _unit_interval(value: float) -> str | None:
    # A chained comparison is False for NaN, so NaN fails too.
    return None if 0 < value <= 1 else "use a number in (0, 1]"


def _non_negative_number(value: float) -> str | None:
    return None if math.isfinite(value) and value >= 0 else "use a finite number ≥ 0"


def _positive_number(value: float) -> str | None:
    return None if math.isfinite(value) and value > 0 else "use a finite number > 0"


def _device(value: str) -> str | None:
    return None if _DEVICE_PATTERN.fullmatch(value) else "use auto, cpu, cuda, cuda:N (N a GPU index) or mps"


def _seed(value: int) -> str | None:
    return None if 0 <= value <= _MAX_SEED else "use an integer from 0 to 2**64 - 1"


def _budget(value: float) -> str | None:
    """Accept a fraction of the context in (0, 1] or a whole token count of at least 16."""
    if 0 < value <= 1:
        return None
    if math.isfinite(value) and value >= _MIN_BUDGET_TOKENS and value == int(value):
        return None
    return f"use a ratio in (0, 1] or a token count ≥ {_MIN_BUDGET_TOKENS}"


def _patterns(value: list[str]) -> str | None:
    return None if all(item.strip() for item in value) else "use non-empty glob patterns"


def _optional(rule: Rule) -> Rule:
    def check(value: Any) -> str | None:
        return None if value is None else rule(value)

    return check


# ---------------------------------------------------------------------------
# The key table.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyInfo:
    """One configuration key: its dotted name, environment variable, value rule and help text."""

    key: str
    env: str
    help: str
    rule: Rule | None = None

    @property
    def section(self) -> str:
        return self.key.split(".", 1)[0]

    @property
    def name(self) -> str:
        return self.key.split(".", 1)[1]


KEYS: tuple[KeyInfo, ...] = (
    KeyInfo("model.name", "WAVEFILTER_MODEL", 'Model folder, Hugging Face hub id, or "builtin" for the bundled tiny model.', _non_empty),
    KeyInfo("model.device", "WAVEFILTER_DEVICE", "Device to run on: auto, cpu, cuda, cuda:N (GPU index N) or mps.", _device),
    KeyInfo("model.dtype", "WAVEFILTER_DTYPE", "Model weight dtype; auto leaves the choice to the model loader."),
    KeyInfo("model.offline", "WAVEFILTER_OFFLINE", "Load from local files only, without contacting the Hugging Face hub."),
    KeyInfo("model.ctx_tokens", "WAVEFILTER_CTX_TOKENS", "Context window in tokens, prompt plus answer (≥ 1); none uses the window the model was trained on.", _optional(_int_at_least(1))),
    KeyInfo("generate.max_tokens", "WAVEFILTER_MAX_TOKENS", "Answer length in tokens (≥ 1).", _int_at_least(1)),
    KeyInfo("generate.steps", "WAVEFILTER_STEPS", "Denoising steps (≥ 1); none means one step per token.", _optional(_int_at_least(1))),
    KeyInfo("generate.block_length", "WAVEFILTER_BLOCK_LENGTH", "Tokens per semi-autoregressive block (≥ 1).", _int_at_least(1)),
    KeyInfo("generate.sampler", "WAVEFILTER_SAMPLER", "Rule that picks which masked tokens to unmask at each step."),
    KeyInfo("generate.threshold", "WAVEFILTER_THRESHOLD", "Confidence threshold of the threshold sampler, in (0, 1].", _unit_interval),
    KeyInfo("generate.factor", "WAVEFILTER_FACTOR", "Factor of the factor sampler (> 0); none uses the sampler's default.", _optional(_positive_number)),
    KeyInfo("generate.temperature", "WAVEFILTER_TEMPERATURE", "Sampling temperature (≥ 0); 0 is greedy.", _non_negative_number),
    KeyInfo("generate.top_p", "WAVEFILTER_TOP_P", "Nucleus sampling mass in (0, 1]; none disables it.", _optional(_unit_interval)),
    KeyInfo("generate.top_k", "WAVEFILTER_TOP_K", "Sample only from the k most likely tokens (≥ 1); none disables it.", _optional(_int_at_least(1))),
    KeyInfo("generate.alg_temp", "WAVEFILTER_ALG_TEMP", "Temperature (≥ 0) of the unmasking order in Dream's samplers; none disables it.", _optional(_non_negative_number)),
    KeyInfo("generate.seed", "WAVEFILTER_SEED", "Random seed, from 0 to 2**64 - 1.", _seed),
    KeyInfo("generate.system", "WAVEFILTER_SYSTEM", "System prompt for chat models; none sends no system message."),
    KeyInfo("generate.chunk", "WAVEFILTER_CHUNK", "Split inputs longer than the window into chunks; false stops with exit status 4 instead."),
    KeyInfo("generate.strategy", "WAVEFILTER_STRATEGY", "How chunked inputs are answered: filter, retrieve (BM25 chunk ranking), map-reduce, or auto (filter for ask, map-reduce for summarize)."),
    KeyInfo("generate.chunk_tokens", "WAVEFILTER_CHUNK_TOKENS", "Document tokens per chunk (≥ 16); none fills the window.", _optional(_int_at_least(16))),
    KeyInfo("generate.chunk_overlap", "WAVEFILTER_CHUNK_OVERLAP", "Tokens that consecutive chunks of a document share (≥ 0).", _int_at_least(0)),
    KeyInfo("generate.positions", "WAVEFILTER_POSITIONS", "RoPE positions of the tokens the filter and retrieve strategies keep: compact renumbers them, original keeps their place in the whole input."),
    KeyInfo("generate.keep_unit", "WAVEFILTER_KEEP_UNIT", "What the filter strategy keeps of the document: tokens (the ones its scores rank highest) or sentences (whole sentences, ranked by their highest-scored token)."),
    KeyInfo("generate.keep_tokens", "WAVEFILTER_KEEP_TOKENS", "Maximum document tokens the filter strategy keeps (≥ 16); none keeps as many as fit the window.", _optional(_int_at_least(16))),
    KeyInfo("cache.method", "WAVEFILTER_CACHE", "KV cache method: none, prefix, dual, elastic, dllm-cache, sparse-dllm or dkv."),
    KeyInfo("cache.refresh_every", "WAVEFILTER_REFRESH_EVERY", "Hosts prefix and dual: also refresh the cache every N steps inside a block; 0 or none refreshes at block starts only.", _optional(_int_at_least(0))),
    KeyInfo("cache.filter", "WAVEFILTER_FILTER", "Filter that picks which cached tokens to keep; none keeps all."),
    KeyInfo("cache.budget", "WAVEFILTER_BUDGET", "Tokens kept by the filter: a ratio of the context in (0, 1], or a whole token count ≥ 16.", _budget),
    KeyInfo("cache.sink", "WAVEFILTER_SINK", "Leading tokens always kept (≥ 0).", _int_at_least(0)),
    KeyInfo("cache.tail", "WAVEFILTER_TAIL", "Most recent tokens always kept (≥ 0).", _int_at_least(0)),
    KeyInfo("cache.evict", "WAVEFILTER_EVICT", "Whether the filter evicts the tokens it drops from the KV cache."),
    KeyInfo("cache.wavelet", "WAVEFILTER_WAVELET", "PyWavelets name of the wavelet used by the filter.", _non_empty),
    KeyInfo("cache.levels", "WAVEFILTER_LEVELS", "Wavelet decomposition levels, from 1 to 8.", _int_between(1, 8)),
    KeyInfo("cache.beam", "WAVEFILTER_BEAM", "Beam width of the filter's search (≥ 1).", _int_at_least(1)),
    KeyInfo("ingest.max_file_mb", "WAVEFILTER_MAX_FILE_MB", "Largest input file read, in MB (> 0).", _positive_number),
    KeyInfo("ingest.include", "WAVEFILTER_INCLUDE", "Glob patterns of files to read from folders; empty reads all. The variable takes a comma-separated list.", _patterns),
    KeyInfo("ingest.exclude", "WAVEFILTER_EXCLUDE", "Glob patterns of files to skip in folders. The variable takes a comma-separated list.", _patterns),
    KeyInfo("output.color", "WAVEFILTER_COLOR", "Colour on stderr: auto colours only a terminal."),
    KeyInfo("output.progress", "WAVEFILTER_PROGRESS", "Progress display on stderr: rich, jsonl or none; auto leaves the choice to the command."),
)

KEY_INFO: dict[str, KeyInfo] = {info.key: info for info in KEYS}


# ---------------------------------------------------------------------------
# Type checks. ``_coerce`` accepts a value already parsed (TOML, flags,
# Python) and returns it in the field's type, or raises _TypeMismatch.
# ---------------------------------------------------------------------------


_UNION_ORIGINS = (Union, getattr(types, "UnionType", Union))


class _TypeMismatch(Exception):
    """A value that does not have the field's type; carries the expected type in words."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


def _optional_inner(hint: Any) -> Any | None:
    """Return X for ``Optional[X]``, else None."""
    if typing.get_origin(hint) in _UNION_ORIGINS:
        args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
    return None


def describe_type(hint: Any) -> str:
    """Return the type of a field in words, as error messages use it ("a number")."""
    inner = _optional_inner(hint)
    if inner is not None:
        return f'{describe_type(inner)} or "{NONE_WORD}"'
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(json.dumps(choice) for choice in typing.get_args(hint))
    if typing.get_origin(hint) is list:
        return "a list of strings"
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    assert hint in names, f"no description for type {hint!r}"
    return names[hint]


def _coerce(value: Any, hint: Any) -> Any:
    """Return ``value`` converted to ``hint``, or raise _TypeMismatch.

    An int is accepted for a float field and becomes a float. A bool is never
    accepted as a number. For an optional field the string "none" means None.
    """
    inner = _optional_inner(hint)
    if inner is not None:
        if value is None or (isinstance(value, str) and value.strip().lower() == NONE_WORD):
            return None
        try:
            return _coerce(value, inner)
        except _TypeMismatch:
            raise _TypeMismatch(describe_type(hint)) from None

    if typing.get_origin(hint) is Literal:
        if isinstance(value, str) and value in typing.get_args(hint):
            return value
        raise _TypeMismatch(describe_type(hint))
    if typing.get_origin(hint) is list:
        if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
            return list(value)
        raise _TypeMismatch(describe_type(hint))
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _TypeMismatch(describe_type(hint))
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _TypeMismatch(describe_type(hint))
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _TypeMismatch(describe_type(hint))
    if hint is str:
        if isinstance(value, str):
            return value
        raise _TypeMismatch(describe_type(hint))
    raise AssertionError(f"unsupported config field type {hint!r}")


def _parse_env(text: str, hint: Any) -> Any:
    """Parse an environment variable's text into ``hint``'s type, or raise _TypeMismatch.

    Booleans take 1/0/true/false/yes/no in any case, and lists take a
    comma-separated string.
    """
    inner = _optional_inner(hint)
    if inner is not None:
        if text.strip().lower() == NONE_WORD:
            return None
        try:
            return _parse_env(text, inner)
        except _TypeMismatch:
            raise _TypeMismatch(describe_type(hint)) from None

    stripped = text.strip()
    if hint is bool:
        if stripped.lower() in _TRUE_WORDS:
            return True
        if stripped.lower() in _FALSE_WORDS:
            return False
        raise _TypeMismatch("one of 1, 0, true, false, yes, no")
    if hint is int:
        try:
            return int(stripped)
        except ValueError:
            raise _TypeMismatch(describe_type(hint)) from None
    if hint is float:
        try:
            return float(stripped)
        except ValueError:
            raise _TypeMismatch(describe_type(hint)) from None
    if typing.get_origin(hint) is list:
        return [item.strip() for item in text.split(",") if item.strip()]
    return _coerce(text, hint)


def format_value(value: Any) -> str:
    """Format a config value as a TOML literal, so a printed line can be pasted into a file.

    None prints as "none", the string that unsets an optional key.
    """
    if value is None:
        return json.dumps(NONE_WORD)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        # JSON string escapes are valid TOML escapes, except that TOML also bans a raw DEL.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(format_value(item) for item in value) + "]"
    raise AssertionError(f"unsupported config value {value!r}")


# ---------------------------------------------------------------------------
# Sections.
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _field_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def check_value(key: str, value: Any, hint: Any) -> Any:
    """Return ``value`` in the type of ``key`` after checking its type and rule.

    Raises _TypeMismatch for a wrong type, and _RuleViolation (a ValueError
    with the value and the fix) for a value that breaks the key's rule.
    """
    value = _coerce(value, hint)
    rule = KEY_INFO[key].rule
    fix = rule(value) if rule is not None else None
    if fix is not None:
        raise _RuleViolation(key, value, fix)
    return value


class _RuleViolation(ValueError):
    """A value of the right type that breaks its key's rule, with the remedy in ``fix``."""

    def __init__(self, key: str, value: Any, fix: str) -> None:
        super().__init__(f"{key}={format_value(value)} is invalid: {fix}")
        self.fix = fix


class _Section:
    """Validation shared by every section dataclass."""

    SECTION: ClassVar[str]

    def __post_init__(self) -> None:
        hints = _field_hints(type(self))
        for item in dataclasses.fields(self):  # type: ignore[arg-type]
            key = f"{self.SECTION}.{item.name}"
            value = getattr(self, item.name)
            try:
                checked = check_value(key, value, hints[item.name])
            except _TypeMismatch as exc:
                raise ValueError(f"{key}={value!r} is invalid: use {exc.expected}") from None
            object.__setattr__(self, item.name, checked)


@dataclass(frozen=True)
class ModelConfig(_Section):
    """The ``[model]`` section: which checkpoint to load and where."""

    SECTION: ClassVar[str] = "model"

    name: str = "builtin"
    device: str = "auto"
    dtype: Dtype = "auto"
    offline: bool = False
    ctx_tokens: Optional[int] = None


@dataclass(frozen=True)
class GenerateConfig(_Section):
    """The ``[generate]`` section: diffusion decoding, sampling, and how inputs longer than the window are handled."""

    SECTION: ClassVar[str] = "generate"

    max_tokens: int = 64
    steps: Optional[int] = None
    block_length: int = 32
    sampler: Sampler = "low-confidence"
    threshold: float = 0.9
    factor: Optional[float] = None
    temperature: float = 0.0
    top_p: Optional[float] = None
    top_k: Optional[int] = None
    alg_temp: Optional[float] = None
    seed: int = 0
    system: Optional[str] = None
    # Inputs longer than the window. Whether chunk_overlap is below the chunk
    # size is checked once the window is known, because the default size depends on it.
    chunk: bool = True
    strategy: Strategy = "auto"
    chunk_tokens: Optional[int] = None
    chunk_overlap: int = 64
    positions: PositionChoice = "compact"
    # On the built-in model, whole sentences under a 1,024-token cap kept the asked fact in every
    # sample and answered at least as often as single tokens (docs/benchmarks.md has the runs).
    keep_unit: KeepUnit = "sentences"
    keep_tokens: Optional[int] = 1024


@dataclass(frozen=True)
class CacheConfig(_Section):
    """The ``[cache]`` section: KV cache method and the sparse filter's budget.

    ``budget`` is a float in (0, 1] for a fraction of the context, or an int
    (at least 16) for a token count. Whole numbers above 1 become ints.
    """

    SECTION: ClassVar[str] = "cache"

    # NOTE: wavelet is only checked to be non-empty here, because PyWavelets defines the valid names.
    method: CacheMethod = "prefix"
    refresh_every: Optional[int] = None
    filter: Optional[FilterName] = None
    budget: float = 0.1
    sink: int = 4
    tail: int = 32
    evict: bool = True
    wavelet: str = "haar"
    levels: int = 2
    beam: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.budget > 1:
            object.__setattr__(self, "budget", int(self.budget))

    @property
    def budget_is_ratio(self) -> bool:
        """True when ``budget`` is a fraction of the context, False for a token count."""
        return isinstance(self.budget, float)


@dataclass(frozen=True)
class IngestConfig(_Section):
    """The ``[ingest]`` section: which input files are read."""

    SECTION: ClassVar[str] = "ingest"

    max_file_mb: float = 50.0
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class OutputConfig(_Section):
    """The ``[output]`` section: colour and progress display on stderr."""

    SECTION: ClassVar[str] = "output"

    color: ColorChoice = "auto"
    progress: ProgressChoice = "auto"


SECTION_CLASSES: dict[str, type[_Section]] = {
    cls.SECTION: cls for cls in (ModelConfig, GenerateConfig, CacheConfig, IngestConfig, OutputConfig)
}


@dataclass(frozen=True)
class Config:
    """The effective configuration: one dataclass per TOML section."""

    model: ModelConfig = field(default_factory=ModelConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def get(self, key: str) -> Any:
        """Return the value of a dotted key such as ``"cache.budget"``."""
        section, name = _split_key(key)
        return getattr(getattr(self, section), name)

    def replace(self, values: Mapping[str, Any]) -> "Config":
        """Return a copy with dotted keys set, validated by each section's ``__post_init__``.

        Raises ValueError for an unknown key or a value that breaks a rule.
        """
        by_section: dict[str, dict[str, Any]] = {}
        for key, value in values.items():
            section, name = _split_key(key)
            by_section.setdefault(section, {})[name] = value
        changed = {section: dataclasses.replace(getattr(self, section), **kw) for section, kw in by_section.items()}
        return dataclasses.replace(self, **changed)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Return the values nested by section, in the order of ``KEYS``."""
        nested: dict[str, dict[str, Any]] = {}
        for info in KEYS:
            value = self.get(info.key)
            nested.setdefault(info.section, {})[info.name] = list(value) if isinstance(value, list) else value
        return nested


def _split_key(key: str) -> tuple[str, str]:
    if key not in KEY_INFO:
        raise ValueError(f"unknown config key {key!r}: use one of {', '.join(KEY_INFO)}")
    info = KEY_INFO[key]
    return info.section, info.name


def key_type(key: str) -> Any:
    """Return the type annotation of a dotted key, resolved to a typing object."""
    section, name = _split_key(key)
    return _field_hints(SECTION_CLASSES[section])[name]


# ---------------------------------------------------------------------------
# File locations.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigFile:
    """One config file location: its precedence label, path and whether it exists."""

    label: str
    path: Path
    exists: bool
    explicit: bool = False

    @property
    def source(self) -> str:
        """The source name that ``load_config`` reports for keys read from this file."""
        if self.label == f"./{PROJECT_FILE_NAME}":
            return self.label
        return f"{self.label} {self.path}"


def user_config_path(env: Mapping[str, str] | None = None) -> Path:
    """Return the user file: under ``$XDG_CONFIG_HOME`` if set, else in Typer's app directory."""
    env = os.environ if env is None else env
    xdg = env.get("XDG_CONFIG_HOME", "")
    if xdg:
        return Path(xdg) / APP_NAME / USER_FILE_NAME
    return Path(typer.get_app_dir(APP_NAME)) / USER_FILE_NAME


def config_paths(
    config_path: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> list[ConfigFile]:
    """Return the config file locations, highest precedence first.

    The explicit file comes first when ``config_path`` is given or the
    environment sets ``WAVEFILTER_CONFIG``; it is labelled by which one set it.
    """
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    files: list[ConfigFile] = []

    explicit, label = _explicit_path(config_path, env, cwd)
    if explicit is not None:
        files.append(ConfigFile(label, explicit, explicit.is_file(), explicit=True))
    project = cwd / PROJECT_FILE_NAME
    files.append(ConfigFile(f"./{PROJECT_FILE_NAME}", project, project.is_file()))
    user = user_config_path(env)
    files.append(ConfigFile("user file", user, user.is_file()))
    return files


def _explicit_path(config_path: str | None, env: Mapping[str, str], cwd: Path) -> tuple[Path | None, str]:
    # A relative path is taken relative to ``cwd``, which is the process's working directory by default.
    if config_path:
        return cwd / Path(config_path).expanduser(), "--config"
    from_env = env.get(CONFIG_ENV, "")
    if from_env:
        return cwd / Path(from_env).expanduser(), f"env {CONFIG_ENV}"
    return None, ""


# ---------------------------------------------------------------------------
# Loading.
# ---------------------------------------------------------------------------


def _read_toml(path: Path) -> dict[str, Any]:
    """Parse one TOML file, turning every read or syntax failure into a UsageError."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        # The message ends with "(at line L, column C)".
        raise UsageError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML: the file is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise UsageError(f"{path}: failed to read the config file: {exc.strerror or exc}") from None


def _suggest(name: str, choices: list[str], prefix: str = "") -> str:
    """Return "did you mean <prefix><closest>?", or the list of choices when none is close."""
    close = difflib.get_close_matches(name, choices, n=1)
    return f"did you mean {prefix}{close[0]}?" if close else f"use one of {', '.join(choices)}"


def _describe_toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    try:
        return format_value(value)
    except AssertionError:
        return repr(value)


def _file_values(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    """Check a parsed TOML document and return its values by dotted key."""
    sections = list(SECTION_CLASSES)
    values: dict[str, Any] = {}
    for section, table in data.items():
        if section not in SECTION_CLASSES:
            owners = [info.section for info in KEYS if info.name == section]
            if owners and not isinstance(table, dict):
                raise UsageError(f"{path}: key {section} is outside a section: put it under [{owners[0]}]")
            raise UsageError(f"{path}: unknown section [{section}]: {_suggest(section, sections)}")
        if not isinstance(table, dict):
            raise UsageError(f"{path}: {section} must be a table ([{section}]), got {_describe_toml_value(table)}")
        names = [info.name for info in KEYS if info.section == section]
        for name, raw in table.items():
            key = f"{section}.{name}"
            if key not in KEY_INFO:
                raise UsageError(f"{path}: unknown key {key}: {_suggest(name, names, prefix=f'{section}.')}")
            values[key] = _checked(key, raw, str(path))
    return values


def _checked(key: str, value: Any, origin: str) -> Any:
    """Run ``check_value`` and report a failure as a UsageError that starts with ``origin``."""
    try:
        return check_value(key, value, key_type(key))
    except _TypeMismatch as exc:
        raise UsageError(f"{origin}: {key} must be {exc.expected}, got {_describe_toml_value(value)}") from None
    except _RuleViolation as exc:
        raise UsageError(f"{origin}: {exc}") from None


def _env_values(env: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    """Return the values set by ``WAVEFILTER_*`` variables, with the variable names.

    An empty variable counts as unset.
    """
    values: dict[str, tuple[Any, str]] = {}
    for info in KEYS:
        text = env.get(info.env, "")
        if not text:
            continue
        hint = key_type(info.key)
        try:
            parsed = _parse_env(text, hint)
        except _TypeMismatch as exc:
            raise UsageError(f"{info.env}={json.dumps(text)} is invalid: {info.key} must be {exc.expected}") from None
        try:
            values[info.key] = (check_value(info.key, parsed, hint), info.env)
        except _RuleViolation as exc:
            raise UsageError(f"{info.env}={json.dumps(text)} is invalid: {exc.fix}") from None
    return values


def _file_layers(config_path: str | None, env: Mapping[str, str], cwd: Path) -> list[ConfigFile]:
    """Return the existing files to read, lowest precedence first.

    A missing explicit file is an error, while missing user and project files
    are skipped.
    """
    files = config_paths(config_path, env, cwd)
    for item in files:
        if item.explicit and not item.exists:
            problem = "is a folder, not a file" if item.path.is_dir() else "not found"
            raise UsageError(f"config file {item.path} ({item.label}) {problem}: pass an existing TOML file")

    return [item for item in reversed(files) if item.exists]


def load_config(
    config_path: str | None = None,
    overrides: dict[str, object] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> tuple[Config, dict[str, str]]:
    """Merge every configuration layer and return the config with each key's source.

    ``config_path`` is the ``--config`` value; when None, ``WAVEFILTER_CONFIG``
    in ``env`` is used. ``overrides`` maps dotted keys to flag values, where
    None means the flag was not given. ``env`` defaults to ``os.environ`` and
    ``cwd`` to the current directory. Sources are "default", "user file PATH",
    "./wavefilter.toml", "--config PATH", "env WAVEFILTER_CONFIG PATH",
    "env WAVEFILTER_<KEY>" and "flag".

    Raises UsageError, naming the key and where it was set, for an unknown
    section or key, a wrong type, invalid TOML, a missing explicit file or a
    value that breaks a rule. Raises ValueError for an unknown override key,
    which is a programming error.
    """
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    values: dict[str, Any] = {}
    sources: dict[str, str] = {info.key: "default" for info in KEYS}

    for item in _file_layers(config_path, env, cwd):
        logger.debug("reading config file %s (%s)", item.path, item.label)
        for key, value in _file_values(item.path, _read_toml(item.path)).items():
            values[key] = value
            sources[key] = item.source

    for key, (value, variable) in _env_values(env).items():
        values[key] = value
        sources[key] = f"env {variable}"

    for key, value in (overrides or {}).items():
        _split_key(key)
        if value is None:
            continue
        values[key] = _checked(key, value, "command-line flag")
        sources[key] = "flag"

    config = Config().replace(values)
    return apply_model_defaults(config, sources)


def apply_model_defaults(config: Config, sources: dict[str, str]) -> tuple[Config, dict[str, str]]:
    """Fill the keys still at their default with the settings the configured checkpoint recommends.

    A checkpoint's config.json may carry a ``wavefilter_defaults`` object of
    dotted keys (the built-in model sets ``cache.refresh_every``). Any file,
    variable or flag overrides it. Their source reads "model PATH".
    """
    recommended, source = model_defaults(config.model.name)
    unset = {key: value for key, value in recommended.items() if sources[key] == "default"}
    if not unset:
        return config, sources
    sources = dict(sources)
    for key in unset:
        sources[key] = source
    return config.replace(unset), sources


def model_defaults(name: str) -> tuple[dict[str, Any], str]:
    """Return the ``wavefilter_defaults`` of checkpoint ``name`` (dotted keys) and their source name.

    Reads only config.json of ``builtin`` or of a local folder. A hub id or a
    folder without a readable config.json gives none, and loading the model reports the problem.
    """
    folder = BUILTIN_DIR if name == BUILTIN_NAME else Path(name).expanduser()
    config_file = folder / "config.json"
    try:
        raw = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}, ""
    table = raw.get(MODEL_DEFAULTS_KEY) if isinstance(raw, dict) else None
    if table is None:
        return {}, ""
    origin = f"{config_file} {MODEL_DEFAULTS_KEY}"
    if not isinstance(table, dict):
        raise UsageError(f"{origin} must be an object of dotted config keys: fix the checkpoint's config.json")
    values = {}
    for key, value in table.items():
        if key not in KEY_INFO:
            raise UsageError(f"{origin}: unknown key {key}: use keys that `wavefilter config show` lists")
        values[key] = _checked(key, value, origin)
    return values, f"model {config_file}"


# ---------------------------------------------------------------------------
# Documentation.
# ---------------------------------------------------------------------------


def _type_name(hint: Any) -> str:
    inner = _optional_inner(hint)
    if inner is not None:
        return f"{_type_name(inner)} or none"
    if typing.get_origin(hint) is Literal:
        return " \\| ".join(typing.get_args(hint))
    if typing.get_origin(hint) is list:
        return "list of strings"
    return {str: "string", int: "integer", float: "number", bool: "bool"}[hint]


def key_table_markdown() -> str:
    """Return the Markdown table of every key, its type, default and variable, as docs/cli.md shows it."""
    defaults = Config()
    lines = [
        "| Key | Type | Default | Environment variable | Meaning |",
        "|-----|------|---------|----------------------|---------|",
    ]
    for info in KEYS:
        default = format_value(defaults.get(info.key)).replace("|", "\\|")
        lines.append(f"| `{info.key}` | {_type_name(key_type(info.key))} | `{default}` | `{info.env}` | {info.help} |")
    return "\n".join(lines) + "\n"
