"""Helpers shared by the parsers: identity, prices, availability, dates, text.

Pure functions, no I/O.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import ftfy
from ftfy.badness import is_bad

from feedcast.kernel.models import Availability, Item, ParseResult

__all__ = [
    "absolute_url",
    "as_list",
    "clean_text",
    "decode_text",
    "first_text_in",
    "header",
    "item_key",
    "keyed_item",
    "normalize_availability",
    "parse_datetime",
    "parse_price",
    "repair_mojibake",
    "repair_text",
]


def as_list(value: object) -> list[Any]:
    """``None`` -> ``[]``, a list/tuple -> itself, anything else -> ``[value]``."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def item_key(guid: object = None, url: str | None = None, *fallback: object) -> str:
    """Stable identity of an item: its guid / id, else its canonical link, else a
    hash of whatever identifying text it has (title, content...)."""
    if guid is not None and str(guid).strip():
        return str(guid).strip()
    if url and url.strip():
        return url.strip()
    material = "\x1f".join("" if part is None else str(part) for part in fallback)
    return "sha1:" + hashlib.sha1(material.encode("utf-8"), usedforsecurity=False).hexdigest()


def keyed_item(guid: object, url: str | None, title: str | None, summary: str | None, **fields: Any) -> Item:
    """An Item keyed by :func:`item_key` on what it shows: its guid, else its link,
    else a hash of its title and summary; ``fields`` are its other attributes."""
    return Item(key=item_key(guid, url, title, summary), title=title, url=url, summary=summary, **fields)


_PRICE_RE = re.compile(r"[-+]?\d[\d.,'\s\u00a0\u202f]*")
_CURRENCY_RE = re.compile(r"\b([A-Z]{3})\b")
_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR", "₽": "RUB", "zł": "PLN"}


def parse_price(value: object, default_currency: str | None = None) -> tuple[Decimal | None, str | None]:
    """Parse ``"15.00 USD"``, ``"USD 15"``, ``"1.299,00 €"``, ``15``, ``"$9.99"``
    into ``(Decimal, currency)``. Unknown input gives ``(None, default_currency)``."""
    if value is None or isinstance(value, bool):
        return None, default_currency
    if isinstance(value, int | float | Decimal):
        try:
            return Decimal(str(value)), default_currency
        except InvalidOperation:
            return None, default_currency
    text = str(value).strip()
    if not text:
        return None, default_currency
    currency = default_currency
    m = _CURRENCY_RE.search(text)
    if m:
        currency = m.group(1)
    else:
        for symbol, code in _SYMBOLS.items():
            if symbol in text:
                currency = code
                break
    m2 = _PRICE_RE.search(text)
    if not m2:
        return None, currency
    number = re.sub(r"[\s'\u00a0\u202f]", "", m2.group(0)).rstrip(".,")
    if "," in number and "." in number:
        # the later separator is the decimal one: 1,299.00 or 1.299,00
        if number.rfind(",") > number.rfind("."):
            number = number.replace(".", "").replace(",", ".")
        else:
            number = number.replace(",", "")
    elif "," in number:
        head, _, tail = number.rpartition(",")
        # 1,299 (thousands) vs 12,50 (decimal comma)
        number = number.replace(",", "") if len(tail) == 3 and head else head.replace(",", "") + "." + tail
    try:
        return Decimal(number), currency
    except InvalidOperation:
        return None, currency


_AVAILABILITY = {
    "instock": Availability.IN_STOCK,
    "in stock": Availability.IN_STOCK,
    "in_stock": Availability.IN_STOCK,
    "available": Availability.IN_STOCK,
    "true": Availability.IN_STOCK,
    "limitedavailability": Availability.IN_STOCK,
    "onlineonly": Availability.IN_STOCK,
    "instoreonly": Availability.IN_STOCK,
    "outofstock": Availability.OUT_OF_STOCK,
    "out of stock": Availability.OUT_OF_STOCK,
    "out_of_stock": Availability.OUT_OF_STOCK,
    "soldout": Availability.OUT_OF_STOCK,
    "sold out": Availability.OUT_OF_STOCK,
    "discontinued": Availability.OUT_OF_STOCK,
    "false": Availability.OUT_OF_STOCK,
    "unavailable": Availability.OUT_OF_STOCK,
    "preorder": Availability.PREORDER,
    "pre-order": Availability.PREORDER,
    "presale": Availability.PREORDER,
    "backorder": Availability.BACKORDER,
    "onbackorder": Availability.BACKORDER,
}


