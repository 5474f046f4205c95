"""A composed message (``feedcast campaign create``) as the Message of one format.

The marketer's modules (:class:`~feedcast.kernel.models.ComposedModule`: text, image,
video, audio, file; text and captions in the composer's markup, :mod:`layouts.markup`)
become the modules the format builders know (:mod:`layouts.formats`), texts in the
format's own markup (``Format.markup``). Email is a document: the shared templates
``feedcast/composed.html.j2`` and ``composed.txt.j2`` lay the modules out on the card of
the built-in emails (:func:`layouts.render.render_composed_email`).

What a format cannot carry is said, never dropped silently: a reply button where the
provider takes no replies (email, Slack and Discord incoming webhooks) is left out with
a warning.

Plain Python; no network.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from markupsafe import Markup

from feedcast.kernel.models import Button, ComposedMessage, ComposedModule, Message, Module
from layouts import markup
from layouts.formats import get_format
from layouts.formats._build import ICONS, link_name
from layouts.render import RenderContext, render_composed_email

__all__ = ["REPLY_FORMATS", "Composed", "compose", "inline_cid"]

REPLY_FORMATS: Final = frozenset({"telegram", "messenger", "json"})  # formats that carry reply buttons


@dataclass(frozen=True, slots=True)
class Composed:
    """A composed message for one format, and what it could not carry."""

    message: Message
    warnings: tuple[str, ...] = field(default=())


def inline_cid(sha256: str) -> str:
    """The Content-ID an uploaded image is shown by inside an email."""
    return f"{sha256[:32]}@feedcast"


def _label(module: ComposedModule) -> str:
    if module.name:
        return module.name
    if module.upload is not None:
        return module.upload.name
    return link_name(module.url or "")


def compose(
    message: ComposedMessage,
    fmt: str,
    context: RenderContext,
    *,
    file_urls: Mapping[str, str] | None = None,
) -> Composed:
    """``message`` as the Message of format ``fmt``. ``file_urls`` maps an upload's
    SHA-256 to the public link it is reachable at (a file a provider cannot take as an
    upload goes as that link)."""
    warnings: list[str] = []
    buttons = [
        _buttons(module, position, fmt, warnings) for position, module in enumerate(message.modules, 1)
    ]
    if get_format(fmt).text_template is not None:
        return Composed(_email(message, context, buttons, file_urls or {}), tuple(warnings))
    render_text = get_format(fmt).markup
    modules = []
    for module, kept in zip(message.modules, buttons, strict=True):
        if module.kind == "text":
            modules.append(Module(kind="text", text=render_text(module.text or ""), buttons=kept))
            continue
        url = module.url
        if module.upload is not None:
            url = module.upload.ref
        modules.append(
            Module(
                kind=module.kind,
                text=render_text(module.caption) if module.caption else None,
                url=url,
                buttons=kept,
                upload=module.upload,
                alt=module.alt,
                name=module.name or (module.upload.name if module.upload else None),
            )
        )
    subject = message.subject or _first_words(message)
    return Composed(Message(format=fmt, modules=tuple(modules), subject=subject), tuple(warnings))


def _buttons(module: ComposedModule, position: int, fmt: str, warnings: list[str]) -> tuple[Button, ...]:
    if fmt in REPLY_FORMATS:
        return module.buttons
    kept = []
    for button in module.buttons:
        if button.reply is not None:
            label = get_format(fmt).label
            warnings.append(
                f"module {position} ({module.kind}): button {button.title!r} is a reply button; "
                f"{label} takes no replies: left out"
            )
            continue
        kept.append(button)
    return tuple(kept)


def _first_words(message: ComposedMessage) -> str | None:
    for module in message.modules:
        words = markup.plain(module.text or module.caption or "")
        if words:
            return words[:78].rstrip() + ("…" if len(words) > 78 else "")
    return None


def _email(
    message: ComposedMessage,
    context: RenderContext,
    buttons: list[tuple[Button, ...]],
    file_urls: Mapping[str, str],
) -> Message:
    blocks: list[dict[str, Any]] = []
    for module, kept in zip(message.modules, buttons, strict=True):
        source = module.text if module.kind == "text" else module.caption
        url = module.url
        public = module.url
        if module.upload is not None:
            public = file_urls.get(module.upload.sha256)
            # an uploaded image shows inline (cid:); other files go as attachments, or
            # as their link when they are too large to attach
            url = f"cid:{inline_cid(module.upload.sha256)}" if module.kind == "image" else public
        blocks.append(
            {
                "kind": module.kind,
                "html": Markup(markup.to_html(source or "")),  # noqa: S704 (to_html escapes every text)
                "text": markup.to_plain(source or ""),
                "url": url,
                "public_url": public,
                "alt": module.alt or markup.plain(module.caption or "") or _label(module),
                "label": _label(module),
                "icon": ICONS.get(module.kind, ""),
                "buttons": [{"title": b.title, "url": b.url} for b in kept if b.url],
            }
        )
    subject = message.subject or _first_words(message) or ""
    modules, subject_out = render_composed_email(blocks, subject=subject, context=context)
    return Message(format="email", modules=modules, subject=subject_out)
