"""``feedcast preview``: what a layout makes of real items, before anything is sent.

:func:`build_preview` renders the latest items of some sources with a layout for a
channel kind, turns each Message into the exact provider calls
(:func:`layouts.formats.provider_calls`) and checks every call with
:func:`layouts.formats.validate_call`. Three views of the result:

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
but images. How each provider shows a call (and the style of it) is its format's
``preview_call`` / ``preview_window`` / ``PREVIEW_CSS`` (:mod:`layouts.formats`), made
of the safe pieces of :mod:`layouts.preview_html`; this module lays out the page.

Channel kinds are the layout formats (``json`` is the generic webhook). Automations
come later; ``preview AUTOMATION`` will feed :func:`build_preview` from one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from feedcast.compose import ComposedPlan
from feedcast.kernel.errors import InvalidValue, PayloadError
from feedcast.kernel.models import ComposedModule, Item, Message, ProviderCall
from feedcast.kernel.urls import safe_url
from feedcast.store import Store
from layouts import i18n
from layouts.filters import parse_locale, parse_timezone
from layouts.formats import FORMATS, Format, get_format, provider_calls, validate_call
from layouts.markup import plain as plain_markup
from layouts.preview_html import Sender, anchor, esc, img
from layouts.render import (
    MAX_ITEMS_LIMIT,
    EventInfo,
    Layout,
    RenderContext,
    load_layout,
    render,
    search_path_from_env,
)
from layouts.text import text_direction

__all__ = [
    "CHANNEL_KINDS",
    "PER_ITEM_DEFAULT",
    "Preview",
    "PreviewCall",
    "PreviewMessage",
    "build_preview",
    "composed_preview_html",
    "count_of",
    "preview_automation",
    "preview_html",
]

CHANNEL_KINDS: Final = FORMATS  # telegram, messenger, email, slack, discord, json
PER_ITEM_DEFAULT: Final = 3  # items previewed by a per-item layout without --limit
KIND_NAMES: Final[Mapping[str, str]] = {name: get_format(name).label for name in FORMATS}


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
            f"{count_of(len(self.items), 'item')} from {', '.join(self.sources)} → "
            f"{count_of(len(self.messages), 'message')}, {count_of(self.call_count, 'call')}, {state}"
        )


def count_of(n: int, noun: str) -> str:
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
            calls = provider_calls(message, media_sizes=sizes, locale=locale)
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
            f"{sending} would send {count_of(len(plan.queued), 'item')} in {count_of(going, 'message')} "
            f"to {count_of(plan.audience, 'subscriber')}"
        )
        if plan.waiting > len(plan.queued):
            verdict += f"; {plan.waiting - len(plan.queued)} more stay queued for the next campaign"
        if going < len(plan.messages):
            verdict += f"; {count_of(len(plan.messages) - going, 'invalid message')} left out"
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


# --------------------------------------------------------------------------- HTML: the page

CSP: Final = (
    "default-src 'none'; img-src http: https: data:; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'"
)  # an iframe srcdoc is no fetch: it shows under frame-src 'none' and inherits this policy


def _invalid(error: str | None) -> str:
    if error is None:
        return ""
    return f'<div class="invalid" role="alert">✗ invalid payload: {esc(error)}</div>'


def _message_html(
    pm: PreviewMessage, fmt: Format, sender: Sender, label: str, about: str, rtl: bool = False
) -> str:
    """One message: its pill, then its calls as the provider shows them (``rtl``: the
    render's locale is right to left)."""
    calls = [fmt.preview_call(pc.call, sender, pm.number) + _invalid(pc.error) for pc in pm.calls]
    if pm.error is not None:
        calls.append(f'<div class="invalid" role="alert">✗ {esc(pm.error)}</div>')
    # the message's own direction: right to left in a right-to-left locale or when its
    # text mostly is (an Arabic digest that starts with a Latin site name too), else the
    # first strong letter's
    direction = "rtl" if rtl or text_direction(*_message_texts(pm.message)) == "rtl" else "auto"
    return (
        f'<section class="message" id="message-{pm.number}">'
        f'<div class="pill" lang="en" dir="ltr">{esc(label)}<bdi>{esc(about)}</bdi></div>'
        f'<div class="body" dir="{direction}">{"".join(calls)}</div></section>'
    )


def _right_to_left(locale: str) -> bool:
    return bool(parse_locale(locale).character_order == "right-to-left")


def _stage(preview: Preview, sender: Sender) -> str:
    fmt = get_format(preview.kind)
    total = len(preview.messages)
    titles = {item.key: item.title or item.key for item in preview.items}
    rtl = _right_to_left(preview.context.locale)
    blocks = []
    for pm in preview.messages:
        shown = [titles.get(k, k) for k in pm.message.item_keys]
        about = shown[0] if len(shown) == 1 else count_of(len(shown), "item")
        blocks.append(_message_html(pm, fmt, sender, f"Message {pm.number} of {total} · ", about, rtl))
    if not blocks:
        blocks.append('<p class="empty">The layout rendered nothing for these items.</p>')
    return fmt.preview_window("".join(blocks), sender)


def _message_texts(message: Message) -> list[str]:
    texts = []
    for module in message.modules:
        texts.append(module.text or "")
        texts.extend(card.title + " " + (card.subtitle or "") for card in module.cards)
    return texts


def _item_line(item: Item, event: EventInfo | None) -> str:
    image = item.image or next((m.url for m in item.media if m.medium == "image"), None)
    thumb = img(image, "", "thumb") if safe_url(image, raw=False) else '<div class="thumb thumb-none">·</div>'
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
    title = anchor(item.url, esc(item.title or item.key))
    return (
        f"<li>{thumb}<div><div class='item-title' dir='auto'>{title}</div>"
        f"<div class='muted small'>{' · '.join(f'<bdi>{esc(fact)}</bdi>' for fact in facts)}</div>"
        f"<code class='small' dir='ltr'>{esc(item.key)}</code></div></li>"
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
                f" · call {index} <code>{esc(pc.call.method)}</code></li>"
            )
        if pm.error is not None:
            rows.append(f"<li><span class='bad'>✗</span> message {pm.number}: {esc(pm.error)}</li>")
    context = preview.context
    content_lang = _lang(context.locale)
    return (
        '<aside class="side" lang="en">'
        f"<section class='card'><h2>Layout</h2><p><b>{esc(layout.name)}</b> · one message per {esc(layout.per)}"
        f" · up to {layout.max_items} items</p><p class='muted'>{esc(layout.description)}</p>"
        f"<p class='muted small'>{esc(layout.location)} · {esc(context.timezone)} · {esc(context.locale)}</p></section>"
        f"<section class='card'><h2>Items ({len(preview.items)})</h2><ol class='items' lang='{esc(content_lang)}'>{items}</ol>"
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
    sender = Sender(
        name=name,
        initial=(name.strip()[:1] or "?").upper(),
        time=preview.rendered_at.strftime("%H:%M"),
    )
    sources = ", ".join(preview.sources)
    title = (
        f"Preview: {preview.layout.name} → {kind_name} · {sources} · {count_of(len(preview.items), 'item')}"
    )
    errors = preview.errors
    if errors:
        badge = f'<span class="badge badge-bad">✗ {count_of(len(errors), "invalid payload")}</span>'
    else:
        badge = f'<span class="badge badge-ok">✓ {count_of(preview.call_count, "payload")}, all valid</span>'
    stamp = preview.rendered_at.strftime("%Y-%m-%d %H:%M %Z")
    # the provider's window reads in the render's language: mirrored when it is right to left
    locale = preview.context.locale
    stage_lang = f' lang="{esc(_lang(locale))}" dir="rtl"' if _right_to_left(locale) else ""
    with i18n.using(locale):  # the words of the provider's window (layouts.i18n)
        stage = _stage(preview, sender)
    verdict = ""
    if preview.verdict is not None:
        tone = "verdict-wait" if " nothing " in preview.verdict else "verdict-go"
        verdict = f"<p class='verdict {tone}'>{esc(preview.verdict)}</p>"
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{esc(_lang(preview.context.locale))}"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{_STYLE}</style></head>\n"
        f'<body class="kind-{esc(preview.kind)}">\n'
        '<header class="top" lang="en"><div class="brand">feedcast · preview</div>'
        f"<h1>{esc(preview.layout.name)} <span class='to'>→</span> {esc(kind_name)}</h1>"
        f"<p class='meta'>{count_of(len(preview.items), 'item')} from <b><bdi>{esc(sources)}</bdi></b>"
        f" · {count_of(len(preview.messages), 'message')} · {count_of(preview.call_count, 'provider call')}"
        f" · rendered <bdi>{esc(stamp)}</bdi></p>{verdict}{badge}</header>\n"
        f'<main class="grid"><div class="stage"{stage_lang}>{stage}</div>{_sidebar(preview)}</main>\n'
        "<footer lang='en'>Generated by <b>feedcast preview</b>. Images load from the items' own URLs;"
        " nothing in this page runs scripts.</footer>\n"
        "</body></html>\n"
    )


def composed_preview_html(plan: ComposedPlan) -> str:
    """A composed campaign's preview as one self-contained HTML page: for each channel
    and language, its calls as the provider shows them; beside them the modules, the
    payloads and what each channel leaves out."""
    campaign = plan.campaign
    stamp = datetime.now(UTC).astimezone(parse_timezone(campaign.timezone))
    sender = Sender(
        name=campaign.name, initial=(campaign.name[:1] or "?").upper(), time=stamp.strftime("%H:%M")
    )
    stages: list[str] = []
    rows: list[str] = []
    notes: list[str] = []
    for number, part in enumerate(plan.parts, 1):
        fmt = get_format(part.fmt)
        calls = tuple(PreviewCall(c, e) for c, e in zip(part.calls, part.errors, strict=True))
        pm = PreviewMessage(number, part.composed.message, calls)
        about = f"{part.locale} · {count_of(part.recipients, 'subscriber')}"
        body = _message_html(pm, fmt, sender, f"{part.channel.name} ({fmt.label}) · ", about)
        stages.append(
            f'<div class="part" lang="{esc(_lang(part.locale))}">{fmt.preview_window(body, sender)}</div>'
        )
        for index, pc in enumerate(calls, 1):
            mark = '<span class="ok">✓</span>' if pc.error is None else '<span class="bad">✗</span>'
            rows.append(
                f"<li>{mark} <a href='#message-{number}'>{esc(part.channel.name)} · {esc(part.locale)}</a>"
                f" · call {index} <code>{esc(pc.call.method)}</code></li>"
            )
        notes.extend(f"<li>{esc(part.channel.name)}: {esc(w)}</li>" for w in part.composed.warnings)
    modules = "".join(
        f"<li><b>{esc(m.kind)}</b> <span class='muted'>{esc(_module_about(m))}</span></li>"
        for m in campaign.message.modules
    )
    errors = [p for p in plan.parts if p.problem]
    badge = (
        f'<span class="badge badge-bad">✗ {count_of(len(errors), "invalid part")}</span>'
        if errors
        else f'<span class="badge badge-ok">✓ {count_of(sum(len(p.calls) for p in plan.parts), "payload")}, all valid</span>'
    )
    tone = "verdict-wait" if plan.reason else "verdict-go"
    when = campaign.send_at_local or "when `feedcast campaign send` says"
    side = (
        '<aside class="side" lang="en">'
        f"<section class='card'><h2>Campaign</h2><p><b>{esc(campaign.name)}</b> · {esc(campaign.status)}</p>"
        f"<p class='muted small'>to {esc(campaign.audience or 'every active subscriber')} · {esc(when)}</p></section>"
        f"<section class='card'><h2>Modules ({len(campaign.message.modules)})</h2><ol class='calls'>{modules}</ol></section>"
        f"<section class='card'><h2>Payloads ({len(rows)})</h2><ol class='calls'>{''.join(rows)}</ol>"
        "<p class='muted small'>Exactly the request bodies feedcast sends (recipient and credentials aside),"
        " each checked against the provider's rules; local files are uploaded once per channel.</p></section>"
        + (
            f"<section class='card'><h2>Left out</h2><ul class='calls'>{''.join(notes)}</ul></section>"
            if notes
            else ""
        )
        + "</aside>"
    )
    title = f"Preview: campaign {campaign.name} → {', '.join(campaign.channels)}"
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{_STYLE}.part{{margin:0 0 28px}}</style></head>\n"
        '<body class="kind-composed">\n'
        '<header class="top" lang="en"><div class="brand">feedcast · campaign preview</div>'
        f"<h1>{esc(campaign.name)} <span class='to'>→</span> {esc(', '.join(campaign.channels))}</h1>"
        f"<p class='meta'>{count_of(len(campaign.message.modules), 'module')} · {count_of(plan.recipients, 'subscriber')}"
        f" · {count_of(len(plan.parts), 'rendering')}</p>"
        f"<p class='verdict {tone}'>{esc(plan.verdict)}</p>{badge}</header>\n"
        f'<main class="grid"><div class="stage">{"".join(stages)}</div>{side}</main>\n'
        "<footer lang='en'>Generated by <b>feedcast campaign preview</b>. Images load from their own URLs;"
        " nothing in this page runs scripts.</footer>\n"
        "</body></html>\n"
    )


def _module_about(module: ComposedModule) -> str:
    if module.kind == "text":
        return plain_markup(module.text or "")[:80]
    target = (
        module.upload.name + f" ({module.upload.size / 1e6:.1f} MB, uploaded)"
        if module.upload
        else module.url or ""
    )
    buttons = f" · {count_of(len(module.buttons), 'button')}" if module.buttons else ""
    return target + buttons


_STYLE: Final = (
    """
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
.tg-avatar,.fb-avatar,.sl-avatar,.dc-avatar,.mail-avatar{display:inline-flex;align-items:center;justify-content:center;flex:none;color:#fff;font-weight:700}
"""
    + "".join(get_format(name).preview_css for name in FORMATS)
    + """footer{padding:0 40px 28px;color:#7b8794;font-size:12.5px}
"""
)
