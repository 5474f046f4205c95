"""``feedcast preview``: what a layout makes of real items, before anything is sent.

:func:`build_preview` renders the latest items of some sources with a layout for a
channel kind, turns each Message into the exact provider calls
(:func:`layouts.payloads.provider_calls`) and checks every call with
:func:`layouts.validate.validate_call`. Three views of the result:

* :func:`feedcast.cli.preview_terminal.print_preview`: a readable terminal rendering (rich panels), one per Message;
* :meth:`Preview.payloads`: the provider calls as JSON-ready dicts;
* :func:`preview_html`: one self-contained HTML page (inline CSS, no script, no external
  font or stylesheet) showing the messages as they would look: Telegram and Messenger
  chat bubbles, the email in a sandboxed frame, Slack and Discord message cards, JSON
  pretty-printed.

Item content is untrusted. In the page every text is escaped; Telegram HTML, Slack
mrkdwn and Discord markdown are re-rendered from a whitelist (never passed through);
the email is shown in an ``<iframe sandbox srcdoc>``; a Content-Security-Policy allows
images and inline styles only, so nothing in the page can run a script or load anything
but images.

Channel kinds are the layout formats (``json`` is the generic webhook). Automations
come later; ``preview AUTOMATION`` will feed :func:`build_preview` from one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from feedcast.kernel.errors import InvalidValue
from feedcast.kernel.models import Item, Message, ProviderCall
from feedcast.kernel.urls import LINK_SCHEMES, safe_url
from feedcast.store import Store
from layouts.filters import parse_timezone
from layouts.payloads import provider_calls
from layouts.render import (
    FORMATS,
    MAX_ITEMS_LIMIT,
    EventInfo,
    Layout,
    RenderContext,
    load_layout,
    render,
    search_path_from_env,
)
from layouts.text import text_direction
from layouts.validate import PayloadError, validate_call

__all__ = [
    "CHANNEL_KINDS",
    "PER_ITEM_DEFAULT",
    "Preview",
    "PreviewCall",
    "PreviewMessage",
    "build_preview",
    "preview_automation",
    "preview_html",
]

CHANNEL_KINDS: Final = FORMATS  # telegram, messenger, email, slack, discord, json
PER_ITEM_DEFAULT: Final = 3  # items previewed by a per-item layout without --limit
KIND_NAMES: Final[Mapping[str, str]] = {
    "telegram": "Telegram",
    "messenger": "Messenger",
    "email": "Email",
    "slack": "Slack",
    "discord": "Discord",
    "json": "JSON webhook",
}


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True, slots=True)
class PreviewCall:
    """One provider call and what the validator said of it (None: valid)."""

    call: ProviderCall
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PreviewMessage:
    """One rendered Message (``number`` counts from 1) and its provider calls.
    ``error``: the payloads could not be built at all."""

    number: int
    message: Message
    calls: tuple[PreviewCall, ...]
    error: str | None = None


@dataclass(frozen=True)
class Preview:
    sources: tuple[str, ...]
    layout: Layout
    kind: str
    items: tuple[Item, ...]
    events: Mapping[str, EventInfo]
    messages: tuple[PreviewMessage, ...]
    context: RenderContext
    rendered_at: datetime  # in the context's time zone
    # preview AUTOMATION: what `feedcast send AUTOMATION` would do now, in one line
    verdict: str | None = None

    @property
    def call_count(self) -> int:
        return sum(len(m.calls) for m in self.messages)

    @property
    def errors(self) -> list[str]:
        """One line per invalid payload: ``message 2, call 1 (sendPhoto): rule: detail``."""
        lines = []
        for m in self.messages:
            if m.error is not None:
                lines.append(f"message {m.number}: {m.error}")
            for index, pc in enumerate(m.calls, 1):
                if pc.error is not None:
                    lines.append(f"message {m.number}, call {index} ({pc.call.method}): {pc.error}")
        return lines

    def payloads(self) -> list[dict[str, Any]]:
        """The provider calls in order: ``{"message": number, "method", "body"}``."""
        return [
            {"message": m.number, "method": pc.call.method, "body": pc.call.body}
            for m in self.messages
            for pc in m.calls
        ]

    def summary(self) -> str:
        """``4 items from shop, blog → 4 messages, 5 calls, all valid``."""
        errors = len(self.errors)
        state = "all valid" if not errors else f"{errors} invalid"
        return (
            f"{_count(len(self.items), 'item')} from {', '.join(self.sources)} → "
            f"{_count(len(self.messages), 'message')}, {_count(self.call_count, 'call')}, {state}"
        )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _site_title(titles: Sequence[str]) -> str | None:
    if not titles:
        return None
    if len(titles) == 1:
        return titles[0]
    return ", ".join(titles[:-1]) + " & " + titles[-1]


def build_preview(
    store: Store,
    sources: Sequence[str],
    layout_name: str,
    kind: str,
    *,
    limit: int | None = None,
    timezone: str = "UTC",
    locale: str = "en",
    search_path: Sequence[Path] | None = None,
    now: datetime | None = None,
) -> Preview:
    """Render the latest items of ``sources`` with the layout for channel ``kind``.

    ``limit`` defaults to the layout's ``max_items`` (per-campaign layouts) or
    :data:`PER_ITEM_DEFAULT` (per-item ones). User layouts come from ``search_path``
    (default: ``FEEDCAST_LAYOUTS``). Mistakes (unknown kind, layout or source, a broken
    layout, a bad time zone) raise a :class:`~feedcast.kernel.errors.UserError`; invalid
    payloads do not raise: they are in :attr:`Preview.errors`.
    """
    if kind not in CHANNEL_KINDS:
        raise InvalidValue(f"unknown channel kind {kind!r}; kinds: {', '.join(CHANNEL_KINDS)}")
    names = list(dict.fromkeys(s.strip() for s in sources if s.strip()))
    if not names:
        raise InvalidValue("name at least one --source")
    if limit is not None and not 1 <= limit <= MAX_ITEMS_LIMIT:
        raise InvalidValue(f"--limit must be between 1 and {MAX_ITEMS_LIMIT}")
    layout = load_layout(layout_name, search_path_from_env() if search_path is None else search_path)
    layout.require(kind)
    if limit is None:
        limit = layout.max_items if layout.per == "campaign" else PER_ITEM_DEFAULT
    registered = {s.name: s for s in store.list_sources(names)}  # NotFound for an unknown name
    site_title = _site_title([registered[n].title or n for n in names])
    now = now or datetime.now(UTC)
    context = RenderContext(timezone=timezone, locale=locale, site_title=site_title, max_items=limit, now=now)
    pairs = store.recent_items(names, limit, with_events=True)
    if not pairs:
        which = " or ".join(names)
        raise InvalidValue(f"no items yet in {which}: poll first (`feedcast poll {' '.join(names)}`)")
    items = tuple(item for item, _event in pairs)
    events = {item.key: EventInfo(*event) for item, event in pairs if event is not None}
    sizes = {m.url: m.length for item in items for m in item.media if m.length}
    messages = []
    for number, message in enumerate(render(layout, kind, items, context=context, events=events), 1):
        try:
            calls = provider_calls(message, media_sizes=sizes)
        except PayloadError as exc:
            messages.append(PreviewMessage(number, message, (), str(exc)))
            continue
        checked = []
        for call in calls:
            try:
                validate_call(kind, call)
            except PayloadError as exc:
                checked.append(PreviewCall(call, str(exc)))
            else:
                checked.append(PreviewCall(call))
        messages.append(PreviewMessage(number, message, tuple(checked)))
    rendered_at = now.astimezone(parse_timezone(timezone))
    return Preview(
        sources=tuple(names),
        layout=layout,
        kind=kind,
        items=items,
        events=events,
        messages=tuple(messages),
        context=context,
        rendered_at=rendered_at,
    )


def preview_automation(
    store: Store,
    name: str,
    *,
    layout: str | None = None,
    limit: int | None = None,
    timezone: str | None = None,
    locale: str | None = None,
    search_path: Sequence[Path] | None = None,
    environ: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> Preview:
    """``feedcast preview AUTOMATION``: exactly the campaign ``feedcast send AUTOMATION``
    would build now (the same :func:`feedcast.delivery.plan_campaign`: its queued items,
    layout, time zone and locale), and in :attr:`Preview.verdict` whether it would go
    out and to how many. ``layout``, ``limit``, ``timezone`` and ``locale`` try another
    setting on the same queue (the verdict says so). Item links are shown as they are,
    not as the per-recipient click-tracking links send makes of them."""
    from dataclasses import replace as changed

    from feedcast.delivery import plan_campaign

    automation = store.get_automation(name)
    if limit is not None and not 1 <= limit <= MAX_ITEMS_LIMIT:
        raise InvalidValue(f"--limit must be between 1 and {MAX_ITEMS_LIMIT}")
    overrides: dict[str, Any] = {}
    if layout is not None and layout != automation.layout:
        overrides["layout"] = layout
    if limit is not None and limit != automation.max_items:
        overrides["max_items"] = limit
    if timezone is not None and timezone != automation.timezone:
        parse_timezone(timezone)
        overrides["timezone"] = timezone
    if locale is not None and locale != automation.locale:
        overrides["locale"] = locale
    tried = changed(automation, **overrides) if overrides else automation
    now = now or datetime.now(UTC)
    plan = plan_campaign(
        store, tried, now=now, search_path=search_path, environ=environ, track_links=False, render_always=True
    )
    messages = tuple(
        PreviewMessage(
            m.number,
            m.message,
            tuple(PreviewCall(call, error) for call, error in zip(m.calls, m.call_errors, strict=True)),
            m.error,
        )
        for m in plan.messages
    )
    sending = f"feedcast send {automation.name}"
    if plan.reason is not None:
        verdict = f"{sending} would send nothing now: {plan.reason}"
    else:
        going = sum(1 for m in plan.messages if m.problem is None)
        verdict = (
            f"{sending} would send {_count(len(plan.queued), 'item')} in {_count(going, 'message')} "
            f"to {_count(plan.audience, 'subscriber')}"
        )
        if plan.waiting > len(plan.queued):
            verdict += f"; {plan.waiting - len(plan.queued)} more stay queued for the next campaign"
        if going < len(plan.messages):
            verdict += f"; {_count(len(plan.messages) - going, 'invalid message')} left out"
    if overrides:
        verdict += f" (with {', '.join(f'{k.replace(chr(95), chr(45))} {v}' for k, v in overrides.items())})"
    return Preview(
        sources=tuple(automation.sources),
        layout=plan.layout,
        kind=plan.fmt,
        items=tuple(q.item for q in plan.queued),
        events={q.item.key: EventInfo(q.event, q.old_price, q.new_price) for q in plan.queued},
        messages=messages,
        context=plan.context,
        rendered_at=now.astimezone(parse_timezone(tried.timezone)),
        verdict=verdict,
    )


# --------------------------------------------------------------------------- helpers


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _dicts(value: object) -> list[Mapping[str, Any]]:
    if not isinstance(value, list | tuple):
        return []
    return [v for v in value if isinstance(v, Mapping)]


def _keyboard(body: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(title, url) of the Telegram inline keyboard of ``body``, row after row."""
    markup = body.get("reply_markup")
    rows = markup.get("inline_keyboard") if isinstance(markup, Mapping) else None
    if not isinstance(rows, list):
        return []
    return [
        (_str(b.get("text")), _str(b.get("url")) or _str(b.get("callback_data")))
        for row in rows
        for b in _dicts(row)
    ]


