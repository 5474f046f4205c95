"""The safe HTML pieces the preview page of every format is made of.

Item content is untrusted: :func:`esc` escapes text for elements and quoted attributes,
:func:`anchor` and :func:`img` keep only safe URLs (``feedcast.kernel.urls.safe_url``),
:class:`Stash` sets converted markup aside while the rest of a text is escaped. Each
format's ``preview_call`` (:mod:`layouts.formats`) builds on these; the page around
the calls is :func:`feedcast.preview.preview_html`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import unquote, urlsplit

from feedcast.kernel.urls import LINK_SCHEMES, safe_url
from layouts.i18n import gettext

__all__ = [
    "Sender",
    "Stash",
    "anchor",
    "app_message",
    "app_window",
    "chat_window",
    "dicts_of",
    "esc",
    "file_name",
    "img",
    "plain_window",
    "raw_json",
    "text_of",
]


def text_of(value: object) -> str:
    """``value`` when it is a string, else "" (payload fields read leniently)."""
    return value if isinstance(value, str) else ""


def dicts_of(value: object) -> list[Mapping[str, Any]]:
    """The objects of a list field (anything else in it, or a field that is no list, ignored)."""
    if not isinstance(value, list | tuple):
        return []
    return [v for v in value if isinstance(v, Mapping)]


def file_name(url: str) -> str:
    """A file's name from its URL, else the host."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    name = unquote(parts.path.rstrip("/").rsplit("/", 1)[-1])
    return name or parts.hostname or url


def esc(text: object) -> str:
    """``text`` escaped for an element or a quoted attribute."""
    return escape(str(text), quote=True)


def anchor(url: object, inner_html: str, cls: str = "") -> str:
    """A link to ``url`` around markup, or the markup alone when the URL is unsafe."""
    safe = safe_url(url, LINK_SCHEMES, raw=False)
    if safe is None:
        return f'<span class="{cls}">{inner_html}</span>' if cls else inner_html
    klass = f' class="{cls}"' if cls else ""
    return f'<a{klass} href="{esc(safe)}" target="_blank" rel="noopener noreferrer nofollow">{inner_html}</a>'


def img(url: object, alt: str = "", cls: str = "") -> str:
    """An image of ``url``, or a "no image" box when the URL is unsafe."""
    safe = safe_url(url, raw=False)
    klass = f' class="{cls}"' if cls else ""
    if safe is None:
        missing = esc(gettext("no image"))
        return f'<div{klass} data-missing="1"><span class="noimg">{missing}</span></div>'
    return f'<img{klass} src="{esc(safe)}" alt="{esc(alt)}" referrerpolicy="no-referrer">'


_PLACEHOLDER = re.compile("\ue000(\\d+)\ue001")


class Stash:
    """Markup set aside while the rest of a text is escaped and formatted; it leaves
    a placeholder of private-use characters, which :meth:`clean` removes from input."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    @staticmethod
    def clean(text: str) -> str:
        return text.replace("\ue000", "\ufffd").replace("\ue001", "\ufffd")

    def put(self, html: str) -> str:
        self.parts.append(html)
        return f"\ue000{len(self.parts) - 1}\ue001"

    def restore(self, text: str) -> str:
        for _ in range(4):  # stashed markup may hold placeholders itself
            if "\ue000" not in text:
                break
            text = _PLACEHOLDER.sub(lambda m: self.parts[int(m.group(1))], text)
        return text

    @staticmethod
    def formatted(text: str, rules: Sequence[tuple[re.Pattern[str], str]]) -> str:
        """``text`` escaped, then what each rule's pattern (group 1) matches wrapped in
        its tag, rule after rule."""
        html = esc(text)
        for pattern, tag in rules:
            html = pattern.sub(f"<{tag}>\\1</{tag}>", html)
        return html


@dataclass(frozen=True, slots=True)
class Sender:
    """Who a previewed message comes from, as the page shows it."""

    name: str
    initial: str
    time: str


def raw_json(value: object) -> str:
    """A payload part no view knows, as indented JSON."""
    return f"<pre class='raw'>{esc(json.dumps(value, ensure_ascii=False, indent=2))}</pre>"


def plain_window(body: str, sender: Sender) -> str:
    """The messages on the bare page (formats whose calls show as documents)."""
    del sender
    return f'<div class="plain-stage">{body}</div>'


def app_window(prefix: str, top: str, body: str) -> str:
    """The messages in a provider's window: ``prefix``-window, -top (``top``) and -chat."""
    return f'<div class="{prefix}-window"><div class="{prefix}-top">{top}</div><div class="{prefix}-chat">{body}</div></div>'


def app_message(prefix: str, sender: Sender, badge: str, time: tuple[str, str], content: str) -> str:
    """A message of the app in a team chat: the sender's avatar, name, ``badge`` class,
    ``time`` (its class, its text), then ``content``."""
    time_class, when = time
    return (
        f'<div class="{prefix}-msg"><div class="{prefix}-avatar">{esc(sender.initial)}</div><div class="{prefix}-main">'
        f'<div class="{prefix}-name"><b>{esc(sender.name)}</b><span class="{badge}">APP</span>'
        f'<span class="{time_class}">{esc(when)}</span></div>{content}</div></div>'
    )


def chat_window(prefix: str, body: str, sender: Sender, avatar: str, subtitle: str) -> str:
    """:func:`app_window` topped by the sender's avatar (class ``avatar``), name and ``subtitle``."""
    top = (
        f'<span class="{avatar}">{esc(sender.initial)}</span>'
        f"<span><b>{esc(sender.name)}</b><br><small>{subtitle}</small></span>"
    )
    return app_window(prefix, top, body)
