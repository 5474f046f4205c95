"""Strategy 5: one item for a single article page, from OpenGraph / ``<meta>``."""

from __future__ import annotations

from dataclasses import dataclass

from bs4 import Tag

from feedcast.kernel.models import Item
from sources._common import clean_text, keyed_item

from ._cards import card_author, card_dates, card_image, card_tags, heading_link
from ._dates import loose_date
from ._document import Page, is_root
from ._dom import attribute, is_url, text_of

__all__ = ["opengraph_item", "single_article_signals"]


@dataclass(frozen=True, slots=True)
class Single:
    """What a page says about being a single article page, and its article if any."""

    is_single: bool
    own_post: bool  # an <article> whose h1 is not a link: the page's own post
    article: Tag | None


def single_article_signals(page: Page, articles: list[Tag]) -> Single:
    own: Tag | None = None
    for article in articles:
        h1 = article.find("h1")
        if isinstance(h1, Tag):
            link = h1.find("a", href=True) or h1.find_parent("a", href=True)
            href = page.resolve(attribute(link, "href")) if isinstance(link, Tag) else None
            if href is None or page.is_self_or_home(href):
                own = article
                break
    lone = articles[0] if len(articles) == 1 and heading_link(articles[0], page) is None else None
    og_type = (page.meta("og:type") or "").lower()
    declared = (
        og_type.startswith("article")
        or og_type in {"blog", "blogposting", "news"}
        or page.meta("article:published_time") is not None
        or page.soup.find(itemprop="datePublished") is not None
    )
    url = page.canonical or page.meta("og:url") or page.url
    if is_root(page.resolve(url) or url):
        return Single(False, False, None)
    is_single = declared or own is not None or lone is not None
    return Single(is_single, own is not None and declared, own or lone)


def opengraph_item(page: Page, article: Tag | None) -> Item | None:
    url = page.canonical or page.resolve(page.meta("og:url")) or page.resolve(page.url)
    heading = article.find("h1") if article is not None else None
    title = (
        page.meta("og:title", "twitter:title")
        or (clean_text(text_of(heading)) if isinstance(heading, Tag) else None)
        or page.meta("headline", "dc.title")
        or clean_text(text_of(page.soup.title))
    )
    if not url and not title:
        return None
    summary = page.meta("og:description", "description", "twitter:description", "dc.description")
    image = page.resolve(
        page.meta("og:image:secure_url", "og:image", "og:image:url", "twitter:image", "image")
    )
    published = loose_date(
        page.meta("article:published_time", "datepublished", "date", "dc.date", "pubdate", "publish-date")
    )
    updated = loose_date(page.meta("article:modified_time", "og:updated_time", "datemodified"))
    card_published = card_updated = None
    if published is None or updated is None:
        scope = article if article is not None else page.soup
        card_published, card_updated = card_dates(scope)
    author = next(
        (a for a in page.meta_all("author") + page.meta_all("article:author") if not is_url(a)), None
    )
    if author is None and article is not None:
        author = card_author(article)
    author = author or page.meta("dc.creator", "twitter:creator")
    tags = tuple(dict.fromkeys(page.meta_all("article:tag")))
    if not tags and article is not None:
        tags = card_tags(article)
    return keyed_item(
        None,
        url,
        title,
        summary,
        image=image or (card_image(article, page) if article is not None else None),
        author=author,
        published=published or card_published,
        updated=updated or card_updated,
        tags=tags,
    )
