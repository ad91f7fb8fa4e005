"""Synthetic keys, values and sentences for the look-up tasks.

Every phrase the tasks insert into haystack prose or ask about comes from here,
so the tokenizer trainer can feed the same phrasing to BPE and the key words,
``VAR`` and the question forms get tokens of their own.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

#: (singular, plural) attributes whose values are digit strings.
NUMERIC_ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("passcode", "passcodes"),
    ("access code", "access codes"),
    ("door code", "door codes"),
    ("PIN", "PINs"),
    ("serial number", "serial numbers"),
    ("combination", "combinations"),
    ("account number", "account numbers"),
    ("ticket number", "ticket numbers"),
    ("locker number", "locker numbers"),
    ("badge number", "badge numbers"),
    ("reference number", "reference numbers"),
    ("lot number", "lot numbers"),
)

#: (singular, plural) attributes whose values are single words.
WORD_ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("password", "passwords"),
    ("codeword", "codewords"),
    ("watchword", "watchwords"),
    ("call sign", "call signs"),
)

PLACE_ADJECTIVES: tuple[str, ...] = (
    "north", "south", "east", "west", "upper", "lower", "inner", "outer", "old", "new",
    "hidden", "blue", "red", "green", "grey", "silver", "copper", "iron", "stone", "glass",
)

PLACE_NOUNS: tuple[str, ...] = (
    "gate", "vault", "tower", "cellar", "archive", "bridge", "garden", "library", "chapel",
    "workshop", "station", "warehouse", "lighthouse", "mill", "observatory", "greenhouse",
    "armory", "stable", "boathouse", "pantry", "office",
)

WORD_VALUES: tuple[str, ...] = (
    "amber", "falcon", "cobalt", "willow", "ember", "juniper", "marble", "orchid", "pepper",
    "quartz", "raven", "saffron", "thistle", "velvet", "walnut", "zephyr", "basil", "cedar",
    "dahlia", "fennel", "garnet", "hazel", "indigo", "jasper", "kestrel", "lantern", "maple",
    "nutmeg", "olive", "pebble", "quill", "russet", "sparrow", "tulip", "umber", "violet",
    "wren", "yarrow", "acorn", "bramble", "cinder", "dune", "ermine", "flint", "glacier",
    "heron", "ivory", "kelp", "lilac", "meadow", "nectar", "onyx", "plume", "ripple",
    "sorrel", "tansy", "topaz", "birch", "clover", "harbor",
)

#: Digits in a numeric value, inclusive bounds.
MIN_VALUE_DIGITS = 4
MAX_VALUE_DIGITS = 7

#: Letters in a variable-tracking name such as ``QXK``.
VARIABLE_NAME_LETTERS = 3

#: Display names the prompts give the single document of a sample.
DOCUMENT_NAMES: tuple[str, ...] = (
    "notes.txt", "report.txt", "document.txt", "chapter.txt", "archive.txt", "records.txt",
    "manuscript.txt", "excerpt.txt", "book.pdf", "memo.pdf", "transcript.txt", "journal.txt",
)


@dataclass(frozen=True)
class Key:
    """Subject of a fact: an attribute of a place, such as ``the PIN for the blue vault``."""

    attribute: str
    plural: str
    place: str
    numeric: bool

    def phrase(self) -> str:
        """Return the key as a noun phrase, e.g. ``the PIN for the blue vault``."""
        return f"the {self.attribute} for the {self.place}"


def random_place(rng: random.Random) -> str:
    """Draw a place such as ``north gate``."""
    return f"{rng.choice(PLACE_ADJECTIVES)} {rng.choice(PLACE_NOUNS)}"


def random_key(rng: random.Random, numeric: bool | None = None) -> Key:
    """Draw a key; ``numeric`` picks the value kind, ``None`` picks it at random (4 in 5 numeric)."""
    if numeric is None:
        numeric = rng.random() < 0.8
    attributes = NUMERIC_ATTRIBUTES if numeric else WORD_ATTRIBUTES
    attribute, plural = rng.choice(attributes)
    return Key(attribute=attribute, plural=plural, place=random_place(rng), numeric=numeric)


def similar_key(rng: random.Random, key: Key) -> Key:
    """Draw a distractor key that shares the attribute or the place of ``key`` half of the time."""
    other = random_key(rng, numeric=key.numeric)
    roll = rng.random()
    if roll < 0.25:
        return Key(attribute=key.attribute, plural=key.plural, place=other.place, numeric=key.numeric)
    if roll < 0.5:
        return Key(attribute=other.attribute, plural=other.plural, place=key.place, numeric=key.numeric)
    return other


def distinct_keys(rng: random.Random, count: int, near: Key | None = None) -> list[Key]:
    """Draw ``count`` keys with pairwise different phrases, similar to ``near`` when given."""
    keys: list[Key] = []
    phrases: set[str] = set() if near is None else {near.phrase()}
    while len(keys) < count:
        key = random_key(rng) if near is None else similar_key(rng, near)
        if key.phrase() not in phrases:
            phrases.add(key.phrase())
            keys.append(key)
    return keys


def random_value(rng: random.Random, numeric: bool) -> str:
    """Draw a value: 4 to 7 digits with no leading zero, or a word from ``WORD_VALUES``."""
    if not numeric:
        return rng.choice(WORD_VALUES)
    length = rng.randint(MIN_VALUE_DIGITS, MAX_VALUE_DIGITS)
    first = rng.choice("123456789")
    rest = "".join(rng.choice(string.digits) for _ in range(length - 1))
    return first + rest


def distinct_values(rng: random.Random, count: int, numeric: bool) -> list[str]:
    """Draw ``count`` pairwise different values of one kind."""
    values: list[str] = []
    while len(values) < count:
        value = random_value(rng, numeric)
        if value not in values:
            values.append(value)
    return values


def fact_sentence(key: Key, value: str) -> str:
    """Return the sentence stating the only value of ``key``."""
    return f"The {key.attribute} for the {key.place} is {value}."


def multivalue_sentence(key: Key, value: str) -> str:
    """Return the sentence stating one of several values of ``key``."""
    return f"One {key.attribute} for the {key.place} is {value}."


def single_question(key: Key) -> str:
    """Return the question for the value of ``key``."""
    return f"What is {key.phrase()}?"


def multivalue_question(key: Key) -> str:
    """Return the question for every value of ``key``, which the answer lists in document order."""
    return f"What are all the {key.plural} for the {key.place}, in the order they appear?"


def multiquery_question(keys: list[Key]) -> str:
    """Return the question for the values of several keys, which the answer lists in the question's order."""
    phrases = [key.phrase() for key in keys]
    joined = ", ".join(phrases[:-1]) + " and " + phrases[-1]
    return f"What are {joined}, in that order?"


