"""Strategies 3 and 4: ``<article>`` cards and heading links, and what a card holds."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime

from bs4 import BeautifulSoup, Tag

from feedcast.kernel.models import Item
from sources._common import clean_text, keyed_item

from ._dates import date_of, loose_date
from ._document import Page
from ._dom import attribute, in_card_chrome, in_chrome, is_inside, text_of, tokens, value_text
from ._images import img_src

__all__ = [
    "article_items",
    "card_author",
    "card_dates",
    "card_image",
    "card_tags",
    "heading_items",
    "heading_link",
]


_HEADINGS = ("h1", "h2", "h3")
_EXCERPT_CLASS = re.compile(r"(^|[-_])(excerpt|summary|dek|teaser|standfirst|lede|description)([-_]|$)", re.I)
_DATE_CLASS = re.compile(r"date|published|posted|timestamp", re.I)
_AUTHOR_CLASS = re.compile(r"author|byline", re.I)


def article_items(page: Page, articles: list[Tag]) -> Iterator[Item]:
    for article in articles:
        found = heading_link(article, page)
        if found is None:
            continue
        heading, link, url = found
        title = clean_text(text_of(heading)) or clean_text(text_of(link))
        yield _card_item(page, article, heading, url, title)


def heading_link(container: Tag, page: Page) -> tuple[Tag, Tag, str] | None:
    for heading in container.find_all(_HEADINGS):
        link = heading.find("a", href=True)
        if not isinstance(link, Tag):
            parent = heading.find_parent("a", href=True)
            link = parent if isinstance(parent, Tag) and container in parent.parents else None
        if link is None:
            continue
        url = page.resolve(attribute(link, "href"))
        if url and not page.is_self_or_home(url):
            return heading, link, url
    return None


def _card_item(page: Page, card: Tag, heading: Tag | None, url: str, title: str | None) -> Item:
    summary = _summary(card, heading)
    published, updated = card_dates(card)
    return keyed_item(
        None,
        url,
        title,
        summary,
        image=card_image(card, page),
        author=card_author(card),
        published=published,
        updated=updated,
        tags=card_tags(card),
    )


def _summary(card: Tag, heading: Tag | None) -> str | None:
    for tag in card.find_all(class_=_EXCERPT_CLASS):
        if isinstance(tag, Tag) and tag.name not in {"time", "meta", "img"} and not is_inside(tag, heading):
            text = clean_text(text_of(tag, " "))
            if text and len(text) > 20:
                return text
    for para in card.find_all("p"):
        if is_inside(para, heading) or in_card_chrome(para, card):
            continue
        text = clean_text(text_of(para))
        if text and loose_date(text) is None:  # a paragraph holding only a date is not a summary
            return text
    return None


def card_image(card: Tag, page: Page) -> str | None:
    for img in card.find_all("img"):
        if attribute(img, "width") in {"0", "1"} or attribute(img, "height") in {"0", "1"}:
            continue
        if _is_decoration(img, card):
            continue
        found = img_src(img, page)
        if found and not _AVATAR.search(found):
            return found
    return None


_AVATAR = re.compile(r"avatar|gravatar\.com|emoji|/smilies/|spacer\.gif|pixel\.gif", re.I)


def _is_decoration(img: Tag, card: Tag) -> bool:
    """Avatars, emoji, icons and images in the card's footer / author box."""
    if _AVATAR.search(" ".join(tokens(img, "class"))) or _AVATAR.search(attribute(img, "src") or ""):
        return True
    for ancestor in img.parents:
        if ancestor is card:
            return False
        if ancestor.name in {"footer", "nav", "aside"}:
            return True
        classes = " ".join(tokens(ancestor, "class"))
        if _AVATAR.search(classes) or _AUTHOR_CLASS.search(classes):
            return True
    return False


def card_dates(card: Tag) -> tuple[datetime | None, datetime | None]:
    published = updated = None
    for tag in card.find_all(itemprop=True):
        prop = (attribute(tag, "itemprop") or "").split()
        if "datePublished" in prop and published is None:
            published = date_of(tag)
        elif "dateModified" in prop and updated is None:
            updated = date_of(tag)
    for time in card.find_all("time"):
        classes = {c.lower() for c in tokens(time, "class")}
        value = date_of(time)
        if value is None:
            continue
        if "updated" in classes and "published" not in classes:
            updated = updated or value
        elif published is None:
            published = value
    if published is None:
        for tag in card.find_all(["abbr", "span", "div", "p", "h4", "h5", "h6"], class_=_DATE_CLASS, limit=5):
            if isinstance(tag, Tag):
                published = date_of(tag)
                if published:
                    break
    return published, updated


def card_author(card: Tag) -> str | None:
    candidates: list[Tag] = []
    for tag in card.find_all(["a", "link"], rel=True):
        if isinstance(tag, Tag) and "author" in tokens(tag, "rel"):
            candidates.append(tag)
    for tag in card.find_all(itemprop="author"):
        if isinstance(tag, Tag):
            name = tag.find(itemprop="name")
            candidates.append(name if isinstance(name, Tag) else tag)
    candidates.extend(t for t in card.find_all(class_=_AUTHOR_CLASS, limit=3) if isinstance(t, Tag))
    for tag in candidates:
        text = value_text(tag)
        if text:
            text = re.sub(r"^(by|von|par|por)\s+", "", text, flags=re.I).strip()
            if text and len(text) <= 80:
                return text
    return None


def card_tags(card: Tag) -> tuple[str, ...]:
    tags: list[str] = []
    for link in card.find_all("a", href=True):
        if isinstance(link, Tag) and ("tag" in tokens(link, "rel") or "tag" in tokens(link, "class")):
            text = clean_text(text_of(link))
            if text:
                tags.append(text)
    return tuple(dict.fromkeys(tags))


def heading_items(page: Page) -> Iterator[Item]:
    root = _main_content(page.soup)
    found: list[tuple[Tag, Tag, str]] = []
    for heading in root.find_all(_HEADINGS):
        if not isinstance(heading, Tag) or in_chrome(heading, root):
            continue
        link = heading.find("a", href=True)
        if not isinstance(link, Tag):
            continue
        url = page.resolve(attribute(link, "href"))
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
        title = clean_text(text_of(link)) or clean_text(text_of(heading))
        yield _card_item(page, card, heading, url, title)


def _main_content(soup: BeautifulSoup) -> Tag:
    for candidate in (soup.find("main"), soup.find(role="main"), soup.body):
        if isinstance(candidate, Tag):
            return candidate
    return soup
