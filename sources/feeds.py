"""Syndication feeds: RSS 0.9x / 1.0 (RDF) / 2.0, Atom 0.3 / 1.0 and JSON Feed 1.0 / 1.1.

:func:`parse_feed` turns the bytes of one feed into a :class:`ParseResult` of
:class:`Item`. XML feeds go through feedparser (bytes in, never a URL; no HTML
sanitising, relative URIs resolved against the feed URL); JSON Feeds through
:mod:`json`. Messy input never raises: what was wrong ends up in ``warnings``.
"""

from __future__ import annotations

import html
import io
import json
import mimetypes
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import feedparser
from feedparser.mixin import _FeedParserMixin

from feedcast.kernel.models import Item, Media, ParseResult, SourceKind
from sources._common import (
    absolute_url,
    clean_text,
    decode_text,
    header,
    item_key,
    parse_datetime,
    repair_mojibake,
)

__all__ = ["parse_feed"]

# feedparser's version string -> our format name
_FORMATS = {
    "rss090": "rss090",
    "rss091n": "rss091",
    "rss091u": "rss091",
    "rss092": "rss092",
    "rss093": "rss092",
    "rss094": "rss092",
    "rss20": "rss20",
    "rss": "rss20",
    "rss10": "rss10",
    "atom01": "atom03",
    "atom02": "atom03",
    "atom03": "atom03",
    "atom10": "atom10",
    "atom": "atom10",
}
_UNKNOWN = "unknown"

# An item's id is its identity, not a link: feedparser would resolve a relative
# one (Reddit's "t3_abc", a bare RSS <guid>123</guid>) against the feed URL, so
# the key would change whenever the feed URL does. Links are still resolved.
# (Process-wide, set once: feedparser has no per-call switch for it.)
_FeedParserMixin.can_be_relative_uri = frozenset(_FeedParserMixin.can_be_relative_uri - {"id"})

_UTF8_BOM = b"\xef\xbb\xbf"
_XML_WS = b" \t\r\n"
_WIDE_STARTS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00", b"\x00<", b"<\x00")  # UTF-16/32 BOMs and '<'
_CHARSET_RE = re.compile(r"""charset\s*=\s*["']?([A-Za-z0-9_\-:.]+)""", re.I)
_XML_DECL_ENCODING_RE = re.compile(rb"""<\?xml[^>]{0,200}?encoding\s*=\s*["']([A-Za-z0-9_\-:.]+)["']""")
# single-byte charsets a server or template often claims for what is really UTF-8
_LEGACY_CHARSET_RE = re.compile(
    r"^(?:iso[-_]?8859[-_]?\d+|latin[-_]?\d|l\d|(?:windows|cp)[-_]?125\d|us-ascii|ascii)$"
)


# --------------------------------------------------------------------------- entry point


def parse_feed(body: bytes, url: str, headers: Mapping[str, str] | None = None) -> ParseResult:
    """Parse an RSS, Atom, RDF or JSON feed.

    ``url`` is where the body came from (base for relative links); ``headers``
    are the HTTP response headers (their Content-Type charset is honoured).
    ``format`` is one of rss090, rss091, rss092, rss20, rss10, atom03, atom10,
    jsonfeed10, jsonfeed11 -- or ``unknown`` when the body is not a feed, in
    which case there are no items and a warning says why.
    """
    if body.startswith(_UTF8_BOM):
        bom, rest = _UTF8_BOM, body[3:]
    else:
        bom, rest = b"", body
    if not rest.startswith(_WIDE_STARTS):  # leave UTF-16/32 to feedparser's sniffing
        rest = rest.lstrip(_XML_WS)
        if rest.startswith(_UTF8_BOM):  # whitespace, then a BOM
            bom, rest = _UTF8_BOM, rest[3:].lstrip(_XML_WS)
    if not rest:
        return ParseResult(kind=SourceKind.FEED, format=_UNKNOWN, warnings=("empty body",))
    if rest[:1] in (b"{", b"["):
        return repair_mojibake(_parse_json_feed(bom + rest, url, headers))
    return repair_mojibake(_parse_xml_feed(rest, bool(bom), url, headers))


