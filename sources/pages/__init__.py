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

from collections.abc import Iterable, Mapping

from bs4 import Tag

from feedcast.kernel.models import FeedLink, Item, ParseResult, SourceKind
from sources._common import clean_text, repair_mojibake

from ._cards import article_items, heading_items
from ._discovery import discover, discover_feeds, is_comments_feed
from ._document import Page, base_url, norm_url, page_soup
from ._dom import in_chrome, text_of
from ._jsonld import jsonld_items
from ._selectors import PageSelectors, selector_items
from ._single import opengraph_item, single_article_signals

__all__ = ["PageSelectors", "discover_feeds", "is_comments_feed", "parse_page"]


def parse_page(
    body: bytes,
    url: str,
    headers: Mapping[str, str] | None = None,
    selectors: PageSelectors | None = None,
) -> ParseResult:
    """Items and advertised feeds of one HTML page. Never raises on messy input."""
    warnings: list[str] = []
    try:
        soup = page_soup(body, headers, warnings)
    except Exception as exc:  # lxml / decoding surprises on hostile bytes
        soup = None
        warnings.append(f"could not parse the HTML: {type(exc).__name__}: {exc}")
    if soup is None:
        warnings.append("no items found: the document is not HTML")
        return ParseResult(kind=SourceKind.PAGE, format="html", link=url or None, warnings=tuple(warnings))
    base = url
    feeds: tuple[FeedLink, ...] = ()
    try:
        base = base_url(soup, url)
        feeds = discover(soup, base, headers)
    except Exception as exc:
        warnings.append(f"feed autodiscovery failed: {type(exc).__name__}: {exc}")
    title = link = None
    fmt: str = "html"
    items: list[Item] = []
    try:
        page = Page(soup, url, base)
        title = clean_text(text_of(soup.title)) or page.meta("og:title")
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
        ParseResult.gathered(SourceKind.PAGE, fmt, items, warnings, title=title, link=link, feeds=feeds)
    )


def _extract(page: Page, selectors: PageSelectors | None, warnings: list[str]) -> tuple[str, list[Item]]:
    if selectors is not None:
        items = _dedupe(selector_items(page, selectors))
        if items:
            return "selectors", items
        warnings.append(f"page selectors matched no items (item selector {selectors.item!r})")

    items = _dedupe(jsonld_items(page, warnings))
    if items:
        return "jsonld", items

    articles = [a for a in page.soup.find_all("article") if isinstance(a, Tag) and not in_chrome(a)]
    single = single_article_signals(page, articles)
    items = _dedupe(article_items(page, articles))
    if items and not single.own_post:
        return "articles", items
    if single.is_single:
        og = opengraph_item(page, single.article)
        if og is not None:
            return "opengraph", [og]
    if items:
        return "articles", items
    if not articles:
        items = _dedupe(heading_items(page))
        if items:
            return "headings", items
    return "html", []


def _dedupe(items: Iterable[Item]) -> list[Item]:
    seen: set[str] = set()
    out: list[Item] = []
    for item in items:
        ident = norm_url(item.url) if item.url else item.key
        if ident in seen:
            continue
        seen.add(ident)
        out.append(item)
    return out
