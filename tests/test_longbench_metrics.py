"""Tests for the LongBench v1 metrics against LongBench's own per-sample scores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from wavefilter_cli.eval.longbench_metrics import (
    DATASET_METRICS,
    FIRST_LINE_DATASETS,
    classification_score,
    code_sim_score,
    count_score,
    fuzz_ratio,
    normalize_answer,
    normalize_zh_answer,
    qa_f1_score,
    qa_f1_zh_score,
    retrieval_score,
    retrieval_zh_score,
    rouge_l_f,
    rouge_score,
    rouge_zh_score,
    score_dataset,
    score_sample,
    token_f1,
    tokenize_zh,
)

GOLDEN_FILE = Path(__file__).resolve().parent / "golden" / "longbench-metrics.json"

LONGBENCH_V1_DATASETS = {
    "narrativeqa": "qa_f1_score",
    "qasper": "qa_f1_score",
    "multifieldqa_en": "qa_f1_score",
    "multifieldqa_zh": "qa_f1_zh_score",
    "hotpotqa": "qa_f1_score",
    "2wikimqa": "qa_f1_score",
    "musique": "qa_f1_score",
    "dureader": "rouge_zh_score",
    "gov_report": "rouge_score",
    "qmsum": "rouge_score",
    "multi_news": "rouge_score",
    "vcsum": "rouge_zh_score",
    "trec": "classification_score",
    "triviaqa": "qa_f1_score",
    "samsum": "rouge_score",
    "lsht": "classification_score",
    "passage_retrieval_en": "retrieval_score",
    "passage_count": "count_score",
    "passage_retrieval_zh": "retrieval_zh_score",
    "lcc": "code_sim_score",
    "repobench-p": "code_sim_score",
}


def _golden_cases() -> list[dict[str, Any]]:
    return json.loads(GOLDEN_FILE.read_text(encoding="utf-8"))["cases"]


def _case_id(case: dict[str, Any]) -> str:
    return f"{case['dataset']}:{case['prediction'][:24]!r}"


GOLDEN_CASES = _golden_cases()


@pytest.mark.parametrize("case", GOLDEN_CASES, ids=[_case_id(c) for c in GOLDEN_CASES])
def test_golden_case_score(case: dict[str, Any]) -> None:
    # The golden scores come from LongBench's scorer() on one sample, which
    # rounds the percentage to 2 decimals, so they carry 4 decimals.
    dataset = case["dataset"]
    raw = score_sample(dataset, case["prediction"], case["answers"], case["all_classes"])
    as_scorer_reports = score_dataset(dataset, [case["prediction"]], [case["answers"]], case["all_classes"]) / 100

    assert 0.0 <= raw <= 1.0
    assert as_scorer_reports == pytest.approx(case["score"], abs=1e-9)
    assert round(100 * raw, 2) / 100 == pytest.approx(case["score"], abs=1e-9)
    assert raw == pytest.approx(case["score"], abs=5e-5)


def test_golden_file_has_no_chinese_cases() -> None:
    datasets = {case["dataset"] for case in GOLDEN_CASES}
    assert datasets.isdisjoint({"multifieldqa_zh", "dureader", "vcsum", "lsht", "passage_retrieval_zh"})


def test_dataset_map_covers_longbench_v1() -> None:
    assert set(DATASET_METRICS) == set(LONGBENCH_V1_DATASETS)
    for dataset, metric_name in LONGBENCH_V1_DATASETS.items():
        assert DATASET_METRICS[dataset].__name__ == metric_name, dataset


def test_first_line_datasets() -> None:
    assert FIRST_LINE_DATASETS == {"trec", "triviaqa", "samsum", "lsht"}


# Normalisation


def test_normalize_answer_steps() -> None:
    assert normalize_answer("The  Eiffel Tower, in PARIS!") == "eiffel tower in paris"
    assert normalize_answer("an apple a day") == "apple day"
    assert normalize_answer("theatre another") == "theatre another"
    assert normalize_answer("a-b") == "ab"
    assert normalize_answer("  \t\n ") == ""


def test_normalize_answer_removes_punctuation_before_articles() -> None:
    # "a." loses its period first and then counts as an article.
    assert normalize_answer("plan a.") == "plan"


def test_normalize_zh_answer() -> None:
    assert normalize_zh_answer("北京，是 中国的首都。") == "北京是中国的首都"
    assert normalize_zh_answer("ABC！") == "abc"
    assert normalize_zh_answer("《书》") == "《书"


def test_tokenize_zh_splits_ideographs_and_keeps_ascii_runs() -> None:
    assert tokenize_zh("我爱Python3编程") == ["我", "爱", "Python3", "编", "程"]
    assert tokenize_zh("你好，world!") == ["你", "好", "，", "world", "!"]
    assert "".join(tokenize_zh("段落 12：北京")) == "段落 12：北京"


# Token F1


def test_token_f1_counts_multiset_overlap() -> None:
    assert token_f1(["a", "a", "b"], ["a", "b", "b"]) == pytest.approx(2 / 3)
    assert token_f1(["a"], ["b"]) == 0.0
    assert token_f1([], ["b"]) == 0.0


def test_qa_f1_score() -> None:
    assert qa_f1_score("The Eiffel Tower is in Paris.", "Paris") == pytest.approx(1 / 3)
    assert qa_f1_score("Unanswerable", "unanswerable") == 1.0
    assert qa_f1_score("", "1954") == 0.0
    assert qa_f1_score("the", "a") == 0.0


def test_qa_f1_zh_score_is_character_level() -> None:
    assert qa_f1_zh_score("北京。", "北京") == 1.0
    assert qa_f1_zh_score("北京市", "北京") == pytest.approx(0.8)
    assert qa_f1_zh_score("，。", "北京") == 0.0


# ROUGE-L


def test_rouge_l_identical_text() -> None:
    assert rouge_l_f("the cat sat", "the cat sat") == pytest.approx(1.0, abs=1e-8)


def test_rouge_l_uses_distinct_words() -> None:
    # Distinct words: prediction {the, cat, sat, on, mat}, reference
    # {the, cat, sat}; the overlap {the, cat, sat} gives P = 3/5 and R = 1.
    precision, recall = 3 / 5, 1.0
    expected = 2.0 * ((precision * recall) / (precision + recall + 1e-8))
    assert rouge_l_f("the cat sat on the mat", "the cat sat") == expected


def test_rouge_l_unions_sentences() -> None:
    # Each prediction sentence matches a different part of the reference sentence.
    precision, recall = 4 / 6, 4 / 5
    expected = 2.0 * ((precision * recall) / (precision + recall + 1e-8))
    assert rouge_l_f("w1 w2 w6. w3 w8 w5", "w1 w2 w3 w4 w5") == expected


def test_rouge_l_breaks_ties_like_rouge_package() -> None:
    # Both "a" and "b" are longest common subsequences of length 1; rouge
    # 1.0.1 backtracks to "a", which is not in the second reference sentence.
    assert rouge_l_f("b a", "a b") == 2.0 * ((0.5 * 0.5) / (0.5 + 0.5 + 1e-8))
    assert rouge_l_f("b a", "a b") == rouge_l_f("a b", "b a")


def test_rouge_l_is_case_sensitive() -> None:
    assert rouge_l_f("Cat", "cat") == 0.0


def test_rouge_l_rejects_text_without_sentences() -> None:
    with pytest.raises(ValueError, match="prediction"):
        rouge_l_f("", "text")
    with pytest.raises(ValueError, match="reference"):
        rouge_l_f("text", "...")


def test_rouge_score_returns_zero_where_rouge_raises() -> None:
    assert rouge_score("", "Some summary text.") == 0.0
    assert rouge_score("...", "Some summary text.") == 0.0


def test_rouge_score_whitespace_sentence_is_one_empty_word() -> None:
    # " . " has two whitespace-only sentences, each the single word "".
    assert rouge_score(" . ", "x") == 0.0
    assert rouge_score("a. . b", "a b") == pytest.approx(0.8, abs=1e-7)


def test_rouge_zh_score_uses_character_tokens() -> None:
    assert rouge_zh_score("我爱北京", "我爱北京") == pytest.approx(1.0, abs=1e-8)
    assert rouge_zh_score("", "我爱北京") == 0.0


# Classification, retrieval, counting


TREC_CLASSES = ["Abbreviation", "Location", "Description", "Human", "Entity", "Numeric"]


def test_classification_score_shares_credit() -> None:
    assert classification_score("Numeric or Entity", "Entity", TREC_CLASSES) == 0.5
    assert classification_score("Location", "Location", TREC_CLASSES) == 1.0
    assert classification_score("human", "Human", TREC_CLASSES) == 0.0


def test_classification_score_drops_substrings_of_answer() -> None:
    assert classification_score("Loc and Location", "Location", ["Loc", "Location"]) == 1.0


def test_classification_score_skips_entry_after_dropped_match() -> None:
    assert classification_score("abc", "abc", ["ab", "a", "abc"]) == 0.5
    assert classification_score("abc", "abc", ["ab", "abc", "a"]) == 1.0


def test_retrieval_score() -> None:
    assert retrieval_score("Paragraph 12", "Paragraph 12") == 1.0
    assert retrieval_score("Paragraph 3 or Paragraph 7", "Paragraph 7") == 0.5
    assert retrieval_score("none", "Paragraph 2") == 0.0
    assert retrieval_score("Paragraph 21", "Paragraph 2") == 0.0


def test_retrieval_score_rejects_unlabelled_answer() -> None:
    with pytest.raises(ValueError, match="Paragraph"):
        retrieval_score("1", "first")


def test_retrieval_zh_score() -> None:
    assert retrieval_zh_score("答案是段落5", "段落5") == 1.0
    assert retrieval_zh_score("段落3或段落5", "段落5") == 0.5
    with pytest.raises(ValueError, match="段落"):
        retrieval_zh_score("5", "第五段")


def test_count_score() -> None:
    assert count_score("There are 14 unique paragraphs.", "14") == 1.0
    assert count_score("12 or 14", "14") == 0.5
    assert count_score("fourteen", "14") == 0.0
    assert count_score("140", "14") == 0.0


# Code similarity


def test_fuzz_ratio_edge_cases() -> None:
    assert fuzz_ratio("", "") == 100
    assert fuzz_ratio("", "x") == 0
    assert fuzz_ratio("abc", "abc") == 100
    assert fuzz_ratio("return self.value", "    return self.value") == 89


def test_fuzz_ratio_rounds_half_to_even() -> None:
    # One shared character in two 8-character strings gives a ratio of
    # 2 / 16 = 0.125, so 100 * ratio is exactly 12.5, which rounds to 12.
    assert fuzz_ratio("abcd", "aefg") == 25
    assert fuzz_ratio("ab", "ac") == 50
    assert fuzz_ratio("a" + "x" * 7, "a" + "y" * 7) == 12


def test_code_sim_score_picks_first_code_line() -> None:
    prediction = "\n\n```python\n# comment\nx = compute(a, b)\n```"
    assert code_sim_score(prediction, "x = compute(a, b)") == 1.0


def test_code_sim_score_skips_lines_containing_markers() -> None:
    # A trailing comment disqualifies the line, as in LongBench.
    prediction = "x = 1  # set x\ny = 2"
    assert code_sim_score(prediction, "y = 2") == 1.0
    assert code_sim_score("url = 'http://x'\nz = 3", "z = 3") == 1.0


def test_code_sim_score_without_code_line() -> None:
    assert code_sim_score("# only a comment", "x = 1") == 0.0


# Aggregation


def test_score_sample_takes_max_over_answers() -> None:
    assert score_sample("triviaqa", "Mount Everest", ["Everest", "Mt. Everest"]) == pytest.approx(2 / 3)
    assert score_sample("hotpotqa", "Paris", ["London", "Paris"]) == 1.0
    assert score_sample("hotpotqa", "Paris", []) == 0.0


def test_score_sample_first_line_rule() -> None:
    assert score_sample("triviaqa", "\n\nNile\nQuestion: more", ["Nile"]) == 1.0
    # Other datasets score the whole prediction.
    assert score_sample("hotpotqa", "\n\nNile\nQuestion: more", ["Nile"]) == pytest.approx(0.5)


def test_score_sample_strips_only_newlines() -> None:
    # A leading space line is kept, so the first line is " " and scores 0.
    assert score_sample("triviaqa", " \nNile", ["Nile"]) == 0.0


def test_score_sample_rejects_unknown_dataset() -> None:
    with pytest.raises(ValueError, match="unknown LongBench dataset"):
        score_sample("squad", "x", ["x"])


def test_score_dataset_rounds_percentage() -> None:
    predictions = ["Paris", "The Eiffel Tower is in Paris."]
    answers = [["Paris"], ["Paris"]]
    assert score_dataset("hotpotqa", predictions, answers) == round(100 * (1 + 1 / 3) / 2, 2)


def test_score_dataset_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="answer lists"):
        score_dataset("hotpotqa", ["a"], [])
    with pytest.raises(ValueError, match="no predictions"):
        score_dataset("hotpotqa", [], [])
