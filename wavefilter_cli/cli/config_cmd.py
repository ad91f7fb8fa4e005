"""The ``wavefilter config`` commands, and the helper other commands use to load the config."""

from __future__ import annotations

import json
import logging
from typing import Any, Optional

import typer

from wavefilter_cli.cli.app import app
from wavefilter_cli.cli.output import write_result
from wavefilter_cli.config import KEYS, Config, config_paths, format_value, load_config

logger = logging.getLogger(__name__)

config_app = typer.Typer(
    name="config",
    help="Show the effective configuration and where it comes from.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
app.add_typer(config_app, name="config")


def _root_flag(ctx: typer.Context, name: str) -> tuple[Any, bool]:
    """Return a root option's value and whether it was typed on the command line."""
    root = ctx.find_root()
    source = root.get_parameter_source(name)
    # Compared by name: Typer 0.29 ships its own copy of Click's ParameterSource enum.
    return root.params.get(name), source is not None and source.name == "COMMANDLINE"


def config_from_context(ctx: typer.Context, overrides: Optional[dict[str, object]] = None) -> tuple[Config, dict[str, str]]:
    """Load the config for a command, with its flags as overrides.

    Adds the root ``--color`` flag as ``output.color`` when it was typed. A
    ``--config`` typed on the command line is reported as such, while one that
    came from ``WAVEFILTER_CONFIG`` is left for ``load_config`` to read and
    report as the variable.
    """
    merged: dict[str, object] = dict(overrides or {})
    color, color_typed = _root_flag(ctx, "color")
    if color_typed and "output.color" not in merged:
        merged["output.color"] = color

    obj = ctx.obj or {}
    _, config_typed = _root_flag(ctx, "config")
    config_path = obj.get("config_path") if config_typed else None
    return load_config(config_path=config_path, overrides=merged)


def _json_value(value: Any, source: str | None) -> Any:
    return value if source is None else {"value": value, "source": source}


def render_show(config: Config, sources: dict[str, str] | None, as_json: bool) -> str:
    """Format every key for ``config show``: ``section.key = value`` lines, or a JSON object.

    With ``sources``, each line ends in ``  # <source>``, and each JSON leaf
    becomes ``{"value": ..., "source": ...}``.
    """
    if as_json:
        nested = config.to_dict()
        if sources is not None:
            nested = {
                section: {name: _json_value(value, sources[f"{section}.{name}"]) for name, value in table.items()}
                for section, table in nested.items()
            }
        return json.dumps(nested, indent=2, ensure_ascii=False) + "\n"

    lines = []
    for info in KEYS:
        line = f"{info.key} = {format_value(config.get(info.key))}"
        if sources is not None:
            line += f"  # {sources[info.key]}"
        lines.append(line)
    return "\n".join(lines) + "\n"


@config_app.command("show")
def show(
    ctx: typer.Context,
    with_sources: bool = typer.Option(False, "--sources", help="Also show where each value came from."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON object nested by section."),
) -> None:
    """Print every effective config key as `section.key = value`.

    Example: wavefilter config show --sources
    """
    config, sources = config_from_context(ctx)
    write_result(render_show(config, sources if with_sources else None, as_json))


@config_app.command("path")
def path(ctx: typer.Context) -> None:
    """Print the config file locations, highest precedence first, marking which exist."""
    obj = ctx.obj or {}
    _, config_typed = _root_flag(ctx, "config")
    files = config_paths(obj.get("config_path") if config_typed else None)
    width = max(len(item.label) for item in files)
    lines = [f"{item.label:<{width}}  {item.path}  ({'exists' if item.exists else 'not found'})" for item in files]
    write_result("\n".join(lines) + "\n")
