"""What the payload builders of the formats share: the marks they add, the URL and label
helpers, and the loop that feeds a Message's modules to a chat builder (fitting texts
into limits: :mod:`layouts.formats._fit`).

Plain Python; private to :mod:`layouts.formats`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol
from urllib.parse import unquote, urlsplit

from feedcast.kernel.models import Button, Message, Module
from layouts.formats._check import valid_url

__all__ = [
    "BUTTONS_TEXT",
    "ICONS",
    "MEDIA_KINDS",
    "ChatBuilder",
    "JsonObj",
    "Sizes",
    "drive",
    "link_name",
    "one_line",
    "too_big",
    "url_of",
]

BUTTONS_TEXT: Final = "🔗"  # the text a button template or message carries when its module has none

Sizes = Mapping[str, int]  # media URL -> size in bytes, when known
JsonObj = dict[str, Any]

ICONS: Final = {"image": "🖼", "video": "🎬", "audio": "🎧", "file": "📎"}
MEDIA_KINDS: Final = ("image", "video", "audio", "file")


def one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def url_of(value: str | None, schemes: tuple[str, ...] = ("http", "https")) -> str | None:
    url = (value or "").strip()
    return url if url and valid_url(url, schemes) else None


def link_name(url: str) -> str:
    """A short label for a link: the file name, else the host."""
    parts = urlsplit(url)
    name = unquote(posixpath.basename(parts.path.rstrip("/")))
    return one_line(name) or parts.hostname or url


def too_big(url: str, sizes: Sizes, limit: int) -> bool:
    size = sizes.get(url)
    return size is not None and size > limit


class ChatBuilder(Protocol):
    def text(self, text: str | None, buttons: Sequence[Button] = ...) -> None: ...
    def media(self, module: Module) -> None: ...
    def cards(self, module: Module) -> None: ...
    def flush(self) -> None: ...


def drive(builder: ChatBuilder, message: Message) -> None:
    """Feed a message's modules, in order, to a chat channel's call builder."""
    for module in message.modules:
        if module.kind == "text":
            builder.text(module.text, module.buttons)
        elif module.kind in MEDIA_KINDS:
            builder.media(module)
        elif module.kind == "cards":
            builder.cards(module)
    builder.flush()
