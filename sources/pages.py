"""Web pages as a source: feed autodiscovery and items scraped from the page itself.

Pure functions over bytes, no I/O::

    result = parse_page(body, "https://example.com/blog/")
    result.feeds   # feeds the page advertises (<link rel="alternate">, Link header)
    result.items   # posts found on the page

Items come from the first strategy that finds any, in this order:

1. ``selectors`` (:class:`PageSelectors`) when given -- ``format="selectors"``;
   when they match nothing a warning says so and the automatic strategies run;
2. JSON-LD ``Article`` / ``BlogPosting`` / ``NewsArticle`` (and the other article
   types), ``Blog.blogPost`` and ``ItemList`` -- ``"jsonld"``;
3. ``<article>`` elements with a heading link -- ``"articles"``;
4. heading links (``h1``-``h3`` > ``a[href]``) of the main content, only on pages
   without ``<article>`` elements -- ``"headings"``;
5. for a single article page, one item from OpenGraph / ``<meta>`` / microdata --
   ``"opengraph"``.

Nothing found gives ``format="html"``, no items and a warning. Links inside
navigation, headers, footers, sidebars and comment areas are skipped, and so are
links back to the page itself or to the site's home page.

A page counts as a single article page when its URL is not a site root and it
says so (``og:type`` article, ``article:published_time``, microdata
``datePublished``) or has exactly one ``<article>`` without a heading link, or
an ``<article>`` whose ``h1`` is not a link (the page's own post; sibling
``<article>`` cards are then "related posts" and do not win over it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urldefrag, urlsplit

import soupsieve
from bs4 import BeautifulSoup, Tag

from feedcast.kernel.models import FeedLink, Item, ParseResult, SourceKind
from sources._common import absolute_url, clean_text, header, item_key, parse_datetime, repair_mojibake
from sources._html import jsonld_objects, make_soup, schema_types

__all__ = ["PageSelectors", "discover_feeds", "is_comments_feed", "parse_page"]


# --------------------------------------------------------------------------- selectors


@dataclass(frozen=True, slots=True)
class PageSelectors:
    """CSS selectors describing the items of a page (soupsieve syntax).

    ``item`` selects each item container; the others are relative to it.
    Defaults: ``title`` = the container's first heading, else the link text;
    ``link`` = the first ``a[href]`` (or the container itself when it is a link);
    no summary / image / date unless selected.
    """

    item: str
    title: str | None = None
    link: str | None = None
    summary: str | None = None
    image: str | None = None
    date: str | None = None

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if value is None and spec.name != "item":
                continue
            _check_selector(spec.name, value)

    @classmethod
    def from_mapping(cls, data: Mapping[str, str]) -> PageSelectors:
        """Build from configuration (``{"item": "div.post", "title": "h2"}``).

        Raises ValueError with a one-line message naming the bad key or selector.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"page selectors must be a mapping, not {type(data).__name__}")
        known = [spec.name for spec in fields(cls)]
        for key in data:
            if key not in known:
                raise ValueError(f"unknown page selector key {key!r} (expected one of: {', '.join(known)})")
        if "item" not in data or data["item"] is None:
            raise ValueError("page selectors need an 'item' selector (the CSS selector of each item)")
        values = {key: data[key] for key in known if data.get(key) is not None}
        return cls(**values)


def _check_selector(name: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"page selector {name!r} must be a non-empty CSS selector string, got {value!r}")
    try:
        soupsieve.compile(value)
    except soupsieve.SelectorSyntaxError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"invalid CSS selector for page selector {name!r}: {value!r} ({reason})") from None
    except Exception as exc:  # soupsieve raises a few other types on odd input
        raise ValueError(f"invalid CSS selector for page selector {name!r}: {value!r} ({exc})") from None


# --------------------------------------------------------------------------- feeds

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
        soup = _soup(body, headers)
        base = _base_url(soup, url) if soup is not None else url
        return _discover(soup, base, headers)
    except Exception:  # a parser must not take the flow down on hostile input
        return ()


def _discover(
    soup: BeautifulSoup | None, base: str, headers: Mapping[str, str] | None
) -> tuple[FeedLink, ...]:
    candidates: list[tuple[str | None, str | None, str | None]] = []  # href, type, title
    if soup is not None:
        for link in soup.find_all("link"):
            rel = {token.lower() for token in _tokens(link, "rel")}
            if "alternate" not in rel or "stylesheet" in rel:
                continue
            candidates.append((_attr(link, "href"), _attr(link, "type"), _attr(link, "title")))
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


