"""The page as parsed: its soup, base URL, metadata, canonical URL."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urldefrag, urlsplit

from bs4 import BeautifulSoup, Tag

from sources._common import absolute_url, clean_text, first_text_in
from sources._html import make_soup

from ._dom import attribute, tokens

__all__ = ["Page", "base_url", "is_root", "norm_url", "page_soup"]


_XML_DECL = re.compile(rb"^(\xef\xbb\xbf)?\s*<\?xml[^>]*\?>", re.I)
_FEED_ROOT = re.compile(rb"^\s*(<!--.*?-->\s*)*<(rss|feed|rdf:rdf)\b", re.I | re.S)


def page_soup(
    body: bytes, headers: Mapping[str, str] | None, warnings: list[str] | None = None
) -> BeautifulSoup | None:
    """The page's soup, or None when the bytes hold no markup at all."""
    if not body or b"<" not in body:
        return None
    if warnings is not None and _FEED_ROOT.match(_XML_DECL.sub(b"", body[:4096], count=1)):
        warnings.append("the document looks like a feed (XML), not an HTML page")
    # an XML declaration makes BeautifulSoup warn about XML parsed as HTML (XHTML pages)
    match = _XML_DECL.match(body)
    if match:
        body = (match.group(1) or b"") + body[match.end() :]
    return make_soup(body, headers)


def base_url(soup: BeautifulSoup, url: str) -> str:
    base_tag = soup.find("base", href=True)
    if isinstance(base_tag, Tag):
        resolved = absolute_url(url or None, attribute(base_tag, "href"))
        if resolved:
            return resolved
    return url


class Page:
    """A parsed page with the lookups the strategies share."""

    def __init__(self, soup: BeautifulSoup, url: str, base: str) -> None:
        self.soup = soup
        self.url = url
        self.base = base or url
        self._meta: dict[str, list[str]] = {}
        for tag in soup.find_all("meta"):
            content = attribute(tag, "content")
            if content is None:
                continue
            for attr in ("property", "name", "itemprop"):
                key = attribute(tag, attr)
                if key:
                    self._meta.setdefault(key.strip().lower(), []).append(content)
        canonical = None
        for tag in soup.find_all("link", href=True):
            if isinstance(tag, Tag) and "canonical" in {t.lower() for t in tokens(tag, "rel")}:
                canonical = absolute_url(self.base, attribute(tag, "href"))
                if canonical:
                    break
        self.canonical = canonical
        self._self_urls = {norm_url(u) for u in (url, canonical, self.meta("og:url")) if u}

    def meta(self, *names: str) -> str | None:
        return first_text_in(self._meta, names, clean_text)

    def meta_all(self, name: str) -> list[str]:
        return [text for value in self._meta.get(name, ()) if (text := clean_text(value))]

    def resolve(self, href: object) -> str | None:
        return absolute_url(self.base, href)

    def is_self_or_home(self, url: str) -> bool:
        return norm_url(url) in self._self_urls or is_root(url)


def norm_url(url: str) -> str:
    """A URL without fragment and trailing slash, for "same page" comparisons."""
    return urldefrag(url.strip()).url.rstrip("/")


def is_root(url: str) -> bool:
    parts = urlsplit(url)
    path = parts.path.lower()
    return not parts.query and (
        path in {"", "/"} or re.fullmatch(r"/(index|default|home)\.\w+", path) is not None
    )
