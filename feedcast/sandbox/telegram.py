"""A Telegram Bot API emulator over real HTTP, for tests, the demo, rehearsals and benchmarks.

``POST|GET /bot<TOKEN>/<method>`` with parameters as JSON, urlencoded form or multipart
(nested objects such as ``reply_markup`` or ``media`` as JSON strings in forms), answered
with Telegram's envelope: ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code":
N, "description": "...", "parameters": {...}}`` with HTTP status ``N``.

What it reproduces (see ``docs/channels.md``):

- methods ``getMe``, ``sendMessage``, ``sendPhoto``, ``sendVideo``, ``sendAudio``,
  ``sendDocument``, ``sendMediaGroup``; results shaped like real ``Message`` objects,
  ``message_id`` increasing per chat;
- receiving: a queue of updates per bot, filled by scripted users (``push_update``,
  ``user_sends``, ``user_blocks`` / ``user_unblocks``, ``bot_added_to`` /
  ``bot_removed_from``, or ``POST /_sandbox/updates``); ``getUpdates(offset, limit,
  timeout, allowed_updates)`` with Telegram's semantics (an offset confirms and forgets the
  updates before it, a negative one keeps the last ``-offset``; long polling waits up to
  ``timeout`` seconds without holding up other requests; a newer ``getUpdates`` ends a
  waiting one with 409 ``terminated by other getUpdates request``; updates are kept 24 h;
  ``allowed_updates`` is remembered and filters updates created afterwards);
  ``setWebhook(url, secret_token, allowed_updates, drop_pending_updates)``,
  ``deleteWebhook``, ``getWebhookInfo``: while a webhook is set, ``getUpdates`` answers 409
  ``Conflict: can't use getUpdates method while webhook is active`` and each update is
  POSTed to the URL as JSON with ``X-Telegram-Bot-Api-Secret-Token``, in order, from a
  background task; a 2xx confirms it, anything else is retried after a short backoff and
  shows in ``getWebhookInfo`` (``last_error_date``, ``last_error_message``). Unlike
  Telegram, plain ``http://`` URLs on any port are accepted (loopback tests);
- a user who blocks the bot is really blocked (sends get 403 ``bot was blocked by the
  user``) until they unblock it; a user writing to the bot after blocking it unblocks it
  first (``my_chat_member`` back to ``member``), as Telegram's "Restart" button does;
- content checks with Telegram's wording: the HTML parse mode (``layouts.html``, the same
  parser the layouts are checked with), text 1..4096 and captions 0..1024 characters after
  entity parsing, inline keyboards, albums of 2..10 items (photos and videos mix, audio and
  documents only with their own kind, no ``reply_markup``: Telegram silently ignores one,
  the emulator refuses it so a lost keyboard shows in tests);
- recipients: private chats, groups, supergroups and channels that are active, blocked,
  deactivated, kicked, never started or migrated to a supergroup; unknown chats;
- flood control when ``limits`` is on: 30 messages per sliding second per bot (an album of
  ``n`` counts ``n``), per chat a token bucket of 3 refilled at 1 per second (short bursts
  pass, a steady rate above 1/s does not), 20 messages per sliding minute per group,
  supergroup or channel; over a limit: 429 ``Too Many Requests: retry after N``;
- faults: ``fault_rate`` of the requests get a transient 5xx (a JSON 500 or an nginx-style
  HTML 502, chosen at random), ``drop_rate`` get their connection dropped without a byte of
  answer (the emulator aborts the TCP connection, the client sees ``RemoteProtocolError:
  Server disconnected``). ``seed`` makes the choices repeatable.

Every accepted message is recorded per chat (method, parameters, message ids, time), and
statistics are kept per bot and per chat: requests, accepted, rate limited, the most
sending requests seen in any sliding second (``max_per_second``, alias ``max_window``;
rejected ones included; ``max_messages_per_second`` weighs albums) and the requests that
arrived over a limit (``over_limit``, counted even with ``limits`` off, so a benchmark can
tell whether a sender would have been throttled). Bookkeeping is O(1) amortised per request: deques of
timestamps, token buckets, no sleeps.

Python API: :class:`TelegramEmulator` (``add_bot``, ``add_chat``, ``received``, ``stats``,
``reset``, ``configure``, ``push_update``, ``user_sends``, ``user_blocks``,
``user_unblocks``, ``bot_added_to``, ``bot_removed_from``, ``pending_updates``,
``webhook``, ``webhook_deliveries``). HTTP control API (JSON), for another process:

- ``POST /_sandbox/bots`` ``{"token", "username"?, "id"?}``; ``GET /_sandbox/bots``;
- ``POST /_sandbox/chats`` one chat ``{"chat_id", "kind"?, "status"?, "migrate_to"?,
  "username"?, "title"?}`` or ``{"chats": [...]}``; ``GET /_sandbox/chats``;
- ``GET /_sandbox/received?chat_id=ID`` (one chat) or without ``chat_id`` (every chat);
- ``GET /_sandbox/stats`` (``?chats=1`` adds per-chat figures);
- ``POST /_sandbox/reset`` (``{"everything": true}`` also forgets bots and chats);
- ``POST /_sandbox/config`` ``{"limits"?, "fault_rate"?, "drop_rate"?, "seed"?, "auto_chats"?}``;
- ``POST /_sandbox/updates`` ``{"bot"?, "update": {...}}`` or ``{"bot"?, "updates": [...]}``
  (raw updates, ``update_id`` assigned when absent) or a scripted action ``{"bot"?,
  "action": "sends", "chat_id", "text", "first_name"?}`` / ``"blocks"`` / ``"unblocks"``
  ``{"chat_id"}`` / ``"added"`` ``{"chat_id", "kind"?, "title"?, "status"?}`` / ``"removed"``
  ``{"chat_id", "status"?}``; ``bot`` is a token, a bot id or ``@username`` (optional with
  one bot); ``GET /_sandbox/updates?bot=B`` shows the pending updates, the webhook and its
  deliveries.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import math
import re
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple, Unpack
from urllib.parse import parse_qsl, urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from channels.base import number
from feedcast.kernel.errors import TelegramHtmlError
from feedcast.sandbox.base import (
    Configurable,
    ControlError,
    Dropped,
    EmulatorSettings,
    Part,
    TokenBucket,
    Window,
    control,
    control_object,
    drop_connection,
    flag,
    is_image,
    parse_multipart,
)
from layouts.html import telegram_visible_text, validate_telegram_html
from layouts.text import utf16_len

__all__ = ["CHAT_KINDS", "CHAT_STATUSES", "TelegramEmulator"]

CHAT_KINDS = ("private", "group", "supergroup", "channel")
CHAT_STATUSES = ("active", "blocked", "deactivated", "kicked", "never_started", "migrated")

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
ALBUM_MIN, ALBUM_MAX = 2, 10
BOT_PER_SECOND = 30
CHAT_BURST = 3
CHAT_PER_SECOND = 1.0
GROUP_PER_MINUTE = 20

_PATH = re.compile(r"/bot([^/]+)/([A-Za-z]+)/?")
_MEDIA_FIELDS = {"sendphoto": "photo", "sendvideo": "video", "sendaudio": "audio", "senddocument": "document"}
_SEND_METHODS = frozenset({*_MEDIA_FIELDS, "sendmessage", "sendmediagroup"})
_WEBHOOK_METHODS = frozenset({"setwebhook", "deletewebhook", "getwebhookinfo"})
_METHODS = frozenset({*_SEND_METHODS, *_WEBHOOK_METHODS, "getme", "getupdates"})
_CANONICAL = {
    "sendmessage": "sendMessage",
    "sendphoto": "sendPhoto",
    "sendvideo": "sendVideo",
    "sendaudio": "sendAudio",
    "senddocument": "sendDocument",
    "sendmediagroup": "sendMediaGroup",
    "getme": "getMe",
    "getupdates": "getUpdates",
    "setwebhook": "setWebhook",
    "deletewebhook": "deleteWebhook",
    "getwebhookinfo": "getWebhookInfo",
}
UPDATE_TTL = 24 * 3600.0  # Telegram keeps unconfirmed updates 24 hours
UPDATES_MAX = 100  # getUpdates' largest limit
FIRST_UPDATE_ID = 100_000_001
# what a bot receives unless allowed_updates says otherwise (Telegram's default)
DEFAULT_ALLOWED = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_connection",
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
        "inline_query",
        "chosen_inline_result",
        "callback_query",
        "shipping_query",
        "pre_checkout_query",
        "purchased_paid_media",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_join_request",
        "chat_boost",
        "removed_chat_boost",
    }
)
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
_COMMAND = re.compile(r"/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{1,64})?")
_CONFLICT_WEBHOOK = "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
_CONFLICT_POLL = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
)
WEBHOOK_RETRY_MIN, WEBHOOK_RETRY_MAX = 0.1, 2.0  # seconds between attempts at a failing webhook
_BUTTON_ACTIONS = frozenset(
    {
        "url",
        "callback_data",
        "web_app",
        "login_url",
        "switch_inline_query",
        "switch_inline_query_current_chat",
        "switch_inline_query_chosen_chat",
        "copy_text",
        "callback_game",
        "pay",
    }
)
_STATUS_ERRORS: dict[str, tuple[int, str]] = {
    "blocked": (403, "Forbidden: bot was blocked by the user"),
    "deactivated": (403, "Forbidden: user is deactivated"),
    "kicked": (403, "Forbidden: bot was kicked from the group chat"),
    "never_started": (403, "Forbidden: bot can't initiate conversation with a user"),
}
_BAD_GATEWAY = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n</body>\r\n</html>\r\n"
)


class _ApiError(Exception):
    def __init__(self, code: int, description: str, parameters: Mapping[str, Any] | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = dict(parameters or {})


def _bad(description: str) -> _ApiError:
    return _ApiError(400, f"Bad Request: {description}")


# --------------------------------------------------------------------------- state


@dataclass(slots=True)
class _Counters:
    requests: int = 0  # sending requests (bots: every request)
    accepted: int = 0
    rate_limited: int = 0
    over_limit: int = 0
    seen: Window = field(default_factory=lambda: Window(1.0))  # sending requests; peak: max_per_second


@dataclass(slots=True)
class _Webhook:
    url: str
    secret_token: str | None
    max_connections: int = 40
    generation: int = 0
    last_error_date: int | None = None
    last_error_message: str | None = None


@dataclass(slots=True)
class _LongPoll:
    """A getUpdates with nothing to answer yet: waited for outside the lock."""

    bot: _Bot
    limit: int
    deadline: float
    generation: int


@dataclass(slots=True)
class _Bot:
    id: int
    token: str
    username: str
    first_name: str
    counters: _Counters = field(default_factory=_Counters)
    sends: int = 0
    errors: int = 0  # 4xx other than 429
    faults: int = 0
    dropped: int = 0
    seen_messages: Window = field(default_factory=lambda: Window(1.0))  # peak: max_messages_per_second
    window: Window = field(default_factory=lambda: Window(1.0))  # accepted messages
    # receiving: (time created, update) oldest first; ids increase by one per update
    updates: deque[tuple[float, dict[str, Any]]] = field(default_factory=deque)
    next_update_id: int = FIRST_UPDATE_ID
    allowed: frozenset[str] = DEFAULT_ALLOWED
    polls: int = 0  # getUpdates calls: a newer one ends a waiting long poll
    webhook: _Webhook | None = None
    webhook_task: asyncio.Task[None] | None = None
    deliveries: list[dict[str, Any]] = field(default_factory=list)  # webhook POSTs

    def user(self) -> dict[str, Any]:
        return {"id": self.id, "is_bot": True, "first_name": self.first_name, "username": self.username}

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "username": self.username, "first_name": self.first_name}


@dataclass(slots=True)
class _Chat:
    id: int
    kind: str = "private"
    status: str = "active"
    migrate_to: int | None = None
    username: str | None = None
    title: str | None = None
    registered: bool = True
    next_message_id: int = 1
    received: list[dict[str, Any]] = field(default_factory=list)
    counters: _Counters = field(default_factory=_Counters)

    def obj(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "type": self.kind}
        if self.kind == "private":
            out["first_name"] = self.title or f"User {self.id}"
        else:
            out["title"] = self.title or f"{self.kind.capitalize()} {self.id}"
        if self.username:
            out["username"] = self.username
        return out

    def public(self) -> dict[str, Any]:
        return {
            "chat_id": self.id,
            "kind": self.kind,
            "status": self.status,
            "migrate_to": self.migrate_to,
            "username": self.username,
            "title": self.title,
            "received": len(self.received),
        }


@dataclass(slots=True)
class _ChatRate:
    bucket: TokenBucket
    minute: Window = field(default_factory=lambda: Window(60.0))


# --------------------------------------------------------------------------- parameters


# what Telegram takes as an upload: photos up to 10 MB that are images, other files 50 MB
PHOTO_UPLOAD = 10_000_000
FILE_UPLOAD = 50_000_000


class _Call(NamedTuple):
    """One Bot API request as read: its method (lower case), parameters and file parts."""

    method: str
    params: dict[str, Any]
    files: dict[str, Part]  # multipart file parts by name


async def _read_params(request: Request) -> tuple[dict[str, Any], dict[str, Part]]:
    """Query, then JSON / urlencoded / multipart body parameters; file parts by name."""
    params: dict[str, Any] = dict(request.query_params)
    files: dict[str, Part] = {}
    if request.method != "POST":
        return params, files
    body = await request.body()
    if not body:
        return params, files
    ctype = request.headers.get("content-type", "")
    mime = ctype.split(";", 1)[0].strip().lower()
    if mime == "application/json":
        try:
            data = json.loads(body)
        except ValueError:
            raise _bad("can't parse JSON object") from None
        if not isinstance(data, dict):
            raise _bad("can't parse JSON object: expected an object")
        params.update(data)
    elif mime == "application/x-www-form-urlencoded":
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    elif mime == "multipart/form-data":
        fields, parts = parse_multipart(body, ctype)
        if fields is None:
            raise _bad("can't parse multipart/form-data")
        params.update(fields)
        files.update(parts)
    return params, files


def _json_param(value: Any, error: str) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise _bad(error) from None
    return value


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,19}", value.strip()):
        return int(value)
    return None


def _allowed(value: Any) -> frozenset[str]:
    """``allowed_updates``: a JSON array of update types; empty means the default set."""
    kinds = _json_param(value, "can't parse allowed updates JSON array")
    if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
        raise _bad("can't parse allowed updates JSON array")
    return frozenset(kinds) or DEFAULT_ALLOWED


def _web_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


class _TextRule(NamedTuple):
    """What Telegram checks a message's visible text against: a text or a caption."""

    param: str  # text | caption (each with its parse_mode)
    limit: int  # UTF-16 code units
    too_long: str  # the error over the limit
    required: bool


