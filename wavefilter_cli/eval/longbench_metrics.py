"""LongBench v1 scoring: per-dataset metrics, answer normalisation and aggregation.

The functions reproduce the scores of LongBench's ``eval.py`` and
``metrics.py`` (THUDM/LongBench, v1 tasks) when those run with the packages
of its ``requirements.txt``: ``rouge`` 1.0.1 for ROUGE-L and ``fuzzywuzzy``
0.18.0 without python-Levenshtein, which makes its ``fuzz.ratio`` use
difflib's ``SequenceMatcher``. Neither package is needed here, because both
computations are reimplemented below.

Chinese word segmentation is the one deliberate difference. LongBench
segments Chinese text with jieba for ``multifieldqa_zh`` (token F1) and for
``dureader`` and ``vcsum`` (ROUGE-L). This module has no jieba dependency
and uses `tokenize_zh` instead: one token per CJK character, one per run of
ASCII letters and digits. Scores on those three datasets are therefore
character-level scores and are not comparable to published LongBench
numbers. ``lsht`` and ``passage_retrieval_zh`` need no segmentation and
match exactly.

Every metric returns a float in [0, 1]. `score_sample` applies the
per-dataset rules of LongBench's ``scorer()``, and `score_dataset` returns
its rounded percentage.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from difflib import SequenceMatcher
from typing import Callable, Iterable, Sequence

__all__ = [
    "DATASET_METRICS",
    "FIRST_LINE_DATASETS",
    "classification_score",
    "code_sim_score",
    "count_score",
    "fuzz_ratio",
    "normalize_answer",
    "normalize_zh_answer",
    "qa_f1_score",
    "qa_f1_zh_score",
    "retrieval_score",
    "retrieval_zh_score",
    "rouge_l_f",
    "rouge_score",
    "rouge_zh_score",
    "score_dataset",
    "score_sample",
    "token_f1",
    "tokenize_zh",
]

Metric = Callable[[str, str, Sequence[str]], float]
"""A metric maps (prediction, one ground-truth answer, all_classes) to a score in [0, 1]."""

# Normalisation


_ENGLISH_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")

# The characters that LongBench's Chinese normaliser strips in addition to
# ASCII punctuation. The set is irregular (it has "》" but not "《", and no
# fullwidth full stop "．"), so it is listed character by character.
_CHINESE_PUNCTUATION = frozenset(
    # Fullwidth and halfwidth forms.
    "！？｡＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠｢｣､"
    # CJK symbols and punctuation.
    "。、〃》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿"
    # General punctuation, small form variants and the ASCII full stop.
    "–—‘’‛“”„‟…‧﹏."
)
_ALL_PUNCTUATION = _ENGLISH_PUNCTUATION | _CHINESE_PUNCTUATION


def normalize_answer(text: str) -> str:
    """Normalise English text as LongBench (and SQuAD) does before token F1.

    Steps, in order: lowercase, delete ASCII punctuation, replace the
    articles a, an and the (whole words) with a space, and collapse
    whitespace runs into single spaces.
    """
    lowered = text.lower()
    without_punctuation = "".join(ch for ch in lowered if ch not in _ENGLISH_PUNCTUATION)
    without_articles = _ARTICLES.sub(" ", without_punctuation)
    return " ".join(without_articles.split())


def normalize_zh_answer(text: str) -> str:
    """Normalise Chinese text: lowercase, delete ASCII and Chinese punctuation, delete all whitespace."""
    lowered = text.lower()
    without_punctuation = "".join(ch for ch in lowered if ch not in _ALL_PUNCTUATION)
    return "".join(without_punctuation.split())


_ZH_TOKEN = re.compile(
    r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"  # one CJK ideograph
    r"|[A-Za-z0-9]+"  # a run of ASCII letters and digits
    r"|\s+"  # a run of whitespace
    r"|\S"  # any other single character, such as punctuation
)


def tokenize_zh(text: str) -> list[str]:
    """Split Chinese text into tokens without a segmentation dictionary.

    This replaces ``jieba.cut(text, cut_all=False)``. Every CJK ideograph is
    its own token, a run of ASCII letters and digits is one token (as in
    jieba), and whitespace runs and other characters are separate tokens.
    The tokens concatenate back to ``text``.
    """
    return _ZH_TOKEN.findall(text)


# Token F1


def token_f1(prediction_tokens: Sequence[str], reference_tokens: Sequence[str]) -> float:
    """Compute the F1 of the multiset overlap between two token lists, or 0.0 when nothing overlaps."""
    common = Counter(prediction_tokens) & Counter(reference_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = 1.0 * overlap / len(prediction_tokens)
    recall = 1.0 * overlap / len(reference_tokens)
    return (2 * precision * recall) / (precision + recall)


def qa_f1_score(prediction: str, ground_truth: str) -> float:
    """Compute token F1 between `normalize_answer` forms, split on whitespace."""
    prediction_tokens = normalize_answer(prediction).split()
    reference_tokens = normalize_answer(ground_truth).split()
    return token_f1(prediction_tokens, reference_tokens)


def _zh_f1_tokens(text: str) -> list[str]:
    normalized = (normalize_zh_answer(token) for token in tokenize_zh(text))
    return [token for token in normalized if token]


def qa_f1_zh_score(prediction: str, ground_truth: str) -> float:
    """Compute token F1 over normalised `tokenize_zh` tokens, dropping tokens that normalise to ''.

    NOTE: LongBench segments with jieba here, so this character-level score
    is usually higher than LongBench's on the same texts.
    """
    return token_f1(_zh_f1_tokens(prediction), _zh_f1_tokens(ground_truth))


# ROUGE-L (rouge 1.0.1, summary level)


def _rouge_sentences(text: str) -> list[list[str]]:
    """Split text into word lists the way rouge 1.0.1 does.

    The text is cut at every ".", empty pieces are dropped, whitespace inside
    a piece is collapsed to single spaces, and the piece is split on " ". A
    piece of only whitespace therefore becomes the one-word sentence [""].
    """
    sentences = []
    for piece in text.split("."):
        if piece:
            sentences.append(" ".join(piece.split()).split(" "))
    return sentences


def _lcs_table(reference: Sequence[str], candidate: Sequence[str]) -> list[list[int]]:
    """Return the LCS length table, where entry [i][j] covers reference[:i] and candidate[:j]."""
    table = [[0] * (len(candidate) + 1) for _ in range(len(reference) + 1)]
    for i, reference_word in enumerate(reference, start=1):
        previous_row = table[i - 1]
        row = table[i]
        for j, candidate_word in enumerate(candidate, start=1):
            if reference_word == candidate_word:
                row[j] = previous_row[j - 1] + 1
            else:
                row[j] = max(previous_row[j], row[j - 1])
    return table


def _lcs_words(reference: Sequence[str], candidate: Sequence[str]) -> set[str]:
    """Return the set of words on one longest common subsequence.

    Several subsequences can share the maximum length, and the choice changes
    the word set. Backtracking therefore follows rouge 1.0.1: from the end,
    take a matching pair diagonally, otherwise drop the last reference word
    only when that keeps a strictly longer subsequence, else drop the last
    candidate word.
    """
    table = _lcs_table(reference, candidate)
    words: set[str] = set()
    i, j = len(reference), len(candidate)
    while i > 0 and j > 0:
        if reference[i - 1] == candidate[j - 1]:
            words.add(reference[i - 1])
            i -= 1
            j -= 1
        elif table[i - 1][j] > table[i][j - 1]:
            i -= 1
        else:
            j -= 1
    return words


def rouge_l_f(prediction: str, reference: str) -> float:
    """Compute the summary-level ROUGE-L F score of rouge 1.0.1's ``Rouge().get_scores``.

    Both texts are split into sentences by `_rouge_sentences`. The overlap is
    the number of distinct words in the union, over every (reference
    sentence, prediction sentence) pair, of the words on their longest common
    subsequence. Recall divides it by the number of distinct reference
    words, precision by the number of distinct prediction words, and
    ``F = 2 * P * R / (P + R + 1e-8)``. Words are compared exactly, with no
    lowercasing or stemming.

    Raises ValueError when either text has no sentence, which happens for
    an empty string or one made only of "." characters.

    NOTE: rouge 1.0.1 backtracks recursively, so a sentence pair whose
    backtracking path passes Python's recursion limit (about 1000 words in
    the two sentences together) raises RecursionError there, and LongBench
    then scores the sample 0.0. This loop has no such limit and returns the
    real score for those pairs.
    """
    prediction_sentences = _rouge_sentences(prediction)
    reference_sentences = _rouge_sentences(reference)
    if not prediction_sentences:
        raise ValueError("invalid prediction: it contains no sentence for ROUGE")
    if not reference_sentences:
        raise ValueError("invalid reference: it contains no sentence for ROUGE")

    reference_vocabulary = {word for sentence in reference_sentences for word in sentence}
    prediction_vocabulary = {word for sentence in prediction_sentences for word in sentence}
    matched: set[str] = set()
    for reference_sentence in reference_sentences:
        for prediction_sentence in prediction_sentences:
            matched |= _lcs_words(reference_sentence, prediction_sentence)

    recall = len(matched) / len(reference_vocabulary)
    precision = len(matched) / len(prediction_vocabulary)
    return 2.0 * ((precision * recall) / (precision + recall + 1e-8))


def rouge_score(prediction: str, ground_truth: str) -> float:
    """Compute `rouge_l_f`, or 0.0 where rouge 1.0.1 raises, as LongBench does."""
    try:
        return rouge_l_f(prediction, ground_truth)
    except ValueError:
        return 0.0


def rouge_zh_score(prediction: str, ground_truth: str) -> float:
    """Compute `rouge_score` on Chinese text with `tokenize_zh` tokens joined by spaces.

    NOTE: LongBench joins jieba words instead, so this character-level
    ROUGE-L differs from LongBench's on the same texts.
    """
    return rouge_score(" ".join(tokenize_zh(prediction)), " ".join(tokenize_zh(ground_truth)))


# Classification, retrieval and counting


def classification_score(prediction: str, ground_truth: str, all_classes: Sequence[str]) -> float:
    """Score a class-name answer for trec and lsht.

    Every class name that occurs as a case-sensitive substring of the
    prediction is a match, in ``all_classes`` order. Matches that are proper
    substrings of the ground truth are then dropped, and the score is
    ``1 / len(matches)`` if the ground truth is still a match, else 0.0.

    LongBench drops those matches while it iterates over the same list, so
    the entry right after a dropped one is never checked and stays. This
    loop keeps that behaviour, because it changes scores: with classes "ab",
    "a" and "abc" and ground truth "abc", the prediction "abc" keeps "a"
    beside "abc" and scores 0.5, not 1.0.
    """
    matches = [name for name in all_classes if name in prediction]
    position = 0
    while position < len(matches):
        name = matches[position]
        position += 1
        if name in ground_truth and name != ground_truth:
            # list.remove drops the first equal entry, which shifts the
            # following entry into the slot that was just checked.
            matches.remove(name)
    if ground_truth in matches:
        return 1.0 / len(matches)
    return 0.0


_NUMBER = re.compile(r"\d+")


def _share_of_numbers_equal(prediction: str, target: str) -> float:
    """Return the share of digit runs in ``prediction`` that equal ``target``, or 0.0 when it has none."""
    numbers = _NUMBER.findall(prediction)
    if not numbers:
        return 0.0
    return sum(1 for number in numbers if number == target) / len(numbers)


def _paragraph_id(ground_truth: str, pattern: re.Pattern[str]) -> str:
    found = pattern.search(ground_truth)
    if found is None:
        raise ValueError(
            f"invalid ground truth {ground_truth!r}: expected a paragraph label matching {pattern.pattern!r}"
        )
    return found.group(1)


_PARAGRAPH_EN = re.compile(r"Paragraph (\d+)")
_PARAGRAPH_ZH = re.compile(r"段落(\d+)")


def retrieval_score(prediction: str, ground_truth: str) -> float:
    """Score passage_retrieval_en: the share of numbers in the prediction equal to the answer's "Paragraph N".

    Raises ValueError when the ground truth has no "Paragraph N" label.
    """
    return _share_of_numbers_equal(prediction, _paragraph_id(ground_truth, _PARAGRAPH_EN))


def retrieval_zh_score(prediction: str, ground_truth: str) -> float:
    """Score passage_retrieval_zh: as `retrieval_score`, with the label "段落N".

    Raises ValueError when the ground truth has no "段落N" label.
    """
    return _share_of_numbers_equal(prediction, _paragraph_id(ground_truth, _PARAGRAPH_ZH))


def count_score(prediction: str, ground_truth: str) -> float:
    """Score passage_count: the share of numbers in the prediction equal to the ground truth string."""
    return _share_of_numbers_equal(prediction, ground_truth)


# Code similarity


def fuzz_ratio(first: str, second: str) -> int:
    """Return fuzzywuzzy 0.18.0's ``fuzz.ratio`` without python-Levenshtein.

    Equal strings give 100, otherwise an empty string gives 0, otherwise the
    value is ``round(100 * SequenceMatcher(None, first, second).ratio())``.
    The ratio keeps difflib's default autojunk heuristic, and ``round`` is
    Python's, which rounds exact halves to the even integer.
    """
    if first == second:
        return 100
    if not first or not second:
        return 0
    return int(round(100 * SequenceMatcher(None, first, second).ratio()))


def _first_code_line(prediction: str) -> str:
    """Return the first line that contains none of "`", "#" and "//", or '' if there is none."""
    for line in prediction.lstrip("\n").split("\n"):
        if "`" not in line and "#" not in line and "//" not in line:
            return line
    return ""


def code_sim_score(prediction: str, ground_truth: str) -> float:
    """Score lcc and repobench-p: `fuzz_ratio` / 100 between one prediction line and the ground truth.

    The line is the first one, after leading newlines are stripped, that
    contains no "`", "#" or "//" anywhere. LongBench tests containment, not
    only the start of the line, so a code line with a trailing comment is
    skipped as well.
    """
    return fuzz_ratio(_first_code_line(prediction), ground_truth) / 100


# Dataset mapping and aggregation


def _without_classes(metric: Callable[[str, str], float]) -> Metric:
    def scored(prediction: str, ground_truth: str, all_classes: Sequence[str]) -> float:
        return metric(prediction, ground_truth)

    scored.__name__ = metric.__name__
    scored.__doc__ = metric.__doc__
    return scored


DATASET_METRICS: dict[str, Metric] = {
    "narrativeqa": _without_classes(qa_f1_score),
    "qasper": _without_classes(qa_f1_score),
    "multifieldqa_en": _without_classes(qa_f1_score),
    "multifieldqa_zh": _without_classes(qa_f1_zh_score),
    "hotpotqa": _without_classes(qa_f1_score),
    "2wikimqa": _without_classes(qa_f1_score),
    "musique": _without_classes(qa_f1_score),
    "dureader": _without_classes(rouge_zh_score),
    "gov_report": _without_classes(rouge_score),
    "qmsum": _without_classes(rouge_score),
    "multi_news": _without_classes(rouge_score),
    "vcsum": _without_classes(rouge_zh_score),
    "trec": classification_score,
    "triviaqa": _without_classes(qa_f1_score),
    "samsum": _without_classes(rouge_score),
    "lsht": classification_score,
    "passage_retrieval_en": _without_classes(retrieval_score),
    "passage_count": _without_classes(count_score),
    "passage_retrieval_zh": _without_classes(retrieval_zh_score),
    "lcc": _without_classes(code_sim_score),
    "repobench-p": _without_classes(code_sim_score),
}
"""The metric of every LongBench v1 dataset, keyed by LongBench's dataset name."""

