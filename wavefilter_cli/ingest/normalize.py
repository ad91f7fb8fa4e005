"""Text normalisation shared by every input kind, so PDFs and text files reach the model alike.

``normalize_text`` is idempotent and its output has no CR, no control
characters other than LF and TAB, no lone surrogates and no byte-order
marks, and is in Unicode NFKC form apart from the hyphen joins below.
"""

from __future__ import annotations

import re
import unicodedata

# Line and page breaks other than LF become LF before control characters are
# removed, so "a\fb" stays two words instead of becoming "ab".
_LINE_BREAKS = re.compile("\r\n|[\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")

_KEPT_CONTROLS = frozenset("\n\t")

# A soft hyphen before a line break marks a word that the layout broke, so the
# line break is removed with it. Any other soft hyphen is invisible and dropped.
_SOFT_HYPHEN_BREAK = re.compile("\u00ad[ \t]*\n[ \t]*")

# A hyphen (U+002D or U+2010) at a line end, between two letters.
# ``[^\W\d_]`` is a Unicode letter; the lookarounds let "a-\nb-\nc" join in one pass.
_HYPHEN_BREAK = re.compile(r"(?<=[^\W\d_])[-\u2010][ \t]*\n[ \t]*(?=[^\W\d_])")


def _is_dropped(ch: str) -> bool:
    if ch in _KEPT_CONTROLS:
        return False
    if ch == "\ufeff":
        return True
    return unicodedata.category(ch) in ("Cc", "Cs")


def remove_control_characters(text: str) -> str:
    """Drop C0/C1 controls (NUL included) except LF and TAB, lone surrogates and stray BOMs."""
    return "".join(ch for ch in text if not _is_dropped(ch))


def _join_hyphen(match: re.Match[str]) -> str:
    # Join only when the next line starts in lower case: "docu-\nment" is one
    # word, while "Anglo-\nSaxon" keeps its hyphen and line break.
    following = match.string[match.end()]
    return "" if following.islower() else match.group(0)


def join_hyphenated_words(text: str) -> str:
    """Join words that a hyphen split across a line break ("docu-\\nment" -> "document")."""
    return _HYPHEN_BREAK.sub(_join_hyphen, text)


def normalize_text(text: str) -> str:
    """Return ``text`` as the model should see it.

    The steps run in an order that keeps the function idempotent:

    1. Line breaks become LF.
    2. Control characters are removed.
    3. Soft hyphens are resolved.
    4. NFKC turns ligatures such as U+FB01 into "fi" and full-width forms into ASCII.
    5. Hyphenated line breaks are joined.
    6. NFKC runs again, because a join can put two composable characters side by side.
    """
    text = _LINE_BREAKS.sub("\n", text)
    text = remove_control_characters(text)
    text = _SOFT_HYPHEN_BREAK.sub("", text)
    text = text.replace("\u00ad", "")
    text = unicodedata.normalize("NFKC", text)
    text = join_hyphenated_words(text)
    return unicodedata.normalize("NFKC", text)
