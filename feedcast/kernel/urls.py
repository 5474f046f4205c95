"""The one check of a URL taken from outside text (a feed, a layout, a subscriber)
before it goes into a payload or a page: a string, no whitespace or control
characters, a scheme from the allowed set, and a host for http(s). A URL bound for a
provider payload (``raw=True``, the layouts' case) must also hold no quotes, angle
brackets, backticks or backslashes: a real URL has them percent-encoded, raw ones are
an injection attempt where the payload is markup. A page that escapes what it writes
(the preview) may show such a URL as it is. Where the URL points is not checked here:
:mod:`feedcast.kernel.netguard` does that for the URLs feedcast itself fetches."""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit

__all__ = ["LINK_SCHEMES", "WEB_SCHEMES", "safe_url"]

WEB_SCHEMES: Final = frozenset({"http", "https"})
LINK_SCHEMES: Final = frozenset({"http", "https", "mailto"})

_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")
_RAW_UNSAFE = re.compile(r"[\s\"'<>`\\\x00-\x1f\x7f]")


def safe_url(url: object, schemes: frozenset[str] = WEB_SCHEMES, *, raw: bool = True) -> str | None:
    """``url`` stripped when it is safe to use, else None: ``raw`` (the default) for a
    payload that carries it unescaped; ``raw=False`` for a page that escapes it."""
    if not isinstance(url, str):
        return None
    url = url.strip()
    if not url or (_RAW_UNSAFE if raw else _CONTROL).search(url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        return None
    if scheme in WEB_SCHEMES and not parts.netloc:
        return None
    return url