def normalize_availability(value: object) -> str | None:
    """Map schema.org URLs, Merchant values, Shopify booleans... to an Availability."""
    if value is None:
        return None
    if isinstance(value, bool):
        return Availability.IN_STOCK.value if value else Availability.OUT_OF_STOCK.value
    text = str(value).strip().lower()
    if not text:
        return None
    text = text.rsplit("/", 1)[-1]  # http://schema.org/InStock
    found = _AVAILABILITY.get(text) or _AVAILABILITY.get(text.replace("-", "").replace(" ", ""))
    return found.value if found else None


def parse_datetime(value: object) -> datetime | None:
    """ISO 8601, RFC 822 or a ``time.struct_time``; always timezone-aware UTC."""
    if value is None:
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, time.struct_time):
        try:
            dt = datetime(
                value.tm_year,
                value.tm_mon,
                value.tm_mday,
                value.tm_hour,
                value.tm_min,
                value.tm_sec,
                tzinfo=UTC,
            )
        except (TypeError, ValueError):
            return None
    else:
        text = str(value).strip()
        if not text:
            return None
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            try:
                dt = parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError):
                return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def absolute_url(base: str | None, href: object) -> str | None:
    """Resolve ``href`` against ``base``; None for empty, ``javascript:`` and ``data:``."""
    if href is None:
        return None
    text = str(href).strip()
    if not text or text.lower().startswith(("javascript:", "data:", "mailto:", "#")):
        return None
    resolved = urljoin(base, text) if base else text
    return resolved if urlsplit(resolved).scheme in {"http", "https"} else None


_WS = re.compile(r"\s+")


def clean_text(value: object) -> str | None:
    """Collapse whitespace; None for empty."""
    if value is None:
        return None
    text = _WS.sub(" ", str(value)).strip()
    return text or None


# Mojibake: UTF-8 read as Latin-1 / cp1252 somewhere upstream ("Ã©" for "é", "â€™" for
# "’"). feedparser undoes one level when a whole element round-trips through Latin-1,
# which leaves the elements it could not (an "à" whose second byte became a space, a
# stray C1 control) double-encoded beside repaired ones. ftfy's fix_encoding repairs
# the encoding only (quotes, HTML entities, width and line breaks are left as they
# are), and only where its badness check sees mojibake; ASCII text is never touched.
_FTFY_CONFIG = ftfy.TextFixerConfig(
    unescape_html=False,
    remove_terminal_escapes=False,
    uncurl_quotes=False,
    fix_latin_ligatures=False,
    fix_character_width=False,
    fix_line_breaks=False,
    fix_surrogates=False,
    remove_control_chars=False,
    normalization=None,
    explain=False,
)


# A cheap first look: UTF-8 read as Latin-1 / cp1252 leaves a lead byte (Â..ô) before
# a continuation byte (0x80..0xBF, or its cp1252 character), or before a space where a
# no-break space was lost ("Ã la"). Text without one is not parsed by ftfy at all.
_CP1252_CONTINUATION = "".join(bytes([b]).decode("cp1252", "ignore") for b in range(0x80, 0xA0))
_MOJIBAKE_HINT = re.compile(f"[\u00c2-\u00f4][\u0080-\u00bf{_CP1252_CONTINUATION}]|[\u00c2\u00c3] ")


def repair_text(text: str | None) -> str | None:
    """``text`` with its mojibake repaired (the same string when there is none)."""
    if not text or text.isascii() or not _MOJIBAKE_HINT.search(text) or not is_bad(text):
        return text
    return ftfy.fix_encoding(text, _FTFY_CONFIG)


