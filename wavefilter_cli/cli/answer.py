"""The flow behind ``ask`` and ``summarize``: config, documents, model, prompt, generation, output.

An input that fits the window is answered in one call. A longer one is
chunked (``cli.long_inputs``) unless ``--no-chunk`` is given. The answer
streams to stdout one finished block at a time (a diffusion model settles a
block's tokens in any order, so a block is the first unit that is final).
Everything else goes to stderr.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import Optional

from wavefilter_cli.cli.answer_run import AnswerRun, Generated, OutputOptions, run_generation
from wavefilter_cli.cli.inputs import read_documents
from wavefilter_cli.cli.output import Diagnostics, write_result
from wavefilter_cli.config import Config
from wavefilter_cli.errors import LengthError, ModelError, UsageError
from wavefilter_cli.prompt import PromptDocument, chat_messages, encode_prompt

__all__ = ["InputOptions", "OutputOptions", "build_policy", "generation_config", "load_for_run", "run_answer"]


@dataclass
class InputOptions:
    """The documents to read and the PDF options that apply to them."""

    inputs: Optional[list[str]]
    pages: Optional[str] = None
    password_env: Optional[str] = None


def generation_config(config: Config):
    from wavefilter_cli.generation import GenerationConfig

    g = config.generate
    options: dict = {}
    if g.sampler == "threshold":
        options["threshold"] = g.threshold
    if g.sampler == "factor" and g.factor is not None:
        options["factor"] = g.factor
    if g.sampler in ("low-confidence", "threshold", "factor", "maskgit_plus", "topk_margin", "entropy"):
        options["temperature"] = g.temperature
    if g.sampler in ("maskgit_plus", "topk_margin", "entropy"):
        options.update(top_p=g.top_p, top_k=g.top_k, alg_temp=g.alg_temp)
    try:
        return GenerationConfig(
            max_tokens=g.max_tokens, block_length=g.block_length, steps=g.steps,
            sampler=g.sampler, sampler_options=options, seed=g.seed,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


#: Config keys that reach each wavelet filter as options.
FILTER_OPTIONS = {
    "wavefilter": lambda c: {"levels": c.levels, "beam": c.beam},
    "wavefilter-denoise": lambda c: {"wavelet": c.wavelet, "levels": c.levels},
    "wavefilter-paper": lambda c: {"levels": c.levels},
}


#: Hosts that take ``cache.refresh_every``.
REFRESH_HOSTS = ("prefix", "dual")


def build_policy(config: Config, method: str | None = None, filter_name: str | None = None):
    """The cache policy and key-token filter named by the config (or by ``method`` and ``filter_name``).

    Eviction applies only with a filter that selects once per refresh: the
    published WaveFilter (``wavefilter-paper``) reselects at every step and
    only masks, as published.
    """
    from wavefilter_cli.cache import build_cache
    from wavefilter_cli.filters.registry import FILTERS

    c = config.cache
    method = method or c.method
    filter_name = filter_name if filter_name is not None else c.filter
    if filter_name == "none":
        filter_name = None
    per_step = filter_name in FILTERS and FILTERS[filter_name].per_step
    evict = c.evict and filter_name is not None and not per_step
    options = FILTER_OPTIONS.get(filter_name, lambda _: {})(c)
    # Only the Fast-dLLM hosts take extra refreshes; the others ignore the setting.
    cache_options = {"refresh_every": c.refresh_every} if c.refresh_every and method in REFRESH_HOSTS else None
    try:
        return build_cache(method, filter_name, budget=c.budget, sink=c.sink, tail=c.tail, evict=evict,
                           cache_options=cache_options, **options)
    except ValueError as exc:
        # A budget out of range is a length/budget problem (exit 4); other bad names are usage errors.
        error = LengthError if str(exc).startswith("budget") else UsageError
        raise error(str(exc)) from None


def load_for_run(config: Config, diagnostics: Diagnostics):
    """Load model and tokenizer as configured, and print on stderr which device runs them and why."""
    if config.model.offline:
        # transformers and huggingface_hub read this when first imported.
        os.environ["HF_HUB_OFFLINE"] = "1"
    from wavefilter_cli.models import load_model, load_tokenizer

    model = load_model(config.model.name, device=config.model.device, dtype=config.model.dtype, offline=config.model.offline)
    placement = model.placement
    dtype_name = str(placement.dtype).removeprefix("torch.")
    diagnostics.notice(f"model {config.model.name} on {placement.device} ({dtype_name}): {placement.reason}")
    return model, load_tokenizer(model.checkpoint_dir, model.config)


def check_can_summarize(config: Config) -> None:
    """Reject, before any work, a model trained only for look-ups (the built-in model).

    Reads only the checkpoint's config.json, so the error comes before any
    document is read or weights are loaded.
    """
    from wavefilter_cli.models.loading import read_config, resolve_checkpoint

    model_config = read_config(resolve_checkpoint(config.model.name, config.model.offline))
    if "lookup-only" in (getattr(model_config, "wavefilter_capabilities", None) or []):
        raise ModelError(
            f"model {config.model.name} answers look-up questions only and cannot summarise; "
            "pass --model with an instruction-tuned LLaDA or Dream checkpoint"
        )


def run_answer(
    config: Config,
    diagnostics: Diagnostics,
    verbosity: int,
    inputs: InputOptions,
    question: Optional[str],
    output: OutputOptions,
) -> None:
    """Read the documents, generate the answer and print it."""
    from wavefilter_cli.cli.live import LiveView, resolve_progress
    from wavefilter_cli.cli.long_inputs import check_chunk_options

    if question is None:
        check_can_summarize(config)
    ingest = config.ingest
    policy = build_policy(config)  # built first, so a bad --cache, --filter or option fails before any slow work
    check_chunk_options(config)
    view = LiveView(resolve_progress(config.output.progress, diagnostics.console), diagnostics.console)
    with view:
        view.set_stage("reading")
        documents = read_documents(
            inputs.inputs, diagnostics, verbosity, inputs.pages, inputs.password_env, ingest.include, ingest.exclude,
            ingest.max_file_mb, missing_hint="--context FILE (or --context - for stdin)" if question else None,
        )
        gen_config = generation_config(config)
        view.set_stage("loading model")
        model, tokenizer = load_for_run(config, diagnostics)
        run = AnswerRun(config, model, tokenizer, documents, question, gen_config, view, output, diagnostics)
        result = answer_documents(run, policy)
    finished = result.generated.finished
    if diagnostics.verbosity >= 0 and view.mode != "none":
        diagnostics.notice(view.summary_line(run.costs.seconds, finished.tokens_out, run.costs.forward_passes))
    if output.cite:
        write_citations(result)
    if output.as_json:
        write_result(json.dumps(answer_record(run, result)) + "\n")


@dataclass
class AnswerResult:
    """The final model call of a run, its citations, and how the input was chunked (None when it fit)."""

    generated: Generated
    citations: list
    chunking: Optional[dict] = None
    citation_note: Optional[str] = None


def answer_documents(run: AnswerRun, policy) -> AnswerResult:
    """Answer from the whole input when it fits the window, else chunk it (or stop with exit 4 under --no-chunk)."""
    from wavefilter_cli.cli.long_inputs import answer_in_chunks
    from wavefilter_cli.longcontext.prompts import SourceText, encode_mapped, plain_prompt

    trained = run.model.config.context_window
    if run.window > trained:
        run.diagnostics.warn(
            f"--ctx-tokens {run.window} is above the {trained} tokens of prompt plus answer that model "
            f"{run.config.model.name} is meant for; answers may degrade past it"
        )
    run.view.set_stage("tokenising")
    sources = [SourceText(index, doc.source, doc.text) for index, doc in enumerate(run.documents)]
    mapping_error = None
    try:
        prompt = encode_mapped(run.tokenizer, sources, run.question, run.instruction, run.config.generate.system)
    except ModelError as exc:
        # Without an offset mapping the whole-input path still works, only without citations.
        mapping_error = exc
        messages = chat_messages([PromptDocument(d.source, d.text) for d in run.documents], run.question, run.instruction,
                                 run.config.generate.system)
        prompt = plain_prompt(encode_prompt(run.tokenizer, messages))
    answer_length = run.gen_config.answer_length
    total = len(prompt) + answer_length
    if total <= run.window:
        generated = run_generation(run, policy, prompt.ids)
        citations = cite(run, prompt, generated) if run.output.wants_citations and mapping_error is None else []
        note = None if mapping_error is None else str(mapping_error)
        return AnswerResult(generated, citations, citation_note=note)
    if not run.config.generate.chunk:
        raise LengthError(
            f"the prompt is {len(prompt):,} tokens and the answer needs {answer_length:,}, {total:,} in all, "
            f"over {run.window_phrase()}; shorten the input, lower --max-tokens, or drop --no-chunk to split it into chunks"
        )
    if mapping_error is not None:
        raise mapping_error
    return answer_in_chunks(run, policy, total)


def cite(run: AnswerRun, prompt, generated: Generated, positions=None) -> list:
    """Compute the citations of the answer in ``generated`` over ``prompt`` with one extra dense forward."""
    from wavefilter_cli.longcontext.citations import answer_attention, citation_spans

    if not generated.answer_tokens:
        return []
    run.view.set_stage("citing")
    attention = answer_attention(run.model, list(prompt.ids) + generated.answer_tokens, len(prompt), positions)
    return citation_spans(prompt, attention, run.documents)


def answer_record(run: AnswerRun, result: AnswerResult) -> dict:
    """Build the JSON object that ``--json`` prints."""
    config, finished = run.config, result.generated.finished
    placement = run.model.placement
    return {
        "answer": finished.answer,
        "model": config.model.name,
        "device": str(placement.device),
        "dtype": str(placement.dtype).removeprefix("torch."),
        "tokens_in": finished.tokens_in,
        "tokens_out": finished.tokens_out,
        "steps": run.costs.steps,
        "forward_passes": run.costs.forward_passes,
        "seconds": round(run.costs.seconds, 3),
        "inputs": [{"source": d.source, "pages": d.pages, "characters": len(d.text)} for d in run.documents],
        "cache": config.cache.method,
        "refresh_every": (config.cache.refresh_every or None) if config.cache.method in REFRESH_HOSTS else None,
        "filter": config.cache.filter,
        "budget": config.cache.budget if config.cache.filter not in (None, "none") else None,
        "kept_tokens": finished.kept_tokens,
        "context_tokens": finished.context_tokens,
        "kv_bytes_peak": finished.kv_bytes_peak,
        "chunking": result.chunking,
        "citations": [citation.record() for citation in result.citations],
    }


def write_citations(result: AnswerResult) -> None:
    """Print the citations on stderr, one per line, after the answer (``--cite``; shown even with --quiet)."""
    if not result.citations:
        reason = result.citation_note or "the answer is empty or attended to no document text"
        sys.stderr.write(f"citations: none ({reason})\n")
        return
    lines = ["citations:"]
    for number, citation in enumerate(result.citations, start=1):
        where = citation.file if citation.page is None else f"{citation.file} page {citation.page}"
        text = " ".join(citation.text.split())
        lines.append(f"  [{number}] {where}, characters {citation.start}-{citation.end}: {json.dumps(text, ensure_ascii=False)}")
    sys.stderr.write("\n".join(lines) + "\n")
    sys.stderr.flush()
