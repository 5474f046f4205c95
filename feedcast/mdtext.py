r"""Text from outside (item titles, URLs, error messages) inside Markdown we write: the
Prefect artifacts and the report's Markdown. Plain functions, no dependencies.

:func:`md_text` makes any string literal Markdown text: the marks that start a
construct inline are backslash-escaped (``\ ` * _ [ ] | ~``: no link, image, emphasis,
code span or strike-through can form, and a ``|`` cannot split a table cell), ``<``,
``>`` and ``&`` become entities (no raw HTML, no ``<autolink>``), line breaks and
control characters become spaces (a title cannot start a heading or a new row). What
stays as it is (``. : - ( ) # !``) makes nothing without them. :func:`md_link`
makes a link only of an http(s) URL, percent-encoding what could close it; anything
else (``javascript:``, ``data:``, a relative path) is shown as escaped text.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

__all__ = ["md_link", "md_text", "md_url"]

_ESCAPED = {c: "\\" + c for c in "\\`*_[]|~"}
_ESCAPED.update({"<": "&lt;", ">": "&gt;", "&": "&amp;"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_TABLE = str.maketrans(_ESCAPED)
# characters kept as they are in a URL inside ``(...)``: the rest is percent-encoded
_URL_SAFE = "/:?#@!$*+,;=%~-._"


def md_text(value: object, limit: int | None = None) -> str:
    """``value`` as literal Markdown text on one line (cut to ``limit`` characters first)."""
    text = _CONTROL.sub(" ", "" if value is None else str(value)).strip()
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.translate(_TABLE)


def md_url(url: str) -> str | None:
    """An http(s) URL made safe inside a Markdown link's ``(...)``; None for any other."""
    clean = _CONTROL.sub("", url or "").strip()
    try:
        parts = urlsplit(clean)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return quote(clean, safe=_URL_SAFE + "&'[]")


def md_link(title: object, url: str | None, *, limit: int = 200) -> str:
    """``[title](url)`` when ``url`` is http(s), else the escaped title (or URL) as text."""
    shown = md_text(title, limit) if title not in (None, "") else md_text(url, limit)
    target = md_url(url) if url else None
    if target is None:
        return shown
    return f"[{shown or md_text(target, limit)}]({target})"
