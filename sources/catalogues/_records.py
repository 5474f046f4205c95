"""Flat product records: Merchant text feeds (TSV/CSV), generic product CSV
exports (Magento...), and JSON Lines (Google Cloud Retail schema, simple lines).

Both come down to a mapping of normalised field names (``image_link``,
``price_info``...) to values, turned into an Item by :func:`record_item`.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from feedcast.kernel.models import Item
from sources._common import (
    as_list,
    clean_text,
    decode_text,
    keyed_item,
    normalize_availability,
    parse_datetime,
)

from ._base import (
    currency_or_none,
    first_text,
    json_safe,
    media_list,
    money,
    price_pair,
    sale_pair,
    split_urls,
    stock_from_quantity,
    text_or_none,
    title_text,
    url_or_none,
)

__all__ = [
    "normalize_field",
    "parse_delimited",
    "parse_jsonl",
    "record_item",
    "split_header",
]

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_WORD = re.compile(r"[^a-z0-9]+")


def normalize_field(name: str) -> str:
    """``"g:image_link"``, ``"Image Link"``, ``"imageLink"`` -> ``"image_link"``."""
    text = name.strip().lstrip("\ufeff").strip().strip("\"'").strip()
    if text[:2].lower() == "g:":
        text = text[2:]
    text = _CAMEL.sub("_", text).lower()
    return _NON_WORD.sub("_", text).strip("_")


def split_header(name: str) -> tuple[str, tuple[str, ...]]:
    """A Merchant grouped header ``shipping(country:service:price)`` ->
    ``("shipping", ("country", "service", "price"))``; plain headers have no parts."""
    head, paren, rest = name.partition("(")
    if paren and rest.rstrip().endswith(")"):
        parts = tuple(normalize_field(p) for p in rest.rstrip()[:-1].split(":"))
        return normalize_field(head), tuple(p for p in parts)
    return normalize_field(name), ()


# field name aliases, in order of preference
_ID = ("id", "offer_id", "item_id", "product_id", "entity_id", "sku", "variant_sku")
_TITLE = ("title", "name", "product_name", "product_title")
_URL = ("link", "url", "uri", "product_url", "product_link", "permalink", "page_url")
_DESCRIPTION = ("description", "body_html", "body", "long_description", "product_description")
_SHORT = ("short_description",)
_IMAGE = ("image_link", "image", "image_url", "images", "base_image", "image_src", "main_image")
_MORE_IMAGES = ("additional_image_link", "additional_image_links", "additional_images")
_PRICE = ("price", "regular_price", "variant_price", "list_price", "base_price")
_SALE = ("sale_price", "special_price", "discount_price")
_COMPARE = ("compare_at_price", "variant_compare_at_price")
_CURRENCY = ("currency", "currency_code", "price_currency")
_AVAILABILITY = (
    "availability",
    "stock_status",
    "availability_status",
    "in_stock",
    "is_in_stock",
    "available",
)
_QUANTITY = ("quantity", "qty", "available_quantity", "stock_quantity", "inventory_quantity")
_BRAND = ("brand", "brands", "manufacturer", "vendor")
_GTIN = ("gtin", "ean", "upc", "barcode", "isbn", "gtin13", "gtin14", "gtin12", "gtin8", "jan")
_GROUP = ("item_group_id", "group_id", "parent_sku", "parent_id", "primary_product_id")
_TAGS = ("tags", "labels", "keywords")
_UPDATED = ("updated", "updated_at", "last_updated", "update_time", "modified")
_PUBLISHED = ("published", "published_at", "publish_time", "created_at", "pub_date")
_USED = {
    *_ID,
    *_TITLE,
    *_URL,
    *_DESCRIPTION,
    *_SHORT,
    *_IMAGE,
    *_MORE_IMAGES,
    *_PRICE,
    *_SALE,
    *_COMPARE,
    *_CURRENCY,
    *_AVAILABILITY,
    *_BRAND,
    *_GTIN,
    *_GROUP,
    *_TAGS,
    *_UPDATED,
    *_PUBLISHED,
    "mpn",
    "price_info",
    "url_key",
}
_TRUE = {"1", "yes", "y", "true"}
_FALSE = {"0", "no", "n", "false"}


def _pick(rec: Mapping[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        value = rec.get(name)
        if value is None or value == "" or value == [] or value == {}:
            continue
        return value
    return None


def _image_urls(value: Any, base: str, split_commas: bool) -> list[str]:
    urls: list[str] = []
    for entry in as_list(value):
        if isinstance(entry, dict):
            entry = entry.get("uri") or entry.get("url") or entry.get("src") or entry.get("image_link")
        text = text_or_none(entry)
        if text is None:
            continue
        parts = split_urls(text) if split_commas else [text]
        urls.extend(u for u in (url_or_none(base, p) for p in parts) if u)
    return urls


def _availability(rec: Mapping[str, Any]) -> str | None:
    for name in _AVAILABILITY:
        value = rec.get(name)
        if value is None or value == "":
            continue
        if isinstance(value, str) and name in {"in_stock", "is_in_stock", "available"}:
            lowered = value.strip().lower()
            if lowered in _TRUE or lowered in _FALSE:
                return normalize_availability(lowered in _TRUE)
        found = normalize_availability(value)
        if found:
            return found
    for name in _QUANTITY:
        found = stock_from_quantity(rec.get(name))
        if found:
            return found
    return None


def _tags(value: Any) -> tuple[str, ...]:
    out: list[str] = []
    for entry in as_list(value):
        parts = entry.split(",") if isinstance(entry, str) else [text_or_none(entry)]
        out.extend(t for t in (clean_text(p) for p in parts) if t and t not in out)
    return tuple(out)


def record_item(rec: Mapping[str, Any], base: str, extra_out: Mapping[str, Any] | None = None) -> Item:
    """An Item from a flat record with normalised field names."""
    price, sale, currency = _record_prices(rec)
    url = _record_url(rec, base)
    images = _image_urls(_pick(rec, _IMAGE), base, split_commas=False)
    images += _image_urls(_pick(rec, _MORE_IMAGES), base, split_commas=True)
    brand_value = _pick(rec, _BRAND)
    title = title_text(_pick(rec, _TITLE))
    summary, content = _descriptions(rec)
    ident = first_text(_pick(rec, _ID))
    return keyed_item(
        ident,
        url,
        title,
        summary,
        content=content,
        image=images[0] if images else None,
        media=media_list(images),
        published=parse_datetime(text_or_none(_pick(rec, _PUBLISHED))),
        updated=parse_datetime(text_or_none(_pick(rec, _UPDATED))),
        tags=_tags(_pick(rec, _TAGS)),
        price=price,
        sale_price=sale,
        currency=currency,
        availability=_availability(rec),
        sku=first_text(rec.get("sku"), rec.get("variant_sku")),
        gtin=first_text(_pick(rec, _GTIN)),
        mpn=first_text(rec.get("mpn")),
        brand=title_text(
            first_text(brand_value.get("name") if isinstance(brand_value, dict) else brand_value)
        ),
        group_id=first_text(_pick(rec, _GROUP)),
        extra=json_safe(_record_extra(rec, extra_out)),
    )


def _record_prices(rec: Mapping[str, Any]) -> tuple[Decimal | None, Decimal | None, str | None]:
    """``(price, sale_price, currency)`` of a record."""
    info = rec.get("price_info")
    current: Decimal | None
    regular: Decimal | None = None
    sale: Decimal | None = None
    if isinstance(info, dict):  # Google Cloud Retail: price = now, originalPrice = before
        currency = currency_or_none(info.get("currencyCode") or info.get("currency_code"))
        current, currency = money(info.get("price"), currency)
        regular, cur2 = money(info.get("originalPrice", info.get("original_price")), currency)
        price, sale = price_pair(current, regular)
        return price, sale, currency or cur2
    currency = currency_or_none(_pick(rec, _CURRENCY))
    price, cur1 = money(_pick(rec, _PRICE), currency)
    sale, cur2 = money(_pick(rec, _SALE), cur1 or currency)
    compare, cur3 = money(_pick(rec, _COMPARE), cur1 or currency)
    currency = currency or cur1 or cur2 or cur3
    price, sale = sale_pair(price, sale)
    if compare is not None and sale is None:
        price, sale = price_pair(price, compare)
    return price, sale, currency


def _record_url(rec: Mapping[str, Any], base: str) -> str | None:
    url = url_or_none(base, _pick(rec, _URL))
    url_key = text_or_none(rec.get("url_key"))
    if url is None and url_key and base:
        # Magento import/export: url_key + the default ".html" product URL suffix
        url = url_or_none(base, "/" + url_key.strip("/") + ("" if "." in url_key else ".html"))
    return url


def _descriptions(rec: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``(summary, content)``: a short description is the summary, the long one then
    the content."""
    summary = text_or_none(_pick(rec, _DESCRIPTION))
    short = text_or_none(rec.get("short_description"))
    if short and summary:
        return short, summary
    if short:
        return short, None
    return summary, None


