"""Composed campaigns: a marketer's message of content modules, read from a message file,
checked against every channel it goes to, sent now or at a local date and time.

The message file (YAML)::

    subject: "Winter sale"                 # optional: the emails' subject
    modules:
      - text: "Winter sale starts **today**"
      - image: ./banner.jpg                # a local file, or an http(s) URL
        caption: "Up to 40 % off"
        alt: "Coats on a rail"
      - text: "Pick yours before Sunday"
        buttons:
          - {label: "Shop now", url: "https://shop.example/sale"}
          - {label: "Not interested", reply: "NO_SALE"}
      - video: https://cdn.example/sale.mp4
      - audio: https://cdn.example/jingle.mp3
      - file: ./catalogue.pdf
        name: "Winter catalogue.pdf"

Texts and captions are in the composer's markup (:mod:`layouts.markup`: bold, italic,
links, line breaks). Local paths are relative to the message file; their bytes are kept
in the store, so the file may move and every host sends the same thing.

Everything that can be known before sending is checked before anything is stored, with
one line naming the module's position and the field (:class:`MessageFileError`): an
unknown module or field, a missing or oversized local file, a media URL that does not
answer 2xx, a button without a label or with both or neither of ``url`` / ``reply``, more
than :data:`MAX_BUTTONS` buttons, a caption over a channel's limit, then every provider
call against its provider's rules.

Plain Python over the store; the CLI and the flows call it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import mimetypes
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx
import yaml

from channels.base import UNSUBSCRIBE_PLACEHOLDER
from feedcast.delivery import CampaignResult, Progress, SendSettings, deliver, hold_lease, make_channel
from feedcast.kernel.errors import AutomationBusy, FeedcastError, InvalidValue, MessageFileError, PayloadError
from feedcast.kernel.models import (
    COMPOSED_KINDS,
    Button,
    ChannelConfig,
    ComposedCampaign,
    ComposedMessage,
    ComposedModule,
    ProviderCall,
    Upload,
)
from feedcast.kernel.netguard import AddressPolicy, guarded_client
from feedcast.kernel.urls import safe_url
from feedcast.store import ComposedPart, Store
from feedcast.tracking import public_url
from layouts.composed import Composed, compose
from layouts.filters import parse_locale, parse_timezone
from layouts.formats import checked_calls, get_format
from layouts.html import telegram_text_length
from layouts.markup import LINK_SCHEMES, to_telegram
from layouts.render import RenderContext

__all__ = [
    "MAX_BUTTONS",
    "ComposedPlan",
    "LoadedMessage",
    "MessageFileError",
    "PlanPart",
    "check_for_formats",
    "create_composed",
    "file_urls",
    "parse_at",
    "plan_composed",
    "read_message_file",
    "run_due_composed",
    "send_composed",
]

MAX_BUTTONS: Final = 3  # buttons of one module: what every provider with buttons takes
REPLY_BYTES: Final = 64  # a reply payload: Telegram's callback_data limit
MESSAGE_FILE_BYTES: Final = 1_000_000
DEFAULT_MAX_UPLOAD: Final = 50_000_000  # bytes; FEEDCAST_MAX_UPLOAD_MB
_FIELDS: Final[Mapping[str, frozenset[str]]] = {
    "text": frozenset({"buttons"}),
    "image": frozenset({"caption", "alt", "buttons"}),
    "video": frozenset({"caption", "buttons"}),
    "audio": frozenset({"caption", "buttons"}),
    "file": frozenset({"name", "caption", "buttons"}),
}
_MEDIA_SCHEMES: Final = frozenset({"http", "https"})
_IMAGE_TYPES: Final = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_CAPTION_LIMITS: Final = {"telegram": 1024}  # formats whose media carry the caption themselves


@dataclass(frozen=True, slots=True)
class LoadedMessage:
    """A message file read and checked: the message, and the bytes of its local files."""

    message: ComposedMessage
    files: Mapping[str, bytes] = field(default_factory=dict)  # SHA-256 -> bytes
    path: str | None = None


# --------------------------------------------------------------------------- reading


def _max_upload(environ: Mapping[str, str]) -> int:
    raw = environ.get("FEEDCAST_MAX_UPLOAD_MB")
    if not raw:
        return DEFAULT_MAX_UPLOAD
    try:
        return int(float(raw) * 1_000_000)
    except ValueError as exc:
        raise InvalidValue(f"FEEDCAST_MAX_UPLOAD_MB must be a number of megabytes, not {raw!r}") from exc


class _Reader:
    def __init__(self, shown: str, folder: Path, environ: Mapping[str, str]) -> None:
        self.shown = shown
        self.folder = folder
        self.max_upload = _max_upload(environ)
        self.files: dict[str, bytes] = {}

    def fail(self, where: str, problem: str) -> MessageFileError:
        return MessageFileError(f"{self.shown}: {where}: {problem}")

    def string(self, where: str, value: Any, key: str, *, required: bool = True) -> str | None:
        if value is None and not required:
            return None
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise self.fail(where, f"{key} must be text")
        text = str(value)
        if required and not text.strip():
            raise self.fail(where, f"{key} is empty")
        return text

    def module(self, position: int, raw: Any) -> ComposedModule:
        if not isinstance(raw, dict) or not raw:
            raise self.fail(f"module {position}", "must be a mapping such as {text: ...} or {image: URL}")
        kinds = [k for k in raw if k in COMPOSED_KINDS]
        if len(kinds) != 1:
            if kinds:
                raise self.fail(f"module {position}", f"has {' and '.join(kinds)}: one kind per module")
            unknown = ", ".join(sorted(str(k) for k in raw))
            raise self.fail(
                f"module {position}", f"unknown module {unknown!r} (known: {', '.join(COMPOSED_KINDS)})"
            )
        kind = kinds[0]
        where = f"module {position} ({kind})"
        extra = sorted(str(k) for k in raw if k != kind and k not in _FIELDS[kind])
        if extra:
            known = ", ".join(sorted(_FIELDS[kind])) or "none"
            raise self.fail(where, f"unknown field {extra[0]!r} (known: {known})")
        buttons = self.buttons(where, raw.get("buttons"))
        if kind == "text":
            return ComposedModule(kind="text", text=self.string(where, raw["text"], "text"), buttons=buttons)
        caption = self.string(where, raw.get("caption"), "caption", required=False)
        alt = self.string(where, raw.get("alt"), "alt", required=False)
        name = self.string(where, raw.get("name"), "name", required=False)
        target = self.string(where, raw[kind], kind) or ""
        module = ComposedModule(kind=kind, caption=caption, alt=alt, name=name, buttons=buttons)
        if "://" in target:
            url = safe_url(target.strip(), _MEDIA_SCHEMES)
            if url is None:
                raise self.fail(where, f"{kind}: {target!r} is not an http(s) URL")
            return _replace(module, url=url)
        return _replace(module, upload=self.local_file(where, kind, target.strip(), name))

    def buttons(self, where: str, raw: Any) -> tuple[Button, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            raise self.fail(where, "buttons must be a list of {label, url} or {label, reply}")
        if len(raw) > MAX_BUTTONS:
            raise self.fail(where, f"buttons: {len(raw)} buttons, at most {MAX_BUTTONS}")
        out = []
        for index, button in enumerate(raw, 1):
            at = f"{where}: button {index}"
            if not isinstance(button, dict):
                raise MessageFileError(f"{self.shown}: {at}: must be a mapping of label and url (or reply)")
            unknown = sorted(str(k) for k in button if k not in ("label", "url", "reply"))
            if unknown:
                raise MessageFileError(
                    f"{self.shown}: {at}: unknown field {unknown[0]!r} (known: label, url, reply)"
                )
            label = button.get("label")
            if label is None or not str(label).strip():
                raise MessageFileError(f"{self.shown}: {at}: label is missing")
            if ("url" in button) == ("reply" in button):
                raise MessageFileError(f"{self.shown}: {at}: give either url or reply")
            if "url" in button:
                url = safe_url(str(button["url"] or "").strip(), LINK_SCHEMES)
                if url is None:
                    raise MessageFileError(f"{self.shown}: {at}: url {button['url']!r} is not a link")
                out.append(Button(title=str(label).strip(), url=url))
                continue
            reply = str(button["reply"] or "").strip()
            if not reply or len(reply.encode("utf-8")) > REPLY_BYTES:
                raise MessageFileError(f"{self.shown}: {at}: reply must be 1 to {REPLY_BYTES} bytes")
            out.append(Button(title=str(label).strip(), reply=reply))
        return tuple(out)

    def local_file(self, where: str, kind: str, target: str, name: str | None) -> Upload:
        path = Path(target).expanduser()
        if not path.is_absolute():
            path = self.folder / path
        try:
            stat = path.stat()
        except OSError:
            raise self.fail(where, f"{kind}: no file {target!r}") from None
        if not path.is_file():
            raise self.fail(where, f"{kind}: {target!r} is not a file")
        if stat.st_size > self.max_upload:
            raise self.fail(
                where,
                f"{kind}: {target!r} is {stat.st_size / 1e6:.1f} MB, over the {self.max_upload / 1e6:.0f} MB"
                " a campaign keeps (FEEDCAST_MAX_UPLOAD_MB)",
            )
        if stat.st_size == 0:
            raise self.fail(where, f"{kind}: {target!r} is empty")
        data = path.read_bytes()
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if kind == "image" and content_type not in _IMAGE_TYPES:
            raise self.fail(where, f"image: {target!r} is {content_type}, not a JPEG, PNG, GIF or WebP image")
        sha = hashlib.sha256(data).hexdigest()
        self.files[sha] = data
        return Upload(sha256=sha, name=name or path.name, content_type=content_type, size=len(data))


def _replace(module: ComposedModule, **changes: Any) -> ComposedModule:
    return dataclasses.replace(module, **changes)


def read_message_file(
    path: str | Path,
    *,
    check_media: bool = True,
    environ: Mapping[str, str] | None = None,
    client: httpx.AsyncClient | None = None,
) -> LoadedMessage:
    """Read and check a message file (see the module's docstring); MessageFileError names
    what is wrong. ``check_media``: each media URL must answer 2xx (its size, when said,
    is kept so a medium too large to be fetched by a provider goes as a link)."""
    env = os.environ if environ is None else environ
    file = Path(path)
    shown = str(path)
    try:
        size = file.stat().st_size
    except OSError:
        raise MessageFileError(f"no message file {shown!r}") from None
    if size > MESSAGE_FILE_BYTES:
        raise MessageFileError(f"{shown}: {size} bytes; a message file is at most {MESSAGE_FILE_BYTES}")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise MessageFileError(f"{shown}: not UTF-8 text") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise MessageFileError(f"{shown}: not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict) or "modules" not in data:
        raise MessageFileError(
            f"{shown}: a message file is a mapping with a list of modules (modules: [...])"
        )
    unknown = sorted(str(k) for k in data if k not in ("modules", "subject"))
    if unknown:
        raise MessageFileError(f"{shown}: unknown field {unknown[0]!r} (known: modules, subject)")
    raw_modules = data["modules"]
    if not isinstance(raw_modules, list) or not raw_modules:
        raise MessageFileError(f"{shown}: modules must be a list of at least one module")
    reader = _Reader(shown, file.resolve().parent, env)
    modules = [reader.module(position, raw) for position, raw in enumerate(raw_modules, 1)]
    subject = reader.string("subject", data.get("subject"), "subject", required=False)
    if check_media:
        modules = asyncio.run(_check_media(shown, modules, env, client))
    return LoadedMessage(ComposedMessage(tuple(modules), subject), reader.files, shown)


async def _check_media(
    shown: str, modules: list[ComposedModule], environ: Mapping[str, str], client: httpx.AsyncClient | None
) -> list[ComposedModule]:
    """Each media URL answers 2xx (HEAD, else a one-byte GET); its size when said."""
    own = client is None
    http = client or guarded_client(
        httpx.Timeout(10.0, connect=5.0), policy=AddressPolicy.from_env(environ), follow_redirects=True
    )
    try:
        sizes = await asyncio.gather(
            *(_probe(http, m.url) if m.url else _none() for m in modules), return_exceptions=True
        )
    finally:
        if own:
            await http.aclose()
    out = []
    for position, (module, size) in enumerate(zip(modules, sizes, strict=True), 1):
        if isinstance(size, BaseException):
            problem = str(size) if isinstance(size, FeedcastError | _Unreachable) else type(size).__name__
            raise MessageFileError(f"{shown}: module {position} ({module.kind}): {module.kind}: {problem}")
        out.append(_replace(module, size=size) if size is not None else module)
    return out


class _Unreachable(Exception):
    pass


async def _none() -> None:
    return None


async def _probe(client: httpx.AsyncClient, url: str) -> int | None:
    try:
        response = await client.head(url)
        if response.status_code in (403, 405, 501):  # servers that refuse HEAD
            response = await client.get(url, headers={"Range": "bytes=0-0"})
    except httpx.HTTPError as exc:
        raise _Unreachable(f"{url} cannot be reached ({type(exc).__name__}: {exc})") from None
    if not 200 <= response.status_code < 300:
        raise _Unreachable(f"{url} answers {response.status_code}")
    if response.status_code == 206:  # "Content-Range: bytes 0-0/TOTAL"
        length = response.headers.get("content-range", "").rpartition("/")[2]
    else:
        length = response.headers.get("content-length", "")
    return int(length) if length.isdigit() else None


# --------------------------------------------------------------------------- checking


def check_for_formats(
    loaded: LoadedMessage | ComposedMessage, formats: Sequence[str], environ: Mapping[str, str] | None = None
) -> list[str]:
    """MessageFileError for what a format cannot take (a caption over its limit, a call
    its provider would refuse); the warnings of what each leaves out."""
    message = loaded.message if isinstance(loaded, LoadedMessage) else loaded
    shown = loaded.path if isinstance(loaded, LoadedMessage) and loaded.path else "message"
    warnings: list[str] = []
    for fmt in dict.fromkeys(formats):
        label = get_format(fmt).label
        limit = _CAPTION_LIMITS.get(fmt)
        for position, module in enumerate(message.modules, 1):
            if limit is not None and module.caption:
                size = telegram_text_length(to_telegram(module.caption))
                if size > limit:
                    raise MessageFileError(
                        f"{shown}: module {position} ({module.kind}): caption is {size} characters;"
                        f" {label} takes at most {limit}"
                    )
        context = RenderContext(unsubscribe_url=_unsubscribe(fmt))
        composed = compose(message, fmt, context, file_urls=file_urls(message, environ))
        warnings.extend(f"{label}: {w}" for w in composed.warnings)
        try:
            checked = checked_calls(composed.message, media_sizes=_sizes(message, environ))
        except PayloadError as exc:
            raise MessageFileError(f"{shown}: {label}: {exc}") from None
        for number, (call, error) in enumerate(checked, 1):
            if error is not None:
                raise MessageFileError(f"{shown}: {label} call {number} ({call.method}): {error}")
    return warnings


def file_urls(message: ComposedMessage, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The public link of each uploaded file (``feedcast web``'s ``/f/``): what a file goes
    as where it cannot be uploaded."""
    base = public_url(environ)
    return {
        m.upload.sha256: f"{base}/f/{m.upload.sha256}/{quote(m.upload.name)}"
        for m in message.modules
        if m.upload is not None
    }


def _unsubscribe(fmt: str) -> str | None:
    return UNSUBSCRIBE_PLACEHOLDER if get_format(fmt).unsubscribe_link else None


def _sizes(message: ComposedMessage, environ: Mapping[str, str] | None = None) -> dict[str, int]:
    """The sizes of the media URLs (what their servers said; an upload's public link, its
    file's): a medium too large for a provider to fetch goes as a link."""
    sizes = {m.url: m.size for m in message.modules if m.url and m.size}
    links = file_urls(message, environ)
    sizes.update({links[m.upload.sha256]: m.upload.size for m in message.modules if m.upload is not None})
    return sizes


# --------------------------------------------------------------------------- when


def parse_at(value: str, timezone: str, *, now: datetime | None = None) -> tuple[datetime, str]:
    """``--at`` as an instant (UTC) and how it reads: a local date and time in
    ``timezone`` (``2027-03-28T09:30``), or an ISO time with its own offset.

    A local time that does not exist (the clocks jump over it) is refused; one that
    exists twice (the clocks go back) is the first of the two, and the reading says so.
    A time in the past is refused."""
    zone = parse_timezone(timezone)
    try:
        given = datetime.fromisoformat(value.strip().replace(" ", "T", 1))
    except ValueError:
        raise InvalidValue(f"--at {value!r} is not a date and time such as 2027-01-15T09:30") from None
    if given.tzinfo is not None:
        instant = given.astimezone(UTC)
        reading = f"{instant.astimezone(zone):%Y-%m-%d %H:%M %Z} ({timezone})"
    else:
        instant, reading = _local_instant(given, zone, timezone)
    now = now or datetime.now(UTC)
    if instant <= now - timedelta(seconds=1):
        raise InvalidValue(f"--at {value} ({reading}) is in the past")
    return instant, reading


def _local_instant(given: datetime, zone: ZoneInfo, timezone: str) -> tuple[datetime, str]:
    first = given.replace(tzinfo=zone, fold=0)
    second = given.replace(tzinfo=zone, fold=1)
    back_first = first.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    if back_first != given and second.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != given:
        raise InvalidValue(
            f"--at {given:%Y-%m-%d %H:%M} does not exist in {timezone}: the clocks skip it"
            f" (from {first.astimezone(UTC).astimezone(zone):%H:%M %Z}); pick another time"
        )
    instant = first.astimezone(UTC)
    reading = f"{first:%Y-%m-%d %H:%M} {first.tzname()} ({timezone})"
    if first.utcoffset() != second.utcoffset():
        reading += f", the first of the two {given:%H:%M}s (the clocks go back that night)"
    return instant, reading


# --------------------------------------------------------------------------- create


def create_composed(
    store: Store,
    name: str,
    *,
    channels: Sequence[str],
    loaded: LoadedMessage,
    audience: str | None = None,
    at: str | None = None,
    timezone: str = "UTC",
    locale: str | None = None,
    message_tag: str | None = None,
    now: datetime | None = None,
    replace: bool = False,
    environ: Mapping[str, str] | None = None,
) -> tuple[ComposedCampaign, list[str]]:
    """Record a composed campaign after checking its message against every channel's
    provider: the campaign, and what the channels leave out (warnings)."""
    if not channels:
        raise InvalidValue("name at least one channel: --channel NAME")
    if locale is not None:
        parse_locale(locale)
    parse_timezone(timezone)
    configs = [store.get_channel(c) for c in dict.fromkeys(channels)]
    formats = [_format_of(c) for c in configs]
    warnings = check_for_formats(loaded, formats, environ)
    send_at, reading = (None, None)
    if at is not None:
        send_at, reading = parse_at(at, timezone, now=now)
    composed = store.add_composed(
        name,
        channels=[c.name for c in configs],
        message=loaded.message,
        files=loaded.files,
        audience=audience,
        locale=locale,
        timezone=timezone,
        send_at=send_at,
        send_at_local=reading,
        message_tag=message_tag,
        source_file=loaded.path,
        replace=replace,
    )
    return composed, warnings


def _format_of(config: ChannelConfig) -> str:
    return make_channel(config, {}).format


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True, slots=True)
class PlanPart:
    """One campaign a composed campaign makes: a channel and a language of its audience."""

    channel: ChannelConfig
    fmt: str
    locale: str
    fallback: str  # the language of the channel's subscribers whose own is unknown
    recipients: int
    composed: Composed
    calls: tuple[ProviderCall, ...]
    errors: tuple[str | None, ...]

    @property
    def problem(self) -> str | None:
        return next((e for e in self.errors if e is not None), None)


