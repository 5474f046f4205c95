"""The ``email`` format: one ``smtp`` call ``{"subject", "html", "text"}`` per Message.

**Convention**: the first text module is the HTML body (a fragment, or a whole
document); an optional second text module is the plain-text alternative, used verbatim
(:func:`parts`); more text modules are an error. Media, cards and buttons are added to
the HTML as simple inline markup in module order (inside ``<body>`` when the HTML is a
document); a fragment is wrapped in a minimal document. Without a plain module the plain
part is ``plain_text(html)``. Subject: ``message.subject`` on one line, <= 998
characters (code points: the SMTP sender encodes and folds the header), else the first
line of the plain text. Layouts render it from ``email.html.j2`` and, optionally,
``email.txt.j2``; its messages carry the recipient's unsubscribe link.

The preview shows the HTML part in an ``<iframe sandbox srcdoc>``: nothing in it runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from html import escape
from typing import Final

from feedcast.kernel.errors import PayloadError
from feedcast.kernel.models import Attachment, Button, Message, Module, ProviderCall
from layouts.formats import _check as check
from layouts.formats._build import ICONS, Sizes, link_name, one_line, url_of
from layouts.formats._check import MB
from layouts.formats._fit import ELLIPSIS
from layouts.formats._spec import Format
from layouts.html import plain_text
from layouts.i18n import gettext
from layouts.markup import to_html
from layouts.preview_html import Sender, esc, plain_window, text_of
from layouts.text import truncate_text

__all__ = ["ATTACHMENTS_SIZE", "FORMAT", "inline_cid", "parts"]

SUBJECT = 998


def parts(message: Message) -> tuple[str, str]:
    """``(html, plain_text)`` of a Message of the ``email`` format."""
    if message.format != "email" or len(message.modules) != 2:
        raise ValueError("not an email Message (two text modules: HTML, then plain text)")
    html, text = message.modules
    return html.text or "", text.text or ""


def plain_modules(text: str) -> tuple[Module, ...]:
    """A plain text as an email: an HTML paragraph, and the text as the plain part."""
    return (Module(kind="text", text=f"<p>{escape(text)}</p>"), Module(kind="text", text=text))


def _test_message(text: str, channel: str) -> Message:
    """The email ``feedcast channel test`` sends: ``text``, then a line saying it works."""
    works = "If you can read this, the channel works."
    return Message(
        format="email",
        subject=f"feedcast: {channel} works",
        modules=(
            Module(kind="text", text=f"<p>{text}.</p><p>{works}</p>"),
            Module(kind="text", text=f"{text}.\n{works}"),
        ),
    )


# --------------------------------------------------------------------------- building

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
_SCHEMES = ("http", "https", "mailto")


def _attr(value: str) -> str:
    return escape(value, quote=True)


def _buttons(buttons: Iterable[Button]) -> str:
    links = [
        f'<a href="{_attr(url)}" style="{_BUTTON_STYLE}">{escape(one_line(b.title) or link_name(url), quote=False)}</a>'
        for b in buttons
        if (url := url_of(b.url, _SCHEMES))
    ]
    return f"<p>{' '.join(links)}</p>" if links else ""


def _media(module: Module) -> str:
    caption = (module.text or "").strip()
    url = url_of(module.url)
    parts: list[str] = []
    if url and module.kind == "image":
        alt = one_line(plain_text(caption)) if caption else link_name(url)
        parts.append(f'<p><img src="{_attr(url)}" alt="{_attr(alt)}" style="{_IMG_STYLE}"></p>')
        if caption:
            parts.append(caption)
    else:
        if caption:
            parts.append(caption)
        if url:
            label = f"{ICONS[module.kind]} {link_name(url)}"
            parts.append(f'<p><a href="{_attr(url)}">{escape(label, quote=False)}</a></p>')
        elif (module.url or "").strip():
            parts.append(f"<p>{escape((module.url or '').strip(), quote=False)}</p>")
    parts.append(_buttons(module.buttons))
    return "\n".join(p for p in parts if p)


def _cards(module: Module) -> str:
    parts: list[str] = []
    if (module.text or "").strip():
        parts.append((module.text or "").strip())
    for card in module.cards:
        url = url_of(card.url)
        image = url_of(card.image)
        title = escape(one_line(card.title), quote=False)
        rows: list[str] = []
        if image:
            img = f'<img src="{_attr(image)}" alt="{_attr(one_line(card.title))}" style="{_IMG_STYLE}">'
            rows.append(f'<a href="{_attr(url)}">{img}</a>' if url else img)
        if title:
            rows.append(
                f'<h3 style="margin:8px 0 4px"><a href="{_attr(url)}">{title}</a></h3>'
                if url
                else f'<h3 style="margin:8px 0 4px">{title}</h3>'
            )
        if one_line(card.subtitle):
            rows.append(f'<p style="margin:0 0 8px">{escape(one_line(card.subtitle), quote=False)}</p>')
        rows.append(_buttons(card.buttons))
        parts.append('<div style="margin:16px 0">' + "\n".join(r for r in rows if r) + "</div>")
    parts.append(_buttons(module.buttons))
    return "\n".join(p for p in parts if p)


def _document(body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"></head>\n'
        f"<body>\n{body}\n</body></html>\n"
    )


def build_calls(message: Message, sizes: Sizes) -> list[ProviderCall]:
    """The one ``smtp`` call of ``message`` (``{"subject", "html", "text"}``), or none when it is empty."""
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
        after.append(_buttons(message.modules[main].buttons))
    for index, module in enumerate(message.modules):
        if module.kind == "text":
            if plain_module is not None and index == texts[1]:
                after.append(_buttons(module.buttons))
            continue
        fragment = _cards(module) if module.kind == "cards" else _media(module)
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
        html = _document(content)
    if plain_module is not None and (plain_module.text or "").strip():
        text = (plain_module.text or "").strip() + "\n"
    else:
        text = plain_text(html, links=True).strip() + "\n"
    subject = one_line(message.subject) or next(
        (line.strip() for line in text.splitlines() if line.strip()), ""
    )
    subject = truncate_text(one_line(subject), SUBJECT, ELLIPSIS) or ELLIPSIS
    if not text.strip():
        text = subject + "\n"
    body: dict[str, object] = {"subject": subject, "html": html, "text": text}
    if message.attachments:
        body["attachments"] = [_attachment(a) for a in message.attachments]
    return [ProviderCall("smtp", body)]


def inline_cid(sha256: str) -> str:
    """The Content-ID an inline image is named by in the HTML (``cid:...``)."""
    return f"{sha256[:32]}@feedcast"


def _attachment(attachment: Attachment) -> dict[str, object]:
    upload = attachment.upload
    return {
        "file": upload.ref,
        "filename": upload.name,
        "content_type": upload.content_type,
        "size": upload.size,
        "cid": inline_cid(upload.sha256) if attachment.inline else None,
    }


# --------------------------------------------------------------------------- validation

_DANGER = (
    # (a cheap substring that must be present, the exact pattern, what it means)
    ("script", re.compile(r"<\s*script\b", re.IGNORECASE), "a <script> element"),
    ("on", re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE), "an event handler attribute"),
    (
        "script:",
        re.compile(r"""(?:href|src|action)\s*=\s*["']?\s*(?:javascript|vbscript):""", re.IGNORECASE),
        "a javascript: URL",
    ),
)