# --------------------------------------------------------------------------- page

_HEADINGS = ("h1", "h2", "h3")
_CHROME_TAGS = {"nav", "footer", "aside"}
_CHROME_ROLES = {"navigation", "banner", "contentinfo", "complementary", "search", "menu", "menubar"}
_CHROME_TOKENS = {
    "nav",
    "navbar",
    "navigation",
    "menu",
    "header",
    "site-header",
    "masthead",
    "footer",
    "site-footer",
    "sidebar",
    "side-bar",
    "widget",
    "widget-area",
    "breadcrumb",
    "breadcrumbs",
    "comments",
    "comments-area",
    "comment-respond",
}
_ARTICLE_TYPES = {
    "Article",
    "BlogPosting",
    "NewsArticle",
    "AnalysisNewsArticle",
    "AskPublicNewsArticle",
    "BackgroundNewsArticle",
    "OpinionNewsArticle",
    "ReportageNewsArticle",
    "ReviewNewsArticle",
    "SatiricalArticle",
    "ScholarlyArticle",
    "TechArticle",
    "Report",
    "LiveBlogPosting",
    "SocialMediaPosting",
    "DiscussionForumPosting",
}
_IGNORED_TYPES = {"Organization", "WebSite", "BreadcrumbList", "SiteNavigationElement", "SearchAction"}
_EXCERPT_CLASS = re.compile(r"(^|[-_])(excerpt|summary|dek|teaser|standfirst|lede|description)([-_]|$)", re.I)
_DATE_CLASS = re.compile(r"date|published|posted|timestamp", re.I)
_AUTHOR_CLASS = re.compile(r"author|byline", re.I)
_XML_DECL = re.compile(rb"^(\xef\xbb\xbf)?\s*<\?xml[^>]*\?>", re.I)
_FEED_ROOT = re.compile(rb"^\s*(<!--.*?-->\s*)*<(rss|feed|rdf:rdf)\b", re.I | re.S)


def parse_page(
    body: bytes,
    url: str,
    headers: Mapping[str, str] | None = None,
    selectors: PageSelectors | None = None,
) -> ParseResult:
    """Items and advertised feeds of one HTML page. Never raises on messy input."""
    warnings: list[str] = []
    try:
        soup = _soup(body, headers, warnings)
    except Exception as exc:  # lxml / decoding surprises on hostile bytes
        soup = None
        warnings.append(f"could not parse the HTML: {type(exc).__name__}: {exc}")
    if soup is None:
        warnings.append("no items found: the document is not HTML")
        return ParseResult(kind=SourceKind.PAGE, format="html", link=url or None, warnings=tuple(warnings))
    base = url
    feeds: tuple[FeedLink, ...] = ()
    try:
        base = _base_url(soup, url)
        feeds = _discover(soup, base, headers)
    except Exception as exc:
        warnings.append(f"feed autodiscovery failed: {type(exc).__name__}: {exc}")
    title = link = None
    fmt: str = "html"
    items: list[Item] = []
    try:
        page = _Page(soup, url, base)
        title = clean_text(_text(soup.title)) or page.meta("og:title")
        link = page.canonical or url or None
        fmt, items = _extract(page, selectors, warnings)
    except Exception as exc:
        warnings.append(f"item extraction failed: {type(exc).__name__}: {exc}")
    if not items:
        fmt = "html"
        warnings.append(
            "no items found on the page (no JSON-LD articles, <article>s, heading links "
            "or single-article metadata); configure selectors or use one of its feeds"
        )
    return repair_mojibake(
        ParseResult(
            kind=SourceKind.PAGE,
            format=fmt,
            items=tuple(items),
            title=title,
            link=link,
            warnings=tuple(warnings),
            feeds=feeds,
        )
    )