def _file_name(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    name = unquote(parts.path.rstrip("/").rsplit("/", 1)[-1])
    return name or parts.hostname or url


_TG_MEDIA = {"sendPhoto": "photo", "sendVideo": "video", "sendAudio": "audio", "sendDocument": "document"}


# --------------------------------------------------------------------------- HTML: safe pieces

CSP: Final = (
    "default-src 'none'; img-src http: https: data:; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'"
)  # an iframe srcdoc is no fetch: it shows under frame-src 'none' and inherits this policy


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _a(url: object, inner_html: str, cls: str = "") -> str:
    """A link to ``url`` around markup, or the markup alone when the URL is unsafe."""
    safe = safe_url(url, LINK_SCHEMES, raw=False)
    if safe is None:
        return f'<span class="{cls}">{inner_html}</span>' if cls else inner_html
    klass = f' class="{cls}"' if cls else ""
    return f'<a{klass} href="{_e(safe)}" target="_blank" rel="noopener noreferrer nofollow">{inner_html}</a>'


def _img(url: object, alt: str = "", cls: str = "") -> str:
    safe = safe_url(url, raw=False)
    klass = f' class="{cls}"' if cls else ""
    if safe is None:
        return f'<div{klass} data-missing="1"><span class="noimg">no image</span></div>'
    return f'<img{klass} src="{_e(safe)}" alt="{_e(alt)}" referrerpolicy="no-referrer">'


class _TelegramHtml(HTMLParser):
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
                opening = f'<a href="{_e(href)}" target="_blank" rel="noopener noreferrer nofollow">'
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
    parser = _TelegramHtml()
    parser.feed(text)
    return parser.result()


_PLACEHOLDER = re.compile("\ue000(\\d+)\ue001")


class _Stash:
    """Markup set aside while the rest of a text is escaped and formatted; it leaves
    a placeholder of private-use characters, which :meth:`clean` removes from input."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    @staticmethod
    def clean(text: str) -> str:
        return text.replace("\ue000", "\ufffd").replace("\ue001", "\ufffd")

    def put(self, html: str) -> str:
        self.parts.append(html)
        return f"\ue000{len(self.parts) - 1}\ue001"

    def restore(self, text: str) -> str:
        for _ in range(4):  # stashed markup may hold placeholders itself
            if "\ue000" not in text:
                break
            text = _PLACEHOLDER.sub(lambda m: self.parts[int(m.group(1))], text)
        return text


def _format(text: str, rules: Sequence[tuple[re.Pattern[str], str]]) -> str:
    for pattern, tag in rules:
        text = pattern.sub(f"<{tag}>\\1</{tag}>", text)
    return text


_SLACK_TOKEN = re.compile(r"<([^<>|\n]+)(?:\|([^<>\n]*))?>")
_SLACK_RULES = (
    (re.compile(r"(?<![\w*])\*(?!\s)([^*\n]+?)\*(?![\w*])"), "b"),
    (re.compile(r"(?<![\w_])_(?!\s)([^_\n]+?)_(?![\w_])"), "i"),
    (re.compile(r"(?<![\w~])~(?!\s)([^~\n]+?)~(?![\w~])"), "s"),
)
_SLACK_CODE = re.compile(r"`([^`\n]+)`")


def _slack_unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def mrkdwn_to_html(text: str) -> str:
    """Slack mrkdwn (links, *bold*, _italic_, ~strike~, `code`) as safe HTML."""
    stash = _Stash()
    text = stash.clean(text)
    text = _SLACK_CODE.sub(lambda m: stash.put(f"<code>{_e(_slack_unescape(m.group(1)))}</code>"), text)

    def link(m: re.Match[str]) -> str:
        target = _slack_unescape(m.group(1))
        label = m.group(2)
        shown = _format(_e(_slack_unescape(label)), _SLACK_RULES) if label else _e(target)
        return stash.put(_a(target, shown))

    text = _SLACK_TOKEN.sub(link, text)
    return stash.restore(_format(_e(_slack_unescape(text)), _SLACK_RULES))


_MD_CODE_BLOCK = re.compile(r"```(?:[\w+-]*\n)?(.*?)```", re.DOTALL)
_MD_CODE = re.compile(r"`([^`\n]+)`")
_MD_LINK = re.compile(r"\[((?:\\.|[^\[\]\\\n])*)\]\(<?([^()<>\s]+)>?\)")
_MD_ESCAPED = re.compile(r"\\([^\w\s])")
_MD_RULES = (
    (re.compile(r"\*\*(?!\s)(.+?)\*\*"), "b"),
    (re.compile(r"__(?!\s)(.+?)__"), "u"),
    (re.compile(r"~~(?!\s)(.+?)~~"), "s"),
    (re.compile(r"(?<![\w*])\*(?!\s)([^*\n]+?)\*(?![\w*])"), "i"),
    (re.compile(r"(?<![\w_])_(?!\s)([^_\n]+?)_(?![\w_])"), "i"),
)
_MD_HEADING = re.compile(r"^(#{1,3}) (.+)$", re.MULTILINE)
_MD_QUOTE = re.compile(r"^&gt; ?(.*)$", re.MULTILINE)


def markdown_to_html(text: str) -> str:
    """Discord markdown (links, **bold**, *italic*, __underline__, ~~strike~~, code,
    headings, quotes, backslash escapes) as safe HTML."""
    stash = _Stash()
    text = stash.clean(text)
    text = _MD_CODE_BLOCK.sub(lambda m: stash.put(f"<pre><code>{_e(m.group(1))}</code></pre>"), text)
    text = _MD_CODE.sub(lambda m: stash.put(f"<code>{_e(m.group(1))}</code>"), text)

    def inline(fragment: str) -> str:
        fragment = _MD_ESCAPED.sub(lambda m: stash.put(_e(m.group(1))), fragment)
        return _format(_e(fragment), _MD_RULES)

    text = _MD_LINK.sub(lambda m: stash.put(_a(m.group(2), inline(m.group(1)))), text)
    html = inline(text)
    html = _MD_HEADING.sub(lambda m: f'<span class="md-h{len(m.group(1))}">{m.group(2)}</span>', html)
    html = _MD_QUOTE.sub(lambda m: f'<span class="md-quote">{m.group(1)}</span>', html)
    return stash.restore(html)


# --------------------------------------------------------------------------- HTML: per kind


@dataclass(frozen=True, slots=True)
class _Sender:
    name: str
    initial: str
    time: str


def _invalid(error: str | None) -> str:
    if error is None:
        return ""
    return f'<div class="invalid" role="alert">✗ invalid payload: {_e(error)}</div>'


def _tg_keyboard_html(body: Mapping[str, Any]) -> str:
    keys = _keyboard(body)
    if not keys:
        return ""
    buttons = "".join(_a(url, f"{_e(title)}<span class='arrow'>↗</span>", "tg-key") for title, url in keys)
    return f'<div class="tg-keyboard">{buttons}</div>'


def _tg_text(text: str, time: str) -> str:
    return f'<div class="tg-text">{telegram_to_html(text)}<span class="tg-time"><bdi>{_e(time)}</bdi></span></div>'


def _tg_media_tile(kind: str, url: str) -> str:
    if kind == "photo":
        return _img(url, "", "tg-photo")
    icon = {"video": "▶", "audio": "♫", "document": "🗎"}.get(kind, "•")
    label = _a(url, _e(_file_name(url)))
    return f'<div class="tg-file tg-{_e(kind)}"><span class="tg-file-icon">{icon}</span><span>{label}<small>{_e(kind)}</small></span></div>'


def _telegram_call(call: ProviderCall, sender: _Sender) -> str:
    body = call.body
    time = sender.time
    if call.method == "sendMessage":
        inner = _tg_text(_str(body.get("text")), time)
    elif call.method in _TG_MEDIA:
        field = _TG_MEDIA[call.method]
        caption = _str(body.get("caption"))
        tile = _tg_media_tile(field, _str(body.get(field)))
        text = _tg_text(caption, time) if caption else f'<span class="tg-time tg-time-over">{_e(time)}</span>'
        inner = f'<div class="tg-media">{tile}</div>{text}'
    elif call.method == "sendMediaGroup":
        media = _dicts(body.get("media"))
        tiles = "".join(
            f'<div class="tg-cell">{_tg_media_tile(_str(m.get("type")) or "photo", _str(m.get("media")))}</div>'
            for m in media
        )
        odd = " tg-odd" if len(media) % 2 else ""
        caption = next((_str(m.get("caption")) for m in media if m.get("caption")), "")
        text = _tg_text(caption, time) if caption else f'<span class="tg-time tg-time-over">{_e(time)}</span>'
        inner = f'<div class="tg-album{odd}">{tiles}</div>{text}'
    else:
        inner = f"<pre class='raw'>{_e(json.dumps(body, ensure_ascii=False, indent=2))}</pre>"
    return f'<div class="tg-post"><div class="tg-bubble">{inner}</div>{_tg_keyboard_html(body)}</div>'


def _fb_buttons(buttons: Iterable[Mapping[str, Any]]) -> str:
    return "".join(_a(b.get("url"), _e(_str(b.get("title")) or "Open"), "fb-btn") for b in buttons)


def _messenger_call(call: ProviderCall, sender: _Sender) -> str:
    message = call.body.get("message")
    message = message if isinstance(message, Mapping) else {}
    attachment = message.get("attachment")
    if "text" in message:
        inner = f'<div class="fb-bubble">{_e(_str(message.get("text")))}</div>'
    elif isinstance(attachment, Mapping):
        payload = attachment.get("payload")
        payload = payload if isinstance(payload, Mapping) else {}
        kind = _str(attachment.get("type"))
        template = _str(payload.get("template_type"))
        if kind == "image":
            inner = f'<div class="fb-image">{_img(payload.get("url"))}</div>'
        elif kind in ("video", "audio", "file"):
            url = _str(payload.get("url"))
            icon = {"video": "▶", "audio": "♫"}.get(kind, "🗎")
            inner = f'<div class="fb-bubble fb-file"><span class="fb-file-icon">{icon}</span>{_a(url, _e(_file_name(url)))}</div>'
        elif kind == "template" and template == "button":
            inner = (
                f'<div class="fb-card fb-buttons"><div class="fb-card-text">{_e(_str(payload.get("text")))}</div>'
                f"{_fb_buttons(_dicts(payload.get('buttons')))}</div>"
            )
        elif kind == "template" and template == "generic":
            cards = []
            for element in _dicts(payload.get("elements")):
                action = element.get("default_action")
                target = action.get("url") if isinstance(action, Mapping) else None
                image = (
                    _a(target, _img(element.get("image_url"), _str(element.get("title"))))
                    if element.get("image_url")
                    else ""
                )
                subtitle = element.get("subtitle")
                cards.append(
                    '<div class="fb-el">'
                    + image
                    + f'<div class="fb-el-text"><div class="fb-el-title">{_e(_str(element.get("title")))}</div>'
                    + (f'<div class="fb-el-sub">{_e(_str(subtitle))}</div>' if subtitle else "")
                    + "</div>"
                    + _fb_buttons(_dicts(element.get("buttons")))
                    + "</div>"
                )
            inner = f'<div class="fb-carousel">{"".join(cards)}</div>'
        else:
            inner = f"<pre class='raw'>{_e(json.dumps(dict(message), ensure_ascii=False, indent=2))}</pre>"
    else:
        inner = f"<pre class='raw'>{_e(json.dumps(dict(message), ensure_ascii=False, indent=2))}</pre>"
    return f'<div class="fb-row"><div class="fb-avatar">{_e(sender.initial)}</div><div class="fb-content">{inner}</div></div>'


_IMG_TAG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_WIDTH_ATTR = re.compile(r"\bwidth\s*=\s*[\"']?(\d+)", re.IGNORECASE)


def _email_height(html: str, text: str) -> int:
    """A frame height (px) that shows most emails whole: no script may measure it, so
    it is guessed from the plain-text lines and the images (3:2 at their width)."""
    images = 0
    for tag in _IMG_TAG.findall(html):
        width = _WIDTH_ATTR.search(tag)
        images += min(int(width.group(1)), 600) * 2 // 3 if width else 200
    return max(420, min(3200, 140 + 24 * (text.count("\n") + 1) + images))


def _email_call(call: ProviderCall, sender: _Sender, number: int) -> str:
    body = call.body
    subject = _str(body.get("subject"))
    html = _str(body.get("html"))
    text = _str(body.get("text"))
    height = _email_height(html, text)
    return (
        '<article class="mail">'
        f'<header class="mail-head"><div class="mail-subject">{_e(subject)}</div>'
        f'<div class="mail-from"><span class="mail-avatar">{_e(sender.initial)}</span>'
        f"<span><b>{_e(sender.name)}</b> <span class='muted'>&lt;newsletter&gt;</span><br>"
        f"<span class='muted'>to you · {_e(sender.time)}</span></span></div></header>"
        f'<iframe class="mail-body" sandbox="" referrerpolicy="no-referrer" title="email {number}: {_e(subject)}" '
        f'style="height:{height}px" srcdoc="{_e(html)}"></iframe>'
        f"<details class='mail-text'><summary>Plain-text part</summary><pre>{_e(text)}</pre></details>"
        "</article>"
    )


def _slack_block(block: Mapping[str, Any]) -> str:
    kind = block.get("type")
    text = block.get("text")
    mrkdwn = _str(text.get("text")) if isinstance(text, Mapping) else ""
    plain = isinstance(text, Mapping) and text.get("type") == "plain_text"
    rendered = _e(mrkdwn) if plain else mrkdwn_to_html(mrkdwn)
    if kind == "section":
        accessory = block.get("accessory")
        side = ""
        if isinstance(accessory, Mapping) and accessory.get("type") == "image":
            side = _img(accessory.get("image_url"), _str(accessory.get("alt_text")), "sl-thumb")
        return f'<div class="sl-section"><div class="sl-text">{rendered}</div>{side}</div>'
    if kind == "header":
        return f'<div class="sl-header">{_e(mrkdwn)}</div>'
    if kind == "image":
        return f'<div class="sl-image">{_img(block.get("image_url"), _str(block.get("alt_text")))}</div>'
    if kind == "actions":
        buttons = []
        for element in _dicts(block.get("elements")):
            label = element.get("text")
            title = _str(label.get("text")) if isinstance(label, Mapping) else ""
            buttons.append(_a(element.get("url"), _e(title), "sl-btn"))
        return f'<div class="sl-actions">{"".join(buttons)}</div>'
    if kind == "divider":
        return '<hr class="sl-divider">'
    if kind == "context":
        bits = [
            mrkdwn_to_html(_str(e.get("text"))) if e.get("type") == "mrkdwn" else _e(_str(e.get("text")))
            for e in _dicts(block.get("elements"))
        ]
        return f'<div class="sl-context">{" ".join(bits)}</div>'
    return f"<pre class='raw'>{_e(json.dumps(dict(block), ensure_ascii=False, indent=2))}</pre>"


def _slack_call(call: ProviderCall, sender: _Sender) -> str:
    blocks = _dicts(call.body.get("blocks"))
    content = "".join(_slack_block(b) for b in blocks) or (
        f'<div class="sl-text">{mrkdwn_to_html(_str(call.body.get("text")))}</div>'
    )
    return (
        f'<div class="sl-msg"><div class="sl-avatar">{_e(sender.initial)}</div><div class="sl-main">'
        f'<div class="sl-name"><b>{_e(sender.name)}</b><span class="sl-app">APP</span>'
        f'<span class="muted">{_e(sender.time)}</span></div>{content}</div></div>'
    )


def _discord_call(call: ProviderCall, sender: _Sender) -> str:
    body = call.body
    parts = []
    if body.get("content"):
        parts.append(f'<div class="dc-content">{markdown_to_html(_str(body.get("content")))}</div>')
    for embed in _dicts(body.get("embeds")):
        rows = []
        if embed.get("title"):
            rows.append(f'<div class="dc-title">{_a(embed.get("url"), _e(_str(embed.get("title"))))}</div>')
        if embed.get("description"):
            rows.append(f'<div class="dc-desc">{markdown_to_html(_str(embed.get("description")))}</div>')
        image = embed.get("image")
        if isinstance(image, Mapping):
            rows.append(f'<div class="dc-image">{_img(image.get("url"))}</div>')
        parts.append(f'<div class="dc-embed">{"".join(rows)}</div>')
    return (
        f'<div class="dc-msg"><div class="dc-avatar">{_e(sender.initial)}</div><div class="dc-main">'
        f'<div class="dc-name"><b>{_e(sender.name)}</b><span class="dc-bot">APP</span>'
        f'<span class="dc-time">Today at {_e(sender.time)}</span></div>{"".join(parts)}</div></div>'
    )


_JSON_TOKEN = re.compile(
    r'("(?:\\.|[^"\\])*")(\s*:)?|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|\b(true|false|null)\b'
)


def json_to_html(document: object) -> str:
    """``document`` as indented JSON, escaped, with keys, strings and literals marked."""

    def token(m: re.Match[str]) -> str:
        string, colon, number, literal = m.groups()
        if string is not None:
            klass = "k" if colon else "s"
            return f'<span class="j{klass}">{_e(string)}</span>{colon or ""}'
        return f'<span class="jn">{_e(number or literal)}</span>'

    pretty = json.dumps(document, ensure_ascii=False, indent=2)
    out, pos = [], 0
    for m in _JSON_TOKEN.finditer(pretty):
        out.append(_e(pretty[pos : m.start()]))
        out.append(token(m))
        pos = m.end()
    out.append(_e(pretty[pos:]))
    return "".join(out)


def _json_call(call: ProviderCall, number: int) -> str:
    return (
        f'<article class="json-call"><header><span class="method">{_e(call.method)}</span> '
        f'<span class="muted">webhook body · message {number}</span></header>'
        f"<pre><code>{json_to_html(call.body)}</code></pre></article>"
    )


# --------------------------------------------------------------------------- HTML: the page


def _stage(preview: Preview, sender: _Sender) -> str:
    kind = preview.kind
    total = len(preview.messages)
    titles = {item.key: item.title or item.key for item in preview.items}
    blocks = []
    for pm in preview.messages:
        shown = [titles.get(k, k) for k in pm.message.item_keys]
        about = shown[0] if len(shown) == 1 else _count(len(shown), "item")
        calls = []
        for pc in pm.calls:
            call = pc.call
            if kind == "telegram":
                html = _telegram_call(call, sender)
            elif kind == "messenger":
                html = _messenger_call(call, sender)
            elif kind == "email":
                html = _email_call(call, sender, pm.number)
            elif kind == "slack":
                html = _slack_call(call, sender)
            elif kind == "discord":
                html = _discord_call(call, sender)
            else:
                html = _json_call(call, pm.number)
            calls.append(html + _invalid(pc.error))
        if pm.error is not None:
            calls.append(f'<div class="invalid" role="alert">✗ {_e(pm.error)}</div>')
        label = f"Message {pm.number} of {total} · "
        # the message's own direction: right to left when its text mostly is (an Arabic
        # digest that starts with a Latin site name too), else the first strong letter's
        direction = "rtl" if text_direction(*_message_texts(pm.message)) == "rtl" else "auto"
        blocks.append(
            f'<section class="message" id="message-{pm.number}">'
            f'<div class="pill" lang="en" dir="ltr">{_e(label)}<bdi>{_e(about)}</bdi></div>'
            f'<div class="body" dir="{direction}">{"".join(calls)}</div></section>'
        )
    if not blocks:
        blocks.append('<p class="empty">The layout rendered nothing for these items.</p>')
    body = "".join(blocks)
    if kind == "telegram":
        return (
            f'<div class="tg-window"><div class="tg-top"><span class="tg-avatar">{_e(sender.initial)}</span>'
            f"<span><b>{_e(sender.name)}</b><br><small>channel · preview</small></span></div>"
            f'<div class="tg-chat">{body}</div></div>'
        )
    if kind == "messenger":
        return (
            f'<div class="fb-window"><div class="fb-top"><span class="fb-avatar fb-avatar-big">{_e(sender.initial)}</span>'
            f"<span><b>{_e(sender.name)}</b><br><small>Messenger · preview</small></span></div>"
            f'<div class="fb-chat">{body}</div></div>'
        )
    if kind == "slack":
        return f'<div class="sl-window"><div class="sl-top"># announcements</div><div class="sl-chat">{body}</div></div>'
    if kind == "discord":
        return f'<div class="dc-window"><div class="dc-top"># announcements</div><div class="dc-chat">{body}</div></div>'
    return f'<div class="plain-stage">{body}</div>'


def _message_texts(message: Message) -> list[str]:
    texts = []
    for module in message.modules:
        texts.append(module.text or "")
        texts.extend(card.title + " " + (card.subtitle or "") for card in module.cards)
    return texts


def _item_line(item: Item, event: EventInfo | None) -> str:
    image = item.image or next((m.url for m in item.media if m.medium == "image"), None)
    thumb = (
        _img(image, "", "thumb") if safe_url(image, raw=False) else '<div class="thumb thumb-none">·</div>'
    )
    facts = []
    price = item.sale_price if item.sale_price is not None else item.price
    if price is not None:
        facts.append(f"{price} {item.currency or ''}".strip())
    if item.availability:
        facts.append(item.availability.replace("_", " "))
    if item.published is not None:
        facts.append(item.published.strftime("%Y-%m-%d"))
    if event is not None:
        facts.append(event.event.replace("_", " "))
    title = _a(item.url, _e(item.title or item.key))
    return (
        f"<li>{thumb}<div><div class='item-title' dir='auto'>{title}</div>"
        f"<div class='muted small'>{' · '.join(f'<bdi>{_e(fact)}</bdi>' for fact in facts)}</div>"
        f"<code class='small' dir='ltr'>{_e(item.key)}</code></div></li>"
    )


def _sidebar(preview: Preview) -> str:
    layout = preview.layout
    items = "".join(_item_line(item, preview.events.get(item.key)) for item in preview.items)
    rows = []
    for pm in preview.messages:
        for index, pc in enumerate(pm.calls, 1):
            ok = pc.error is None
            mark = '<span class="ok">✓</span>' if ok else '<span class="bad">✗</span>'
            rows.append(
                f"<li>{mark} <a href='#message-{pm.number}'>message {pm.number}</a>"
                f" · call {index} <code>{_e(pc.call.method)}</code></li>"
            )
        if pm.error is not None:
            rows.append(f"<li><span class='bad'>✗</span> message {pm.number}: {_e(pm.error)}</li>")
    context = preview.context
    content_lang = _lang(context.locale)
    return (
        '<aside class="side" lang="en">'
        f"<section class='card'><h2>Layout</h2><p><b>{_e(layout.name)}</b> · one message per {_e(layout.per)}"
        f" · up to {layout.max_items} items</p><p class='muted'>{_e(layout.description)}</p>"
        f"<p class='muted small'>{_e(layout.location)} · {_e(context.timezone)} · {_e(context.locale)}</p></section>"
        f"<section class='card'><h2>Items ({len(preview.items)})</h2><ol class='items' lang='{_e(content_lang)}'>{items}</ol>"
        "</section>"
        f"<section class='card'><h2>Payloads ({preview.call_count})</h2><ol class='calls'>{''.join(rows)}</ol>"
        "<p class='muted small'>Exactly the request bodies feedcast sends (recipient and credentials aside),"
        " each checked against the provider's rules.</p></section>"
        "</aside>"
    )


def _lang(locale: str) -> str:
    """A locale (``fr_FR``) as an HTML ``lang`` (``fr-FR``)."""
    return locale.replace("_", "-")


def preview_html(preview: Preview) -> str:
    """The preview as one self-contained HTML page (see the module docstring)."""
    kind_name = KIND_NAMES[preview.kind]
    name = preview.context.site_title or ", ".join(preview.sources)
    sender = _Sender(
        name=name,
        initial=(name.strip()[:1] or "?").upper(),
        time=preview.rendered_at.strftime("%H:%M"),
    )
    sources = ", ".join(preview.sources)
    title = f"Preview: {preview.layout.name} → {kind_name} · {sources} · {_count(len(preview.items), 'item')}"
    errors = preview.errors
    if errors:
        badge = f'<span class="badge badge-bad">✗ {_count(len(errors), "invalid payload")}</span>'
    else:
        badge = f'<span class="badge badge-ok">✓ {_count(preview.call_count, "payload")}, all valid</span>'
    stamp = preview.rendered_at.strftime("%Y-%m-%d %H:%M %Z")
    verdict = ""
    if preview.verdict is not None:
        tone = "verdict-wait" if " nothing " in preview.verdict else "verdict-go"
        verdict = f"<p class='verdict {tone}'>{_e(preview.verdict)}</p>"
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{_e(_lang(preview.context.locale))}"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_STYLE}</style></head>\n"
        f'<body class="kind-{_e(preview.kind)}">\n'
        '<header class="top" lang="en"><div class="brand">feedcast · preview</div>'
        f"<h1>{_e(preview.layout.name)} <span class='to'>→</span> {_e(kind_name)}</h1>"
        f"<p class='meta'>{_count(len(preview.items), 'item')} from <b><bdi>{_e(sources)}</bdi></b>"
        f" · {_count(len(preview.messages), 'message')} · {_count(preview.call_count, 'provider call')}"
        f" · rendered <bdi>{_e(stamp)}</bdi></p>{verdict}{badge}</header>\n"
        f'<main class="grid"><div class="stage">{_stage(preview, sender)}</div>{_sidebar(preview)}</main>\n'
        "<footer lang='en'>Generated by <b>feedcast preview</b>. Images load from the items' own URLs;"
        " nothing in this page runs scripts.</footer>\n"
        "</body></html>\n"
    )


_STYLE: Final = """
*{box-sizing:border-box}
html{background:#eef1f5}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1f2933}
a{color:#1a6fd1}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace}
.muted{color:#6b7785}.small{font-size:12px}
.top{padding:28px 40px 22px;background:#fff;border-bottom:1px solid #dde3ea;display:grid;grid-template-columns:1fr auto;align-items:end;column-gap:24px}
.brand{grid-column:1/-1;font-size:12px;font-weight:700;letter-spacing:.12em;text-transform:uppercase;color:#7b8794}
.top h1{margin:4px 0 2px;font-size:28px;line-height:1.2}
.top h1 .to{color:#9aa5b1;font-weight:400}
.meta{margin:0;color:#52606d;grid-column:1}
.verdict{grid-column:1;margin:8px 0 0;font-weight:600}.verdict-go{color:#17703a}.verdict-wait{color:#8a5a00}
.badge{grid-column:2;grid-row:2/4;align-self:center;padding:8px 14px;border-radius:999px;font-weight:600;font-size:14px;white-space:nowrap}
.badge-ok{background:#e3f8e9;color:#17703a}.badge-bad{background:#fde8e8;color:#b42318}
.grid{display:grid;grid-template-columns:minmax(0,1fr) 340px;gap:28px;padding:28px 40px;align-items:start;max-width:1400px}
@media (max-width:900px){.grid{grid-template-columns:1fr;padding:16px}.top{padding:20px 16px}}
.side{display:grid;gap:16px;min-width:0}
.stage{min-width:0}
.card{background:#fff;border:1px solid #dde3ea;border-radius:12px;padding:14px 16px;min-width:0;overflow-wrap:anywhere}
.card h2{margin:0 0 8px;font-size:13px;letter-spacing:.06em;text-transform:uppercase;color:#7b8794}
.card p{margin:4px 0}
.items{list-style:none;margin:0;padding:0;display:grid;gap:10px}
.items li{display:grid;grid-template-columns:44px minmax(0,1fr);gap:10px;align-items:start}
.items code{overflow-wrap:anywhere}
.top h1,.meta{min-width:0;overflow-wrap:break-word}
@media (max-width:600px){.top{grid-template-columns:minmax(0,1fr)}.badge{grid-column:1;grid-row:auto;justify-self:start;margin-top:12px;white-space:normal}.top h1{font-size:24px}}
.items .item-title a{color:#1f2933;text-decoration:none;font-weight:600}
.thumb{width:44px;height:44px;border-radius:8px;object-fit:cover;background:#e4e7eb;display:block}
.thumb-none{display:flex;align-items:center;justify-content:center;color:#9aa5b1}
.calls{margin:0;padding-left:18px;font-size:13px}.calls li{margin:2px 0}
.calls a{color:inherit}
.ok{color:#17703a;font-weight:700}.bad{color:#b42318;font-weight:700}
.invalid{margin:6px 0 10px;padding:8px 12px;border-radius:8px;background:#fde8e8;border:1px solid #f5b5b5;color:#8a1c12;font-size:13px;white-space:pre-wrap}
.message{margin:0 0 18px}
.pill{display:block;width:fit-content;max-width:92%;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;margin:4px auto 10px;padding:3px 12px;border-radius:999px;font-size:12.5px;font-weight:600;background:rgba(30,50,70,.08);color:#52606d}
.noimg{font-size:12px;color:#7b8794}
[data-missing]{display:flex;align-items:center;justify-content:center;background:#e4e7eb;min-height:80px}
.empty{color:#6b7785;text-align:center;padding:40px}
pre.raw{white-space:pre-wrap;font-size:12px;margin:8px;color:#52606d}
/* Telegram */
.tg-window{max-width:520px;margin:0 auto;border-radius:18px;overflow:hidden;box-shadow:0 8px 30px rgba(30,50,70,.18)}
.tg-top{display:flex;gap:12px;align-items:center;padding:10px 16px;background:#fff;line-height:1.25}
.tg-top small{color:#8a9aa6}
.tg-avatar,.fb-avatar,.sl-avatar,.dc-avatar,.mail-avatar{display:inline-flex;align-items:center;justify-content:center;flex:none;color:#fff;font-weight:700}
.tg-avatar{width:40px;height:40px;border-radius:50%;background:linear-gradient(135deg,#5fb6f5,#3b82d6);font-size:18px}
.tg-chat{padding:14px 14px 6px;background:#8fb58b linear-gradient(160deg,#d4e6b5 0%,#a7cf9f 45%,#86b9a8 100%)}
.tg-chat .pill{background:rgba(0,0,0,.22);color:#fff}
.tg-post{max-width:400px;margin:0 0 8px}
.tg-bubble{background:#fff;border-radius:14px 14px 14px 4px;overflow:hidden;box-shadow:0 1px 1.5px rgba(0,0,0,.16);position:relative}
.tg-text::after{content:"";display:block;clear:both}
.tg-text{padding:7px 11px 8px;white-space:pre-wrap;overflow-wrap:anywhere;line-height:1.38}
.tg-text a{color:#168acd;text-decoration:none}
.tg-text pre{margin:4px 0;padding:6px 8px;background:#f0f4f7;border-radius:6px;white-space:pre-wrap}
.tg-text code{background:#f0f4f7;border-radius:4px;padding:0 3px;color:#c0392b}
.tg-quote{margin:4px 0;padding:2px 8px;border-left:3px solid #3a9be0;background:#eef6fd;border-radius:4px}
.tg-spoiler{background:#c7ced5;color:transparent;border-radius:4px}
.tg-spoiler:hover{color:inherit;background:#eef1f5}
.tg-time{float:right;margin:6px 0 -4px 12px;font-size:11.5px;color:#9aa7b2;line-height:1}
.tg-time-over{position:absolute;right:8px;bottom:8px;margin:0;padding:3px 6px;border-radius:8px;background:rgba(0,0,0,.35);color:#fff}
.tg-media img,.tg-album img{display:block;width:100%;height:auto;max-height:420px;object-fit:cover;background:#dfe6dc}
.tg-media [data-missing]{min-height:180px}
.tg-album{display:grid;grid-template-columns:1fr 1fr;gap:2px}
.tg-album.tg-odd .tg-cell:first-child{grid-column:1/-1}
.tg-album img,.tg-album [data-missing]{aspect-ratio:4/3;height:100%}
.tg-file{display:flex;gap:10px;align-items:center;padding:10px 12px}
.tg-file small{display:block;color:#8a9aa6;text-transform:capitalize}
.tg-file-icon{width:44px;height:44px;border-radius:50%;background:#4fae4e;color:#fff;display:inline-flex;align-items:center;justify-content:center;font-size:18px;flex:none}
.tg-keyboard{display:grid;gap:3px;margin-top:3px}
.tg-key{display:block;text-align:center;padding:9px 12px;border-radius:10px;background:rgba(38,64,48,.38);color:#fff;text-decoration:none;font-weight:600;font-size:14px;position:relative}
.tg-key .arrow{position:absolute;right:8px;top:4px;font-size:11px;opacity:.85}
/* Messenger */
.fb-window{max-width:680px;margin:0 auto;background:#fff;border-radius:18px;overflow:hidden;box-shadow:0 8px 30px rgba(30,50,70,.14)}
.fb-top{display:flex;gap:10px;align-items:center;padding:10px 16px;border-bottom:1px solid #e4e6eb;line-height:1.25}
.fb-top small{color:#65676b}
.fb-chat{padding:14px 16px 6px}
.fb-row{display:flex;gap:8px;align-items:flex-end;margin:0 0 6px}
.fb-avatar{width:28px;height:28px;border-radius:50%;background:linear-gradient(135deg,#a033ff,#0866ff);font-size:13px}
.message .fb-row:not(:last-child) .fb-avatar{visibility:hidden}
.fb-avatar-big{width:40px;height:40px;font-size:18px}
.fb-content{min-width:0;max-width:calc(100% - 36px)}
.fb-bubble{display:inline-block;background:#f0f0f0;border-radius:18px;padding:8px 12px;white-space:pre-wrap;overflow-wrap:anywhere;max-width:360px}
.fb-file{display:inline-flex;gap:8px;align-items:center}
.fb-file-icon{font-size:16px}
.fb-image img{display:block;max-width:280px;border-radius:18px}
.fb-card{width:260px;border:1px solid #e4e6eb;border-radius:18px;overflow:hidden;background:#fff}
.fb-card-text{padding:10px 12px;white-space:pre-wrap;background:#f0f0f0}
.fb-btn{display:block;padding:9px 10px;text-align:center;border-top:1px solid #e4e6eb;color:#0866ff;font-weight:600;text-decoration:none;font-size:14px}
.fb-carousel{display:flex;gap:8px;overflow-x:auto;padding:0 0 6px;max-width:100%}
.fb-el{flex:0 0 244px;border:1px solid #e4e6eb;border-radius:18px;overflow:hidden;background:#fff}
.fb-el img,.fb-el [data-missing]{display:block;width:100%;aspect-ratio:1.91/1;object-fit:cover;background:#e4e6eb}
.fb-el-text{padding:9px 12px 10px}
.fb-el-title{font-weight:600;overflow-wrap:anywhere}
.fb-el-sub{color:#65676b;font-size:13px;margin-top:2px}
/* Email */
.mail{background:#fff;border:1px solid #dde3ea;border-radius:12px;overflow:hidden;margin:0 0 8px;box-shadow:0 4px 18px rgba(30,50,70,.08)}
.mail-head{padding:14px 18px;border-bottom:1px solid #e6eaef}
.mail-subject{font-size:19px;font-weight:650;margin-bottom:10px}
.mail-from{display:flex;gap:10px;align-items:center;font-size:14px;line-height:1.3}
.mail-avatar{width:36px;height:36px;border-radius:50%;background:linear-gradient(135deg,#f59e0b,#ef4444)}
.mail-body{display:block;width:100%;border:0;background:#f3f4f6;resize:vertical}
.mail-text{border-top:1px solid #e6eaef;padding:8px 18px;font-size:13px}
.mail-text summary{cursor:pointer;color:#52606d}
.mail-text pre{white-space:pre-wrap;font-size:12.5px}
/* Slack */
.sl-window{background:#fff;border:1px solid #dde3ea;border-radius:12px;overflow:hidden;box-shadow:0 4px 18px rgba(30,50,70,.08)}
.sl-top{padding:10px 18px;font-weight:700;border-bottom:1px solid #e6eaef}
.sl-chat{padding:12px 18px 4px;font-family:Lato,system-ui,sans-serif}
.sl-msg{display:flex;gap:10px;margin:0 0 12px}
.sl-avatar{width:36px;height:36px;border-radius:6px;background:#4a154b;font-size:16px}
.sl-main{min-width:0;flex:1}
.sl-name{display:flex;gap:6px;align-items:center;font-size:15px}
.sl-app{font-size:10px;font-weight:700;background:#e8e8e8;color:#616061;padding:1px 4px;border-radius:3px}
.sl-name .muted{font-size:12px}
.sl-section{display:flex;gap:12px;justify-content:space-between;margin:2px 0 10px}
.sl-text{white-space:pre-wrap;overflow-wrap:anywhere}
.sl-text a{color:#1264a3;text-decoration:none}
.sl-text code{background:#f6f6f6;border:1px solid #e1e1e1;border-radius:3px;padding:0 3px;color:#e01e5a}
.sl-thumb{width:88px;height:88px;object-fit:cover;border-radius:6px;flex:none}
.sl-image img{display:block;max-width:360px;max-height:300px;border-radius:8px;margin:6px 0}
.sl-actions{display:flex;gap:8px;flex-wrap:wrap;margin:6px 0}
.sl-btn{display:inline-block;padding:4px 14px;border:1px solid #c7c7c7;border-radius:6px;color:#1d1c1d;font-weight:700;font-size:14px;text-decoration:none}
.sl-header{font-weight:800;font-size:18px}
.sl-context{font-size:12px;color:#616061}
.sl-divider{border:0;border-top:1px solid #e6e6e6}
/* Discord */
.dc-window{background:#313338;color:#dbdee1;border-radius:12px;overflow:hidden;box-shadow:0 4px 18px rgba(30,50,70,.2)}
.dc-top{padding:10px 18px;font-weight:700;color:#f2f3f5;border-bottom:1px solid #1f2023}
.dc-chat{padding:12px 18px 4px}
.dc-chat .pill{background:#2b2d31;color:#b5bac1}
.dc-msg{display:flex;gap:14px;margin:0 0 12px}
.dc-avatar{width:40px;height:40px;border-radius:50%;background:#5865f2;font-size:17px}
.dc-main{min-width:0;flex:1}
.dc-name{display:flex;gap:6px;align-items:center;color:#f2f3f5}
.dc-bot{font-size:10px;font-weight:700;background:#5865f2;color:#fff;padding:1px 5px;border-radius:4px}
.dc-time{font-size:12px;color:#949ba4}
.dc-content{white-space:pre-wrap;overflow-wrap:anywhere;margin:2px 0}
.dc-chat a{color:#00a8fc;text-decoration:none}
.dc-chat code{background:#2b2d31;border-radius:4px;padding:0 3px}
.dc-embed{max-width:432px;margin:6px 0 2px;padding:10px 14px 14px;background:#2b2d31;border-left:4px solid #5865f2;border-radius:4px}
.dc-title{font-weight:700;margin:2px 0 6px}
.dc-desc{white-space:pre-wrap;overflow-wrap:anywhere;font-size:14px}
.dc-image img{display:block;max-width:100%;border-radius:4px;margin-top:10px}
.md-h1{font-size:1.5em;font-weight:700}.md-h2{font-size:1.25em;font-weight:700}.md-h3{font-weight:700}
.md-quote{display:inline-block;border-left:4px solid #4e5058;padding-left:8px}
/* JSON */
.json-call{background:#0f1720;color:#d7e0ea;border-radius:12px;overflow:hidden;margin:0 0 8px}
.json-call header{padding:8px 14px;background:#17212c;font-size:13px}
.json-call .method{font-weight:700;color:#7dd3fc}
.json-call .muted{color:#8b9aab}
.json-call .jk{color:#93c5fd}.json-call .js{color:#a7f3d0}.json-call .jn{color:#fcd34d}
.json-call pre{margin:0;padding:12px 14px;font-size:12.5px;white-space:pre-wrap;overflow-wrap:anywhere}
footer{padding:0 40px 28px;color:#7b8794;font-size:12.5px}
"""
