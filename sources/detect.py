"""Which parser a document needs: ``--kind auto`` looks at Content-Type and body."""

from __future__ import annotations

from collections.abc import Mapping

from feedcast.kernel.models import ParseResult, SourceKind
from sources import catalogues, feeds, pages
from sources._common import header

__all__ = ["detect", "parse_document"]


def _head(body: bytes) -> bytes:
    return body[:4096].lstrip(b"\xef\xbb\xbf\xff\xfe\r\n\t ").lower()


def detect(body: bytes, url: str, headers: Mapping[str, str] | None = None) -> tuple[SourceKind, str | None]:
    """``(kind, catalogue format)`` of a document; the format is None for feeds and pages."""
    fmt = catalogues.sniff_catalogue(body, url, headers)
    if fmt is not None:
        return SourceKind.CATALOGUE, fmt
    head = _head(body)
    ctype = (header(headers, "content-type") or "").lower()
    if head.startswith((b"{", b"[")):
        return SourceKind.FEED, None  # a JSON Feed (catalogue JSON was sniffed above)
    if b"<rss" in head or b"<feed" in head or b"<rdf:rdf" in head or b"<channel" in head:
        return SourceKind.FEED, None
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head or "html" in ctype:
        return SourceKind.PAGE, None
    if "xml" in ctype or head.startswith(b"<?xml"):
        return SourceKind.FEED, None
    return SourceKind.FEED, None


def parse_document(
    body: bytes,
    url: str,
    headers: Mapping[str, str] | None = None,
    *,
    kind: str | None = None,
    format: str | None = None,
    selectors: Mapping[str, str] | None = None,
) -> ParseResult:
    """Parse with the parser for ``kind`` (detected when None). Never raises on bad input."""
    if kind is None or kind == "auto":
        detected, fmt = detect(body, url, headers)
        kind, format = detected.value, format or fmt
    if kind == SourceKind.CATALOGUE:
        return catalogues.parse_catalogue(body, url, headers, format)
    if kind == SourceKind.PAGE:
        page_selectors = pages.PageSelectors.from_mapping(selectors) if selectors else None
        return pages.parse_page(body, url, headers, page_selectors)
    return feeds.parse_feed(body, url, headers)
