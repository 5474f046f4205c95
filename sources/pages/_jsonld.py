"""Strategy 2: JSON-LD articles, ``Blog.blogPost`` and ``ItemList``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urldefrag

from feedcast.kernel.models import Item
from sources._common import as_list, clean_text, keyed_item, parse_datetime
from sources._html import jsonld_objects, schema_types

from ._document import Page
from ._dom import is_url

__all__ = ["jsonld_items"]


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


def jsonld_items(page: Page, warnings: list[str]) -> Iterator[Item]:
    objects = jsonld_objects(page.soup, warnings)
    articles = [o for o in objects if schema_types(o) & _ARTICLE_TYPES]
    lone_article = len(articles) == 1
    for obj in objects:
        yield from _ld_items(page, obj, lone_article, depth=0)


def _ld_items(page: Page, obj: Mapping[str, Any], lone: bool, depth: int) -> Iterator[Item]:
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
        for post in as_list(obj.get("blogPost") or obj.get("blogPosts")):
            if isinstance(post, Mapping):
                item = _ld_article(page, post, fallback_url=False)
                if item is not None:
                    yield item
    elif types & {"WebPage", "CollectionPage", "ItemPage"}:
        for key in ("mainEntity", "hasPart"):
            for part in as_list(obj.get(key)):
                if isinstance(part, Mapping):
                    yield from _ld_items(page, part, lone, depth + 1)


def _ld_list_elements(obj: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    elements = as_list(obj.get("itemListElement"))
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


def _ld_article(page: Page, obj: Mapping[str, Any], fallback_url: bool) -> Item | None:
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
    return keyed_item(
        None,
        url,
        title,
        summary,
        content=content,
        image=image,
        author=_ld_author(obj.get("author") or obj.get("creator")),
        published=parse_datetime(_ld_text(obj.get("datePublished")) or _ld_text(obj.get("dateCreated"))),
        updated=parse_datetime(_ld_text(obj.get("dateModified"))),
        tags=tuple(dict.fromkeys(tags)),
    )


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _ld_text(value: Any) -> str | None:
    for entry in as_list(value):
        if isinstance(entry, str | int | float) and not isinstance(entry, bool):
            text = clean_text(entry)
        elif isinstance(entry, Mapping):
            text = _ld_text(entry.get("@value") or entry.get("name"))
        else:
            text = None
        if text:
            return text
    return None


def _ld_reference(value: Any, inside: Callable[[Mapping[str, Any]], str | None]) -> str | None:
    """The first non-empty string of ``value`` (a string, an object, a list of those);
    ``inside`` finds it in an object."""
    for entry in as_list(value):
        if isinstance(entry, str) and entry.strip():
            return entry.strip()
        if isinstance(entry, Mapping):
            found = inside(entry)
            if found:
                return found
    return None


def _ld_url(value: Any) -> str | None:
    return _ld_reference(value, lambda entry: _ld_url(entry.get("url")) or _ld_url(entry.get("@id")))


def _ld_image(value: Any) -> str | None:
    return _ld_reference(value, lambda entry: _ld_image(entry.get("url") or entry.get("contentUrl")))


def _ld_author(value: Any) -> str | None:
    names = []
    for entry in as_list(value):
        name = (
            clean_text(entry)
            if isinstance(entry, str)
            else _ld_text(entry.get("name"))
            if isinstance(entry, Mapping)
            else None
        )
        if name and not is_url(name):
            names.append(name)
    return ", ".join(dict.fromkeys(names)) or None
