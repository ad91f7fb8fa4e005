"""``wavefilter demo``: the whole pipeline on a long document, with the built-in model, on a CPU.

Builds a document of at least 8K tokens from Python's bundled documentation
topics with three planted facts and answers a question about each, the way
``wavefilter ask`` would: a document over the model's window is read with
the configured long-input strategy (``filter`` by default), and a stderr
notice reports the strategy. The answers stream to stdout. Then the first question is
answered once more with each method side by side, and a table gives for
each: correct or not, total seconds (chunk scoring included) and peak K/V
megabytes while generating.
"""

from __future__ import annotations

from dataclasses import dataclass

import typer

from wavefilter_cli.cli.app import app
from wavefilter_cli.cli.config_cmd import config_from_context
from wavefilter_cli.cli.output import Diagnostics, write_result

DEMO_HELP = """Answer questions about a long generated document with the built-in model, comparing cache methods.

Examples:

\b
  wavefilter demo
  wavefilter demo --tokens 16384 --methods none,prefix,prefix+wavefilter

The document is Python's bundled documentation topics (no download) with
three planted facts. A document longer than the model's window is read in
chunks, as `wavefilter ask` does. Answers and the comparison table go to
stdout; the live view and notices go to stderr.
"""


@dataclass
class MethodResult:
    method: str
    answer: str
    correct: bool
    seconds: float
    kv_megabytes: float


def _answer(config, model, tokenizer, document, question, method, gen_config, view, diagnostics, show):
    """Answer ``question`` over ``document`` with ``method`` (HOST[+FILTER]) through the ``ask`` flow."""
    from wavefilter_cli.cli.answer import answer_documents, build_policy
    from wavefilter_cli.cli.answer_run import AnswerRun, OutputOptions

    host, _, filter_name = method.partition("+")
    policy = build_policy(config, host, filter_name or "none")
    run = AnswerRun(config, model, tokenizer, [document], question, gen_config, view, OutputOptions(show=show), diagnostics)
    result = answer_documents(run, policy)
    return result.generated.finished, run.costs.seconds


@app.command("demo", help=DEMO_HELP)
def demo(
    ctx: typer.Context,
    tokens: int = typer.Option(8192, "--tokens", help="Minimum document length in model tokens."),
    methods: str = typer.Option("none,prefix,prefix+wavefilter", "--methods", help="Methods to compare, HOST[+FILTER], comma-separated."),
    model: str = typer.Option("builtin", "-m", "--model", help="Model to run (the built-in one by default)."),
) -> None:
    from wavefilter_cli.cli.answer import build_policy, generation_config, load_for_run
    from wavefilter_cli.cli.live import LiveView, resolve_progress
    from wavefilter_cli.cli.long_inputs import check_chunk_options
    from wavefilter_cli.demo import build_demo_document
    from wavefilter_cli.ingest import Document, Span

    diagnostics: Diagnostics = ctx.obj["diagnostics"]
    config, _ = config_from_context(ctx, {"model.name": model, "generate.max_tokens": 24, "generate.sampler": "threshold"})
    method_list = [m.strip() for m in methods.split(",") if m.strip()]
    main_method = next((m for m in method_list if "+" in m), method_list[-1])
    for method in method_list:
        # A bad method name fails here, before the model loads.
        host, _, filter_name = method.partition("+")
        build_policy(config, host, filter_name or "none")
    check_chunk_options(config)
    gen_config = generation_config(config)
    view = LiveView(resolve_progress(config.output.progress, diagnostics.console), diagnostics.console)
    results: list[MethodResult] = []
    with view:
        view.set_stage("loading model")
        loaded, tokenizer = load_for_run(config, diagnostics)
        view.set_stage("building document")
        built = build_demo_document(tokenizer, min_tokens=tokens)
        source = "python-topics.txt"
        document = Document(source, built.text, [Span(source=source, page=None, start=0, end=len(built.text))], None)
        diagnostics.notice("document: facts at depths " + ", ".join(f"{f.depth:.0%}" for f in built.facts))
        for fact in built.facts:
            write_result(f"Q: {fact.question}\n")
            _answer(config, loaded, tokenizer, document, fact.question, main_method, gen_config, view, diagnostics, True)
        fact = built.facts[0]
        # The comparison reads the same document again, so its strategy notices would repeat the ones above.
        quiet = Diagnostics(verbosity=-1)
        for method in method_list:
            finished, seconds = _answer(config, loaded, tokenizer, document, fact.question, method, gen_config, view,
                                        quiet, False)
            results.append(MethodResult(method, finished.answer.strip(), fact.is_correct(finished.answer),
                                        seconds, finished.kv_bytes_peak / 2**20))
    lines = [f"{'method':<24} {'correct':<8} {'seconds':>8} {'K/V MB':>8}  answer"]
    for r in results:
        lines.append(f"{r.method:<24} {'yes' if r.correct else 'no':<8} {r.seconds:>8.1f} {r.kv_megabytes:>8.2f}  {r.answer!r}")
    write_result("\n" + "\n".join(lines) + "\n")