# --------------------------------------------------------------------------- XML (feedparser)


def _parse_xml_feed(body: bytes, had_bom: bool, url: str, headers: Mapping[str, str] | None) -> ParseResult:
    warnings: list[str] = []
    body, doctype_warning = _neutralise_doctype(body)
    if doctype_warning:
        warnings.append(doctype_warning)
    charset = _choose_charset(body, had_bom, headers, warnings)
    ctype = f"application/xml; charset={charset}" if charset else "application/xml"
    response_headers = {"content-type": ctype}
    if url:
        response_headers["content-location"] = url
    language = header(headers, "content-language")
    if language:
        response_headers["content-language"] = language
    try:
        parsed = feedparser.parse(
            io.BytesIO(body),
            response_headers=response_headers,
            sanitize_html=False,
            resolve_relative_uris=True,
        )
    except Exception as exc:  # feedparser is third-party code fed hostile bytes
        warnings.append(f"feedparser failed: {type(exc).__name__}: {exc}")
        return ParseResult(kind=SourceKind.FEED, format=_UNKNOWN, warnings=tuple(warnings))

    if parsed.get("bozo"):
        warnings.append(_bozo_warning(parsed.get("bozo_exception")))
    version = parsed.get("version") or ""
    entries: list[Any] = parsed.get("entries") or []
    fmt = _FORMATS.get(version) or (_guess_format(body) if entries else _UNKNOWN)
    if fmt == _UNKNOWN:
        warnings.append("not a feed: no RSS, Atom or RDF document element")
        return ParseResult(kind=SourceKind.FEED, format=_UNKNOWN, warnings=tuple(warnings))

    # plain-dict copies: FeedParserDict.get is slow and aliases updated -> published
    feed: dict[str, Any] = dict(parsed.get("feed") or {})
    feed_author = _author(feed) if fmt.startswith("atom") else None
    return _feed_result(
        fmt,
        (_entry_to_item(dict(entry), url, feed_author) for entry in entries),
        warnings,
        "empty item(s) (no title, link, id or content)",
        title=_title(feed),
        link=absolute_url(url, feed.get("link")),
    )


def _guess_format(body: bytes) -> str:
    """Format for a document feedparser could only read leniently (truncated, broken)."""
    head = body[:4096].lower()
    if b"<feed" in head:
        return "atom10"
    if b"<rdf:rdf" in head or b"purl.org/rss/1.0" in head:
        return "rss10"
    return "rss20"


def _bozo_warning(exc: object) -> str:
    name = type(exc).__name__
    if name == "SAXParseException":
        line = getattr(exc, "getLineNumber", lambda: "?")()
        message = getattr(exc, "getMessage", lambda: str(exc))()
        return f"not well-formed XML (line {line}: {message}); parsed leniently, items may be incomplete"
    return f"{name}: {exc}"


def _choose_charset(
    body: bytes, had_bom: bool, headers: Mapping[str, str] | None, warnings: list[str]
) -> str | None:
    """Charset to hand feedparser: a UTF-8 BOM, else the Content-Type charset, else the XML
    declaration, else UTF-8. A legacy single-byte charset claimed for a body that
    is valid UTF-8 with non-ASCII bytes is a wrong declaration: UTF-8 wins.
    None (feedparser sniffs) for UTF-16/32 bodies."""
    if had_bom:
        return "utf-8"
    if body.startswith(_WIDE_STARTS):
        return None
    declared: str | None = None
    ctype = header(headers, "content-type")
    if ctype:
        m = _CHARSET_RE.search(ctype)
        if m:
            declared = m.group(1)
    if declared is None:
        m2 = _XML_DECL_ENCODING_RE.match(body)
        if m2:
            declared = m2.group(1).decode("ascii", "replace")
    if declared is None:
        return "utf-8"
    if _LEGACY_CHARSET_RE.match(declared.lower()) and not body.isascii():
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            warnings.append(f"declared charset {declared} but the body is UTF-8; decoded as UTF-8")
            return "utf-8"
    return declared


