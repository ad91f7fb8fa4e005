"""The live cache-sparsity view on stderr, and its JSON-lines twin for scripts.

``rich`` draws a Rich Live panel (only on a terminal): stage, chunk (for
inputs longer than the window), block and step, context tokens kept out
of the total overall and per layer, K/V megabytes held next to what the host cache alone would hold, tokens/s and
elapsed time. ``jsonl`` writes the same numbers as one JSON object per
line. ``none`` shows nothing. Updates only copy numbers the loop already
has; the panel redraws on Rich's own timer, four times a second.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from typing import Literal

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

ProgressMode = Literal["rich", "jsonl", "none"]

BAR_WIDTH = 24


def resolve_progress(choice: str, console: Console | None) -> ProgressMode:
    """``auto`` means the Rich view when stderr is a terminal (and not quiet), else nothing."""
    if choice == "auto":
        return "rich" if console is not None else "none"
    if choice == "rich" and console is None:
        return "none"
    return choice  # type: ignore[return-value]


def host_kv_bytes(model, canvas_tokens: int) -> int:
    """Bytes a full cache of ``canvas_tokens`` positions holds: keys and values for every layer."""
    config = model.config
    layers = getattr(config, "n_layers", None) or config.num_hidden_layers
    kv_heads = getattr(config, "n_kv_heads", None) or config.num_key_value_heads
    element = next(model.parameters()).element_size()
    return 2 * layers * kv_heads * config.head_dim * canvas_tokens * element


@dataclass
class LiveState:
    """The numbers the view shows."""

    stage: str = "starting"
    chunk: int = 0
    chunks: int = 0
    block: int = 0
    blocks: int = 0
    step: int = 0
    tokens_out: int = 0
    context_tokens: int = 0
    kept_tokens: int = 0
    kept_per_layer: list[int] = field(default_factory=list)
    kv_bytes: int = 0
    host_kv_bytes: int = 0
    started: float = field(default_factory=time.perf_counter)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def as_record(self) -> dict:
        return {
            "stage": self.stage, "chunk": self.chunk, "chunks": self.chunks,
            "block": self.block, "blocks": self.blocks, "step": self.step,
            "tokens_out": self.tokens_out, "context_tokens": self.context_tokens, "kept_tokens": self.kept_tokens,
            "kept_per_layer": self.kept_per_layer, "kv_bytes": self.kv_bytes, "host_kv_bytes": self.host_kv_bytes,
            "elapsed_seconds": round(self.elapsed, 3),
        }


def _bar(fraction: float) -> str:
    filled = round(max(0.0, min(1.0, fraction)) * BAR_WIDTH)
    return "█" * filled + "·" * (BAR_WIDTH - filled)


class LiveView:
    """Renders generation progress in one of the three modes; use as a context manager."""

    def __init__(self, mode: ProgressMode, console: Console | None):
        self.mode = mode
        self.console = console
        self.state = LiveState()
        self._live: Live | None = None

    def __enter__(self) -> "LiveView":
        if self.mode == "rich" and self.console is not None:
            self._live = Live(get_renderable=self._render, console=self.console, refresh_per_second=4,
                              transient=True, redirect_stdout=False, redirect_stderr=False)
            self._live.start()
        return self

    def __exit__(self, *exc_info) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def set_stage(self, stage: str) -> None:
        self.state.stage = stage
        self._emit()

    def update(self, **values) -> None:
        for key, value in values.items():
            setattr(self.state, key, value)
        self._emit()

    def _emit(self) -> None:
        if self.mode == "jsonl":
            sys.stderr.write(json.dumps(self.state.as_record()) + "\n")
            sys.stderr.flush()

    def _render(self):
        s = self.state
        rate = s.tokens_out / s.elapsed if s.elapsed > 0 else 0.0
        kept_share = s.kept_tokens / s.context_tokens if s.context_tokens else 1.0
        chunk = f"  chunk {s.chunk}/{s.chunks}" if s.chunks else ""
        head = Text.assemble(
            (f"{s.stage}", "bold"),
            f"{chunk}  block {s.block}/{s.blocks}  step {s.step}  {s.tokens_out} tokens  {rate:.1f} tok/s  {s.elapsed:.1f} s",
        )
        summary = Text(
            f"context kept {s.kept_tokens}/{s.context_tokens} ({kept_share:.0%})   "
            f"K/V {s.kv_bytes / 2**20:.1f} MB held vs {s.host_kv_bytes / 2**20:.1f} MB for the host alone"
        )
        parts = [head, summary]
        if s.kept_per_layer and s.context_tokens:
            table = Table.grid(padding=(0, 1))
            for layer, kept in enumerate(s.kept_per_layer):
                table.add_row(f"layer {layer:>2}", _bar(kept / s.context_tokens), f"{kept}")
            parts.append(table)
        return Group(*parts)

    def summary_line(self, seconds: float, tokens_out: int, forward_passes: int) -> str:
        s = self.state
        return (
            f"{tokens_out} tokens in {seconds:.1f} s, {forward_passes} forward passes; "
            f"context kept {s.kept_tokens}/{s.context_tokens}; K/V {s.kv_bytes / 2**20:.1f} MB "
            f"(host alone {s.host_kv_bytes / 2**20:.1f} MB)"
        )