@dataclass(frozen=True, slots=True)
class ComposedPlan:
    """What ``campaign send`` would send now: one part per channel and language."""

    campaign: ComposedCampaign
    parts: tuple[PlanPart, ...]

    @property
    def recipients(self) -> int:
        return sum(p.recipients for p in self.parts)

    @property
    def reason(self) -> str | None:
        """Why nothing would be sent (None: something would)."""
        if self.campaign.status in ("sent", "cancelled"):
            return f"campaign {self.campaign.name!r} is {self.campaign.status}"
        broken = next((p for p in self.parts if p.problem), None)
        if broken is not None:
            return f"channel {broken.channel.name!r}: {broken.problem}"
        if self.recipients == 0:
            who = f"tagged {self.campaign.audience!r} " if self.campaign.audience else ""
            return f"no active subscriber {who}on {', '.join(self.campaign.channels)}"
        return None

    @property
    def verdict(self) -> str:
        """What ``campaign send`` would do now, in one line."""
        name = self.campaign.name
        if self.reason is not None:
            return f"campaign send {name} would send nothing: {self.reason}"
        parts = [p for p in self.parts if p.recipients]
        channels = len({p.channel.name for p in parts})
        languages = len({p.locale for p in parts})
        return (
            f"campaign send {name} would send {self.recipients} message(s) to as many subscribers"
            f" on {channels} channel(s), in {languages} language(s)"
        )

    def store_parts(self) -> list[ComposedPart]:
        return [
            ComposedPart(
                channel=p.channel,
                locale=p.locale,
                fmt=p.fmt,
                calls=[(0, c) for c in p.calls],
                messages=1,
                fallback=p.fallback,
                warnings=list(p.composed.warnings),
            )
            for p in self.parts
            if p.recipients
        ]