def validate(call: ProviderCall) -> None:
    """Raise PayloadError unless ``call`` is a valid message to send by SMTP."""
    if call.method != "smtp":
        check.fail("email.method", f"method {call.method!r}: email calls are 'smtp'")
    body = call.body
    check.keys(body, {"subject", "html", "text", "attachments"}, "email.body.keys", "body")
    subject = check.string(check.field(body, "subject", "email.subject", "body"), "email.subject", "subject")
    if "\r" in subject or "\n" in subject:
        check.fail("email.subject.newline", "the subject contains a line break")
    check.length(subject, "email.subject", "subject", low=1, high=SUBJECT, measure=len)
    html = check.string(check.field(body, "html", "email.html", "body"), "email.html", "html")
    if not html.strip():
        check.fail("email.html", "the HTML part is empty")
    lowered = html.lower()
    for needle, pattern, what in _DANGER:
        if needle in lowered and pattern.search(html):
            check.fail("email.html.unsafe", f"the HTML part contains {what}")
    text = check.string(check.field(body, "text", "email.text", "body"), "email.text", "text")
    if not text.strip():
        check.fail("email.text", "the plain-text part is empty")
    if "attachments" in body:
        _check_attachments(body["attachments"])


_ATTACHMENT_KEYS: Final = frozenset({"file", "filename", "content_type", "size", "cid"})
ATTACH_FILE = 10 * MB  # a file larger than this goes as a link (its share of the message's room)
ATTACHMENTS_SIZE = 20 * MB  # what the message may carry in files (relays take 25 MB, base64 adds a third)


