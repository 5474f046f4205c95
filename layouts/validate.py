"""Strict validators of provider calls: the rules of ``../shared/docs/channels.md``.

:func:`validate_call` checks one :class:`~feedcast.kernel.models.ProviderCall` as
:func:`layouts.payloads.provider_calls` produces it (credentials and recipient may be
present or not) and raises :class:`PayloadError` naming the violated rule
(``err.rule``, e.g. ``"telegram.text.length"``). Tests and the provider emulators use it
to prove payloads are valid, so it is strict: unknown methods, unknown keys and wrong
types are errors too, not only the documented limits.

Counting: Telegram counts UTF-16 code units after entity parsing
(:func:`layouts.html.telegram_text_length`). The other providers say "characters"
without defining them; we count UTF-16 code units (:func:`utf16_len`), which is never
less than the number of code points, so a payload we accept is accepted whichever way a
provider counts. Email subjects count code points (the SMTP sender encodes and folds
the header). Sizes are decimal megabytes (5 MB = 5,000,000 bytes), the safe reading.

The limits are module constants, shared with :mod:`layouts.payloads`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, NoReturn
from urllib.parse import urlsplit

from feedcast.kernel.errors import PayloadError
from feedcast.kernel.models import MODULE_KINDS, ProviderCall
from layouts.html import (
    TelegramHtmlError,
    telegram_text_length,
    telegram_visible_text,
    validate_telegram_html,
)
from layouts.text import utf16_len

__all__ = [
    "DISCORD_CONTENT",
    "DISCORD_DESCRIPTION",
    "DISCORD_EMBEDS",
    "DISCORD_EMBED_TOTAL",
    "DISCORD_TITLE",
    "EMAIL_SUBJECT",
    "FORMATS",
    "JSON_FORMAT",
    "MB",
    "MESSENGER_BUTTONS",
    "MESSENGER_BUTTON_TEMPLATE_TEXT",
    "MESSENGER_BUTTON_TITLE",
    "MESSENGER_ELEMENTS",
    "MESSENGER_FILE_BY_URL",
    "MESSENGER_IMAGE_BY_URL",
    "MESSENGER_QUICK_REPLIES",
    "MESSENGER_SUBTITLE",
    "MESSENGER_TEXT",
    "MESSENGER_TITLE",
    "SLACK_ACTIONS",
    "SLACK_ALT_TEXT",
    "SLACK_BLOCKS",
    "SLACK_BUTTON_TEXT",
    "SLACK_HEADER",
    "SLACK_SECTION",
    "SLACK_TEXT",
    "SLACK_URL",
    "TELEGRAM_BUTTON_TEXT",
    "TELEGRAM_CAPTION",
    "TELEGRAM_FILE_BY_URL",
    "TELEGRAM_KEYBOARD_BUTTONS",
    "TELEGRAM_KEYBOARD_ROW",
    "TELEGRAM_MEDIA_GROUP_MAX",
    "TELEGRAM_MEDIA_GROUP_MIN",
    "TELEGRAM_METHODS",
    "TELEGRAM_PHOTO_BY_URL",
    "TELEGRAM_TEXT",
    "utf16_len",
    "valid_url",
    "validate_call",
]

MB = 1_000_000

FORMATS = ("telegram", "messenger", "email", "slack", "discord", "json")

# Telegram Bot API
TELEGRAM_TEXT = 4096
TELEGRAM_CAPTION = 1024
TELEGRAM_MEDIA_GROUP_MIN = 2
TELEGRAM_MEDIA_GROUP_MAX = 10
TELEGRAM_PHOTO_BY_URL = 5 * MB
TELEGRAM_FILE_BY_URL = 20 * MB
TELEGRAM_BUTTON_TEXT = 64  # code points; our rule (Telegram publishes none)
TELEGRAM_CALLBACK_DATA = 64  # bytes
TELEGRAM_KEYBOARD_ROW = 8
TELEGRAM_KEYBOARD_BUTTONS = 100
TELEGRAM_MEDIA_METHODS = {
    "sendPhoto": "photo",
    "sendVideo": "video",
    "sendAudio": "audio",
    "sendDocument": "document",
}
TELEGRAM_METHODS = frozenset({"sendMessage", "sendMediaGroup", *TELEGRAM_MEDIA_METHODS})

# Facebook Messenger Send API
MESSENGER_TEXT = 2000
MESSENGER_BUTTON_TEMPLATE_TEXT = 640
MESSENGER_BUTTONS = 3
MESSENGER_BUTTON_TITLE = 20
MESSENGER_ELEMENTS = 10
MESSENGER_TITLE = 80
MESSENGER_SUBTITLE = 80
MESSENGER_QUICK_REPLIES = 13
MESSENGER_QUICK_REPLY_TITLE = 20
MESSENGER_PAYLOAD = 1000
MESSENGER_IMAGE_BY_URL = 8 * MB
MESSENGER_FILE_BY_URL = 25 * MB
MESSENGER_TAGS = frozenset(
    {"CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "ACCOUNT_UPDATE", "HUMAN_AGENT"}
)

# Slack incoming webhooks (Block Kit)
SLACK_TEXT = 40_000
SLACK_BLOCKS = 50
SLACK_SECTION = 3000
SLACK_FIELD = 2000
SLACK_FIELDS = 10
SLACK_HEADER = 150
SLACK_ALT_TEXT = 2000
SLACK_IMAGE_TITLE = 2000
SLACK_URL = 3000
SLACK_ACTIONS = 25
SLACK_BUTTON_TEXT = 75
SLACK_CONTEXT = 10
SLACK_BLOCK_ID = 255

# Discord webhooks
DISCORD_CONTENT = 2000
DISCORD_EMBEDS = 10
DISCORD_TITLE = 256
DISCORD_DESCRIPTION = 4096
DISCORD_FIELDS = 25
DISCORD_FIELD_NAME = 256
DISCORD_FIELD_VALUE = 1024
DISCORD_FOOTER = 2048
DISCORD_AUTHOR = 256
DISCORD_EMBED_TOTAL = 6000
DISCORD_USERNAME = 80

# Email
EMAIL_SUBJECT = 998

# Generic JSON webhooks
JSON_FORMAT = "feedcast.v1"


_WHITESPACE = re.compile(r"\s")


def valid_url(url: str, schemes: tuple[str, ...] = ("http", "https")) -> bool:
    """Whether ``url`` is an absolute URL of one of ``schemes``, as the validators want it."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    scheme = parts.scheme.lower()
    if scheme not in schemes or _WHITESPACE.search(url):
        return False
    return bool(parts.netloc) or scheme not in ("http", "https")