# "Â" / "Ã" before a space: the UTF-8 no-break space (C2 A0) or "à" (C3 A0) whose A0
# byte became a plain space. Alone it is too weak a sign to act on; in a document where
# ftfy has already found mojibake, the A0 is put back and ftfy decides once more.
_LOST_A0 = re.compile("([\u00c2\u00c3]) ")


def _repair(text: str | None, plain: bool, lost_a0: bool) -> str | None:
    fixed = repair_text(text)
    if lost_a0 and fixed is text and text and _LOST_A0.search(text):
        candidate = _LOST_A0.sub("\\1\u00a0", text)
        repaired = repair_text(candidate)
        fixed = text if repaired is candidate or repaired == candidate else repaired
    if fixed is text or fixed == text:
        return text
    return clean_text(fixed) if plain else fixed  # titles: a repaired "Â " is a space


_PLAIN_FIELDS = ("title", "author", "brand")
_HTML_FIELDS = ("summary", "content")


def _repair_item(item: Item, lost_a0: bool) -> Item:
    changes: dict[str, object] = {}
    for name in (*_PLAIN_FIELDS, *_HTML_FIELDS):
        value = getattr(item, name)
        fixed = _repair(value, name in _PLAIN_FIELDS, lost_a0)
        if fixed is not value:
            changes[name] = fixed
    tags = tuple(_repair(t, True, lost_a0) or t for t in item.tags)
    if tags != item.tags:
        changes["tags"] = tags
    return replace(item, **changes) if changes else item  # type: ignore[arg-type]


def _repair_all(result: ParseResult, lost_a0: bool) -> ParseResult:
    items = tuple(_repair_item(i, lost_a0) for i in result.items)
    title = _repair(result.title, True, lost_a0)
    if title is result.title and all(a is b for a, b in zip(items, result.items, strict=True)):
        return result
    return replace(result, items=items, title=title)


def repair_mojibake(result: ParseResult) -> ParseResult:
    """The same text repairs on every item (title, summary, content, author, brand,
    tags) and on the document's title; where some were needed, the document is known
    to be double-encoded and its weaker traces are repaired too. Item keys are kept as
    parsed: an item's identity does not change when its text is repaired."""
    repaired = _repair_all(result, lost_a0=False)
    if repaired is result:
        return result
    return _repair_all(repaired, lost_a0=True)


_T = TypeVar("_T")


def first_text_in(
    groups: Mapping[str, Iterable[_T]], names: Iterable[str], text: Callable[[_T], str | None]
) -> str | None:
    """The first non-empty ``text(value)`` of the values ``groups`` holds under
    ``names``, in that order (``<meta>`` contents, elements by tag name...)."""
    for name in names:
        for value in groups.get(name, ()):
            found = text(value)
            if found:
                return found
    return None


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """Case-insensitive header lookup on a plain mapping."""
    if not headers:
        return None
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


_CHARSET_RE = re.compile(rb"""charset\s*=\s*["']?([A-Za-z0-9_\-:.]+)""", re.I)


def decode_text(body: bytes, headers: Mapping[str, str] | None = None) -> str:
    """Decode a non-XML document (HTML, JSON, CSV): BOM, then the Content-Type
    charset, then a ``<meta charset>`` in the first 2 KB, then UTF-8, then cp1252."""
    for bom, codec in ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if body.startswith(bom):
            return body[len(bom) :].decode(codec, errors="replace")
    candidates: list[str] = []
    ctype = header(headers, "content-type")
    if ctype:
        m = _CHARSET_RE.search(ctype.encode("latin-1", "ignore"))
        if m:
            candidates.append(m.group(1).decode("ascii"))
    m = _CHARSET_RE.search(body[:2048])
    if m:
        candidates.append(m.group(1).decode("ascii", "ignore"))
    candidates.append("utf-8")
    for codec in candidates:
        try:
            return body.decode(codec)
        except (LookupError, UnicodeDecodeError):
            continue
    return body.decode("cp1252", errors="replace")
