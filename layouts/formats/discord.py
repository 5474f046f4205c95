"""The ``discord`` format: webhook calls, with Discord markdown.

``{"content", "embeds", "allowed_mentions": {"parse": []}}`` (no pings from feed
content): text modules and media links -> ``content`` packed up to 2000, buttons as
``[title](<url>)`` links; images and cards -> embeds (title 256, description 4096,
<= 10 and 6000 characters per call). Content shows above embeds, so a text after an
embed starts a new call.

The preview re-renders markdown from a whitelist (:func:`markdown_to_html`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from feedcast.kernel.models import Button, Card, Message, Module, ProviderCall
from layouts.formats import _check as check
from layouts.formats._build import MEDIA_KINDS, JsonObj, Sizes, link_name, one_line, url_of
from layouts.formats._fit import ELLIPSIS, close_cut, cut_utf16, pack_utf16
from layouts.formats._spec import Format
from layouts.i18n import gettext
from layouts.markup import to_discord
from layouts.preview_html import Sender, Stash, anchor, app_message, app_window, dicts_of, esc, img, text_of
from layouts.text import truncate_text, utf16_len

__all__ = ["FORMAT", "markdown_to_html"]

# Discord webhooks: characters (UTF-16 code units) unless said otherwise
CONTENT = 2000  # the message text
EMBEDS = 10  # embeds per message
TITLE = 256  # an embed's title, its author's name, a field's name
DESCRIPTION = 4096
FIELDS = 25  # fields per embed
FIELD_NAME, FIELD_VALUE = 256, 1024
FOOTER, AUTHOR = 2048, 256
EMBED_TOTAL = 6000  # all the embeds of a message together
USERNAME = 80  # the name a webhook message shows


# --------------------------------------------------------------------------- building

_LINK = re.compile(r"\[[^\[\]\n]*\]\(<?[^()<>\s]+>?\)")
_SPECIAL = re.compile(r"([\\*_~`|\[\]()<>])")
_LEADING = re.compile(r"^([#>-])", re.MULTILINE)


def _escape(text: str) -> str:
    return _LEADING.sub(r"\\\1", _SPECIAL.sub(r"\\\1", text))


def _link(url: str, label: str) -> str:
    return f"[{_escape(label)}](<{url.replace('>', '%3E')}>)"


def _cut(text: str, room: int) -> str:
    fence = "\n```"
    cut = close_cut(truncate_text(text, room, ELLIPSIS, unit="utf16"), text, "[", _LINK)
    if cut != text and cut.count("```") % 2 == 1:  # a code block left open: close it
        cut = close_cut(
            truncate_text(text, room - utf16_len(fence), ELLIPSIS, unit="utf16"), text, "[", _LINK
        )
        cut = cut + fence if cut.count("```") % 2 == 1 else cut
    return cut


def _buttons(buttons: Iterable[Button]) -> str:
    return " · ".join(
        _link(url, one_line(b.title) or link_name(url)) for b in buttons if (url := url_of(b.url))
    )


def _embed_size(embed: Mapping[str, Any]) -> int:
    return sum(utf16_len(str(embed.get(key, ""))) for key in ("title", "description"))


class _Calls:
    def __init__(self) -> None:
        self.calls: list[JsonObj] = []
        self.content: list[str] = []
        self.embeds: list[JsonObj] = []

    def emit(self) -> None:
        chunks = pack_utf16(self.content, CONTENT, _cut)
        bodies: list[JsonObj] = [{"content": c} for c in chunks]
        if self.embeds:
            if bodies:
                bodies[-1]["embeds"] = self.embeds
            else:
                bodies.append({"embeds": self.embeds})
        for body in bodies:
            body["allowed_mentions"] = {"parse": []}
        self.calls.extend(bodies)
        self.content, self.embeds = [], []

    def text(self, *blocks: str) -> None:
        kept = [b.strip() for b in blocks if b and b.strip()]
        if not kept:
            return
        if self.embeds:
            self.emit()
        self.content.extend(kept)

    def embed(self, embed: JsonObj) -> None:
        if (
            len(self.embeds) == EMBEDS
            or sum(map(_embed_size, self.embeds)) + _embed_size(embed) > EMBED_TOTAL
        ):
            self.emit()
        self.embeds.append(embed)

    def module(self, module: Module) -> None:
        text = (module.text or "").strip()
        links = _buttons(module.buttons)
        if module.kind == "text":
            self.text(text, links)
        elif module.kind == "image" and (url := url_of(module.url)):
            embed: JsonObj = {"image": {"url": url}}
            description = _cut("\n\n".join(p for p in (text, links) if p), DESCRIPTION)
            if description.strip():
                embed["description"] = description
            self.embed(embed)
        elif module.kind in MEDIA_KINDS:
            self.text(text, (module.url or "").strip(), links)
        elif module.kind == "cards":
            self.text(text)
            for card in module.cards:
                self.embed(self.card(card))
            self.text(links)

    @staticmethod
    def card(card: Card) -> JsonObj:
        url = url_of(card.url)
        embed: JsonObj = {}
        title = one_line(card.title) or (link_name(url) if url else "")
        if title:
            embed["title"] = cut_utf16(title, TITLE)
        if url:
            embed["url"] = url
        description = "\n\n".join(p for p in (_escape(one_line(card.subtitle)), _buttons(card.buttons)) if p)
        if description:
            embed["description"] = _cut(description, DESCRIPTION)
        image = url_of(card.image)
        if image:
            embed["image"] = {"url": image}
        return embed or {"title": ELLIPSIS}


def build_calls(message: Message, sizes: Sizes) -> list[ProviderCall]:
    """The webhook calls that deliver ``message`` (no mentions parsed)."""
    del sizes  # Discord fetches embed images itself
    builder = _Calls()
    for module in message.modules:
        builder.module(module)
    builder.emit()
    return [ProviderCall("POST", body) for body in builder.calls]


# --------------------------------------------------------------------------- validation

_BODY_KEYS = frozenset(
    {"content", "embeds", "username", "avatar_url", "tts", "allowed_mentions", "flags", "thread_name"}
)
_EMBED_PARTS = frozenset({"footer", "image", "thumbnail", "author", "fields"})
_EMBED_KEYS = _EMBED_PARTS | {"title", "type", "description", "url", "timestamp", "color"}


def validate(call: ProviderCall) -> None:
    """Raise PayloadError unless ``call`` is a valid webhook execution: content and / or
    embeds within their limits, mentions parsed at most for roles, users, everyone."""
    body = check.webhook_body(call, "discord", _BODY_KEYS)
    content = check.text(body.get("content", ""), "discord.content", "content", "content", high=CONTENT)
    embeds = check.array(body.get("embeds", []), "discord.embeds", "embeds")
    if not content.strip() and not embeds:
        check.fail("discord.empty", "a message needs content or embeds")
    if len(embeds) > EMBEDS:
        check.fail("discord.embeds.count", f"{len(embeds)} embeds, over {EMBEDS}")
    total = 0
    for index, embed in enumerate(embeds):
        total += _check_embed(embed, f"embeds[{index}]")
    if total > EMBED_TOTAL:
        check.fail("discord.embeds.total", f"the embeds hold {total} characters, over {EMBED_TOTAL}")
    if "username" in body:
        check.text(body["username"], "discord.username", "username", "username", low=1, high=USERNAME)
    if "avatar_url" in body:
        check.url(body["avatar_url"], "discord.url", "avatar_url")
    if "allowed_mentions" in body:
        mentions = check.obj(body["allowed_mentions"], "discord.allowed_mentions", "allowed_mentions")
        check.keys(
            mentions,
            {"parse", "roles", "users", "replied_user"},
            "discord.allowed_mentions",
            "allowed_mentions",
        )
        for kind in check.array(
            mentions.get("parse", []), "discord.allowed_mentions", "allowed_mentions.parse"
        ):
            if kind not in ("roles", "users", "everyone"):
                check.fail("discord.allowed_mentions", f"allowed_mentions.parse holds {kind!r}")


def _check_embed(value: Any, what: str) -> int:
    embed = check.obj(value, "discord.embed", what)
    check.keys(embed, _EMBED_KEYS, "discord.embed", what)
    if not embed:
        check.fail("discord.embed", f"{what} is empty")
    total = 0
    if "title" in embed:
        title = check.string(embed["title"], "discord.embed.title", f"{what}.title")
        check.length(title, "discord.embed.title", f"{what}.title", low=1, high=TITLE)
        total += utf16_len(title)
    if "description" in embed:
        description = check.string(embed["description"], "discord.embed.description", f"{what}.description")
        check.length(description, "discord.embed.description", f"{what}.description", low=1, high=DESCRIPTION)
        total += utf16_len(description)
    if "url" in embed:
        check.url(embed["url"], "discord.url", f"{what}.url")
    for key in ("image", "thumbnail"):
        if key in embed:
            media = check.obj(embed[key], "discord.embed.image", f"{what}.{key}")
            check.keys(media, {"url", "height", "width", "proxy_url"}, "discord.embed.image", f"{what}.{key}")
            check.url(
                check.field(media, "url", "discord.embed.image", f"{what}.{key}"),
                "discord.url",
                f"{what}.{key}.url",
            )
    for key, field, high in (("footer", "text", FOOTER), ("author", "name", AUTHOR)):
        if key in embed:
            total += _check_embed_text(embed[key], key, field, high, what)
    if "fields" in embed:
        total += _check_fields(embed["fields"], what)
    if "color" in embed and (
        not isinstance(embed["color"], int)
        or isinstance(embed["color"], bool)
        or not 0 <= embed["color"] <= 0xFFFFFF
    ):
        check.fail("discord.embed", f"{what}.color must be an integer 0..0xFFFFFF")
    return total


def _check_embed_text(value: Any, key: str, field: str, high: int, what: str) -> int:
    """An embed's footer (its ``text``) or author (its ``name``); the characters it holds."""
    rule = f"discord.embed.{key}"
    part = check.obj(value, rule, f"{what}.{key}")
    text = check.string(check.field(part, field, rule, f"{what}.{key}"), rule, field)
    check.length(text, rule, f"{what}.{key}.{field}", low=1, high=high)
    return utf16_len(text)