def _check_attachments(value: object) -> None:
    rule = "email.attachments"
    total = 0
    for index, raw in enumerate(check.array(value, rule, "attachments")):
        what = f"attachments[{index}]"
        item = check.obj(raw, rule, what)
        if set(item) != _ATTACHMENT_KEYS:
            check.fail(rule, f"{what} must have exactly the fields {', '.join(sorted(_ATTACHMENT_KEYS))}")
        ref = check.string(item["file"], rule, f"{what}.file")
        if not ref.startswith("attach://") or len(ref) != len("attach://") + 64:
            check.fail(rule, f"{what}.file must name an uploaded file (attach://SHA256)")
        name = check.string(item["filename"], rule, f"{what}.filename")
        if not name.strip() or any(c in name for c in "\r\n/\\"):
            check.fail(rule, f"{what}.filename {name!r} is not a file name")
        ctype = check.string(item["content_type"], rule, f"{what}.content_type")
        if ctype.count("/") != 1:
            check.fail(rule, f"{what}.content_type {ctype!r} is not a MIME type")
        size = item["size"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            check.fail(rule, f"{what}.size must be a number of bytes")
        total += size
        if item["cid"] is not None:
            check.string(item["cid"], rule, f"{what}.cid")
    if total > ATTACHMENTS_SIZE:
        check.fail(
            "email.attachments.size",
            f"{total / MB:.1f} MB of files, over the {ATTACHMENTS_SIZE // MB} MB an email carries",
        )


# --------------------------------------------------------------------------- preview

_IMG_TAG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_WIDTH_ATTR = re.compile(r"\bwidth\s*=\s*[\"']?(\d+)", re.IGNORECASE)


def _frame_height(html: str, text: str) -> int:
    """A frame height (px) that shows most emails whole: no script may measure it, so
    it is guessed from the plain-text lines and the images (3:2 at their width)."""
    images = 0
    for tag in _IMG_TAG.findall(html):
        width = _WIDTH_ATTR.search(tag)
        images += min(int(width.group(1)), 600) * 2 // 3 if width else 200
    return max(420, min(3200, 140 + 24 * (text.count("\n") + 1) + images))


def preview_call(call: ProviderCall, sender: Sender, number: int) -> str:
    """One email: its header, the HTML part in a sandboxed frame, the plain part below."""
    body = call.body
    subject = text_of(body.get("subject"))
    html = text_of(body.get("html"))
    text = text_of(body.get("text"))
    height = _frame_height(html, text)
    to_you, plain_part = esc(gettext("to you")), esc(gettext("Plain-text part"))
    return (
        '<article class="mail">'
        f'<header class="mail-head"><div class="mail-subject">{esc(subject)}</div>'
        f'<div class="mail-from"><span class="mail-avatar">{esc(sender.initial)}</span>'
        f"<span><b>{esc(sender.name)}</b> <bdi class='muted'>&lt;newsletter&gt;</bdi><br>"
        f"<span class='muted'>{to_you} · {esc(sender.time)}</span></span></div></header>"
        f'<iframe class="mail-body" sandbox="" referrerpolicy="no-referrer" title="email {number}: {esc(subject)}" '
        f'style="height:{height}px" srcdoc="{esc(html)}"></iframe>'
        f"<details class='mail-text'><summary>{plain_part}</summary><pre>{esc(text)}</pre></details>"
        "</article>"
    )


FORMAT: Final = Format(
    name="email",
    label="Email",
    template="email.html.j2",
    text_template="email.txt.j2",  # the plain-text alternative (optional)
    build_calls=build_calls,
    validate=validate,
    unsubscribe_link=True,
    plain_modules=plain_modules,
    own_test_message=_test_message,
    preview_call=preview_call,
    preview_window=plain_window,  # the emails on the page itself
    markup=to_html,
    upload_limits=dict.fromkeys(("image", "video", "audio", "file"), ATTACH_FILE),
)
