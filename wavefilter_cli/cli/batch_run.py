"""Answering many prompts in batches, shared by ``ask --questions`` and ``wavefilter batch``.

A job is one question, or a summary, over its own documents. Jobs whose
prompt plus answer fit the window are decoded ``batch_size`` at a time by
``generation.generate_batch``. A job over the window goes alone through the
long-input strategies of ``ask`` and ``summarize`` (``cli.answer.answer_documents``).
Results come back as each job finishes, and ``OrderedResults`` releases them in
input order.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Optional

from wavefilter_cli.cli.answer import answer_documents, build_policy, check_can_summarize, generation_config
from wavefilter_cli.cli.answer_run import AnswerRun, OutputOptions
from wavefilter_cli.cli.output import Diagnostics
from wavefilter_cli.config import Config
from wavefilter_cli.errors import ModelError, WavefilterError
from wavefilter_cli.ingest import Document
from wavefilter_cli.prompt import ASK_INSTRUCTION, SUMMARIZE_INSTRUCTION, PromptDocument, chat_messages, encode_prompt

logger = logging.getLogger(__name__)


@dataclass
class Job:
    """One prompt to answer.

    ``index`` is the job's place in the input. ``question`` None asks for a
    summary. ``documents`` reads the job's documents when the job runs, and
    raises a WavefilterError when they cannot be read. ``error`` marks a job
    that already failed (a malformed record), which then never runs.
    """

    index: int
    question: Optional[str]
    documents: Callable[[], list[Document]] = list
    error: Optional[WavefilterError] = None


@dataclass
class JobResult:
    """The answer of one job and what it cost, or why it failed.

    ``status`` is the exit status the failure maps to (see docs/cli.md), 0
    on success. For a batched job, ``steps`` and ``forward_passes`` are those
    of its whole batch, and ``seconds`` runs from the start of its batch to
    the end of its own answer.
    """

    index: int
    answer: Optional[str] = None
    error: Optional[str] = None
    status: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    steps: int = 0
    forward_passes: int = 0
    seconds: float = 0.0
    batch_size: int = 1

    @property
    def failed(self) -> bool:
        return self.error is not None

    def timings(self) -> dict:
        """Return the token counts and costs as a JSON object."""
        return {
            "tokens_in": self.tokens_in, "tokens_out": self.tokens_out, "steps": self.steps,
            "forward_passes": self.forward_passes, "seconds": round(self.seconds, 3), "batch_size": self.batch_size,
        }


@dataclass
class OrderedResults:
    """Releases results in input order: each as soon as it and every result before it have arrived."""

    next_index: int = 0
    waiting: dict[int, JobResult] = field(default_factory=dict)

    def add(self, result: JobResult) -> list[JobResult]:
        """Store ``result`` and return the results now ready, in order."""
        self.waiting[result.index] = result
        ready = []
        while self.next_index in self.waiting:
            ready.append(self.waiting.pop(self.next_index))
            self.next_index += 1
        return ready


class SilentOutput(OutputOptions):
    """Output options under which a model call prints nothing and computes no citations: the caller writes."""

    def __init__(self) -> None:
        super().__init__(stream=False, as_json=True, cite=False)

    @property
    def wants_citations(self) -> bool:
        return False


@dataclass
class Prepared:
    """A job with its documents read and its prompt encoded."""

    job: Job
    documents: list[Document]
    prompt_ids: list[int]


class BatchAnswerer:
    """Runs jobs on one loaded model: batches for prompts that fit, the long-input path for the others.

    With ``capture_errors`` a job's WavefilterError becomes its failed
    result and the other jobs go on; without it the error propagates.
    """

    def __init__(
        self,
        config: Config,
        model,
        tokenizer,
        diagnostics: Diagnostics,
        batch_size: int,
        view,
        capture_errors: bool = True,
    ) -> None:
        self.config = config
        self.model = model
        self.tokenizer = tokenizer
        self.diagnostics = diagnostics
        self.batch_size = batch_size
        self.view = view
        self.capture_errors = capture_errors
        self.gen_config = generation_config(config)
        self.window = config.model.ctx_tokens or model.config.context_window
        self._summary_error: Optional[ModelError] = None
        self._summary_checked = False

    def run(self, jobs: Iterable[Job]) -> Iterator[JobResult]:
        """Answer ``jobs``; yields each result as its job finishes, not necessarily in input order."""
        pending: list[Prepared] = []
        for job in jobs:
            prepared = self._prepare(job)
            if isinstance(prepared, JobResult):
                yield prepared
            elif len(prepared.prompt_ids) + self.gen_config.answer_length <= self.window:
                pending.append(prepared)
                if len(pending) == self.batch_size:
                    yield from self._run_batch(pending)
                    pending = []
            else:
                # Finish the jobs before it first, so results stay close to input order.
                if pending:
                    yield from self._run_batch(pending)
                    pending = []
                yield self._run_long(prepared)
        if pending:
            yield from self._run_batch(pending)

    def _prepare(self, job: Job) -> Prepared | JobResult:
        """Read the job's documents and encode its prompt, or return its failed result."""
        try:
            if job.error is not None:
                raise job.error
            if job.question is None:
                self._check_summaries()
            documents = job.documents()
            instruction = SUMMARIZE_INSTRUCTION if job.question is None else ASK_INSTRUCTION
            parts = [PromptDocument(document.source, document.text) for document in documents]
            messages = chat_messages(parts, job.question, instruction, self.config.generate.system)
            return Prepared(job, documents, encode_prompt(self.tokenizer, messages))
        except WavefilterError as error:
            return self._failure(job.index, error)

    def _check_summaries(self) -> None:
        """Raise the ModelError of a model that cannot summarise; the check runs once."""
        if not self._summary_checked:
            self._summary_checked = True
            try:
                check_can_summarize(self.config)
            except ModelError as error:
                self._summary_error = error
        if self._summary_error is not None:
            raise self._summary_error

    def _failure(self, index: int, error: WavefilterError) -> JobResult:
        if not self.capture_errors:
            raise error
        logger.info("job %d failed: %s", index, error)
        return JobResult(index, error=str(error), status=error.exit_code)

    def _run_batch(self, batch: list[Prepared]) -> Iterator[JobResult]:
        """Decode the prompts of ``batch`` together; yields a result as each row finishes."""
        import torch

        from wavefilter_cli.generation import Finished, generate_batch

        torch.manual_seed(self.config.generate.seed)
        self.view.update(stage="generating", context_tokens=max(len(p.prompt_ids) for p in batch))
        prompts = [prepared.prompt_ids for prepared in batch]
        events = generate_batch(self.model, self.tokenizer, prompts, self.gen_config, build_policy(self.config))
        for event in events:
            if isinstance(event, Finished):
                yield JobResult(
                    batch[event.row].job.index, answer=event.answer, tokens_in=event.tokens_in,
                    tokens_out=event.tokens_out, steps=event.steps, forward_passes=event.forward_passes,
                    seconds=event.seconds, batch_size=len(batch),
                )

    def _run_long(self, prepared: Prepared) -> JobResult:
        """Answer one job over the window with the long-input strategies, alone."""
        job = prepared.job
        started = time.perf_counter()
        run = AnswerRun(self.config, self.model, self.tokenizer, prepared.documents, job.question, self.gen_config,
                        self.view, SilentOutput(), self.diagnostics)
        try:
            result = answer_documents(run, build_policy(self.config))
        except WavefilterError as error:
            return self._failure(job.index, error)
        finished = result.generated.finished
        return JobResult(
            job.index, answer=finished.answer, tokens_in=finished.tokens_in, tokens_out=finished.tokens_out,
            steps=run.costs.steps, forward_passes=run.costs.forward_passes, seconds=time.perf_counter() - started,
        )