def _record_extra(rec: Mapping[str, Any], extra_out: Mapping[str, Any] | None) -> dict[str, Any]:
    """The fields of a record no Item attribute holds, then ``extra_out``."""
    extra: dict[str, Any] = {}
    for name, value in rec.items():
        if name in _USED or value is None or value == "" or value == [] or value == {}:
            continue
        extra[name] = value
    if extra_out:
        extra.update(extra_out)
    return extra


# ------------------------------------------------------------------- TSV / CSV


def _delimiter(first_line: str) -> str:
    if "\t" in first_line:
        return "\t"
    counts = {d: first_line.count(d) for d in (",", ";", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def parse_delimited(
    body: bytes, url: str, headers: Mapping[str, str] | None, warnings: list[str]
) -> tuple[str, list[Item]]:
    """``(format, items)`` of a Merchant text feed or a product CSV export."""
    text = decode_text(body, headers)
    first_line = text.lstrip("\ufeff").split("\n", 1)[0]
    delimiter = _delimiter(first_line)
    fmt = "merchant-tsv" if delimiter == "\t" else "merchant-csv"
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), delimiter=delimiter)
    header: list[tuple[str, tuple[str, ...]]] | None = None
    items: list[Item] = []
    errors = ragged = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors += 1
            if errors <= 5:
                warnings.append(f"CSV error near line {reader.line_num}: {exc}")
            if errors > 100:
                warnings.append("too many CSV errors; gave up")
                break
            continue
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [split_header(cell) for cell in row]
            continue
        if len(row) != len(header):
            ragged += 1
            if ragged <= 5:
                warnings.append(f"line {reader.line_num}: {len(row)} fields, header has {len(header)}")
        rec: dict[str, Any] = {}
        for (name, parts), cell in zip(header, row, strict=False):
            value = cell.strip()
            if not name or not value:
                continue
            if parts:
                groups = [dict(zip(parts, g.split(":"), strict=False)) for g in value.split(",") if g.strip()]
                rec.setdefault(name, []).extend(groups)
            elif name in rec and name not in {"id", "title"}:
                # repeated columns (additional_image_link twice...) collect into a list
                rec[name] = [*as_list(rec[name]), value]
            else:
                rec.setdefault(name, value)
        items.append(record_item(rec, url))
    if ragged > 5:
        warnings.append(f"... {ragged} rows in all with a wrong number of fields")
    if header is None:
        warnings.append("empty text feed: no header row")
    return fmt, items


# ------------------------------------------------------------------ JSON Lines


def parse_jsonl(body: bytes, url: str, headers: Mapping[str, str] | None, warnings: list[str]) -> list[Item]:
    text = decode_text(body, headers)
    items: list[Item] = []
    bad = 0
    # split on "\n" only: str.splitlines() would also cut at U+2028, legal inside JSON strings
    for number, line in enumerate(text.split("\n"), 1):
        line = line.strip()
        if not line:
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            bad += 1
            if bad <= 5:
                warnings.append(f"line {number}: not valid JSON ({exc.msg})")
            continue
        if not isinstance(data, dict):
            bad += 1
            if bad <= 5:
                warnings.append(f"line {number}: not a JSON object")
            continue
        rec = {normalize_field(str(k)): v for k, v in data.items()}
        items.append(record_item(rec, url))
    if bad > 5:
        warnings.append(f"... {bad} bad lines in all")
    return items
