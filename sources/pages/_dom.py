"""Element lookups the page strategies share: attributes, text, page chrome."""

from __future__ import annotations

from bs4 import Tag

from sources._common import clean_text

__all__ = [
    "attribute",
    "in_card_chrome",
    "in_chrome",
    "is_inside",
    "is_url",
    "text_of",
    "tokens",
    "value_text",
]


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


def attribute(tag: Tag | None, name: str) -> str | None:
    if tag is None:
        return None
    value = tag.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return " ".join(str(v) for v in value)


def tokens(tag: Tag, name: str) -> list[str]:
    value = tag.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    return [str(v) for v in value]


def text_of(tag: object, separator: str = "") -> str | None:
    return tag.get_text(separator) if isinstance(tag, Tag) else None


def is_inside(tag: Tag, container: Tag | None) -> bool:
    return container is not None and (tag is container or container in tag.parents)


def _is_chrome_element(tag: Tag) -> bool:
    if tag.name in _CHROME_TAGS:
        return True
    role = (attribute(tag, "role") or "").lower()
    if role in _CHROME_ROLES:
        return True
    names = {t.lower() for t in tokens(tag, "class")}
    ident = attribute(tag, "id")
    if ident:
        names.add(ident.lower())
    return bool(names & _CHROME_TOKENS)


def in_chrome(tag: Tag, stop: Tag | None = None) -> bool:
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


def in_card_chrome(tag: Tag, card: Tag) -> bool:
    for ancestor in tag.parents:
        if ancestor is card:
            return False
        if ancestor.name in {"header", "footer", "nav", "aside", "figure", "figcaption"}:
            return True
    return False


def is_url(text: str) -> bool:
    return text.lower().startswith(("http://", "https://", "//"))


def value_text(tag: Tag) -> str | None:
    if tag.name == "meta":
        return clean_text(attribute(tag, "content"))
    return (
        clean_text(text_of(tag))
        or clean_text(attribute(tag, "content"))
        or clean_text(attribute(tag, "title"))
    )
