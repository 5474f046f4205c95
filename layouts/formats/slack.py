"""The ``slack`` format: incoming-webhook calls of Block Kit blocks, with mrkdwn.

``{"text": fallback, "blocks": [...]}``: text -> mrkdwn sections (<= 3000), image ->
image blocks, other media -> a section with a link, buttons -> actions (<= 25, text
<= 75), cards -> a section per card (image accessory) plus its buttons; at most 50
blocks per call, a module's blocks never split. ``text`` is the subject or the first
text of the call (notifications).

The preview re-renders mrkdwn from a whitelist (:func:`mrkdwn_to_html`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from feedcast.kernel.models import Button, Card, Message, Module, ProviderCall
from layouts.formats import _check as check
from layouts.formats._build import ICONS, MEDIA_KINDS, JsonObj, Sizes, link_name, one_line, url_of
from layouts.formats._fit import ELLIPSIS, close_cut, cut_utf16, groups_of
from layouts.formats._spec import Format
from layouts.i18n import gettext
from layouts.markup import to_slack
from layouts.preview_html import (
    Sender,
    Stash,
    anchor,
    app_message,
    app_window,
    dicts_of,
    esc,
    img,
    raw_json,
    text_of,
)
from layouts.text import truncate_text, utf16_len

__all__ = ["FORMAT", "mrkdwn_to_html"]

# Slack incoming webhooks (Block Kit): characters (UTF-16 code units) unless said otherwise
TEXT = 40_000  # the fallback text
BLOCKS = 50  # blocks per message
SECTION = 3000  # a section's text, a context element's
FIELD, FIELDS = 2000, 10  # a section's field, fields per section
HEADER = 150
ALT_TEXT = IMAGE_TITLE = 2000
URL = 3000  # an image's or a button's
ACTIONS = 25  # buttons per actions block
BUTTON_TEXT = 75
CONTEXT = 10  # elements per context block
BLOCK_ID = 255


# --------------------------------------------------------------------------- building

_LINK = re.compile(r"<[^<>\s|]+(?:\|[^<>]*)?>")
_ENTITY = re.compile(r"&(?:amp|lt|gt);")
_UNLINK = re.compile(r"<([^<>|]+)\|([^<>]*)>")
_BARE = re.compile(r"<([^<>|]+)>")
_EMPHASIS = re.compile(r"(?<!\w)[*_~]+|[*_~]+(?!\w)")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, room: int) -> str:
    cut = truncate_text(text, room, ELLIPSIS, unit="utf16")
    cut = close_cut(cut, text, "<", _LINK)
    return close_cut(cut, text, "&", _ENTITY)


def _plain(mrkdwn: str) -> str:
    text = _UNLINK.sub(r"\2", mrkdwn)
    text = _BARE.sub(r"\1", text)
    text = _EMPHASIS.sub("", text)
    return one_line(text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))


def _section(text: str) -> JsonObj | None:
    text = _cut(text.strip(), SECTION)
    if not text.strip():
        return None
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _actions(buttons: Iterable[Button]) -> list[JsonObj]:
    elements: list[JsonObj] = []
    for button in buttons:
        url = url_of(button.url)
        if url is None or utf16_len(url) > URL:
            continue
        title = one_line(button.title) or link_name(url)
        text = {"type": "plain_text", "text": cut_utf16(title, BUTTON_TEXT), "emoji": True}
        elements.append({"type": "button", "text": text, "url": url})
    return [{"type": "actions", "elements": list(group)} for group in groups_of(elements, ACTIONS)]


def _link(url: str, label: str) -> str:
    target = url.replace("|", "%7C").replace("<", "%3C").replace(">", "%3E")
    return f"<{target}|{_escape(label).replace('|', '¦')}>"


def _groups(module: Module) -> list[list[JsonObj]]:
    """The blocks of one module, in groups that must stay in one call."""
    blocks: list[JsonObj] = []
    text = (module.text or "").strip()
    if module.kind == "text":
        blocks.append(_section(text) or {})
    elif module.kind == "image" and (url := url_of(module.url)) and utf16_len(url) <= URL:
        alt = cut_utf16(_plain(text) or link_name(url), ALT_TEXT)
        blocks.append(_section(text) or {})
        blocks.append({"type": "image", "image_url": url, "alt_text": alt})
    elif module.kind in MEDIA_KINDS:
        blocks.append(_section(text) or {})
        raw = (module.url or "").strip()
        url = url_of(raw)
        if url and utf16_len(url) < SECTION - 10:
            blocks.append(_section(_link(url, f"{ICONS[module.kind]} {link_name(url)}")) or {})
        elif raw:
            blocks.append(_section(_escape(raw)) or {})
    elif module.kind == "cards":
        groups = [[b] for b in [_section(text)] if b]
        for card in module.cards:
            groups.append(_card(card))
        tail = _actions(module.buttons)
        if tail:
            groups.append(tail)
        return [g for g in groups if g]
    blocks = [b for b in blocks if b]
    blocks.extend(_actions(module.buttons))
    return [blocks] if blocks else []


def _card(card: Card) -> list[JsonObj]:
    url = url_of(card.url)
    title = one_line(card.title)
    lines = []
    if title:
        lines.append(f"*{_link(url, title)}*" if url else f"*{_escape(title)}*")
    elif url:
        lines.append(_link(url, link_name(url)))
    if one_line(card.subtitle):
        lines.append(_escape(one_line(card.subtitle)))
    section = _section("\n".join(lines))
    image = url_of(card.image)
    if section is None and image is None:
        return _actions(card.buttons)
    if section is None:
        section = {"type": "section", "text": {"type": "mrkdwn", "text": _escape(link_name(image or ""))}}
    if image and utf16_len(image) <= URL:
        section["accessory"] = {
            "type": "image",
            "image_url": image,
            "alt_text": cut_utf16(title or link_name(image), ALT_TEXT),
        }
    return [section, *_actions(card.buttons)]


def _fallback(subject: str, blocks: Sequence[JsonObj]) -> str:
    """The notification text: the subject, else the first words of the call, as escaped mrkdwn."""
    plain = subject
    for block in blocks:
        if plain:
            break
        if block["type"] == "section":
            plain = _plain(block["text"]["text"])
        elif block["type"] == "image":
            plain = str(block["alt_text"])
        elif block["type"] == "actions":
            plain = " · ".join(e["text"]["text"] for e in block["elements"])
    return _cut(_escape(plain), SECTION) or ELLIPSIS


def build_calls(message: Message, sizes: Sizes) -> list[ProviderCall]:
    """The webhook calls that deliver ``message``: at most 50 blocks each."""
    del sizes  # Slack fetches images itself and has no published size limit
    calls: list[list[JsonObj]] = []
    current: list[JsonObj] = []
    for module in message.modules:
        for group in _groups(module):
            if current and len(current) + len(group) > BLOCKS:
                calls.append(current)
                current = []
            current.extend(group)
    if current:
        calls.append(current)
    subject = one_line(message.subject)
    return [ProviderCall("POST", {"text": _fallback(subject, blocks), "blocks": blocks}) for blocks in calls]


# --------------------------------------------------------------------------- validation

_SENDER_KEYS = frozenset({"username", "icon_emoji", "icon_url"})  # how the sender shows
_BODY_KEYS = _SENDER_KEYS | {"text", "blocks", "thread_ts", "mrkdwn", "unfurl_links", "unfurl_media"}


def validate(call: ProviderCall) -> None:
    """Raise PayloadError unless ``call`` is a valid incoming-webhook message (Block Kit)."""
    body = check.webhook_body(call, "slack", _BODY_KEYS)
    text = check.text(body.get("text", ""), "slack.text", "text", "text", high=TEXT)
    blocks = check.array(body.get("blocks", []), "slack.blocks", "blocks")
    if not blocks and not text.strip():
        check.fail("slack.text", "a message without blocks needs a non-empty text")
    if not text.strip():
        check.fail("slack.text", "the fallback text (notifications, screen readers) is empty")
    if len(blocks) > BLOCKS:
        check.fail("slack.blocks.count", f"{len(blocks)} blocks, over {BLOCKS}")
    for index, block in enumerate(blocks):
        _check_block(block, f"blocks[{index}]")


def _check_text(value: Any, rule: str, what: str, *, high: int, plain_only: bool = False) -> None:
    obj = check.obj(value, rule, what)
    kind = obj.get("type")
    if kind not in (("plain_text",) if plain_only else ("plain_text", "mrkdwn")):
        check.fail(rule, f"{what}.type {kind!r} is not {'plain_text' if plain_only else 'plain_text/mrkdwn'}")
    check.keys(
        obj, {"type", "text", "emoji"} if kind == "plain_text" else {"type", "text", "verbatim"}, rule, what
    )
    text = check.string(check.field(obj, "text", rule, what), rule, f"{what}.text")
    check.length(text, rule, f"{what}.text", low=1, high=high)


def _check_text_field(obj: Mapping[str, Any], rule: str, what: str, high: int) -> None:
    """The required plain_text ``text`` of a button or a header."""
    _check_text(check.field(obj, "text", rule, what), rule, f"{what}.text", high=high, plain_only=True)


def _check_image(obj: Mapping[str, Any], what: str, keys: set[str]) -> None:
    check.keys(obj, keys, "slack.image", what)
    url = check.url(
        check.field(obj, "image_url", "slack.image", what), "slack.image.url", f"{what}.image_url"
    )
    check.length(url, "slack.image.url", f"{what}.image_url", high=URL)
    alt = check.string(
        check.field(obj, "alt_text", "slack.image.alt_text", what), "slack.image.alt_text", f"{what}.alt_text"
    )
    check.length(alt, "slack.image.alt_text", f"{what}.alt_text", low=1, high=ALT_TEXT)


def _check_button(value: Any, what: str) -> None:
    button = check.obj(value, "slack.button", what)
    check.keys(button, {"type", "text", "url", "action_id", "value", "style"}, "slack.button", what)
    if button.get("type") != "button":
        check.fail("slack.button", f"{what}.type must be button")
    _check_text_field(button, "slack.button.text", what, BUTTON_TEXT)
    if "url" in button:
        url = check.url(button["url"], "slack.button.url", f"{what}.url")
        check.length(url, "slack.button.url", f"{what}.url", high=URL)
    if "action_id" in button:
        check.text(button["action_id"], "slack.button", "action_id", f"{what}.action_id", high=255)
    if "value" in button:
        check.text(button["value"], "slack.button", "value", f"{what}.value", high=2000)
    if "style" in button and button["style"] not in ("primary", "danger"):
        check.fail("slack.button", f"{what}.style is primary or danger")


def _check_block(value: Any, what: str) -> None:
    block = check.obj(value, "slack.block", what)
    kind = block.get("type")
    if "block_id" in block:
        check.text(block["block_id"], "slack.block", "block_id", f"{what}.block_id", low=1, high=BLOCK_ID)
    check_kind = _BLOCK_CHECKS.get(kind) if isinstance(kind, str) else None
    if check_kind is None:
        check.fail("slack.block", f"{what}.type {kind!r} is not section/header/image/actions/context/divider")
    check_kind(block, what)


def _check_section(block: Mapping[str, Any], what: str) -> None:
    check.keys(block, {"type", "text", "fields", "accessory", "block_id"}, "slack.block", what)
    if "text" not in block and "fields" not in block:
        check.fail("slack.section", f"{what} needs text or fields")
    if "text" in block:
        _check_text(block["text"], "slack.section.text", f"{what}.text", high=SECTION)
    if "fields" in block:
        fields = check.array(block["fields"], "slack.section.fields", f"{what}.fields")
        if not 1 <= len(fields) <= FIELDS:
            check.fail("slack.section.fields", f"{what} has {len(fields)} fields, allowed 1..{FIELDS}")
        for f, field in enumerate(fields):
            _check_text(field, "slack.section.fields", f"{what}.fields[{f}]", high=FIELD)
    if "accessory" in block:
        accessory = check.obj(block["accessory"], "slack.section.accessory", f"{what}.accessory")
        if accessory.get("type") == "image":
            _check_image(accessory, f"{what}.accessory", {"type", "image_url", "alt_text"})
        elif accessory.get("type") == "button":
            _check_button(accessory, f"{what}.accessory")
        else:
            check.fail(
                "slack.section.accessory",
                f"{what}.accessory type {accessory.get('type')!r} is not image/button",
            )


def _check_header(block: Mapping[str, Any], what: str) -> None:
    check.keys(block, {"type", "text", "block_id"}, "slack.block", what)
    _check_text_field(block, "slack.header", what, HEADER)


def _check_image_block(block: Mapping[str, Any], what: str) -> None:
    _check_image(block, what, {"type", "image_url", "alt_text", "title", "block_id"})
    if "title" in block:
        _check_text(block["title"], "slack.image.title", f"{what}.title", high=IMAGE_TITLE, plain_only=True)


def _elements(block: Mapping[str, Any], what: str, rule: str, high: int) -> list[Any]:
    """The 1..``high`` elements of an actions or context block."""
    check.keys(block, {"type", "elements", "block_id"}, "slack.block", what)
    elements = check.array(check.field(block, "elements", rule, what), rule, f"{what}.elements")
    if not 1 <= len(elements) <= high:
        check.fail(rule, f"{what} has {len(elements)} elements, allowed 1..{high}")
    return elements


def _check_actions(block: Mapping[str, Any], what: str) -> None:
    for e, element in enumerate(_elements(block, what, "slack.actions", ACTIONS)):
        _check_button(element, f"{what}.elements[{e}]")


def _check_context(block: Mapping[str, Any], what: str) -> None:
    for e, raw in enumerate(_elements(block, what, "slack.context", CONTEXT)):
        element = check.obj(raw, "slack.context", f"{what}.elements[{e}]")
        if element.get("type") == "image":
            _check_image(element, f"{what}.elements[{e}]", {"type", "image_url", "alt_text"})
        else:
            _check_text(element, "slack.context", f"{what}.elements[{e}]", high=SECTION)


def _check_divider(block: Mapping[str, Any], what: str) -> None:
    check.keys(block, {"type", "block_id"}, "slack.block", what)


_BLOCK_CHECKS: Final[Mapping[str, Callable[[Mapping[str, Any], str], None]]] = {
    "section": _check_section,
    "header": _check_header,
    "image": _check_image_block,
    "actions": _check_actions,
    "context": _check_context,
    "divider": _check_divider,
}


# --------------------------------------------------------------------------- preview

_TOKEN = re.compile(r"<([^<>|\n]+)(?:\|([^<>\n]*))?>")
_RULES = (
    (re.compile(r"(?<![\w*])\*(?!\s)([^*\n]+?)\*(?![\w*])"), "b"),
    (re.compile(r"(?<![\w_])_(?!\s)([^_\n]+?)_(?![\w_])"), "i"),
    (re.compile(r"(?<![\w~])~(?!\s)([^~\n]+?)~(?![\w~])"), "s"),
)
_CODE = re.compile(r"`([^`\n]+)`")


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def mrkdwn_to_html(text: str) -> str:
    """Slack mrkdwn (links, *bold*, _italic_, ~strike~, `code`) as safe HTML."""
    stash = Stash()
    text = stash.clean(text)
    text = _CODE.sub(lambda m: stash.put(f"<code>{esc(_unescape(m.group(1)))}</code>"), text)

    def link(m: re.Match[str]) -> str:
        target = _unescape(m.group(1))
        label = m.group(2)
        shown = Stash.formatted(_unescape(label), _RULES) if label else esc(target)
        return stash.put(anchor(target, shown))

    text = _TOKEN.sub(link, text)
    return stash.restore(Stash.formatted(_unescape(text), _RULES))


def _block_html(block: Mapping[str, Any]) -> str:
    kind = block.get("type")
    text = block.get("text")
    mrkdwn = text_of(text.get("text")) if isinstance(text, Mapping) else ""
    plain = isinstance(text, Mapping) and text.get("type") == "plain_text"
    rendered = esc(mrkdwn) if plain else mrkdwn_to_html(mrkdwn)
    if kind == "section":
        accessory = block.get("accessory")
        side = ""
        if isinstance(accessory, Mapping) and accessory.get("type") == "image":
            side = img(accessory.get("image_url"), text_of(accessory.get("alt_text")), "sl-thumb")
        return f'<div class="sl-section"><div class="sl-text">{rendered}</div>{side}</div>'
    if kind == "header":
        return f'<div class="sl-header">{esc(mrkdwn)}</div>'
    if kind == "image":
        return f'<div class="sl-image">{img(block.get("image_url"), text_of(block.get("alt_text")))}</div>'
    if kind == "actions":
        buttons = []
        for element in dicts_of(block.get("elements")):
            label = element.get("text")
            title = text_of(label.get("text")) if isinstance(label, Mapping) else ""
            buttons.append(anchor(element.get("url"), esc(title), "sl-btn"))
        return f'<div class="sl-actions">{"".join(buttons)}</div>'
    if kind == "divider":
        return '<hr class="sl-divider">'
    if kind == "context":
        bits = [
            mrkdwn_to_html(text_of(e.get("text")))
            if e.get("type") == "mrkdwn"
            else esc(text_of(e.get("text")))
            for e in dicts_of(block.get("elements"))
        ]
        return f'<div class="sl-context">{" ".join(bits)}</div>'
    return raw_json(dict(block))


def preview_call(call: ProviderCall, sender: Sender, number: int) -> str:
    """One call as a message of the app in a channel."""
    del number
    blocks = dicts_of(call.body.get("blocks"))
    content = "".join(_block_html(b) for b in blocks) or (
        f'<div class="sl-text">{mrkdwn_to_html(text_of(call.body.get("text")))}</div>'
    )
    return app_message("sl", sender, "sl-app", ("muted", sender.time), content)


def preview_window(body: str, sender: Sender) -> str:
    """The previewed messages in a Slack channel."""
    del sender
    return app_window("sl", "# " + esc(gettext("announcements")), body)


FORMAT: Final = Format(
    "slack", "Slack", "slack.j2", build_calls, validate, preview_call, preview_window, markup=to_slack
)