def _check_fields(value: Any, what: str) -> int:
    """An embed's fields; the characters they hold."""
    fields = check.array(value, "discord.embed.fields", f"{what}.fields")
    if len(fields) > FIELDS:
        check.fail("discord.embed.fields", f"{what} has {len(fields)} fields, over {FIELDS}")
    total = 0
    for f, raw in enumerate(fields):
        field = check.obj(raw, "discord.embed.fields", f"{what}.fields[{f}]")
        name = check.string(
            check.field(field, "name", "discord.embed.fields", f"{what}.fields[{f}]"),
            "discord.embed.fields",
            "name",
        )
        value_ = check.string(
            check.field(field, "value", "discord.embed.fields", f"{what}.fields[{f}]"),
            "discord.embed.fields",
            "value",
        )
        check.length(name, "discord.embed.fields", f"{what}.fields[{f}].name", low=1, high=FIELD_NAME)
        check.length(value_, "discord.embed.fields", f"{what}.fields[{f}].value", low=1, high=FIELD_VALUE)
        total += utf16_len(name) + utf16_len(value_)
    return total


# --------------------------------------------------------------------------- preview

_CODE_BLOCK = re.compile(r"```(?:[\w+-]*\n)?(.*?)```", re.DOTALL)
_CODE = re.compile(r"`([^`\n]+)`")
_LINK_PARTS = re.compile(r"\[((?:\\.|[^\[\]\\\n])*)\]\(<?([^()<>\s]+)>?\)")
_ESCAPED = re.compile(r"\\([^\w\s])")
_RULES = (
    (re.compile(r"\*\*(?!\s)(.+?)\*\*"), "b"),
    (re.compile(r"__(?!\s)(.+?)__"), "u"),
    (re.compile(r"~~(?!\s)(.+?)~~"), "s"),
    (re.compile(r"(?<![\w*])\*(?!\s)([^*\n]+?)\*(?![\w*])"), "i"),
    (re.compile(r"(?<![\w_])_(?!\s)([^_\n]+?)_(?![\w_])"), "i"),
)
_HEADING = re.compile(r"^(#{1,3}) (.+)$", re.MULTILINE)
_QUOTE = re.compile(r"^&gt; ?(.*)$", re.MULTILINE)


