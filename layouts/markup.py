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


def _render(
    text: str,
    *,
    escape_text: Callable[[str], str],
    bold: tuple[str, str],
    italic: tuple[str, str],
    link: Callable[[str, str], str],
    line: str = "\n",
    paragraph: str = "\n\n",
) -> str:
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
                label = "".join(_marked(s, escape_text, bold, italic) for s in spans[index:end])
                parts.append(link(span.href, label))
                index = end
                continue
            parts.append(line if span.text == "\n" else _marked(span, escape_text, bold, italic))
            index += 1
        out.append("".join(parts))
    return paragraph.join(out)


def _marked(
    span: Span, escape_text: Callable[[str], str], bold: tuple[str, str], italic: tuple[str, str]
) -> str:
    if span.text == "\n":
        return "\n"
    text = escape_text(span.text)
    if span.italic:
        text = f"{italic[0]}{text}{italic[1]}"
    if span.bold:
        text = f"{bold[0]}{text}{bold[1]}"
    return text


def _html_escape(text: str) -> str:
    return escape(text, quote=False)


def to_telegram(text: str) -> str:
    """Telegram's HTML parse mode: ``<b>``, ``<i>``, ``<a href>``, newlines."""
    return _render(
        text,
        escape_text=_html_escape,
        bold=("<b>", "</b>"),
        italic=("<i>", "</i>"),
        link=lambda href, label: f'<a href="{escape(href, quote=True)}">{label}</a>',
    )


def to_html(text: str) -> str:
    """Email HTML: paragraphs of ``<p>``, ``<strong>``, ``<em>``, ``<a href>``, ``<br>``."""
    body = _render(
        text,
        escape_text=_html_escape,
        bold=("<strong>", "</strong>"),
        italic=("<em>", "</em>"),
        link=lambda href, label: f'<a href="{escape(href, quote=True)}" target="_blank">{label}</a>',
        line="<br>\n",
        paragraph="</p>\n<p>",
    )
    return f"<p>{body}</p>" if body else ""


def _identity(text: str) -> str:
    return text


def _plain_link(href: str, label: str) -> str:
    target = href.removeprefix("mailto:").removeprefix("tel:")
    return target if label.strip() in (href, target) else f"{label} ({target})"


def to_plain(text: str) -> str:
    """Plain text (Messenger, the plain part of an email): marks dropped, links as
    ``label (address)``."""
    return _render(text, escape_text=_identity, bold=("", ""), italic=("", ""), link=_plain_link)


def plain(text: str) -> str:
    """The words of ``text`` on one line, without marks (an alt text, a subject)."""
    return " ".join(to_plain(text).split())


_SLACK_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def _slack_escape(text: str) -> str:
    return text.translate(_SLACK_ESCAPES)


def to_slack(text: str) -> str:
    """Slack mrkdwn: ``*bold*``, ``_italic_``, ``<url|label>``."""
    return _render(
        text,
        escape_text=_slack_escape,
        bold=("*", "*"),
        italic=("_", "_"),
        link=lambda href, label: f"<{href.replace('|', '%7C')}|{label}>",
    )


_DISCORD_MARKS = re.compile(r"([\\*_~`|>#\[\]()-])")


def _discord_escape(text: str) -> str:
    return _DISCORD_MARKS.sub(r"\\\1", text)


def to_discord(text: str) -> str:
    """Discord markdown: ``**bold**``, ``*italic*``, ``[label](url)``."""
    return _render(
        text,
        escape_text=_discord_escape,
        bold=("**", "**"),
        italic=("*", "*"),
        link=lambda href, label: f"[{label}](<{href}>)",
    )
