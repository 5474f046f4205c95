"""The module functions of a layout's templates: they make a Message's modules.

A template of a chat format (telegram, messenger, slack, discord, json; the layouts are
:mod:`layouts.render`'s) emits the Message's modules by calling functions, in order::

    {% call image(item.image, buttons=[button("Read more", item.url)]) %}
    <b>{{ item.title }}</b>
    {{ item.summary|excerpt(300) }}
    {% endcall %}

=====================================================  ====================================
``text(body, buttons=[...])``                          a text module (body or call block)
``image|video|audio|file(url, caption, buttons=[])``   a media module, caption as its text;
                                                       without a usable http(s) URL it
                                                       becomes a text module
``cards([card(title, subtitle, image, url,``           a cards module (carousel); card
``buttons=[...]), ...], body=intro)``                  fields are plain text in every
                                                       format; dicts are accepted too
``{% call cards(body=intro) %}`` ... ``{{ card(...)``  the same, from the ``card()`` calls
``}}`` ... ``{% endcall %}``                           of the block (a loop over items)
``button(title, url)``                                 a Button (None, and so dropped,
                                                       when the URL is missing or unsafe)
``subject(text)`` or ``{% set subject = ... %}``       Message.subject (default: the item
                                                       title, or the site title)
``payload(value)``                                     a text module holding ``value`` as
                                                       JSON (the ``json`` format)
=====================================================  ====================================

Each call appends a module and returns ``""``; a module's text is in the markup of the
format (Telegram HTML, plain text for Messenger, Slack mrkdwn, Discord markdown), with
trailing spaces and runs of blank lines tidied. Whitespace outside module calls is
ignored; other text outside them is an error, except in a template that makes no call
at all: its whole output is then one text module. Module calls cannot be nested. In
Telegram templates (autoescaped) a plain string passed as a body (``text(item.title)``)
is escaped like ``{{ item.title }}``; markup from call blocks, macros and ``|telegram``
is kept.

:class:`ModuleBuilder` holds these functions for one render; the renderer passes them to
the template and turns what they collected into the Message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final
from urllib.parse import urlsplit

from jinja2 import Undefined
from markupsafe import Markup, escape

from feedcast.kernel.errors import TemplateMisuse
from feedcast.kernel.models import Button, Card, Module
from feedcast.kernel.urls import safe_url
from layouts.i18n import gettext
from layouts.limits import current

__all__ = ["BUTTON_SCHEMES", "ModuleBuilder", "blank", "json_dumps", "plain_label", "tidy"]

BUTTON_SCHEMES: Final = frozenset({"http", "https", "mailto", "tel", "tg"})


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Undefined):
        return None
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def json_dumps(value: object, **kwargs: Any) -> str:
    """``value`` as JSON the way templates write it (``tojson``, ``payload()``)."""
    return json.dumps(value, default=_json_default, ensure_ascii=False, **kwargs)


def blank(value: object) -> bool:
    """None, undefined, or a blank string."""
    return value is None or isinstance(value, Undefined) or (isinstance(value, str) and not value.strip())


def plain_label(value: object) -> str:
    """A label for a button or a card: plain text on one line."""
    if blank(value):
        return ""
    text = value.unescape() if isinstance(value, Markup) else str(value)
    return " ".join(text.split())


_BLANK_LINES = re.compile(r"\n{3,}")


def tidy(text: str) -> str:
    """Trailing spaces off every line, at most one blank line in a row, no leading or
    trailing whitespace."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


