"""XML catalogues: Google Merchant / Google Base RSS and Atom feeds, and sitemaps.

Parsed with lxml in a locked-down mode: no DTD loading, no entity substitution,
no network, no huge trees (libxml2's own amplification limit stops billion-laughs
documents), recovering from errors so a broken feed still yields its good items.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from lxml import etree

from feedcast.kernel.models import Item, Media
from sources._common import (
    clean_text,
    first_text_in,
    item_key,
    keyed_item,
    normalize_availability,
    parse_datetime,
)

from ._base import (
    currency_or_none,
    media_list,
    money,
    sale_pair,
    split_urls,
    stock_from_quantity,
    title_text,
    url_or_none,
)

__all__ = ["G_NAMESPACES", "local_name", "parse_merchant_xml", "parse_sitemap", "parse_xml"]

G_NAMESPACES = ("http://base.google.com/ns/", "https://base.google.com/ns/")
_MAX_ERRORS = 5

Element = Any  # lxml.etree._Element; lxml ships no type information


def _parser() -> Any:
    # a new parser per document: lxml parsers are not safe to share between threads
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        recover=True,
        remove_comments=True,
        remove_pis=True,
    )


def parse_xml(body: bytes, warnings: list[str]) -> Element | None:
    """The root element of ``body``, or None; parse errors go to ``warnings``."""
    parser = _parser()
    try:
        root = etree.fromstring(body, parser)
    except (etree.XMLSyntaxError, ValueError) as exc:
        warnings.append(f"not well-formed XML: {exc}")
        return None
    errors = [e for e in parser.error_log if e.level >= etree.ErrorLevels.ERROR]
    for error in errors[:_MAX_ERRORS]:
        warnings.append(f"XML error line {error.line}: {error.message}")
    if len(errors) > _MAX_ERRORS:
        warnings.append(f"... and {len(errors) - _MAX_ERRORS} more XML errors")
    if root is None:
        warnings.append("no XML document could be recovered")
    return root


_SPLIT_CACHE: dict[str, tuple[str, str]] = {}


def _split(tag: object) -> tuple[str, str] | None:
    """``(namespace, localname)`` of an element tag; None for comments/entities."""
    if not isinstance(tag, str):
        return None
    found = _SPLIT_CACHE.get(tag)
    if found is None:
        if tag.startswith("{"):
            ns, _, local = tag[1:].partition("}")
            found = (ns, local)
        else:
            found = ("", tag)
        if len(_SPLIT_CACHE) < 4096:
            _SPLIT_CACHE[tag] = found
    return found


def _text(el: Element) -> str | None:
    text = "".join(el.itertext()).strip() if len(el) else (el.text or "").strip()
    return text or None


def _is_g(ns: str) -> bool:
    return ns.startswith(G_NAMESPACES)


# ---------------------------------------------------------------- Merchant feeds

# g: fields that become Item attributes; everything else goes to Item.extra
_MAPPED = {
    "id",
    "title",
    "link",
    "description",
    "image_link",
    "additional_image_link",
    "price",
    "sale_price",
    "currency",
    "availability",
    "brand",
    "gtin",
    "upc",
    "ean",
    "isbn",
    "jan",
    "mpn",
    "sku",
    "item_group_id",
    "label",
}


def parse_merchant_xml(
    root: Element, url: str, warnings: list[str]
) -> tuple[str, list[Item], str | None, str | None]:
    """Items of a Merchant / Google Base feed: ``(format, items, title, link)``."""
    parsed = _split(root.tag)
    local = parsed[1] if parsed else ""
    fmt = "merchant-atom" if local == "feed" else "merchant-rss"
    channel = root
    if local == "rss":
        for child in root:
            split = _split(child.tag)
            if split and split[1] == "channel":
                channel = child
                break
    title = link = None
    for child in channel:
        split = _split(child.tag)
        if split is None or _is_g(split[0]):
            continue
        if split[1] == "title" and title is None:
            title = title_text(_text(child))
        elif split[1] == "link" and link is None:
            link = url_or_none(url, child.get("href") or _text(child))
    items: list[Item] = []
    for node in root.iter("{*}item", "{*}entry"):
        split = _split(node.tag)
        if split is None or _is_g(split[0]):
            continue
        items.append(_merchant_item(node, url))
    return fmt, items, title, link


@dataclass(frozen=True, slots=True)
class _Fields:
    """The children of a Merchant ``<item>`` / ``<entry>``: its ``g:`` fields (by
    lower-case name) apart from the plain RSS / Atom ones."""

    g: dict[str, list[Element]]
    plain: dict[str, list[Element]]

    @classmethod
    def of(cls, node: Element) -> _Fields:
        g: dict[str, list[Element]] = {}
        plain: dict[str, list[Element]] = {}
        for child in node:
            split = _split(child.tag)
            if split is None:
                continue
            ns, local = split
            if ns and _is_g(ns):
                g.setdefault(local.lower(), []).append(child)
            else:
                plain.setdefault(local, []).append(child)
        return cls(g, plain)

    def gv(self, name: str) -> str | None:
        """The first non-empty text of the ``g:`` field ``name``."""
        return first_text_in(self.g, (name,), _text)

    def pv(self, *names: str) -> str | None:
        """The first non-empty text of the plain fields ``names``, in that order."""
        return first_text_in(self.plain, names, _text)


def _merchant_item(node: Element, base: str) -> Item:
    fields = _Fields.of(node)
    gv, pv = fields.gv, fields.pv
    link = url_or_none(base, gv("link"))
    if link is None:
        link = _plain_link(fields.plain, base)
    price, sale, currency = _merchant_prices(fields)
    availability = normalize_availability(gv("availability"))
    if availability is None:
        availability = stock_from_quantity(gv("quantity"))
    images = _merchant_images(fields, base)
    labels = tuple(t for t in (clean_text(_text(el)) for el in fields.g.get("label", ())) if t)
    guid = gv("id") or pv("guid", "id")
    title = title_text(gv("title") or pv("title"))
    summary = gv("description") or pv("description", "summary")
    return keyed_item(
        guid,
        link,
        title,
        summary,
        content=pv("encoded", "content"),
        image=images[0] if images else None,
        media=media_list(images),
        published=parse_datetime(pv("pubDate", "published", "issued", "date")),
        updated=parse_datetime(pv("updated", "modified")),
        tags=labels,
        price=price,
        sale_price=sale,
        currency=currency,
        availability=availability,
        sku=gv("sku"),
        gtin=gv("gtin") or gv("upc") or gv("ean") or gv("isbn") or gv("jan"),
        mpn=gv("mpn"),
        brand=gv("brand") or gv("manufacturer"),
        group_id=gv("item_group_id"),
        extra=_merchant_extra(fields.g),  # strings, lists of strings and of string dicts only
    )


def _merchant_prices(fields: _Fields) -> tuple[Decimal | None, Decimal | None, str | None]:
    """``(price, sale_price, currency)`` of a Merchant item."""
    currency = currency_or_none(fields.gv("currency"))
    price, cur = money(fields.gv("price"), currency)
    sale, cur2 = money(fields.gv("sale_price"), cur or currency)
    currency = cur or cur2 or currency
    price, sale = sale_pair(price, sale)
    return price, sale, currency


def _merchant_images(fields: _Fields, base: str) -> list[str]:
    images = [u for u in (url_or_none(base, _text(el)) for el in fields.g.get("image_link", ())) if u]
    for el in fields.g.get("additional_image_link", ()):
        # the text feed syntax (comma-separated) also turns up in XML feeds
        parts = split_urls(_text(el) or "")
        images.extend(u for u in (url_or_none(base, part) for part in parts) if u)
    return images


def _merchant_extra(g: dict[str, list[Element]]) -> dict[str, Any]:
    """The ``g:`` fields no Item attribute holds; a field with sub-elements
    (``g:shipping``) as a dict of their texts."""
    extra: dict[str, Any] = {}
    for name, elements in g.items():
        if name in _MAPPED:
            continue
        values: list[Any] = []
        for el in elements:
            if len(el):
                group = {}
                for sub in el:
                    sub_split = _split(sub.tag)
                    if sub_split and (value := _text(sub)) is not None:
                        group[sub_split[1]] = value
                if group:
                    values.append(group)
            elif (value := _text(el)) is not None:
                values.append(value)
        if values:
            extra[name] = values if len(values) > 1 or isinstance(values[0], dict) else values[0]
    return extra


def _plain_link(plain: dict[str, list[Element]], base: str) -> str | None:
    fallback = None
    for el in plain.get("link", ()):
        href = el.get("href")
        if href is None:  # RSS <link>text</link>
            found = url_or_none(base, _text(el))
            if found:
                return found
            continue
        rel = (el.get("rel") or "alternate").strip().lower()
        found = url_or_none(base, href)
        if found and rel == "alternate":
            return found
        fallback = fallback or found
    return fallback


# ---------------------------------------------------------------------- Sitemaps


def parse_sitemap(root: Element, url: str, warnings: list[str]) -> tuple[list[Item], tuple[str, ...]]:
    """``(items, next_urls)`` of a sitemap: one item per ``<url>`` of a urlset, or
    the child sitemaps of a sitemapindex as ``next_urls``."""
    split = _split(root.tag)
    local = split[1] if split else ""
    if local == "sitemapindex":
        children: list[str] = []
        for node in root:
            node_split = _split(node.tag)
            if node_split is None or node_split[1] != "sitemap":
                continue
            loc = url_or_none(url, _child_text(node, "loc"))
            if loc and loc not in children:
                children.append(loc)
        return [], tuple(children)
    items: list[Item] = []
    seen: set[str] = set()
    duplicates = 0
    for node in root:
        node_split = _split(node.tag)
        if node_split is None or node_split[1] != "url":
            continue
        item = _sitemap_item(node, url)
        if item is None:
            continue
        if item.key in seen:
            duplicates += 1
            continue
        seen.add(item.key)
        items.append(item)
    if duplicates:
        warnings.append(f"{duplicates} repeated <loc> entries ignored")
    return items, ()


def _child_text(node: Element, name: str) -> str | None:
    for child in node:
        split = _split(child.tag)
        if split and split[1] == name:
            return _text(child)
    return None


def _sitemap_item(node: Element, base: str) -> Item | None:
    loc = url_or_none(base, _child_text(node, "loc"))
    if loc is None:
        return None
    images: list[Media] = []
    image_titles: list[str] = []
    videos: list[Media] = []
    news: dict[str, str] = {}
    extra: dict[str, Any] = {}
    for child in node:
        split = _split(child.tag)
        if split is None:
            continue
        local = split[1]
        if local == "image":
            src = url_or_none(base, _child_text(child, "loc"))
            image_title = clean_text(_child_text(child, "title"))
            if image_title:
                image_titles.append(image_title)
            if src:
                images.append(Media(url=src, title=image_title or clean_text(_child_text(child, "caption"))))
        elif local == "video":
            src = url_or_none(base, _child_text(child, "content_loc") or _child_text(child, "player_loc"))
            video_title = clean_text(_child_text(child, "title"))
            if src:
                videos.append(Media(url=src, medium="video", title=video_title))
            if video_title:
                news.setdefault("video_title", video_title)
        elif local == "news":
            for sub in child.iter():
                sub_split = _split(sub.tag)
                if sub_split and (value := _text(sub)) is not None and not len(sub):
                    news.setdefault(sub_split[1], value)
        elif local in {"changefreq", "priority"} and (value := _text(child)) is not None:
            extra[local] = value
    if news.get("name"):
        extra["publication"] = news["name"]
    title = clean_text(news.get("title")) or (image_titles[0] if image_titles else None)
    title = title or news.get("video_title")
    keywords = tuple(t for t in (clean_text(k) for k in news.get("keywords", "").split(",")) if t)
    first_image = images[0].url if images else None
    return Item(
        key=item_key(loc),
        title=title,
        url=loc,
        image=first_image,
        media=media_list([*images, *videos]),
        published=parse_datetime(news.get("publication_date")),
        updated=parse_datetime(_child_text(node, "lastmod")),
        tags=keywords,
        extra=extra,
    )


def local_name(root: Element) -> str:
    split = _split(root.tag)
    return split[1] if split else ""
