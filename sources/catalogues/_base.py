"""Small helpers shared by the catalogue parsers: values, prices, keys, URLs."""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from feedcast.kernel.models import Item, Media
from sources._common import absolute_url, as_list, clean_text, normalize_availability, parse_price

__all__ = [
    "currency_or_none",
    "dedupe_keys",
    "first_text",
    "int_or_none",
    "json_safe",
    "media_list",
    "minor_units",
    "money",
    "page_params",
    "price_pair",
    "query_int",
    "sale_pair",
    "split_urls",
    "stock_from_quantity",
    "text_or_none",
    "title_text",
    "url_or_none",
    "with_query",
]

_ISO_CURRENCY = re.compile(r"^[A-Z]{3}$")


def text_or_none(value: object) -> str | None:
    """A scalar as stripped text; None for empty, dicts and lists."""
    if value is None or isinstance(value, dict | list | tuple):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).strip()
    return text or None


def first_text(*values: object) -> str | None:
    """The first non-empty scalar among ``values`` (lists are searched in order)."""
    for value in values:
        for entry in as_list(value):
            text = text_or_none(entry)
            if text is not None:
                return text
    return None


def title_text(value: object) -> str | None:
    """A display title: HTML entities decoded, whitespace collapsed."""
    text = text_or_none(value)
    return clean_text(html.unescape(text)) if text else None


def url_or_none(base: str | None, href: object) -> str | None:
    """An absolute http(s) URL, with stray spaces percent-encoded; None otherwise."""
    text = text_or_none(href)
    if text is None:
        return None
    absolute = text[:8].lower().startswith(("http://", "https://"))
    if absolute and not any(c.isspace() for c in text):
        return text  # the common case, without the cost of urljoin
    if " " in text and not absolute:
        return None  # prose, not a link ("The URL to the HTML website")
    resolved = absolute_url(base or None, text)
    if resolved is None:
        return None
    return resolved.replace(" ", "%20") if " " in resolved else resolved


_URL_LIST = re.compile(r"\s*,\s*(?=https?://)", re.I)


def split_urls(text: str) -> list[str]:
    """A Merchant comma-separated URL list; commas inside a URL (``w_500,h_500``) stay."""
    return [part for part in _URL_LIST.split(text.strip()) if part]


def int_or_none(value: object) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(Decimal(str(value).strip()))
    except (InvalidOperation, ValueError, OverflowError):
        return None


def currency_or_none(value: object) -> str | None:
    text = text_or_none(value)
    if text is None:
        return None
    text = text.upper()
    return text if _ISO_CURRENCY.match(text) else None


def money(value: object, currency: str | None = None) -> tuple[Decimal | None, str | None]:
    """``parse_price`` that also accepts ``{"value"|"amount": ..., "currency"|"currencyCode": ...}``
    and ``{"amountMicros": ...}`` objects (Merchant Content API style)."""
    if isinstance(value, dict):
        cur = currency_or_none(
            value.get("currency") or value.get("currencyCode") or value.get("currency_code")
        )
        micros = value.get("amountMicros", value.get("amount_micros"))
        if micros is not None:
            amount, _ = parse_price(micros)
            return (amount.scaleb(-6) if amount is not None else None), cur or currency
        raw = value.get("value", value.get("amount"))
        amount, cur2 = parse_price(raw, cur or currency) if raw is not None else (None, cur or currency)
        return amount, cur2
    amount, cur = parse_price(value, currency)
    return amount, cur


def minor_units(value: object, unit: object) -> Decimal | None:
    """WooCommerce Store API prices: ``"1999"`` with ``currency_minor_unit`` 2 -> 19.99."""
    text = text_or_none(value)
    if text is None:
        return None
    digits = int_or_none(unit)
    try:
        amount = Decimal(text)
    except InvalidOperation:
        return None
    return amount.scaleb(-(2 if digits is None else digits))


def price_pair(current: Decimal | None, regular: Decimal | None) -> tuple[Decimal | None, Decimal | None]:
    """From what a buyer pays now and the regular / compare-at / list price, the
    ``(price, sale_price)`` pair of an Item: a sale only when regular > current."""
    if current is None:
        return regular, None
    if regular is not None and regular > current:
        return regular, current
    return current, None


def sale_pair(price: Decimal | None, sale: Decimal | None) -> tuple[Decimal | None, Decimal | None]:
    """A feed's explicit ``(price, sale_price)``: a "sale" price that is not below the
    regular price is no sale (Magento repeats the price in ``special_price``), and a
    lone sale price is simply the price."""
    if price is None:
        return sale, None
    if sale is not None and sale >= price:
        return price, None
    return price, sale


def stock_from_quantity(value: object) -> str | None:
    """In stock when a quantity is positive, out of stock when it is zero or less."""
    qty = int_or_none(value)
    if qty is None:
        return None
    return normalize_availability(qty > 0)


_MEDIA_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".svg": "image/svg+xml",
}


def media_list(urls: Iterable[str | Media]) -> tuple[Media, ...]:
    """Images as Media, first occurrence of each URL kept, in order."""
    seen: set[str] = set()
    out: list[Media] = []
    for entry in urls:
        media = entry if isinstance(entry, Media) else Media(url=entry, type=_guess_type(entry))
        if media.url in seen:
            continue
        seen.add(media.url)
        out.append(media)
    return tuple(out)


def _guess_type(url: str) -> str | None:
    path = urlsplit(url).path.lower()
    dot = path.rfind(".")
    return _MEDIA_TYPES.get(path[dot:]) if dot >= 0 else None


def json_safe(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` made of str/int/float/bool/None/list/dict only (for ``Item.extra``)."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if depth > 8:
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [json_safe(v, depth + 1) for v in value]
    return str(value)


def dedupe_keys(items: list[Item], warnings: list[str]) -> list[Item]:
    """Make keys unique within one document. When several items share an id (a
    template placeholder, a copy-paste), the id identifies none of them: they are
    keyed by their link instead, else by ``id#n`` in document order."""
    counts = Counter(item.key for item in items)
    duplicated = {key for key, count in counts.items() if count > 1}
    if not duplicated:
        return items
    for key in sorted(duplicated):
        warnings.append(f"{counts[key]} items share the id {key!r}; keyed by link (or position) instead")
    taken = {key for key in counts if key not in duplicated}
    out: list[Item] = []
    for item in items:
        if item.key not in duplicated:
            out.append(item)
            continue
        new_key = item.url if item.url and item.url not in taken else None
        if new_key is None:
            n = 1
            while f"{item.key}#{n}" in taken:
                n += 1
            new_key = f"{item.key}#{n}"
        taken.add(new_key)
        out.append(replace(item, key=new_key))
    return out


def query_int(url: str, name: str) -> int | None:
    for key, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        if key == name:
            return int_or_none(value)
    return None


def with_query(url: str, **params: object) -> str:
    """``url`` with the given query parameters set (others kept, order kept)."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    done: set[str] = set()
    out: list[tuple[str, str]] = []
    for key, value in pairs:
        if key in params:
            if key not in done:
                out.append((key, str(params[key])))
                done.add(key)
        else:
            out.append((key, value))
    out.extend((key, str(value)) for key, value in params.items() if key not in done)
    return urlunsplit(parts._replace(query=urlencode(out)))


def page_params(url: str, size_param: str, default_size: int, max_size: int) -> tuple[int, int]:
    """``(page, page_size)`` from a paginated API URL."""
    page = query_int(url, "page") or 1
    size = query_int(url, size_param) or default_size
    return max(page, 1), max(1, min(size, max_size))