def markdown_to_html(text: str) -> str:
    """Discord markdown (links, **bold**, *italic*, __underline__, ~~strike~~, code,
    headings, quotes, backslash escapes) as safe HTML."""
    stash = Stash()
    text = stash.clean(text)
    text = _CODE_BLOCK.sub(lambda m: stash.put(f"<pre><code>{esc(m.group(1))}</code></pre>"), text)
    text = _CODE.sub(lambda m: stash.put(f"<code>{esc(m.group(1))}</code>"), text)

    def inline(fragment: str) -> str:
        fragment = _ESCAPED.sub(lambda m: stash.put(esc(m.group(1))), fragment)
        return Stash.formatted(fragment, _RULES)

    text = _LINK_PARTS.sub(lambda m: stash.put(anchor(m.group(2), inline(m.group(1)))), text)
    html = inline(text)
    html = _HEADING.sub(lambda m: f'<span class="md-h{len(m.group(1))}">{m.group(2)}</span>', html)
    html = _QUOTE.sub(lambda m: f'<span class="md-quote">{m.group(1)}</span>', html)
    return stash.restore(html)


def preview_call(call: ProviderCall, sender: Sender, number: int) -> str:
    """One call as a message of the app: its content, then its embeds."""
    del number
    body = call.body
    parts = []
    if body.get("content"):
        parts.append(f'<div class="dc-content">{markdown_to_html(text_of(body.get("content")))}</div>')
    for embed in dicts_of(body.get("embeds")):
        rows = []
        if embed.get("title"):
            rows.append(
                f'<div class="dc-title">{anchor(embed.get("url"), esc(text_of(embed.get("title"))))}</div>'
            )
        if embed.get("description"):
            rows.append(f'<div class="dc-desc">{markdown_to_html(text_of(embed.get("description")))}</div>')
        image = embed.get("image")
        if isinstance(image, Mapping):
            rows.append(f'<div class="dc-image">{img(image.get("url"))}</div>')
        parts.append(f'<div class="dc-embed">{"".join(rows)}</div>')
    when = gettext("Today at %(time)s") % {"time": sender.time}
    return app_message("dc", sender, "dc-bot", ("dc-time", when), "".join(parts))


def preview_window(body: str, sender: Sender) -> str:
    """The previewed messages in a Discord channel."""
    del sender
    return app_window("dc", "# " + esc(gettext("announcements")), body)


FORMAT: Final = Format(
    "discord", "Discord", "discord.j2", build_calls, validate, preview_call, preview_window, markup=to_discord
)