def _soup(
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


def _base_url(soup: BeautifulSoup, url: str) -> str:
    base_tag = soup.find("base", href=True)
    if isinstance(base_tag, Tag):
        resolved = absolute_url(url or None, _attr(base_tag, "href"))
        if resolved:
            return resolved
    return url


class _Page:
    """A parsed page with the lookups the strategies share."""

    def __init__(self, soup: BeautifulSoup, url: str, base: str) -> None:
        self.soup = soup
        self.url = url
        self.base = base or url
        self._meta: dict[str, list[str]] = {}
        for tag in soup.find_all("meta"):
            content = _attr(tag, "content")
            if content is None:
                continue
            for attr in ("property", "name", "itemprop"):
                key = _attr(tag, attr)
                if key:
                    self._meta.setdefault(key.strip().lower(), []).append(content)
        canonical = None
        for tag in soup.find_all("link", href=True):
            if isinstance(tag, Tag) and "canonical" in {t.lower() for t in _tokens(tag, "rel")}:
                canonical = absolute_url(self.base, _attr(tag, "href"))
                if canonical:
                    break
        self.canonical = canonical
        self._self_urls = {_norm(u) for u in (url, canonical, self.meta("og:url")) if u}

    def meta(self, *names: str) -> str | None:
        for name in names:
            for value in self._meta.get(name, ()):
                text = clean_text(value)
                if text:
                    return text
        return None

    def meta_all(self, name: str) -> list[str]:
        return [text for value in self._meta.get(name, ()) if (text := clean_text(value))]

    def resolve(self, href: object) -> str | None:
        return absolute_url(self.base, href)

    def is_self_or_home(self, url: str) -> bool:
        return _norm(url) in self._self_urls or _is_root(url)


def _extract(page: _Page, selectors: PageSelectors | None, warnings: list[str]) -> tuple[str, list[Item]]:
    if selectors is not None:
        items = _dedupe(_selector_items(page, selectors))
        if items:
            return "selectors", items
        warnings.append(f"page selectors matched no items (item selector {selectors.item!r})")

    items = _dedupe(_jsonld_items(page, warnings))
    if items:
        return "jsonld", items

    articles = [a for a in page.soup.find_all("article") if isinstance(a, Tag) and not _in_chrome(a)]
    single = _single_article_signals(page, articles)
    items = _dedupe(_article_items(page, articles))
    if items and not single.own_post:
        return "articles", items
    if single.is_single:
        og = _opengraph_item(page, single.article)
        if og is not None:
            return "opengraph", [og]
    if items:
        return "articles", items
    if not articles:
        items = _dedupe(_heading_items(page))
        if items:
            return "headings", items
    return "html", []


def _dedupe(items: Iterable[Item]) -> list[Item]:
    seen: set[str] = set()
    out: list[Item] = []
    for item in items:
        ident = _norm(item.url) if item.url else item.key
        if ident in seen:
            continue
        seen.add(ident)
        out.append(item)
    return out


# --------------------------------------------------------------------------- (1) selectors


def _selector_items(page: _Page, sel: PageSelectors) -> Iterator[Item]:
    for container in page.soup.select(sel.item):
        link_el = _select_link(container, sel.link)
        url = page.resolve(_attr(link_el, "href")) if link_el is not None else None
        title: str | None = None
        if sel.title:
            title_el = container.select_one(sel.title)
            title = _value_text(title_el) if title_el is not None else None
        else:
            heading = container.find(["h1", "h2", "h3", "h4", "h5", "h6"])
            title = clean_text(_text(heading)) if isinstance(heading, Tag) else None
            if not title and link_el is not None:
                title = clean_text(_text(link_el))
        summary = None
        if sel.summary:
            summary_el = container.select_one(sel.summary)
            summary = _value_text(summary_el) if summary_el is not None else None
        image = None
        if sel.image:
            image_el = container.select_one(sel.image)
            image = _image_of(image_el, page) if image_el is not None else None
        published = None
        if sel.date:
            date_el = container.select_one(sel.date)
            published = _date_of(date_el) if date_el is not None else None
        if not url and not title:
            continue
        yield Item(
            key=item_key(None, url, title, summary),
            title=title,
            url=url,
            summary=summary,
            image=image,
            published=published,
        )


def _select_link(container: Tag, selector: str | None) -> Tag | None:
    if selector is None:
        if container.name == "a" and container.has_attr("href"):
            return container
        found = container.find("a", href=True)
        return found if isinstance(found, Tag) else None
    target = container.select_one(selector)
    if target is None:
        return None
    if target.has_attr("href"):
        return target
    inner = target.find("a", href=True)
    if isinstance(inner, Tag):
        return inner
    outer = target.find_parent("a", href=True)
    return outer if isinstance(outer, Tag) else None


def _value_text(tag: Tag) -> str | None:
    if tag.name == "meta":
        return clean_text(_attr(tag, "content"))
    return clean_text(_text(tag)) or clean_text(_attr(tag, "content")) or clean_text(_attr(tag, "title"))


def _image_of(tag: Tag, page: _Page) -> str | None:
    img = tag if tag.name in {"img", "source", "meta", "picture"} else tag.find("img")
    if isinstance(img, Tag):
        if img.name == "meta":
            return page.resolve(_attr(img, "content"))
        if img.name == "picture":
            inner = img.find("img")
            if isinstance(inner, Tag):
                img = inner
        found = _img_src(img, page)
        if found:
            return found
    for attr in ("href", "content", "data-src", "data-bg"):
        found = page.resolve(_attr(tag, attr))
        if found:
            return found
    style = _attr(tag, "style") or ""
    match = re.search(r"url\(\s*['\"]?([^'\")]+)", style)
    return page.resolve(match.group(1)) if match else None


def _date_of(tag: Tag) -> datetime | None:
    for attr in ("datetime", "content", "title", "data-date", "data-timestamp"):
        found = _loose_date(_attr(tag, attr))
        if found:
            return found
    inner = tag.find("time", datetime=True)
    if isinstance(inner, Tag):
        found = _loose_date(_attr(inner, "datetime"))
        if found:
            return found
    return _loose_date(_text(tag))


# --------------------------------------------------------------------------- (2) JSON-LD


def _jsonld_items(page: _Page, warnings: list[str]) -> Iterator[Item]:
    objects = jsonld_objects(page.soup, warnings)
    articles = [o for o in objects if schema_types(o) & _ARTICLE_TYPES]
    lone_article = len(articles) == 1
    for obj in objects:
        yield from _ld_items(page, obj, lone_article, depth=0)


def _ld_items(page: _Page, obj: Mapping[str, Any], lone: bool, depth: int) -> Iterator[Item]:
    if depth > 4:
        return
    types = schema_types(obj)
    if types & _IGNORED_TYPES and not types & _ARTICLE_TYPES:
        return
    if types & _ARTICLE_TYPES:
        item = _ld_article(page, obj, fallback_url=lone and depth == 0)
        if item is not None:
            yield item
    elif "ItemList" in types or "itemListElement" in obj:
        for element in _ld_list_elements(obj):
            if isinstance(element, Mapping) and (schema_types(element) & {"ItemList", "Blog"}):
                yield from _ld_items(page, element, False, depth + 1)
                continue
            item = _ld_article(page, element, fallback_url=False) if isinstance(element, Mapping) else None
            if item is not None and item.url:  # a list entry without a link is no campaign item
                yield item
    elif "Blog" in types:
        for post in _as_list(obj.get("blogPost") or obj.get("blogPosts")):
            if isinstance(post, Mapping):
                item = _ld_article(page, post, fallback_url=False)
                if item is not None:
                    yield item
    elif types & {"WebPage", "CollectionPage", "ItemPage"}:
        for key in ("mainEntity", "hasPart"):
            for part in _as_list(obj.get(key)):
                if isinstance(part, Mapping):
                    yield from _ld_items(page, part, lone, depth + 1)


def _ld_list_elements(obj: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    elements = _as_list(obj.get("itemListElement"))
    positioned = [e for e in elements if isinstance(e, Mapping) and _int(e.get("position")) is not None]
    if len(positioned) == len(elements):
        elements = sorted(elements, key=lambda e: _int(e.get("position")) or 0)
    for element in elements:
        if isinstance(element, str):
            yield {"url": element}
        elif isinstance(element, Mapping):
            if "ListItem" in schema_types(element):
                inner = element.get("item")
                if isinstance(inner, Mapping):
                    merged = dict(inner)
                    for key in ("url", "name", "image", "description"):
                        if key not in merged and key in element:
                            merged[key] = element[key]
                    yield merged
                    continue
                if isinstance(inner, str):
                    merged = {k: v for k, v in element.items() if k != "item"}
                    merged.setdefault("url", inner)
                    yield merged
                    continue
            yield element


def _ld_article(page: _Page, obj: Mapping[str, Any], fallback_url: bool) -> Item | None:
    url = None
    for key in ("url", "mainEntityOfPage", "@id"):
        candidate = page.resolve(_ld_url(obj.get(key)))
        if candidate:
            url = urldefrag(candidate).url if key == "@id" else candidate
            break
    if url is None and fallback_url:
        url = page.canonical or page.resolve(page.url)
    title = (
        _ld_text(obj.get("headline")) or _ld_text(obj.get("name")) or _ld_text(obj.get("alternativeHeadline"))
    )
    if not url and not title:
        return None
    summary = _ld_text(obj.get("description")) or _ld_text(obj.get("abstract"))
    content = _ld_text(obj.get("articleBody"))
    image = page.resolve(_ld_image(obj.get("image") or obj.get("thumbnailUrl")))
    keywords = obj.get("keywords")
    tags: list[str] = []
    if isinstance(keywords, str):
        tags = [t.strip() for t in keywords.split(",") if t.strip()]
    elif isinstance(keywords, list):
        tags = [t for k in keywords if (t := _ld_text(k))]
    return Item(
        key=item_key(None, url, title, summary),
        title=title,
        url=url,
        summary=summary,
        content=content,
        image=image,
        author=_ld_author(obj.get("author") or obj.get("creator")),
        published=parse_datetime(_ld_text(obj.get("datePublished")) or _ld_text(obj.get("dateCreated"))),
        updated=parse_datetime(_ld_text(obj.get("dateModified"))),
        tags=tuple(dict.fromkeys(tags)),
    )


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _ld_text(value: Any) -> str | None:
    for entry in _as_list(value):
        if isinstance(entry, str | int | float) and not isinstance(entry, bool):
            text = clean_text(entry)
        elif isinstance(entry, Mapping):
            text = _ld_text(entry.get("@value") or entry.get("name"))
        else:
            text = None
        if text:
            return text
    return None


def _ld_url(value: Any) -> str | None:
    for entry in _as_list(value):
        if isinstance(entry, str) and entry.strip():
            return entry.strip()
        if isinstance(entry, Mapping):
            found = _ld_url(entry.get("url")) or _ld_url(entry.get("@id"))
            if found:
                return found
    return None


def _ld_image(value: Any) -> str | None:
    for entry in _as_list(value):
        if isinstance(entry, str) and entry.strip():
            return entry.strip()
        if isinstance(entry, Mapping):
            found = _ld_image(entry.get("url") or entry.get("contentUrl"))
            if found:
                return found
    return None


def _ld_author(value: Any) -> str | None:
    names = []
    for entry in _as_list(value):
        name = (
            clean_text(entry)
            if isinstance(entry, str)
            else _ld_text(entry.get("name"))
            if isinstance(entry, Mapping)
            else None
        )
        if name and not _is_url(name):
            names.append(name)
    return ", ".join(dict.fromkeys(names)) or None


# --------------------------------------------------------------------------- (3) articles


def _article_items(page: _Page, articles: list[Tag]) -> Iterator[Item]:
    for article in articles:
        found = _heading_link(article, page)
        if found is None:
            continue
        heading, link, url = found
        title = clean_text(_text(heading)) or clean_text(_text(link))
        yield _card_item(page, article, heading, url, title)


def _heading_link(container: Tag, page: _Page) -> tuple[Tag, Tag, str] | None:
    for heading in container.find_all(_HEADINGS):
        link = heading.find("a", href=True)
        if not isinstance(link, Tag):
            parent = heading.find_parent("a", href=True)
            link = parent if isinstance(parent, Tag) and container in parent.parents else None
        if link is None:
            continue
        url = page.resolve(_attr(link, "href"))
        if url and not page.is_self_or_home(url):
            return heading, link, url
    return None


def _card_item(page: _Page, card: Tag, heading: Tag | None, url: str, title: str | None) -> Item:
    summary = _summary(card, heading)
    published, updated = _card_dates(card)
    return Item(
        key=item_key(None, url, title, summary),
        title=title,
        url=url,
        summary=summary,
        image=_card_image(card, page),
        author=_card_author(card),
        published=published,
        updated=updated,
        tags=_card_tags(card),
    )


def _summary(card: Tag, heading: Tag | None) -> str | None:
    for tag in card.find_all(class_=_EXCERPT_CLASS):
        if isinstance(tag, Tag) and tag.name not in {"time", "meta", "img"} and not _is_inside(tag, heading):
            text = clean_text(_text(tag, " "))
            if text and len(text) > 20:
                return text
    for para in card.find_all("p"):
        if _is_inside(para, heading) or _in_card_chrome(para, card):
            continue
        text = clean_text(_text(para))
        if text and _loose_date(text) is None:  # a paragraph holding only a date is not a summary
            return text
    return None


def _card_image(card: Tag, page: _Page) -> str | None:
    for img in card.find_all("img"):
        if _attr(img, "width") in {"0", "1"} or _attr(img, "height") in {"0", "1"}:
            continue
        if _is_decoration(img, card):
            continue
        found = _img_src(img, page)
        if found and not _AVATAR.search(found):
            return found
    return None


_AVATAR = re.compile(r"avatar|gravatar\.com|emoji|/smilies/|spacer\.gif|pixel\.gif", re.I)


def _is_decoration(img: Tag, card: Tag) -> bool:
    """Avatars, emoji, icons and images in the card's footer / author box."""
    if _AVATAR.search(" ".join(_tokens(img, "class"))) or _AVATAR.search(_attr(img, "src") or ""):
        return True
    for ancestor in img.parents:
        if ancestor is card:
            return False
        if ancestor.name in {"footer", "nav", "aside"}:
            return True
        classes = " ".join(_tokens(ancestor, "class"))
        if _AVATAR.search(classes) or _AUTHOR_CLASS.search(classes):
            return True
    return False


def _img_src(img: Tag, page: _Page) -> str | None:
    """The best URL of an <img>: largest srcset candidate, lazy-loading attributes,
    src, then the <source>s of its <picture> (often AVIF / WebP, which not every
    channel renders, hence last)."""
    candidates: list[str | None] = [_best_srcset(_attr(img, "data-srcset") or _attr(img, "srcset"))]
    candidates.extend(_attr(img, name) for name in ("data-src", "data-lazy-src", "data-original", "src"))
    # lxml does not know <source> is void: the <img> may end up inside it
    picture = img.find_parent("picture")
    if picture is not None:
        for source in picture.find_all("source"):
            candidates.append(_best_srcset(_attr(source, "srcset") or _attr(source, "data-srcset")))
    for candidate in candidates:
        found = page.resolve(candidate)
        if found:
            return found
    return None


_SRCSET_ENTRY = re.compile(r"\s*([^\s,][^\s]*?)(?:\s+([\d.]+)([wxh]))?\s*(?:,|$)")


def _best_srcset(srcset: str | None) -> str | None:
    """The largest candidate of a ``srcset`` (by width, else density)."""
    if not srcset:
        return None
    best: tuple[float, str] | None = None
    for match in _SRCSET_ENTRY.finditer(srcset):
        candidate = match.group(1).rstrip(",")
        if not candidate:
            continue
        try:
            size = float(match.group(2)) if match.group(2) else 1.0
        except ValueError:
            size = 1.0
        if best is None or size > best[0]:
            best = (size, candidate)
    return best[1] if best else None


def _card_dates(card: Tag) -> tuple[datetime | None, datetime | None]:
    published = updated = None
    for tag in card.find_all(itemprop=True):
        prop = (_attr(tag, "itemprop") or "").split()
        if "datePublished" in prop and published is None:
            published = _date_of(tag)
        elif "dateModified" in prop and updated is None:
            updated = _date_of(tag)
    for time in card.find_all("time"):
        classes = {c.lower() for c in _tokens(time, "class")}
        value = _date_of(time)
        if value is None:
            continue
        if "updated" in classes and "published" not in classes:
            updated = updated or value
        elif published is None:
            published = value
    if published is None:
        for tag in card.find_all(["abbr", "span", "div", "p", "h4", "h5", "h6"], class_=_DATE_CLASS, limit=5):
            if isinstance(tag, Tag):
                published = _date_of(tag)
                if published:
                    break
    return published, updated


def _card_author(card: Tag) -> str | None:
    candidates: list[Tag] = []
    for tag in card.find_all(["a", "link"], rel=True):
        if isinstance(tag, Tag) and "author" in _tokens(tag, "rel"):
            candidates.append(tag)
    for tag in card.find_all(itemprop="author"):
        if isinstance(tag, Tag):
            name = tag.find(itemprop="name")
            candidates.append(name if isinstance(name, Tag) else tag)
    candidates.extend(t for t in card.find_all(class_=_AUTHOR_CLASS, limit=3) if isinstance(t, Tag))
    for tag in candidates:
        text = _value_text(tag)
        if text:
            text = re.sub(r"^(by|von|par|por)\s+", "", text, flags=re.I).strip()
            if text and len(text) <= 80:
                return text
    return None


def _card_tags(card: Tag) -> tuple[str, ...]:
    tags: list[str] = []
    for link in card.find_all("a", href=True):
        if isinstance(link, Tag) and ("tag" in _tokens(link, "rel") or "tag" in _tokens(link, "class")):
            text = clean_text(_text(link))
            if text:
                tags.append(text)
    return tuple(dict.fromkeys(tags))


# --------------------------------------------------------------------------- (4) headings


def _heading_items(page: _Page) -> Iterator[Item]:
    root = _main_content(page.soup)
    found: list[tuple[Tag, Tag, str]] = []
    for heading in root.find_all(_HEADINGS):
        if not isinstance(heading, Tag) or _in_chrome(heading, root):
            continue
        link = heading.find("a", href=True)
        if not isinstance(link, Tag):
            continue
        url = page.resolve(_attr(link, "href"))
        if url and not page.is_self_or_home(url):
            found.append((heading, link, url))
    # each heading's card: its highest ancestor holding no other heading link
    counts: dict[int, int] = {}
    for heading, _link, _url in found:
        for ancestor in heading.parents:
            counts[id(ancestor)] = counts.get(id(ancestor), 0) + 1
            if ancestor is root:
                break
    for heading, link, url in found:
        card: Tag = heading
        for ancestor in heading.parents:
            if (
                ancestor is root
                or ancestor.name in {"body", "html", "main"}
                or counts.get(id(ancestor), 0) != 1
            ):
                break
            card = ancestor
        title = clean_text(_text(link)) or clean_text(_text(heading))
        yield _card_item(page, card, heading, url, title)


def _main_content(soup: BeautifulSoup) -> Tag:
    for candidate in (soup.find("main"), soup.find(role="main"), soup.body):
        if isinstance(candidate, Tag):
            return candidate
    return soup


# --------------------------------------------------------------------------- (5) single article


@dataclass(frozen=True, slots=True)
class _Single:
    is_single: bool
    own_post: bool  # an <article> whose h1 is not a link: the page's own post
    article: Tag | None


def _single_article_signals(page: _Page, articles: list[Tag]) -> _Single:
    own: Tag | None = None
    for article in articles:
        h1 = article.find("h1")
        if isinstance(h1, Tag):
            link = h1.find("a", href=True) or h1.find_parent("a", href=True)
            href = page.resolve(_attr(link, "href")) if isinstance(link, Tag) else None
            if href is None or page.is_self_or_home(href):
                own = article
                break
    lone = articles[0] if len(articles) == 1 and _heading_link(articles[0], page) is None else None
    og_type = (page.meta("og:type") or "").lower()
    declared = (
        og_type.startswith("article")
        or og_type in {"blog", "blogposting", "news"}
        or page.meta("article:published_time") is not None
        or page.soup.find(itemprop="datePublished") is not None
    )
    url = page.canonical or page.meta("og:url") or page.url
    if _is_root(page.resolve(url) or url):
        return _Single(False, False, None)
    is_single = declared or own is not None or lone is not None
    return _Single(is_single, own is not None and declared, own or lone)


def _opengraph_item(page: _Page, article: Tag | None) -> Item | None:
    url = page.canonical or page.resolve(page.meta("og:url")) or page.resolve(page.url)
    heading = article.find("h1") if article is not None else None
    title = (
        page.meta("og:title", "twitter:title")
        or (clean_text(_text(heading)) if isinstance(heading, Tag) else None)
        or page.meta("headline", "dc.title")
        or clean_text(_text(page.soup.title))
    )
    if not url and not title:
        return None
    summary = page.meta("og:description", "description", "twitter:description", "dc.description")
    image = page.resolve(
        page.meta("og:image:secure_url", "og:image", "og:image:url", "twitter:image", "image")
    )
    published = _loose_date(
        page.meta("article:published_time", "datepublished", "date", "dc.date", "pubdate", "publish-date")
    )
    updated = _loose_date(page.meta("article:modified_time", "og:updated_time", "datemodified"))
    card_published = card_updated = None
    if published is None or updated is None:
        scope = article if article is not None else page.soup
        card_published, card_updated = _card_dates(scope)
    author = next(
        (a for a in page.meta_all("author") + page.meta_all("article:author") if not _is_url(a)), None
    )
    if author is None and article is not None:
        author = _card_author(article)
    author = author or page.meta("dc.creator", "twitter:creator")
    tags = tuple(dict.fromkeys(page.meta_all("article:tag")))
    if not tags and article is not None:
        tags = _card_tags(article)
    return Item(
        key=item_key(None, url, title, summary),
        title=title,
        url=url,
        summary=summary,
        image=image or (_card_image(article, page) if article is not None else None),
        author=author,
        published=published or card_published,
        updated=updated or card_updated,
        tags=tags,
    )


# --------------------------------------------------------------------------- helpers


def _attr(tag: Tag | None, name: str) -> str | None:
    if tag is None:
        return None
    value = tag.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return " ".join(str(v) for v in value)


def _tokens(tag: Tag, name: str) -> list[str]:
    value = tag.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    return [str(v) for v in value]


def _text(tag: object, separator: str = "") -> str | None:
    return tag.get_text(separator) if isinstance(tag, Tag) else None


def _is_inside(tag: Tag, container: Tag | None) -> bool:
    return container is not None and (tag is container or container in tag.parents)


def _is_chrome_element(tag: Tag) -> bool:
    if tag.name in _CHROME_TAGS:
        return True
    role = (_attr(tag, "role") or "").lower()
    if role in _CHROME_ROLES:
        return True
    names = {t.lower() for t in _tokens(tag, "class")}
    ident = _attr(tag, "id")
    if ident:
        names.add(ident.lower())
    return bool(names & _CHROME_TOKENS)


def _in_chrome(tag: Tag, stop: Tag | None = None) -> bool:
    """Inside navigation, page header, footer, sidebar or comments."""
    inside_article = False
    for ancestor in tag.parents:
        if ancestor is stop:
            return False
        if ancestor.name == "article":
            inside_article = True
            continue
        if ancestor.name == "header" and not inside_article and ancestor.find_parent("article") is None:
            return True
        if _is_chrome_element(ancestor):
            return True
    return False


def _in_card_chrome(tag: Tag, card: Tag) -> bool:
    for ancestor in tag.parents:
        if ancestor is card:
            return False
        if ancestor.name in {"header", "footer", "nav", "aside", "figure", "figcaption"}:
            return True
    return False


def _is_url(text: str) -> bool:
    return text.lower().startswith(("http://", "https://", "//"))


def _norm(url: str) -> str:
    """A URL without fragment and trailing slash, for "same page" comparisons."""
    return urldefrag(url.strip()).url.rstrip("/")


def _is_root(url: str) -> bool:
    parts = urlsplit(url)
    path = parts.path.lower()
    return not parts.query and (
        path in {"", "/"} or re.fullmatch(r"/(index|default|home)\.\w+", path) is not None
    )


_WEEKDAY = re.compile(
    r"^(mon|tue|wed|thu|fri|sat|sun)[a-z]*\.?,?\s+|^(montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag),?\s+",
    re.I,
)
_ORDINAL = re.compile(r"(\d)(st|nd|rd|th)\b", re.I)
_DATE_FORMATS = (
    "%Y-%m-%d",
    "%d %B %Y",
    "%d %b %Y",
    "%B %d, %Y",
    "%b %d, %Y",
    "%B %d %Y",
    "%b %d %Y",
    "%b. %d, %Y",
    "%d.%m.%Y",
    "%d. %m. %Y",
    "%Y/%m/%d",
    "%m/%d/%Y",
    "%B %Y",
)


def _loose_date(value: object) -> datetime | None:
    """ISO 8601 / RFC 822 via parse_datetime, then a few human formats
    ("Friday, 3 October 2025", "March 3rd, 2024", "03.10.2025"); UTC."""
    text = clean_text(value)
    if not text or len(text) > 64:
        return None
    parsed = parse_datetime(text)
    if parsed is not None:
        return parsed
    text = re.sub(r"^(published|posted|updated)(\s+on)?:?\s+", "", text, flags=re.I)
    text = _ORDINAL.sub(r"\1", _WEEKDAY.sub("", text)).strip()
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None
