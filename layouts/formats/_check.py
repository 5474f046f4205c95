"""What the validators of the formats share: typed accessors that raise
:class:`~feedcast.kernel.errors.PayloadError` naming the rule, and the URL test the
payload builders use too.

Plain Python; private to :mod:`layouts.formats`, whose modules use it as a namespace
(``check.string(...)``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final, NoReturn
from urllib.parse import urlsplit

from feedcast.kernel.errors import PayloadError
from feedcast.kernel.models import ProviderCall
from layouts.text import utf16_len

MB: Final = 1_000_000  # sizes are decimal megabytes, the safe reading

_WHITESPACE = re.compile(r"\s")


def valid_url(url: str, schemes: tuple[str, ...] = ("http", "https")) -> bool:
    """Whether ``url`` is an absolute URL of one of ``schemes``, as the validators want it."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    scheme = parts.scheme.lower()
    if scheme not in schemes or _WHITESPACE.search(url):
        return False
    return bool(parts.netloc) or scheme not in ("http", "https")


def fail(rule: str, detail: str) -> NoReturn:
    raise PayloadError(rule, detail)


def obj(value: Any, rule: str, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        fail(rule, f"{what} must be an object, not {type(value).__name__}")
    return value


def array(value: Any, rule: str, what: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        fail(rule, f"{what} must be an array, not {type(value).__name__}")
    return list(value)


def string(value: Any, rule: str, what: str) -> str:
    if not isinstance(value, str):
        fail(rule, f"{what} must be a string, not {type(value).__name__}")
    return value


def boolean(value: Any, rule: str, what: str) -> bool:
    if not isinstance(value, bool):
        fail(rule, f"{what} must be a boolean, not {type(value).__name__}")
    return value


def keys(obj: Mapping[str, Any], allowed: frozenset[str] | set[str], rule: str, what: str) -> None:
    unknown = sorted(str(k) for k in obj if k not in allowed)
    if unknown:
        fail(rule, f"{what}: unknown field(s) {', '.join(unknown)}")


def field(obj: Mapping[str, Any], key: str, rule: str, what: str) -> Any:
    if key not in obj or obj[key] is None:
        fail(rule, f"{what}: {key!r} is required")
    return obj[key]


def length(
    text: str,
    rule: str,
    what: str,
    *,
    high: int,
    low: int = 0,
    measure: Callable[[str], int] = utf16_len,
    blank_ok: bool = False,
) -> None:
    size = measure(text)
    if size > high:
        fail(rule, f"{what} is {size} characters, over the limit of {high}")
    if size < low:
        fail(rule, f"{what} is {size} characters, under the minimum of {low}")
    if low > 0 and not blank_ok and not text.strip():
        fail(rule, f"{what} is blank")


def url(value: Any, rule: str, what: str, *, schemes: tuple[str, ...] = ("http", "https")) -> str:
    url = string(value, rule, what)
    if not valid_url(url, schemes):
        fail(rule, f"{what} is not an absolute {'/'.join(schemes)} URL: {url[:100]!r}")
    return url


def webhook_body(call: ProviderCall, fmt: str, allowed: frozenset[str] | set[str]) -> Mapping[str, Any]:
    """The body of a webhook call (``POST``) of format ``fmt``, with only ``allowed`` keys."""
    if call.method != "POST":
        fail(f"{fmt}.method", f"method {call.method!r}: webhooks are 'POST'")
    keys(call.body, allowed, f"{fmt}.body.keys", "body")
    return call.body


def text(
    value: Any, rule: str, key: str, shown: str, *, high: int, low: int = 0, blank_ok: bool = False
) -> str:
    """A string field (``key``) ``low``..``high`` characters long, ``shown`` as named."""
    checked = string(value, rule, key)
    length(checked, rule, shown, high=high, low=low, blank_ok=blank_ok)
    return checked
