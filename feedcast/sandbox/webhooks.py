"""Webhook receivers on loopback: Slack incoming webhooks, Discord webhooks and generic
JSON hooks, faithful to the providers' paths, limits, error bodies and rate limiting.

``WebhookReceiver().app`` is one Starlette app serving:

``POST /services/{T}/{B}/{X}`` (Slack)
    JSON ``{"text", "blocks"}`` -> 200 ``ok`` (text/plain). Errors are plain-text codes:
    400 ``invalid_payload`` (not JSON, > 50 blocks, a section text over 3000, an unknown
    block type...), 400 ``no_text`` (neither text nor blocks), 403
    ``action_prohibited``, 404 ``no_service`` (revoked) / ``channel_not_found``, 410
    ``channel_is_archived``. About 1 message/s per webhook with short bursts tolerated
    (a token bucket of ``slack_burst`` refilled at 1/s), else 429 ``rate_limited`` with
    ``Retry-After`` (whole seconds).
``POST /api/v10/webhooks/{id}/{token}[?wait=true]`` (Discord)
    ``content`` <= 2000, ``embeds`` <= 10 (title 256, description 4096, 6000 in all),
    else 400 ``{"code": 50035, "message": "Invalid Form Body", "errors": {...}}``; an
    empty message 400 code 50006; bad JSON 400 code 50109. Success: 200 with the message
    object (``id``) when ``wait=true``, else 204. Every answer of a known webhook carries
    ``X-RateLimit-Limit`` (5), ``-Remaining``, ``-Reset-After`` (seconds, 3 decimals),
    ``-Bucket``; the bucket holds 5 requests and empties 2 s after its first one; over it:
    429 ``{"message": "You are being rate limited.", "retry_after", "global": false}`` plus
    ``Retry-After``. Unknown or deleted webhook: 404 ``{"code": 10015, "message":
    "Unknown Webhook"}``; wrong token: 401 code 50027. ``GET`` the same path returns the
    webhook object (what ``channel test`` reads).
``POST /hooks/{name}`` (generic JSON)
    Records body and headers; with a signing secret configured, verifies
    ``X-Feedcast-Signature`` with :func:`channels.webhook.verify` (401 when missing or
    bad, the record says ``verified``); answers the hook's configured status (200
    ``{"ok": true, "id": ...}`` by default; script 410, 500... per hook); 400 for a body
    that is not JSON, 413 over ``max_body``; an optional per-hook ``rate`` (per second)
    answers 429 with ``Retry-After``. ``HEAD`` / ``OPTIONS`` answer without recording.
    Repeated ``X-Feedcast-Delivery`` ids are accepted again and counted as duplicates.

With ``auto_hooks=True`` (the default) a request to an unknown Slack path, Discord id or
JSON name creates an active hook on the fly (a Discord hook then takes the token of that
first request); with ``auto_hooks=False`` unknown hooks answer 404 as the providers do.
:meth:`WebhookReceiver.remove` makes a hook gone (Slack 404 ``no_service``, Discord
10015, JSON 410) without forgetting what it received.

Options: ``limits`` (False: never answer 429, still count what went over the limit),
``fault_rate`` (that share of deliveries answers 500), ``drop_rate`` (that share of
deliveries is dropped: the receiver reads the request, then aborts the TCP connection
without answering, so the client sees "server disconnected"; the delivery is not
recorded), ``seed`` (faults and drops are drawn from ``random.Random(seed)``),
``clock`` (what the windows and buckets read, :mod:`feedcast.kernel.clock`: a ``FakeClock``
makes a burst arrive at one instant, however slow the machine).

Control API (JSON):

- ``GET /_sandbox/hooks``: the hooks; ``POST /_sandbox/hooks`` configures one (or a
  list): ``{"kind": "slack", "path": "T1/B1/X1", "status": "archived"}``, ``{"kind":
  "discord", "id": "1", "token": "t", "name": "news"}``, ``{"kind": "json", "name":
  "orders", "secret": "...", "status": 410, "rate": 5}``; the answer gives each hook's
  ``name`` and ``path``;
- ``GET /_sandbox/received?hook=NAME[&all=1]``: what the hook accepted (``all``: also the
  requests it refused); without ``hook``: every hook;
- ``GET /_sandbox/stats[?hook=NAME]``: per hook ``requests``, ``accepted``, ``refused``,
  ``rate_limited``, ``faults``, ``dropped``, ``duplicates``, ``max_per_second`` (the most
  requests in any sliding 1-second window), ``max_per_period`` (same over the provider's
  window: 2 s for Discord), ``over_limit`` (requests beyond the provider's published
  limit in such a window, answered 429 or not), plus totals;
- ``POST /_sandbox/options``: change ``limits`` / ``fault_rate`` / ``drop_rate`` /
  ``seed``; ``POST /_sandbox/reset``: forget records, statistics and rate state
  (``{"hooks": true}``: forget the hooks too).

Hook names: ``slack:T/B/X``, ``discord:ID``, ``json:NAME``. Bookkeeping per request is
O(1) (amortised: sliding windows are deques); records are capped at ``keep`` per hook.
"""

