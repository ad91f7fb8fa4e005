"""Training and evaluation samples for the built-in look-up model.

A sample is one prompt, built with ``wavefilter_cli.prompt`` exactly as the
CLI builds it (one document, then the question), and a fixed-length answer
target: the answer's tokens, ``<|eot_id|>``, then ``<|endoftext|>`` up to
``answer_length``, the EOS padding that LLaDA-Instruct's fine-tuning uses.
The prompt has exactly the requested number of tokens because the haystack
filler is cut to fit around the inserted sentences and the chat template.

Usage::

    haystack = Haystack(folder)
    generator = SampleGenerator(tokenizer, haystack, split="train")
    sample = generator.make("niah_multikey", 4096, random.Random(0))

The same tokenizer, haystack, arguments and RNG state give the same sample.
The generator needs a byte-level BPE tokenizer whose pre-tokens never join
a non-space character to the whitespace after it, such as the one
``tokenizer.py`` trains. ``check_tokenizer`` raises ``ValueError`` for
tokenizers that merge across that boundary.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from wavefilter_cli.prompt import ASK_INSTRUCTION, PromptDocument, chat_messages, encode_prompt
from wavefilter_cli.training import facts
from wavefilter_cli.training.document import (
    FitError,
    Insertion,
    Stream,
    build_document,
    choose_positions,
    draw_stream,
    insertion_texts,
)
from wavefilter_cli.training.haystack import Haystack, check_split
from wavefilter_cli.training.tasks import FACT_TASKS, TaskSpec

#: Every task name ``SampleGenerator.make`` accepts.
TASKS: tuple[str, ...] = (*FACT_TASKS, "quote", "mlm")

DEFAULT_ANSWER_LENGTH = 32
#: Fresh draws tried before a requested length is reported as impossible.
MAX_ATTEMPTS = 16
#: Haystack tokens drawn beyond the document's need, for fitting its end.
STREAM_SLACK = 64
#: Inclusive word-count ranges of the quoted span and of the continuation asked for.
QUOTE_SPAN_WORDS = (5, 12)
QUOTE_ANSWER_WORDS = (3, 6)
#: Upper estimate of the tokens a quote question adds beyond its fixed words,
#: so the quoted span is drawn well inside the document before the question is known.
QUOTE_QUESTION_ALLOWANCE = 32
#: Paragraphs scanned forward for one long enough to quote from.
QUOTE_PARAGRAPH_SCAN = 64


@dataclass
class Sample:
    """One prompt with its answer target.

    ``prompt_ids`` are the chat-template prompt tokens (exactly the requested
    length). ``answer_ids`` are ``answer_length`` tokens: the answer, then
    ``<|eot_id|>``, then ``<|endoftext|>`` padding; empty for ``mlm``.
    ``document`` is the document text inside the prompt, ``facts`` the
    inserted sentences in document order.
    """

    task: str
    prompt_ids: list[int]
    answer_ids: list[int]
    answer_text: str
    question: str
    document: str
    facts: list[str] = field(default_factory=list)


def check_tokenizer(tokenizer) -> None:
    """Raise ``ValueError`` unless ``tokenizer`` splits text at every non-space-to-whitespace boundary.

    Exact prompt lengths rely on that split: it makes the token count of a
    document the sum of the counts of its parts.
    """
    probes = (("end.", "\n\nNext"), ("is 4817.", " The"), ("word", " word"), ("'Oh!'", "\n\n'Yes"))
    for left, right in probes:
        whole = count_tokens(tokenizer, left + right)
        parts = count_tokens(tokenizer, left) + count_tokens(tokenizer, right)
        if whole != parts:
            raise ValueError(
                f"tokenizer {getattr(tokenizer, 'name_or_path', tokenizer)!r} merges across the boundary of "
                f"{left + right!r}, so exact prompt lengths cannot be built; use the tokenizer from "
                "wavefilter_cli.training.tokenizer"
            )


def count_tokens(tokenizer, text: str) -> int:
    """Return the number of tokens of ``text`` without special tokens."""
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


class SampleGenerator:
    """Builds samples of one split from a haystack, reproducibly from the caller's RNG."""

    def __init__(
        self,
        tokenizer,
        haystack: Haystack,
        answer_length: int = DEFAULT_ANSWER_LENGTH,
        split: str = "train",
    ) -> None:
        check_split(split)
        if answer_length < 2:
            raise ValueError(
                f"answer_length must be at least 2 (an answer token and <|eot_id|>), got {answer_length}"
            )
        check_tokenizer(tokenizer)
        self.tokenizer = tokenizer
        self.haystack = haystack
        self.answer_length = answer_length
        self.split = split
        self.eot_id = tokenizer.convert_tokens_to_ids("<|eot_id|>")
        self.eos_id = tokenizer.eos_token_id
        if self.eot_id is None or self.eot_id == tokenizer.unk_token_id or self.eos_id is None:
            raise ValueError(
                "the tokenizer has no <|eot_id|> or no EOS token; "
                "use the tokenizer from wavefilter_cli.training.tokenizer"
            )
        self.regions = haystack.regions(tokenizer, split)

    def make(self, task: str, target_tokens: int, rng: random.Random, depth: float | None = None) -> Sample:
        """Build one ``task`` sample whose prompt has exactly ``target_tokens`` tokens.

        ``depth`` in [0, 1] places the anchor fact at that fraction of the
        document's haystack text, snapped to the nearest sentence end or to
        the very start for 0. The anchor is the asked fact, the first asked
        value of ``niah_multivalue``, the first key of the ``niah_multiquery``
        question or the first link of the ``vartrack`` chain. Other facts go at
        random depths, after the anchor in ordered tasks. For ``quote`` it
        places the quoted span, and ``mlm`` ignores it. ``None`` draws every
        depth at random.

        Raises ``ValueError`` when no draw reaches the length, because the
        template, question and facts alone exceed it or the split's haystack
        is too short.
        """
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
        if depth is not None and not 0.0 <= depth <= 1.0:
            raise ValueError(f"depth must be in [0, 1] or None, got {depth}")
        if target_tokens < 1:
            raise ValueError(f"target_tokens must be positive, got {target_tokens}")
        if task == "mlm":
            return self.make_mlm(target_tokens, rng)

        last_error: FitError | None = None
        for _ in range(MAX_ATTEMPTS):
            try:
                if task == "quote":
                    return self.make_quote(target_tokens, rng, depth)
                return self.make_fact_task(task, target_tokens, rng, depth)
            except FitError as error:
                last_error = error
        raise ValueError(
            f"cannot build a {task} prompt of exactly {target_tokens} tokens "
            f"({MAX_ATTEMPTS} draws failed, the last because {last_error}); use a longer target length"
        )

    def make_mlm(self, target_tokens: int, rng: random.Random) -> Sample:
        """Build a masked-LM sample: ``target_tokens`` tokens of haystack text from a paragraph start."""
        stream = draw_stream(self.regions, target_tokens + STREAM_SLACK, rng)
        start, end = stream.lead, stream.lead + target_tokens
        ids = [int(token) for token in stream.ids[start:end]]
        text = stream.text[stream.starts[start] : stream.starts[end]]
        return Sample(task="mlm", prompt_ids=ids, answer_ids=[], answer_text="", question="", document=text)

    def make_fact_task(self, task: str, target_tokens: int, rng: random.Random, depth: float | None) -> Sample:
        """Build one fact-insertion sample; raises ``FitError`` when this draw cannot reach the length."""
        spec = FACT_TASKS[task](rng, self.answer_fits)
        name = rng.choice(facts.DOCUMENT_NAMES)
        document_tokens = target_tokens - self.prompt_overhead(name, spec.question)
        spaced_tokens = [self.count(" " + fact.sentence) for fact in spec.facts]
        while sum(spaced_tokens) > document_tokens and spec.drop_last_distractor():
            spaced_tokens = [self.count(" " + fact.sentence) for fact in spec.facts]
        filler_tokens = document_tokens - sum(spaced_tokens)
        if filler_tokens < 0:
            raise FitError(f"the question and facts need {target_tokens - filler_tokens} tokens")

        stream = draw_stream(self.regions, document_tokens + STREAM_SLACK, rng)
        # Ordered tasks get sorted fractions, and snapping keeps that order.
        positions = choose_positions(stream, self.fact_fractions(spec, rng, depth), filler_tokens)
        insertions = [Insertion(fact.sentence, position) for fact, position in zip(spec.facts, positions)]
        document = build_document(stream, insertions, document_tokens, self.count)
        inserted = [text.strip() for text in insertion_texts(insertions)]
        return self.finish(task, target_tokens, name, spec.question, document, spec.answer, inserted)

    def make_quote(self, target_tokens: int, rng: random.Random, depth: float | None) -> Sample:
        """Quote a span of the document and ask for the words after it; raises ``FitError`` on a failed draw."""
        name = rng.choice(facts.DOCUMENT_NAMES)
        base_tokens = target_tokens - self.prompt_overhead(name, facts.quote_question("", 0))
        window = base_tokens - QUOTE_QUESTION_ALLOWANCE
        if window <= 0:
            raise FitError(f"{target_tokens} tokens leave no room for a document to quote from")
        stream = draw_stream(self.regions, base_tokens + STREAM_SLACK, rng)
        span, continuation = self.draw_quote(stream, window, rng, depth)
        if not self.answer_fits(continuation):
            raise FitError(f"the continuation {continuation!r} does not fit in {self.answer_length} answer tokens")
        question = facts.quote_question(span, len(continuation.split(" ")))

        document_tokens = target_tokens - self.prompt_overhead(name, question)
        document = build_document(stream, [], document_tokens, self.count)
        # Compare with single spaces, as the span may cross a line break of the document.
        flat = " ".join(document.split())
        if flat.count(span) != 1 or span + " " + continuation not in flat:
            raise FitError("the quoted span is not unique in the document or its continuation was cut off")
        return self.finish("quote", target_tokens, name, question, document, continuation, [])

    def draw_quote(self, stream: Stream, window: int, rng: random.Random, depth: float | None) -> tuple[str, str]:
        """Pick a span and its continuation inside one paragraph of the first ``window`` document tokens.

        Both are returned with single spaces between words, even where the
        document breaks the line between them.
        """
        span_words = rng.randint(*QUOTE_SPAN_WORDS)
        answer_words = rng.randint(*QUOTE_ANSWER_WORDS)
        needed = span_words + answer_words
        fraction = rng.random() if depth is None else depth
        limit = int(stream.starts[min(stream.lead + window, stream.num_tokens)])
        position = int(stream.starts[stream.lead + int(fraction * (window - 1))])
        text = stream.text

        for _ in range(QUOTE_PARAGRAPH_SCAN):
            paragraph_start = text.rfind("\n\n", 0, position + 1) + 2
            paragraph_end = text.find("\n\n", position)
            paragraph_end = len(text) if paragraph_end < 0 else paragraph_end
            words = list(re.finditer(r"\S+", text[paragraph_start:paragraph_end]))
            if len(words) >= needed:
                first = sum(1 for word in words if paragraph_start + word.start() < position)
                first = min(first, len(words) - needed)
                if paragraph_start + words[first + needed - 1].end() > limit:
                    break
                span = " ".join(word.group() for word in words[first : first + span_words])
                continuation = " ".join(word.group() for word in words[first + span_words : first + needed])
                return span, continuation
            position = paragraph_end + 2
            if position >= limit:
                break
        raise FitError("no paragraph near the drawn depth is long enough to quote from")

    def finish(
        self,
        task: str,
        target_tokens: int,
        name: str,
        question: str,
        document: str,
        answer: str,
        inserted: list[str],
    ) -> Sample:
        """Encode the prompt, check its length, and build the padded answer target."""
        messages = chat_messages([PromptDocument(name, document)], question, ASK_INSTRUCTION)
        prompt_ids = encode_prompt(self.tokenizer, messages)
        if len(prompt_ids) != target_tokens:
            raise FitError(f"the prompt came to {len(prompt_ids)} tokens instead of {target_tokens}")
        return Sample(
            task=task,
            prompt_ids=prompt_ids,
            answer_ids=self.answer_ids(answer),
            answer_text=answer,
            question=question,
            document=document,
            facts=inserted,
        )

    def answer_ids(self, answer: str) -> list[int]:
        """Return the answer's tokens, ``<|eot_id|>``, then EOS padding to ``answer_length``."""
        ids = self.tokenizer(answer, add_special_tokens=False)["input_ids"] + [self.eot_id]
        if len(ids) > self.answer_length:
            raise ValueError(
                f"answer {answer!r} takes {len(ids)} tokens with <|eot_id|>, "
                f"more than answer_length={self.answer_length}; raise answer_length"
            )
        return ids + [self.eos_id] * (self.answer_length - len(ids))

    def answer_fits(self, answer: str) -> bool:
        """Return whether ``answer`` and ``<|eot_id|>`` fit in ``answer_length`` tokens."""
        return self.count(answer) + 1 <= self.answer_length

    def count(self, text: str) -> int:
        """Return the number of tokens of ``text`` without special tokens."""
        return count_tokens(self.tokenizer, text)

    def prompt_overhead(self, name: str, question: str) -> int:
        """Return the prompt tokens outside the document text: template, instruction, header and question."""
        placeholder = "x"
        messages = chat_messages([PromptDocument(name, placeholder)], question, ASK_INSTRUCTION)
        return len(encode_prompt(self.tokenizer, messages)) - self.count(placeholder)

    @staticmethod
    def fact_fractions(spec: TaskSpec, rng: random.Random, depth: float | None) -> list[float]:
        """Draw each fact's depth; ``depth`` fixes the anchor fact and ordered tasks keep the rest after it."""
        if spec.ordered:
            low = 0.0 if depth is None else depth
            fractions = sorted(rng.uniform(low, 1.0) for _ in spec.facts)
            if depth is not None:
                # Distractors ordered before the anchor share its depth, so the list order holds.
                for index in range(spec.anchor + 1):
                    fractions[index] = depth
            return fractions
        fractions = [rng.random() for _ in spec.facts]
        if depth is not None:
            fractions[spec.anchor] = depth
        return fractions
