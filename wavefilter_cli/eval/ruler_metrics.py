"""RULER's scores: string match all (retrieval, tracing, aggregation) and string match part (QA).

Both compare a prediction with a list of gold strings by case-insensitive
substring search after ``postprocess``. A sample scores in [0, 1]; a task
scores the mean over its samples as a percentage rounded to 2 decimals, as
RULER's ``evaluate.py`` (NVIDIA/RULER) reports it.
"""

from __future__ import annotations

import re
from typing import Callable, Literal, Sequence

__all__ = [
    "METRICS",
    "MetricName",
    "postprocess",
    "score_task",
    "string_match_all",
    "string_match_part",
]

MetricName = Literal["all", "part"]

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f]")


def postprocess(prediction: str) -> str:
    """Replace control characters (0x00-0x1f, newline and tab included) with newlines, then strip."""
    return _CONTROL_CHARACTERS.sub("\n", prediction).strip()


def _check_references(references: Sequence[str]) -> None:
    if isinstance(references, str):
        raise TypeError(f"references={references!r} is a string: pass a list of gold strings")
    if not references:
        raise ValueError("references is empty: a sample needs at least one gold string")


def string_match_all(prediction: str, references: Sequence[str]) -> float:
    """Return the fraction of ``references`` found in ``prediction``, ignoring case."""
    _check_references(references)
    text = postprocess(prediction).lower()
    found = sum(1 for reference in references if reference.lower() in text)
    return found / len(references)


def string_match_part(prediction: str, references: Sequence[str]) -> float:
    """Return 1.0 when any of ``references`` occurs in ``prediction``, ignoring case, else 0.0."""
    _check_references(references)
    text = postprocess(prediction).lower()
    return 1.0 if any(reference.lower() in text for reference in references) else 0.0


METRICS: dict[str, Callable[[str, Sequence[str]], float]] = {
    "all": string_match_all,
    "part": string_match_part,
}


def score_task(metric: MetricName, predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Return a task's score: the mean sample score × 100, rounded to 2 decimals.

    ``references[i]`` contains the gold strings of ``predictions[i]``. Raises
    ValueError for an unknown metric, mismatched lengths or no predictions.
    """
    if metric not in METRICS:
        raise ValueError(f"metric={metric!r} is unknown: use one of {', '.join(METRICS)}")
    if len(predictions) != len(references):
        raise ValueError(
            f"{len(predictions)} predictions but {len(references)} reference lists: pass one list per prediction"
        )
    if not predictions:
        raise ValueError("no predictions to score: pass at least one")
    score = METRICS[metric]
    total = sum(score(prediction, refs) for prediction, refs in zip(predictions, references))
    return round(100 * total / len(predictions), 2)
