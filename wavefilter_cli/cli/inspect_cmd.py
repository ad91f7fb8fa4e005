"""``wavefilter inspect``: show which prompt tokens a key-token filter keeps, and why."""

from __future__ import annotations

import base64
import html
import io
import sys
from typing import List, Optional

import typer

from wavefilter_cli.cli.app import app
from wavefilter_cli.cli.config_cmd import config_from_context
from wavefilter_cli.cli.output import Diagnostics, write_result
from wavefilter_cli.errors import UsageError

INSPECT_HELP = """Run the prefill and the key-token filter once and show what is kept.

Examples:

\b
  wavefilter inspect report.pdf --question "What is the passcode for the north gate?"
  wavefilter inspect notes/ -q "Who signed?" --filter snapkv --budget 0.05 -o report.html

Prints the prompt with kept tokens marked (highlighted on a terminal,
wrapped in [[ ]] otherwise) and the tokens kept per layer. -o writes a
self-contained HTML page with the highlighted text and, when matplotlib is
installed, a plot per layer of the importance signal (attention mass of
the question's queries), its Haar approximation and the kept positions.
"""

MARK_OPEN, MARK_CLOSE = "[[", "]]"


def _render_plain(tokenizer, inspection, threshold: float) -> str:
    pieces, inside = [], False
    for token, share in zip(inspection.token_ids, inspection.keep_share.tolist()):
        kept = share >= threshold
        if kept and not inside:
            pieces.append(MARK_OPEN)
        elif not kept and inside:
            pieces.append(MARK_CLOSE)
        inside = kept
        pieces.append(tokenizer.decode([token]))
    if inside:
        pieces.append(MARK_CLOSE)
    return "".join(pieces)


def _render_rich(console, tokenizer, inspection, threshold: float) -> None:
    from rich.text import Text

    text = Text()
    for token, share in zip(inspection.token_ids, inspection.keep_share.tolist()):
        style = ""
        if share >= threshold:
            style = "bold black on yellow"
        elif share > 0:
            style = "yellow"
        text.append(tokenizer.decode([token]), style=style)
    console.print(text, soft_wrap=True)


def _plot_png(inspection) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    from wavefilter_cli.filters.wavelets import haar_pyramid

    layers = inspection.layers
    figure, axes = plt.subplots(len(layers), 1, figsize=(10, 2.2 * len(layers)), squeeze=False)
    for index, (axis, layer) in enumerate(zip(axes[:, 0], layers)):
        signal = layer.importance.float()
        level = 3
        approx = haar_pyramid(signal, level).approximations[-1] / 2 ** (level / 2)
        smooth = approx.repeat_interleave(2**level)[: signal.shape[0]]
        axis.plot(signal.numpy(), linewidth=0.6, label="attention mass")
        axis.plot(smooth.numpy(), linewidth=1.2, label="Haar approximation (8-token blocks)")
        kept = layer.kept.flatten().unique().numpy()
        axis.scatter(kept, [0] * len(kept), marker="|", color="red", s=40, label="kept")
        axis.set_title(f"layer {index}: {layer.kept.shape[-1]} kept per KV head", fontsize=9)
        if index == 0:
            axis.legend(fontsize=7, loc="upper right")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _html_report(tokenizer, inspection, title: str) -> str:
    spans = []
    for token, share in zip(inspection.token_ids, inspection.keep_share.tolist()):
        piece = html.escape(tokenizer.decode([token]))
        if share > 0:
            spans.append(f'<mark style="background: rgba(255, 200, 0, {0.15 + 0.85 * share:.2f})" title="kept by {share:.0%}">{piece}</mark>')
        else:
            spans.append(piece)
    rows = "".join(f"<tr><td>{i}</td><td>{k}</td></tr>" for i, k in enumerate(inspection.kept_per_layer()))
    png = _plot_png(inspection)
    plot = f'<img alt="importance per layer" src="data:image/png;base64,{png}">' if png else "<p>(install matplotlib for the plot)</p>"
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>wavefilter inspect</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto} pre{white-space:pre-wrap}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><table><tr><th>layer</th><th>kept per KV head</th></tr>{rows}</table>"
        f"{plot}<h2>Prompt (shade: share of layers and heads keeping the token)</h2><pre>{''.join(spans)}</pre></body></html>"
    )


@app.command("inspect", help=INSPECT_HELP)
def inspect(
    ctx: typer.Context,
    inputs: Optional[List[str]] = typer.Argument(None, metavar="INPUT", help="PDF, text or Markdown files, directories, or - for stdin."),
    question: str = typer.Option(..., "--question", "-q", help="The question whose queries drive the selection."),
    model: Optional[str] = typer.Option(None, "-m", "--model", help="Checkpoint folder, cached hub id, or 'builtin'. [env WAVEFILTER_MODEL]"),
    filter: Optional[str] = typer.Option(None, "--filter", help="Key-token filter to inspect (default: the configured one, else wavefilter)."),
    budget: Optional[str] = typer.Option(None, "--budget", help="Ratio in (0, 1] or token count ≥ 16. [env WAVEFILTER_BUDGET]"),
    sink: Optional[int] = typer.Option(None, "--sink", help="First prompt tokens always kept."),
    tail: Optional[int] = typer.Option(None, "--tail", help="Last prompt tokens always kept."),
    threshold: float = typer.Option(0.5, "--threshold", help="Mark a token as kept when at least this share of layers and heads keep it."),
    output: Optional[str] = typer.Option(None, "-o", "--output", metavar="FILE", help="Write a self-contained HTML report to FILE."),
) -> None:
    from wavefilter_cli.cli.answer import load_for_run
    from wavefilter_cli.cli.generate_cmd import _parse_budget
    from wavefilter_cli.cli.inputs import read_documents
    from wavefilter_cli.filters.registry import make_filter
    from wavefilter_cli.inspect import inspect_prompt
    from wavefilter_cli.prompt import PromptDocument, chat_messages, encode_prompt

    diagnostics: Diagnostics = ctx.obj["diagnostics"]
    overrides = {"model.name": model, "cache.budget": _parse_budget(budget), "cache.sink": sink, "cache.tail": tail}
    config, _ = config_from_context(ctx, {k: v for k, v in overrides.items() if v is not None})
    filter_name = filter or config.cache.filter or "wavefilter"
    try:
        key_filter = make_filter(filter_name, budget=config.cache.budget, sink=config.cache.sink, tail=config.cache.tail)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not 0 < threshold <= 1:
        raise UsageError(f"--threshold {threshold} is invalid: use a share in (0, 1]")
    documents = read_documents(inputs, diagnostics, ctx.obj.get("verbosity", 0))
    loaded, tokenizer = load_for_run(config, diagnostics)
    prompt_ids = encode_prompt(tokenizer, chat_messages([PromptDocument(d.source, d.text) for d in documents], question))
    inspection = inspect_prompt(loaded, prompt_ids, key_filter)
    kept = inspection.kept_per_layer()
    summary = (f"{filter_name} at budget {config.cache.budget}: {len(prompt_ids)} prompt tokens, kept per layer "
               + ", ".join(str(k) for k in kept))
    if output:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(_html_report(tokenizer, inspection, summary))
        diagnostics.notice(f"wrote {output}")
    if sys.stdout.isatty() and diagnostics.console is not None:
        from rich.console import Console

        _render_rich(Console(file=sys.stdout, highlight=False), tokenizer, inspection, threshold)
    else:
        write_result(_render_plain(tokenizer, inspection, threshold) + "\n")
    write_result(summary + "\n")