def join_values(values: list[str]) -> str:
    """Join the values of a multi-value or multi-query answer, e.g. ``4817, 2290``."""
    return ", ".join(values)


def variable_names(rng: random.Random, count: int) -> list[str]:
    """Draw ``count`` distinct upper-case variable names other than ``VAR``."""
    names: list[str] = []
    while len(names) < count:
        name = "".join(rng.choice(string.ascii_uppercase) for _ in range(VARIABLE_NAME_LETTERS))
        if name != "VAR" and name not in names:
            names.append(name)
    return names


def assign_value_sentence(name: str, value: str) -> str:
    """Return the statement assigning a literal value, the first link of a variable chain."""
    return f"VAR {name} = {value}."


def assign_variable_sentence(name: str, source: str) -> str:
    """Return the statement copying one variable into another, a later link of a chain."""
    return f"VAR {name} = VAR {source}."


def vartrack_question(value: str) -> str:
    """Return the question for the variables holding ``value``, which the answer lists in chain order."""
    return f"Which variables are assigned the value {value}?"


def quote_question(span: str, count: int) -> str:
    """Return the question for the ``count`` words that follow a quoted span of the document."""
    return f'What are the next {count} words after "{span}" in the document?'


def synthetic_sentences(rng: random.Random, count: int) -> list[str]:
    """Draw ``count`` task sentences, questions and answers for tokenizer training."""
    sentences = []
    for _ in range(count):
        key = random_key(rng)
        value = random_value(rng, key.numeric)
        names = variable_names(rng, rng.randint(2, 5))
        number = random_value(rng, numeric=True)
        candidates = (
            fact_sentence(key, value),
            multivalue_sentence(key, value),
            single_question(key),
            multivalue_question(key),
            multiquery_question(distinct_keys(rng, rng.randint(2, 4))),
            join_values(distinct_values(rng, rng.randint(2, 4), key.numeric)),
            assign_value_sentence(names[0], number),
            assign_variable_sentence(names[1], names[0]),
            vartrack_question(number),
            " ".join(names),
            quote_question("the words of a quoted span", rng.randint(3, 6)),
            f"[Document: {rng.choice(DOCUMENT_NAMES)}]",
        )
        sentences.append(rng.choice(candidates))
    return sentences