from __future__ import annotations

import itertools
import json
import math
import secrets as _secrets
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Unpack

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from channels.webhook import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from feedcast.sandbox.base import (
    ControlError,
    Dropped,
    Emulator,
    EmulatorSettings,
    FixedWindow,
    TokenBucket,
    Window,
    control,
    control_body,
    drop_connection,
    flag,
)
from layouts.text import utf16_len

__all__ = ["Hook", "Received", "WebhookReceiver"]

SLACK_BLOCKS = 50
SLACK_SECTION = 3000
SLACK_FIELD = 2000
SLACK_FIELDS = 10
SLACK_HEADER = 150
SLACK_ALT_TEXT = 2000
SLACK_URL = 3000
SLACK_ACTIONS = 25
SLACK_BUTTON_TEXT = 75
SLACK_CONTEXT = 10
SLACK_ATTACHMENTS = 100
SLACK_RATE = 1.0  # messages per second per webhook
SLACK_BURST = 3  # short bursts tolerated on top

DISCORD_CONTENT = 2000
DISCORD_EMBEDS = 10
DISCORD_TITLE = 256
DISCORD_DESCRIPTION = 4096
DISCORD_EMBED_TOTAL = 6000
DISCORD_LIMIT = 5
DISCORD_PERIOD = 2.0
DISCORD_EPOCH_MS = 1_420_070_400_000

SLACK_STATUSES: dict[str, tuple[int, str] | None] = {
    "active": None,
    "archived": (410, "channel_is_archived"),
    "revoked": (404, "no_service"),
    "deleted": (404, "channel_not_found"),
    "prohibited": (403, "action_prohibited"),
}
DISCORD_STATUSES = ("active", "deleted")
KINDS = ("slack", "discord", "json")

_SLACK_BLOCK_TYPES = frozenset(
    {
        "section",
        "image",
        "actions",
        "divider",
        "context",
        "header",
        "rich_text",
        "input",
        "file",
        "video",
        "markdown",
    }
)
_PHRASES = {
    400: "bad request",
    401: "unauthorized",
    403: "forbidden",
    404: "not found",
    409: "conflict",
    410: "gone",
    413: "payload too large",
    422: "unprocessable entity",
    429: "too many requests",
    500: "internal server error",
    502: "bad gateway",
    503: "service unavailable",
}


@dataclass(slots=True)
class Received:
    """One request a hook processed (dropped ones are not recorded)."""

    hook: str
    kind: str
    at: float  # wall-clock time
    status: int  # what the receiver answered
    body: Any  # the JSON body (None when it was not JSON)
    headers: dict[str, str]
    verified: bool | None = None  # JSON hooks with a secret: did the signature check out
    delivery: str | None = None  # X-Feedcast-Delivery
    duplicate: bool = False
    message_id: str | None = None
    raw: bytes = b""  # the body as received (what a signature covers)

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300

    def as_json(self) -> dict[str, Any]:
        return {
            "hook": self.hook,
            "kind": self.kind,
            "at": self.at,
            "status": self.status,
            "accepted": self.accepted,
            "body": self.body,
            "headers": self.headers,
            "verified": self.verified,
            "delivery": self.delivery,
            "duplicate": self.duplicate,
            "message_id": self.message_id,
            "raw": self.raw.decode("utf-8", "replace"),
        }


