"""Heuristics that flag extracted text a reader would call garbled."""

from __future__ import annotations

import unicodedata

GARBLED_MIN_CHARACTERS = 20
"""Pages with fewer non-whitespace characters are too short to judge."""

GARBLED_MIN_WORD_SHARE = 0.5
"""Minimum share of letters and digits among non-whitespace characters for text to count as readable."""


def word_character_share(text: str) -> float | None:
    """Return the share of letters and digits (Unicode categories L* and N*) among non-whitespace characters.

    Private-use (Co), unassigned (Cn) and U+FFFD REPLACEMENT CHARACTER (So)
    count against it, as do punctuation and symbols. Returns None when
    ``text`` has fewer than ``GARBLED_MIN_CHARACTERS`` non-whitespace characters.
    """
    visible = [ch for ch in text if not ch.isspace()]
    if len(visible) < GARBLED_MIN_CHARACTERS:
        return None
    wordlike = sum(1 for ch in visible if unicodedata.category(ch)[0] in "LN")
    return wordlike / len(visible)


def looks_garbled(text: str) -> bool:
    """Return True when letters and digits make up less than half of the visible characters.

    Text from a PDF whose fonts lack a usable encoding typically comes out as
    private-use code points, U+FFFD or symbol soup, far below the threshold.
    Prose and numeric tables stay well above it. In the pypdf source tree,
    about 0.1% of blank-line-separated Python blocks fall below it, so a page
    of dense code or formulas can get a warning it does not deserve.
    """
    share = word_character_share(text)
    return share is not None and share < GARBLED_MIN_WORD_SHARE