def plan_composed(
    store: Store,
    composed: ComposedCampaign,
    *,
    now: datetime | None = None,
    locales: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ComposedPlan:
    """The campaign as ``send`` would make it now: for each channel, one render per
    language its audience reads (``locales`` instead: those, e.g. for a preview)."""
    parts = []
    for name in composed.channels:
        config = store.get_channel(name)
        fmt = _format_of(config)
        fallback = composed.locale or str(config.settings.get("locale") or "en")
        audience = store.composed_audience(composed, config, fallback)
        wanted = list(locales) if locales else (list(audience) or [fallback])
        for locale in wanted:
            parts.append(
                _part(composed, config, fmt, locale, fallback, audience.get(locale, 0), now, environ)
            )
    return ComposedPlan(composed, tuple(parts))


def _part(
    composed: ComposedCampaign,
    config: ChannelConfig,
    fmt: str,
    locale: str,
    fallback: str,
    recipients: int,
    now: datetime | None,
    environ: Mapping[str, str] | None,
) -> PlanPart:
    context = RenderContext(
        timezone=composed.timezone, locale=_known_locale(locale), now=now, unsubscribe_url=_unsubscribe(fmt)
    )
    rendered = compose(composed.message, fmt, context, file_urls=file_urls(composed.message, environ))
    try:
        checked = checked_calls(
            rendered.message, media_sizes=_sizes(composed.message, environ), locale=context.locale
        )
    except PayloadError as exc:
        return PlanPart(config, fmt, locale, fallback, recipients, rendered, (), (str(exc),))
    calls = tuple(call for call, _error in checked)
    return PlanPart(config, fmt, locale, fallback, recipients, rendered, calls, tuple(e for _c, e in checked))


def _known_locale(locale: str) -> str:
    """A subscriber's language as a locale Babel knows (``en`` for one it does not)."""
    try:
        parse_locale(locale)
    except InvalidValue:
        return "en"
    return locale


# --------------------------------------------------------------------------- sending


@dataclass(slots=True)
class ComposedRun:
    """What a send of a composed campaign did: its campaigns (one per channel and
    language), or why nothing went out."""

    campaign: str
    campaigns: list[CampaignResult] = field(default_factory=list)
    note: str | None = None
    error: str | None = None


def send_composed(
    store: Store,
    name: str,
    *,
    settings: SendSettings | None = None,
    trigger: str = "manual",
    now: datetime | None = None,
    environ: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    early: bool = False,
) -> ComposedRun:
    """Send a composed campaign: start it (its campaigns and deliveries written in one
    transaction) unless it has started, then deliver what is pending; a rerun after a
    crash or a stop resumes it. A scheduled campaign that is not due goes out only
    ``early``. One process at a time per campaign (a lease in the store)."""
    now = now or datetime.now(UTC)
    composed = store.get_composed(name)
    if composed.status in ("sent", "cancelled"):
        raise InvalidValue(f"campaign {name!r} is {composed.status}: nothing to send")
    if composed.status == "scheduled" and composed.send_at and composed.send_at > now and not early:
        raise InvalidValue(
            f"campaign {name!r} is scheduled for {composed.send_at_local}: `feedcast run` or"
            f" `feedcast serve` sends it then (`feedcast campaign send {name} --now` sends it now)"
        )
    with hold_lease(store.claim_composed, store.release_composed, composed.id, f"campaign {name!r}"):
        return _send(store, store.get_composed(name), settings, trigger, now, environ, progress)


def _send(
    store: Store,
    composed: ComposedCampaign,
    settings: SendSettings | None,
    trigger: str,
    now: datetime,
    environ: Mapping[str, str] | None,
    progress: Progress | None,
) -> ComposedRun:
    run = ComposedRun(composed.name)
    resumed = composed.status == "sending"
    never_started = composed.status == "stopped" and not store.composed_campaign_ids(composed.id)
    if composed.status in ("draft", "scheduled") or never_started:  # (stopped: nothing could go at its time)
        plan = plan_composed(store, composed, now=now, environ=environ)
        if plan.reason is not None:
            if trigger == "at":  # its time came and nothing can go: say so once, not every minute
                store.finish_composed(composed.id, "stopped", plan.reason)
            run.note = plan.reason
            return run
        ids = store.start_composed(composed, plan.store_parts(), trigger=trigger, now=now)
    elif composed.status in ("sending", "stopped"):
        ids = store.composed_campaign_ids(composed.id)
    else:
        run.note = f"campaign {composed.name!r} is {composed.status}"
        return run
    for campaign_id in ids:
        if store.campaign(campaign_id).pending == 0:
            continue
        run.campaigns.append(
            deliver(
                store, campaign_id, settings=settings, environ=environ, progress=progress, resumed=resumed
            )
        )
    infos = [store.campaign(campaign_id) for campaign_id in ids]
    stopped = next((i for i in infos if i.status == "stopped"), None)
    if not any(i.pending for i in infos):
        store.finish_composed(composed.id, "sent")
    else:
        error = stopped.error if stopped is not None else None
        store.finish_composed(composed.id, "sending", error)
        run.error = error
    return run


def run_due_composed(
    store: Store,
    *,
    now: datetime | None = None,
    settings: SendSettings | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[ComposedRun]:
    """Send the composed campaigns whose time has come, and resume unfinished ones; one
    broken campaign never stops the others."""
    now = now or datetime.now(UTC)
    runs = []
    for composed in store.due_composed(now):
        trigger = "at" if composed.status == "scheduled" else "resume"
        try:
            runs.append(
                send_composed(
                    store, composed.name, settings=settings, trigger=trigger, now=now, environ=environ
                )
            )
        except AutomationBusy as exc:
            runs.append(ComposedRun(composed.name, note=str(exc)))
        except FeedcastError as exc:
            runs.append(ComposedRun(composed.name, error=str(exc)))
    return runs
