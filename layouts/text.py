"""Plain-text measuring and cutting: UTF-16 lengths, grapheme and word boundaries.

Pure functions over ``str``; no HTML here (see :mod:`layouts.html`). A cut never
separates a base character from what joins it (combining marks, ZWJ, variation
selectors, emoji modifiers, the two halves of a flag), so a truncated text renders
the same as the start of the full one.
"""

from __future__ import annotations

import unicodedata
from typing import Literal

__all__ = [
    "cut_point",
    "ellipsis_cut",
    "is_grapheme_boundary",
    "text_direction",
    "truncate_text",
    "utf16_len",
]

Unit = Literal["chars", "utf16"]

_ZWJ = "\u200d"
# how much of the budget a word cut may give up before a grapheme cut is preferred
_WORD_SLACK = 3  # at most a third


def text_direction(*texts: str | None) -> Literal["rtl", "ltr"]:
    """``rtl`` when most letters of ``texts`` are of right-to-left scripts (Arabic,
    Hebrew, Syriac, Thaana, N'Ko ...), ``ltr`` otherwise (also when there is no letter)."""
    rtl = ltr = 0
    for text in texts:
        for ch in text or "":
            kind = unicodedata.bidirectional(ch)
            if kind in ("R", "AL"):
                rtl += 1
            elif kind == "L":
                ltr += 1
    return "rtl" if rtl > ltr else "ltr"


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, as Telegram and JavaScript count."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _extends(ch: str) -> bool:
    """True when ``ch`` belongs to the grapheme before it (Extend / SpacingMark / ZWJ)."""
    cp = ord(ch)
    if cp < 0x300:
        return False
    if (
        cp in (0x200C, 0x200D)
        or 0xFE00 <= cp <= 0xFE0F  # variation selectors
        or 0x1F3FB <= cp <= 0x1F3FF  # emoji skin-tone modifiers
        or 0xE0020 <= cp <= 0xE007F  # tag characters (subdivision flags)
        or 0xE0100 <= cp <= 0xE01EF  # variation selectors supplement
        or 0x1160 <= cp <= 0x11FF  # Hangul medial vowels and final consonants
        or 0xD7B0 <= cp <= 0xD7FF
        or cp in (0xFF9E, 0xFF9F)  # halfwidth katakana voiced marks
    ):
        return True
    return unicodedata.category(ch) in ("Mn", "Mc", "Me")


def _is_regional(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


_PREPEND = frozenset(
    chr(c) for c in (*range(0x600, 0x606), 0x6DD, 0x70F, 0x890, 0x891, 0x8E2, 0x110BD, 0x110CD)
)


def is_grapheme_boundary(text: str, index: int) -> bool:
    """Whether ``text`` may be cut before ``text[index]`` without splitting a grapheme."""
    if index <= 0 or index >= len(text):
        return True
    prev, nxt = text[index - 1], text[index]
    if _extends(nxt) or prev == _ZWJ or prev in _PREPEND:
        return False
    if prev == "\r" and nxt == "\n":
        return False
    if 0x1100 <= ord(prev) <= 0x115F and (0x1100 <= ord(nxt) <= 0x115F or 0xAC00 <= ord(nxt) <= 0xD7A3):
        return False  # Hangul leading consonant + syllable
    if _is_regional(prev) and _is_regional(nxt):
        run = 0
        k = index - 1
        while k >= 0 and _is_regional(text[k]):
            run += 1
            k -= 1
        return run % 2 == 0  # inside a flag when an odd number of indicators precede
    return True


def _is_wide(ch: str) -> bool:
    return ord(ch) >= 0x1100 and unicodedata.east_asian_width(ch) in ("W", "F")


def _is_word_break(text: str, index: int) -> bool:
    prev, nxt = text[index - 1], text[index]
    return nxt.isspace() or prev.isspace() or _is_wide(prev) or _is_wide(nxt)


def _units(ch: str, unit: Unit) -> int:
    return 2 if unit == "utf16" and ord(ch) > 0xFFFF else 1


def cut_point(text: str, budget: int, *, unit: Unit = "chars") -> int:
    """The index to cut ``text`` at so that ``text[:index]`` fits ``budget`` units.

    Prefers the last word break (whitespace, between CJK characters) unless that gives up
    more than a third of the budget, else the last grapheme boundary. Trailing
    whitespace and punctuation are dropped from the kept part. 0 when nothing fits.
    """
    if budget <= 0:
        return 0
    used = 0
    limit = len(text)
    for index, ch in enumerate(text):
        used += _units(ch, unit)
        if used > budget:
            limit = index
            break
    if limit >= len(text):
        return len(text)
    floor = limit - limit // _WORD_SLACK
    cut = 0
    for index in range(limit, max(floor, 1) - 1, -1):
        if _is_word_break(text, index) and is_grapheme_boundary(text, index):
            cut = index
            break
    if not cut:
        for index in range(limit, 0, -1):
            if is_grapheme_boundary(text, index):
                cut = index
                break
    return _rstrip(text, cut)


_DANGLING = frozenset(",;:.-–—([{")


def _rstrip(text: str, index: int) -> int:
    """Back over whitespace and punctuation that should not precede an ellipsis."""
    while (
        index > 0
        and (text[index - 1].isspace() or text[index - 1] in _DANGLING)
        and is_grapheme_boundary(text, index - 1)
    ):
        index -= 1
    return index


def ellipsis_cut(text: str, limit: int, ellipsis: str, *, unit: Unit = "chars") -> tuple[int, str] | None:
    """Where to cut ``text`` (a :func:`cut_point`) so that its start and the ellipsis
    appended fit ``limit`` units, with that ellipsis ("" when it alone is over the
    limit): ``(0, "")`` for a limit of 0 or less; None when ``text`` fits as it is."""
    measure = utf16_len if unit == "utf16" else len
    if measure(text) <= limit:
        return None
    if limit <= 0:
        return 0, ""
    if measure(ellipsis) > limit:
        ellipsis = ""
    return cut_point(text, limit - measure(ellipsis), unit=unit), ellipsis


def truncate_text(text: str, limit: int, ellipsis: str = "…", *, unit: Unit = "chars") -> str:
    """``text`` itself when it fits ``limit``, else its start cut at a word or grapheme
    boundary plus ``ellipsis``, together at most ``limit`` units (code points for
    ``"chars"``, UTF-16 code units for ``"utf16"``)."""
    cut = ellipsis_cut(text, limit, ellipsis, unit=unit)
    if cut is None:
        return text
    keep, ellipsis = cut
    return text[:keep] + ellipsis
