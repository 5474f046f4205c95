"""The ``messenger`` format: Send API calls, with plain text.

Bodies ``{"messaging_type": "UPDATE", "message": ...}``. Text packed up to 2000; text
with buttons -> button template (text <= 640, 3 buttons per template; a module with
buttons and no text carries :data:`~layouts.formats.BUTTONS_TEXT`); media ->
attachment by URL (``is_reusable``) followed by its text (images over 8 MB, files over
25 MB -> text with the link); cards -> generic templates of <= 10 elements (title,
subtitle <= 80, image, default action, <= 3 buttons of <= 20).

The preview shows each call as Messenger does: bubbles, button templates, carousels.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from feedcast.kernel.models import Button, Card, Message, Module, ProviderCall
from layouts.formats import _check as check
from layouts.formats._build import BUTTONS_TEXT, JsonObj, Sizes, drive, link_name, one_line, too_big, url_of
from layouts.formats._check import MB
from layouts.formats._fit import ELLIPSIS, cut_utf16, groups_of, pack_utf16
from layouts.formats._spec import Format
from layouts.i18n import N_, gettext
from layouts.preview_html import Sender, anchor, chat_window, dicts_of, esc, file_name, img, raw_json, text_of
from layouts.text import utf16_len

__all__ = ["FORMAT"]

# Facebook Messenger Send API
TEXT = 2000
BUTTON_TEMPLATE_TEXT = 640
BUTTONS = 3
BUTTON_TITLE = 20
ELEMENTS = 10
TITLE = 80
SUBTITLE = 80
QUICK_REPLIES = 13
QUICK_REPLY_TITLE = 20
PAYLOAD = 1000
IMAGE_BY_URL = 8 * MB
FILE_BY_URL = 25 * MB
UPLOAD = 25 * MB  # the Attachment Upload API
TAGS = frozenset({"CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "ACCOUNT_UPDATE", "HUMAN_AGENT"})
OPEN_LABEL: Final = N_("Open")  # the button of a carousel card that has nothing but a title and a link


# --------------------------------------------------------------------------- building


def _buttons(buttons: Iterable[Button]) -> list[JsonObj]:
    out: list[JsonObj] = []
    for button in buttons:
        if button.reply is not None:  # a postback: its payload comes back to the inbox
            title = one_line(button.title) or button.reply
            out.append({"type": "postback", "title": cut_utf16(title, BUTTON_TITLE), "payload": button.reply})
            continue
        url = url_of(button.url)
        if url is None:
            continue
        title = one_line(button.title) or link_name(url)
        out.append({"type": "web_url", "url": url, "title": cut_utf16(title, BUTTON_TITLE)})
    return out


class _Calls:
    def __init__(self, sizes: Sizes) -> None:
        self.sizes = sizes
        self.messages: list[JsonObj] = []
        self.run: list[str] = []

    def flush(self) -> None:
        for chunk in pack_utf16(self.run, TEXT, cut_utf16):
            self.messages.append({"text": chunk})
        self.run = []

    def text(self, text: str | None, buttons: Sequence[Button] = ()) -> None:
        text = (text or "").strip()
        fb_buttons = _buttons(buttons)
        if not fb_buttons:
            if text:
                self.run.append(text)
            return
        self.flush()
        first = cut_utf16(text, BUTTON_TEMPLATE_TEXT) if text else BUTTONS_TEXT
        for index, group in enumerate(groups_of(fb_buttons, BUTTONS)):
            payload = {
                "template_type": "button",
                "text": first if index == 0 else BUTTONS_TEXT,
                "buttons": list(group),
            }
            self.messages.append({"attachment": {"type": "template", "payload": payload}})

    def media(self, module: Module) -> None:
        upload = module.upload
        if upload is not None and upload.size <= FORMAT.upload_limits[module.kind]:  # uploaded once
            self.flush()
            payload = {"attachment_id": upload.ref}
            self.messages.append({"attachment": {"type": module.kind, "payload": payload}})
            self.text((module.text or "").strip(), module.buttons)
            return
        raw = (module.url or "").strip()  # an upload too large to go: its link
        url = url_of(raw)
        caption = (module.text or "").strip()
        limit = IMAGE_BY_URL if module.kind == "image" else FILE_BY_URL
        if not raw:
            self.text(caption, module.buttons)
            return
        if url is None or too_big(url, self.sizes, limit):
            if _buttons(module.buttons):
                room = BUTTON_TEMPLATE_TEXT - utf16_len(raw) - 1
                head = cut_utf16(caption, room) + "\n" if caption and room > 1 else ""
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
        has_buttons = bool(_buttons(module.buttons))
        if text:
            self.text(text, module.buttons)  # the introduction (with its buttons) comes first
        self.flush()
        elements = [self.element(card) for card in module.cards]
        for group in groups_of(elements, ELEMENTS):
            payload = {"template_type": "generic", "elements": list(group)}
            self.messages.append({"attachment": {"type": "template", "payload": payload}})
        if has_buttons and not text:
            self.text(None, module.buttons)

    def element(self, card: Card) -> JsonObj:
        url = url_of(card.url)
        title = one_line(card.title) or (link_name(url) if url else "") or ELLIPSIS
        element: JsonObj = {"title": cut_utf16(title, TITLE)}
        subtitle = one_line(card.subtitle)
        if subtitle:
            element["subtitle"] = cut_utf16(subtitle, SUBTITLE)
        image = url_of(card.image)
        if image and not too_big(image, self.sizes, IMAGE_BY_URL):
            element["image_url"] = image
        if url:
            element["default_action"] = {"type": "web_url", "url": url}
        buttons = _buttons(card.buttons)[:BUTTONS]
        if not buttons and url and not subtitle and "image_url" not in element:
            # Messenger refuses an element with only a title (100/2018035): give it a way in
            buttons = _buttons([Button(gettext(OPEN_LABEL), url)])
        if buttons:
            element["buttons"] = buttons
        elif not subtitle and "image_url" not in element:
            element["subtitle"] = cut_utf16(link_name(url) if url else title, SUBTITLE)
        return element


def build_calls(message: Message, sizes: Sizes) -> list[ProviderCall]:
    """The Send API calls that deliver ``message`` (``recipient`` left out)."""
    builder = _Calls(sizes)
    drive(builder, message)
    return [ProviderCall("messages", {"messaging_type": "UPDATE", "message": m}) for m in builder.messages]


# --------------------------------------------------------------------------- validation

_BODY_KEYS = frozenset({"recipient", "messaging_type", "tag", "message", "notification_type", "persona_id"})
_MESSAGE_KEYS = frozenset({"text", "attachment", "quick_replies", "metadata"})
_MEDIA_TYPES = ("image", "audio", "video", "file")
_ELEMENT_KEYS = frozenset({"title", "subtitle", "image_url", "default_action", "buttons"})


def validate(call: ProviderCall) -> None:
    """Raise PayloadError unless ``call`` is a valid Send API request."""
    if call.method != "messages":
        check.fail("messenger.method", f"method {call.method!r}: the Send API endpoint is 'messages'")
    body = call.body
    check.keys(body, _BODY_KEYS, "messenger.body.keys", "body")
    _check_envelope(body)
    message = check.obj(
        check.field(body, "message", "messenger.message", "body"), "messenger.message", "message"
    )
    check.keys(message, _MESSAGE_KEYS, "messenger.message.keys", "message")
    has_text, has_attachment = "text" in message, "attachment" in message
    if has_text == has_attachment:
        check.fail("messenger.message", "a message has exactly one of text / attachment")
    if has_text:
        text = check.string(message["text"], "messenger.text", "text")
        check.length(text, "messenger.text", "text", low=1, high=TEXT)
    else:
        _check_attachment(message["attachment"])
    if "quick_replies" in message:
        _check_quick_replies(message["quick_replies"])
    if "metadata" in message:
        check.text(message["metadata"], "messenger.metadata", "metadata", "metadata", high=PAYLOAD)


def _check_envelope(body: Mapping[str, Any]) -> None:
    """The messaging type, its tag, the recipient."""
    kind = check.field(body, "messaging_type", "messenger.messaging_type", "body")
    if kind not in ("RESPONSE", "UPDATE", "MESSAGE_TAG"):
        check.fail("messenger.messaging_type", f"messaging_type {kind!r} is not RESPONSE/UPDATE/MESSAGE_TAG")
    if kind == "MESSAGE_TAG":
        tag = check.field(body, "tag", "messenger.tag", "MESSAGE_TAG")
        if tag not in TAGS:
            check.fail("messenger.tag", f"unknown tag {tag!r}")
    elif "tag" in body:
        check.fail("messenger.tag", "a tag goes only with messaging_type MESSAGE_TAG")
    if "recipient" in body:
        recipient = check.obj(body["recipient"], "messenger.recipient", "recipient")
        if not recipient:
            check.fail("messenger.recipient", "recipient is empty")


def _check_quick_replies(value: Any) -> None:
    replies = check.array(value, "messenger.quick_replies", "quick_replies")
    if not 1 <= len(replies) <= QUICK_REPLIES:
        check.fail(
            "messenger.quick_replies",
            f"{len(replies)} quick replies, allowed 1..{QUICK_REPLIES}",
        )
    rule = "messenger.quick_replies"
    for index, raw in enumerate(replies):
        what = f"quick_replies[{index}]"
        reply = check.obj(raw, rule, what)
        content = reply.get("content_type")
        if content not in ("text", "user_phone_number", "user_email"):
            check.fail(rule, f"{what}.content_type {content!r}")
        if content == "text":
            title = check.field(reply, "title", rule, what)
            check.text(title, rule, "title", f"{what}.title", low=1, high=QUICK_REPLY_TITLE)
            payload = check.field(reply, "payload", rule, what)
            check.text(payload, rule, "payload", "payload", low=1, high=PAYLOAD, blank_ok=True)


def _check_attachment(value: Any) -> None:
    attachment = check.obj(value, "messenger.attachment", "attachment")
    check.keys(attachment, {"type", "payload"}, "messenger.attachment", "attachment")
    kind = check.field(attachment, "type", "messenger.attachment", "attachment")
    payload = check.obj(
        check.field(attachment, "payload", "messenger.attachment", "attachment"),
        "messenger.attachment",
        "payload",
    )
    if kind in _MEDIA_TYPES:
        _check_media(payload)
        return
    if kind != "template":
        check.fail("messenger.attachment", f"attachment type {kind!r} is not image/audio/video/file/template")
    template = payload.get("template_type")
    if template == "button":
        _check_button_template(payload)
    elif template == "generic":
        _check_generic(payload)
    else:
        check.fail("messenger.attachment", f"template_type {template!r} is not button/generic")


def _check_media(payload: Mapping[str, Any]) -> None:
    check.keys(payload, {"url", "is_reusable", "attachment_id"}, "messenger.attachment", "payload")
    if "is_reusable" in payload:
        check.boolean(payload["is_reusable"], "messenger.attachment", "payload.is_reusable")
    if ("url" in payload) == ("attachment_id" in payload):
        check.fail("messenger.attachment.url", "a media attachment has exactly one of url / attachment_id")
    if "url" in payload:
        check.url(payload["url"], "messenger.attachment.url", "payload.url")
    else:
        check.string(payload["attachment_id"], "messenger.attachment", "payload.attachment_id")


def _check_button_template(payload: Mapping[str, Any]) -> None:
    check.keys(
        payload, {"template_type", "text", "buttons", "sharable"}, "messenger.button_template", "payload"
    )
    text = check.string(
        check.field(payload, "text", "messenger.button_template.text", "button template"),
        "messenger.button_template.text",
        "text",
    )
    check.length(
        text,
        "messenger.button_template.text",
        "button template text",
        low=1,
        high=BUTTON_TEMPLATE_TEXT,
    )
    buttons = _template_list(
        payload, "buttons", "button template", "messenger.button_template.buttons", BUTTONS
    )
    for index, button in enumerate(buttons):
        _check_button(button, f"buttons[{index}]")


def _check_generic(payload: Mapping[str, Any]) -> None:
    check.keys(
        payload,
        {"template_type", "elements", "image_aspect_ratio", "sharable"},
        "messenger.generic.keys",
        "payload",
    )
    if "image_aspect_ratio" in payload and payload["image_aspect_ratio"] not in ("horizontal", "square"):
        check.fail("messenger.generic.keys", "image_aspect_ratio is horizontal or square")
    elements = _template_list(payload, "elements", "generic template", "messenger.generic.elements", ELEMENTS)
    for index, raw in enumerate(elements):
        _check_element(raw, f"elements[{index}]")


def _template_list(payload: Mapping[str, Any], key: str, template: str, rule: str, high: int) -> list[Any]:
    """The 1..``high`` buttons or elements of a template."""
    items = check.array(check.field(payload, key, rule, template), rule, key)
    if not 1 <= len(items) <= high:
        check.fail(rule, f"{len(items)} {key}; a {template} has 1..{high}")
    return items


def _check_element(raw: Any, what: str) -> None:
    element = check.obj(raw, "messenger.generic.elements", what)
    check.keys(element, _ELEMENT_KEYS, "messenger.generic.keys", what)
    title = check.string(
        check.field(element, "title", "messenger.generic.title", what),
        "messenger.generic.title",
        f"{what}.title",
    )
    check.length(title, "messenger.generic.title", f"{what}.title", low=1, high=TITLE)
    if "subtitle" in element:
        subtitle = check.string(element["subtitle"], "messenger.generic.subtitle", f"{what}.subtitle")
        check.length(subtitle, "messenger.generic.subtitle", f"{what}.subtitle", high=SUBTITLE)
    if "image_url" in element:
        check.url(element["image_url"], "messenger.generic.image_url", f"{what}.image_url")
    if "default_action" in element:
        action = check.obj(
            element["default_action"], "messenger.generic.default_action", f"{what}.default_action"
        )
        check.keys(
            action,
            {"type", "url", "webview_height_ratio", "messenger_extensions", "fallback_url"},
            "messenger.generic.default_action",
            f"{what}.default_action",
        )
        if action.get("type") != "web_url":
            check.fail("messenger.generic.default_action", f"{what}.default_action.type must be web_url")
        check.url(
            check.field(action, "url", "messenger.generic.default_action", f"{what}.default_action"),
            "messenger.generic.default_action",
            f"{what}.default_action.url",
        )
    if "buttons" in element:
        buttons = check.array(element["buttons"], "messenger.generic.buttons", f"{what}.buttons")
        if not 1 <= len(buttons) <= BUTTONS:
            check.fail(
                "messenger.generic.buttons",
                f"{what} has {len(buttons)} buttons, allowed 1..{BUTTONS}",
            )
        for b, button in enumerate(buttons):
            _check_button(button, f"{what}.buttons[{b}]")
    if not any(element.get(k) for k in ("subtitle", "image_url", "buttons")):
        check.fail(
            "messenger.generic.incomplete",
            f"{what} has only a title: Messenger needs a subtitle, image_url or buttons too",
        )


def _check_button(value: Any, what: str) -> None:
    button = check.obj(value, "messenger.button", what)
    kind = button.get("type")
    if kind == "web_url":
        check.keys(
            button,
            {"type", "url", "title", "webview_height_ratio", "messenger_extensions", "fallback_url"},
            "messenger.button",
            what,
        )
        check.url(
            check.field(button, "url", "messenger.button.url", what), "messenger.button.url", f"{what}.url"
        )
    elif kind == "postback":
        check.keys(button, {"type", "title", "payload"}, "messenger.button", what)
        payload = check.string(
            check.field(button, "payload", "messenger.button", what), "messenger.button", f"{what}.payload"
        )
        check.length(payload, "messenger.button", f"{what}.payload", low=1, high=PAYLOAD, blank_ok=True)
    elif kind == "phone_number":
        check.keys(button, {"type", "title", "payload"}, "messenger.button", what)
        check.string(
            check.field(button, "payload", "messenger.button", what), "messenger.button", f"{what}.payload"
        )
    else:
        check.fail("messenger.button", f"{what}.type {kind!r} is not web_url/postback/phone_number")
    title = check.string(
        check.field(button, "title", "messenger.button.title", what),
        "messenger.button.title",
        f"{what}.title",
    )
    check.length(title, "messenger.button.title", f"{what}.title", low=1, high=BUTTON_TITLE)


# --------------------------------------------------------------------------- preview


def _buttons_html(buttons: Iterable[Mapping[str, Any]]) -> str:
    return "".join(
        anchor(b.get("url"), esc(text_of(b.get("title")) or gettext(OPEN_LABEL)), "fb-btn") for b in buttons
    )


def preview_call(call: ProviderCall, sender: Sender, number: int) -> str:
    """One call as a chat bubble, a button template or a carousel."""
    del number
    message = call.body.get("message")
    message = message if isinstance(message, Mapping) else {}
    attachment = message.get("attachment")
    if "text" in message:
        inner = f'<div class="fb-bubble">{esc(text_of(message.get("text")))}</div>'
    elif isinstance(attachment, Mapping):
        payload = attachment.get("payload")
        payload = payload if isinstance(payload, Mapping) else {}
        kind = text_of(attachment.get("type"))
        template = text_of(payload.get("template_type"))
        if kind == "image":
            inner = f'<div class="fb-image">{img(payload.get("url"))}</div>'
        elif kind in ("video", "audio", "file"):
            url = text_of(payload.get("url"))
            icon = {"video": "▶", "audio": "♫"}.get(kind, "🗎")
            inner = f'<div class="fb-bubble fb-file"><span class="fb-file-icon">{icon}</span>{anchor(url, esc(file_name(url)))}</div>'
        elif kind == "template" and template == "button":
            inner = (
                f'<div class="fb-card fb-buttons"><div class="fb-card-text">{esc(text_of(payload.get("text")))}</div>'
                f"{_buttons_html(dicts_of(payload.get('buttons')))}</div>"
            )
        elif kind == "template" and template == "generic":
            cards = []
            for element in dicts_of(payload.get("elements")):
                action = element.get("default_action")
                target = action.get("url") if isinstance(action, Mapping) else None
                image = (
                    anchor(target, img(element.get("image_url"), text_of(element.get("title"))))
                    if element.get("image_url")
                    else ""
                )
                subtitle = element.get("subtitle")
                cards.append(
                    '<div class="fb-el">'
                    + image
                    + f'<div class="fb-el-text"><div class="fb-el-title">{esc(text_of(element.get("title")))}</div>'
                    + (f'<div class="fb-el-sub">{esc(text_of(subtitle))}</div>' if subtitle else "")
                    + "</div>"
                    + _buttons_html(dicts_of(element.get("buttons")))
                    + "</div>"
                )
            inner = f'<div class="fb-carousel">{"".join(cards)}</div>'
        else:
            inner = raw_json(dict(message))
    else:
        inner = raw_json(dict(message))
    return f'<div class="fb-row"><div class="fb-avatar">{esc(sender.initial)}</div><div class="fb-content">{inner}</div></div>'


def preview_window(body: str, sender: Sender) -> str:
    """The previewed messages in a Messenger conversation."""
    subtitle = "Messenger · " + esc(gettext("preview"))
    return chat_window("fb", body, sender, "fb-avatar fb-avatar-big", subtitle)


FORMAT: Final = Format(
    "messenger",
    "Messenger",
    "messenger.j2",
    build_calls,
    validate,
    preview_call,
    preview_window,
    upload_limits=dict.fromkeys(("image", "video", "audio", "file"), UPLOAD),
)