# DOCTYPE handling: find the DOCTYPE after the XML declaration, PIs and comments,
# and drop an internal subset that declares entities (billion laughs, quadratic
# blowup, external entities). Atomic groups and possessive quantifiers keep these
# linear on hostile input.
_DOCTYPE_RE = re.compile(
    rb"(?>[ \t\r\n]*+(?:<\?.*?\?>|<!--.*?-->))*+[ \t\r\n]*+<!DOCTYPE"  # prolog, then the DOCTYPE
    rb"(?>\"[^\"]*+\"|'[^']*+'|[^\"'\[>]++)*+",  # its name and external id
    re.S | re.I,
)
_SUBSET_RE = re.compile(rb"\[(?>\"[^\"]*+\"|'[^']*+'|<!--.*?-->|[^\"'\]<]++|<)*+\]", re.S)
_ENTITY_DECL_RE = re.compile(rb"<!ENTITY", re.I)


def _neutralise_doctype(body: bytes) -> tuple[bytes, str | None]:
    """Remove a DOCTYPE internal subset that declares ENTITY (XML bomb defence)."""
    m = _DOCTYPE_RE.match(body)
    if not m or body[m.end() : m.end() + 1] != b"[":
        return body, None  # no DOCTYPE, or no internal subset
    start = m.end()
    subset = _SUBSET_RE.match(body, start)
    end = subset.end() if subset else len(body)
    if not _ENTITY_DECL_RE.search(body, start, end):
        return body, None
    warning = "DOCTYPE internal subset with ENTITY declarations removed (entity expansion defence)"
    if subset is None:  # unterminated: nothing after it can be trusted
        return body[:start] + b">", warning
    return body[:start] + body[end:], warning


# --------------------------------------------------------------------------- entry -> Item

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", "html", "xhtml"})
_TAG_RE = re.compile(r"<[^>]*>")


def _title(node: Mapping[str, Any]) -> str | None:
    """Plain-text title: feedparser has already decoded text titles; HTML ones
    (Atom type="html", escaped markup in RSS) lose their tags and entities."""
    title = node.get("title")
    if not title:
        return None
    detail = node.get("title_detail") or {}
    if detail.get("type") in _HTML_TYPES and ("<" in title or "&" in title):
        title = html.unescape(_TAG_RE.sub("", title))
    return clean_text(title)


def _entry_to_item(entry: Mapping[str, Any], base: str, feed_author: str | None) -> Item | None:
    guid = entry.get("id") or None
    title = _title(entry)
    summary: str | None = entry.get("summary") or None
    content = _content(entry)
    link = _entry_link(entry, base)
    if not (guid or title or link or summary or content):
        return None  # e.g. an empty <item/> illegally nested in another item
    extra: dict[str, Any] = {}
    url = link
    canonical = absolute_url(base, entry.get("feedburner_origlink"))
    if canonical:  # FeedBurner: the publisher's own URL behind the feedproxy redirect
        url = canonical
    elif link:
        url = _unwrap_redirect(link)
    if url != link and link:
        extra["feed_link"] = link
    for src, dst in _EXTRA_FIELDS:
        value = entry.get(src)
        if value:
            extra[dst] = value
    media = _media(entry, base)
    return Item(
        key=item_key(guid, url, title, summary or content),
        title=title,
        url=url,
        summary=summary,
        content=content,
        image=_image(entry, media, content, summary, base),
        media=tuple(media),
        author=_author(entry) or feed_author,
        published=_date(entry, "published"),
        updated=_date(entry, "updated"),
        tags=_tags(entry.get("tags")),
        extra=extra,
    )


# cheap leftovers worth keeping: (feedparser key, extra key)
_EXTRA_FIELDS = (
    ("comments", "comments"),
    ("itunes_duration", "duration"),
    ("itunes_episode", "episode"),
    ("itunes_season", "season"),
    ("itunes_episodetype", "episode_type"),
    ("yt_videoid", "youtube_video_id"),
)


