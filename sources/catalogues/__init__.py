"""Product catalogues: recognise and parse the documents shops publish.

Formats (``ParseResult.format``):

``merchant-rss`` / ``merchant-atom``
    Google Merchant (and legacy Google Base) XML feeds with the ``g:`` namespace
    ``http://base.google.com/ns/1.0``; one Item per ``<item>`` / ``<entry>``, so one
    per variant row, grouped by ``group_id`` (``g:item_group_id``).
``merchant-tsv`` / ``merchant-csv``
    Merchant text feeds and generic product CSV exports (Magento...), one Item per row.
``shopify-json``
    Shopify ``/products.json`` (wrapped or a bare array), with variants.
``woocommerce-json``
    WooCommerce Store API product lists (prices in minor units), with variations.
``jsonl``
    JSON Lines, one product per line (Google Cloud Retail schema or simple records).
``product-html``
    A product page with schema.org Product in JSON-LD or microdata.
``sitemap``
    A sitemap urlset (one Item per ``<url>``) or sitemap index (``next_urls``),
    plain or gzip-compressed.

Pure functions: no network, no I/O; messy input gives warnings, never exceptions.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from feedcast.kernel.models import Item, ParseResult, SourceKind
from sources._common import decode_text, header, repair_mojibake
from sources._html import make_soup

from ._base import dedupe_keys
from ._platforms import parse_shopify, parse_woocommerce
from ._product_page import parse_product_page
from ._records import normalize_field, parse_delimited, parse_jsonl, split_header
from ._xml import local_name, parse_merchant_xml, parse_sitemap, parse_xml

__all__ = ["FORMATS", "parse_catalogue", "sniff_catalogue"]

FORMATS = (
    "merchant-rss",
    "merchant-atom",
    "merchant-tsv",
    "merchant-csv",
    "shopify-json",
    "woocommerce-json",
    "jsonl",
    "product-html",
    "sitemap",
)
# names other parts of the project (and the corpus manifest) use for the same formats
_ALIASES = {
    "csv": "merchant-csv",
    "tsv": "merchant-tsv",
    "retail-jsonl": "jsonl",
    "ndjson": "jsonl",
    "jsonld-html": "product-html",
    "microdata-html": "product-html",
    "html": "product-html",
    "shopify": "shopify-json",
    "woocommerce": "woocommerce-json",
    "woo-json": "woocommerce-json",
}

_GZIP_MAGIC = b"\x1f\x8b"
_MAX_UNCOMPRESSED = 64 * 1024 * 1024  # the sitemaps protocol caps files at 50 MB
_SNIFF_BYTES = 16 * 1024
_G_NS = re.compile(rb"https?://base\.google\.com/ns/", re.I)
_FIRST_TAG = re.compile(r"<(?![?!/])([A-Za-z_][\w.\-]*:)?([A-Za-z_][\w.\-]*)")
_JSONFEED = re.compile(r'"version"\s*:\s*"https?://jsonfeed\.org/version/')
_PRODUCT_TYPE = (
    r"(?:[^\"]*[/:])?(?:Product|ProductGroup|IndividualProduct|ProductModel|SomeProducts|Vehicle|Car)\""
)
_JSONLD_PRODUCT = re.compile(r'"@type"\s*:\s*(?:\[[^\]]*?)?"' + _PRODUCT_TYPE)
_MICRODATA_PRODUCT = re.compile(
    r"itemtype\s*=\s*[\"']?[^\"'>]*schema\.org/(?:Product|IndividualProduct|ProductModel|SomeProducts|"
    r"ProductGroup|Vehicle|Car)\b",
    re.I,
)
_JSONLD_BLOCK = re.compile(
    r"<script[^>]*type\s*=\s*[\"']?application/ld\+json[\"']?[^>]*>(.*?)</script\s*>", re.I | re.S
)
# normalised header names that say "this table is a product list"
_PRODUCT_COLUMNS = {
    "price",
    "sale_price",
    "special_price",
    "regular_price",
    "availability",
    "sku",
    "gtin",
    "mpn",
    "image_link",
    "item_group_id",
    "url_key",
    "qty",
    "brand",
    "compare_at_price",
    "variant_price",
}
_ITEM_COLUMNS = {"id", "title", "name", "link", "url", "description", "sku", "product_id", "offer_id"}


# ------------------------------------------------------------------------ sniff


def _gunzip(body: bytes, limit: int, warnings: list[str] | None = None) -> bytes:
    """Decompress a gzip body, at most ``limit`` bytes (gzip bombs stop there)."""
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = decompressor.decompress(body, limit)
    except zlib.error as exc:
        if warnings is not None:
            warnings.append(f"gzip data is corrupt: {exc}")
        return b""
    if warnings is not None:
        if decompressor.unconsumed_tail:
            warnings.append(f"gzip body larger than {limit} bytes uncompressed; truncated")
        elif not decompressor.eof:
            warnings.append("gzip data is truncated")
    return out


def _head(body: bytes, size: int = _SNIFF_BYTES) -> str:
    """The start of a document as text, good enough to look for markers."""
    chunk = body[:size]
    for bom, codec in ((b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if chunk.startswith(bom):
            return chunk[2:].decode(codec, errors="ignore")
    return chunk.decode("utf-8", errors="ignore").lstrip("\ufeff")


def _path(url: str) -> str:
    try:
        return urlsplit(url).path.lower()
    except ValueError:
        return ""


def _sniff_xml(body: bytes, head: str) -> str | None:
    tag = _FIRST_TAG.search(head)
    if tag is None:
        return None
    root = tag.group(2)
    if root in {"urlset", "sitemapindex"}:
        return "sitemap"
    if root in {"rss", "RDF", "feed"}:
        if _G_NS.search(body[: 4 * _SNIFF_BYTES]) or _G_NS.search(head.encode("utf-8", "ignore")):
            return "merchant-atom" if root == "feed" else "merchant-rss"
        return None
    if root.lower() == "html":
        return _sniff_html(body)
    return None


def _sniff_html(body: bytes) -> str | None:
    if b"Product" not in body and b"product" not in body:
        return None
    text = body.decode("utf-8", errors="ignore")
    if _MICRODATA_PRODUCT.search(text):
        return "product-html"
    for block in _JSONLD_BLOCK.finditer(text):
        if _JSONLD_PRODUCT.search(block.group(1)):
            return "product-html"
    return None


def _looks_like_jsonl(body: bytes) -> bool:
    newline = body.find(b"\n", 0, 1024 * 1024)
    first = body[:newline] if newline >= 0 else body
    try:
        data = json.loads(first.decode("utf-8", errors="replace").lstrip("\ufeff"))
    except json.JSONDecodeError:
        return False
    if not isinstance(data, dict) or newline < 0:
        return False
    if not body[newline:].lstrip().startswith(b"{"):
        return False
    keys = {normalize_field(str(k)) for k in data}
    return bool(keys & (_PRODUCT_COLUMNS | {"price_info", "offers"})) and bool(keys & _ITEM_COLUMNS)


def _sniff_json(body: bytes, head: str, url: str, ctype: str) -> str | None:
    path = _path(url)
    stripped = head.lstrip()
    if _JSONFEED.search(head[:4096]):
        return None
    if stripped.startswith("{") and _looks_like_jsonl(body.lstrip()):
        return "jsonl"
    if path.endswith((".jsonl", ".ndjson")) or "ndjson" in ctype or "jsonl" in ctype:
        return "jsonl"
    if "/wp-json/wc/" in path:
        return "woocommerce-json"
    shopify_marks = '"handle"' in head and ('"variants"' in head or '"body_html"' in head)
    woo_marks = '"permalink"' in head and any(
        m in head for m in ('"prices"', '"is_in_stock"', '"short_description"', '"stock_status"')
    )
    if stripped.startswith("{"):
        if re.match(r'\{\s*"products?"\s*:', stripped) and (shopify_marks or path.endswith(".json")):
            return "shopify-json"
        if shopify_marks:
            return "shopify-json"
        return "woocommerce-json" if woo_marks and '"prices"' in head else None
    if shopify_marks:
        return "shopify-json"
    if woo_marks:
        return "woocommerce-json"
    if path.endswith("/products.json") and re.match(r"\[\s*\]", stripped):
        return "shopify-json"
    return None


def _sniff_table(head: str, url: str, ctype: str) -> str | None:
    first = head.split("\n", 1)[0].strip("\r")
    if not first or first.lstrip().startswith(("<", "{", "[")):
        return None
    delimiter = "\t" if "\t" in first else max((",", ";", "|"), key=first.count)
    cells = [split_header(cell)[0] for cell in first.split(delimiter)]
    if len(cells) < 3:
        return None
    names = set(cells)
    product_cols = names & _PRODUCT_COLUMNS
    item_cols = names & _ITEM_COLUMNS
    tabular_hint = "csv" in ctype or "tab-separated" in ctype or _path(url).endswith((".csv", ".tsv", ".txt"))
    if (len(product_cols) >= 1 and len(item_cols) >= 1 and len(product_cols | item_cols) >= 3) or (
        tabular_hint and product_cols and item_cols
    ):
        return "merchant-tsv" if delimiter == "\t" else "merchant-csv"
    return None


def sniff_catalogue(body: bytes, url: str, headers: Mapping[str, str] | None = None) -> str | None:
    """The catalogue format of a document (one of :data:`FORMATS`), or None when it
    is not a catalogue (ordinary feeds, JSON Feeds, pages without a Product).

    Looks at the first few KB, the Content-Type and the URL path; HTML pages are
    searched for Product JSON-LD / microdata with regular expressions."""
    try:
        if body.startswith(_GZIP_MAGIC):
            body = _gunzip(body, 4 * _SNIFF_BYTES)
        head = _head(body)
        stripped = head.lstrip()
        ctype = (header(headers, "content-type") or "").lower()
        if stripped.startswith("<"):
            return _sniff_xml(body, stripped)
        if stripped.startswith(("{", "[")):
            return _sniff_json(body, head, url, ctype)
        if "html" in ctype:
            return _sniff_html(body)
        return _sniff_table(stripped, url, ctype)
    except Exception:  # a sniffer must never break a fetch
        return None


# ------------------------------------------------------------------------ parse


def parse_catalogue(
    body: bytes,
    url: str,
    headers: Mapping[str, str] | None = None,
    format: str | None = None,
) -> ParseResult:
    """Parse a catalogue document into Items (``kind=SourceKind.CATALOGUE``).

    ``format`` forces a format (else :func:`sniff_catalogue` decides). Broken
    input returns whatever could be parsed, with ``warnings``."""
    warnings: list[str] = []
    if body.startswith(_GZIP_MAGIC):
        body = _gunzip(body, _MAX_UNCOMPRESSED, warnings)
    fmt = _ALIASES.get(format, format) if format else None
    if fmt is not None and fmt not in FORMATS:
        warnings.append(f"unknown catalogue format {format!r}; detecting it instead")
        fmt = None
    if fmt is None:
        fmt = sniff_catalogue(body, url, headers)
    if fmt is None:
        warnings.append("not a recognised catalogue format")
        return ParseResult(kind=SourceKind.CATALOGUE, format="unknown", warnings=tuple(warnings))
    try:
        result = _parse(fmt, body, url, headers, warnings)
    except Exception as exc:  # the last line of defence; each parser already tolerates mess
        warnings.append(f"{fmt} parser failed: {type(exc).__name__}: {exc}")
        return ParseResult(kind=SourceKind.CATALOGUE, format=fmt, warnings=tuple(warnings))
    return repair_mojibake(result)


def _parse(
    fmt: str, body: bytes, url: str, headers: Mapping[str, str] | None, warnings: list[str]
) -> ParseResult:
    items: list[Item] = []
    title: str | None = None
    link: str | None = None
    next_urls: tuple[str, ...] = ()
    if fmt in {"merchant-rss", "merchant-atom", "sitemap"}:
        root = parse_xml(body, warnings)
        if root is not None:
            if fmt == "sitemap":
                if local_name(root) not in {"urlset", "sitemapindex"}:
                    warnings.append(f"root element <{local_name(root)}> is not a sitemap")
                items, next_urls = parse_sitemap(root, url, warnings)
            else:
                fmt, items, title, link = parse_merchant_xml(root, url, warnings)
    elif fmt in {"merchant-tsv", "merchant-csv"}:
        fmt, items = parse_delimited(body, url, headers, warnings)
    elif fmt == "jsonl":
        items = parse_jsonl(body, url, headers, warnings)
    elif fmt in {"shopify-json", "woocommerce-json"}:
        data = _load_json(body, headers, warnings)
        if data is not None:
            if fmt == "shopify-json":
                items, link, next_urls = parse_shopify(data, url, warnings)
            else:
                items, link, next_urls = parse_woocommerce(data, url, headers, warnings)
    else:  # product-html
        items, title, link = parse_product_page(make_soup(body, headers), url, warnings)
    items = dedupe_keys(items, warnings)
    return ParseResult.gathered(
        SourceKind.CATALOGUE, fmt, items, warnings, title=title, link=link, next_urls=next_urls
    )


def _load_json(body: bytes, headers: Mapping[str, str] | None, warnings: list[str]) -> Any:
    text = decode_text(body, headers)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        warnings.append(f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")
    except RecursionError:
        warnings.append("JSON nested too deeply")
    return None
