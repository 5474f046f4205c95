"""Provider calls: a rendered :class:`~feedcast.kernel.models.Message` as the exact request
bodies each provider expects.

:func:`provider_calls` dispatches on ``message.format``. Credentials and the recipient
are left out (the sender adds ``chat_id`` / ``recipient`` / the webhook URL); every
body is otherwise final and passes :func:`layouts.validate.validate_call`.

Conventions shared with the renderer (``layouts/render.py``):

* ``Module.text`` is in the format's markup (Telegram HTML, Messenger plain text, email
  HTML, Slack mrkdwn, Discord Markdown, anything for json). ``Button.title``,
  ``Card.title`` and ``Card.subtitle`` are **plain text** in every format: they map to
  structured fields (Messenger titles, Slack plain_text, Discord embed titles) and are
  escaped here where they land in markup.
* Nothing is dropped silently: a module too long for one message is cut at a word
  boundary with ``…`` (the only loss); consecutive text modules are packed into as few
  messages as fit, never cut between two modules' characters; media a provider cannot
  fetch (too large by ``media_sizes[url]``, a type it refuses by URL, not http(s))
  becomes a link.
* Buttons need a text to hang on. When a module has buttons and no text: Telegram hangs
  them on the previous call when it can, Messenger and others use :data:`BUTTONS_TEXT`.

Per format (limits: :mod:`layouts.validate`):

``telegram``
    Text modules -> ``sendMessage`` (``parse_mode: HTML``, previews disabled), packed up to
    4096 (a module alone too long: ``truncate_telegram``); a module with buttons ends its
    message, its buttons become an inline keyboard (one button per row, text <= 64).
    image / video / audio / file -> ``sendPhoto`` / ``sendVideo`` / ``sendAudio`` /
    ``sendDocument`` with the module text as caption (<= 1024, else the media goes bare and
    the text follows as ``sendMessage``). Telegram fetches by URL photos up to 5 MB
    (jpg, png, webp, gif, bmp), other files up to 20 MB, documents only for PDF, ZIP and
    GIF; the rest is sent as a link. cards -> photo albums (``sendMediaGroup`` of 2..10,
    balanced, a lone photo as ``sendPhoto``), the module text as caption of the first
    photo, then ``sendMessage`` listing every card (title linked, subtitle, button links),
    carrying the module's buttons (an album cannot).
``messenger``
    Bodies ``{"messaging_type": "UPDATE", "message": ...}``. Text packed up to 2000;
    text with buttons -> button template (text <= 640, 3 buttons per template);
    media -> attachment by URL (``is_reusable``) followed by its text (images over 8 MB,
    files over 25 MB -> text with the link); cards -> generic templates of <= 10 elements
    (title, subtitle <= 80, image, default action, <= 3 buttons of <= 20).
``email``
    One ``smtp`` call ``{"subject", "html", "text"}``. **Convention**: the first text
    module is the HTML body (a fragment, or a whole document); an optional second text
    module is the plain-text alternative, used verbatim; more text modules are an error.
    Media, cards and buttons are added to the HTML as simple inline markup in module
    order (inside ``<body>`` when the HTML is a document); a fragment is wrapped in a
    minimal document. Without a plain module the plain part is ``plain_text(html)``.
    Subject: ``message.subject`` on one line, <= 998 characters, else the first line
    of the plain text.
``slack``
    ``{"text": fallback, "blocks": [...]}``: text -> mrkdwn sections (<= 3000), image ->
    image blocks, other media -> a section with a link, buttons -> actions (<= 25, text
    <= 75), cards -> a section per card (image accessory) plus its buttons; at most 50
    blocks per call, a module's blocks never split. ``text`` is the subject or the first
    text of the call (notifications).
``discord``
    ``{"content", "embeds", "allowed_mentions": {"parse": []}}`` (no pings from feed
    content): text modules and media links -> ``content`` packed up to 2000, buttons as
    ``[title](<url>)`` links; images and cards -> embeds (title 256, description 4096,
    <= 10 and 6000 characters per call). Content shows above embeds, so a text after an
    embed starts a new call.
``json``
    One ``POST`` of :func:`json_document` (format ``feedcast.v1``, documented there).
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from html import escape
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from feedcast.kernel.errors import PayloadError
from feedcast.kernel.models import Button, Card, Message, Module, ProviderCall
from layouts.html import (
    TelegramHtmlError,
    pack,
    plain_text,
    telegram_text_length,
    telegram_visible_text,
    truncate_telegram,
)
from layouts.text import truncate_text
from layouts.validate import (
    DISCORD_CONTENT,
    DISCORD_DESCRIPTION,
    DISCORD_EMBED_TOTAL,
    DISCORD_EMBEDS,
    DISCORD_TITLE,
    EMAIL_SUBJECT,
    JSON_FORMAT,
    MESSENGER_BUTTON_TEMPLATE_TEXT,
    MESSENGER_BUTTON_TITLE,
    MESSENGER_BUTTONS,
    MESSENGER_ELEMENTS,
    MESSENGER_FILE_BY_URL,
    MESSENGER_IMAGE_BY_URL,
    MESSENGER_SUBTITLE,
    MESSENGER_TEXT,
    MESSENGER_TITLE,
    SLACK_ACTIONS,
    SLACK_ALT_TEXT,
    SLACK_BLOCKS,
    SLACK_BUTTON_TEXT,
    SLACK_SECTION,
    SLACK_URL,
    TELEGRAM_BUTTON_TEXT,
    TELEGRAM_CAPTION,
    TELEGRAM_FILE_BY_URL,
    TELEGRAM_KEYBOARD_BUTTONS,
    TELEGRAM_MEDIA_GROUP_MAX,
    TELEGRAM_PHOTO_BY_URL,
    TELEGRAM_TEXT,
    utf16_len,
    valid_url,
)

__all__ = ["BUTTONS_TEXT", "ELLIPSIS", "json_document", "provider_calls"]

ELLIPSIS = "…"
BUTTONS_TEXT = "🔗"
OPEN_LABEL = "Open"  # the button of a carousel card that has nothing but a title and a link  # the text a button template or message carries when its module has none

Sizes = Mapping[str, int]
JsonObj = dict[str, Any]

_ICONS = {"image": "🖼", "video": "🎬", "audio": "🎧", "file": "📎"}
_MEDIA_KINDS = ("image", "video", "audio", "file")


def provider_calls(message: Message, *, media_sizes: Mapping[str, int] | None = None) -> list[ProviderCall]:
    """The provider calls that deliver ``message``, in order (empty for an empty message).

    ``media_sizes`` maps media URLs to their size in bytes when known (HEAD requests,
    enclosure lengths): media over a provider's fetch-by-URL limit becomes a link.
    Raises :class:`~feedcast.kernel.errors.PayloadError` for an unknown format or a message
    that breaks the format's convention (email with more than two text modules).
    """
    builder = _BUILDERS.get(message.format)
    if builder is None:
        raise PayloadError("format", f"unknown format {message.format!r}")
    try:
        return builder(message, media_sizes or {})
    except TelegramHtmlError as err:
        raise PayloadError("telegram.text.html", f"a module is not valid Telegram HTML: {err}") from err


# --------------------------------------------------------------------------- helpers


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def _url_of(value: str | None, schemes: tuple[str, ...] = ("http", "https")) -> str | None:
    url = (value or "").strip()
    return url if url and valid_url(url, schemes) else None


def _ext(url: str) -> str:
    return posixpath.splitext(urlsplit(url).path)[1].lower().lstrip(".")


def _name(url: str) -> str:
    """A short label for a link: the file name, else the host."""
    parts = urlsplit(url)
    name = unquote(posixpath.basename(parts.path.rstrip("/")))
    return _one_line(name) or parts.hostname or url


def _too_big(url: str, sizes: Sizes, limit: int) -> bool:
    size = sizes.get(url)
    return size is not None and size > limit


def _chunks(seq: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [seq[i : i + size] for i in range(0, len(seq), size)]


def _balanced(seq: Sequence[Any], size: int) -> list[Sequence[Any]]:
    """``seq`` in as few groups of at most ``size`` as possible, sizes differing by <= 1."""
    if not seq:
        return []
    count = -(-len(seq) // size)
    base, extra = divmod(len(seq), count)
    groups, start = [], 0
    for index in range(count):
        end = start + base + (1 if index < extra else 0)
        groups.append(seq[start:end])
        start = end
    return groups


def _cut_utf16(text: str, room: int) -> str:
    return truncate_text(text, room, ELLIPSIS, unit="utf16")


def _pack_utf16(blocks: Sequence[str], limit: int, truncate: Callable[[str, int], str]) -> list[str]:
    kept = [b for b in blocks if b.strip()]
    if not kept:
        return []
    return [c for c in pack(kept, limit, separator="\n\n", length=utf16_len, truncate=truncate) if c.strip()]


def _closed(cut: str, original: str, opener: str, complete: re.Pattern[str]) -> str:
    """Drop a construct the cut left half-open (a link, an entity) from ``cut``."""
    if cut == original or not cut.endswith(ELLIPSIS):
        return cut
    body = cut[: -len(ELLIPSIS)]
    start = body.rfind(opener)
    if start != -1 and complete.match(original, start) and not complete.match(body, start):
        body = body[:start].rstrip()
        return body + ELLIPSIS if body else ""
    return cut


# --------------------------------------------------------------------------- telegram

_TG_MEDIA: dict[str, tuple[str, str, int]] = {
    "image": ("sendPhoto", "photo", TELEGRAM_PHOTO_BY_URL),
    "video": ("sendVideo", "video", TELEGRAM_FILE_BY_URL),
    "audio": ("sendAudio", "audio", TELEGRAM_FILE_BY_URL),
    "file": ("sendDocument", "document", TELEGRAM_FILE_BY_URL),
}
# extensions Telegram refuses to fetch by URL for each method (an unknown one is tried)
_TG_REFUSED = {
    "image": frozenset({"svg", "svgz", "tif", "tiff", "ico", "heic", "heif", "avif", "jxl", "psd"}),
    "video": frozenset({"webm", "mkv", "avi", "mov", "wmv", "flv", "ogv", "3gp", "mpeg", "mpg", "m3u8"}),
    "audio": frozenset({"ogg", "oga", "opus", "wav", "flac", "aac", "wma", "aif", "aiff", "m3u"}),
}
_TG_DOCUMENTS = frozenset(
    {"pdf", "zip", "gif"}
)  # "sending by URL will currently only work for GIF, PDF and ZIP"
_TG_NO_PREVIEW: JsonObj = {"is_disabled": True}


def _tg_escape(text: str, *, quote: bool = False) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace('"', "&quot;") if quote else text


def _tg_link(url: str, label: str) -> str:
    return f'<a href="{_tg_escape(url, quote=True)}">{_tg_escape(label)}</a>'


def _tg_blank(text: str | None) -> bool:
    return not text or not telegram_visible_text(text).strip()


def _tg_keyboard(buttons: Iterable[Button]) -> JsonObj | None:
    rows: list[list[JsonObj]] = []
    for button in buttons:
        url = _url_of(button.url, ("http", "https", "tg"))
        if url is None:
            continue
        title = _one_line(button.title) or _name(url)
        rows.append([{"text": truncate_text(title, TELEGRAM_BUTTON_TEXT, ELLIPSIS), "url": url}])
        if len(rows) == TELEGRAM_KEYBOARD_BUTTONS:
            break
    return {"inline_keyboard": rows} if rows else None


class _Telegram:
    def __init__(self, sizes: Sizes) -> None:
        self.sizes = sizes
        self.calls: list[ProviderCall] = []
        self.run: list[str] = []  # text blocks waiting to be packed

    def flush(self, buttons: Sequence[Button] = ()) -> None:
        keyboard = _tg_keyboard(buttons)
        if not self.run:
            if keyboard is not None:
                self.orphan_keyboard(keyboard, buttons)
            return
        chunks = self.pack(self.run, "\n\n")
        self.run = []
        self.send_texts(chunks, keyboard)

    @staticmethod
    def pack(blocks: Sequence[str], separator: str) -> list[str]:
        return [
            c
            for c in pack(
                blocks,
                TELEGRAM_TEXT,
                separator=separator,
                length=telegram_text_length,
                truncate=truncate_telegram,
            )
            if not _tg_blank(c)
        ]

    def send_texts(self, chunks: Sequence[str], keyboard: JsonObj | None) -> None:
        for index, chunk in enumerate(chunks):
            body: JsonObj = {
                "text": chunk,
                "parse_mode": "HTML",
                "link_preview_options": dict(_TG_NO_PREVIEW),
            }
            if keyboard is not None and index == len(chunks) - 1:
                body["reply_markup"] = keyboard
            self.calls.append(ProviderCall("sendMessage", body))

    def orphan_keyboard(self, keyboard: JsonObj, buttons: Sequence[Button]) -> None:
        """Buttons without a text: on the previous call when it can carry them, else as links."""
        if self.calls:
            last = self.calls[-1]
            if last.method != "sendMediaGroup" and "reply_markup" not in last.body:
                self.calls[-1] = ProviderCall(last.method, {**last.body, "reply_markup": keyboard})
                return
        links = [
            _tg_link(url, _one_line(b.title) or _name(url))
            for b in buttons
            if (url := _url_of(b.url, ("http", "https", "tg"))) is not None
        ]
        self.send_texts(self.pack(links, "\n"), keyboard)

    def text(self, text: str | None, buttons: Sequence[Button] = ()) -> None:
        if not _tg_blank(text):
            self.run.append((text or "").strip())
        if buttons:
            self.flush(buttons)

    def sendable(self, kind: str, url: str) -> bool:
        _, _, limit = _TG_MEDIA[kind]
        if _too_big(url, self.sizes, limit):
            return False
        ext = _ext(url)
        if kind == "file":
            return ext in _TG_DOCUMENTS
        return ext not in _TG_REFUSED[kind]

    def media(self, module: Module) -> None:
        url = _url_of(module.url)
        caption = None if _tg_blank(module.text) else (module.text or "").strip()
        if url is None and not (module.url or "").strip():
            self.text(caption, module.buttons)
            return
        if url is None or not self.sendable(module.kind, url):
            raw = (module.url or "").strip()
            link = _tg_link(raw, f"{_ICONS[module.kind]} {_name(raw)}") if url else _tg_escape(raw)
            if caption:
                self.run.append(caption)
            self.run.append(link)
            self.flush(module.buttons)
            return
        self.flush()
        method, field, _ = _TG_MEDIA[module.kind]
        body: JsonObj = {field: url}
        keyboard = _tg_keyboard(module.buttons)
        if caption is not None and telegram_text_length(caption) <= TELEGRAM_CAPTION:
            body["caption"] = caption
            body["parse_mode"] = "HTML"
            caption = None
        if caption is None and keyboard is not None:
            body["reply_markup"] = keyboard
        self.calls.append(ProviderCall(method, body))
        if caption is not None:  # too long for a caption: the text follows
            self.text(caption, module.buttons)

    def cards(self, module: Module) -> None:
        self.flush()
        caption = None if _tg_blank(module.text) else (module.text or "").strip()
        photos = [url for c in module.cards if (url := _url_of(c.image)) and self.sendable("image", url)]
        header = caption
        for index, group in enumerate(_balanced(photos, TELEGRAM_MEDIA_GROUP_MAX)):
            first_caption = None
            if index == 0 and caption is not None and telegram_text_length(caption) <= TELEGRAM_CAPTION:
                first_caption, header = caption, None
            if len(group) == 1:
                body: JsonObj = {"photo": group[0]}
                if first_caption is not None:
                    body.update(caption=first_caption, parse_mode="HTML")
                self.calls.append(ProviderCall("sendPhoto", body))
                continue
            items: list[JsonObj] = []
            for position, url in enumerate(group):
                item: JsonObj = {"type": "photo", "media": url}
                if position == 0 and first_caption is not None:
                    item.update(caption=first_caption, parse_mode="HTML")
                items.append(item)
            self.calls.append(ProviderCall("sendMediaGroup", {"media": items}))
        lines = [line for card in module.cards if (line := self.card_line(card))]
        blocks = ([header + "\n"] if header else []) + lines
        keyboard = _tg_keyboard(module.buttons)
        if blocks:
            self.send_texts(self.pack(blocks, "\n"), keyboard)
        elif keyboard is not None:
            self.orphan_keyboard(keyboard, module.buttons)

    @staticmethod
    def card_line(card: Card) -> str:
        buttons = [(url, _one_line(b.title) or _name(url)) for b in card.buttons if (url := _url_of(b.url))]
        href = _url_of(card.url) or (buttons[0][0] if buttons else None)
        title = _one_line(card.title) or (_name(href) if href else "")
        if not title:
            return ""
        line = "• " + (f"<b>{_tg_link(href, title)}</b>" if href else f"<b>{_tg_escape(title)}</b>")
        subtitle = _one_line(card.subtitle)
        if subtitle:
            line += "\n" + _tg_escape(subtitle)
        if buttons:
            line += "\n" + " · ".join(_tg_link(url, label) for url, label in buttons)
        return line


class _Builder(Protocol):
    def text(self, text: str | None, buttons: Sequence[Button] = ...) -> None: ...
    def media(self, module: Module) -> None: ...
    def cards(self, module: Module) -> None: ...
    def flush(self) -> None: ...


def _drive(builder: _Builder, message: Message) -> None:
    """Feed a message's modules, in order, to a chat channel's call builder."""
    for module in message.modules:
        if module.kind == "text":
            builder.text(module.text, module.buttons)
        elif module.kind in _MEDIA_KINDS:
            builder.media(module)
        elif module.kind == "cards":
            builder.cards(module)
    builder.flush()


def _telegram(message: Message, sizes: Sizes) -> list[ProviderCall]:
    builder = _Telegram(sizes)
    _drive(builder, message)
    return builder.calls


# --------------------------------------------------------------------------- messenger


def _fb_buttons(buttons: Iterable[Button]) -> list[JsonObj]:
    out: list[JsonObj] = []
    for button in buttons:
        url = _url_of(button.url)
        if url is None:
            continue
        title = _one_line(button.title) or _name(url)
        out.append({"type": "web_url", "url": url, "title": _cut_utf16(title, MESSENGER_BUTTON_TITLE)})
    return out


class _Messenger:
    def __init__(self, sizes: Sizes) -> None:
        self.sizes = sizes
        self.messages: list[JsonObj] = []
        self.run: list[str] = []

    def flush(self) -> None:
        for chunk in _pack_utf16(self.run, MESSENGER_TEXT, _cut_utf16):
            self.messages.append({"text": chunk})
        self.run = []

    def text(self, text: str | None, buttons: Sequence[Button] = ()) -> None:
        text = (text or "").strip()
        fb_buttons = _fb_buttons(buttons)
        if not fb_buttons:
            if text:
                self.run.append(text)
            return
        self.flush()
        first = _cut_utf16(text, MESSENGER_BUTTON_TEMPLATE_TEXT) if text else BUTTONS_TEXT
        for index, group in enumerate(_chunks(fb_buttons, MESSENGER_BUTTONS)):
            payload = {
                "template_type": "button",
                "text": first if index == 0 else BUTTONS_TEXT,
                "buttons": list(group),
            }
            self.messages.append({"attachment": {"type": "template", "payload": payload}})

    def media(self, module: Module) -> None:
        raw = (module.url or "").strip()
        url = _url_of(raw)
        caption = (module.text or "").strip()
        limit = MESSENGER_IMAGE_BY_URL if module.kind == "image" else MESSENGER_FILE_BY_URL
        if not raw:
            self.text(caption, module.buttons)
            return
        if url is None or _too_big(url, self.sizes, limit):
            if _fb_buttons(module.buttons):
                room = MESSENGER_BUTTON_TEMPLATE_TEXT - utf16_len(raw) - 1
                head = _cut_utf16(caption, room) + "\n" if caption and room > 1 else ""
                self.text(head + raw, module.buttons)
            else:
                self.run.extend(b for b in (caption, raw) if b)
            return
        self.flush()
        self.messages.append(
            {"attachment": {"type": module.kind, "payload": {"url": url, "is_reusable": True}}}
        )
        self.text(caption, module.buttons)

    def cards(self, module: Module) -> None:
        text = (module.text or "").strip()
        has_buttons = bool(_fb_buttons(module.buttons))
        if text:
            self.text(text, module.buttons)  # the introduction (with its buttons) comes first
        self.flush()
        elements = [self.element(card) for card in module.cards]
        for group in _chunks(elements, MESSENGER_ELEMENTS):
            payload = {"template_type": "generic", "elements": list(group)}
            self.messages.append({"attachment": {"type": "template", "payload": payload}})
        if has_buttons and not text:
            self.text(None, module.buttons)

    def element(self, card: Card) -> JsonObj:
        url = _url_of(card.url)
        title = _one_line(card.title) or (_name(url) if url else "") or ELLIPSIS
        element: JsonObj = {"title": _cut_utf16(title, MESSENGER_TITLE)}
        subtitle = _one_line(card.subtitle)
        if subtitle:
            element["subtitle"] = _cut_utf16(subtitle, MESSENGER_SUBTITLE)
        image = _url_of(card.image)
        if image and not _too_big(image, self.sizes, MESSENGER_IMAGE_BY_URL):
            element["image_url"] = image
        if url:
            element["default_action"] = {"type": "web_url", "url": url}
        buttons = _fb_buttons(card.buttons)[:MESSENGER_BUTTONS]
        if not buttons and url and not subtitle and "image_url" not in element:
            # Messenger refuses an element with only a title (100/2018035): give it a way in
            buttons = _fb_buttons([Button(OPEN_LABEL, url)])
        if buttons:
            element["buttons"] = buttons
        elif not subtitle and "image_url" not in element:
            element["subtitle"] = _cut_utf16(_name(url) if url else title, MESSENGER_SUBTITLE)
        return element


def _messenger(message: Message, sizes: Sizes) -> list[ProviderCall]:
    builder = _Messenger(sizes)
    _drive(builder, message)
    return [ProviderCall("messages", {"messaging_type": "UPDATE", "message": m}) for m in builder.messages]


# --------------------------------------------------------------------------- email

_BUTTON_STYLE = (
    "display:inline-block;padding:10px 18px;margin:4px 4px 4px 0;background:#1a73e8;color:#ffffff;"
    "text-decoration:none;border-radius:4px;font-weight:bold"
)
_IMG_STYLE = "display:block;max-width:100%;height:auto;border:0"
_BODY_OPEN = re.compile(r"<body\b[^>]*>", re.IGNORECASE)
_BODY_CLOSE = re.compile(r"</body\s*>", re.IGNORECASE)
_HTML_DOC = re.compile(r"<html\b", re.IGNORECASE)
_HTML_DOC_OPEN = re.compile(r"<html\b[^>]*>", re.IGNORECASE)
_HTML_CLOSE = re.compile(r"</html\s*>", re.IGNORECASE)
_EMAIL_SCHEMES = ("http", "https", "mailto")


def _attr(value: str) -> str:
    return escape(value, quote=True)


def _email_buttons(buttons: Iterable[Button]) -> str:
    links = [
        f'<a href="{_attr(url)}" style="{_BUTTON_STYLE}">{escape(_one_line(b.title) or _name(url), quote=False)}</a>'
        for b in buttons
        if (url := _url_of(b.url, _EMAIL_SCHEMES))
    ]
    return f"<p>{' '.join(links)}</p>" if links else ""


def _email_media(module: Module) -> str:
    caption = (module.text or "").strip()
    url = _url_of(module.url)
    parts: list[str] = []
    if url and module.kind == "image":
        alt = _one_line(plain_text(caption)) if caption else _name(url)
        parts.append(f'<p><img src="{_attr(url)}" alt="{_attr(alt)}" style="{_IMG_STYLE}"></p>')
        if caption:
            parts.append(caption)
    else:
        if caption:
            parts.append(caption)
        if url:
            label = f"{_ICONS[module.kind]} {_name(url)}"
            parts.append(f'<p><a href="{_attr(url)}">{escape(label, quote=False)}</a></p>')
        elif (module.url or "").strip():
            parts.append(f"<p>{escape((module.url or '').strip(), quote=False)}</p>")
    parts.append(_email_buttons(module.buttons))
    return "\n".join(p for p in parts if p)


def _email_cards(module: Module) -> str:
    parts: list[str] = []
    if (module.text or "").strip():
        parts.append((module.text or "").strip())
    for card in module.cards:
        url = _url_of(card.url)
        image = _url_of(card.image)
        title = escape(_one_line(card.title), quote=False)
        rows: list[str] = []
        if image:
            img = f'<img src="{_attr(image)}" alt="{_attr(_one_line(card.title))}" style="{_IMG_STYLE}">'
            rows.append(f'<a href="{_attr(url)}">{img}</a>' if url else img)
        if title:
            rows.append(
                f'<h3 style="margin:8px 0 4px"><a href="{_attr(url)}">{title}</a></h3>'
                if url
                else f'<h3 style="margin:8px 0 4px">{title}</h3>'
            )
        if _one_line(card.subtitle):
            rows.append(f'<p style="margin:0 0 8px">{escape(_one_line(card.subtitle), quote=False)}</p>')
        rows.append(_email_buttons(card.buttons))
        parts.append('<div style="margin:16px 0">' + "\n".join(r for r in rows if r) + "</div>")
    parts.append(_email_buttons(module.buttons))
    return "\n".join(p for p in parts if p)


def _email_document(body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"></head>\n'
        f"<body>\n{body}\n</body></html>\n"
    )


def _email(message: Message, sizes: Sizes) -> list[ProviderCall]:
    del sizes  # mail clients load images themselves; nothing is fetched by the provider
    texts = [index for index, module in enumerate(message.modules) if module.kind == "text"]
    if len(texts) > 2:
        raise PayloadError(
            "email.modules",
            f"{len(texts)} text modules: an email Message has the HTML body and optionally the plain text",
        )
    main = texts[0] if texts else None
    plain_module = message.modules[texts[1]] if len(texts) == 2 else None
    document = (message.modules[main].text or "").strip() if main is not None else ""
    before: list[str] = []
    after: list[str] = []
    if main is not None:
        after.append(_email_buttons(message.modules[main].buttons))
    for index, module in enumerate(message.modules):
        if module.kind == "text":
            if plain_module is not None and index == texts[1]:
                after.append(_email_buttons(module.buttons))
            continue
        fragment = _email_cards(module) if module.kind == "cards" else _email_media(module)
        (before if main is not None and index < main else after).append(fragment)
    head, tail = "\n".join(f for f in before if f), "\n".join(f for f in after if f)
    if _BODY_OPEN.search(document) or _HTML_DOC.search(document):
        html = document  # a whole document: fragments go inside its body
        opening = _BODY_OPEN.search(html) or _HTML_DOC_OPEN.search(html)
        if head and opening is not None:
            html = f"{html[: opening.end()]}\n{head}{html[opening.end() :]}"
        if tail:
            closing = list(_BODY_CLOSE.finditer(html)) or list(_HTML_CLOSE.finditer(html))
            cut = closing[-1].start() if closing else len(html)
            html = f"{html[:cut]}{tail}\n{html[cut:]}"
    else:
        if not document and plain_module is not None and (plain_module.text or "").strip():
            document = (
                "<p>"
                + escape((plain_module.text or "").strip(), quote=False).replace("\n", "<br>\n")
                + "</p>"
            )
        content = "\n".join(p for p in (head, document, tail) if p)
        if not content.strip():
            return []
        html = _email_document(content)
    if plain_module is not None and (plain_module.text or "").strip():
        text = (plain_module.text or "").strip() + "\n"
    else:
        text = plain_text(html, links=True).strip() + "\n"
    subject = _one_line(message.subject) or next(
        (line.strip() for line in text.splitlines() if line.strip()), ""
    )
    subject = truncate_text(_one_line(subject), EMAIL_SUBJECT, ELLIPSIS) or ELLIPSIS
    if not text.strip():
        text = subject + "\n"
    return [ProviderCall("smtp", {"subject": subject, "html": html, "text": text})]


# --------------------------------------------------------------------------- slack

_SLACK_LINK = re.compile(r"<[^<>\s|]+(?:\|[^<>]*)?>")
_SLACK_ENTITY = re.compile(r"&(?:amp|lt|gt);")
_SLACK_UNLINK = re.compile(r"<([^<>|]+)\|([^<>]*)>")
_SLACK_BARE = re.compile(r"<([^<>|]+)>")
_SLACK_EMPHASIS = re.compile(r"(?<!\w)[*_~]+|[*_~]+(?!\w)")


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_cut(text: str, room: int) -> str:
    cut = truncate_text(text, room, ELLIPSIS, unit="utf16")
    cut = _closed(cut, text, "<", _SLACK_LINK)
    return _closed(cut, text, "&", _SLACK_ENTITY)


def _slack_plain(mrkdwn: str) -> str:
    text = _SLACK_UNLINK.sub(r"\2", mrkdwn)
    text = _SLACK_BARE.sub(r"\1", text)
    text = _SLACK_EMPHASIS.sub("", text)
    return _one_line(text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))


def _slack_section(text: str) -> JsonObj | None:
    text = _slack_cut(text.strip(), SLACK_SECTION)
    if not text.strip():
        return None
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _slack_actions(buttons: Iterable[Button]) -> list[JsonObj]:
    elements: list[JsonObj] = []
    for button in buttons:
        url = _url_of(button.url)
        if url is None or utf16_len(url) > SLACK_URL:
            continue
        title = _one_line(button.title) or _name(url)
        text = {"type": "plain_text", "text": _cut_utf16(title, SLACK_BUTTON_TEXT), "emoji": True}
        elements.append({"type": "button", "text": text, "url": url})
    return [{"type": "actions", "elements": list(group)} for group in _chunks(elements, SLACK_ACTIONS)]


def _slack_link(url: str, label: str) -> str:
    target = url.replace("|", "%7C").replace("<", "%3C").replace(">", "%3E")
    return f"<{target}|{_slack_escape(label).replace('|', '¦')}>"


def _slack_groups(module: Module) -> list[list[JsonObj]]:
    """The blocks of one module, in groups that must stay in one call."""
    blocks: list[JsonObj] = []
    text = (module.text or "").strip()
    if module.kind == "text":
        blocks.append(_slack_section(text) or {})
    elif module.kind == "image" and (url := _url_of(module.url)) and utf16_len(url) <= SLACK_URL:
        alt = _cut_utf16(_slack_plain(text) or _name(url), SLACK_ALT_TEXT)
        blocks.append(_slack_section(text) or {})
        blocks.append({"type": "image", "image_url": url, "alt_text": alt})
    elif module.kind in _MEDIA_KINDS:
        blocks.append(_slack_section(text) or {})
        raw = (module.url or "").strip()
        url = _url_of(raw)
        if url and utf16_len(url) < SLACK_SECTION - 10:
            blocks.append(_slack_section(_slack_link(url, f"{_ICONS[module.kind]} {_name(url)}")) or {})
        elif raw:
            blocks.append(_slack_section(_slack_escape(raw)) or {})
    elif module.kind == "cards":
        groups = [[b] for b in [_slack_section(text)] if b]
        for card in module.cards:
            groups.append(_slack_card(card))
        tail = _slack_actions(module.buttons)
        if tail:
            groups.append(tail)
        return [g for g in groups if g]
    blocks = [b for b in blocks if b]
    blocks.extend(_slack_actions(module.buttons))
    return [blocks] if blocks else []


def _slack_card(card: Card) -> list[JsonObj]:
    url = _url_of(card.url)
    title = _one_line(card.title)
    lines = []
    if title:
        lines.append(f"*{_slack_link(url, title)}*" if url else f"*{_slack_escape(title)}*")
    elif url:
        lines.append(_slack_link(url, _name(url)))
    if _one_line(card.subtitle):
        lines.append(_slack_escape(_one_line(card.subtitle)))
    section = _slack_section("\n".join(lines))
    image = _url_of(card.image)
    if section is None and image is None:
        return _slack_actions(card.buttons)
    if section is None:
        section = {"type": "section", "text": {"type": "mrkdwn", "text": _slack_escape(_name(image or ""))}}
    if image and utf16_len(image) <= SLACK_URL:
        section["accessory"] = {
            "type": "image",
            "image_url": image,
            "alt_text": _cut_utf16(title or _name(image), SLACK_ALT_TEXT),
        }
    return [section, *_slack_actions(card.buttons)]


def _slack_fallback(subject: str, blocks: Sequence[JsonObj]) -> str:
    """The notification text: the subject, else the first words of the call, as escaped mrkdwn."""
    plain = subject
    for block in blocks:
        if plain:
            break
        if block["type"] == "section":
            plain = _slack_plain(block["text"]["text"])
        elif block["type"] == "image":
            plain = str(block["alt_text"])
        elif block["type"] == "actions":
            plain = " · ".join(e["text"]["text"] for e in block["elements"])
    return _slack_cut(_slack_escape(plain), SLACK_SECTION) or ELLIPSIS


def _slack(message: Message, sizes: Sizes) -> list[ProviderCall]:
    del sizes  # Slack fetches images itself and has no published size limit
    calls: list[list[JsonObj]] = []
    current: list[JsonObj] = []
    for module in message.modules:
        for group in _slack_groups(module):
            if current and len(current) + len(group) > SLACK_BLOCKS:
                calls.append(current)
                current = []
            current.extend(group)
    if current:
        calls.append(current)
    subject = _one_line(message.subject)
    return [
        ProviderCall("POST", {"text": _slack_fallback(subject, blocks), "blocks": blocks}) for blocks in calls
    ]


# --------------------------------------------------------------------------- discord

_MD_LINK = re.compile(r"\[[^\[\]\n]*\]\(<?[^()<>\s]+>?\)")
_MD_SPECIAL = re.compile(r"([\\*_~`|\[\]()<>])")
_MD_LEADING = re.compile(r"^([#>-])", re.MULTILINE)


def _md_escape(text: str) -> str:
    return _MD_LEADING.sub(r"\\\1", _MD_SPECIAL.sub(r"\\\1", text))


def _md_link(url: str, label: str) -> str:
    return f"[{_md_escape(label)}](<{url.replace('>', '%3E')}>)"


def _md_cut(text: str, room: int) -> str:
    fence = "\n```"
    cut = _closed(truncate_text(text, room, ELLIPSIS, unit="utf16"), text, "[", _MD_LINK)
    if cut != text and cut.count("```") % 2 == 1:  # a code block left open: close it
        cut = _closed(
            truncate_text(text, room - utf16_len(fence), ELLIPSIS, unit="utf16"), text, "[", _MD_LINK
        )
        cut = cut + fence if cut.count("```") % 2 == 1 else cut
    return cut


def _md_buttons(buttons: Iterable[Button]) -> str:
    return " · ".join(
        _md_link(url, _one_line(b.title) or _name(url)) for b in buttons if (url := _url_of(b.url))
    )


def _embed_size(embed: Mapping[str, Any]) -> int:
    return sum(utf16_len(str(embed.get(key, ""))) for key in ("title", "description"))


class _Discord:
    def __init__(self) -> None:
        self.calls: list[JsonObj] = []
        self.content: list[str] = []
        self.embeds: list[JsonObj] = []

    def emit(self) -> None:
        chunks = _pack_utf16(self.content, DISCORD_CONTENT, _md_cut)
        bodies: list[JsonObj] = [{"content": c} for c in chunks]
        if self.embeds:
            if bodies:
                bodies[-1]["embeds"] = self.embeds
            else:
                bodies.append({"embeds": self.embeds})
        for body in bodies:
            body["allowed_mentions"] = {"parse": []}
        self.calls.extend(bodies)
        self.content, self.embeds = [], []

    def text(self, *blocks: str) -> None:
        kept = [b.strip() for b in blocks if b and b.strip()]
        if not kept:
            return
        if self.embeds:
            self.emit()
        self.content.extend(kept)

    def embed(self, embed: JsonObj) -> None:
        if (
            len(self.embeds) == DISCORD_EMBEDS
            or sum(map(_embed_size, self.embeds)) + _embed_size(embed) > DISCORD_EMBED_TOTAL
        ):
            self.emit()
        self.embeds.append(embed)

    def module(self, module: Module) -> None:
        text = (module.text or "").strip()
        links = _md_buttons(module.buttons)
        if module.kind == "text":
            self.text(text, links)
        elif module.kind == "image" and (url := _url_of(module.url)):
            embed: JsonObj = {"image": {"url": url}}
            description = _md_cut("\n\n".join(p for p in (text, links) if p), DISCORD_DESCRIPTION)
            if description.strip():
                embed["description"] = description
            self.embed(embed)
        elif module.kind in _MEDIA_KINDS:
            self.text(text, (module.url or "").strip(), links)
        elif module.kind == "cards":
            self.text(text)
            for card in module.cards:
                self.embed(self.card(card))
            self.text(links)

    @staticmethod
    def card(card: Card) -> JsonObj:
        url = _url_of(card.url)
        embed: JsonObj = {}
        title = _one_line(card.title) or (_name(url) if url else "")
        if title:
            embed["title"] = _cut_utf16(title, DISCORD_TITLE)
        if url:
            embed["url"] = url
        description = "\n\n".join(
            p for p in (_md_escape(_one_line(card.subtitle)), _md_buttons(card.buttons)) if p
        )
        if description:
            embed["description"] = _md_cut(description, DISCORD_DESCRIPTION)
        image = _url_of(card.image)
        if image:
            embed["image"] = {"url": image}
        return embed or {"title": ELLIPSIS}


def _discord(message: Message, sizes: Sizes) -> list[ProviderCall]:
    del sizes  # Discord fetches embed images itself
    builder = _Discord()
    for module in message.modules:
        builder.module(module)
    builder.emit()
    return [ProviderCall("POST", body) for body in builder.calls]


# --------------------------------------------------------------------------- json


def json_document(message: Message) -> JsonObj:
    """The generic-webhook document of ``message`` (format ``feedcast.v1``).

    ::

        {"format": "feedcast.v1",
         "subject": str | null,
         "items": [item key, ...],
         "modules": [{"kind": "text" | "image" | "video" | "audio" | "file" | "cards",
                      "text": str | null,       # as the layout rendered it
                      "data": any | null,       # "text" parsed, when it is a JSON document
                      "url": str | null,        # media URL
                      "buttons": [{"title": str, "url": str}, ...],
                      "cards": [{"title": str, "subtitle": str | null, "image": str | null,
                                 "url": str | null, "buttons": [...]}, ...]}, ...]}

    Every key is always present (null or empty when unused); new keys may be added in a
    later ``feedcast.v1`` document, none renamed or removed.
    """
    return {
        "format": JSON_FORMAT,
        "subject": message.subject,
        "items": list(message.item_keys),
        "modules": [_json_module(module) for module in message.modules],
    }


def _json_data(text: str | None) -> Any:
    stripped = (text or "").strip()
    if not stripped or stripped[0] not in "[{":
        return None
    try:
        return json.loads(stripped, parse_constant=_no_constant)
    except ValueError:
        return None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json_buttons(buttons: Iterable[Button]) -> list[JsonObj]:
    return [{"title": b.title, "url": b.url} for b in buttons]


def _json_module(module: Module) -> JsonObj:
    return {
        "kind": module.kind,
        "text": module.text,
        "data": _json_data(module.text),
        "url": module.url,
        "buttons": _json_buttons(module.buttons),
        "cards": [
            {
                "title": card.title,
                "subtitle": card.subtitle,
                "image": card.image,
                "url": card.url,
                "buttons": _json_buttons(card.buttons),
            }
            for card in module.cards
        ],
    }


def _json(message: Message, sizes: Sizes) -> list[ProviderCall]:
    del sizes
    if not message.modules:
        return []
    return [ProviderCall("POST", json_document(message))]


_BUILDERS: dict[str, Callable[[Message, Sizes], list[ProviderCall]]] = {
    "telegram": _telegram,
    "messenger": _messenger,
    "email": _email,
    "slack": _slack,
    "discord": _discord,
    "json": _json,
}
