"""``feedcast preview`` on a terminal (:func:`print_preview`): a rich panel per message,
what a recipient would read, media and buttons as lines; Telegram HTML shown with its
bold, italic and links. Every text from the items is shown literally."""

from __future__ import annotations

import json
from collections.abc import Mapping
from html.parser import HTMLParser
from typing import Any, Final

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.style import Style
from rich.text import Text

from feedcast.kernel.models import ProviderCall
from feedcast.kernel.urls import LINK_SCHEMES, safe_url
from feedcast.preview import KIND_NAMES, Preview, count_of
from feedcast.terminal import literal, literal_data
from layouts.formats.telegram import MEDIA_METHODS as _TG_MEDIA
from layouts.formats.telegram import keyboard_buttons as _keyboard
from layouts.preview_html import dicts_of as _dicts
from layouts.preview_html import text_of as _str

__all__ = ["print_preview"]


def print_preview(preview: Preview, console: Console) -> None:
    """A panel per Message: what a recipient would read, media and buttons as lines."""
    layout = preview.layout
    console.print(
        Text.assemble(
            ("preview ", "bold"),
            (literal(layout.name), "bold cyan"),
            (f" (per {layout.per}) → {KIND_NAMES[preview.kind]}: ", ""),
            (literal(preview.summary()), ""),
        )
    )
    if preview.verdict is not None:
        console.print(
            Text(literal(preview.verdict), style="yellow" if " nothing " in preview.verdict else "green")
        )
    if not preview.messages:
        if preview.items or preview.verdict is None:
            console.print(Text("the layout rendered nothing for these items", style="yellow"))
        return
    titles = {item.key: literal(item.title or item.key) for item in preview.items}
    total = len(preview.messages)
    for pm in preview.messages:
        parts: list[RenderableType] = []
        for index, pc in enumerate(pm.calls, 1):
            if len(pm.calls) > 1:
                parts.append(Text(f"── {index}. {pc.call.method}", style="dim"))
            parts.extend(_terminal_call(preview.kind, pc.call))
            if pc.error is not None:
                parts.append(Text(f"✗ invalid: {literal(pc.error)}", style="bold red"))
        if pm.error is not None:
            parts.append(Text(f"✗ {literal(pm.error)}", style="bold red"))
        if not parts:
            parts.append(Text("(no provider call)", style="dim"))
        shown = [titles.get(key, key) for key in pm.message.item_keys]
        about = shown[0] if len(shown) == 1 else count_of(len(shown), "item")
        bad = pm.error is not None or any(pc.error for pc in pm.calls)
        console.print(
            Panel(
                Group(*parts),
                title=Text(f"message {pm.number}/{total} · {about}"),
                title_align="left",
                subtitle=Text(count_of(len(pm.calls), "call")),
                subtitle_align="right",
                border_style="red" if bad else "cyan",
                expand=False,
            )
        )


def _line(label: str, value: str, style: str = "blue") -> Text:
    return Text.assemble(("[", "dim"), (label, style), (": ", "dim"), value, ("]", "dim"))


def _button_line(title: str, url: str) -> Text:
    return Text.assemble(("[button: ", "dim"), (title, "bold"), (" → ", "dim"), url, ("]", "dim"))


def _terminal_call(kind: str, call: ProviderCall) -> list[RenderableType]:
    body = literal_data(call.body)  # what the items put in it, shown literally
    lines: list[RenderableType] = []
    if kind == "telegram":
        if call.method == "sendMediaGroup":
            media = _dicts(body.get("media"))
            lines.append(_line("album", count_of(len(media), "photo")))
            for entry in media:
                lines.append(_line(_str(entry.get("type")) or "photo", _str(entry.get("media"))))
            caption = next((_str(e.get("caption")) for e in media if e.get("caption")), "")
            if caption:
                lines.append(_tg_rich(caption))
        elif call.method in _TG_MEDIA:
            field = _TG_MEDIA[call.method]
            lines.append(_line(field, _str(body.get(field))))
            if body.get("caption"):
                lines.append(_tg_rich(_str(body.get("caption"))))
        elif call.method == "sendMessage":
            lines.append(_tg_rich(_str(body.get("text"))))
        else:
            lines.append(Text(json.dumps(body, ensure_ascii=False)))
        lines.extend(_button_line(title, url) for title, url in _keyboard(body))
    elif kind == "messenger":
        lines.extend(_terminal_messenger(body.get("message")))
    elif kind == "email":
        lines.append(Text.assemble(("Subject: ", "dim"), (_str(body.get("subject")), "bold")))
        lines.append(Text("─" * 40, style="dim"))
        lines.append(Text(_str(body.get("text")).rstrip()))
    elif kind == "slack":
        lines.extend(_terminal_slack(body))
    elif kind == "discord":
        lines.extend(_terminal_discord(body))
    else:
        lines.extend(_terminal_json(body))
    return lines