def _content(entry: Mapping[str, Any]) -> str | None:
    """The body HTML: content:encoded / Atom content (the HTML one if several)."""
    contents = entry.get("content")
    if not contents:
        return None
    for part in contents:
        if part.get("type") in _HTML_TYPES and part.get("value"):
            return str(part["value"])
    value = contents[0].get("value")
    return str(value) if value else None


def _entry_link(entry: Mapping[str, Any], base: str) -> str | None:
    """The item's page: rel=alternate (HTML first), else feedparser's link, else
    a guid that is a permalink."""
    alternate: str | None = None
    for link in entry.get("links") or ():
        if link.get("rel", "alternate") != "alternate" or not link.get("href"):
            continue
        if link.get("type") in (None, "text/html", "application/xhtml+xml"):
            alternate = link["href"]
            break
        alternate = alternate or link["href"]
    resolved = absolute_url(base, alternate or entry.get("link"))
    if resolved is None and entry.get("guidislink"):
        resolved = absolute_url(base, entry.get("id"))
    return resolved


def _unwrap_redirect(url: str) -> str:
    """``https://www.google.com/url?...&url=TARGET`` (Google Alerts) -> TARGET."""
    if "google." not in url or "/url?" not in url:
        return url
    parts = urlsplit(url)
    if parts.path != "/url" or not parts.hostname or ".google." not in "." + parts.hostname:
        return url
    query = parse_qs(parts.query)
    for name in ("url", "q"):
        values = query.get(name)
        target = absolute_url(None, values[0]) if values else None
        if target:
            return target
    return url


def _author(node: Mapping[str, Any]) -> str | None:
    """Author names, de-duplicated and joined with ", " (e.g. arXiv's many)."""
    names: list[str] = []
    for person in node.get("authors") or ():
        name = clean_text(person.get("name")) if isinstance(person, Mapping) else None
        if name and name not in names:
            names.append(name)
    if names:
        return ", ".join(names)
    detail = node.get("author_detail") or {}
    return clean_text(detail.get("name") or detail.get("email") or node.get("author"))


def _date(entry: Mapping[str, Any], field: str) -> datetime | None:
    value = parse_datetime(entry.get(f"{field}_parsed"))
    if value is None and entry.get(field):
        value = parse_datetime(entry[field])
    return value


def _tags(tags: Iterable[Any] | None) -> tuple[str, ...]:
    terms: list[str] = []
    for tag in tags or ():
        term = clean_text(tag.get("term") or tag.get("label") if isinstance(tag, Mapping) else tag)
        if term and term not in terms:
            terms.append(term)
    return tuple(terms)


# --------------------------------------------------------------------------- media

_MIME_MEDIUM = {
    "application/x-shockwave-flash": "video",
    "application/vnd.apple.mpegurl": "video",
    "application/x-mpegurl": "video",
    "application/ogg": "audio",
}
_MEDIUMS = {"image": "image", "video": "video", "audio": "audio", "document": "file", "executable": "file"}


def _int(value: object) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        return None
    return number if number >= 0 else None


def _medium(declared: object, mime: str | None, url: str, default: str) -> str:
    """image | video | audio | file from the medium attribute, MIME type or extension."""
    if isinstance(declared, str) and declared.lower() in _MEDIUMS:
        return _MEDIUMS[declared.lower()]
    if not mime:
        mime = mimetypes.guess_type(urlsplit(url).path)[0]
    if mime:
        major = mime.split("/", 1)[0].lower()
        if major in ("image", "video", "audio"):
            return major
        return _MIME_MEDIUM.get(mime.lower(), "file")
    return default