FIRST_LINE_DATASETS: frozenset[str] = frozenset({"trec", "triviaqa", "samsum", "lsht"})
"""Few-shot datasets, where a model tends to go on with further examples after its
answer, so LongBench scores only the first line of the prediction."""


def _metric_for(dataset: str) -> Metric:
    try:
        return DATASET_METRICS[dataset]
    except KeyError:
        known = ", ".join(sorted(DATASET_METRICS))
        raise ValueError(f"unknown LongBench dataset {dataset!r}: expected one of {known}") from None


def score_sample(
    dataset: str,
    prediction: str,
    answers: Iterable[str],
    all_classes: Sequence[str] | None = None,
) -> float:
    """Score one prediction: the maximum of the dataset's metric over the answers.

    For trec, triviaqa, samsum and lsht, leading newline characters are
    stripped from the prediction and only its first line is scored. The
    result is 0.0 when ``answers`` is empty. ``all_classes`` is needed only
    by trec and lsht. Raises ValueError for an unknown dataset name.
    """
    metric = _metric_for(dataset)
    if dataset in FIRST_LINE_DATASETS:
        prediction = prediction.lstrip("\n").split("\n")[0]
    classes = all_classes if all_classes is not None else ()
    score = 0.0
    for answer in answers:
        score = max(score, metric(prediction, answer, classes))
    return score


def score_dataset(
    dataset: str,
    predictions: Sequence[str],
    answers: Sequence[Iterable[str]],
    all_classes: Sequence[str] | None = None,
) -> float:
    """Return LongBench's dataset score: the mean `score_sample` as a percentage rounded to 2 decimals.

    ``predictions[i]`` is scored against ``answers[i]``. Raises ValueError
    when the two lengths differ or there are no predictions.
    """
    if len(predictions) != len(answers):
        raise ValueError(
            f"invalid input: {len(predictions)} predictions but {len(answers)} answer lists; expected one list per prediction"
        )
    if not predictions:
        raise ValueError("invalid input: no predictions to score")
    total = 0.0
    for prediction, sample_answers in zip(predictions, answers):
        total += score_sample(dataset, prediction, sample_answers, all_classes)
    return round(100 * total / len(predictions), 2)
