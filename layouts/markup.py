"""The composer's markup: what a marketer writes in a message file's ``text`` and
``caption``, and how each format says it.

The markup is a small part of Markdown, parsed by markdown-it-py with every other rule
off:

===========================  ===================================================
``**bold**`` or ``__bold__``  bold
``*italic*`` or ``_italic_``  italic
``[label](https://...)``      a link (http, https, mailto, tel, tg; any other
                              target stays text)
``<https://...>``             a link showing its address
a line break                  a line break; an empty line starts a paragraph
``\\*``                        a literal ``*`` (any mark can be escaped)
===========================  ===================================================

Nothing else is markup: HTML tags, headings, lists and code are text, shown as written.
:func:`parse` makes :class:`Span` runs of paragraphs; the renderers make the markup of a
format (Telegram HTML, email HTML, Messenger plain text, Slack mrkdwn, Discord markdown)
and each format's :class:`~layouts.formats.Format` names its renderer (``markup``).

Plain Python (markdown-it-py); no network.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from typing import Final

from markdown_it import MarkdownIt

from feedcast.kernel.urls import safe_url

__all__ = [
    "LINK_SCHEMES",
    "Span",
    "parse",
    "plain",
    "to_discord",
    "to_html",
    "to_plain",
    "to_slack",
    "to_telegram",
]

LINK_SCHEMES: Final = frozenset({"http", "https", "mailto", "tel", "tg"})


@dataclass(frozen=True, slots=True)
class Span:
    """A run of text with one set of marks; ``text == "\\n"`` with no marks is a line
    break. ``href``: the link the run is part of."""

    text: str
    bold: bool = False
    italic: bool = False
    href: str | None = None


Paragraph = tuple[Span, ...]


@functools.cache
def _parser() -> MarkdownIt:
    md = MarkdownIt("zero", {"breaks": True})
    return md.enable(["emphasis", "link", "newline", "escape", "autolink"])


def parse(text: str) -> tuple[Paragraph, ...]:
    """The paragraphs of ``text`` as runs of :class:`Span`."""
    paragraphs: list[Paragraph] = []
    for token in _parser().parse(text or ""):
        if token.type != "inline":
            continue
        spans: list[Span] = []
        bold = italic = 0
        href: str | None = None
        for child in token.children or ():
            kind = child.type
            if kind == "text" and child.content:
                spans.append(Span(child.content, bold > 0, italic > 0, href))
            elif kind in ("softbreak", "hardbreak"):
                spans.append(Span("\n"))
            elif kind == "strong_open":
                bold += 1
            elif kind == "strong_close":
                bold -= 1
            elif kind == "em_open":
                italic += 1
            elif kind == "em_close":
                italic -= 1
            elif kind == "link_open":
                href = safe_url(str(child.attrs.get("href") or ""), LINK_SCHEMES, raw=False)
            elif kind == "link_close":
                href = None
        if spans:
            paragraphs.append(tuple(spans))
    return tuple(paragraphs)


@dataclass(frozen=True, slots=True)
class _Style:
    """How a format writes the markup: its escaping, its marks, its links, its breaks."""

    escape_text: Callable[[str], str]
    bold: tuple[str, str]
    italic: tuple[str, str]
    link: Callable[[str, str], str]
    line: str = "\n"
    paragraph: str = "\n\n"


def _render(text: str, style: _Style) -> str:
    out: list[str] = []
    for spans in parse(text):
        parts: list[str] = []
        index = 0
        while index < len(spans):
            span = spans[index]
            if span.href is not None:  # the whole link: its runs, then the target
                end = index
                while end < len(spans) and spans[end].href == span.href:
                    end += 1
                label = "".join(_marked(s, style) for s in spans[index:end])
                parts.append(style.link(span.href, label))
                index = end
                continue
            parts.append(style.line if span.text == "\n" else _marked(span, style))
            index += 1
        out.append("".join(parts))
    return style.paragraph.join(out)


def _marked(span: Span, style: _Style) -> str:
    if span.text == "\n":
        return "\n"
    text = style.escape_text(span.text)
    if span.italic:
        text = f"{style.italic[0]}{text}{style.italic[1]}"
    if span.bold:
        text = f"{style.bold[0]}{text}{style.bold[1]}"
    return text


def _html_escape(text: str) -> str:
    return escape(text, quote=False)


def _html_link(target: str) -> Callable[[str, str], str]:
    return lambda href, label: f'<a href="{escape(href, quote=True)}"{target}>{label}</a>'


_TELEGRAM = _Style(_html_escape, ("<b>", "</b>"), ("<i>", "</i>"), _html_link(""))
_EMAIL = _Style(
    _html_escape,
    ("<strong>", "</strong>"),
    ("<em>", "</em>"),
    _html_link(' target="_blank"'),
    "<br>\n",
    "</p>\n<p>",
)


def to_telegram(text: str) -> str:
    """Telegram's HTML parse mode: ``<b>``, ``<i>``, ``<a href>``, newlines."""
    return _render(text, _TELEGRAM)


def to_html(text: str) -> str:
    """Email HTML: paragraphs of ``<p>``, ``<strong>``, ``<em>``, ``<a href>``, ``<br>``."""
    body = _render(text, _EMAIL)
    return f"<p>{body}</p>" if body else ""


def _identity(text: str) -> str:
    return text


def _plain_link(href: str, label: str) -> str:
    target = href.removeprefix("mailto:").removeprefix("tel:")
    return target if label.strip() in (href, target) else f"{label} ({target})"


_PLAIN = _Style(_identity, ("", ""), ("", ""), _plain_link)


def to_plain(text: str) -> str:
    """Plain text (Messenger, the plain part of an email): marks dropped, links as
    ``label (address)``."""
    return _render(text, _PLAIN)


def plain(text: str) -> str:
    """The words of ``text`` on one line, without marks (an alt text, a subject)."""
    return " ".join(to_plain(text).split())


_SLACK_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def _slack_escape(text: str) -> str:
    return text.translate(_SLACK_ESCAPES)


_SLACK = _Style(
    _slack_escape, ("*", "*"), ("_", "_"), lambda href, label: f"<{href.replace('|', '%7C')}|{label}>"
)


def to_slack(text: str) -> str:
    """Slack mrkdwn: ``*bold*``, ``_italic_``, ``<url|label>``."""
    return _render(text, _SLACK)


_DISCORD_MARKS = re.compile(r"([\\*_~`|>#\[\]()-])")


def _discord_escape(text: str) -> str:
    return _DISCORD_MARKS.sub(r"\\\1", text)


_DISCORD = _Style(_discord_escape, ("**", "**"), ("*", "*"), lambda href, label: f"[{label}](<{href}>)")


def to_discord(text: str) -> str:
    """Discord markdown: ``**bold**``, ``*italic*``, ``[label](url)``."""
    return _render(text, _DISCORD)
