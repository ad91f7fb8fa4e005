"""Tests for text normalisation: examples for each rule, and hypothesis properties."""

from __future__ import annotations

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from wavefilter_cli.ingest.normalize import join_hyphenated_words, normalize_text, remove_control_characters

LIGATURES = "".join(chr(cp) for cp in range(0xFB00, 0xFB07))


def test_ligatures_become_letters() -> None:
    assert normalize_text("\ufb00 \ufb01 \ufb02 \ufb03 \ufb04 \ufb05 \ufb06") == "ff fi fl ffi ffl st st"


def test_nul_and_controls_removed() -> None:
    assert normalize_text("a\x00b\x07c\x1bd\x7fe\x9ff") == "abcdef"


def test_tab_and_newline_kept() -> None:
    assert normalize_text("a\tb\nc") == "a\tb\nc"


def test_crlf_and_cr_become_lf() -> None:
    assert normalize_text("one\r\ntwo\rthree\n") == "one\ntwo\nthree\n"


def test_form_feed_becomes_line_break() -> None:
    assert normalize_text("end\fstart") == "end\nstart"


def test_hyphen_at_line_end_joined() -> None:
    assert normalize_text("a docu-\nment here") == "a document here"


def test_hyphen_join_tolerates_spaces() -> None:
    assert normalize_text("docu- \n  ment") == "document"


def test_hyphen_before_capital_kept() -> None:
    assert join_hyphenated_words("Anglo-\nSaxon") == "Anglo-\nSaxon"


def test_hyphen_after_digit_kept() -> None:
    assert join_hyphenated_words("1990-\nnow") == "1990-\nnow"


def test_chained_hyphen_breaks_join() -> None:
    assert join_hyphenated_words("a-\nb-\nc") == "abc"


def test_soft_hyphen_at_line_end_joined() -> None:
    assert normalize_text("hyphen\u00ad\nation and soft\u00adhyphen") == "hyphenation and softhyphen"


def test_stray_bom_removed() -> None:
    assert remove_control_characters("\ufeffstart mid\ufeffdle") == "start middle"


def test_full_width_forms_folded() -> None:
    assert normalize_text("\uff21\uff11") == "A1"


# Pieces biased towards the rules' edge cases: line breaks, hyphens, combining
# marks and Hangul jamo that compose once a hyphen join puts them side by side.
_PIECE = st.one_of(
    st.characters(codec="utf-8"),
    st.sampled_from(list("\r\n\t\f\x00-\u00ad\ufeff \u2010\u0301") + list(LIGATURES)),
    st.sampled_from(["docu-\nment", "-\r\n", "e\u0301", "\u1100-\n\u1161", "a-\n", "-\nb"]),
)
_TEXT = st.lists(_PIECE, max_size=40).map("".join)


@settings(max_examples=400, deadline=None)
@given(_TEXT)
def test_normalize_idempotent(text: str) -> None:
    once = normalize_text(text)
    assert normalize_text(once) == once


@settings(max_examples=400, deadline=None)
@given(_TEXT)
def test_normalize_output_clean(text: str) -> None:
    result = normalize_text(text)
    assert "\r" not in result
    assert not any(ch in LIGATURES for ch in result)
    assert all(ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cs") for ch in result)
    assert "\ufeff" not in result
    assert "\u00ad" not in result
    assert unicodedata.is_normalized("NFKC", result)
