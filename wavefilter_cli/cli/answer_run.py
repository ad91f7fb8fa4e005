"""One ``ask`` or ``summarize`` run: its settings, its model calls, and the answer streamed to stdout.

``AnswerRun`` bundles what every model call of a run needs. ``run_generation``
drives ``generation.generate`` for one prompt, updates the live view, and
writes the answer to stdout when asked to (only a run's final call does).
``Costs`` adds up steps, forward passes and seconds over all calls.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

from wavefilter_cli.cli.output import Diagnostics, write_result
from wavefilter_cli.config import Config
from wavefilter_cli.ingest import Document
from wavefilter_cli.prompt import ASK_INSTRUCTION, SUMMARIZE_INSTRUCTION


@dataclass
class OutputOptions:
    """How the answer is printed: streamed or at the end, as JSON, with citations on stderr."""

    stream: bool = True
    as_json: bool = False
    cite: bool = False
    # False keeps the answer off stdout altogether (callers that print their own summary).
    show: bool = True

    @property
    def wants_citations(self) -> bool:
        return self.as_json or self.cite


@dataclass
class Costs:
    """Denoising steps and forward passes of every generation of a run, and its seconds.

    ``seconds`` runs from the start of the run (after the model is loaded)
    to the end of its last generation, so chunk scoring is included and a
    citation forward after the answer is not. The scoring and citation
    forwards are not generation forwards and are not counted.
    """

    steps: int = 0
    forward_passes: int = 0
    started: float = field(default_factory=time.perf_counter)
    ended: float | None = None

    @property
    def seconds(self) -> float:
        return (self.ended if self.ended is not None else time.perf_counter()) - self.started

    def add(self, finished) -> None:
        self.steps += finished.steps
        self.forward_passes += finished.forward_passes
        self.ended = time.perf_counter()


@dataclass
class AnswerRun:
    """Everything the model calls of one run share."""

    config: Config
    model: object
    tokenizer: object
    documents: list[Document]
    question: Optional[str]
    gen_config: object
    view: object
    output: OutputOptions
    diagnostics: Diagnostics
    costs: Costs = field(default_factory=Costs)

    @property
    def instruction(self) -> str:
        return SUMMARIZE_INSTRUCTION if self.question is None else ASK_INSTRUCTION

    @property
    def window(self) -> int:
        """Tokens of prompt plus answer allowed: ``model.ctx_tokens``, else the model's trained window."""
        return self.config.model.ctx_tokens or self.model.config.context_window

    def window_phrase(self) -> str:
        """Describe the window for messages, naming where its size comes from."""
        if self.config.model.ctx_tokens:
            return f"the {self.window}-token window set by --ctx-tokens"
        return f"the model's {self.window}-token window"


@dataclass
class Generated:
    """One finished model call: its Finished event, the answer's token ids up to the stop token, and the prompt's ids."""

    finished: object
    answer_tokens: list[int]
    prompt_ids: list[int] = field(default_factory=list)


def run_generation(
    run: AnswerRun,
    policy,
    prompt_ids: Sequence[int],
    positions: Sequence[int] | None = None,
    show: bool = True,
    stage: str = "generating",
) -> Generated:
    """Generate an answer to ``prompt_ids``; with ``show``, write it to stdout as the output options say.

    ``positions`` are RoPE positions per canvas slot, see ``generation.generate``.
    """
    import torch

    from wavefilter_cli.cli.live import host_kv_bytes
    from wavefilter_cli.generation import BlockDone, Finished, StepDone, decode_answer, generate, stop_token_ids

    model, tokenizer, gen_config, view, output = run.model, run.tokenizer, run.gen_config, run.view, run.output
    torch.manual_seed(run.config.generate.seed)
    stop_ids = stop_token_ids(model, tokenizer)
    tokens: list[int] = []
    emitted = ""
    finished = None
    show = show and output.show
    writing = show and output.stream and not output.as_json
    view.update(stage="prefill" if show else stage, blocks=gen_config.num_blocks, context_tokens=len(prompt_ids),
                host_kv_bytes=host_kv_bytes(model, len(prompt_ids) + gen_config.answer_length))
    for event in generate(model, tokenizer, prompt_ids, gen_config, policy, positions=positions):
        if isinstance(event, StepDone):
            stats = policy.stats
            view.update(stage=stage, block=event.block + 1, step=event.step + 1, kept_tokens=stats.kept_tokens,
                        context_tokens=stats.context_tokens, kv_bytes=stats.kv_bytes,
                        kept_per_layer=list(stats.kept_per_layer))
        elif isinstance(event, BlockDone):
            view.update(tokens_out=view.state.tokens_out + len(event.tokens))
            tokens.extend(event.tokens)
            if writing:
                text = decode_answer(tokenizer, tokens, stop_ids)
                # Decode the whole answer so far: a multi-byte character can straddle two blocks.
                if text.startswith(emitted) and len(text) > len(emitted):
                    write_result(text[len(emitted):])
                    emitted = text
        elif isinstance(event, Finished):
            finished = event
    assert finished is not None
    run.costs.add(finished)
    if show and not output.as_json:
        if not output.stream:
            write_result(finished.answer)
        elif finished.answer != emitted and finished.answer.startswith(emitted):
            write_result(finished.answer[len(emitted):])
        write_result("\n")
    return Generated(finished, tokens[: finished.tokens_out], list(prompt_ids))
