"""Item HTML to what each channel accepts: Telegram's HTML subset, plain text, safe email HTML.

Everything here is a pure function of its arguments: no network, no I/O.

- :func:`telegram_html` sanitises any (broken) HTML into Telegram's parse-mode subset;
  :func:`validate_telegram_html` checks text the way the Bot API does and raises
  :class:`TelegramHtmlError` with Telegram's wording; :func:`telegram_text_length`
  counts what Telegram counts (UTF-16 code units after entity parsing).
- :func:`plain_text` and :func:`email_html` serve Messenger, email and webhooks.
- :func:`truncate_telegram`, :func:`truncate_text` and :func:`pack` fit content to a
  provider's limit without breaking tags, entities or graphemes.

HTML is parsed with lxml (libxml2's HTML5 tokenizer), which never gives up on broken
markup; the output is built from the tree, so it always nests properly.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urljoin, urlsplit

import lxml.etree
import lxml.html

from feedcast.kernel.errors import TelegramHtmlError
from layouts.text import ellipsis_cut, truncate_text, utf16_len

__all__ = [
    "email_html",
    "pack",
    "plain_text",
    "telegram_html",
    "telegram_text_length",
    "telegram_visible_text",
    "truncate_telegram",
    "truncate_text",
    "validate_telegram_html",
]


# --------------------------------------------------------------------------- escaping


def _escape(text: str) -> str:
    """Escape text for Telegram HTML and email HTML (``"`` needs no escape in text)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _escape_attr(text: str) -> str:
    return _escape(text).replace('"', "&quot;")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# ------------------------------------------------------------- Telegram's HTML parser

_PREFIX = "Bad Request: can't parse entities: "
_TEXT, _OPEN, _CLOSE = 0, 1, 2
_Token = tuple[int, str, str]  # kind, decoded text or tag name, source

_TG_TAGS = _words("a b strong i em u ins s strike del code pre blockquote span tg-spoiler tg-emoji")
_TG_ATTRS: dict[str, frozenset[str]] = {
    "a": frozenset({"href"}),
    "code": frozenset({"class"}),
    "span": frozenset({"class"}),
    "tg-emoji": frozenset({"emoji-id"}),
    "blockquote": frozenset({"expandable"}),
}
_NO_ATTRS: frozenset[str] = frozenset()
_TG_SPACE = frozenset(" \t\r\n\x00\x0b\x0c")  # td::is_space; NUL ends a tag like end of text
_NAME_TOKEN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")
_SPECIAL = re.compile(r"[<>&]")
_ENTITY = re.compile(r"&(?:([A-Za-z]+)|#x([0-9A-Fa-f]*)|#([0-9]*))(;?)")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_INT64 = re.compile(r"-?[0-9]{1,19}\Z")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _fail(text: str, index: int, what: str) -> TelegramHtmlError:
    offset = len(text[:index].encode("utf-8"))
    return TelegramHtmlError(f"{_PREFIX}{what} at byte offset {offset}", offset)


def _numeric(m: re.Match[str]) -> int:
    """The code point of a numeric reference by Telegram's rules; 0 when invalid."""
    hex_digits, dec_digits = m.group(2), m.group(3)
    digits, base, head = (hex_digits, 16, 3) if hex_digits is not None else (dec_digits, 10, 2)
    if not digits or head + len(digits) >= 10:  # Telegram: at most 9 bytes before ';'
        return 0
    code = int(digits, base)
    return 0 if code >= 0x10FFFF else code


def _entity(text: str, index: int) -> tuple[str, int]:
    """Decode the entity at ``text[index] == '&'``: (character, end), or raise."""
    m = _ENTITY.match(text, index)
    if m is None:
        raise _fail(text, index, 'Unescaped "&"')
    if m.group(1) is not None:
        char = _NAMED.get(m.group(1))
        code = ord(char) if char else 0
    else:
        code = _numeric(m)
    if not m.group(4):  # strict: Telegram reads "&amp" as "&amp;", the documentation does not
        raise _fail(text, index, 'Unescaped "&"')
    if not code:
        raise _fail(text, index, f'Unsupported HTML entity "{m.group(0)}"')
    if 0xD800 <= code <= 0xDFFF:
        raise TelegramHtmlError(
            f"{_PREFIX}Text contains invalid Unicode characters after decoding HTML entities, "
            "check for unmatched surrogate code units"
        )
    return chr(code), m.end()


def _attr_value(raw: str) -> str:
    """Decode an attribute value as Telegram does: known entities decoded, the rest literal."""

    def one(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            return _NAMED.get(m.group(1), m.group(0))
        code = _numeric(m)
        return chr(code) if code and not 0xD800 <= code <= 0xDFFF else m.group(0)

    return _ENTITY.sub(one, raw) if "&" in raw else raw


def _skip_space(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i] in _TG_SPACE and text[i] != "\x00":
        i += 1
    return i


def _at_end(text: str, i: int) -> bool:
    return i >= len(text) or text[i] == "\x00"


def _start_tag(text: str, begin: int, stack: list[list[Any]], tokens: list[_Token]) -> int:
    n = len(text)
    i = begin + 1
    while i < n and text[i] not in _TG_SPACE and text[i] != ">":
        i += 1
    if _at_end(text, i):
        raise _fail(text, begin, "Unclosed start tag")
    name = text[begin + 1 : i].translate(_ASCII_LOWER)
    if name not in _TG_TAGS:
        raise _fail(text, begin, f'Unsupported start tag "{name}"')
    allowed = _TG_ATTRS.get(name, _NO_ATTRS)
    attrs: dict[str, str] = {}
    while True:
        i = _skip_space(text, i)
        if i < n and text[i] == ">":
            i += 1
            break
        start = i
        while i < n and text[i] not in _TG_SPACE and text[i] not in "=>/\"'":
            i += 1
        attr = text[start:i]
        if not attr:
            raise _fail(text, begin, f'Empty attribute name in the tag "{name}"')
        if attr not in allowed:
            raise _fail(text, begin, f'Unsupported attribute "{attr}" in the tag "{name}"')
        i = _skip_space(text, i)
        if _at_end(text, i):
            raise _fail(text, begin, f'Unclosed start tag "{name}"')
        if text[i] != "=":
            if attr != "expandable":
                raise _fail(
                    text, begin, f'Expected equal sign in declaration of an attribute of the tag "{name}"'
                )
            attrs[attr] = ""
            continue
        i = _skip_space(text, i + 1)
        if _at_end(text, i):
            raise _fail(text, begin, f'Unclosed start tag "{name}"')
        if text[i] in "\"'":
            quote = text[i]
            end = i + 1
            while end < n and text[end] != quote and text[end] != "\x00":
                end += 1
            value = _attr_value(text[i + 1 : end])
            i = end + 1 if end < n and text[end] == quote else end
        else:
            start = i
            while i < n and text[i] in _NAME_TOKEN:
                i += 1
            value = text[start:i].translate(_ASCII_LOWER)
            if i < n and text[i] not in _TG_SPACE and text[i] != ">":
                raise _fail(text, start, "Unexpected end of name token")
        if _at_end(text, i):
            raise _fail(text, begin, "Unclosed start tag")
        attrs[attr] = value
    if name == "a" and not attrs.get("href"):
        raise _fail(text, begin, 'Tag "a" must have attribute "href"')
    if name == "span" and attrs.get("class") != "tg-spoiler":
        raise _fail(text, begin, 'Tag "span" must have class "tg-spoiler"')
    if name == "code" and not attrs.get("class", "language-").startswith("language-"):
        raise _fail(text, begin, 'Unsupported value of attribute "class" in the tag "code"')
    if name == "tg-emoji":
        emoji_id = attrs.get("emoji-id", "")
        if not _INT64.match(emoji_id) or not (-(2**63) <= int(emoji_id) < 2**63) or int(emoji_id) == 0:
            raise TelegramHtmlError(f"{_PREFIX}Invalid custom emoji identifier specified")
    if stack:
        parent, parent_has_content = stack[-1]
        if parent == "code" or (parent == "pre" and (name != "code" or parent_has_content)):
            raise _fail(text, begin, f'Unsupported start tag "{name}" inside "{parent}"')
        if name in ("a", "blockquote") and any(entry[0] == name for entry in stack):
            raise _fail(text, begin, f'Unsupported start tag "{name}" inside "{name}"')
        stack[-1][1] = True
    stack.append([name, False])
    tokens.append((_OPEN, name, text[begin:i]))
    return i


def _end_tag(text: str, begin: int, stack: list[list[Any]], tokens: list[_Token]) -> int:
    if not stack:
        raise _fail(text, begin, "Unexpected end tag")
    n = len(text)
    i = begin + 2
    while i < n and text[i] not in _TG_SPACE and text[i] != ">":
        i += 1
    name = text[begin + 2 : i].translate(_ASCII_LOWER)
    i = _skip_space(text, i)
    if i >= n or text[i] != ">":
        raise _fail(text, begin, "Unclosed end tag")
    expected = stack[-1][0]
    if name != expected:
        offset = len(text[:begin].encode("utf-8"))
        raise TelegramHtmlError(
            f'{_PREFIX}Unmatched end tag at byte offset {offset}, expected "</{expected}>", found "</{name}>"',
            offset,
        )
    stack.pop()
    if stack:
        stack[-1][1] = True
    tokens.append((_CLOSE, name, text[begin : i + 1]))
    return i + 1


def _tg_parse(text: str) -> list[_Token]:
    """Tokenise Telegram HTML, enforcing the rules of ``validate_telegram_html``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise TelegramHtmlError("Bad Request: strings must be encoded in UTF-8") from None
    tokens: list[_Token] = []
    stack: list[list[Any]] = []  # [tag name, has content]
    n = len(text)
    i = 0
    while i < n:
        m = _SPECIAL.search(text, i)
        j = n if m is None else m.start()
        if j > i:
            chunk = text[i:j]
            tokens.append((_TEXT, chunk, chunk))
            if stack:
                stack[-1][1] = True
        if j >= n:
            break
        char = text[j]
        if char == "&":
            decoded, i = _entity(text, j)
            tokens.append((_TEXT, decoded, text[j:i]))
            if stack:
                stack[-1][1] = True
        elif char == ">":
            raise _fail(text, j, 'Unescaped ">"')
        elif j + 1 < n and text[j + 1] == "/":
            i = _end_tag(text, j, stack, tokens)
        else:
            i = _start_tag(text, j, stack, tokens)
    if stack:
        raise TelegramHtmlError(f"{_PREFIX}Can't find end tag corresponding to start tag {stack[-1][0]}")
    return tokens


def validate_telegram_html(text: str) -> None:
    """Raise :class:`TelegramHtmlError` unless ``text`` is valid for ``parse_mode=HTML``.

    Telegram's parser (tdlib ``parse_html``) plus the documented rules it is lax
    about, so that nothing passes here that Telegram would reject or mangle: only
    the supported tags and their attributes (``a[href]`` required, ``code[class^=
    language-]``, ``span.tg-spoiler``, ``tg-emoji[emoji-id]``, ``blockquote
    [expandable]``); tags closed in order; only ``&lt; &gt; &amp; &quot;`` and
    numeric references, each ended by ``;``; no bare ``< > &``; nothing inside
    ``code``, only a leading ``code`` inside ``pre``; no nested ``a`` or
    ``blockquote``.
    """
    _tg_parse(text)


def telegram_visible_text(text: str) -> str:
    """The text Telegram shows for valid Telegram HTML: tags removed, entities decoded."""
    return "".join(value for kind, value, _ in _tg_parse(text) if kind == _TEXT)


def telegram_text_length(text: str) -> int:
    """What Telegram counts against its limits: UTF-16 code units after entity parsing."""
    return utf16_len(telegram_visible_text(text))


# ------------------------------------------------------------------- reading HTML

_local = threading.local()
# characters libxml2 refuses or no channel should carry: C0/C1 controls (a form feed
# becomes a space), lone surrogates, the noncharacters U+FFFE and U+FFFF
_UNWANTED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]")


def _unwanted(m: re.Match[str]) -> str:
    return " " if m.group() == "\x0c" else ""


def _parser() -> Any:
    parser = getattr(_local, "parser", None)
    if parser is None:  # lxml parsers are not re-entrant: one per thread
        parser = lxml.html.HTMLParser(
            encoding="utf-8", remove_comments=True, remove_pis=True, no_network=True
        )
        _local.parser = parser
    return parser


def _body(html: str) -> Any:
    """The ``<body>`` element of ``html`` parsed leniently, or None when there is nothing."""
    if _UNWANTED.search(html):
        html = _UNWANTED.sub(_unwanted, html)
    data = html.encode("utf-8")
    if not data.strip():
        return None
    try:
        root = lxml.etree.fromstring(data, _parser())
    except (lxml.etree.LxmlError, ValueError):  # libxml2 recovers from everything seen so far
        return None
    return None if root is None else root.find("body")


def _clean_url(href: str | None, base_url: str | None) -> str | None:
    """``href`` as a browser reads it (outer controls and inner tabs/newlines removed),
    resolved against ``base_url``; None when empty or unparseable."""
    if not href:
        return None
    url = href.strip("".join(map(chr, range(0x21)))).replace("\t", "").replace("\n", "").replace("\r", "")
    if not url:
        return None
    if base_url:
        try:
            url = urljoin(base_url, url)
        except ValueError:
            return None
    return url


def _scheme(url: str) -> tuple[str, str] | None:
    """(scheme, netloc) of ``url``, lower-cased; None when unparseable."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return parts.scheme.lower(), parts.netloc


_URL_UNSAFE = str.maketrans({" ": "%20", '"': "%22", "<": "%3C", ">": "%3E", "`": "%60"})
_TG_SCHEMES = frozenset({"http", "https", "tg", "mailto"})
_WEB_SCHEMES = frozenset({"http", "https"})


def _link(href: str | None, base_url: str | None, schemes: frozenset[str]) -> str | None:
    """An absolute URL with an allowed scheme, or None."""
    url = _clean_url(href, base_url)
    parts = _scheme(url) if url else None
    if url is None or parts is None or parts[0] not in schemes:
        return None
    if parts[0] in _WEB_SCHEMES and not parts[1]:
        return None
    return url.translate(_URL_UNSAFE)


# -------------------------------------------------------------- rendering a tree


class _Writer:
    """Output under construction. Spaces, line breaks, bullets and opening tags wait
    until text follows them, so nothing dangles and empty elements vanish."""

    def __init__(self, markup: bool) -> None:
        self.markup = markup
        self.out: list[str] = []
        self.started = False
        self.newlines = 0
        self.space = False
        self.sep = ""
        self.prefix = ""
        self.stack: list[list[Any]] = []  # [name, opening tag, emitted]

    def has(self, name: str) -> bool:
        return any(entry[0] == name for entry in self.stack)

    def _flush(self) -> None:
        if self.started:
            if self.newlines:
                self.out.append("\n" * self.newlines)
            elif self.sep:
                self.out.append(self.sep)
            elif self.space:
                self.out.append(" ")
        self.newlines, self.space, self.sep = 0, False, ""
        if self.prefix:
            self.out.append(self.prefix if self.started else self.prefix.lstrip())
            self.prefix = ""
        for entry in self.stack:
            if not entry[2]:
                self.out.append(entry[1])
                entry[2] = True
        self.started = True

    def text(self, text: str) -> None:
        if not text:
            return
        words = " ".join(text.split())
        if text[0].isspace():
            self.space = True
        if words:
            self._flush()
            self.out.append(_escape(words) if self.markup else words)
            if text[-1].isspace():
                self.space = True

    def unit(self, chunk: str, *, space_before: bool = False, space_after: bool = False) -> None:
        """A ready-made piece (``<pre>``, ``<code>``): its whitespace is its own."""
        if space_before:
            self.space = True
        self._flush()
        self.out.append(chunk)
        if space_after:
            self.space = True

    def block(self, newlines: int) -> None:
        if self.started and not self.prefix:
            self.newlines = max(self.newlines, newlines)

    def br(self) -> None:
        if self.started and not self.prefix:
            self.newlines = min(2, self.newlines + 1)

    def open(self, name: str, tag: str) -> None:
        self.stack.append([name, tag, False])

    def close(self) -> None:
        name, _, emitted = self.stack.pop()
        if emitted and self.markup:
            self.out.append(f"</{name}>")

    def result(self) -> str:
        return "".join(self.out)


# removed with their content
_DROP = _words(
    """script style template head title meta link base iframe frame frameset object embed applet
    param noscript noembed noframes svg math canvas audio video source track map area input select
    textarea button option optgroup datalist keygen portal"""
)
# blocks: a blank line around them, or a line break
_BLOCK2 = _words(
    """p h1 h2 h3 h4 h5 h6 blockquote pre ul ol dl table figure hr section article header footer main
    nav aside details fieldset address hgroup form"""
)
_BLOCK1 = _words("div li tr dt dd figcaption summary caption legend center")
# void elements libxml2 takes for containers: what it puts inside them follows them
_VOID = _words("embed keygen source track wbr bgsound image menuitem param area")
_HEADINGS = _words("h1 h2 h3 h4 h5 h6")
_FORMAT = {
    "b": "b",
    "strong": "b",
    "i": "i",
    "em": "i",
    "cite": "i",
    "dfn": "i",
    "var": "i",
    "u": "u",
    "ins": "u",
    "s": "s",
    "strike": "s",
    "del": "s",
    "tg-spoiler": "tg-spoiler",
}
_CODE = _words("code kbd samp tt")
_LANGUAGE = re.compile(r"\b(?:language|lang)-([A-Za-z0-9_+#.-]{1,32})")


def _inner_text(el: Any, *, pre: bool) -> str:
    """Text of ``el`` and its descendants; ``<br>`` as newline; dropped elements skipped."""
    parts: list[str] = []
    walker = lxml.etree.iterwalk(el, events=("start", "end"))
    for event, node in walker:
        if node is el:
            if event == "start" and node.text:
                parts.append(node.text)
            continue
        if event == "start":
            if node.tag in _DROP and node.tag not in _VOID:
                walker.skip_subtree()
            elif node.tag == "br":
                parts.append("\n")
            elif node.text:
                parts.append(node.text)
        elif node.tail:
            parts.append(node.tail)
    text = "".join(parts)
    if pre:
        return text.lstrip("\n").rstrip()
    return text


def _code_language(pre: Any) -> str:
    for node in pre.iter("code", "pre"):
        m = _LANGUAGE.search(node.get("class") or "")
        if m:
            return m.group(1)
    return ""


def _render(
    body: Any, *, markup: bool, base_url: str | None, links: bool = False, keep_image_links: bool = False
) -> str:
    w = _Writer(markup)
    lists: list[list[int]] = []  # [is ordered, next number, items seen] per open list
    rows: list[list[int]] = []  # [cells seen] per <tr>
    # per open element: (writer entries pushed, newlines after, link URL to show, output length)
    actions: list[tuple[int, int, str, int]] = []
    walker = lxml.etree.iterwalk(body, events=("start", "end"))
    for event, el in walker:
        tag = el.tag if isinstance(el.tag, str) else ""
        if event == "end":
            pushed, after, url, mark = actions.pop()
            for _ in range(pushed):
                w.close()
            if url:
                shown = "".join(w.out[mark:]).strip()
                if shown and shown != url and shown != url.split(":", 1)[-1].strip("/"):
                    w.text(f" ({url})")
            if tag in ("ul", "ol"):
                lists.pop()
            elif tag == "tr":
                rows.pop()
            if after:
                w.block(after)
            if el.tail:
                w.text(el.tail)
            continue

        pushed, after, url = 0, 0, ""
        if tag in _DROP and tag not in _VOID:
            walker.skip_subtree()
            actions.append((0, 0, "", 0))
            continue
        if tag in _BLOCK2:
            after = 1 if tag in ("ul", "ol") and lists else 2
            w.block(after)
        elif tag in _BLOCK1:
            after = 1
            w.block(1)
        skip = False
        if tag == "br":
            w.br()
        elif tag == "pre":
            content = _inner_text(el, pre=True)
            if content:
                if markup and all(entry[0] == "blockquote" for entry in w.stack):
                    language = _code_language(el)
                    inner = _escape(content)
                    if language:
                        inner = f'<code class="language-{_escape_attr(language)}">{inner}</code>'
                    w.unit(f"<pre>{inner}</pre>")
                else:
                    w.unit(_escape(content) if markup else content)
            skip = True
        elif tag in _CODE:
            raw = _inner_text(el, pre=False)
            content = " ".join(raw.split())
            if content:
                chunk = f"<code>{_escape(content)}</code>" if markup else content
                w.unit(chunk, space_before=raw[0].isspace(), space_after=raw[-1].isspace())
            elif raw:
                w.text(" ")
            skip = True
        elif tag in ("img", "image"):
            if keep_image_links and markup:
                label = " ".join((el.get("alt") or el.get("title") or "").split()) or "image"
                src = _link(el.get("src"), base_url, _WEB_SCHEMES)
                if w.has("a"):
                    w.text(f" {label} ")
                elif src:
                    w.open("a", f'<a href="{_escape_attr(src)}">')
                    w.text(label)
                    w.close()
        elif tag == "a":
            href = _link(el.get("href"), base_url, _TG_SCHEMES if markup else _TG_SCHEMES | {"tel"})
            if href and not w.has("a"):
                if markup:
                    w.open("a", f'<a href="{_escape_attr(href)}">')
                    pushed = 1
                elif links:
                    url = href
                    w.open("a", "")
                    pushed = 1
        elif tag in _FORMAT or tag == "span" or tag in _HEADINGS:
            if tag in _HEADINGS:
                name = "b"
            elif tag == "span":
                name = "tg-spoiler" if "tg-spoiler" in (el.get("class") or "").split() else ""
            else:
                name = _FORMAT[tag]
            if name and markup and not w.has(name):
                w.open(name, f"<{name}>")
                pushed = 1
        elif tag == "tg-emoji":
            emoji_id = (el.get("emoji-id") or "").strip()
            if markup and emoji_id.isascii() and emoji_id.isdigit() and 0 < int(emoji_id) < 2**63:
                w.open("tg-emoji", f'<tg-emoji emoji-id="{int(emoji_id)}">')
                pushed = 1
        elif tag == "blockquote":
            if markup and not w.stack:
                expandable = " expandable" if el.get("expandable") is not None else ""
                w.open("blockquote", f"<blockquote{expandable}>")
                pushed = 1
        elif tag in ("ul", "ol"):
            start = 1
            if tag == "ol":
                try:
                    start = int(el.get("start") or 1)
                except ValueError:
                    start = 1
            lists.append([tag == "ol", start, 0])
        elif tag == "li":
            indent = "  " * max(0, len(lists) - 1)
            if lists:
                if lists[-1][2]:  # items of one list are one line apart, whatever they hold
                    w.newlines = min(w.newlines, 1)
                lists[-1][2] += 1
            if lists and lists[-1][0]:
                w.prefix = f"{indent}{lists[-1][1]}. "
                lists[-1][1] += 1
            else:
                w.prefix = f"{indent}• "
        elif tag == "tr":
            rows.append([0])
        elif tag in ("td", "th") and rows:
            if rows[-1][0]:
                w.sep = " | "
            rows[-1][0] += 1
        actions.append((pushed, after, url, len(w.out)))
        if skip:
            walker.skip_subtree()
        elif el.text:
            w.text(el.text)
    return w.result()


def telegram_html(html: str, base_url: str | None = None, *, keep_image_links: bool = False) -> str:
    """Sanitise any HTML into Telegram's parse-mode subset; the result always passes
    :func:`validate_telegram_html`.

    Unsupported tags are unwrapped (text kept); ``script``, ``style``, forms, media
    and the like are removed with their content; paragraphs, divs, list items, table
    rows and ``<br>`` become line breaks (items as ``• `` or ``1. ``, cells joined by
    `` | ``); headings become bold. Images are dropped, or become links when
    ``keep_image_links``. Links are resolved against ``base_url``; only http(s), tg
    and mailto links are kept. Whitespace is collapsed (except in ``pre``), with at
    most one blank line in a row, and trimmed.
    """
    body = _body(html)
    if body is None:
        return ""
    return _render(body, markup=True, base_url=base_url, keep_image_links=keep_image_links)


def plain_text(html: str, base_url: str | None = None, *, links: bool = False) -> str:
    """Readable plain text of ``html``: paragraphs and line breaks, ``• `` list items,
    entities decoded, scripts and styles gone; with ``links``, ``text (url)``."""
    body = _body(html)
    if body is None:
        return ""
    return _render(body, markup=False, base_url=base_url, links=links)


# ----------------------------------------------------------------------- email

_EMAIL_DROP = _DROP - {"canvas", "map", "area"}  # removed with their content
# kept as they are (other elements are unwrapped: their content stays)
_EMAIL_TAGS = _words(
    """a abbr acronym address article aside b bdi bdo big blockquote br caption center cite code col
    colgroup dd del details dfn div dl dt em figcaption figure font footer h1 h2 h3 h4 h5 h6 header
    hgroup hr i img ins kbd li main mark nav ol p picture pre q s samp section small span strike
    strong sub summary sup table tbody td tfoot th thead time tr tt u ul var wbr"""
)
# the only attributes kept (minus unsafe values)
_EMAIL_ATTRS = _words(
    """href src alt title width height style class dir lang align valign border cellpadding
    cellspacing colspan rowspan bgcolor color face size target rel start type value datetime cite
    srcset sizes scope headers abbr span hspace vspace background reversed open"""
)
_URL_ATTRS = _words("href src cite background")
_EMAIL_SCHEMES = frozenset({"http", "https", "mailto", "tel"})
_SRC_ATTRS = _words("src background")
_DATA_IMAGE = re.compile(r"data:image/(?:png|gif|jpe?g|webp|bmp|avif);", re.I)
_BAD_CSS = re.compile(
    r"expression|javascript|vbscript|behavior|binding|@import|\\|url\s*\(\s*['\"]?\s*data:", re.I
)
_IMG_STYLE = "max-width:100%;height:auto"


def _email_url(value: str, base_url: str | None, *, image: bool) -> str | None:
    url = _clean_url(value, base_url)
    if url is None:
        return None
    parts = _scheme(url)
    if parts is None:
        return None
    scheme = parts[0]
    if scheme in _EMAIL_SCHEMES or (not scheme and not base_url):
        return url.translate(_URL_UNSAFE) if scheme else url
    if image and scheme == "cid":
        return url
    if image and scheme == "data" and _DATA_IMAGE.match(url.replace(" ", "")):
        return url
    return None


def _srcset(value: str, base_url: str | None) -> str | None:
    kept = []
    for candidate in value.split(","):
        fields = candidate.split()
        if not fields:
            continue
        url = _email_url(fields[0], base_url, image=False)
        if url:
            kept.append(" ".join([url, *fields[1:]]))
    return ", ".join(kept) or None


def email_html(html: str, base_url: str | None = None) -> str:
    """Safe HTML for an email body: no scripts, styles, frames, plugins, forms or
    event handlers; only http(s) / mailto / tel links and http(s) / cid /
    ``data:image`` images, resolved against ``base_url``; formatting, images (made
    ``max-width:100%``) and tables kept."""
    body = _body(html)
    if body is None:
        return ""
    for el in list(body.iter()):
        if el is body:
            continue
        tag = el.tag if isinstance(el.tag, str) else ""
        if (tag in _EMAIL_DROP and tag not in _VOID) or not tag:
            el.drop_tree()
            continue
        if tag not in _EMAIL_TAGS:
            el.drop_tag()
            continue
        for name, value in list(el.attrib.items()):
            del el.attrib[name]
            key = name.lower()
            if key not in _EMAIL_ATTRS:
                continue
            if key in _URL_ATTRS:
                value = _email_url(value, base_url, image=key in _SRC_ATTRS)
            elif key == "srcset":
                value = _srcset(value, base_url)
            elif key == "style" and _BAD_CSS.search(value):
                value = None
            if value is not None:
                el.set(key, value)
        if tag == "img":
            style = (el.get("style") or "").strip().rstrip(";")
            el.set("style", f"{style};{_IMG_STYLE}" if style else _IMG_STYLE)
    parts = [_escape(body.text or "")]
    parts.extend(lxml.html.tostring(child, encoding="unicode", method="html") for child in body)
    return "".join(parts).strip()


# ------------------------------------------------------------- fitting the limits


def truncate_telegram(html: str, limit: int, ellipsis: str = "…") -> str:
    """Valid Telegram HTML whose :func:`telegram_text_length` is at most ``limit``.

    ``html`` (valid Telegram HTML) is returned as is when it fits; otherwise its text is
    cut at a word boundary (a grapheme boundary where words are too long or have no
    spaces), open tags are closed, and ``ellipsis`` is appended. Tags and entities are
    never broken; elements that would be left empty are dropped.
    """
    tokens = _tg_parse(html)
    text = "".join(value for kind, value, _ in tokens if kind == _TEXT)
    cut = ellipsis_cut(text, limit, ellipsis, unit="utf16")
    if cut is None:
        return html
    keep, ellipsis = cut  # (0, ""): nothing fits, the loop below keeps nothing
    out: list[str] = []
    stack: list[str] = []
    pending: list[tuple[str, str]] = []  # opened, no text yet
    used = 0
    for kind, value, source in tokens:
        if used >= keep:
            break
        if kind == _OPEN:
            pending.append((value, source))
        elif kind == _CLOSE:
            if pending:
                pending.pop()
            else:
                out.append(source)
                stack.pop()
        else:
            for name, opening in pending:
                out.append(opening)
                stack.append(name)
            pending.clear()
            take = min(len(value), keep - used)
            out.append(source if take == len(value) else _escape(value[:take]))
            used += take
    out.extend(f"</{name}>" for name in reversed(stack))
    out.append(_escape(ellipsis))
    return "".join(out)


def pack(
    blocks: Sequence[str],
    limit: int,
    *,
    separator: str = "\n\n",
    length: Callable[[str], int] = telegram_text_length,
    truncate: Callable[[str, int], str] = truncate_telegram,
) -> list[str]:
    """Greedily join whole ``blocks`` with ``separator`` into as few messages as possible,
    each at most ``limit`` by ``length``. A block longer than ``limit`` on its own is
    passed through ``truncate(block, limit)`` and sent alone.

    ``length`` must add up over concatenation (true of :func:`telegram_text_length` for
    valid blocks, and of ``len``). For plain text pass ``length=len`` (or a UTF-16
    count) and ``truncate=truncate_text``.
    """
    messages: list[str] = []
    current: list[str] = []
    size = 0
    gap = length(separator)
    for block in blocks:
        n = length(block)
        if n > limit:
            block = truncate(block, limit)
            n = length(block)
        if current and size + gap + n <= limit:
            current.append(block)
            size += gap + n
        else:
            if current:
                messages.append(separator.join(current))
            current, size = [block], n
    if current:
        messages.append(separator.join(current))
    return messages
