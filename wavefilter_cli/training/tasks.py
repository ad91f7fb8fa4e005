"""Look-up task specifications: the sentences to insert, the question and the answer.

Each builder draws one ``TaskSpec`` from the vocabularies of ``facts.py``,
following the RULER task families (needle look-up with single, multi-key,
multi-value and multi-query variants, and variable tracking). Builders know
nothing about the haystack; ``data.py`` places the sentences in a document.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

from wavefilter_cli.training import facts

#: Returns whether an answer text fits the answer window.
AnswerFits = Callable[[str], bool]

#: Inclusive ranges of the item counts each builder draws.
MULTIKEY_DISTRACTORS = (1, 5)
MULTIVALUE_VALUES = (2, 4)
MULTIVALUE_DISTRACTORS = (0, 2)
MULTIQUERY_KEYS = (2, 4)
VARTRACK_HOPS = (1, 4)
#: Statements in the distractor chain of vartrack, which assigns another value.
VARTRACK_DISTRACTORS = (0, 3)


@dataclass(frozen=True)
class FactSpec:
    """One sentence to insert; distractors may be dropped to fit a short document."""

    sentence: str
    distractor: bool = False


@dataclass
class TaskSpec:
    """What one sample inserts and asks.

    ``ordered`` keeps ``facts`` in list order in the document, for chains and
    for values that the answer lists in document order. ``anchor`` is the
    index of the fact that an explicit depth places: the asked fact, the first
    asked value, the first key of the question or the first link of a chain.
    """

    task: str
    facts: list[FactSpec]
    question: str
    answer: str
    ordered: bool
    anchor: int = 0

    def drop_last_distractor(self) -> bool:
        """Remove the last distractor fact; return False when none is left."""
        for index in range(len(self.facts) - 1, -1, -1):
            if self.facts[index].distractor:
                del self.facts[index]
                if index < self.anchor:
                    self.anchor -= 1
                return True
        return False


def interleave(rng: random.Random, first: list[FactSpec], second: list[FactSpec]) -> list[FactSpec]:
    """Merge two lists in a random order that keeps each list's own order."""
    merged = []
    i = j = 0
    while i < len(first) or j < len(second):
        left_first, left_second = len(first) - i, len(second) - j
        # Taking from a list in proportion to what it has left makes every merge order equally likely.
        if left_second == 0 or (left_first > 0 and rng.random() < left_first / (left_first + left_second)):
            merged.append(first[i])
            i += 1
        else:
            merged.append(second[j])
            j += 1
    return merged


def fitting_count(
    low: int,
    high: int,
    rng: random.Random,
    answer_for: Callable[[int], str],
    fits: AnswerFits,
) -> int:
    """Draw a count in ``[low, high]``, lowered until ``answer_for(count)`` fits the answer window.

    Raises ``ValueError`` when even ``low`` items do not fit.
    """
    count = rng.randint(low, high)
    while count >= low:
        if fits(answer_for(count)):
            return count
        count -= 1
    raise ValueError(f"an answer of {low} items does not fit the answer window; raise answer_length")


def niah_single(rng: random.Random, fits: AnswerFits) -> TaskSpec:
    """Draw one fact and ask for its value; the answer restates the fact sentence."""
    key = facts.random_key(rng)
    value = facts.random_value(rng, key.numeric)
    sentence = facts.fact_sentence(key, value)
    return TaskSpec("niah_single", [FactSpec(sentence)], facts.single_question(key), sentence, ordered=False)


def niah_multikey(rng: random.Random, fits: AnswerFits) -> TaskSpec:
    """Draw one asked fact among distractor facts about similar keys; the answer restates the asked fact."""
    key = facts.random_key(rng)
    distractor_keys = facts.distinct_keys(rng, rng.randint(*MULTIKEY_DISTRACTORS), near=key)
    value = facts.random_value(rng, key.numeric)
    asked = facts.fact_sentence(key, value)
    fact_list = [FactSpec(asked)]
    for other in distractor_keys:
        sentence = facts.fact_sentence(other, facts.random_value(rng, other.numeric))
        fact_list.append(FactSpec(sentence, distractor=True))
    rng.shuffle(fact_list)
    anchor = next(index for index, fact in enumerate(fact_list) if not fact.distractor)
    return TaskSpec("niah_multikey", fact_list, facts.single_question(key), asked, ordered=False, anchor=anchor)


