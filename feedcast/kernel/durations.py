"""Durations as people write them: ``90s``, ``15m``, ``2h``, ``1d``, ``1w`` and back."""

from __future__ import annotations

import re
from datetime import timedelta

from feedcast.kernel.errors import InvalidValue

__all__ = ["human_duration", "parse_duration"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)?\s*$", re.I)
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, *, minimum: timedelta = timedelta(seconds=1)) -> timedelta:
    """``"90s"``, ``"15m"``, ``"2h"``, ``"1d"``; a bare number is minutes."""
    m = _DURATION.match(text)
    if not m:
        raise InvalidValue(f"invalid duration {text!r}: use a number with s, m, h or d (e.g. 15m, 2h)")
    value = float(m.group(1)) * _UNITS[(m.group(2) or "m").lower()]
    duration = timedelta(seconds=value)
    if duration < minimum:
        raise InvalidValue(f"duration {text!r} is too short: the minimum is {int(minimum.total_seconds())} s")
    return duration


def human_duration(value: timedelta) -> str:
    """``900 s`` -> ``15m``; ``90 s`` -> ``90s``: what :func:`parse_duration` reads back."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