class _MediaList:
    """Media de-duplicated by URL, in discovery order."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.items: list[Media] = []
        self.urls: set[str] = set()

    def add(
        self,
        href: object,
        *,
        medium: object = None,
        mime: object = None,
        length: object = None,
        width: object = None,
        height: object = None,
        title: object = None,
        default: str = "file",
    ) -> None:
        url = absolute_url(self.base, href)
        if url is None or url in self.urls:
            return
        mime_text = str(mime).strip().lower() if mime else None
        self.urls.add(url)
        self.items.append(
            Media(
                url=url,
                medium=_medium(medium, mime_text, url, default),
                type=mime_text or None,
                length=_int(length) or None,
                width=_int(width),
                height=_int(height),
                title=clean_text(title) if isinstance(title, str) else None,
            )
        )


def _media(entry: Mapping[str, Any], base: str) -> list[Media]:
    """Every media:content (also in media:group), media:thumbnail, enclosure,
    itunes:image and enc:enclosure of an entry."""
    found = _MediaList(base)
    for mc in entry.get("media_content") or ():
        found.add(
            mc.get("url"),
            medium=mc.get("medium"),
            mime=mc.get("type"),
            length=mc.get("filesize"),
            width=mc.get("width"),
            height=mc.get("height"),
        )
    for th in entry.get("media_thumbnail") or ():
        found.add(th.get("url"), medium="image", width=th.get("width"), height=th.get("height"))
    itunes_image = entry.get("image")
    if isinstance(itunes_image, Mapping):
        found.add(itunes_image.get("href"), medium="image")
    for link in entry.get("links") or ():
        if link.get("rel") == "enclosure":
            found.add(link.get("href"), mime=link.get("type"), length=link.get("length"))
    rdf_enclosures = entry.get("enc_enclosure")
    if isinstance(rdf_enclosures, Mapping):
        rdf_enclosures = [rdf_enclosures]
    for enc in rdf_enclosures or ():
        if isinstance(enc, Mapping):
            found.add(
                enc.get("resource") or enc.get("url"),
                mime=enc.get("type"),
                length=enc.get("length"),
            )
    return found.items


_IMG_RE = re.compile(r"""<img\b[^>]*?\bsrc\s*=\s*["']([^"']+)["'][^>]*>""", re.I)
_TRACKER_RE = re.compile(
    r"""\b(?:width|height)\s*=\s*["']?[01]["'\s/>]|feedburner\.com|feedsportal\.com|doubleclick\.net|"""
    r"""pixel\.wp\.com|stats\.wordpress\.com|//(?:rss|feeds?)\.""",
    re.I,
)


def _image(
    entry: Mapping[str, Any], media: list[Media], content: str | None, summary: str | None, base: str
) -> str | None:
    """The item's picture: media:thumbnail, then an image media:content,
    itunes:image, an image enclosure, then the first real <img> of the HTML."""
    thumbs = {absolute_url(base, t.get("url")) for t in entry.get("media_thumbnail") or ()}
    for m in media:
        if m.url in thumbs:
            return m.url
    for m in media:
        if m.medium == "image":
            return m.url
    for text in (content, summary):
        if text and "<img" in text.lower():
            for match in _IMG_RE.finditer(text):
                if _TRACKER_RE.search(match.group(0)):
                    continue
                src = absolute_url(base, html.unescape(match.group(1)))
                if src:
                    return src
    return None


# --------------------------------------------------------------------------- JSON Feed


def _parse_json_feed(body: bytes, url: str, headers: Mapping[str, str] | None) -> ParseResult:
    warnings: list[str] = []
    try:
        try:
            doc = json.loads(body)
        except UnicodeDecodeError:
            warnings.append("JSON body is not UTF-8; decoded with the declared or a fallback charset")
            doc = json.loads(decode_text(body, headers))
    except (ValueError, RecursionError) as exc:
        return _not_a_feed(f"invalid JSON: {exc}")
    if not isinstance(doc, dict):
        return _not_a_feed("JSON document is not a JSON Feed")
    version = doc.get("version")
    raw_items = doc.get("items")
    if isinstance(version, str) and "jsonfeed.org/version/" in version:
        number = version.rstrip("/").rsplit("/", 1)[-1]
        fmt = "jsonfeed10" if number in ("1", "1.0") else "jsonfeed11"
        if number not in ("1", "1.0", "1.1"):
            warnings.append(f"unknown JSON Feed version {version!r}; read as 1.1")
    elif isinstance(raw_items, list) and "title" in doc:
        fmt = "jsonfeed11"
        warnings.append("JSON Feed without a version; read as 1.1")
    else:
        return _not_a_feed("JSON document is not a JSON Feed")
    if not isinstance(raw_items, list):
        warnings.append("JSON Feed without an items array")
        raw_items = []

    feed_author = _json_author(doc)
    return _feed_result(
        fmt,
        (_json_item(raw, url, feed_author) if isinstance(raw, dict) else None for raw in raw_items),
        warnings,
        "item(s) that are not objects or carry nothing",
        title=_json_title(doc.get("title")),
        link=absolute_url(url, _str(doc.get("home_page_url"))),
    )