def _terminal_messenger(message: object) -> list[RenderableType]:
    if not isinstance(message, Mapping):
        return [Text(json.dumps(message, ensure_ascii=False))]
    if "text" in message:
        return [Text(_str(message.get("text")))]
    attachment = message.get("attachment")
    if not isinstance(attachment, Mapping):
        return [Text(json.dumps(dict(message), ensure_ascii=False))]
    payload = attachment.get("payload")
    payload = payload if isinstance(payload, Mapping) else {}
    if attachment.get("type") != "template":
        return [_line(_str(attachment.get("type")), _str(payload.get("url")))]
    lines: list[RenderableType] = []
    if payload.get("template_type") == "button":
        lines.append(Text(_str(payload.get("text"))))
        lines.extend(
            _button_line(_str(b.get("title")), _str(b.get("url"))) for b in _dicts(payload.get("buttons"))
        )
    elif payload.get("template_type") == "generic":
        elements = _dicts(payload.get("elements"))
        lines.append(_line("carousel", count_of(len(elements), "card")))
        for element in elements:
            lines.append(Text.assemble(("▸ ", "dim"), (_str(element.get("title")), "bold")))
            if element.get("subtitle"):
                lines.append(Text("  " + _str(element.get("subtitle"))))
            if element.get("image_url"):
                lines.append(Text.assemble("  ", _line("image", _str(element.get("image_url")))))
            for b in _dicts(element.get("buttons")):
                lines.append(Text.assemble("  ", _button_line(_str(b.get("title")), _str(b.get("url")))))
    else:
        lines.append(Text(json.dumps(dict(payload), ensure_ascii=False)))
    return lines


def _terminal_slack(body: Mapping[str, Any]) -> list[RenderableType]:
    lines: list[RenderableType] = []
    for block in _dicts(body.get("blocks")):
        kind = block.get("type")
        text = block.get("text")
        if kind in ("section", "header") and isinstance(text, Mapping):
            lines.append(Text(_str(text.get("text"))))
            accessory = block.get("accessory")
            if isinstance(accessory, Mapping) and accessory.get("type") == "image":
                lines.append(_line("thumbnail", _str(accessory.get("image_url"))))
        elif kind == "image":
            lines.append(_line("image", _str(block.get("image_url"))))
        elif kind == "actions":
            for element in _dicts(block.get("elements")):
                label = element.get("text")
                title = _str(label.get("text")) if isinstance(label, Mapping) else ""
                lines.append(_button_line(title, _str(element.get("url"))))
        elif kind == "divider":
            lines.append(Text("───", style="dim"))
        else:
            lines.append(Text(json.dumps(dict(block), ensure_ascii=False)))
    return lines or [Text(_str(body.get("text")))]


def _terminal_discord(body: Mapping[str, Any]) -> list[RenderableType]:
    lines: list[RenderableType] = []
    if body.get("content"):
        lines.append(Text(_str(body.get("content"))))
    for embed in _dicts(body.get("embeds")):
        head = Text.assemble(("▌ ", "magenta"), (_str(embed.get("title")) or "embed", "bold"))
        if embed.get("url"):
            head.append(f" ({_str(embed.get('url'))})", style="dim")
        lines.append(head)
        if embed.get("description"):
            lines.append(Text("  " + _str(embed.get("description")).replace("\n", "\n  ")))
        image = embed.get("image")
        if isinstance(image, Mapping):
            lines.append(Text.assemble("  ", _line("image", _str(image.get("url")))))
    return lines


def _terminal_json(body: Mapping[str, Any]) -> list[RenderableType]:
    modules = _dicts(body.get("modules"))
    items = body.get("items") if isinstance(body.get("items"), list) else []
    lines: list[RenderableType] = [
        Text.assemble(
            ("POST ", "dim"),
            (_str(body.get("format")), "bold"),
            (" · subject: ", "dim"),
            _str(body.get("subject")) or "-",
            (" · items: ", "dim"),
            ", ".join(map(str, items or [])) or "-",
        )
    ]
    for module in modules:
        text = " ".join(_str(module.get("text")).split())
        if len(text) > 100:
            text = text[:99] + "…"
        lines.append(Text.assemble(("- ", "dim"), (_str(module.get("kind")), "blue"), ": ", text))
    return lines


_RICH_STYLES: Final[Mapping[str, str]] = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strike",
    "strike": "strike",
    "del": "strike",
    "code": "cyan",
    "pre": "cyan",
    "blockquote": "italic",
    "tg-spoiler": "reverse",
}


class _TelegramRich(HTMLParser):
    """Telegram HTML as rich Text: its visible text (as Telegram shows it, see
    :func:`layouts.html.telegram_visible_text`) with bold, italic, strike... and
    clickable links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text = Text()
        self.stack: list[tuple[str, Style]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k.lower(): v or "" for k, v in attrs}
        if tag == "a":
            href = safe_url(values.get("href"), LINK_SCHEMES, raw=False)
            style = Style(underline=True, color="blue", link=href) if href else Style(underline=True)
        elif tag == "span" and values.get("class") == "tg-spoiler":
            style = Style.parse("reverse")
        elif tag in _RICH_STYLES:
            style = Style.parse(_RICH_STYLES[tag])
        else:
            return
        self.stack.append((tag, style))

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index][0] == tag:
                del self.stack[index:]
                break

    def handle_data(self, data: str) -> None:
        data = literal(data, newlines=True)  # entities too: &#27; is an ESC
        self.text.append(data, Style.combine(style for _tag, style in self.stack) if self.stack else None)


def _tg_rich(text: str) -> Text:
    parser = _TelegramRich()
    parser.feed(text)
    parser.close()
    return parser.text
