"""Imports every command module so each registers its commands on the app."""

from wavefilter_cli.cli import extract  # noqa: F401
from wavefilter_cli.cli import config_cmd  # noqa: F401
from wavefilter_cli.cli import generate_cmd  # noqa: F401
from wavefilter_cli.cli import bench_cmd  # noqa: F401
from wavefilter_cli.cli import demo_cmd  # noqa: F401
from wavefilter_cli.cli import inspect_cmd  # noqa: F401
from wavefilter_cli.cli import batch_cmd  # noqa: F401