class ModuleBuilder:
    """The module functions of one render; collects the Message's modules.

    ``escape``: the template is autoescaped (Telegram), so text given as a plain string
    argument (``text(item.title)``) is escaped like ``{{ item.title }}`` would be;
    markup (call blocks, macros, ``|telegram``) is kept.
    """

    def __init__(self, *, escape: bool) -> None:
        self.modules: list[Module] = []
        self.subject: str | None = None
        self._escape = escape
        self._depth = 0
        self._collecting: list[Card] | None = None

    def functions(self) -> dict[str, Callable[..., Any]]:
        return {
            "text": self.text,
            **{kind: self.media(kind) for kind in ("image", "video", "audio", "file")},
            "cards": self.cards,
            "card": self.card,
            "button": self.button,
            "subject": self.set_subject,
            "payload": self.payload,
        }

    def _enter(self, name: str) -> None:
        if self._depth:
            raise TemplateMisuse(f"{name}() inside another module call: modules cannot be nested")

    def _body(self, name: str, body: object, caller: Callable[[], object] | None) -> str:
        self._enter(name)
        if caller is not None:
            self._depth += 1
            try:
                body = caller()
            finally:
                self._depth -= 1
        if blank(body):
            return ""
        if self._escape and not hasattr(body, "__html__"):
            body = escape(str(body))
        return tidy(str(body))

    def _buttons(self, buttons: object) -> tuple[Button, ...]:
        if blank(buttons):
            return ()
        if isinstance(buttons, Button):
            return (buttons,)
        if isinstance(buttons, str | Mapping) or not isinstance(buttons, Iterable):
            raise TemplateMisuse("buttons must be a list of button(title, url)")
        result = []
        for entry in buttons:
            if isinstance(entry, Mapping):
                entry = self.button(entry.get("title"), entry.get("url"))
            if entry is None or isinstance(entry, Undefined):
                continue
            if not isinstance(entry, Button):
                raise TemplateMisuse(
                    f"buttons must be made with button(title, url), not {type(entry).__name__}"
                )
            result.append(entry)
        return tuple(result)

    def _append(self, module: Module) -> str:
        if module.kind == "text" and not module.text and not module.buttons:
            return ""
        self._count(module)
        self.modules.append(module)
        return ""

    @staticmethod
    def _count(module: Module) -> None:
        """The module's text joins the message: held to the output limit."""
        meter = current()
        if meter is not None:
            meter.written(module.text or "")
            for card in module.cards:
                meter.written(card.title + (card.subtitle or ""))

    def text(
        self, body: object = None, buttons: object = (), caller: Callable[[], object] | None = None
    ) -> str:
        content = self._body("text", body, caller)
        return self._append(Module("text", text=content or None, buttons=self._buttons(buttons)))

    def _media(
        self, kind: str, url: object, body: object, buttons: object, caller: Callable[[], object] | None
    ) -> str:
        content = self._body(kind, body, caller)
        safe = safe_url(url)
        if safe is None:  # no usable media: the caption alone
            return self._append(Module("text", text=content or None, buttons=self._buttons(buttons)))
        return self._append(Module(kind, text=content or None, url=safe, buttons=self._buttons(buttons)))

    def media(self, kind: str) -> Callable[..., str]:
        """The module function ``image`` / ``video`` / ``audio`` / ``file``."""

        def module(
            url: object = None,
            body: object = None,
            buttons: object = (),
            caller: Callable[[], object] | None = None,
        ) -> str:
            return self._media(kind, url, body, buttons, caller)

        return module

    def button(self, title: object = None, url: object = None) -> Button | None:
        label = plain_label(title)
        target = safe_url(url, BUTTON_SCHEMES)
        if not label or target is None:
            return None
        return Button(label, target)

    def card(
        self,
        title: object = None,
        subtitle: object = None,
        image: object = None,
        url: object = None,
        buttons: object = (),
    ) -> Card | str:
        """A Card; inside ``{% call cards() %}`` it joins that module and returns ""."""
        link = safe_url(url, BUTTON_SCHEMES)
        label = (
            plain_label(title)
            or plain_label(subtitle)
            or (urlsplit(link).hostname if link else None)
            or gettext("Untitled")
        )
        made = Card(
            title=label,
            subtitle=plain_label(subtitle) or None,
            image=safe_url(image),
            url=link,
            buttons=self._buttons(buttons),
        )
        if self._collecting is not None:
            self._collecting.append(made)
            return ""
        return made

    def cards(
        self,
        entries: object = None,
        body: object = None,
        buttons: object = (),
        caller: Callable[[], object] | None = None,
    ) -> str:
        """A cards module: from ``entries`` (card(...) values or dicts) and/or the
        ``card(...)`` calls of a call block; ``body`` is its introduction."""
        self._enter("cards")
        collected: list[Card] = []
        if caller is not None:
            self._collecting = collected
            self._depth += 1
            try:
                caller()
            finally:
                self._depth -= 1
                self._collecting = None
        if not blank(entries):
            if isinstance(entries, str | Mapping) or not isinstance(entries, Iterable):
                raise TemplateMisuse("cards() takes a list of card(...) or of dicts")
            for entry in entries:
                if isinstance(entry, Mapping):
                    entry = self.card(
                        **{k: entry.get(k) for k in ("title", "subtitle", "image", "url", "buttons")}
                    )
                if not isinstance(entry, Card):
                    raise TemplateMisuse(
                        f"cards() takes card(...) values or dicts, not {type(entry).__name__}"
                    )
                collected.append(entry)
        intro = self._body("cards", body, None)
        if collected:
            module = Module(
                "cards", text=intro or None, cards=tuple(collected), buttons=self._buttons(buttons)
            )
            self._count(module)
            self.modules.append(module)
        return ""

    def set_subject(self, value: object = None) -> str:
        self.subject = plain_label(value) or None
        return ""

    def payload(self, value: object = None) -> str:
        self._enter("payload")
        meter = current()
        if meter is not None:
            meter.value(value, new=False)  # refuses what would write out too large
        module = Module("text", text=json_dumps(value))
        self._count(module)
        self.modules.append(module)
        return ""

    def finish(self, output: str) -> tuple[Module, ...]:
        stray = output.strip()
        if self.modules:
            if stray:
                snippet = " ".join(stray.split())[:60]
                raise TemplateMisuse(
                    f"text outside a module call: {snippet!r} (wrap it in {{% call text() %}}...{{% endcall %}})"
                )
            return tuple(self.modules)
        return (Module("text", text=tidy(output)),) if stray else ()
