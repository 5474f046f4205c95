"""Helpers shared by the parsers: identity, prices, availability, dates, text.

Pure functions, no I/O.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

from feedcast.models import Availability

__all__ = [
    "absolute_url",
    "clean_text",
    "decode_text",
    "header",
    "item_key",
    "normalize_availability",
    "parse_datetime",
    "parse_price",
]


def item_key(guid: object = None, url: str | None = None, *fallback: object) -> str:
    """Stable identity of an item: its guid / id, else its canonical link, else a
    hash of whatever identifying text it has (title, content...)."""
    if guid is not None and str(guid).strip():
        return str(guid).strip()
    if url and url.strip():
        return url.strip()
    material = "\x1f".join("" if part is None else str(part) for part in fallback)
    return "sha1:" + hashlib.sha1(material.encode("utf-8"), usedforsecurity=False).hexdigest()


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
