"""Deterministic plain-text books of made-up prose for the tokenizer and data-generator tests.

The books look like the public-domain haystack: hard-wrapped lines, blank
lines between paragraphs, dialogue in quotes, titles such as "Mr." and the
odd number. Every word comes from a seeded syllable generator, and each
sentence draws 5 to 14 of 400 words, so a line of one book practically never
appears elsewhere.
"""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

SYLLABLES = (
    "ka", "lo", "mi", "ren", "sa", "tor", "vel", "an", "dor", "es",
    "fi", "gal", "hu", "in", "jo", "mar", "ne", "ol", "pri", "qua",
)
TITLES = ("Mr.", "Mrs.", "Dr.")


def make_words(rng: random.Random, count: int) -> list[str]:
    """Draw ``count`` distinct lower-case pseudo-words of two to four syllables."""
    words: set[str] = set()
    while len(words) < count:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def make_sentence(rng: random.Random, words: list[str]) -> str:
    """Draw one sentence, sometimes with a title, a number or a quotation."""
    body = [rng.choice(words) for _ in range(rng.randint(5, 14))]
    if rng.random() < 0.1:
        body.insert(rng.randrange(len(body)), f"{rng.choice(TITLES)} {rng.choice(words).capitalize()}")
    if rng.random() < 0.1:
        body.insert(rng.randrange(len(body)), str(rng.randint(2, 1900)))
    sentence = " ".join(body)
    sentence = sentence[0].upper() + sentence[1:] + rng.choice(".....!?")
    if rng.random() < 0.15:
        sentence = f'"{sentence}" said {rng.choice(words).capitalize()}.'
    return sentence


def make_book(rng: random.Random, words: list[str], paragraphs: int) -> str:
    """Draw a book of ``paragraphs`` paragraphs wrapped at 70 columns."""
    blocks = []
    for _ in range(paragraphs):
        paragraph = " ".join(make_sentence(rng, words) for _ in range(rng.randint(1, 6)))
        blocks.append(textwrap.fill(paragraph, width=70))
    return "\n\n".join(blocks) + "\n"


def write_books(directory: Path, books: int = 4, paragraphs: int = 300, seed: int = 0) -> Path:
    """Write ``books`` synthetic books to ``directory`` and return it."""
    rng = random.Random(seed)
    words = make_words(rng, 400)
    directory.mkdir(parents=True, exist_ok=True)
    for index in range(books):
        (directory / f"book_{index}.txt").write_text(make_book(rng, words, paragraphs), encoding="utf-8")
    return directory