@dataclass(slots=True)
class Hook:
    """One receiving webhook: its configuration, its records, its counters."""

    kind: str  # slack | discord | json
    key: str  # Slack "T/B/X", Discord id, JSON name
    status: str | int = "active"  # Slack/Discord: a status name; JSON: the HTTP status it answers
    token: str | None = None  # Discord
    title: str = "feedcast"  # Discord webhook name
    secret: str | None = None  # JSON signing secret
    rate: int | None = None  # JSON: requests per second (None: unlimited)
    keep: int = 10_000
    received: deque[Received] = field(default_factory=deque)
    deliveries: set[str] = field(default_factory=set)
    counters: dict[str, int] = field(default_factory=dict)
    second: Window = field(default_factory=lambda: Window(1.0))  # arrivals
    period: Window = field(default_factory=lambda: Window(1.0))  # arrivals in the provider's window
    admitted: Window = field(default_factory=lambda: Window(1.0))  # JSON rate
    slack: TokenBucket = field(default_factory=lambda: TokenBucket(SLACK_BURST, 0.0))
    discord: FixedWindow = field(default_factory=lambda: FixedWindow(DISCORD_LIMIT, DISCORD_PERIOD))

    def __post_init__(self) -> None:
        self.received = deque(maxlen=self.keep)
        self.reset()

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.key}"

    @property
    def path(self) -> str:
        """The URL path to post to (append it to the server's base URL)."""
        if self.kind == "slack":
            return f"/services/{self.key}"
        if self.kind == "discord":
            return f"/api/v10/webhooks/{self.key}/{self.token}"
        return f"/hooks/{self.key}"

    @property
    def limit(self) -> tuple[int, float] | None:
        """The provider's published limit: (requests, per seconds)."""
        if self.kind == "slack":
            return (int(SLACK_RATE), 1.0)
        if self.kind == "discord":
            return (DISCORD_LIMIT, DISCORD_PERIOD)
        return (self.rate, 1.0) if self.rate else None

    def reset(self) -> None:
        self.received.clear()
        self.deliveries.clear()
        self.counters = dict.fromkeys(
            (
                "requests",
                "accepted",
                "refused",
                "rate_limited",
                "faults",
                "dropped",
                "duplicates",
                "over_limit",
            ),
            0,
        )
        self.second = Window(1.0)
        self.period = Window(DISCORD_PERIOD if self.kind == "discord" else 1.0)
        self.admitted = Window(1.0)
        self.slack = TokenBucket(SLACK_BURST, 0.0)
        self.discord = FixedWindow(DISCORD_LIMIT, DISCORD_PERIOD)

    def stats(self) -> dict[str, Any]:
        limit = self.limit
        return {
            **self.counters,
            "max_per_second": self.second.peak,
            "max_per_period": self.period.peak,
            "period": self.period.period,
            "limit": limit[0] if limit else None,
        }

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "path": self.path, "status": self.status}
        if self.kind == "discord":
            out["id"], out["token"], out["title"] = self.key, self.token, self.title
        if self.kind == "json":
            out["signed"], out["rate"] = self.secret is not None, self.rate
        return out


