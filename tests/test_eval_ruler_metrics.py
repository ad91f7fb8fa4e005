"""RULER's string-match metrics against hand-computed values."""

from __future__ import annotations

import pytest

from wavefilter_cli.eval.ruler_metrics import postprocess, score_task, string_match_all, string_match_part


def test_all_counts_found_fraction() -> None:
    assert string_match_all("The numbers are 123 and 456.", ["123", "456", "789"]) == pytest.approx(2 / 3)


def test_all_ignores_case() -> None:
    assert string_match_all("It is ABC-def.", ["abc-DEF"]) == 1.0


def test_all_none_found() -> None:
    assert string_match_all("nothing here", ["1234567"]) == 0.0


def test_part_any_found_scores_one() -> None:
    assert string_match_part("Paris, I think", ["London", "paris"]) == 1.0


def test_part_none_found_scores_zero() -> None:
    assert string_match_part("Rome", ["London", "Paris"]) == 0.0


def test_control_characters_become_newlines() -> None:
    assert postprocess("  12\x003\tend\x1f ") == "12\n3\nend"
    # "123" is split by the newline that replaces NUL, so it is not found.
    assert string_match_all("12\x003", ["123"]) == 0.0


def test_score_task_all_rounds_mean_percentage() -> None:
    predictions = ["a b c", "a b", "nothing"]
    references = [["a", "b", "c"], ["a", "b", "c"], ["a"]]
    # Sample scores 1, 2/3 and 0: mean 5/9 = 55.555...%.
    assert score_task("all", predictions, references) == 55.56


def test_score_task_part() -> None:
    assert score_task("part", ["x", "y z"], [["x", "q"], ["q"]]) == 50.0


def test_empty_references_rejected() -> None:
    with pytest.raises(ValueError, match="at least one gold string"):
        string_match_all("abc", [])


def test_string_references_rejected() -> None:
    with pytest.raises(TypeError, match="list of gold strings"):
        string_match_part("abc", "abc")


def test_score_task_length_mismatch() -> None:
    with pytest.raises(ValueError, match="2 predictions but 1 reference lists"):
        score_task("all", ["a", "b"], [["a"]])


def test_score_task_unknown_metric() -> None:
    with pytest.raises(ValueError, match="metric='exact' is unknown"):
        score_task("exact", ["a"], [["a"]])  # type: ignore[arg-type]
