"""The flow behind ``ask`` and ``summarize``: config, documents, model, prompt, generation, output.

The answer streams to stdout one finished block at a time (a diffusion
model settles a block's tokens in any order, so a block is the first unit
that is final). Everything else goes to stderr.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Optional

from wavefilter_cli.cli.inputs import read_documents
from wavefilter_cli.cli.output import Diagnostics, write_result
from wavefilter_cli.config import Config
from wavefilter_cli.errors import LengthError, ModelError, UsageError
from wavefilter_cli.prompt import ASK_INSTRUCTION, SUMMARIZE_INSTRUCTION, PromptDocument, chat_messages, encode_prompt


@dataclass
class OutputOptions:
    """How the answer is printed."""

    stream: bool = True
    as_json: bool = False


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
    try:
        return build_cache(method, filter_name, budget=c.budget, sink=c.sink, tail=c.tail, evict=evict, **options)
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

    if question is None:
        check_can_summarize(config)
    ingest = config.ingest
    policy = build_policy(config)  # built first, so a bad --cache, --filter or option fails before any slow work
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
        finished = _generate(config, model, tokenizer, policy, documents, question, gen_config, view, output)
    if diagnostics.verbosity >= 0 and view.mode != "none":
        diagnostics.notice(view.summary_line(finished.seconds, finished.tokens_out, finished.forward_passes))
    if output.as_json:
        placement = model.placement
        record = {
            "answer": finished.answer,
            "model": config.model.name,
            "device": str(placement.device),
            "dtype": str(placement.dtype).removeprefix("torch."),
            "tokens_in": finished.tokens_in,
            "tokens_out": finished.tokens_out,
            "steps": finished.steps,
            "forward_passes": finished.forward_passes,
            "seconds": round(finished.seconds, 3),
            "inputs": [{"source": d.source, "pages": d.pages, "characters": len(d.text)} for d in documents],
            "cache": config.cache.method,
            "filter": config.cache.filter,
            "budget": config.cache.budget if config.cache.filter not in (None, "none") else None,
            "kept_tokens": finished.kept_tokens,
            "context_tokens": finished.context_tokens,
            "kv_bytes_peak": finished.kv_bytes_peak,
        }
        write_result(json.dumps(record) + "\n")


def _generate(config: Config, model, tokenizer, policy, documents, question, gen_config, view, output: OutputOptions):
    """Build the prompt, check its length, generate, and stream the answer to stdout; return the Finished event."""
    import torch

    from wavefilter_cli.cli.live import host_kv_bytes
    from wavefilter_cli.generation import BlockDone, Finished, StepDone, decode_answer, generate, stop_token_ids

    summarize = question is None
    view.set_stage("tokenising")
    prompt_docs = [PromptDocument(doc.source, doc.text) for doc in documents]
    instruction = SUMMARIZE_INSTRUCTION if summarize else ASK_INSTRUCTION
    prompt_ids = encode_prompt(tokenizer, chat_messages(prompt_docs, question, instruction, config.generate.system))
    window = model.config.context_window
    total = len(prompt_ids) + gen_config.answer_length
    if total > window:
        raise LengthError(
            f"the prompt is {len(prompt_ids)} tokens and the answer needs {gen_config.answer_length}, "
            f"{total} in all, over the model's {window}-token window; shorten the input or lower --max-tokens"
        )
    torch.manual_seed(config.generate.seed)
    stop_ids = stop_token_ids(model, tokenizer)
    tokens: list[int] = []
    emitted = ""
    finished: Finished | None = None
    view.update(stage="prefill", blocks=gen_config.num_blocks, context_tokens=len(prompt_ids),
                host_kv_bytes=host_kv_bytes(model, total))
    for event in generate(model, tokenizer, prompt_ids, gen_config, policy):
        if isinstance(event, StepDone):
            stats = policy.stats
            view.update(stage="generating", block=event.block + 1, step=event.step + 1, kept_tokens=stats.kept_tokens,
                        context_tokens=stats.context_tokens, kv_bytes=stats.kv_bytes,
                        kept_per_layer=list(stats.kept_per_layer))
        elif isinstance(event, BlockDone):
            view.update(tokens_out=view.state.tokens_out + len(event.tokens))
            tokens.extend(event.tokens)
            if output.stream and not output.as_json:
                text = decode_answer(tokenizer, tokens, stop_ids)
                # Decode the whole answer so far: a multi-byte character can straddle two blocks.
                if text.startswith(emitted) and len(text) > len(emitted):
                    write_result(text[len(emitted):])
                    emitted = text
        elif isinstance(event, Finished):
            finished = event
    assert finished is not None
    if output.as_json:
        return finished
    if not output.stream:
        write_result(finished.answer)
    elif finished.answer != emitted and finished.answer.startswith(emitted):
        write_result(finished.answer[len(emitted):])
    write_result("\n")
    return finished