def _answer(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    if status == 204 or body is None:
        return Response(status_code=status, headers=dict(headers or {}))
    if isinstance(body, str):
        return PlainTextResponse(body, status_code=status, headers=dict(headers or {}))
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


# --------------------------------------------------------------------------- payload checks


def _slack_text_obj(obj: Any, limit: int, *, plain_only: bool = False) -> bool:
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        return False
    kinds = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    return obj.get("type") in kinds and 1 <= len(obj["text"]) <= limit


def _slack_url(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= SLACK_URL


def _slack_block(block: Any) -> bool:
    if not isinstance(block, dict) or block.get("type") not in _SLACK_BLOCK_TYPES:
        return False
    block_id = block.get("block_id")
    if block_id is not None and (not isinstance(block_id, str) or len(block_id) > 255):
        return False
    kind = block["type"]
    if kind == "section":
        text, fields = block.get("text"), block.get("fields")
        if text is None and fields is None:
            return False
        if text is not None and not _slack_text_obj(text, SLACK_SECTION):
            return False
        if fields is not None and not (
            isinstance(fields, list)
            and 0 < len(fields) <= SLACK_FIELDS
            and all(_slack_text_obj(f, SLACK_FIELD) for f in fields)
        ):
            return False
        accessory = block.get("accessory")
        if isinstance(accessory, dict) and accessory.get("type") == "image":
            return _slack_url(accessory.get("image_url")) and isinstance(accessory.get("alt_text"), str)
        return True
    if kind == "header":
        return _slack_text_obj(block.get("text"), SLACK_HEADER, plain_only=True)
    if kind == "image":
        alt = block.get("alt_text")
        return (
            (_slack_url(block.get("image_url")) or isinstance(block.get("slack_file"), dict))
            and isinstance(alt, str)
            and len(alt) <= SLACK_ALT_TEXT
        )
    if kind == "actions":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 0 < len(elements) <= SLACK_ACTIONS:
            return False
        for element in elements:
            if not isinstance(element, dict) or not isinstance(element.get("type"), str):
                return False
            if element["type"] == "button":
                if not _slack_text_obj(element.get("text"), SLACK_BUTTON_TEXT, plain_only=True):
                    return False
                if "url" in element and not _slack_url(element["url"]):
                    return False
        return True
    if kind == "context":
        elements = block.get("elements")
        return isinstance(elements, list) and 0 < len(elements) <= SLACK_CONTEXT
    return True


def slack_error(body: Any) -> str | None:
    """The code Slack answers for this payload (None: it would be posted)."""
    if not isinstance(body, dict):
        return "invalid_payload"
    text, blocks, attachments = body.get("text"), body.get("blocks"), body.get("attachments")
    if text is not None and not isinstance(text, str):
        return "invalid_payload"
    if blocks is not None:
        if not isinstance(blocks, list) or len(blocks) > SLACK_BLOCKS:
            return "invalid_payload"
        if not all(_slack_block(b) for b in blocks):
            return "invalid_payload"
    if attachments is not None:
        if not isinstance(attachments, list):
            return "invalid_payload"
        if len(attachments) > SLACK_ATTACHMENTS:
            return "too_many_attachments"
    if not (text or "").strip() and not blocks and not attachments:
        return "no_text"
    return None


def _max_length(limit: int) -> dict[str, Any]:
    return {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": f"Must be {limit} or fewer in length."}]}


def _type_error(kind: str, message: str) -> dict[str, Any]:
    return {"_errors": [{"code": kind, "message": message}]}


def _field_error(
    value: Any, kind: type[Any], type_error: tuple[str, str], size: Callable[[Any], int], limit: int
) -> dict[str, Any] | None:
    """Discord's error for a top-level field given (None: absent or fine): not of its
    ``kind`` (``type_error``: the code and message), or longer than ``limit``."""
    if value is None:
        return None
    if not isinstance(value, kind):
        return _type_error(*type_error)
    return _max_length(limit) if size(value) > limit else None


def _embed_size(embed: Mapping[str, Any]) -> int:
    size = 0
    for key in ("title", "description"):
        if isinstance(embed.get(key), str):
            size += utf16_len(embed[key])
    for key, sub in (("footer", "text"), ("author", "name")):
        part = embed.get(key)
        if isinstance(part, dict) and isinstance(part.get(sub), str):
            size += utf16_len(part[sub])
    for item in embed.get("fields") or ():
        if isinstance(item, dict):
            size += sum(utf16_len(item[k]) for k in ("name", "value") if isinstance(item.get(k), str))
    return size


def discord_error(body: Any) -> dict[str, Any] | None:
    """The 400 body Discord answers for this payload (None: it would be posted)."""
    if not isinstance(body, dict):
        return {
            "code": 50035,
            "message": "Invalid Form Body",
            "errors": _type_error("DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType"),
        }
    errors: dict[str, Any] = {}
    content = body.get("content")
    error = _field_error(content, str, ("BASE_TYPE_STRING", "Must be a string."), utf16_len, DISCORD_CONTENT)
    if error is not None:
        errors["content"] = error
    embeds = body.get("embeds")
    error = _field_error(embeds, list, ("LIST_TYPE_CONVERT", "Must be an array."), len, DISCORD_EMBEDS)
    if error is not None:
        errors["embeds"] = error
    elif embeds is not None:
        per: dict[str, Any] = {}
        for i, embed in enumerate(embeds):
            if not isinstance(embed, dict):
                per[str(i)] = _type_error("DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
                continue
            bad: dict[str, Any] = {}
            for key, limit in (("title", DISCORD_TITLE), ("description", DISCORD_DESCRIPTION)):
                value = embed.get(key)
                if value is not None and (not isinstance(value, str) or utf16_len(value) > limit):
                    bad[key] = _max_length(limit)
            if bad:
                per[str(i)] = bad
        if per:
            errors["embeds"] = per
        elif sum(_embed_size(e) for e in embeds) > DISCORD_EMBED_TOTAL:
            errors["embeds"] = _type_error(
                "MAX_EMBED_SIZE_EXCEEDED", f"Embed size exceeds maximum size of {DISCORD_EMBED_TOTAL}"
            )
    if errors:
        return {"code": 50035, "message": "Invalid Form Body", "errors": errors}
    if not (isinstance(content, str) and content.strip()) and not embeds:
        return {"code": 50006, "message": "Cannot send an empty message"}
    return None


# --------------------------------------------------------------------------- the receiver


class WebhookReceiver(Emulator):
    """``receiver = WebhookReceiver(); hook = receiver.add_discord()``, then
    ``with receiver.serve() as server: post(server.base_url + hook.path)``."""

    name: ClassVar[str] = "webhooks"
    switches: ClassVar[tuple[str, ...]] = ("auto_hooks",)

    def __init__(
        self,
        *,
        auto_hooks: bool = True,
        slack_burst: int = SLACK_BURST,
        max_body: int = 1_000_000,
        keep: int = 10_000,
        tolerance: float = 300,
        **settings: Unpack[EmulatorSettings],
    ) -> None:
        super().__init__(**settings)
        self.auto_hooks = auto_hooks
        self.slack_burst = slack_burst
        self.max_body = max_body
        self.keep = keep
        self.tolerance = tolerance
        self._hooks: dict[str, Hook] = {}
        self._unknown = 0
        self._ids = itertools.count(1)
        self.app = Starlette(
            routes=[
                Route("/services/{t}/{b}/{x}", self._slack, methods=["POST"]),
                Route("/api/v{version:int}/webhooks/{id}/{token}", self._discord, methods=["POST", "GET"]),
                Route("/api/webhooks/{id}/{token}", self._discord, methods=["POST", "GET"]),
                Route("/hooks/{name}", self._json, methods=["POST", "HEAD", "OPTIONS"]),
                Route("/_sandbox/hooks", self._ctl_hooks, methods=["GET", "POST"]),
                Route("/_sandbox/received", self._ctl_received, methods=["GET"]),
                Route("/_sandbox/stats", self._ctl_stats, methods=["GET"]),
                Route("/_sandbox/options", self._http_options, methods=["GET", "POST"]),
                Route("/_sandbox/reset", self._ctl_reset, methods=["POST"]),
            ]
        )

    server = Emulator.serve  # its first name

    # ----------------------------------------------------------------- configuration

    def _put(self, hook: Hook) -> Hook:
        with self._lock:
            old = self._hooks.get(hook.name)
            if old is not None:  # reconfigure, keep what it received
                old.status, old.token, old.title = hook.status, hook.token, hook.title
                old.secret, old.rate = hook.secret, hook.rate
                return old
            self._hooks[hook.name] = hook
            return hook

    def add_slack(self, path: str | None = None, status: str = "active") -> Hook:
        """A Slack incoming webhook at ``/services/{path}`` (``path`` "T…/B…/X…", with or
        without the ``/services/`` prefix; None: a fresh one). ``status``: active,
        archived (410), revoked (404 no_service), deleted (404 channel_not_found),
        prohibited (403)."""
        if status not in SLACK_STATUSES:
            raise ValueError(f"Slack hook status must be one of {', '.join(SLACK_STATUSES)}")
        if path is None:
            path = f"T{_secrets.token_hex(4).upper()}/B{_secrets.token_hex(4).upper()}/{_secrets.token_urlsafe(18)}"
        key = path.strip().removeprefix("/").removeprefix("services/").strip("/")
        if key.count("/") != 2 or not all(key.split("/")):
            raise ValueError("a Slack webhook path is T…/B…/X…")
        return self._put(Hook("slack", key, status=status, keep=self.keep))

    def add_discord(
        self,
        id: str | int | None = None,
        token: str | None = None,
        *,
        name: str = "feedcast",
        status: str = "active",
    ) -> Hook:
        """A Discord webhook ``/api/v10/webhooks/{id}/{token}`` (fresh id and token when
        None). ``status``: active or deleted (404 10015)."""
        if status not in DISCORD_STATUSES:
            raise ValueError(f"Discord hook status must be one of {', '.join(DISCORD_STATUSES)}")
        key = str(id) if id is not None else self._snowflake()
        return self._put(
            Hook(
                "discord",
                key,
                status=status,
                token=token or _secrets.token_urlsafe(51),
                title=name,
                keep=self.keep,
            )
        )

    def add_json(
        self, name: str, secret: str | None = None, status: int = 200, *, rate: int | None = None
    ) -> Hook:
        """A JSON hook ``/hooks/{name}`` answering ``status``; with ``secret`` it demands a
        valid ``X-Feedcast-Signature``; ``rate``: requests per second before 429."""
        if not 200 <= int(status) <= 599:
            raise ValueError("a JSON hook's status is an HTTP status (200..599)")
        if not name or "/" in name:
            raise ValueError("a JSON hook name is one path segment")
        return self._put(
            Hook("json", name, status=int(status), secret=secret or None, rate=rate or None, keep=self.keep)
        )

    def configure(self, spec: Mapping[str, Any]) -> Hook:
        """A hook from a JSON description (the control API's ``POST /_sandbox/hooks``)."""
        kind = spec.get("kind")
        if kind == "slack":
            return self.add_slack(spec.get("path"), status=str(spec.get("status", "active")))
        if kind == "discord":
            return self.add_discord(
                spec.get("id"),
                spec.get("token"),
                name=str(spec.get("name", "feedcast")),
                status=str(spec.get("status", "active")),
            )
        if kind == "json":
            rate = spec.get("rate")
            return self.add_json(
                str(spec.get("name", "")),
                spec.get("secret"),
                int(spec.get("status", 200)),
                rate=int(rate) if rate else None,
            )
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")

    def remove(self, name: str) -> Hook:
        """Make a hook gone (Slack: revoked, Discord: deleted, JSON: 410), keeping its records."""
        with self._lock:
            hook = self._hooks[name]
            hook.status = {"slack": "revoked", "discord": "deleted"}.get(hook.kind, 410)
            return hook

    def hook(self, name: str) -> Hook:
        return self._hooks[name]

    @property
    def hooks(self) -> list[Hook]:
        with self._lock:
            return list(self._hooks.values())

    def received(self, name: str, *, include_refused: bool = False) -> list[Received]:
        """What a hook accepted, oldest first (``include_refused``: every processed request)."""
        with self._lock:
            records = list(self._hooks[name].received)
        return records if include_refused else [r for r in records if r.accepted]

    def stats(self, name: str | None = None) -> dict[str, Any]:
        """Counters of one hook, or ``{"totals", "hooks", "options"}``."""
        with self._lock:
            if name is not None:
                return self._hooks[name].stats()
            hooks = {h.name: h.stats() for h in self._hooks.values()}
            totals: dict[str, Any] = {"requests": self._unknown, "unknown": self._unknown}
            for stats in hooks.values():
                for key, value in stats.items():
                    if key in ("max_per_second", "max_per_period"):
                        totals[key] = max(totals.get(key, 0), value)
                    elif key not in ("period", "limit"):
                        totals[key] = totals.get(key, 0) + value
            return {"options": self.options(), "totals": totals, "hooks": hooks}

    def reset(self, *, hooks: bool = False) -> None:
        """Forget records, counters and rate state (``hooks``: the hooks as well)."""
        with self._lock:
            self._unknown = 0
            self._reseed(self.faults.seed)
            if hooks:
                self._hooks.clear()
            for hook in self._hooks.values():
                hook.reset()

    # ----------------------------------------------------------------- shared steps

    def _snowflake(self) -> str:
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        return str((ms << 22) | (next(self._ids) & 0x3FFFFF))

    def _find(self, kind: str, key: str, token: str | None = None) -> Hook | None:
        """The hook (created when auto); caller holds the lock."""
        name = f"{kind}:{key}"
        hook = self._hooks.get(name)
        if hook is None and self.auto_hooks:
            hook = Hook(kind, key, token=token, keep=self.keep)
            if kind == "json":
                hook.status = 200
            self._hooks[name] = hook
        return hook

    def _arrive(self, hook: Hook, now: float) -> None:
        """Count an arrival: windows, over-limit, then maybe drop or fault (raises _Drop)."""
        counters = hook.counters
        counters["requests"] += 1
        hook.second.hit(now)
        in_period = hook.period.hit(now)
        limit = hook.limit
        if limit is not None and in_period > limit[0]:
            counters["over_limit"] += 1
        if self.faults.drop():
            counters["dropped"] += 1
            raise Dropped

    def _fault(self, hook: Hook) -> bool:
        if self.faults.fault():
            hook.counters["faults"] += 1
            return True
        return False

    def _record(self, hook: Hook, status: int, body: Any, request: Request, raw: bytes, **extra: Any) -> None:
        hook.counters["accepted" if 200 <= status < 300 else "refused"] += 1
        hook.received.append(
            Received(
                hook.name, hook.kind, self.clock.time(), status, body, dict(request.headers), raw=raw, **extra
            )
        )

    @staticmethod
    def _parse(raw: bytes) -> tuple[bool, Any]:
        try:
            return True, json.loads(raw)
        except ValueError:
            return False, None

    async def _deliver(self, request: Request, handle: Callable[[bytes, float], Response]) -> Response:
        """Read the body, run ``handle(raw, now)`` under the lock, drop when it says so."""
        raw = await request.body()
        try:
            with self._lock:
                response: Response = handle(raw, self.clock.monotonic())
        except Dropped:
            await drop_connection(request.receive)
            return Response(status_code=500)  # never sent: the connection is gone
        return response

    # ----------------------------------------------------------------- Slack

    async def _slack(self, request: Request) -> Response:
        p = request.path_params
        key = f"{p['t']}/{p['b']}/{p['x']}"

        def handle(raw: bytes, now: float) -> Response:
            hook = self._find("slack", key)
            if hook is None:
                self._unknown += 1
                return _answer(404, "no_service")
            self._arrive(hook, now)
            if self._fault(hook):
                return _answer(500, "internal_error")
            ok, body = self._parse(raw)
            gone = SLACK_STATUSES.get(str(hook.status))
            if gone is not None:
                self._record(hook, gone[0], body, request, raw)
                return _answer(gone[0], gone[1])
            # the bucket: burst tokens refilled at SLACK_RATE per second
            wait = hook.slack.wait(now, float(self.slack_burst), SLACK_RATE)
            if wait > 0:
                if self.limits:
                    hook.counters["rate_limited"] += 1
                    return _answer(429, "rate_limited", {"Retry-After": str(max(1, math.ceil(wait)))})
            else:
                hook.slack.take()
            error = "invalid_payload" if not ok else slack_error(body)
            if error is not None:
                self._record(hook, 400, body, request, raw)
                return _answer(400, error)
            self._record(hook, 200, body, request, raw)
            return _answer(200, "ok")

        return await self._deliver(request, handle)

    # ----------------------------------------------------------------- Discord

    def _discord_bucket(self, hook: Hook, now: float) -> tuple[bool, dict[str, str]]:
        """Take one request from the hook's bucket: (allowed, rate-limit headers)."""
        allowed = hook.discord.take(now, enforce=self.limits)
        reset_after = hook.discord.reset_after(now)
        headers = {
            "X-RateLimit-Limit": str(DISCORD_LIMIT),
            "X-RateLimit-Remaining": str(hook.discord.remaining),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": f"wh{hook.key[-8:]}",
        }
        return allowed, headers

    async def _discord(self, request: Request) -> Response:
        key, token = str(request.path_params["id"]), str(request.path_params["token"])
        unknown = {"code": 10015, "message": "Unknown Webhook"}

        if request.method == "GET":
            with self._lock:
                hook = self._hooks.get(f"discord:{key}")
                if hook is None and self.auto_hooks:
                    hook = self._find("discord", key, token)
            if hook is None or hook.status == "deleted":
                return _answer(404, unknown)
            if hook.token != token:
                return _answer(401, {"code": 50027, "message": "Invalid Webhook Token"})
            return _answer(
                200,
                {
                    "application_id": None,
                    "avatar": None,
                    "channel_id": str(int(key) + 1) if key.isdigit() else "1",
                    "guild_id": str(int(key) + 2) if key.isdigit() else "2",
                    "id": key,
                    "name": hook.title,
                    "type": 1,
                    "token": hook.token,
                },
            )

        wait = request.query_params.get("wait", "").lower() in ("true", "1")

        def handle(raw: bytes, now: float) -> Response:
            hook = self._find("discord", key, token)
            if hook is None:
                self._unknown += 1
                return _answer(404, unknown)
            self._arrive(hook, now)
            allowed, headers = self._discord_bucket(hook, now)
            if self._fault(hook):
                return _answer(500, {"message": "500: Internal Server Error", "code": 0}, headers)
            ok, body = self._parse(raw)
            if hook.status == "deleted":
                self._record(hook, 404, body, request, raw)
                return _answer(404, unknown, headers)
            if hook.token != token:
                self._record(hook, 401, body, request, raw)
                return _answer(401, {"code": 50027, "message": "Invalid Webhook Token"}, headers)
            if not allowed:
                hook.counters["rate_limited"] += 1
                retry = float(headers["X-RateLimit-Reset-After"])
                headers["Retry-After"] = str(max(1, math.ceil(retry)))
                headers["X-RateLimit-Scope"] = "user"
                return _answer(
                    429,
                    {"message": "You are being rate limited.", "retry_after": retry, "global": False},
                    headers,
                )
            if not ok:
                self._record(hook, 400, None, request, raw)
                return _answer(
                    400, {"code": 50109, "message": "The request body contains invalid JSON."}, headers
                )
            error = discord_error(body)
            if error is not None:
                self._record(hook, 400, body, request, raw)
                return _answer(400, error, headers)
            if not wait:
                self._record(hook, 204, body, request, raw)
                return _answer(204, None, headers)
            message_id = self._snowflake()
            self._record(hook, 200, body, request, raw, message_id=message_id)
            message = {
                "id": message_id,
                "type": 0,
                "content": body.get("content") or "",
                "embeds": body.get("embeds") or [],
                "channel_id": str(int(key) + 1) if key.isdigit() else "1",
                "author": {"bot": True, "id": key, "username": hook.title},
                "webhook_id": key,
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
                "tts": False,
                "mention_everyone": False,
                "attachments": [],
            }
            return _answer(200, message, headers)

        return await self._deliver(request, handle)

    # ----------------------------------------------------------------- JSON

    async def _json(self, request: Request) -> Response:
        name = str(request.path_params["name"])
        if request.method in ("HEAD", "OPTIONS"):
            with self._lock:
                hook = self._find("json", name)
            if hook is None:
                return _answer(404, None)
            status = int(hook.status)
            allow = {"Allow": "POST, HEAD, OPTIONS"}
            return _answer(
                204 if request.method == "OPTIONS" else (200 if status < 300 else status), None, allow
            )

        def handle(raw: bytes, now: float) -> Response:
            hook = self._find("json", name)
            if hook is None:
                self._unknown += 1
                return _answer(404, {"error": "no such hook"})
            self._arrive(hook, now)
            if self._fault(hook):
                return _answer(500, {"error": "internal server error"})
            if len(raw) > self.max_body:
                self._record(hook, 413, None, request, raw)
                return _answer(413, {"error": "payload too large"})
            ok, body = self._parse(raw)
            delivery = request.headers.get(DELIVERY_HEADER)
            verified: bool | None = None
            if hook.secret is not None:
                verified = verify(
                    hook.secret,
                    request.headers.get(TIMESTAMP_HEADER),
                    raw,
                    request.headers.get(SIGNATURE_HEADER),
                    self.tolerance,
                )
                if not verified:
                    self._record(hook, 401, body, request, raw, verified=False, delivery=delivery)
                    return _answer(401, {"error": "invalid or missing signature"})
            status = int(hook.status)
            if status >= 300:
                self._record(hook, status, body, request, raw, verified=verified, delivery=delivery)
                extra = {"Retry-After": "1"} if status in (429, 503) else None
                return _answer(status, {"error": _PHRASES.get(status, "refused")}, extra)
            if hook.rate and self.limits and not hook.admitted.fits(now, 1, hook.rate):
                hook.counters["rate_limited"] += 1
                return _answer(429, {"error": "too many requests"}, {"Retry-After": "1"})
            if not ok:
                self._record(hook, 400, None, request, raw, verified=verified, delivery=delivery)
                return _answer(400, {"error": "the body is not JSON"})
            duplicate = delivery is not None and delivery in hook.deliveries
            if delivery is not None:
                hook.deliveries.add(delivery)
            if duplicate:
                hook.counters["duplicates"] += 1
            hook.admitted.add(now, 1)
            message_id = f"{name}-{hook.counters['accepted'] + 1}"
            self._record(
                hook,
                status,
                body,
                request,
                raw,
                verified=verified,
                delivery=delivery,
                duplicate=duplicate,
                message_id=message_id,
            )
            return _answer(status, None if status == 204 else {"ok": True, "id": message_id})

        return await self._deliver(request, handle)

    # ----------------------------------------------------------------- control API

    @control
    async def _ctl_hooks(self, request: Request) -> Response:
        if request.method == "GET":
            return self.control_answer({"hooks": [h.as_json() for h in self.hooks]})
        spec = await control_body(request)
        specs = (
            spec if isinstance(spec, list) else spec.get("hooks", [spec]) if isinstance(spec, dict) else None
        )
        if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
            raise ControlError("give a hook object, a list of them or {'hooks': [...]}")
        return self.control_answer({"hooks": [self.configure(s).as_json() for s in specs]})

    def _known(self, name: str) -> str:
        if name not in self._hooks:
            raise ControlError(f"unknown hook {name!r}", 404)
        return name

    @control
    async def _ctl_received(self, request: Request) -> Response:
        everything = flag(request.query_params.get("all", ""))
        name = request.query_params.get("hook")
        if name is not None:
            records = self.received(self._known(name), include_refused=everything)
            return self.control_answer({"hook": name, "received": [r.as_json() for r in records]})
        return self.control_answer(
            {
                "received": {
                    h.name: [r.as_json() for r in self.received(h.name, include_refused=everything)]
                    for h in self.hooks
                }
            }
        )

    @control
    async def _ctl_stats(self, request: Request) -> Response:
        name = request.query_params.get("hook")
        if name is not None:
            return self.control_answer({"hook": name, **self.stats(self._known(name))})
        return self.control_answer(self.stats())

    @control
    async def _ctl_reset(self, request: Request) -> Response:
        spec = await control_body(request, {})
        self.reset(hooks=isinstance(spec, dict) and bool(spec.get("hooks")))
        return self.control_answer({"ok": True, "hooks": len(self._hooks)})
