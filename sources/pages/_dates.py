"""Dates as pages show them: ISO 8601, RFC 822 and a few human formats."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from bs4 import Tag

from sources._common import clean_text, parse_datetime

from ._dom import attribute, text_of

__all__ = ["date_of", "loose_date"]


_WEEKDAY = re.compile(
    r"^(mon|tue|wed|thu|fri|sat|sun)[a-z]*\.?,?\s+|^(montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag),?\s+",
    re.I,
)
_ORDINAL = re.compile(r"(\d)(st|nd|rd|th)\b", re.I)
_DATE_FORMATS = (
    "%Y-%m-%d",
    "%d %B %Y",
    "%d %b %Y",
    "%B %d, %Y",
    "%b %d, %Y",
    "%B %d %Y",
    "%b %d %Y",
    "%b. %d, %Y",
    "%d.%m.%Y",
    "%d. %m. %Y",
    "%Y/%m/%d",
    "%m/%d/%Y",
    "%B %Y",
)


def loose_date(value: object) -> datetime | None:
    """ISO 8601 / RFC 822 via parse_datetime, then a few human formats
    ("Friday, 3 October 2025", "March 3rd, 2024", "03.10.2025"); UTC."""
    text = clean_text(value)
    if not text or len(text) > 64:
        return None
    parsed = parse_datetime(text)
    if parsed is not None:
        return parsed
    text = re.sub(r"^(published|posted|updated)(\s+on)?:?\s+", "", text, flags=re.I)
    text = _ORDINAL.sub(r"\1", _WEEKDAY.sub("", text)).strip()
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def date_of(tag: Tag) -> datetime | None:
    for attr in ("datetime", "content", "title", "data-date", "data-timestamp"):
        found = loose_date(attribute(tag, attr))
        if found:
            return found
    inner = tag.find("time", datetime=True)
    if isinstance(inner, Tag):
        found = loose_date(attribute(inner, "datetime"))
        if found:
            return found
    return loose_date(text_of(tag))
