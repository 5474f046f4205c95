"""Fitting into a provider's limits, as the payload builders of the formats do: the mark
of a cut text, a cut at a word boundary counted in UTF-16 code units, blocks packed into
as few messages as fit, a construct a cut left half-open dropped, groups of at most n.

Plain Python; private to :mod:`layouts.formats`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Final

from layouts.html import pack
from layouts.text import truncate_text, utf16_len

__all__ = ["ELLIPSIS", "close_cut", "cut_utf16", "groups_of", "pack_utf16"]

ELLIPSIS: Final = "…"  # the mark of a cut text


def groups_of(seq: Sequence[Any], size: int) -> list[Sequence[Any]]:
    """``seq`` in groups of ``size`` (the last one shorter)."""
    return [seq[i : i + size] for i in range(0, len(seq), size)]


def cut_utf16(text: str, room: int) -> str:
    """``text`` cut to ``room`` UTF-16 code units at a word boundary, marked."""
    return truncate_text(text, room, ELLIPSIS, unit="utf16")


def pack_utf16(blocks: Sequence[str], limit: int, truncate: Callable[[str, int], str]) -> list[str]:
    """The non-blank ``blocks`` packed into messages of at most ``limit`` UTF-16 code units."""
    kept = [b for b in blocks if b.strip()]
    if not kept:
        return []
    return [c for c in pack(kept, limit, separator="\n\n", length=utf16_len, truncate=truncate) if c.strip()]


def close_cut(cut: str, original: str, opener: str, complete: re.Pattern[str]) -> str:
    """Drop a construct the cut left half-open (a link, an entity) from ``cut``."""
    if cut == original or not cut.endswith(ELLIPSIS):
        return cut
    body = cut[: -len(ELLIPSIS)]
    start = body.rfind(opener)
    if start != -1 and complete.match(original, start) and not complete.match(body, start):
        body = body[:start].rstrip()
        return body + ELLIPSIS if body else ""
    return cut
