"""Errors that reach the user, each tied to one documented exit code.

Library code raises these with a one-line message that names the offending
value and the fix; the CLI prints ``error: <message>`` and exits with
``exit_code``. Internal invariants use ``assert`` instead.
"""

from __future__ import annotations


class WavefilterError(Exception):
    """Base class: an error the user can act on."""

    exit_code = 1


class UsageError(WavefilterError):
    """Invalid command-line usage (exit 2)."""

    exit_code = 2


class InputError(WavefilterError):
    """An input that cannot be read or contains no usable text (exit 3)."""

    exit_code = 3


class LengthError(WavefilterError):
    """Input too long for the model's window, or a budget out of range (exit 4)."""

    exit_code = 4


class ModelError(WavefilterError):
    """Unknown model, missing or mismatched checkpoint files, or a model unfit for the task (exit 5)."""

    exit_code = 5


class DeviceError(WavefilterError):
    """Requested device absent or out of memory (exit 6)."""

    exit_code = 6


EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130