def niah_multivalue(rng: random.Random, fits: AnswerFits) -> TaskSpec:
    """Draw several values of one key, asked for in document order, among distractors about similar keys."""
    key = facts.random_key(rng)
    values = facts.distinct_values(rng, MULTIVALUE_VALUES[1], key.numeric)
    count = fitting_count(*MULTIVALUE_VALUES, rng, lambda n: facts.join_values(values[:n]), fits)
    values = values[:count]
    asked = [FactSpec(facts.multivalue_sentence(key, value)) for value in values]
    distractors = []
    for other in facts.distinct_keys(rng, rng.randint(*MULTIVALUE_DISTRACTORS), near=key):
        sentence = facts.multivalue_sentence(other, facts.random_value(rng, other.numeric))
        distractors.append(FactSpec(sentence, distractor=True))
    fact_list = interleave(rng, asked, distractors)
    anchor = next(index for index, fact in enumerate(fact_list) if not fact.distractor)
    question = facts.multivalue_question(key)
    return TaskSpec("niah_multivalue", fact_list, question, facts.join_values(values), ordered=True, anchor=anchor)


def niah_multiquery(rng: random.Random, fits: AnswerFits) -> TaskSpec:
    """Draw facts with different keys and ask for all their values in the question's order."""
    keys = facts.distinct_keys(rng, MULTIQUERY_KEYS[1])
    values = [facts.random_value(rng, key.numeric) for key in keys]
    count = fitting_count(*MULTIQUERY_KEYS, rng, lambda n: facts.join_values(values[:n]), fits)
    keys, values = keys[:count], values[:count]
    fact_list = [FactSpec(facts.fact_sentence(key, value)) for key, value in zip(keys, values)]
    rng.shuffle(fact_list)
    # fact_list is shuffled, so the first key of the question is at a random document position.
    anchor = fact_list.index(FactSpec(facts.fact_sentence(keys[0], values[0])))
    question = facts.multiquery_question(keys)
    return TaskSpec("niah_multiquery", fact_list, question, facts.join_values(values), ordered=False, anchor=anchor)


def vartrack(rng: random.Random, fits: AnswerFits) -> TaskSpec:
    """Draw a chain of variable assignments from one value, plus a distractor chain from another value."""
    value, other_value = facts.distinct_values(rng, 2, numeric=True)
    max_hops = VARTRACK_HOPS[1]
    distractor_count = rng.randint(*VARTRACK_DISTRACTORS)
    names = facts.variable_names(rng, max_hops + 1 + distractor_count)
    chain_names, distractor_names = names[: max_hops + 1], names[max_hops + 1 :]
    hops = fitting_count(*VARTRACK_HOPS, rng, lambda n: " ".join(chain_names[: n + 1]), fits)
    chain_names = chain_names[: hops + 1]

    chain = chain_facts(chain_names, value, distractor=False)
    distractors = chain_facts(distractor_names, other_value, distractor=True)
    fact_list = interleave(rng, chain, distractors)
    anchor = fact_list.index(chain[0])
    question = facts.vartrack_question(value)
    return TaskSpec("vartrack", fact_list, question, " ".join(chain_names), ordered=True, anchor=anchor)


def chain_facts(names: list[str], value: str, distractor: bool) -> list[FactSpec]:
    """Return statements that assign ``value`` to ``names[0]`` and copy each variable into the next."""
    if not names:
        return []
    sentences = [facts.assign_value_sentence(names[0], value)]
    sentences += [facts.assign_variable_sentence(name, source) for source, name in zip(names, names[1:])]
    return [FactSpec(sentence, distractor=distractor) for sentence in sentences]


#: Fact-insertion tasks by name.
FACT_TASKS: dict[str, Callable[[random.Random, AnswerFits], TaskSpec]] = {
    "niah_single": niah_single,
    "niah_multikey": niah_multikey,
    "niah_multivalue": niah_multivalue,
    "niah_multiquery": niah_multiquery,
    "vartrack": vartrack,
}
