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

from feedcast.kernel.models import Attachment, Button, ComposedMessage, ComposedModule, Message, Module
from layouts import markup
from layouts.formats import get_format
from layouts.formats._build import ICONS, link_name
from layouts.formats._check import MB
from layouts.formats.email import ATTACHMENTS_SIZE, inline_cid
from layouts.render import RenderContext, render_composed_email

__all__ = ["REPLY_FORMATS", "Composed", "compose"]

REPLY_FORMATS: Final = frozenset({"telegram", "messenger", "json"})  # formats that carry reply buttons


@dataclass(frozen=True, slots=True)
class Composed:
    """A composed message for one format, and what it could not carry."""

    message: Message
    warnings: tuple[str, ...] = field(default=())


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
    SHA-256 to the public link it is reachable at: a file the format cannot upload (a
    webhook, a file over the provider's limit) goes as that link, and a warning says so."""
    spec = get_format(fmt)
    links = file_urls or {}
    warnings: list[str] = []
    buttons = [
        _buttons(module, position, fmt, warnings) for position, module in enumerate(message.modules, 1)
    ]
    uploads = _uploads(message, fmt, links, warnings)
    if spec.text_template is not None:
        return Composed(_email(message, context, buttons, uploads, links), tuple(warnings))
    modules = []
    for module, kept in zip(message.modules, buttons, strict=True):
        if module.kind == "text":
            modules.append(Module(kind="text", text=spec.markup(module.text or ""), buttons=kept))
            continue
        upload = module.upload if module.upload is not None and module.upload.sha256 in uploads else None
        url = links.get(module.upload.sha256) if module.upload is not None else module.url
        modules.append(
            Module(
                kind=module.kind,
                text=spec.markup(module.caption) if module.caption else None,
                url=url,
                buttons=kept,
                upload=upload,
                alt=module.alt,
                name=module.name or (module.upload.name if module.upload else None),
            )
        )
    subject = message.subject or _first_words(message)
    composed = Message(format=fmt, modules=tuple(modules), subject=subject, albums=True)
    return Composed(composed, tuple(warnings))


def _uploads(message: ComposedMessage, fmt: str, links: Mapping[str, str], warnings: list[str]) -> set[str]:
    """The files the format takes as uploads (by SHA-256); the others go as links, said."""
    spec = get_format(fmt)
    taken: set[str] = set()
    room = ATTACHMENTS_SIZE if spec.text_template is not None else None  # what an email carries
    for position, module in enumerate(message.modules, 1):
        upload = module.upload
        if upload is None:
            continue
        limit = spec.upload_limits.get(module.kind)
        where = f"module {position} ({module.kind}): {upload.name} ({upload.size / MB:.1f} MB)"
        link = links.get(upload.sha256, "its link")
        if limit is None:
            warnings.append(f"{where}: {spec.label} takes no uploads: sent as a link to {link}")
        elif upload.size > limit or (room is not None and upload.size > room):
            warnings.append(
                f"{where}: over the {limit / MB:g} MB {spec.label} takes: sent as a link to {link}"
            )
        else:
            taken.add(upload.sha256)
            if room is not None:
                room -= upload.size
    return taken


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
    uploads: set[str],
    links: Mapping[str, str],
) -> Message:
    blocks: list[dict[str, Any]] = []
    attachments: list[Attachment] = []
    for module, kept in zip(message.modules, buttons, strict=True):
        source = module.text if module.kind == "text" else module.caption
        url = public = module.url
        upload = module.upload
        if upload is not None:
            public = links.get(upload.sha256)
            url = public
            if upload.sha256 in uploads:  # an image inline (cid:), another file attached
                inline = module.kind == "image"
                attachments.append(Attachment(upload, inline=inline))
                url = f"cid:{inline_cid(upload.sha256)}" if inline else None
        blocks.append(
            {
                "kind": module.kind,
                "html": Markup(markup.to_html(source or "")),  # noqa: S704 (to_html escapes every text)
                "text": markup.to_plain(source or ""),
                "url": url,
                "public_url": public,
                "attached": upload is not None and upload.sha256 in uploads and module.kind != "image",
                "alt": module.alt or markup.plain(module.caption or "") or _label(module),
                "label": _label(module),
                "icon": ICONS.get(module.kind, ""),
                "buttons": [{"title": b.title, "url": b.url} for b in kept if b.url],
            }
        )
    subject = message.subject or _first_words(message) or ""
    modules, subject_out = render_composed_email(blocks, subject=subject, context=context)
    unique = {a.upload.sha256: a for a in attachments}  # a file named twice is carried once
    return Message(format="email", modules=modules, subject=subject_out, attachments=tuple(unique.values()))
