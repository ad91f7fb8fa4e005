"""The demo document: Python's bundled documentation topics with a few planted facts.

Every Python installation ships ``pydoc_data.topics`` (the text behind
``help("assert")`` and friends), so the demo needs no download and no data
of ours. Facts such as "The passcode for the north gate is 4817." are
inserted at fixed depths between paragraphs; the questions ask for them.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

FACT_TEMPLATES = (
    ("passcode", "north gate"),
    ("access code", "blue vault"),
    ("combination", "old tower"),
)
DEPTHS = (0.2, 0.5, 0.8)


@dataclass(frozen=True)
class PlantedFact:
    """One inserted sentence, the question that asks for it and the expected answer."""

    sentence: str
    question: str
    answer: str
    depth: float

    def is_correct(self, reply: str) -> bool:
        """Whether ``reply`` states this fact's value as a whole number and no other number.

        The built-in model restates the fact ("The passcode for the north
        gate is 4817."), so the reply is scored by the numbers it contains.
        """
        return re.findall(r"\d+", reply) == [self.answer]


@dataclass(frozen=True)
class DemoDocument:
    text: str
    facts: list[PlantedFact]


def topic_paragraphs() -> list[str]:
    """Paragraphs of the bundled pydoc topics, in sorted topic order."""
    from pydoc_data.topics import topics

    paragraphs = []
    for name in sorted(topics):
        for block in topics[name].split("\n\n"):
            block = " ".join(line.strip() for line in block.splitlines() if line.strip())
            if len(block) > 40:
                paragraphs.append(block)
    return paragraphs


def build_demo_document(tokenizer, min_tokens: int = 8192, seed: int = 0, planted: tuple[int, ...] = (0, 1, 2)) -> DemoDocument:
    """Build a document of at least ``min_tokens`` tokens with planted facts.

    ``planted`` indexes ``FACT_TEMPLATES``: fact i goes in at depth ``DEPTHS[i]``
    (0.2, 0.5 and 0.8 of the paragraphs).
    """
    rng = random.Random(seed)
    paragraphs = topic_paragraphs()
    chosen, tokens = [], 0
    for paragraph in paragraphs:
        chosen.append(paragraph)
        tokens += len(tokenizer(paragraph, add_special_tokens=False)["input_ids"]) + 2
        if tokens >= min_tokens:
            break
    facts = []
    for index, ((attribute, place), depth) in enumerate(zip(FACT_TEMPLATES, DEPTHS)):
        # A value is drawn for every template, so a fact has the same value whichever others are planted.
        value = str(rng.randint(1000, 99999))
        if index not in planted:
            continue
        facts.append(
            PlantedFact(
                sentence=f"The {attribute} for the {place} is {value}.",
                question=f"What is the {attribute} for the {place}?",
                answer=value,
                depth=depth,
            )
        )
    # Insert from the deepest first so earlier indices stay valid.
    for fact in sorted(facts, key=lambda f: -f.depth):
        chosen.insert(round(fact.depth * len(chosen)), fact.sentence)
    return DemoDocument(text="\n\n".join(chosen), facts=facts)