_MESSAGE_TEXT = _TextRule("text", TEXT_LIMIT, "message is too long", required=True)
_CAPTION = _TextRule("caption", CAPTION_LIMIT, "message caption is too long", required=False)


def _text(params: Mapping[str, Any], rule: _TextRule) -> str:
    """The visible text of a text or caption parameter, checked as Telegram does."""
    value, parse_mode = params.get(rule.param), params.get("parse_mode")
    text = "" if value is None else value if isinstance(value, str) else json.dumps(value)
    mode = parse_mode.strip().lower() if isinstance(parse_mode, str) else ""
    if mode == "html":
        try:
            validate_telegram_html(text)
        except TelegramHtmlError as err:
            raise _ApiError(400, err.description) from None
        visible = telegram_visible_text(text)
    elif mode in ("", "markdown", "markdownv2"):
        visible = text  # Markdown is taken as is: feedcast only sends HTML
    else:
        raise _bad("unsupported parse_mode")
    visible = visible.strip()
    if rule.required and not visible:
        raise _bad("message text is empty")
    if utf16_len(visible) > rule.limit:
        raise _bad(rule.too_long)
    return visible


def _keyboard(value: Any) -> dict[str, Any]:
    markup = _json_param(value, "can't parse reply keyboard markup JSON object")
    if not isinstance(markup, dict):
        raise _bad("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" not in markup:
        if {"keyboard", "remove_keyboard", "force_reply"} & markup.keys():
            return markup
        raise _bad("can't parse reply keyboard markup JSON object")
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise _bad('can\'t parse inline keyboard button: Field "inline_keyboard" must be an Array of Arrays')
    count = 0
    for row in rows:
        for button in row:
            if not isinstance(button, dict):
                raise _bad("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
            text = button.get("text")
            if not isinstance(text, str) or not text.strip():
                raise _bad('can\'t parse inline keyboard button: Field "text" must be of type String')
            actions = _BUTTON_ACTIONS & button.keys()
            if not actions:
                raise _bad(
                    "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
                )
            if "url" in button:
                url = button["url"]
                ok = isinstance(url, str) and (_web_url(url) or urlsplit(url).scheme == "tg")
                if not ok:
                    raise _bad(f"inline keyboard button URL '{url}' is invalid: Wrong HTTP URL")
            if "callback_data" in button:
                data = button["callback_data"]
                if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= 64:
                    raise _bad("BUTTON_DATA_INVALID")
            count += 1
    if count > 100:
        raise _bad("reply markup is too long")
    return markup


def _file_id(url: str, kind: str) -> tuple[str, str]:
    digest = hashlib.blake2b(f"{kind}:{url}".encode(), digest_size=16).hexdigest()
    return f"{kind[:2].upper()}{digest}", digest[:16]


# --------------------------------------------------------------------------- the emulator


class _App(Starlette):
    """The control API as Starlette routes; Bot API requests go straight to the emulator
    (no middleware in between: it keeps the request path fast, and it needs uvicorn's own
    ``send`` to drop a connection)."""

    def __init__(self, emulator: TelegramEmulator, routes: list[Route]) -> None:
        super().__init__(routes=routes)
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith("/_sandbox/"):
            await self.emulator._bot_api(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


class TelegramEmulator(Configurable):
    """The Bot API on loopback: ``with TelegramEmulator().serve() as server: ...``.

    ``limits``: enforce Telegram's flood control (off: count only, for throughput
    benchmarks). ``auto_chats``: an unregistered positive chat id is an active private
    chat (else ``chat not found``). ``fault_rate`` / ``drop_rate``: fractions of Bot API
    requests answered with a 5xx / dropped without an answer. ``seed``: repeatable faults.
    ``clock``: what the flood control and long polling read (:mod:`feedcast.kernel.clock`; a
    ``FakeClock`` makes a burst arrive at one instant, however slow the machine).
    """

    name: ClassVar[str] = "telegram"
    switches: ClassVar[tuple[str, ...]] = ("auto_chats",)
    ok_envelope: ClassVar[bool] = True

    def __init__(self, *, auto_chats: bool = True, **settings: Unpack[EmulatorSettings]) -> None:
        super().__init__(**settings)
        self.auto_chats = auto_chats
        self._bots: dict[str, _Bot] = {}
        self._chats: dict[int, _Chat] = {}
        self._usernames: dict[str, int] = {}
        self._rates: dict[tuple[int, int], _ChatRate] = {}
        self._file_ids: set[str] = set()
        self._file_uniques: dict[str, str] = {}
        self._bad_urls: set[str] = set()
        self._next_bot_id = 7_000_000_001
        self._media_group_id = 13_000_000_000_000_000
        self.requests = 0  # every Bot API request
        self.unauthorized = 0
        self.not_found = 0
        self.app = _App(
            self,
            [
                Route("/_sandbox/bots", self._http_bots, methods=["GET", "POST"]),
                Route("/_sandbox/chats", self._http_chats, methods=["GET", "POST"]),
                Route("/_sandbox/received", self._http_received, methods=["GET"]),
                Route("/_sandbox/stats", self._http_stats, methods=["GET"]),
                Route("/_sandbox/reset", self._http_reset, methods=["POST"]),
                Route("/_sandbox/config", self._http_options, methods=["GET", "POST"]),
                Route("/_sandbox/updates", self._http_updates, methods=["GET", "POST"]),
            ],
        )

    # ------------------------------------------------------------- Python API

    def add_bot(
        self, token: str, username: str = "feedcast_bot", *, bot_id: int | None = None
    ) -> dict[str, Any]:
        """Register a bot token (several bots may share the emulator). The bot id is the
        token's numeric prefix (``123456:ABC...``) unless given."""
        if not token or "/" in token or any(c.isspace() for c in token):
            raise ValueError("a bot token is a non-empty string without '/' or spaces")
        with self._lock:
            if bot_id is None:
                prefix = token.split(":", 1)[0]
                if prefix.isdigit() and ":" in token:
                    bot_id = int(prefix)
                else:
                    bot_id = self._next_bot_id
                    self._next_bot_id += 1
            existing = self._bots.get(token)
            if existing is not None:
                existing.username = username
                return existing.public()
            first_name = username.removesuffix("_bot").removesuffix("bot").replace("_", " ").strip().title()
            bot = _Bot(bot_id, token, username, first_name or username)
            self._bots[token] = bot
            return bot.public()

    def add_chat(
        self,
        chat_id: int,
        kind: str = "private",
        status: str = "active",
        migrate_to: int | None = None,
        *,
        username: str | None = None,
        title: str | None = None,
    ) -> dict[str, Any]:
        """Register a chat, or update one (what it received is kept). A ``migrated``
        group needs ``migrate_to``, the supergroup's id, registered too when unknown."""
        if kind not in CHAT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(CHAT_KINDS)}, not {kind!r}")
        if status not in CHAT_STATUSES:
            raise ValueError(f"status must be one of {', '.join(CHAT_STATUSES)}, not {status!r}")
        if status == "migrated" and migrate_to is None:
            raise ValueError("a migrated chat needs migrate_to (the supergroup's chat id)")
        chat_id = int(chat_id)
        if kind == "private" and chat_id <= 0:
            raise ValueError("a private chat has a positive id")
        if kind != "private" and chat_id >= 0:
            raise ValueError("groups, supergroups and channels have negative ids")
        with self._lock:
            chat = self._chats.get(chat_id)
            if chat is None:
                chat = self._chats[chat_id] = _Chat(chat_id)
            if chat.username:
                self._usernames.pop(chat.username.lower(), None)
            chat.kind, chat.status, chat.title, chat.registered = kind, status, title, True
            chat.migrate_to = None if migrate_to is None else int(migrate_to)
            chat.username = username.lstrip("@") if username else None
            if chat.username:
                self._usernames[chat.username.lower()] = chat_id
            if chat.migrate_to is not None and chat.migrate_to not in self._chats:
                self._chats[chat.migrate_to] = _Chat(chat.migrate_to, kind="supergroup", title=title)
            return chat.public()

    def add_bad_url(self, url: str) -> None:
        """Media at ``url`` cannot be fetched by Telegram (``failed to get HTTP URL content``)."""
        with self._lock:
            self._bad_urls.add(url)

    def chats(self) -> list[dict[str, Any]]:
        with self._lock:
            return [chat.public() for chat in self._chats.values()]

    def received(self, chat_id: int | str) -> list[dict[str, Any]]:
        """What a chat received, oldest first: ``{"method", "params", "message_id",
        "message_ids", "time", "bot_id"}`` per accepted request."""
        with self._lock:
            chat = self._lookup(chat_id)
            return [dict(entry) for entry in chat.received] if chat else []

    def all_received(self) -> dict[str, list[dict[str, Any]]]:
        with self._lock:
            return {str(c.id): [dict(e) for e in c.received] for c in self._chats.values() if c.received}

    def stats(self, *, chats: bool = False) -> dict[str, Any]:
        """Totals, per-bot figures (keyed by bot id) and, with ``chats``, per-chat ones."""
        with self._lock:
            now = self.clock.monotonic()
            bots: dict[str, Any] = {}
            for bot in self._bots.values():
                c = bot.counters
                bots[str(bot.id)] = {
                    "username": bot.username,
                    "requests": c.requests,
                    "sends": bot.sends,
                    "accepted": c.accepted,
                    "rate_limited": c.rate_limited,
                    "over_limit": c.over_limit,
                    "errors": bot.errors,
                    "faults": bot.faults,
                    "dropped": bot.dropped,
                    "max_per_second": c.seen.peak,
                    "max_window": c.seen.peak,  # the name the other emulators use
                    "max_messages_per_second": bot.seen_messages.peak,
                    "messages_last_second": bot.window.count(now),
                }
            out: dict[str, Any] = {
                "limits": {
                    "enabled": self.limits,
                    "bot_per_second": BOT_PER_SECOND,
                    "chat_burst": CHAT_BURST,
                    "chat_per_second": CHAT_PER_SECOND,
                    "group_per_minute": GROUP_PER_MINUTE,
                },
                "requests": self.requests,
                "unauthorized": self.unauthorized,
                "not_found": self.not_found,
                "accepted": sum(b["accepted"] for b in bots.values()),
                "rate_limited": sum(b["rate_limited"] for b in bots.values()),
                "over_limit": sum(b["over_limit"] for b in bots.values()),
                "faults": sum(b["faults"] for b in bots.values()),
                "dropped": sum(b["dropped"] for b in bots.values()),
                "max_per_second": max((b["max_per_second"] for b in bots.values()), default=0),
                "max_window": max((b["max_per_second"] for b in bots.values()), default=0),
                "bots": bots,
            }
            if chats:
                out["chats"] = {
                    str(chat.id): {
                        "requests": chat.counters.requests,
                        "accepted": chat.counters.accepted,
                        "rate_limited": chat.counters.rate_limited,
                        "over_limit": chat.counters.over_limit,
                        "max_per_second": chat.counters.seen.peak,
                    }
                    for chat in self._chats.values()
                    if chat.counters.requests
                }
            return out

    def reset(self, *, everything: bool = False) -> None:
        """Forget what was received, the statistics, the flood-control state and each
        bot's pending updates and webhook; with ``everything``, the bots and chats too."""
        with self._lock:
            self.requests = self.unauthorized = self.not_found = 0
            self._rates.clear()
            if everything:
                self._bots.clear()
                self._chats.clear()
                self._usernames.clear()
                self._file_ids.clear()
                self._file_uniques.clear()
                self._bad_urls.clear()
                return
            for token, bot in list(self._bots.items()):
                self._bots[token] = _Bot(bot.id, bot.token, bot.username, bot.first_name)
            for chat_id, chat in list(self._chats.items()):
                if not chat.registered:
                    del self._chats[chat_id]
                else:
                    chat.received = []
                    chat.counters = _Counters()
                    chat.next_message_id = 1

    # ------------------------------------------------------------- Bot API over HTTP

    async def _bot_api(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        match = _PATH.fullmatch(scope["path"])
        if match is None:
            with self._lock:
                self.requests += 1
                self.not_found += 1
            await self._envelope(404, "Not Found")(scope, receive, send)
            return
        token, method = match.group(1), match.group(2).lower()
        parse_error: _ApiError | None = None
        try:
            params, files = await _read_params(request)
        except _ApiError as err:
            params, files, parse_error = {}, {}, err
        try:
            with self._lock:
                answer = self._handle(token, _Call(method, params, files), parse_error)
        except Dropped:
            await drop_connection(receive)
            return
        if isinstance(answer, _LongPoll):
            answer = await self._long_poll(answer)
        await answer(scope, receive, send)

    async def _long_poll(self, wait: _LongPoll) -> Response:
        """Wait for an update (or the deadline) without holding the lock or the loop."""
        while True:
            await asyncio.sleep(0.01)
            with self._lock:
                bot = wait.bot
                if self._bots.get(bot.token) is not bot:
                    return JSONResponse({"ok": True, "result": []})  # reset meanwhile
                if bot.webhook is not None:
                    return self._envelope(409, _CONFLICT_WEBHOOK)
                if bot.polls != wait.generation:
                    return self._envelope(409, _CONFLICT_POLL)
                result = self._updates(bot, None, wait.limit)
                if result or self.clock.monotonic() >= wait.deadline:
                    return JSONResponse({"ok": True, "result": result})

    @staticmethod
    def _envelope(code: int, description: str, parameters: Mapping[str, Any] | None = None) -> Response:
        body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
        if parameters:
            body["parameters"] = dict(parameters)
        return JSONResponse(body, status_code=code)

    def _handle(self, token: str, call: _Call, parse_error: _ApiError | None) -> Response | _LongPoll:
        """One Bot API request, under the lock (:class:`Dropped`: drop the connection); a
        :class:`_LongPoll`: a getUpdates to answer when an update comes."""
        method, params = call.method, call.params
        self.requests += 1
        bot = self._bots.get(token)
        if bot is None:
            self.unauthorized += 1
            return self._envelope(401, "Unauthorized")
        now = self.clock.monotonic()
        bot.counters.requests += 1
        sending = method in _SEND_METHODS
        if sending:
            bot.sends += 1
            bot.counters.seen.hit(now)
            bot.seen_messages.hit(now, _album_size(params) if method == "sendmediagroup" else 1)
        if self.faults.drop():
            bot.dropped += 1
            raise Dropped
        if self.faults.fault():
            bot.faults += 1
            if self.faults.coin():
                return self._envelope(500, "Internal Server Error")
            return HTMLResponse(_BAD_GATEWAY, status_code=502)
        if method not in _METHODS:
            self.not_found += 1
            return self._envelope(404, "Not Found")
        try:
            if parse_error is not None:
                raise parse_error
            if method == "getme":
                result: Any = {
                    **bot.user(),
                    "can_join_groups": True,
                    "can_read_all_group_messages": False,
                    "supports_inline_queries": False,
                }
            elif method == "getupdates":
                return self._get_updates(bot, params, now)
            elif method in _WEBHOOK_METHODS:
                return self._webhook_method(bot, method, params)
            else:
                result = self._send(bot, call, now)
        except _ApiError as err:
            if err.code == 429:
                bot.counters.rate_limited += 1
            else:
                bot.errors += 1
            return self._envelope(err.code, err.description, err.parameters)
        return JSONResponse({"ok": True, "result": result})

    def _lookup(self, chat_id: Any) -> _Chat | None:
        number = _int(chat_id)
        if number is None and isinstance(chat_id, str) and chat_id.startswith("@"):
            number = self._usernames.get(chat_id[1:].lower())
        return None if number is None else self._chats.get(number)

    def _chat(self, raw: Any) -> _Chat:
        if raw is None or raw == "":
            raise _bad("chat_id is empty")
        chat = self._lookup(raw)
        if chat is None:
            number = _int(raw)
            if number is None or number <= 0 or not self.auto_chats:
                raise _bad("chat not found")
            chat = self._chats[number] = _Chat(number, registered=False)
        if chat.status == "migrated":
            raise _ApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": chat.migrate_to},
            )
        status_error = _STATUS_ERRORS.get(chat.status)
        if status_error is not None:
            code, description = status_error
            if chat.status == "kicked" and chat.kind == "supergroup":
                description = "Forbidden: bot was kicked from the supergroup chat"
            elif chat.status == "kicked" and chat.kind == "channel":
                description = "Forbidden: bot is not a member of the channel chat"
            raise _ApiError(code, description)
        return chat

    def _media(self, value: Any, kind: str, files: Mapping[str, Part]) -> dict[str, Any]:
        """A media reference: an http(s) URL, ``attach://part`` or a file_id we issued.
        An upload is checked as Telegram does: a photo is an image of at most 10 MB, any
        other file at most 50 MB."""
        if not isinstance(value, str) or not value.strip():
            raise _bad(f"there is no {kind} in the request")
        value = value.strip()
        if value.startswith("attach://"):
            part = files.get(value.removeprefix("attach://"))
            if part is None:
                raise _bad("can't parse InputMedia: media not found")
            if part.size > (PHOTO_UPLOAD if kind == "photo" else FILE_UPLOAD):
                raise _ApiError(413, "Request Entity Too Large")
            if part.size == 0:
                raise _bad("file must be non-empty")
            if kind == "photo" and not is_image(part.head):
                raise _bad("IMAGE_PROCESS_FAILED")
            return {"upload": part.filename, "size": part.size, "sha256": part.sha256}
        if _web_url(value):
            if value in self._bad_urls:
                raise _bad("failed to get HTTP URL content")
            return {"url": value}
        if value in self._file_ids:
            return {"file_id": value}
        raise _bad("wrong file identifier/HTTP URL specified")

    def _send(self, bot: _Bot, call: _Call, now: float) -> Any:
        method, params, files = call
        chat = self._chat(params.get("chat_id"))
        chat.counters.requests += 1
        chat.counters.seen.hit(now)
        markup: dict[str, Any] | None = None
        # (kind, media reference or None, visible text, raw item) per message to create
        contents: list[tuple[str, dict[str, Any] | None, str, Mapping[str, Any]]] = []
        if method == "sendmessage":
            visible = _text(params, _MESSAGE_TEXT)
            contents.append(("text", None, visible, params))
        elif method == "sendmediagroup":
            if "reply_markup" in params:
                raise _bad("reply_markup is not supported by sendMediaGroup: an album cannot carry buttons")
            items = _json_param(params.get("media"), "can't parse media JSON object")
            if not isinstance(items, list) or not items:
                raise _bad("there are no messages to send")
            if len(items) > ALBUM_MAX:
                raise _bad("too many messages to send as an album")
            if len(items) < ALBUM_MIN:
                raise _bad(f"media must include {ALBUM_MIN}-{ALBUM_MAX} items")
            kinds: list[str] = []
            for item in items:
                if not isinstance(item, dict):
                    raise _bad("can't parse InputMedia JSON object")
                kind = item.get("type")
                if kind not in ("photo", "video", "audio", "document"):
                    raise _bad(f'can\'t parse InputMedia: type "{kind}" is unsupported')
                visible = _text(item, _CAPTION)
                contents.append((kind, self._media(item.get("media"), kind, files), visible, item))
                kinds.append(kind)
            for kind in kinds:
                if kind in ("audio", "document") and any(k != kind for k in kinds):
                    raise _bad(f"{kind} can't be mixed with other media types")
        else:
            kind = _MEDIA_FIELDS[method]
            visible = _text(params, _CAPTION)
            value = params.get(kind)
            if value is None and kind in files:
                value = f"attach://{kind}"
            contents.append((kind, self._media(value, kind, files), visible, params))
        if method != "sendmediagroup" and params.get("reply_markup") not in (None, ""):
            markup = _keyboard(params["reply_markup"])
        self._flood_control(bot, chat, len(contents), now)
        # accepted
        bot.counters.accepted += 1
        chat.counters.accepted += 1
        date = int(time.time())
        group_id = None
        if len(contents) > 1:
            self._media_group_id += 1
            group_id = str(self._media_group_id)
        messages = [
            self._message(bot, chat, kind, ref, visible, raw, params, date, group_id, markup)
            for kind, ref, visible, raw in contents
        ]
        uploads = {
            name: {"filename": p.filename, "size": p.size, "sha256": p.sha256} for name, p in files.items()
        }
        chat.received.append(
            {
                "method": _CANONICAL[method],
                "params": {k: v for k, v in params.items() if k != "chat_id"},
                **({"uploads": uploads} if uploads else {}),
                "message_id": messages[0]["message_id"],
                "message_ids": [m["message_id"] for m in messages],
                "time": self.clock.time(),
                "bot_id": bot.id,
            }
        )
        return messages if method == "sendmediagroup" else messages[0]

    def _flood_control(self, bot: _Bot, chat: _Chat, cost: int, now: float) -> None:
        """Raise 429 when the message would go over a limit (when limits are on); the
        arrival is counted as over the limit either way."""
        rate = self._rates.get((bot.id, chat.id))
        if rate is None:
            rate = self._rates[(bot.id, chat.id)] = _ChatRate(TokenBucket(CHAT_BURST, now))
        group = chat.kind != "private"
        bucket_wait = rate.bucket.wait(now, CHAT_BURST, CHAT_PER_SECOND)
        bot_fits = bot.window.fits(now, cost, BOT_PER_SECOND)
        group_fits = not group or rate.minute.fits(now, cost, GROUP_PER_MINUTE)
        if bucket_wait > 0 or not bot_fits or not group_fits:
            bot.counters.over_limit += 1
            chat.counters.over_limit += 1
            if self.limits:
                chat.counters.rate_limited += 1
                wait = max(
                    bucket_wait,
                    0.0 if bot_fits else bot.window.wait(now, cost, BOT_PER_SECOND),
                    0.0 if group_fits else rate.minute.wait(now, cost, GROUP_PER_MINUTE),
                )
                retry = max(1, math.ceil(wait))
                raise _ApiError(429, f"Too Many Requests: retry after {retry}", {"retry_after": retry})
        bot.window.add(now, cost)
        rate.bucket.take()
        if group:
            rate.minute.add(now, cost)

    def _message(
        self,
        bot: _Bot,
        chat: _Chat,
        kind: str,
        ref: dict[str, Any] | None,
        visible: str,
        item: Mapping[str, Any],
        params: Mapping[str, Any],
        date: int,
        group_id: str | None,
        markup: dict[str, Any] | None,
    ) -> dict[str, Any]:
        message: dict[str, Any] = {"message_id": chat.next_message_id}
        chat.next_message_id += 1
        if chat.kind == "channel":
            message["sender_chat"] = chat.obj()
        else:
            message["from"] = bot.user()
        message["chat"] = chat.obj()
        message["date"] = date
        thread = _int(params.get("message_thread_id"))
        if thread is not None and chat.kind == "supergroup":
            message["message_thread_id"] = thread
            message["is_topic_message"] = True
        if group_id is not None:
            message["media_group_id"] = group_id
        if kind == "text":
            message["text"] = visible
            preview = params.get("link_preview_options")
            if preview not in (None, ""):
                message["link_preview_options"] = _json_param(preview, "can't parse link preview options")
        else:
            ref = ref or {}
            source = ref.get("url") or ref.get("sha256") or ref.get("file_id") or ""
            if ref.get("file_id"):  # sent again by its id: the same file
                file_id, unique = (
                    str(ref["file_id"]).removesuffix("s"),
                    self._file_uniques.get(str(ref["file_id"]), ""),
                )
            else:
                file_id, unique = _file_id(str(source), kind)
            self._file_ids.add(file_id)
            self._file_uniques[file_id] = unique
            self._file_uniques[file_id + "s"] = unique + "s"
            name = ref.get("upload") or urlsplit(str(source)).path.rsplit("/", 1)[-1] or "file"
            if kind == "photo":
                message["photo"] = [
                    {"file_id": file_id + "s", "file_unique_id": unique + "s", "width": 90, "height": 90},
                    {"file_id": file_id, "file_unique_id": unique, "width": 800, "height": 800},
                ]
                self._file_ids.add(file_id + "s")
            elif kind == "video":
                message["video"] = {
                    "file_id": file_id,
                    "file_unique_id": unique,
                    "width": 1280,
                    "height": 720,
                    "duration": 0,
                    "mime_type": "video/mp4",
                }
            elif kind == "audio":
                message["audio"] = {
                    "file_id": file_id,
                    "file_unique_id": unique,
                    "duration": 0,
                    "file_name": name,
                    "mime_type": "audio/mpeg",
                }
            else:
                message["document"] = {"file_id": file_id, "file_unique_id": unique, "file_name": name}
            if visible:
                message["caption"] = visible
            if flag(item.get("has_spoiler", False)):
                message["has_media_spoiler"] = True
        if markup is not None and "inline_keyboard" in markup:
            message["reply_markup"] = {"inline_keyboard": markup["inline_keyboard"]}
        return message

    # ------------------------------------------------------------- receiving: updates

    def _bot_of(self, bot: str | int | None) -> _Bot:
        """A bot by token, id or @username; the only bot when None. Under the lock."""
        if bot is None:
            if len(self._bots) != 1:
                raise ValueError(f"name the bot (there are {len(self._bots)})")
            return next(iter(self._bots.values()))
        if isinstance(bot, str) and bot in self._bots:
            return self._bots[bot]
        for candidate in self._bots.values():
            if isinstance(bot, int) and not isinstance(bot, bool) and candidate.id == bot:
                return candidate
            if isinstance(bot, str) and bot.lstrip("@").lower() in (
                candidate.username.lower(),
                str(candidate.id),
            ):
                return candidate
        raise ValueError(f"unknown bot {bot if isinstance(bot, int) else '(token or name not registered)'}")

    def push_update(self, bot: str | int | None, update: Mapping[str, Any]) -> dict[str, Any] | None:
        """Queue an update for a bot (a token, a bot id or ``@username``; None: the only
        bot) and return it with its ``update_id`` (assigned when absent); None when the
        bot's ``allowed_updates`` filter it out, as Telegram never creates those."""
        with self._lock:
            return self._push(self._bot_of(bot), update)

    def _push(self, bot: _Bot, update: Mapping[str, Any]) -> dict[str, Any] | None:
        kinds = [key for key in update if key != "update_id"]
        if len(kinds) != 1:
            raise ValueError("an update holds exactly one of message, my_chat_member, callback_query...")
        if kinds[0] not in bot.allowed:
            return None
        stored = dict(update)
        given = _int(stored.get("update_id"))
        if given is None:
            stored["update_id"] = bot.next_update_id
        bot.next_update_id = max(bot.next_update_id, int(stored["update_id"])) + 1
        bot.updates.append((time.time(), stored))
        return dict(stored)

    def pending_updates(self, bot: str | int | None = None) -> list[dict[str, Any]]:
        """The updates a bot has not confirmed yet, oldest first."""
        with self._lock:
            b = self._bot_of(bot)
            self._prune_updates(b)
            return [dict(u) for _, u in b.updates]

    def webhook(self, bot: str | int | None = None) -> dict[str, Any]:
        """The bot's ``getWebhookInfo`` (the secret token never shown)."""
        with self._lock:
            return self._webhook_info(self._bot_of(bot))

    def webhook_deliveries(self, bot: str | int | None = None) -> list[dict[str, Any]]:
        """Each POST of an update to the bot's webhook: ``{"update_id", "url", "status"
        (HTTP status or None), "ok", "error", "time"}``, oldest first."""
        with self._lock:
            return [dict(d) for d in self._bot_of(bot).deliveries]

    def user_sends(
        self,
        chat_id: int,
        text: str,
        *,
        first_name: str | None = None,
        username: str | None = None,
        from_id: int | None = None,
        bot: str | int | None = None,
        language_code: str = "en",
    ) -> dict[str, Any]:
        """A person writes ``text`` to the bot (a private chat, registered when unknown;
        ``from_id`` for a message in a group) from an app in ``language_code``. Commands
        (``/start payload``, ``/stop@bot``) carry a ``bot_command`` entity, as Telegram
        sends them."""
        with self._lock:
            b = self._bot_of(bot)
            chat = self._chats.get(int(chat_id))
            if chat is None:
                self._ensure_private(int(chat_id), first_name)
                chat = self._chats[int(chat_id)]
            if chat.kind == "private" and chat.status == "blocked":
                self._member_update(b, chat, self._person(chat, first_name, username), "kicked", "member")
                chat.status = "active"
            person = (
                {**self._person(chat, first_name, username), "language_code": language_code}
                if from_id is None
                else {"id": int(from_id), "is_bot": False, "first_name": first_name or f"User {from_id}"}
            )
            message: dict[str, Any] = {
                "message_id": chat.next_message_id,
                "from": person,
                "chat": chat.obj(),
                "date": int(time.time()),
                "text": text,
            }
            chat.next_message_id += 1
            command = _COMMAND.match(text)
            if command is not None:
                message["entities"] = [
                    {"offset": 0, "length": utf16_len(command.group(0)), "type": "bot_command"}
                ]
            update = self._push(b, {"message": message})
            return update if update is not None else {"message": message}

    def user_blocks(self, chat_id: int, *, bot: str | int | None = None) -> dict[str, Any]:
        """The person blocks the bot: ``my_chat_member`` kicked; sends to them get 403."""
        return self._private_member(chat_id, "blocked", bot)

    def user_unblocks(self, chat_id: int, *, bot: str | int | None = None) -> dict[str, Any]:
        """The person unblocks the bot: ``my_chat_member`` member; sends work again."""
        return self._private_member(chat_id, "active", bot)

    def _private_member(self, chat_id: int, status: str, bot: str | int | None) -> dict[str, Any]:
        with self._lock:
            b = self._bot_of(bot)
            chat = self._ensure_private(int(chat_id), None)
            old, new = ("member", "kicked") if status == "blocked" else ("kicked", "member")
            chat.status = status
            return self._member_update(b, chat, self._person(chat, None, None), old, new)

    def bot_added_to(
        self,
        chat_id: int,
        kind: str = "channel",
        *,
        title: str | None = None,
        status: str = "administrator",
        by: int = 1_000_001,
        bot: str | int | None = None,
    ) -> dict[str, Any]:
        """Someone (user ``by``) adds the bot to a group, supergroup or channel as
        ``administrator`` (or ``member``): ``my_chat_member`` from ``left``."""
        if kind not in ("group", "supergroup", "channel"):
            raise ValueError("the bot is added to a group, a supergroup or a channel")
        if status not in ("administrator", "member"):
            raise ValueError("the bot is added as administrator or member")
        self.add_chat(int(chat_id), kind, "active", title=title)
        with self._lock:
            b = self._bot_of(bot)
            chat = self._chats[int(chat_id)]
            admin = {"id": by, "is_bot": False, "first_name": "Admin"}
            return self._member_update(b, chat, admin, "left", status)

    def bot_removed_from(
        self, chat_id: int, *, status: str = "left", by: int = 1_000_001, bot: str | int | None = None
    ) -> dict[str, Any]:
        """The bot is removed from a group or channel (``left``, or ``kicked``: banned);
        sends to it then get 403."""
        if status not in ("left", "kicked"):
            raise ValueError("the bot is removed as left or kicked")
        with self._lock:
            b = self._bot_of(bot)
            chat = self._chats.get(int(chat_id))
            if chat is None or chat.kind == "private":
                raise ValueError(f"{chat_id} is not a group or channel the emulator knows")
            old = "administrator"
            chat.status = "kicked"
            admin = {"id": by, "is_bot": False, "first_name": "Admin"}
            return self._member_update(b, chat, admin, old, status)

    def _ensure_private(self, chat_id: int, first_name: str | None) -> _Chat:
        if chat_id <= 0:
            raise ValueError("a person's private chat has a positive id")
        chat = self._chats.get(chat_id)
        if chat is None:
            chat = self._chats[chat_id] = _Chat(chat_id, title=first_name)
        elif first_name and chat.kind == "private" and not chat.title:
            chat.title = first_name
        return chat

    @staticmethod
    def _person(chat: _Chat, first_name: str | None, username: str | None) -> dict[str, Any]:
        person: dict[str, Any] = {
            "id": chat.id,
            "is_bot": False,
            "first_name": first_name or chat.title or f"User {chat.id}",
            "language_code": "en",
        }
        if username or chat.username:
            person["username"] = username or chat.username
        return person

    def _member_update(
        self, bot: _Bot, chat: _Chat, actor: dict[str, Any], old: str, new: str
    ) -> dict[str, Any]:
        def member(status: str) -> dict[str, Any]:
            out: dict[str, Any] = {"user": bot.user(), "status": status}
            if status == "kicked":
                out["until_date"] = 0
            if status == "administrator":
                out.update(
                    {
                        "can_be_edited": False,
                        "can_manage_chat": True,
                        "can_delete_messages": True,
                        "can_post_messages": chat.kind == "channel",
                        "can_invite_users": True,
                        "is_anonymous": False,
                    }
                )
            return out

        update = {
            "my_chat_member": {
                "chat": chat.obj(),
                "from": actor,
                "date": int(time.time()),
                "old_chat_member": member(old),
                "new_chat_member": member(new),
            }
        }
        pushed = self._push(bot, update)
        return pushed if pushed is not None else update

    def _prune_updates(self, bot: _Bot) -> None:
        edge = time.time() - UPDATE_TTL
        while bot.updates and bot.updates[0][0] < edge:
            bot.updates.popleft()

    def _updates(self, bot: _Bot, offset: int | None, limit: int) -> list[dict[str, Any]]:
        """Confirm (forget) what ``offset`` says, then the first ``limit`` updates."""
        self._prune_updates(bot)
        queue = bot.updates
        if offset is not None:
            if offset < 0:
                while len(queue) > -offset:
                    queue.popleft()
            else:
                while queue and int(queue[0][1]["update_id"]) < offset:
                    queue.popleft()
        return [dict(update) for _, update in itertools.islice(queue, limit)]

    def _get_updates(self, bot: _Bot, params: Mapping[str, Any], now: float) -> Response | _LongPoll:
        if bot.webhook is not None:
            raise _ApiError(409, _CONFLICT_WEBHOOK)
        offset = _int(params.get("offset")) if params.get("offset") not in (None, "") else None
        raw_limit = params.get("limit")
        limit = UPDATES_MAX if raw_limit in (None, "") else _int(raw_limit)
        if limit is None:
            raise _bad('field "limit" must be of type Integer')
        limit = min(UPDATES_MAX, max(1, limit))
        timeout = number(params.get("timeout", 0))
        if timeout is None:
            raise _bad('field "timeout" must be of type Integer')
        allowed = params.get("allowed_updates")
        if allowed not in (None, ""):
            bot.allowed = _allowed(allowed)
        bot.polls += 1
        result = self._updates(bot, offset, limit)
        if result or timeout <= 0:
            return JSONResponse({"ok": True, "result": result})
        return _LongPoll(bot, limit, now + timeout, bot.polls)

    # ------------------------------------------------------------- receiving: webhook

    def _webhook_method(self, bot: _Bot, method: str, params: Mapping[str, Any]) -> Response:
        if method == "getwebhookinfo":
            return JSONResponse({"ok": True, "result": self._webhook_info(bot)})
        drop = flag(params.get("drop_pending_updates", False))
        url = params.get("url", "") if method == "setwebhook" else ""
        if not isinstance(url, str):
            raise _bad("bad webhook: Webhook URL must be a String")
        url = url.strip()
        if method == "deletewebhook" or not url:
            had = bot.webhook is not None
            bot.webhook = None
            if drop:
                bot.updates.clear()
            description = "Webhook was deleted" if had else "Webhook is already deleted"
            return JSONResponse({"ok": True, "result": True, "description": description})
        if not _web_url(url):
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret in ("", None):
            secret = None
        elif not isinstance(secret, str) or not _SECRET_TOKEN.fullmatch(secret):
            raise _bad("secret token contains unallowed characters")
        allowed = params.get("allowed_updates")
        if allowed not in (None, ""):
            bot.allowed = _allowed(allowed)
        connections = _int(params.get("max_connections", 40)) or 40
        generation = (bot.webhook.generation + 1) if bot.webhook is not None else 1
        bot.webhook = _Webhook(url, secret, max(1, min(100, connections)), generation)
        if drop:
            bot.updates.clear()
        bot.webhook_task = asyncio.get_running_loop().create_task(self._webhook_loop(bot, generation))
        return JSONResponse({"ok": True, "result": True, "description": "Webhook was set"})

    def _webhook_info(self, bot: _Bot) -> dict[str, Any]:
        self._prune_updates(bot)
        hook = bot.webhook
        info: dict[str, Any] = {
            "url": hook.url if hook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(bot.updates),
        }
        if hook is not None:
            info["max_connections"] = hook.max_connections
            if bot.allowed != DEFAULT_ALLOWED:
                info["allowed_updates"] = sorted(bot.allowed)
            if hook.last_error_date is not None:
                info["last_error_date"] = hook.last_error_date
                info["last_error_message"] = hook.last_error_message
        return info

    async def _webhook_loop(self, bot: _Bot, generation: int) -> None:
        """POST the bot's updates to its webhook, one at a time, oldest first, until the
        webhook is deleted or replaced; a failed POST is retried after a short backoff."""
        backoff = 0.0
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0)) as client:
            while True:
                with self._lock:
                    hook = bot.webhook
                    if self._bots.get(bot.token) is not bot or hook is None or hook.generation != generation:
                        return
                    self._prune_updates(bot)
                    update = dict(bot.updates[0][1]) if bot.updates else None
                    headers = (
                        {"X-Telegram-Bot-Api-Secret-Token": hook.secret_token} if hook.secret_token else {}
                    )
                    url = hook.url
                if update is None:
                    await asyncio.sleep(0.01)
                    continue
                status: int | None = None
                try:
                    response = await client.post(url, json=update, headers=headers)
                    status = response.status_code
                    error = (
                        None
                        if 200 <= status < 300
                        else f"Wrong response from the webhook: {status} {response.reason_phrase}"
                    )
                except httpx.HTTPError as exc:
                    error = f"Connection failed: {type(exc).__name__}"
                with self._lock:
                    bot.deliveries.append(
                        {
                            "update_id": update["update_id"],
                            "url": url,
                            "status": status,
                            "ok": error is None,
                            "error": error,
                            "time": time.time(),
                        }
                    )
                    if error is None:
                        if bot.updates and bot.updates[0][1]["update_id"] == update["update_id"]:
                            bot.updates.popleft()
                        backoff = 0.0
                    else:
                        hook.last_error_date = int(time.time())
                        hook.last_error_message = error
                        backoff = min(WEBHOOK_RETRY_MAX, max(WEBHOOK_RETRY_MIN, backoff * 2))
                if error is not None:
                    await asyncio.sleep(backoff)

    # ------------------------------------------------------------- control API

    @control
    async def _http_bots(self, request: Request) -> Response:
        if request.method == "GET":
            with self._lock:
                return self.control_answer({"bots": [bot.public() for bot in self._bots.values()]})
        body = await control_object(request, {})
        token = body.get("token")
        if not isinstance(token, str):
            raise ControlError("a bot needs a token")
        bot = self.add_bot(token, str(body.get("username") or "feedcast_bot"), bot_id=_int(body.get("id")))
        return self.control_answer({"bot": bot})

    @control
    async def _http_chats(self, request: Request) -> Response:
        if request.method == "GET":
            chat_id = request.query_params.get("chat_id")
            if chat_id is None:
                return self.control_answer({"chats": self.chats()})
            with self._lock:
                chat = self._lookup(chat_id)
                if chat is None:
                    raise ControlError(f"unknown chat {chat_id}", 404)
                return self.control_answer({"chat": chat.public()})
        body = await control_object(request, {})
        entries = body.get("chats", [body])
        if not isinstance(entries, list):
            raise ControlError("chats must be a list")
        done = []
        for entry in entries:
            if not isinstance(entry, dict) or _int(entry.get("chat_id")) is None:
                raise ControlError("each chat needs an integer chat_id")
            done.append(
                self.add_chat(
                    int(entry["chat_id"]),
                    kind=str(entry.get("kind", "private")),
                    status=str(entry.get("status", "active")),
                    migrate_to=_int(entry.get("migrate_to")),
                    username=entry.get("username"),
                    title=entry.get("title"),
                )
            )
        return self.control_answer({"chats": done})

    @control
    async def _http_received(self, request: Request) -> Response:
        chat_id = request.query_params.get("chat_id")
        if chat_id is None:
            return self.control_answer({"received": self.all_received()})
        return self.control_answer({"chat_id": chat_id, "messages": self.received(chat_id)})

    @control
    async def _http_stats(self, request: Request) -> Response:
        return self.control_answer(self.stats(chats=flag(request.query_params.get("chats", "false"))))

    @control
    async def _http_reset(self, request: Request) -> Response:
        body = await control_object(request, {})
        self.reset(everything=flag(body.get("everything", False)))
        return self.control_answer({})

    @control
    async def _http_updates(self, request: Request) -> Response:
        if request.method == "GET":
            name = request.query_params.get("bot")
            return self.control_answer(
                {
                    "updates": self.pending_updates(name),
                    "webhook": self.webhook(name),
                    "deliveries": self.webhook_deliveries(name),
                }
            )
        body = await control_object(request, {})
        raw_bot = body.get("bot")
        bot: str | int | None = (
            raw_bot if isinstance(raw_bot, str | int) and not isinstance(raw_bot, bool) else None
        )
        pushed: list[dict[str, Any] | None]
        if "update" in body or "updates" in body:
            updates = body.get("updates", [body.get("update")])
            if not isinstance(updates, list) or not all(isinstance(u, dict) for u in updates):
                raise ControlError("updates must be a list of objects")
            pushed = [self.push_update(bot, u) for u in updates]
        else:
            pushed = [self._scripted(bot, body)]
        return self.control_answer({"updates": [u for u in pushed if u is not None]})

    def _scripted(self, bot: str | int | None, body: Mapping[str, Any]) -> dict[str, Any]:
        action = body.get("action")
        chat_id = _int(body.get("chat_id"))
        if chat_id is None:
            raise ValueError("a scripted action needs an integer chat_id")
        if action == "sends":
            text = body.get("text")
            if not isinstance(text, str):
                raise ValueError("sends needs a text")
            return self.user_sends(chat_id, text, first_name=body.get("first_name"), bot=bot)
        if action == "blocks":
            return self.user_blocks(chat_id, bot=bot)
        if action == "unblocks":
            return self.user_unblocks(chat_id, bot=bot)
        if action == "added":
            return self.bot_added_to(
                chat_id,
                str(body.get("kind", "channel")),
                title=body.get("title"),
                status=str(body.get("status", "administrator")),
                bot=bot,
            )
        if action == "removed":
            return self.bot_removed_from(chat_id, status=str(body.get("status", "left")), bot=bot)
        raise ValueError("action must be one of sends, blocks, unblocks, added, removed")


def _album_size(params: Mapping[str, Any]) -> int:
    media = params.get("media")
    if isinstance(media, str):
        try:
            media = json.loads(media)
        except ValueError:
            return 1
    return max(1, len(media)) if isinstance(media, list) else 1