def _feed_result(
    fmt: str,
    candidates: Iterable[Item | None],
    warnings: list[str],
    empty_reason: str,
    *,
    title: str | None,
    link: str | None,
) -> ParseResult:
    """The feed with its items in order, without the empty ones (None) and without
    repeats of a key; ``warnings`` says how many were skipped."""
    items: list[Item] = []
    seen: set[str] = set()
    empty = duplicates = 0
    for item in candidates:
        if item is None:
            empty += 1
        elif item.key in seen:
            duplicates += 1
        else:
            seen.add(item.key)
            items.append(item)
    if empty:
        warnings.append(f"skipped {empty} {empty_reason}")
    if duplicates:
        warnings.append(f"skipped {duplicates} item(s) repeating an earlier item's id")
    return ParseResult.gathered(SourceKind.FEED, fmt, items, warnings, title=title, link=link)


def _not_a_feed(warning: str) -> ParseResult:
    return ParseResult(kind=SourceKind.FEED, format=_UNKNOWN, warnings=(warning,))


def _str(value: object) -> str | None:
    """A JSON scalar as text (ids may be numbers); None for objects, lists, empty."""
    if value is None or isinstance(value, dict | list | bool):
        return None
    text = str(value).strip()
    return text or None


def _json_author(node: Mapping[str, Any]) -> str | None:
    people = node.get("authors")
    if not isinstance(people, list):
        single = node.get("author")
        people = [single] if isinstance(single, dict) else []
    names: list[str] = []
    for person in people:
        name = clean_text(_str(person.get("name"))) if isinstance(person, dict) else None
        if name and name not in names:
            names.append(name)
    return ", ".join(names) or None


def _json_title(value: object) -> str | None:
    """JSON Feed titles are plain text, but generators often leave entities in them."""
    text = _str(value)
    if text and "&" in text:
        text = html.unescape(text)
    return clean_text(text)


def _text_to_html(text: str | None) -> str | None:
    return html.escape(text, quote=False) if text else None


def _json_item(raw: Mapping[str, Any], base: str, feed_author: str | None) -> Item | None:
    guid = _str(raw.get("id"))
    url = absolute_url(base, _str(raw.get("url")))
    external = absolute_url(base, _str(raw.get("external_url")))
    title = _json_title(raw.get("title"))
    content = _str(raw.get("content_html")) or _text_to_html(_str(raw.get("content_text")))
    summary = _text_to_html(_str(raw.get("summary")))
    if not (guid or url or external or title or content):
        return None
    found = _MediaList(base)
    found.add(_str(raw.get("image")), medium="image")
    found.add(_str(raw.get("banner_image")), medium="image")
    attachments = raw.get("attachments")
    for att in attachments if isinstance(attachments, list) else ():
        if isinstance(att, dict):
            found.add(
                _str(att.get("url")),
                mime=_str(att.get("mime_type")),
                length=att.get("size_in_bytes"),
                title=att.get("title"),
            )
    media = found.items
    image = next((m.url for m in media if m.medium == "image"), None)
    if image is None and content and "<img" in content.lower():
        image = _image({}, [], content, None, base)
    extra: dict[str, Any] = {}
    if external:
        extra["external_url"] = external
    tags = raw.get("tags")
    return Item(
        key=item_key(guid, url or external, title, summary or content),
        title=title,
        url=url or external,
        summary=summary,
        content=content,
        image=image,
        media=tuple(media),
        author=_json_author(raw) or feed_author,
        published=parse_datetime(_str(raw.get("date_published"))),
        updated=parse_datetime(_str(raw.get("date_modified"))),
        tags=_tags(_str(t) for t in tags) if isinstance(tags, list) else (),
        extra=extra,
    )
