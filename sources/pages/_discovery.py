"""Feed autodiscovery: ``<link rel="alternate">`` and HTTP ``Link`` headers."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from urllib.parse import urlsplit

from bs4 import BeautifulSoup

from feedcast.kernel.models import FeedLink
from sources._common import absolute_url, clean_text, header

from ._document import base_url, page_soup
from ._dom import attribute, tokens

__all__ = ["discover", "discover_feeds", "is_comments_feed"]


_FEED_TYPES = {
    "application/rss+xml": "rss",
    "application/x-rss+xml": "rss",
    "application/rdf+xml": "rss",
    "application/atom+xml": "atom",
    "application/x-atom+xml": "atom",
    "application/feed+json": "json",
    "application/json+feed": "json",
}
_JSON_FEED_TITLE = re.compile(r"json[\s_-]*feed", re.I)
_JSON_FEED_HREF = re.compile(r"(feed\.json|/feeds?/json\b|jsonfeed|json[-_]?feed|feed[-_/]json)", re.I)
_XML_FEED_HINT = re.compile(r"\b(rss|atom|feeds?)\b", re.I)
_COMMENTS_TITLE = re.compile(r"\b(comments?|kommentare|commentaires|comentarios|commenti)\b", re.I)
_COMMENTS_HREF = re.compile(r"/comments?(/|$|\?)|[?&]feed=comments", re.I)
_LINK_HEADER = re.compile(r"<([^>]*)>((?:\s*;\s*(?:[^;,\"]|\"[^\"]*\")*)*)")
_LINK_PARAM = re.compile(r";\s*([\w*.-]+)\s*=\s*(?:\"([^\"]*)\"|([^;,\s]+))")


def discover_feeds(body: bytes, url: str, headers: Mapping[str, str] | None = None) -> tuple[FeedLink, ...]:
    """The feeds a page advertises, main feeds first, comment feeds last, no duplicates.

    Reads ``<link rel="alternate">`` (any rel token order / case, unquoted
    attributes) and HTTP ``Link`` headers; resolves hrefs against the page URL
    and ``<base href>``. JSON is a feed only when it is a JSON Feed (``type
    application/feed+json``, or ``application/json`` with a title / href saying
    so); the WordPress REST API (``/wp-json/``) and oEmbed alternates are not.
    Never raises.
    """
    try:
        soup = page_soup(body, headers)
        base = base_url(soup, url) if soup is not None else url
        return discover(soup, base, headers)
    except Exception:  # a parser must not take the flow down on hostile input
        return ()


def discover(
    soup: BeautifulSoup | None, base: str, headers: Mapping[str, str] | None
) -> tuple[FeedLink, ...]:
    candidates: list[tuple[str | None, str | None, str | None]] = []  # href, type, title
    if soup is not None:
        for link in soup.find_all("link"):
            rel = {token.lower() for token in tokens(link, "rel")}
            if "alternate" not in rel or "stylesheet" in rel:
                continue
            candidates.append((attribute(link, "href"), attribute(link, "type"), attribute(link, "title")))
    candidates.extend(_link_header_alternates(headers))

    main: list[FeedLink] = []
    comments: list[FeedLink] = []
    seen: set[str] = set()
    for href, mime, title in candidates:
        feed_url = absolute_url(base, href)
        if not feed_url:
            continue
        title = clean_text(title)
        kind = _feed_type(mime, feed_url, title)
        if kind is None or feed_url in seen:
            continue
        seen.add(feed_url)
        feed = FeedLink(url=feed_url, type=kind, title=title)
        (comments if is_comments_feed(feed) else main).append(feed)
    return tuple(main + comments)


def is_comments_feed(feed: FeedLink) -> bool:
    """A feed of a page's comments rather than of its posts (by title or URL)."""
    parts = urlsplit(feed.url)
    return bool(
        (feed.title and _COMMENTS_TITLE.search(feed.title))
        or _COMMENTS_HREF.search(f"{parts.path}?{parts.query}")
    )


def _feed_type(mime: str | None, href: str, title: str | None) -> str | None:
    media = (mime or "").split(";", 1)[0].strip().lower()
    if not media or "oembed" in media:
        return None
    if media in _FEED_TYPES:
        return _FEED_TYPES[media]
    lowered = href.lower()
    if "oembed" in lowered:
        return None
    if media == "application/json":
        if "/wp-json/" in lowered or "rest_route=" in lowered:
            return None  # the WordPress REST API, not a feed
        if (title and _JSON_FEED_TITLE.search(title)) or _JSON_FEED_HREF.search(urlsplit(href).path):
            return "json"
        return None
    if media in {"text/xml", "application/xml"}:
        hint = f"{title or ''} {urlsplit(href).path}"
        if _XML_FEED_HINT.search(hint):
            return "atom" if "atom" in hint.lower() else "rss"
    return None


def _link_header_alternates(
    headers: Mapping[str, str] | None,
) -> Iterator[tuple[str, str | None, str | None]]:
    value = header(headers, "link")
    if not value:
        return
    for match in _LINK_HEADER.finditer(value):
        params: dict[str, str] = {}
        for param in _LINK_PARAM.finditer(match.group(2)):
            params.setdefault(
                param.group(1).lower(), param.group(2) if param.group(2) is not None else param.group(3)
            )
        if "alternate" in params.get("rel", "").lower().split():
            yield match.group(1).strip(), params.get("type"), params.get("title")
