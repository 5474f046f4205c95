"""Strategy 1: items described by configured CSS selectors."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields

import soupsieve
from bs4 import Tag

from feedcast.kernel.models import Item
from sources._common import clean_text, keyed_item

from ._dates import date_of
from ._document import Page
from ._dom import attribute, text_of, value_text
from ._images import img_src

__all__ = ["PageSelectors", "selector_items"]


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


def selector_items(page: Page, sel: PageSelectors) -> Iterator[Item]:
    for container in page.soup.select(sel.item):
        link_el = _select_link(container, sel.link)
        url = page.resolve(attribute(link_el, "href")) if link_el is not None else None
        title: str | None = None
        if sel.title:
            title_el = container.select_one(sel.title)
            title = value_text(title_el) if title_el is not None else None
        else:
            heading = container.find(["h1", "h2", "h3", "h4", "h5", "h6"])
            title = clean_text(text_of(heading)) if isinstance(heading, Tag) else None
            if not title and link_el is not None:
                title = clean_text(text_of(link_el))
        summary = None
        if sel.summary:
            summary_el = container.select_one(sel.summary)
            summary = value_text(summary_el) if summary_el is not None else None
        image = None
        if sel.image:
            image_el = container.select_one(sel.image)
            image = _image_of(image_el, page) if image_el is not None else None
        published = None
        if sel.date:
            date_el = container.select_one(sel.date)
            published = date_of(date_el) if date_el is not None else None
        if not url and not title:
            continue
        yield keyed_item(
            None,
            url,
            title,
            summary,
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


def _image_of(tag: Tag, page: Page) -> str | None:
    img = tag if tag.name in {"img", "source", "meta", "picture"} else tag.find("img")
    if isinstance(img, Tag):
        if img.name == "meta":
            return page.resolve(attribute(img, "content"))
        if img.name == "picture":
            inner = img.find("img")
            if isinstance(inner, Tag):
                img = inner
        found = img_src(img, page)
        if found:
            return found
    for attr in ("href", "content", "data-src", "data-bg"):
        found = page.resolve(attribute(tag, attr))
        if found:
            return found
    style = attribute(tag, "style") or ""
    match = re.search(r"url\(\s*['\"]?([^'\")]+)", style)
    return page.resolve(match.group(1)) if match else None