def validate_call(fmt: str, call: ProviderCall) -> None:
    """Raise :class:`PayloadError` unless ``call`` is a valid request for format ``fmt``."""
    validator = _VALIDATORS.get(fmt)
    if validator is None:
        _fail("format", f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    if not isinstance(call.body, Mapping):
        _fail(f"{fmt}.body", "the body must be a JSON object")
    validator(call)


# --------------------------------------------------------------------------- helpers


def _fail(rule: str, detail: str) -> NoReturn:
    raise PayloadError(rule, detail)


def _obj(value: Any, rule: str, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        _fail(rule, f"{what} must be an object, not {type(value).__name__}")
    return value


def _list(value: Any, rule: str, what: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        _fail(rule, f"{what} must be an array, not {type(value).__name__}")
    return list(value)


def _str(value: Any, rule: str, what: str) -> str:
    if not isinstance(value, str):
        _fail(rule, f"{what} must be a string, not {type(value).__name__}")
    return value


def _bool(value: Any, rule: str, what: str) -> bool:
    if not isinstance(value, bool):
        _fail(rule, f"{what} must be a boolean, not {type(value).__name__}")
    return value


def _keys(obj: Mapping[str, Any], allowed: frozenset[str] | set[str], rule: str, what: str) -> None:
    unknown = sorted(str(k) for k in obj if k not in allowed)
    if unknown:
        _fail(rule, f"{what}: unknown field(s) {', '.join(unknown)}")


def _required(obj: Mapping[str, Any], key: str, rule: str, what: str) -> Any:
    if key not in obj or obj[key] is None:
        _fail(rule, f"{what}: {key!r} is required")
    return obj[key]


def _length(
    text: str,
    rule: str,
    what: str,
    *,
    high: int,
    low: int = 0,
    measure: Callable[[str], int] = utf16_len,
    blank_ok: bool = False,
) -> None:
    size = measure(text)
    if size > high:
        _fail(rule, f"{what} is {size} characters, over the limit of {high}")
    if size < low:
        _fail(rule, f"{what} is {size} characters, under the minimum of {low}")
    if low > 0 and not blank_ok and not text.strip():
        _fail(rule, f"{what} is blank")


def _url(value: Any, rule: str, what: str, *, schemes: tuple[str, ...] = ("http", "https")) -> str:
    url = _str(value, rule, what)
    if not valid_url(url, schemes):
        _fail(rule, f"{what} is not an absolute {'/'.join(schemes)} URL: {url[:100]!r}")
    return url


# --------------------------------------------------------------------------- telegram

_TG_COMMON = frozenset(
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
_TG_MESSAGE_KEYS = _TG_COMMON | {"text", "parse_mode", "link_preview_options", "reply_markup"}
_TG_MEDIA_KEYS = _TG_COMMON | {
    "caption",
    "parse_mode",
    "reply_markup",
    "has_spoiler",
    "show_caption_above_media",
    "duration",
    "width",
    "height",
    "performer",
    "title",
    "supports_streaming",
}
_TG_GROUP_KEYS = _TG_COMMON | {"media"}
_TG_GROUP_ITEM_KEYS = frozenset(
    {
        "type",
        "media",
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
    }
)
_TG_PREVIEW_KEYS = frozenset(
    {"is_disabled", "url", "prefer_small_media", "prefer_large_media", "show_above_text"}
)
_TG_MEDIA_SCHEMES = ("http", "https", "attach")


def _validate_telegram(call: ProviderCall) -> None:
    method = call.method
    if method not in TELEGRAM_METHODS:
        _fail("telegram.method", f"unknown method {method!r} (known: {', '.join(sorted(TELEGRAM_METHODS))})")
    body = call.body
    if "chat_id" in body and not isinstance(body["chat_id"], int | str):
        _fail("telegram.chat_id", "chat_id must be an integer or a string")
    if method == "sendMessage":
        _keys(body, _TG_MESSAGE_KEYS, "telegram.body.keys", method)
        text = _str(_required(body, "text", "telegram.text.required", method), "telegram.text.type", "text")
        _tg_text(text, body.get("parse_mode"), "telegram.text", TELEGRAM_TEXT, required=True)
        if "link_preview_options" in body:
            _tg_preview(body["link_preview_options"])
        if "reply_markup" in body:
            _tg_keyboard(body["reply_markup"])
    elif method == "sendMediaGroup":
        if "reply_markup" in body:
            _fail("telegram.media_group.reply_markup", "an album cannot carry buttons (no reply_markup)")
        _keys(body, _TG_GROUP_KEYS, "telegram.body.keys", method)
        items = _list(
            _required(body, "media", "telegram.media_group.size", method),
            "telegram.media_group.size",
            "media",
        )
        if not TELEGRAM_MEDIA_GROUP_MIN <= len(items) <= TELEGRAM_MEDIA_GROUP_MAX:
            _fail(
                "telegram.media_group.size",
                f"{len(items)} items; a media group holds {TELEGRAM_MEDIA_GROUP_MIN}..{TELEGRAM_MEDIA_GROUP_MAX}",
            )
        kinds: set[str] = set()
        for index, raw in enumerate(items):
            item = _obj(raw, "telegram.media_group.item", f"media[{index}]")
            _keys(item, _TG_GROUP_ITEM_KEYS, "telegram.media_group.item", f"media[{index}]")
            kind = _required(item, "type", "telegram.media_group.item", f"media[{index}]")
            if kind not in ("photo", "video", "audio", "document"):
                _fail(
                    "telegram.media_group.item",
                    f"media[{index}].type {kind!r} is not photo/video/audio/document",
                )
            kinds.add(kind)
            _url(
                _required(item, "media", "telegram.media_group.item", f"media[{index}]"),
                "telegram.media.url",
                f"media[{index}].media",
                schemes=_TG_MEDIA_SCHEMES,
            )
            if "caption" in item:
                caption = _str(item["caption"], "telegram.caption.type", f"media[{index}].caption")
                _tg_text(
                    caption, item.get("parse_mode"), "telegram.caption", TELEGRAM_CAPTION, required=False
                )
            elif "parse_mode" in item:
                _tg_parse_mode(item["parse_mode"])
        if not (kinds <= {"photo", "video"} or kinds == {"audio"} or kinds == {"document"}):
            _fail(
                "telegram.media_group.mix",
                f"types {sorted(kinds)}: photos and videos mix, audio and documents only with their own kind",
            )
    else:
        _keys(body, _TG_MEDIA_KEYS | {TELEGRAM_MEDIA_METHODS[method]}, "telegram.body.keys", method)
        field = TELEGRAM_MEDIA_METHODS[method]
        _url(
            _required(body, field, "telegram.media.required", method),
            "telegram.media.url",
            field,
            schemes=_TG_MEDIA_SCHEMES,
        )
        if "caption" in body:
            caption = _str(body["caption"], "telegram.caption.type", "caption")
            _tg_text(caption, body.get("parse_mode"), "telegram.caption", TELEGRAM_CAPTION, required=False)
        elif "parse_mode" in body:
            _tg_parse_mode(body["parse_mode"])
        if "reply_markup" in body:
            _tg_keyboard(body["reply_markup"])


def _tg_parse_mode(mode: Any) -> None:
    if mode != "HTML":
        _fail("telegram.parse_mode", f"parse_mode {mode!r}: only 'HTML' is produced and checked")


def _tg_text(text: str, parse_mode: Any, rule: str, limit: int, *, required: bool) -> None:
    if parse_mode is not None:
        _tg_parse_mode(parse_mode)
        try:
            validate_telegram_html(text)
        except TelegramHtmlError as err:
            _fail(f"{rule}.html", f"can't parse entities: {err}")
        size = telegram_text_length(text)
        visible = telegram_visible_text(text)
    else:
        size = utf16_len(text)
        visible = text
    if size > limit:
        _fail(f"{rule}.length", f"{size} characters after entity parsing, over the limit of {limit}")
    if required and not visible.strip():
        _fail(f"{rule}.empty", "text is empty after entity parsing")


def _tg_preview(value: Any) -> None:
    options = _obj(value, "telegram.link_preview_options", "link_preview_options")
    _keys(options, _TG_PREVIEW_KEYS, "telegram.link_preview_options", "link_preview_options")
    for key in ("is_disabled", "prefer_small_media", "prefer_large_media", "show_above_text"):
        if key in options:
            _bool(options[key], "telegram.link_preview_options", f"link_preview_options.{key}")
    if "url" in options:
        _url(options["url"], "telegram.link_preview_options", "link_preview_options.url")
    if options.get("prefer_small_media") and options.get("prefer_large_media"):
        _fail("telegram.link_preview_options", "prefer_small_media and prefer_large_media are exclusive")


def _tg_keyboard(value: Any) -> None:
    markup = _obj(value, "telegram.keyboard.shape", "reply_markup")
    _keys(markup, {"inline_keyboard"}, "telegram.keyboard.shape", "reply_markup")
    rows = _list(
        _required(markup, "inline_keyboard", "telegram.keyboard.shape", "reply_markup"),
        "telegram.keyboard.shape",
        "inline_keyboard",
    )
    if not rows:
        _fail("telegram.keyboard.shape", "inline_keyboard has no rows")
    total = 0
    for r, raw_row in enumerate(rows):
        row = _list(raw_row, "telegram.keyboard.shape", f"inline_keyboard[{r}]")
        if not row:
            _fail("telegram.keyboard.shape", f"inline_keyboard[{r}] is an empty row")
        if len(row) > TELEGRAM_KEYBOARD_ROW:
            _fail("telegram.keyboard.row", f"row {r} has {len(row)} buttons, over {TELEGRAM_KEYBOARD_ROW}")
        total += len(row)
        for c, raw_button in enumerate(row):
            what = f"inline_keyboard[{r}][{c}]"
            button = _obj(raw_button, "telegram.keyboard.shape", what)
            _keys(button, {"text", "url", "callback_data"}, "telegram.keyboard.shape", what)
            text = _str(
                _required(button, "text", "telegram.button.text", what),
                "telegram.button.text",
                f"{what}.text",
            )
            _length(
                text, "telegram.button.text", f"{what}.text", low=1, high=TELEGRAM_BUTTON_TEXT, measure=len
            )
            actions = [k for k in ("url", "callback_data") if k in button]
            if len(actions) != 1:
                _fail("telegram.keyboard.shape", f"{what} needs exactly one of url / callback_data")
            if "url" in button:
                _url(button["url"], "telegram.button.url", f"{what}.url", schemes=("http", "https", "tg"))
            else:
                data = _str(button["callback_data"], "telegram.button.callback_data", f"{what}.callback_data")
                size = len(data.encode("utf-8"))
                if not 1 <= size <= TELEGRAM_CALLBACK_DATA:
                    _fail("telegram.button.callback_data", f"{what}.callback_data is {size} bytes, not 1..64")
    if total > TELEGRAM_KEYBOARD_BUTTONS:
        _fail("telegram.keyboard.size", f"{total} buttons, over {TELEGRAM_KEYBOARD_BUTTONS}")


# --------------------------------------------------------------------------- messenger

_FB_BODY_KEYS = frozenset(
    {"recipient", "messaging_type", "tag", "message", "notification_type", "persona_id"}
)
_FB_MESSAGE_KEYS = frozenset({"text", "attachment", "quick_replies", "metadata"})
_FB_MEDIA_TYPES = ("image", "audio", "video", "file")
_FB_ELEMENT_KEYS = frozenset({"title", "subtitle", "image_url", "default_action", "buttons"})


def _validate_messenger(call: ProviderCall) -> None:
    if call.method != "messages":
        _fail("messenger.method", f"method {call.method!r}: the Send API endpoint is 'messages'")
    body = call.body
    _keys(body, _FB_BODY_KEYS, "messenger.body.keys", "body")
    kind = _required(body, "messaging_type", "messenger.messaging_type", "body")
    if kind not in ("RESPONSE", "UPDATE", "MESSAGE_TAG"):
        _fail("messenger.messaging_type", f"messaging_type {kind!r} is not RESPONSE/UPDATE/MESSAGE_TAG")
    if kind == "MESSAGE_TAG":
        tag = _required(body, "tag", "messenger.tag", "MESSAGE_TAG")
        if tag not in MESSENGER_TAGS:
            _fail("messenger.tag", f"unknown tag {tag!r}")
    elif "tag" in body:
        _fail("messenger.tag", "a tag goes only with messaging_type MESSAGE_TAG")
    if "recipient" in body:
        recipient = _obj(body["recipient"], "messenger.recipient", "recipient")
        if not recipient:
            _fail("messenger.recipient", "recipient is empty")
    message = _obj(_required(body, "message", "messenger.message", "body"), "messenger.message", "message")
    _keys(message, _FB_MESSAGE_KEYS, "messenger.message.keys", "message")
    has_text, has_attachment = "text" in message, "attachment" in message
    if has_text == has_attachment:
        _fail("messenger.message", "a message has exactly one of text / attachment")
    if has_text:
        text = _str(message["text"], "messenger.text", "text")
        _length(text, "messenger.text", "text", low=1, high=MESSENGER_TEXT)
    else:
        _fb_attachment(message["attachment"])
    if "quick_replies" in message:
        replies = _list(message["quick_replies"], "messenger.quick_replies", "quick_replies")
        if not 1 <= len(replies) <= MESSENGER_QUICK_REPLIES:
            _fail(
                "messenger.quick_replies",
                f"{len(replies)} quick replies, allowed 1..{MESSENGER_QUICK_REPLIES}",
            )
        for index, raw in enumerate(replies):
            reply = _obj(raw, "messenger.quick_replies", f"quick_replies[{index}]")
            content = reply.get("content_type")
            if content not in ("text", "user_phone_number", "user_email"):
                _fail("messenger.quick_replies", f"quick_replies[{index}].content_type {content!r}")
            if content == "text":
                title = _str(
                    _required(reply, "title", "messenger.quick_replies", f"quick_replies[{index}]"),
                    "messenger.quick_replies",
                    "title",
                )
                _length(
                    title,
                    "messenger.quick_replies",
                    f"quick_replies[{index}].title",
                    low=1,
                    high=MESSENGER_QUICK_REPLY_TITLE,
                )
                payload = _str(
                    _required(reply, "payload", "messenger.quick_replies", f"quick_replies[{index}]"),
                    "messenger.quick_replies",
                    "payload",
                )
                _length(
                    payload,
                    "messenger.quick_replies",
                    "payload",
                    low=1,
                    high=MESSENGER_PAYLOAD,
                    blank_ok=True,
                )
    if "metadata" in message:
        _length(
            _str(message["metadata"], "messenger.metadata", "metadata"),
            "messenger.metadata",
            "metadata",
            high=MESSENGER_PAYLOAD,
        )


def _fb_attachment(value: Any) -> None:
    attachment = _obj(value, "messenger.attachment", "attachment")
    _keys(attachment, {"type", "payload"}, "messenger.attachment", "attachment")
    kind = _required(attachment, "type", "messenger.attachment", "attachment")
    payload = _obj(
        _required(attachment, "payload", "messenger.attachment", "attachment"),
        "messenger.attachment",
        "payload",
    )
    if kind in _FB_MEDIA_TYPES:
        _keys(payload, {"url", "is_reusable", "attachment_id"}, "messenger.attachment", "payload")
        if "is_reusable" in payload:
            _bool(payload["is_reusable"], "messenger.attachment", "payload.is_reusable")
        if ("url" in payload) == ("attachment_id" in payload):
            _fail("messenger.attachment.url", "a media attachment has exactly one of url / attachment_id")
        if "url" in payload:
            _url(payload["url"], "messenger.attachment.url", "payload.url")
        else:
            _str(payload["attachment_id"], "messenger.attachment", "payload.attachment_id")
        return
    if kind != "template":
        _fail("messenger.attachment", f"attachment type {kind!r} is not image/audio/video/file/template")
    template = payload.get("template_type")
    if template == "button":
        _keys(
            payload, {"template_type", "text", "buttons", "sharable"}, "messenger.button_template", "payload"
        )
        text = _str(
            _required(payload, "text", "messenger.button_template.text", "button template"),
            "messenger.button_template.text",
            "text",
        )
        _length(
            text,
            "messenger.button_template.text",
            "button template text",
            low=1,
            high=MESSENGER_BUTTON_TEMPLATE_TEXT,
        )
        buttons = _list(
            _required(payload, "buttons", "messenger.button_template.buttons", "button template"),
            "messenger.button_template.buttons",
            "buttons",
        )
        if not 1 <= len(buttons) <= MESSENGER_BUTTONS:
            _fail(
                "messenger.button_template.buttons",
                f"{len(buttons)} buttons; a button template has 1..{MESSENGER_BUTTONS}",
            )
        for index, button in enumerate(buttons):
            _fb_button(button, f"buttons[{index}]")
    elif template == "generic":
        _keys(
            payload,
            {"template_type", "elements", "image_aspect_ratio", "sharable"},
            "messenger.generic.keys",
            "payload",
        )
        if "image_aspect_ratio" in payload and payload["image_aspect_ratio"] not in ("horizontal", "square"):
            _fail("messenger.generic.keys", "image_aspect_ratio is horizontal or square")
        elements = _list(
            _required(payload, "elements", "messenger.generic.elements", "generic template"),
            "messenger.generic.elements",
            "elements",
        )
        if not 1 <= len(elements) <= MESSENGER_ELEMENTS:
            _fail(
                "messenger.generic.elements",
                f"{len(elements)} elements; a generic template has 1..{MESSENGER_ELEMENTS}",
            )
        for index, raw in enumerate(elements):
            what = f"elements[{index}]"
            element = _obj(raw, "messenger.generic.elements", what)
            _keys(element, _FB_ELEMENT_KEYS, "messenger.generic.keys", what)
            title = _str(
                _required(element, "title", "messenger.generic.title", what),
                "messenger.generic.title",
                f"{what}.title",
            )
            _length(title, "messenger.generic.title", f"{what}.title", low=1, high=MESSENGER_TITLE)
            if "subtitle" in element:
                subtitle = _str(element["subtitle"], "messenger.generic.subtitle", f"{what}.subtitle")
                _length(subtitle, "messenger.generic.subtitle", f"{what}.subtitle", high=MESSENGER_SUBTITLE)
            if "image_url" in element:
                _url(element["image_url"], "messenger.generic.image_url", f"{what}.image_url")
            if "default_action" in element:
                action = _obj(
                    element["default_action"], "messenger.generic.default_action", f"{what}.default_action"
                )
                _keys(
                    action,
                    {"type", "url", "webview_height_ratio", "messenger_extensions", "fallback_url"},
                    "messenger.generic.default_action",
                    f"{what}.default_action",
                )
                if action.get("type") != "web_url":
                    _fail("messenger.generic.default_action", f"{what}.default_action.type must be web_url")
                _url(
                    _required(action, "url", "messenger.generic.default_action", f"{what}.default_action"),
                    "messenger.generic.default_action",
                    f"{what}.default_action.url",
                )
            if "buttons" in element:
                buttons = _list(element["buttons"], "messenger.generic.buttons", f"{what}.buttons")
                if not 1 <= len(buttons) <= MESSENGER_BUTTONS:
                    _fail(
                        "messenger.generic.buttons",
                        f"{what} has {len(buttons)} buttons, allowed 1..{MESSENGER_BUTTONS}",
                    )
                for b, button in enumerate(buttons):
                    _fb_button(button, f"{what}.buttons[{b}]")
            if not any(element.get(k) for k in ("subtitle", "image_url", "buttons")):
                _fail(
                    "messenger.generic.incomplete",
                    f"{what} has only a title: Messenger needs a subtitle, image_url or buttons too",
                )
    else:
        _fail("messenger.attachment", f"template_type {template!r} is not button/generic")


def _fb_button(value: Any, what: str) -> None:
    button = _obj(value, "messenger.button", what)
    kind = button.get("type")
    if kind == "web_url":
        _keys(
            button,
            {"type", "url", "title", "webview_height_ratio", "messenger_extensions", "fallback_url"},
            "messenger.button",
            what,
        )
        _url(_required(button, "url", "messenger.button.url", what), "messenger.button.url", f"{what}.url")
    elif kind == "postback":
        _keys(button, {"type", "title", "payload"}, "messenger.button", what)
        payload = _str(
            _required(button, "payload", "messenger.button", what), "messenger.button", f"{what}.payload"
        )
        _length(payload, "messenger.button", f"{what}.payload", low=1, high=MESSENGER_PAYLOAD, blank_ok=True)
    elif kind == "phone_number":
        _keys(button, {"type", "title", "payload"}, "messenger.button", what)
        _str(_required(button, "payload", "messenger.button", what), "messenger.button", f"{what}.payload")
    else:
        _fail("messenger.button", f"{what}.type {kind!r} is not web_url/postback/phone_number")
    title = _str(
        _required(button, "title", "messenger.button.title", what), "messenger.button.title", f"{what}.title"
    )
    _length(title, "messenger.button.title", f"{what}.title", low=1, high=MESSENGER_BUTTON_TITLE)


# --------------------------------------------------------------------------- email

_EMAIL_DANGER = (
    # (a cheap substring that must be present, the exact pattern, what it means)
    ("script", re.compile(r"<\s*script\b", re.IGNORECASE), "a <script> element"),
    ("on", re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE), "an event handler attribute"),
    (
        "script:",
        re.compile(r"""(?:href|src|action)\s*=\s*["']?\s*(?:javascript|vbscript):""", re.IGNORECASE),
        "a javascript: URL",
    ),
)


def _validate_email(call: ProviderCall) -> None:
    if call.method != "smtp":
        _fail("email.method", f"method {call.method!r}: email calls are 'smtp'")
    body = call.body
    _keys(body, {"subject", "html", "text"}, "email.body.keys", "body")
    subject = _str(_required(body, "subject", "email.subject", "body"), "email.subject", "subject")
    if "\r" in subject or "\n" in subject:
        _fail("email.subject.newline", "the subject contains a line break")
    _length(subject, "email.subject", "subject", low=1, high=EMAIL_SUBJECT, measure=len)
    html = _str(_required(body, "html", "email.html", "body"), "email.html", "html")
    if not html.strip():
        _fail("email.html", "the HTML part is empty")
    lowered = html.lower()
    for needle, pattern, what in _EMAIL_DANGER:
        if needle in lowered and pattern.search(html):
            _fail("email.html.unsafe", f"the HTML part contains {what}")
    text = _str(_required(body, "text", "email.text", "body"), "email.text", "text")
    if not text.strip():
        _fail("email.text", "the plain-text part is empty")


# --------------------------------------------------------------------------- slack

_SLACK_BODY_KEYS = frozenset(
    {
        "text",
        "blocks",
        "thread_ts",
        "mrkdwn",
        "unfurl_links",
        "unfurl_media",
        "username",
        "icon_emoji",
        "icon_url",
    }
)


def _validate_slack(call: ProviderCall) -> None:
    if call.method != "POST":
        _fail("slack.method", f"method {call.method!r}: webhooks are 'POST'")
    body = call.body
    _keys(body, _SLACK_BODY_KEYS, "slack.body.keys", "body")
    text = _str(body.get("text", ""), "slack.text", "text")
    _length(text, "slack.text", "text", high=SLACK_TEXT)
    blocks = _list(body.get("blocks", []), "slack.blocks", "blocks")
    if not blocks and not text.strip():
        _fail("slack.text", "a message without blocks needs a non-empty text")
    if not text.strip():
        _fail("slack.text", "the fallback text (notifications, screen readers) is empty")
    if len(blocks) > SLACK_BLOCKS:
        _fail("slack.blocks.count", f"{len(blocks)} blocks, over {SLACK_BLOCKS}")
    for index, block in enumerate(blocks):
        _slack_block(block, f"blocks[{index}]")


def _slack_text(value: Any, rule: str, what: str, *, high: int, plain_only: bool = False) -> None:
    obj = _obj(value, rule, what)
    kind = obj.get("type")
    if kind not in (("plain_text",) if plain_only else ("plain_text", "mrkdwn")):
        _fail(rule, f"{what}.type {kind!r} is not {'plain_text' if plain_only else 'plain_text/mrkdwn'}")
    _keys(
        obj, {"type", "text", "emoji"} if kind == "plain_text" else {"type", "text", "verbatim"}, rule, what
    )
    text = _str(_required(obj, "text", rule, what), rule, f"{what}.text")
    _length(text, rule, f"{what}.text", low=1, high=high)


def _slack_image(obj: Mapping[str, Any], what: str, keys: set[str]) -> None:
    _keys(obj, keys, "slack.image", what)
    url = _url(_required(obj, "image_url", "slack.image", what), "slack.image.url", f"{what}.image_url")
    _length(url, "slack.image.url", f"{what}.image_url", high=SLACK_URL)
    alt = _str(
        _required(obj, "alt_text", "slack.image.alt_text", what), "slack.image.alt_text", f"{what}.alt_text"
    )
    _length(alt, "slack.image.alt_text", f"{what}.alt_text", low=1, high=SLACK_ALT_TEXT)


def _slack_button(value: Any, what: str) -> None:
    button = _obj(value, "slack.button", what)
    _keys(button, {"type", "text", "url", "action_id", "value", "style"}, "slack.button", what)
    if button.get("type") != "button":
        _fail("slack.button", f"{what}.type must be button")
    _slack_text(
        _required(button, "text", "slack.button.text", what),
        "slack.button.text",
        f"{what}.text",
        high=SLACK_BUTTON_TEXT,
        plain_only=True,
    )
    if "url" in button:
        url = _url(button["url"], "slack.button.url", f"{what}.url")
        _length(url, "slack.button.url", f"{what}.url", high=SLACK_URL)
    if "action_id" in button:
        _length(
            _str(button["action_id"], "slack.button", "action_id"),
            "slack.button",
            f"{what}.action_id",
            high=255,
        )
    if "value" in button:
        _length(_str(button["value"], "slack.button", "value"), "slack.button", f"{what}.value", high=2000)
    if "style" in button and button["style"] not in ("primary", "danger"):
        _fail("slack.button", f"{what}.style is primary or danger")


def _slack_block(value: Any, what: str) -> None:
    block = _obj(value, "slack.block", what)
    kind = block.get("type")
    if "block_id" in block:
        _length(
            _str(block["block_id"], "slack.block", "block_id"),
            "slack.block",
            f"{what}.block_id",
            low=1,
            high=SLACK_BLOCK_ID,
        )
    if kind == "section":
        _keys(block, {"type", "text", "fields", "accessory", "block_id"}, "slack.block", what)
        if "text" not in block and "fields" not in block:
            _fail("slack.section", f"{what} needs text or fields")
        if "text" in block:
            _slack_text(block["text"], "slack.section.text", f"{what}.text", high=SLACK_SECTION)
        if "fields" in block:
            fields = _list(block["fields"], "slack.section.fields", f"{what}.fields")
            if not 1 <= len(fields) <= SLACK_FIELDS:
                _fail("slack.section.fields", f"{what} has {len(fields)} fields, allowed 1..{SLACK_FIELDS}")
            for f, field in enumerate(fields):
                _slack_text(field, "slack.section.fields", f"{what}.fields[{f}]", high=SLACK_FIELD)
        if "accessory" in block:
            accessory = _obj(block["accessory"], "slack.section.accessory", f"{what}.accessory")
            if accessory.get("type") == "image":
                _slack_image(accessory, f"{what}.accessory", {"type", "image_url", "alt_text"})
            elif accessory.get("type") == "button":
                _slack_button(accessory, f"{what}.accessory")
            else:
                _fail(
                    "slack.section.accessory",
                    f"{what}.accessory type {accessory.get('type')!r} is not image/button",
                )
    elif kind == "header":
        _keys(block, {"type", "text", "block_id"}, "slack.block", what)
        _slack_text(
            _required(block, "text", "slack.header", what),
            "slack.header",
            f"{what}.text",
            high=SLACK_HEADER,
            plain_only=True,
        )
    elif kind == "image":
        _slack_image(block, what, {"type", "image_url", "alt_text", "title", "block_id"})
        if "title" in block:
            _slack_text(
                block["title"], "slack.image.title", f"{what}.title", high=SLACK_IMAGE_TITLE, plain_only=True
            )
    elif kind == "actions":
        _keys(block, {"type", "elements", "block_id"}, "slack.block", what)
        elements = _list(
            _required(block, "elements", "slack.actions", what), "slack.actions", f"{what}.elements"
        )
        if not 1 <= len(elements) <= SLACK_ACTIONS:
            _fail("slack.actions", f"{what} has {len(elements)} elements, allowed 1..{SLACK_ACTIONS}")
        for e, element in enumerate(elements):
            _slack_button(element, f"{what}.elements[{e}]")
    elif kind == "context":
        _keys(block, {"type", "elements", "block_id"}, "slack.block", what)
        elements = _list(
            _required(block, "elements", "slack.context", what), "slack.context", f"{what}.elements"
        )
        if not 1 <= len(elements) <= SLACK_CONTEXT:
            _fail("slack.context", f"{what} has {len(elements)} elements, allowed 1..{SLACK_CONTEXT}")
        for e, raw in enumerate(elements):
            element = _obj(raw, "slack.context", f"{what}.elements[{e}]")
            if element.get("type") == "image":
                _slack_image(element, f"{what}.elements[{e}]", {"type", "image_url", "alt_text"})
            else:
                _slack_text(element, "slack.context", f"{what}.elements[{e}]", high=SLACK_SECTION)
    elif kind == "divider":
        _keys(block, {"type", "block_id"}, "slack.block", what)
    else:
        _fail("slack.block", f"{what}.type {kind!r} is not section/header/image/actions/context/divider")


# --------------------------------------------------------------------------- discord

_DISCORD_BODY_KEYS = frozenset(
    {"content", "embeds", "username", "avatar_url", "tts", "allowed_mentions", "flags", "thread_name"}
)
_DISCORD_EMBED_KEYS = frozenset(
    {
        "title",
        "type",
        "description",
        "url",
        "timestamp",
        "color",
        "footer",
        "image",
        "thumbnail",
        "author",
        "fields",
    }
)


def _validate_discord(call: ProviderCall) -> None:
    if call.method != "POST":
        _fail("discord.method", f"method {call.method!r}: webhooks are 'POST'")
    body = call.body
    _keys(body, _DISCORD_BODY_KEYS, "discord.body.keys", "body")
    content = _str(body.get("content", ""), "discord.content", "content")
    _length(content, "discord.content", "content", high=DISCORD_CONTENT)
    embeds = _list(body.get("embeds", []), "discord.embeds", "embeds")
    if not content.strip() and not embeds:
        _fail("discord.empty", "a message needs content or embeds")
    if len(embeds) > DISCORD_EMBEDS:
        _fail("discord.embeds.count", f"{len(embeds)} embeds, over {DISCORD_EMBEDS}")
    total = 0
    for index, embed in enumerate(embeds):
        total += _discord_embed(embed, f"embeds[{index}]")
    if total > DISCORD_EMBED_TOTAL:
        _fail("discord.embeds.total", f"the embeds hold {total} characters, over {DISCORD_EMBED_TOTAL}")
    if "username" in body:
        _length(
            _str(body["username"], "discord.username", "username"),
            "discord.username",
            "username",
            low=1,
            high=DISCORD_USERNAME,
        )
    if "avatar_url" in body:
        _url(body["avatar_url"], "discord.url", "avatar_url")
    if "allowed_mentions" in body:
        mentions = _obj(body["allowed_mentions"], "discord.allowed_mentions", "allowed_mentions")
        _keys(
            mentions,
            {"parse", "roles", "users", "replied_user"},
            "discord.allowed_mentions",
            "allowed_mentions",
        )
        for kind in _list(mentions.get("parse", []), "discord.allowed_mentions", "allowed_mentions.parse"):
            if kind not in ("roles", "users", "everyone"):
                _fail("discord.allowed_mentions", f"allowed_mentions.parse holds {kind!r}")


def _discord_embed(value: Any, what: str) -> int:
    embed = _obj(value, "discord.embed", what)
    _keys(embed, _DISCORD_EMBED_KEYS, "discord.embed", what)
    if not embed:
        _fail("discord.embed", f"{what} is empty")
    total = 0
    if "title" in embed:
        title = _str(embed["title"], "discord.embed.title", f"{what}.title")
        _length(title, "discord.embed.title", f"{what}.title", low=1, high=DISCORD_TITLE)
        total += utf16_len(title)
    if "description" in embed:
        description = _str(embed["description"], "discord.embed.description", f"{what}.description")
        _length(
            description, "discord.embed.description", f"{what}.description", low=1, high=DISCORD_DESCRIPTION
        )
        total += utf16_len(description)
    if "url" in embed:
        _url(embed["url"], "discord.url", f"{what}.url")
    for key in ("image", "thumbnail"):
        if key in embed:
            media = _obj(embed[key], "discord.embed.image", f"{what}.{key}")
            _keys(media, {"url", "height", "width", "proxy_url"}, "discord.embed.image", f"{what}.{key}")
            _url(
                _required(media, "url", "discord.embed.image", f"{what}.{key}"),
                "discord.url",
                f"{what}.{key}.url",
            )
    if "footer" in embed:
        footer = _obj(embed["footer"], "discord.embed.footer", f"{what}.footer")
        text = _str(
            _required(footer, "text", "discord.embed.footer", f"{what}.footer"),
            "discord.embed.footer",
            "text",
        )
        _length(text, "discord.embed.footer", f"{what}.footer.text", low=1, high=DISCORD_FOOTER)
        total += utf16_len(text)
    if "author" in embed:
        author = _obj(embed["author"], "discord.embed.author", f"{what}.author")
        name = _str(
            _required(author, "name", "discord.embed.author", f"{what}.author"),
            "discord.embed.author",
            "name",
        )
        _length(name, "discord.embed.author", f"{what}.author.name", low=1, high=DISCORD_AUTHOR)
        total += utf16_len(name)
    if "fields" in embed:
        fields = _list(embed["fields"], "discord.embed.fields", f"{what}.fields")
        if len(fields) > DISCORD_FIELDS:
            _fail("discord.embed.fields", f"{what} has {len(fields)} fields, over {DISCORD_FIELDS}")
        for f, raw in enumerate(fields):
            field = _obj(raw, "discord.embed.fields", f"{what}.fields[{f}]")
            name = _str(
                _required(field, "name", "discord.embed.fields", f"{what}.fields[{f}]"),
                "discord.embed.fields",
                "name",
            )
            value_ = _str(
                _required(field, "value", "discord.embed.fields", f"{what}.fields[{f}]"),
                "discord.embed.fields",
                "value",
            )
            _length(name, "discord.embed.fields", f"{what}.fields[{f}].name", low=1, high=DISCORD_FIELD_NAME)
            _length(
                value_, "discord.embed.fields", f"{what}.fields[{f}].value", low=1, high=DISCORD_FIELD_VALUE
            )
            total += utf16_len(name) + utf16_len(value_)
    if "color" in embed and (
        not isinstance(embed["color"], int)
        or isinstance(embed["color"], bool)
        or not 0 <= embed["color"] <= 0xFFFFFF
    ):
        _fail("discord.embed", f"{what}.color must be an integer 0..0xFFFFFF")
    return total


# --------------------------------------------------------------------------- json

_JSON_MODULE_KEYS = frozenset({"kind", "text", "data", "url", "buttons", "cards"})
_JSON_CARD_KEYS = frozenset({"title", "subtitle", "image", "url", "buttons"})


def _validate_json(call: ProviderCall) -> None:
    if call.method != "POST":
        _fail("json.method", f"method {call.method!r}: webhooks are 'POST'")
    body = call.body
    _keys(body, {"format", "subject", "items", "modules"}, "json.body.keys", "body")
    if body.get("format") != JSON_FORMAT:
        _fail("json.format", f"format must be {JSON_FORMAT!r}, not {body.get('format')!r}")
    if body.get("subject") is not None:
        _str(body["subject"], "json.subject", "subject")
    for index, key in enumerate(_list(_required(body, "items", "json.items", "body"), "json.items", "items")):
        _str(key, "json.items", f"items[{index}]")
    modules = _list(_required(body, "modules", "json.modules", "body"), "json.modules", "modules")
    for index, raw in enumerate(modules):
        what = f"modules[{index}]"
        module = _obj(raw, "json.module", what)
        if set(module) != _JSON_MODULE_KEYS:
            _fail(
                "json.module", f"{what} must have exactly the fields {', '.join(sorted(_JSON_MODULE_KEYS))}"
            )
        if module["kind"] not in MODULE_KINDS:
            _fail("json.module", f"{what}.kind {module['kind']!r} is not one of {', '.join(MODULE_KINDS)}")
        for key in ("text", "url"):
            if module[key] is not None:
                _str(module[key], "json.module", f"{what}.{key}")
        _json_buttons(module["buttons"], f"{what}.buttons")
        for c, raw_card in enumerate(_list(module["cards"], "json.module", f"{what}.cards")):
            card = _obj(raw_card, "json.card", f"{what}.cards[{c}]")
            if set(card) != _JSON_CARD_KEYS:
                _fail(
                    "json.card",
                    f"{what}.cards[{c}] must have exactly the fields {', '.join(sorted(_JSON_CARD_KEYS))}",
                )
            _str(card["title"], "json.card", f"{what}.cards[{c}].title")
            for key in ("subtitle", "image", "url"):
                if card[key] is not None:
                    _str(card[key], "json.card", f"{what}.cards[{c}].{key}")
            _json_buttons(card["buttons"], f"{what}.cards[{c}].buttons")
    try:
        json.dumps(body, allow_nan=False)
    except (TypeError, ValueError) as err:
        _fail("json.serialisable", f"the body is not plain JSON: {err}")


def _json_buttons(value: Any, what: str) -> None:
    for index, raw in enumerate(_list(value, "json.button", what)):
        button = _obj(raw, "json.button", f"{what}[{index}]")
        if set(button) != {"title", "url"}:
            _fail("json.button", f"{what}[{index}] must have exactly the fields title, url")
        _str(button["title"], "json.button", f"{what}[{index}].title")
        _str(button["url"], "json.button", f"{what}[{index}].url")


_VALIDATORS: dict[str, Callable[[ProviderCall], None]] = {
    "telegram": _validate_telegram,
    "messenger": _validate_messenger,
    "email": _validate_email,
    "slack": _validate_slack,
    "discord": _validate_discord,
    "json": _validate_json,
}
