"""The ``telegram`` format: Bot API calls, with Telegram's HTML subset as markup.

Text modules -> ``sendMessage`` (``parse_mode: HTML``, previews disabled), packed up to
4096 (a module alone too long: ``truncate_telegram``); a module with buttons ends its
message, its buttons become an inline keyboard (one button per row, text <= 64).
image / video / audio / file -> ``sendPhoto`` / ``sendVideo`` / ``sendAudio`` /
``sendDocument`` with the module text as caption (<= 1024, else the media goes bare and
the text follows as ``sendMessage``). Telegram fetches by URL photos up to 5 MB (jpg,
png, webp, gif, bmp), other files up to 20 MB, documents only for PDF, ZIP and GIF; the
rest is sent as a link. cards -> photo albums (``sendMediaGroup`` of 2..10, balanced, a
lone photo as ``sendPhoto``), the module text as caption of the first photo, then
``sendMessage`` listing every card (title linked, subtitle, button links), carrying the
module's buttons (an album cannot). Buttons without a text hang on the previous call
when it can carry them.

Telegram counts UTF-16 code units after entity parsing
(:func:`layouts.html.telegram_text_length`). The preview shows each call as a post of a
channel: Telegram HTML re-rendered from its whitelist (:func:`telegram_to_html`).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from html.parser import HTMLParser
from typing import Any, Final
from urllib.parse import urlsplit

from feedcast.kernel.errors import PayloadError, TelegramHtmlError
from feedcast.kernel.models import Button, Card, Message, Module, ProviderCall
from feedcast.kernel.urls import LINK_SCHEMES, safe_url
from layouts.formats import _check as check
from layouts.formats._build import ICONS, JsonObj, Sizes, drive, link_name, one_line, too_big, url_of
from layouts.formats._check import MB
from layouts.formats._fit import ELLIPSIS
from layouts.formats._spec import Format
from layouts.html import (
    pack,
    telegram_text_length,
    telegram_visible_text,
    truncate_telegram,
    validate_telegram_html,
)
from layouts.i18n import N_, gettext
from layouts.markup import to_telegram
from layouts.preview_html import Sender, anchor, chat_window, dicts_of, esc, file_name, img, raw_json, text_of
from layouts.text import truncate_text, utf16_len

__all__ = ["FORMAT", "MEDIA_METHODS", "keyboard_buttons", "telegram_to_html"]

# Telegram Bot API
TEXT = 4096
CAPTION = 1024
MEDIA_GROUP_MIN = 2
MEDIA_GROUP_MAX = 10
PHOTO_BY_URL = 5 * MB
FILE_BY_URL = 20 * MB
PHOTO_UPLOAD = 10 * MB  # multipart uploads
FILE_UPLOAD = 50 * MB
BUTTON_TEXT = 64  # code points; our rule (Telegram publishes none)
CALLBACK_DATA = 64  # bytes
KEYBOARD_ROW = 8
KEYBOARD_BUTTONS = 100
MEDIA_METHODS = {
    "sendPhoto": "photo",
    "sendVideo": "video",
    "sendAudio": "audio",
    "sendDocument": "document",
}
METHODS = frozenset({"sendMessage", "sendMediaGroup", *MEDIA_METHODS})


def build_calls(message: Message, sizes: Sizes) -> list[ProviderCall]:
    """The Bot API calls that deliver ``message`` (``chat_id`` left out)."""
    try:
        return _build(message, sizes)
    except TelegramHtmlError as err:
        raise PayloadError("telegram.text.html", f"a module is not valid Telegram HTML: {err}") from err


def plain_modules(text: str) -> tuple[Module, ...]:
    """A plain text as the modules of a Telegram message (escaped for its HTML)."""
    return (Module(kind="text", text=escape(text, quote=False)),)


# --------------------------------------------------------------------------- building


def _ext(url: str) -> str:
    return posixpath.splitext(urlsplit(url).path)[1].lower().lstrip(".")


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


_SEND: dict[str, tuple[str, str, int]] = {
    "image": ("sendPhoto", "photo", PHOTO_BY_URL),
    "video": ("sendVideo", "video", FILE_BY_URL),
    "audio": ("sendAudio", "audio", FILE_BY_URL),
    "file": ("sendDocument", "document", FILE_BY_URL),
}
# extensions Telegram refuses to fetch by URL for each method (an unknown one is tried)
_REFUSED = {
    "image": frozenset({"svg", "svgz", "tif", "tiff", "ico", "heic", "heif", "avif", "jxl", "psd"}),
    "video": frozenset({"webm", "mkv", "avi", "mov", "wmv", "flv", "ogv", "3gp", "mpeg", "mpg", "m3u8"}),
    "audio": frozenset({"ogg", "oga", "opus", "wav", "flac", "aac", "wma", "aif", "aiff", "m3u"}),
}
_DOCUMENTS = frozenset(
    {"pdf", "zip", "gif"}
)  # "sending by URL will currently only work for GIF, PDF and ZIP"
_NO_PREVIEW: JsonObj = {"is_disabled": True}


def _escape(text: str, *, quote: bool = False) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace('"', "&quot;") if quote else text


def _link(url: str, label: str) -> str:
    return f'<a href="{_escape(url, quote=True)}">{_escape(label)}</a>'


def _blank(text: str | None) -> bool:
    return not text or not telegram_visible_text(text).strip()


def _keyboard(buttons: Iterable[Button]) -> JsonObj | None:
    rows: list[list[JsonObj]] = []
    for button in buttons:
        if button.reply is not None:  # a callback button: its data comes back to the inbox
            title = one_line(button.title) or button.reply
            rows.append(
                [{"text": truncate_text(title, BUTTON_TEXT, ELLIPSIS), "callback_data": button.reply}]
            )
            continue
        url = url_of(button.url, ("http", "https", "tg"))
        if url is None:
            continue
        title = one_line(button.title) or link_name(url)
        rows.append([{"text": truncate_text(title, BUTTON_TEXT, ELLIPSIS), "url": url}])
        if len(rows) == KEYBOARD_BUTTONS:
            break
    return {"inline_keyboard": rows} if rows else None


class _Calls:
    def __init__(self, sizes: Sizes) -> None:
        self.sizes = sizes
        self.calls: list[ProviderCall] = []
        self.run: list[str] = []  # text blocks waiting to be packed

    def flush(self, buttons: Sequence[Button] = ()) -> None:
        keyboard = _keyboard(buttons)
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
                TEXT,
                separator=separator,
                length=telegram_text_length,
                truncate=truncate_telegram,
            )
            if not _blank(c)
        ]

    def send_texts(self, chunks: Sequence[str], keyboard: JsonObj | None) -> None:
        for index, chunk in enumerate(chunks):
            body: JsonObj = {
                "text": chunk,
                "parse_mode": "HTML",
                "link_preview_options": dict(_NO_PREVIEW),
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
            _link(url, one_line(b.title) or link_name(url))
            for b in buttons
            if (url := url_of(b.url, ("http", "https", "tg"))) is not None
        ]
        self.send_texts(self.pack(links, "\n"), keyboard)

    def text(self, text: str | None, buttons: Sequence[Button] = ()) -> None:
        if not _blank(text):
            self.run.append((text or "").strip())
        if buttons:
            self.flush(buttons)

    def sendable(self, kind: str, url: str) -> bool:
        _, _, limit = _SEND[kind]
        if too_big(url, self.sizes, limit):
            return False
        ext = _ext(url)
        if kind == "file":
            return ext in _DOCUMENTS
        return ext not in _REFUSED[kind]

    def media(self, module: Module) -> None:
        caption = None if _blank(module.text) else (module.text or "").strip()
        upload = module.upload
        if upload is not None and upload.size <= FORMAT.upload_limits[module.kind]:
            self.media_call(module, upload.ref, caption)  # the channel uploads it, once
            return
        url = url_of(module.url)  # an upload too large to go: its link
        if url is None and not (module.url or "").strip():
            self.text(caption, module.buttons)
            return
        if url is None or not self.sendable(module.kind, url):
            raw = (module.url or "").strip()
            link = _link(raw, f"{ICONS[module.kind]} {link_name(raw)}") if url else _escape(raw)
            if caption:
                self.run.append(caption)
            self.run.append(link)
            self.flush(module.buttons)
            return
        self.media_call(module, url, caption)

    def media_call(self, module: Module, ref: str, caption: str | None) -> None:
        """A sendPhoto / sendVideo / sendAudio / sendDocument of ``ref`` (a URL, or an
        upload's ``attach://``), its caption and keyboard."""
        self.flush()
        method, field, _ = _SEND[module.kind]
        body: JsonObj = {field: ref}
        keyboard = _keyboard(module.buttons)
        if caption is not None and telegram_text_length(caption) <= CAPTION:
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
        caption = None if _blank(module.text) else (module.text or "").strip()
        photos = [url for c in module.cards if (url := url_of(c.image)) and self.sendable("image", url)]
        header = caption
        for index, group in enumerate(_balanced(photos, MEDIA_GROUP_MAX)):
            first_caption = None
            if index == 0 and caption is not None and telegram_text_length(caption) <= CAPTION:
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
        keyboard = _keyboard(module.buttons)
        if blocks:
            self.send_texts(self.pack(blocks, "\n"), keyboard)
        elif keyboard is not None:
            self.orphan_keyboard(keyboard, module.buttons)

    @staticmethod
    def card_line(card: Card) -> str:
        buttons = [(url, one_line(b.title) or link_name(url)) for b in card.buttons if (url := url_of(b.url))]
        href = url_of(card.url) or (buttons[0][0] if buttons else None)
        title = one_line(card.title) or (link_name(href) if href else "")
        if not title:
            return ""
        line = "• " + (f"<b>{_link(href, title)}</b>" if href else f"<b>{_escape(title)}</b>")
        subtitle = one_line(card.subtitle)
        if subtitle:
            line += "\n" + _escape(subtitle)
        if buttons:
            line += "\n" + " · ".join(_link(url, label) for url, label in buttons)
        return line


def _build(message: Message, sizes: Sizes) -> list[ProviderCall]:
    builder = _Calls(sizes)
    drive(builder, message)
    return _albums(builder.calls) if message.albums else builder.calls


_ALBUM_TYPES: Final = {"sendPhoto": "photo", "sendVideo": "video"}


def _albums(calls: list[ProviderCall]) -> list[ProviderCall]:
    """Photos and videos that follow each other, without buttons, as albums
    (``sendMediaGroup`` of 2..10, balanced), each keeping its caption."""
    out: list[ProviderCall] = []
    run: list[ProviderCall] = []

    def flush() -> None:
        if len(run) < MEDIA_GROUP_MIN:
            out.extend(run)
        else:
            for group in _balanced(run, MEDIA_GROUP_MAX):
                if len(group) == 1:
                    out.append(group[0])
                    continue
                items = []
                for call in group:
                    kind = _ALBUM_TYPES[call.method]
                    item: JsonObj = {"type": kind, "media": call.body[kind]}
                    item.update({k: v for k, v in call.body.items() if k in ("caption", "parse_mode")})
                    items.append(item)
                out.append(ProviderCall("sendMediaGroup", {"media": items}))
        run.clear()

    for call in calls:
        if call.method in _ALBUM_TYPES and "reply_markup" not in call.body:
            run.append(call)
            continue
        flush()
        out.append(call)
    flush()
    return out


# --------------------------------------------------------------------------- validation

_COMMON_KEYS = frozenset(
    {
        "chat_id",
        "message_thread_id",
        "business_connection_id",
        "disable_notification",
        "protect_content",
        "allow_paid_broadcast",
        "message_effect_id",
        "reply_parameters",
    }
)
_MESSAGE_KEYS = _COMMON_KEYS | {"text", "parse_mode", "link_preview_options", "reply_markup"}
# what a media call and an album item may say of their medium
_MEDIA_OPTIONS = frozenset(
    [
        "caption",
        "parse_mode",
        "has_spoiler",
        "show_caption_above_media",
        "duration",
        "width",
        "height",
        "performer",
        "title",
        "supports_streaming",
    ]
)
_MEDIA_KEYS = _COMMON_KEYS | _MEDIA_OPTIONS | {"reply_markup"}
_GROUP_KEYS = _COMMON_KEYS | {"media"}
_GROUP_ITEM_KEYS = _MEDIA_OPTIONS | {"type", "media"}
_PREVIEW_KEYS = frozenset(
    {"is_disabled", "url", "prefer_small_media", "prefer_large_media", "show_above_text"}
)
_MEDIA_SCHEMES = ("http", "https", "attach")


def validate(call: ProviderCall) -> None:
    """Raise PayloadError unless ``call`` is a valid Bot API request."""
    method = call.method
    if method not in METHODS:
        check.fail("telegram.method", f"unknown method {method!r} (known: {', '.join(sorted(METHODS))})")
    body = call.body
    if "chat_id" in body and not isinstance(body["chat_id"], int | str):
        check.fail("telegram.chat_id", "chat_id must be an integer or a string")
    if method == "sendMessage":
        _check_message(body)
    elif method == "sendMediaGroup":
        _check_media_group(body)
    else:
        _check_media(method, body)


def _check_message(body: Mapping[str, Any]) -> None:
    method = "sendMessage"
    check.keys(body, _MESSAGE_KEYS, "telegram.body.keys", method)
    text = check.string(
        check.field(body, "text", "telegram.text.required", method), "telegram.text.type", "text"
    )
    _check_text(text, body.get("parse_mode"), "telegram.text", TEXT, required=True)
    if "link_preview_options" in body:
        _check_preview(body["link_preview_options"])
    if "reply_markup" in body:
        _check_keyboard(body["reply_markup"])


def _check_media_group(body: Mapping[str, Any]) -> None:
    method = "sendMediaGroup"
    if "reply_markup" in body:
        check.fail("telegram.media_group.reply_markup", "an album cannot carry buttons (no reply_markup)")
    check.keys(body, _GROUP_KEYS, "telegram.body.keys", method)
    items = check.array(
        check.field(body, "media", "telegram.media_group.size", method),
        "telegram.media_group.size",
        "media",
    )
    if not MEDIA_GROUP_MIN <= len(items) <= MEDIA_GROUP_MAX:
        check.fail(
            "telegram.media_group.size",
            f"{len(items)} items; a media group holds {MEDIA_GROUP_MIN}..{MEDIA_GROUP_MAX}",
        )
    kinds = {_check_group_item(raw, f"media[{index}]") for index, raw in enumerate(items)}
    if not (kinds <= {"photo", "video"} or kinds == {"audio"} or kinds == {"document"}):
        check.fail(
            "telegram.media_group.mix",
            f"types {sorted(kinds)}: photos and videos mix, audio and documents only with their own kind",
        )


def _check_group_item(raw: Any, what: str) -> str:
    """One item of an album; its type."""
    item = check.obj(raw, "telegram.media_group.item", what)
    check.keys(item, _GROUP_ITEM_KEYS, "telegram.media_group.item", what)
    kind = check.field(item, "type", "telegram.media_group.item", what)
    if kind not in ("photo", "video", "audio", "document"):
        check.fail("telegram.media_group.item", f"{what}.type {kind!r} is not photo/video/audio/document")
    check.url(
        check.field(item, "media", "telegram.media_group.item", what),
        "telegram.media.url",
        f"{what}.media",
        schemes=_MEDIA_SCHEMES,
    )
    _check_caption(item, f"{what}.caption")
    return str(kind)


def _check_media(method: str, body: Mapping[str, Any]) -> None:
    """``sendPhoto`` / ``sendVideo`` / ``sendAudio`` / ``sendDocument``."""
    check.keys(body, _MEDIA_KEYS | {MEDIA_METHODS[method]}, "telegram.body.keys", method)
    field = MEDIA_METHODS[method]
    check.url(
        check.field(body, field, "telegram.media.required", method),
        "telegram.media.url",
        field,
        schemes=_MEDIA_SCHEMES,
    )
    _check_caption(body, "caption")
    if "reply_markup" in body:
        _check_keyboard(body["reply_markup"])


def _check_caption(obj: Mapping[str, Any], what: str) -> None:
    if "caption" in obj:
        caption = check.string(obj["caption"], "telegram.caption.type", what)
        _check_text(caption, obj.get("parse_mode"), "telegram.caption", CAPTION, required=False)
    elif "parse_mode" in obj:
        _check_parse_mode(obj["parse_mode"])


def _check_parse_mode(mode: Any) -> None:
    if mode != "HTML":
        check.fail("telegram.parse_mode", f"parse_mode {mode!r}: only 'HTML' is produced and checked")


def _check_text(text: str, parse_mode: Any, rule: str, limit: int, *, required: bool) -> None:
    if parse_mode is not None:
        _check_parse_mode(parse_mode)
        try:
            validate_telegram_html(text)
        except TelegramHtmlError as err:
            check.fail(f"{rule}.html", f"can't parse entities: {err}")
        size = telegram_text_length(text)
        visible = telegram_visible_text(text)
    else:
        size = utf16_len(text)
        visible = text
    if size > limit:
        check.fail(f"{rule}.length", f"{size} characters after entity parsing, over the limit of {limit}")
    if required and not visible.strip():
        check.fail(f"{rule}.empty", "text is empty after entity parsing")


def _check_preview(value: Any) -> None:
    options = check.obj(value, "telegram.link_preview_options", "link_preview_options")
    check.keys(options, _PREVIEW_KEYS, "telegram.link_preview_options", "link_preview_options")
    for key in ("is_disabled", "prefer_small_media", "prefer_large_media", "show_above_text"):
        if key in options:
            check.boolean(options[key], "telegram.link_preview_options", f"link_preview_options.{key}")
    if "url" in options:
        check.url(options["url"], "telegram.link_preview_options", "link_preview_options.url")
    if options.get("prefer_small_media") and options.get("prefer_large_media"):
        check.fail("telegram.link_preview_options", "prefer_small_media and prefer_large_media are exclusive")


def _check_keyboard(value: Any) -> None:
    markup = check.obj(value, "telegram.keyboard.shape", "reply_markup")
    check.keys(markup, {"inline_keyboard"}, "telegram.keyboard.shape", "reply_markup")
    rows = check.array(
        check.field(markup, "inline_keyboard", "telegram.keyboard.shape", "reply_markup"),
        "telegram.keyboard.shape",
        "inline_keyboard",
    )
    if not rows:
        check.fail("telegram.keyboard.shape", "inline_keyboard has no rows")
    total = 0
    for r, raw_row in enumerate(rows):
        row = check.array(raw_row, "telegram.keyboard.shape", f"inline_keyboard[{r}]")
        if not row:
            check.fail("telegram.keyboard.shape", f"inline_keyboard[{r}] is an empty row")
        if len(row) > KEYBOARD_ROW:
            check.fail("telegram.keyboard.row", f"row {r} has {len(row)} buttons, over {KEYBOARD_ROW}")
        total += len(row)
        for c, raw_button in enumerate(row):
            what = f"inline_keyboard[{r}][{c}]"
            button = check.obj(raw_button, "telegram.keyboard.shape", what)
            check.keys(button, {"text", "url", "callback_data"}, "telegram.keyboard.shape", what)
            text = check.string(
                check.field(button, "text", "telegram.button.text", what),
                "telegram.button.text",
                f"{what}.text",
            )
            check.length(text, "telegram.button.text", f"{what}.text", low=1, high=BUTTON_TEXT, measure=len)
            actions = [k for k in ("url", "callback_data") if k in button]
            if len(actions) != 1:
                check.fail("telegram.keyboard.shape", f"{what} needs exactly one of url / callback_data")
            if "url" in button:
                check.url(
                    button["url"], "telegram.button.url", f"{what}.url", schemes=("http", "https", "tg")
                )
            else:
                data = check.string(
                    button["callback_data"], "telegram.button.callback_data", f"{what}.callback_data"
                )
                size = len(data.encode("utf-8"))
                if not 1 <= size <= CALLBACK_DATA:
                    check.fail(
                        "telegram.button.callback_data", f"{what}.callback_data is {size} bytes, not 1..64"
                    )
    if total > KEYBOARD_BUTTONS:
        check.fail("telegram.keyboard.size", f"{total} buttons, over {KEYBOARD_BUTTONS}")


# --------------------------------------------------------------------------- preview


def keyboard_buttons(body: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(title, url) of the Telegram inline keyboard of ``body``, row after row."""
    markup = body.get("reply_markup")
    rows = markup.get("inline_keyboard") if isinstance(markup, Mapping) else None
    if not isinstance(rows, list):
        return []
    return [
        (text_of(b.get("text")), text_of(b.get("url")) or text_of(b.get("callback_data")))
        for row in rows
        for b in dicts_of(row)
    ]


class _PageHtml(HTMLParser):
    """Telegram parse-mode HTML -> HTML for the page: only Telegram's tags survive,
    re-written from scratch; text is escaped; links keep http(s) and mailto targets."""

    _SIMPLE: Final = {
        "b": "b",
        "strong": "b",
        "i": "i",
        "em": "i",
        "u": "u",
        "ins": "u",
        "s": "s",
        "strike": "s",
        "del": "s",
        "code": "code",
        "pre": "pre",
    }

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.stack: list[tuple[str, str]] = []  # (Telegram tag, closing HTML)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k.lower(): v or "" for k, v in attrs}
        if tag in self._SIMPLE:
            name = self._SIMPLE[tag]
            opening, closing = f"<{name}>", f"</{name}>"
        elif tag == "blockquote":
            opening, closing = '<blockquote class="tg-quote">', "</blockquote>"
        elif tag == "tg-spoiler" or (tag == "span" and values.get("class") == "tg-spoiler"):
            opening, closing = '<span class="tg-spoiler">', "</span>"
        elif tag in ("span", "tg-emoji"):
            opening, closing = "<span>", "</span>"
        elif tag == "a":
            href = safe_url(values.get("href"), LINK_SCHEMES, raw=False)
            if href is None:
                opening, closing = '<span class="tg-link">', "</span>"
            else:
                opening = f'<a href="{esc(href)}" target="_blank" rel="noopener noreferrer nofollow">'
                closing = "</a>"
        else:
            return
        self.out.append(opening)
        self.stack.append((tag, closing))

    def handle_endtag(self, tag: str) -> None:
        if not any(open_tag == tag for open_tag, _closing in self.stack):
            return
        while self.stack:
            open_tag, closing = self.stack.pop()
            self.out.append(closing)
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        self.out.append(escape(data, quote=False))

    def result(self) -> str:
        self.close()
        while self.stack:
            self.out.append(self.stack.pop()[1])
        return "".join(self.out)


def telegram_to_html(text: str) -> str:
    """Telegram parse-mode HTML as safe HTML for the preview page."""
    parser = _PageHtml()
    parser.feed(text)
    return parser.result()


def _keyboard_html(body: Mapping[str, Any]) -> str:
    keys = keyboard_buttons(body)
    if not keys:
        return ""
    buttons = "".join(
        anchor(url, f"{esc(title)}<span class='arrow'>↗</span>", "tg-key") for title, url in keys
    )
    return f'<div class="tg-keyboard">{buttons}</div>'


def _text_html(text: str, time: str) -> str:
    return f'<div class="tg-text">{telegram_to_html(text)}<span class="tg-time"><bdi>{esc(time)}</bdi></span></div>'


_MEDIA_LABELS: Final = {"video": N_("video"), "audio": N_("audio"), "document": N_("document")}


def _media_tile(kind: str, url: str) -> str:
    if kind == "photo":
        return img(url, "", "tg-photo")
    icon = {"video": "▶", "audio": "♫", "document": "🗎"}.get(kind, "•")
    label = anchor(url, esc(file_name(url)))
    shown = gettext(_MEDIA_LABELS[kind]) if kind in _MEDIA_LABELS else kind
    return f'<div class="tg-file tg-{esc(kind)}"><span class="tg-file-icon">{icon}</span><span>{label}<small>{esc(shown)}</small></span></div>'


def preview_call(call: ProviderCall, sender: Sender, number: int) -> str:
    """One call as a post of the channel, its keyboard under it."""
    del number
    body = call.body
    time = sender.time
    if call.method == "sendMessage":
        inner = _text_html(text_of(body.get("text")), time)
    elif call.method in MEDIA_METHODS:
        field = MEDIA_METHODS[call.method]
        caption = text_of(body.get("caption"))
        tile = _media_tile(field, text_of(body.get(field)))
        text = (
            _text_html(caption, time) if caption else f'<span class="tg-time tg-time-over">{esc(time)}</span>'
        )
        inner = f'<div class="tg-media">{tile}</div>{text}'
    elif call.method == "sendMediaGroup":
        media = dicts_of(body.get("media"))
        tiles = "".join(
            f'<div class="tg-cell">{_media_tile(text_of(m.get("type")) or "photo", text_of(m.get("media")))}</div>'
            for m in media
        )
        odd = " tg-odd" if len(media) % 2 else ""
        caption = next((text_of(m.get("caption")) for m in media if m.get("caption")), "")
        text = (
            _text_html(caption, time) if caption else f'<span class="tg-time tg-time-over">{esc(time)}</span>'
        )
        inner = f'<div class="tg-album{odd}">{tiles}</div>{text}'
    else:
        inner = raw_json(body)
    return f'<div class="tg-post"><div class="tg-bubble">{inner}</div>{_keyboard_html(body)}</div>'


def preview_window(body: str, sender: Sender) -> str:
    """The previewed messages in a Telegram channel's window."""
    subtitle = esc(gettext("channel")) + " · " + esc(gettext("preview"))
    return chat_window("tg", body, sender, "tg-avatar", subtitle)


FORMAT: Final = Format(
    "telegram",
    "Telegram",
    "telegram.j2",
    build_calls,
    validate,
    preview_call,
    preview_window,
    plain_modules=plain_modules,
    markup=to_telegram,
    upload_limits={"image": PHOTO_UPLOAD, "video": FILE_UPLOAD, "audio": FILE_UPLOAD, "file": FILE_UPLOAD},
)
