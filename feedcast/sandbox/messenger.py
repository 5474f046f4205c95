"""A local stand-in for the Facebook Messenger Send API (Graph API), faithful to the
envelopes, error codes, message limits and rate limits of docs/channels.md.

``MessengerEmulator().app`` is a Starlette app; serve it with
:class:`~feedcast.sandbox.asgi.AsgiServer` and point a Messenger channel's ``api_url`` at
``server.base_url + "/v25.0"`` (any ``v{N}.{M}`` version works, and the unversioned path)::

    emulator = MessengerEmulator(seed=1)
    emulator.add_page("sandbox-page-token", page_id="1000000001", name="Sandbox Shop")
    emulator.add_person("2500000000000001", last_inbound=datetime.now(UTC))
    with AsgiServer(emulator.app) as server:
        ...
        emulator.received("2500000000000001")  # what that person got
        emulator.stats()["keys"]["page:1000000001:media"]["max_window"]

Provider endpoints:

``POST /v{N}.0/me/messages``
    The page access token from an ``Authorization: Bearer`` header (what feedcast
    sends), the ``access_token`` query parameter or the body's ``access_token``
    (``stats()["token_via"]`` counts which). JSON or form bodies (form values that are
    JSON objects, e.g. ``recipient``, are decoded). Success ``{"recipient_id",
    "message_id"}`` with ids like ``m_...``; failure ``{"error": {"message", "type",
    "code", "error_subcode", "fbtrace_id"}}`` (``error_subcode`` only when there is one).
``GET /v{N}.0/me``
    The page of the token: ``{"id", "name"}``.

Errors, checked in this order (the HTTP status is our choice where Graph varies):

- connection dropped (``drop_rate``): the server aborts the TCP connection without
  writing a byte (uvicorn's transport, reached through the bound ``receive`` callable;
  another ASGI server gets an exception, i.e. its own 500);
- transient fault (``fault_rate``): code 2 (HTTP 500) or 1200 (HTTP 503), ``is_transient``;
- unknown or missing token: 190 ``OAuthException``, HTTP 401 when the token came in an
  ``Authorization`` header (with ``WWW-Authenticate``), else HTTP 400;
- over the rate limit (``limits=True``): 613 ``(#613) Calls to this api have exceeded
  the rate limit.``, HTTP 400 as Graph answers it, no ``Retry-After`` (Graph sends none);
- malformed body / recipient: 100, HTTP 400;
- page without permission (``add_page(permissions=False | 200 | 10)``): 200 or 10,
  HTTP 403;
- unknown PSID (not digits, or unregistered with ``auto_people=False``): 100 / 2018001;
- person blocked or deactivated: 551 / 1545041, HTTP 400;
- scripted errors (:meth:`MessengerEmulator.fail_next`), for codes the emulator cannot
  otherwise produce (4, 368...);
- invalid message (text over 2000, unknown attachment type, generic template over 10
  elements, title missing or over 80, subtitle over 80, more than 3 buttons, button
  template text over 640, button title over 20, more than 13 quick replies, bad
  messaging_type or tag): 100 ``(#100) ...``, HTTP 400; lengths count UTF-16 code units
  like :mod:`layouts.validate`;
- outside the window: 10 / 2018278, HTTP 400, unless ``messaging_type`` is
  ``MESSAGE_TAG`` with a permitted tag (CONFIRMED_EVENT_UPDATE, POST_PURCHASE_UPDATE,
  ACCOUNT_UPDATE; HUMAN_AGENT within 7 days of the person's last message).

Rate limits (sliding 1-second windows, per page): 300 calls/s for every message, and
10/s more narrowly for audio and video attachments (key ``page:ID:media``). Only
admitted calls fill a limit (a rejected call does not push the window further), but the
statistics count every request seen: ``max_window`` is the largest number of requests
in any sliding 1-second window (rejected ones too), ``over_limit`` the number of
requests that arrived while that window already held ``limit`` requests (what a real
page would have refused; also counted with ``limits=False``, for benchmarks). The
windows read the emulator's ``clock`` (:mod:`feedcast.kernel.clock`): with a ``FakeClock`` a
burst arrives at one instant however slow the machine, and the test moves time.

Control API (JSON), for tests and benchmarks in another process:

- ``GET /_sandbox/pages`` (tokens are not listed), ``POST /_sandbox/pages``
  ``{"token", "page_id"?, "name"?, "permissions"?: true | false | 200 | 10}``;
- ``GET /_sandbox/people``, ``POST /_sandbox/people`` ``{"psid", "status"?,
  "last_inbound"?: ISO time | "now" | null}`` or a list of those (a known person keeps
  the fields not given);
- ``GET /_sandbox/received?psid=`` (without ``psid``: every person);
- ``GET /_sandbox/stats``;
- ``POST /_sandbox/reset`` ``{"everything"?: bool}``: forget messages, statistics,
  windows and scripted errors (``everything``: pages and people too);
- ``GET|POST /_sandbox/config`` ``{"limits", "fault_rate", "drop_rate", "seed",
  "auto_people", "auto_window_open"}``;
- ``POST /_sandbox/errors`` ``{"psid" ("*": anyone), "code", "subcode"?, "message"?,
  "status"?, "times"?}``;
- ``GET|POST /_sandbox/webhook`` ``{"url", "app_secret", "page_id"?}``: where the page's
  webhook events go (the secret is never listed back);
- ``POST /_sandbox/inbound`` ``{"psid", "text" | "quick_reply" | "postback" | "referral",
  "title"?, "ref"?}``: the person writes, taps a quick reply or a button, or opens an
  m.me link; answers ``{"status", "body"}`` of the webhook's answer.

Inbound (the webhook side): after :meth:`MessengerEmulator.webhook`, the ``person_*``
methods POST what Meta would to that URL, signed with
``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app_secret, raw body)>``, and open the
person's 24-hour window (as a real person writing does)::

    emulator.webhook("http://127.0.0.1:8080/messenger/shop", "the-app-secret")
    emulator.person_writes("2500000000000001", "subscribe")     # a message with a mid
    emulator.person_postback("2500000000000001", "GET_STARTED")
    emulator.person_quick_reply("2500000000000001", "UNSUBSCRIBE", "Unsubscribe")
    emulator.person_referral("2500000000000001", "vip")          # m.me/page?ref=vip
    emulator.send_raw(body, signature="sha256=00")               # anything, for tests
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import random
import re
import socket
import string
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Unpack
from urllib.parse import parse_qsl

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from channels.messenger import attachment_type
from feedcast.sandbox.base import (
    Configurable,
    ControlError,
    Dropped,
    EmulatorSettings,
    Window,
    control,
    control_body,
    control_object,
    drop_connection,
    is_image,
    parse_multipart,
    uvicorn_transport,
)
from layouts.text import utf16_len

__all__ = [
    "GRAPH_VERSION",
    "PERMITTED_TAGS",
    "MessengerEmulator",
    "Page",
    "Person",
    "WebhookTarget",
]

GRAPH_VERSION = "v25.0"
PERMITTED_TAGS = frozenset(
    {"CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "ACCOUNT_UPDATE", "HUMAN_AGENT"}
)
MESSAGING_TYPES = ("RESPONSE", "UPDATE", "MESSAGE_TAG")
STATUSES = ("active", "blocked", "deactivated")
WINDOW = timedelta(hours=24)
HUMAN_AGENT_WINDOW = timedelta(days=7)

TEXT_LIMIT = 300  # calls per second per page
MEDIA_LIMIT = 10  # audio and video attachments per second per page
UPLOAD_LIMIT = 25_000_000  # bytes the Attachment Upload API takes

_MEDIA_TYPES = ("image", "audio", "video", "file")
_SLOW_MEDIA = frozenset({"audio", "video"})
_VERSION = re.compile(r"v\d+\.\d+")
_URL = re.compile(r"https?://[^\s/?#]+[^\s]*", re.IGNORECASE)
_TRACE_CHARS = string.ascii_letters + string.digits


@dataclass(slots=True)
class Page:
    token: str
    page_id: str
    name: str
    permissions: bool | int = True  # True; False / 200: code 200; 10: code 10

    def public(self) -> dict[str, Any]:
        return {"id": self.page_id, "name": self.name, "permissions": self.permissions}


@dataclass(slots=True)
class Person:
    psid: str
    status: str = "active"  # active | blocked | deactivated
    last_inbound: datetime | None = None

    def public(self) -> dict[str, Any]:
        last = self.last_inbound.isoformat() if self.last_inbound else None
        return {"psid": self.psid, "status": self.status, "last_inbound": last}


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """Where the page's webhook events go, and the app secret that signs them."""

    url: str
    app_secret: str
    page_id: str | None = None  # None: the first registered page's id

    def public(self) -> dict[str, Any]:
        return {"url": self.url, "page_id": self.page_id}


class _GraphError(Exception):
    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        subcode: int | None = None,
        *,
        type_: str = "OAuthException",
        transient: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.subcode = subcode
        self.type = type_
        self.transient = transient
        self.headers = dict(headers or {})

    @property
    def key(self) -> str:
        return f"{self.code}/{self.subcode}" if self.subcode else str(self.code)


def _invalid(message: str) -> _GraphError:
    return _GraphError(400, 100, f"(#100) {message}")


@dataclass(slots=True)
class _Scripted:
    code: int
    subcode: int | None
    message: str
    status: int
    times: int


class _Key:
    """One rate-limit key: the requests seen (``over_limit`` and ``max_window`` count
    them, refused ones too) and the calls admitted, in sliding 1-second windows."""

    __slots__ = ("admitted", "limit", "over_limit", "rate_limited", "requests", "seen")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen = Window(1.0)
        self.admitted = Window(1.0)
        self.requests = 0
        self.over_limit = 0
        self.rate_limited = 0

    def see(self, now: float) -> None:
        self.requests += 1
        if self.seen.hit(now) > self.limit:
            self.over_limit += 1

    def public(self) -> dict[str, int]:
        return {
            "limit": self.limit,
            "requests": self.requests,
            "max_window": self.seen.peak,
            "over_limit": self.over_limit,
            "rate_limited": self.rate_limited,
        }


class _NoDelay:
    """Sets TCP_NODELAY on each connection: asyncio does so only when the listening
    socket was created with ``proto=IPPROTO_TCP`` (uvicorn's own ``bind_socket`` and, at
    first, :class:`AsgiServer` create it with proto 0); without it every keep-alive
    answer waits ~40 ms for a delayed ACK (Nagle), capping a client at ~25 calls/s."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            transport = uvicorn_transport(receive)
            sock = transport.get_extra_info("socket") if transport is not None else None
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await self.app(scope, receive, send)


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _parse_time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return _aware(value)
    if value == "now":
        return datetime.now(UTC)
    if not isinstance(value, str):
        raise ValueError(f"last_inbound must be an ISO time, 'now' or null, not {value!r}")
    return _aware(datetime.fromisoformat(value))


class MessengerEmulator(Configurable):
    """The Send API of one or more Pages, with people, windows, limits and faults."""

    name: ClassVar[str] = "messenger"
    switches: ClassVar[tuple[str, ...]] = ("auto_people", "auto_window_open")

    def __init__(
        self,
        *,
        auto_people: bool = True,
        auto_window_open: bool = True,
        text_limit: int = TEXT_LIMIT,
        media_limit: int = MEDIA_LIMIT,
        **settings: Unpack[EmulatorSettings],
    ) -> None:
        super().__init__(**settings)
        self.text_limit = text_limit
        self.media_limit = media_limit
        self._pages: dict[str, Page] = {}
        self._people: dict[str, Person] = {}
        self.auto_people = auto_people
        self.auto_window_open = auto_window_open
        self._reseed(self.faults.seed)
        self._clear()
        self._webhook: WebhookTarget | None = None
        self.app = Starlette(
            middleware=[Middleware(_NoDelay)],
            routes=[
                Route("/{version}/me/messages", self._messages_endpoint, methods=["POST"]),
                Route("/{version}/me/message_attachments", self._attachments_endpoint, methods=["POST"]),
                Route("/me/message_attachments", self._attachments_endpoint, methods=["POST"]),
                Route("/me/messages", self._messages_endpoint, methods=["POST"]),
                Route("/{version}/me", self._me_endpoint, methods=["GET"]),
                Route("/me", self._me_endpoint, methods=["GET"]),
                Route("/_sandbox/pages", self._pages_endpoint, methods=["GET", "POST"]),
                Route("/_sandbox/people", self._people_endpoint, methods=["GET", "POST"]),
                Route("/_sandbox/received", self._received_endpoint, methods=["GET"]),
                Route("/_sandbox/stats", self._stats_endpoint, methods=["GET"]),
                Route("/_sandbox/reset", self._reset_endpoint, methods=["POST"]),
                Route("/_sandbox/config", self._http_options, methods=["GET", "POST"]),
                Route("/_sandbox/errors", self._errors_endpoint, methods=["POST"]),
                Route("/_sandbox/webhook", self._webhook_endpoint, methods=["GET", "POST"]),
                Route("/_sandbox/inbound", self._inbound_endpoint, methods=["POST"]),
            ],
        )

    # ------------------------------------------------------------------ python API

    def add_page(
        self,
        token: str,
        page_id: str | None = None,
        *,
        name: str = "Sandbox Page",
        permissions: bool | int = True,
    ) -> Page:
        """Register a page and its access token (``permissions``: True, or False / 200 /
        10 for a page whose token may not send: error 200 or 10)."""
        if not token:
            raise ValueError("a page needs a token")
        if not isinstance(permissions, bool) and not (
            isinstance(permissions, int) and permissions in (10, 200)
        ):
            raise ValueError("permissions is true, false, 200 or 10")
        with self._lock:
            page = Page(token, page_id or str(1_000_000_001 + len(self._pages)), name, permissions)
            self._pages[token] = page
            return page

    def add_person(self, psid: str, status: str = "active", last_inbound: datetime | None = None) -> Person:
        """Register (or replace) a person; ``last_inbound`` None: the window is closed."""
        psid = str(psid)
        if status not in STATUSES:
            raise ValueError(f"status is one of {', '.join(STATUSES)}, not {status!r}")
        with self._lock:
            person = Person(psid, status, _aware(last_inbound) if last_inbound else None)
            self._people[psid] = person
            return person

    def touch(self, psid: str, at: datetime | None = None) -> None:
        """The person messaged the page (``at``, default now): the window opens."""
        with self._lock:
            person = self._people.get(str(psid)) or Person(str(psid))
            person.last_inbound = _aware(at) if at else datetime.now(UTC)
            self._people[person.psid] = person

    def person(self, psid: str) -> Person | None:
        with self._lock:
            return self._people.get(str(psid))

    def received(self, psid: str) -> list[dict[str, Any]]:
        """What a person received, in order: ``{"message_id", "page_id",
        "messaging_type", "tag", "message", "at", "url"}`` (``url``: path and query
        of the request as it arrived)."""
        with self._lock:
            return list(self._received.get(str(psid), ()))

    def uploads(self) -> list[dict[str, Any]]:
        """What the Attachment Upload API took, in order: ``{"attachment_id", "page_id",
        "type", "filename", "size", "sha256", "is_reusable"}``."""
        with self._lock:
            return [{"attachment_id": key, **value} for key, value in self._attachments.items()]

    def all_received(self) -> dict[str, list[dict[str, Any]]]:
        with self._lock:
            return {psid: list(rows) for psid, rows in self._received.items()}

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self._requests,
                "accepted": self._accepted,
                "rejected": self._requests - self._accepted - self._dropped,
                "rate_limited": sum(k.rate_limited for k in self._keys.values()),
                "over_limit": sum(k.over_limit for k in self._keys.values()),
                "faults": self._faults,
                "dropped": self._dropped,
                "errors": dict(self._errors),
                "token_via": dict(self._token_via),
                "keys": {key: k.public() for key, k in self._keys.items()},
                "limits": self.limits,
            }

    def reset(self, *, everything: bool = False) -> None:
        """Forget messages, statistics, windows and scripted errors; ``everything``:
        pages, people and the webhook too. The fault generator restarts from ``seed``."""
        with self._lock:
            self._clear()
            self._reseed(self.faults.seed)
            if everything:
                self._pages.clear()
                self._people.clear()
                self._webhook = None

    def options(self) -> dict[str, Any]:
        return {**super().options(), "text_limit": self.text_limit, "media_limit": self.media_limit}

    config = options  # its first name

    def fail_next(
        self,
        psid: str,
        code: int,
        subcode: int | None = None,
        *,
        message: str | None = None,
        status: int = 400,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` messages to ``psid`` (``"*"``: anyone) with this
        error (after authentication and rate limiting, before the message is checked)."""
        text = message or f"(#{code}) Scripted error"
        with self._lock:
            self._scripted.setdefault(str(psid), deque()).append(
                _Scripted(int(code), subcode, text, int(status), int(times))
            )

    # ------------------------------------------------------------------ inbound (webhook)

    def webhook(self, url: str, app_secret: str, *, page_id: str | None = None) -> WebhookTarget:
        """Send the page's webhook events to ``url``, signed with ``app_secret`` (what
        the Meta app settings hold: the callback URL and the app secret)."""
        if not url.lower().startswith(("http://", "https://")):
            raise ValueError(f"the webhook URL must be http(s), not {url!r}")
        if not app_secret:
            raise ValueError("the webhook needs an app secret")
        with self._lock:
            self._webhook = WebhookTarget(url, app_secret, page_id)
            return self._webhook

    def sign(self, body: bytes) -> str:
        """The ``X-Hub-Signature-256`` value Meta would send with ``body``."""
        target = self._target()
        digest = hmac.new(target.app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
        return f"sha256={digest}"

    def person_writes(self, psid: str, text: str) -> httpx.Response:
        """The person sends a text message (with a fresh ``mid``)."""
        return self._post_event(psid, {"message": {"mid": self._new_mid(), "text": text}})

    def person_quick_reply(self, psid: str, payload: str, title: str | None = None) -> httpx.Response:
        """The person taps a quick reply: a message whose text is its title."""
        message = {"mid": self._new_mid(), "text": title or payload, "quick_reply": {"payload": payload}}
        return self._post_event(psid, {"message": message})

    def person_postback(
        self, psid: str, payload: str, *, title: str | None = None, ref: str | None = None
    ) -> httpx.Response:
        """The person taps a button (Get Started, a persistent menu item, a postback
        button); ``ref``: the Get Started of a new conversation opened by an m.me link
        with ``?ref=``."""
        postback: dict[str, Any] = {"mid": self._new_mid(), "title": title or payload, "payload": payload}
        if ref is not None:
            postback["referral"] = {"ref": ref, "source": "SHORTLINK", "type": "OPEN_THREAD"}
        return self._post_event(psid, {"postback": postback})

    def person_referral(self, psid: str, ref: str, *, source: str = "SHORTLINK") -> httpx.Response:
        """The person opens an existing conversation through ``m.me/PAGE?ref=REF``."""
        return self._post_event(psid, {"referral": {"ref": ref, "source": source, "type": "OPEN_THREAD"}})

    def send_raw(
        self, body: bytes | str | Mapping[str, Any], *, signature: str | bool = True
    ) -> httpx.Response:
        """POST ``body`` to the webhook as is: ``signature`` True signs it with the app
        secret, False sends no signature header, a string is sent as the header."""
        target = self._target()
        raw = _raw(body)
        headers = {"Content-Type": "application/json"}
        if signature is True:
            headers["X-Hub-Signature-256"] = self.sign(raw)
        elif isinstance(signature, str):
            headers["X-Hub-Signature-256"] = signature
        with httpx.Client(timeout=10.0) as client:
            return client.post(target.url, content=raw, headers=headers)

    def event_body(self, psid: str, fields: Mapping[str, Any]) -> bytes:
        """A webhook body with one messaging event of ``psid`` (``fields``: its
        ``message`` / ``postback`` / ``referral`` / ``optin``...)."""
        target = self._target()
        with self._lock:
            page_id = target.page_id or next((p.page_id for p in self._pages.values()), "1000000001")
        now = int(datetime.now(UTC).timestamp() * 1000)
        event = {"sender": {"id": str(psid)}, "recipient": {"id": page_id}, "timestamp": now, **fields}
        body = {"object": "page", "entry": [{"id": page_id, "time": now, "messaging": [event]}]}
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def _post_event(self, psid: str, fields: Mapping[str, Any]) -> httpx.Response:
        raw = self.event_body(psid, fields)
        self.touch(psid)  # a person's action opens the 24-hour window
        return self.send_raw(raw)

    def _target(self) -> WebhookTarget:
        with self._lock:
            target = self._webhook
        if target is None:
            raise RuntimeError("no webhook configured: call webhook(url, app_secret) first")
        return target

    def _new_mid(self) -> str:
        with self._lock:
            return self._message_id()

    def _inbound_fields(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """A control API request as the event fields of one person action."""
        kinds = [k for k in ("text", "quick_reply", "postback", "referral") if k in data]
        if len(kinds) != 1:
            raise ValueError("give exactly one of text, quick_reply, postback, referral")
        kind, value = kinds[0], str(data[kinds[0]])
        title = data.get("title")
        if kind == "text":
            return {"message": {"mid": self._new_mid(), "text": value}}
        if kind == "quick_reply":
            text = str(title or value)
            return {"message": {"mid": self._new_mid(), "text": text, "quick_reply": {"payload": value}}}
        if kind == "postback":
            postback: dict[str, Any] = {
                "mid": self._new_mid(),
                "title": str(title or value),
                "payload": value,
            }
            if data.get("ref") is not None:
                postback["referral"] = {"ref": str(data["ref"]), "source": "SHORTLINK", "type": "OPEN_THREAD"}
            return {"postback": postback}
        return {"referral": {"ref": value, "source": "SHORTLINK", "type": "OPEN_THREAD"}}

    # ------------------------------------------------------------------ internals

    def _reseed(self, seed: int | None) -> None:
        super()._reseed(seed)
        self._id_rng = random.Random(None if seed is None else seed + 1)

    def _clear(self) -> None:
        self._received: dict[str, list[dict[str, Any]]] = {}
        # attachment_id -> what the Attachment Upload API took: page, type, file
        self._attachments: dict[str, dict[str, Any]] = {}
        self._keys: dict[str, _Key] = {}
        self._scripted: dict[str, deque[_Scripted]] = {}
        self._errors: dict[str, int] = {}
        self._token_via: dict[str, int] = {}
        self._requests = 0
        self._accepted = 0
        self._faults = 0
        self._dropped = 0

    def _key(self, key: str, limit: int) -> _Key:
        found = self._keys.get(key)
        if found is None:
            found = self._keys[key] = _Key(limit)
        return found

    def _message_id(self) -> str:
        raw = self._id_rng.getrandbits(264).to_bytes(33, "big")
        return "m_" + base64.urlsafe_b64encode(raw).decode("ascii")

    def _trace_id(self) -> str:
        return "A" + "".join(self._id_rng.choices(_TRACE_CHARS, k=22))

    def _error_response(self, error: _GraphError) -> Response:
        body: dict[str, Any] = {"message": error.message, "type": error.type, "code": error.code}
        if error.subcode is not None:
            body["error_subcode"] = error.subcode
        if error.transient:
            body["is_transient"] = True
        body["fbtrace_id"] = self._trace_id()
        self._errors[error.key] = self._errors.get(error.key, 0) + 1
        return JSONResponse({"error": body}, error.status, error.headers)

    @staticmethod
    def _token(request: Request, form: Mapping[str, Any]) -> tuple[str | None, str]:
        header = request.headers.get("authorization")
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() in ("bearer", "oauth") and value.strip():
                return value.strip(), "header"
            return None, "header"
        query = request.query_params.get("access_token")
        if query:
            return query, "query"
        body = form.get("access_token")
        if isinstance(body, str) and body:
            return body, "body"
        return None, "none"

    def _page(self, token: str | None, via: str) -> Page:
        page = self._pages.get(token) if token else None
        if page is not None:
            return page
        headers = {}
        if via == "header":
            headers["WWW-Authenticate"] = (
                'OAuth "Facebook Platform" "invalid_token" "Invalid OAuth access token data."'
            )
        status = 401 if via == "header" else 400
        if token is None:
            raise _GraphError(
                status, 190, "An active access token must be used to query information.", headers=headers
            )
        raise _GraphError(status, 190, "Invalid OAuth access token data.", headers=headers)

    # ------------------------------------------------------------------ endpoints

    async def _messages_endpoint(self, request: Request) -> Response:
        version = request.path_params.get("version")
        raw = await request.body()
        now = self.clock.monotonic()
        try:
            with self._lock:
                return self._messages(request, version, raw, now)
        except Dropped:
            await drop_connection(request.receive)
            return Response(status_code=500)  # never sent: the connection is gone

    def _messages(self, request: Request, version: str | None, raw: bytes, now: float) -> Response:
        self._requests += 1
        try:
            if version is not None and not _VERSION.fullmatch(version):
                raise _GraphError(400, 2500, f"Unknown path components: /{version}/me/messages")
            body, body_error = _parse_body(raw, request.headers.get("content-type", ""))
            token, via = self._token(request, body)
            self._token_via[via] = self._token_via.get(via, 0) + 1
            page = self._pages.get(token) if token else None
            keys: list[_Key] = []
            if page is not None:
                keys.append(self._key(f"page:{page.page_id}", self.text_limit))
                if attachment_type(body) in _SLOW_MEDIA:
                    keys.append(self._key(f"page:{page.page_id}:media", self.media_limit))
                for key in keys:
                    key.see(now)
            if self.faults.drop():
                self._dropped += 1
                raise Dropped
            if self.faults.fault():
                self._faults += 1
                if self.faults.coin():
                    raise _GraphError(
                        500,
                        2,
                        "An unexpected error has occurred. Please retry your request later.",
                        transient=True,
                    )
                raise _GraphError(
                    503, 1200, "Temporary send message failure. Please try again later", transient=True
                )
            page = self._page(token, via)
            if self.limits:
                full = [key for key in keys if not key.admitted.fits(now, 1, key.limit)]
                if full:
                    for key in full:
                        key.rate_limited += 1
                    raise _GraphError(400, 613, "(#613) Calls to this api have exceeded the rate limit.")
                for key in keys:
                    key.admitted.add(now, 1)
            if body_error is not None:
                raise body_error
            answer = self._deliver(page, body, request)
        except _GraphError as error:
            return self._error_response(error)
        self._accepted += 1
        return JSONResponse(answer)

    def _deliver(self, page: Page, body: Mapping[str, Any], request: Request) -> dict[str, Any]:
        if page.permissions is not True:
            if page.permissions == 10:
                raise _GraphError(403, 10, "(#10) Requires pages_messaging permission to manage the object")
            raise _GraphError(
                403, 200, "(#200) The page is not allowed to send messages (pages_messaging not granted)"
            )
        psid = _recipient(body)
        person = self._people.get(psid)
        if person is None:
            if not (psid.isdigit() and self.auto_people):
                raise _GraphError(400, 100, "(#100) No matching user found", 2018001)
            opened = datetime.now(UTC) if self.auto_window_open else None
            person = self._people[psid] = Person(psid, "active", opened)
        if person.status != "active":
            raise _GraphError(400, 551, "(#551) This person isn't available right now.", 1545041)
        self._scripted_error(psid)
        message = body.get("message")
        _check_message(message)
        assert isinstance(message, dict)
        self._check_attachment_id(page, message)
        kind, tag = _messaging_type(body)
        span = WINDOW if kind != "MESSAGE_TAG" else HUMAN_AGENT_WINDOW if tag == "HUMAN_AGENT" else None
        if span is not None:
            last = person.last_inbound
            if last is None or datetime.now(UTC) - last > span:
                raise _GraphError(400, 10, "(#10) This message is sent outside of allowed window.", 2018278)
        message_id = self._message_id()
        query = request.url.query
        self._received.setdefault(psid, []).append(
            {
                "message_id": message_id,
                "page_id": page.page_id,
                "messaging_type": kind,
                "tag": tag,
                "message": message,
                "at": datetime.now(UTC).isoformat(),
                "url": request.url.path + ("?" + query if query else ""),
            }
        )
        return {"recipient_id": psid, "message_id": message_id}

    async def _attachments_endpoint(self, request: Request) -> Response:
        """``POST /me/message_attachments``: the Attachment Upload API. Multipart with a
        ``message`` field (``{"attachment": {"type", "payload": {"is_reusable"}}}``) and
        a ``filedata`` file: at most 25 MB, an image for type image; answers the
        ``attachment_id`` the Send API then takes."""
        raw = await request.body()
        with self._lock:
            self._requests += 1
            try:
                token, via = self._token(request, {})
                page = self._page(token, via)
                fields, files = parse_multipart(raw, request.headers.get("content-type", ""))
                if fields is None:
                    raise _invalid("the request must be multipart/form-data")
                try:
                    spec = json.loads(fields.get("message", ""))
                    attachment = spec["attachment"]
                    kind = attachment["type"]
                    reusable = attachment.get("payload", {}).get("is_reusable") is True
                except (ValueError, KeyError, TypeError, AttributeError):
                    raise _invalid("param message must be {attachment: {type, payload}}") from None
                if kind not in ("image", "audio", "video", "file"):
                    raise _invalid(
                        f"param message[attachment][type] {kind!r} must be image, audio, video or file"
                    )
                part = files.get("filedata")
                if part is None or part.size == 0:
                    raise _invalid("param filedata must be a file")
                if part.size > UPLOAD_LIMIT:
                    raise _GraphError(400, 100, "(#100) The file is too large: 25 MB at most", 2018294)
                if kind == "image" and not is_image(part.head):
                    raise _GraphError(400, 100, "(#100) Upload attachment failure.", 2018047)
            except _GraphError as error:
                return self._error_response(error)
            attachment_id = str(10**15 + len(self._attachments) + 1)
            self._attachments[attachment_id] = {
                "page_id": page.page_id,
                "type": kind,
                "filename": part.filename,
                "size": part.size,
                "sha256": part.sha256,
                "is_reusable": reusable,
            }
            self._accepted += 1
        return JSONResponse({"attachment_id": attachment_id})

    def _check_attachment_id(self, page: Page, message: Mapping[str, Any]) -> None:
        """A message naming an uploaded attachment: the Page uploaded it, as that type."""
        attachment = message.get("attachment")
        if not isinstance(attachment, dict):
            return
        payload = attachment.get("payload")
        if not isinstance(payload, dict) or "attachment_id" not in payload:
            return
        known = self._attachments.get(str(payload["attachment_id"]))
        if known is None or known["page_id"] != page.page_id or known["type"] != attachment.get("type"):
            raise _GraphError(400, 100, "(#100) Invalid attachment_id", 2018047)

    def _scripted_error(self, psid: str) -> None:
        for key in (psid, "*"):
            queue = self._scripted.get(key)
            if not queue:
                continue
            scripted = queue[0]
            scripted.times -= 1
            if scripted.times <= 0:
                queue.popleft()
            raise _GraphError(
                scripted.status,
                scripted.code,
                scripted.message,
                scripted.subcode,
                transient=scripted.code in (1, 2, 1200),
            )

    async def _me_endpoint(self, request: Request) -> Response:
        version = request.path_params.get("version")
        with self._lock:
            try:
                if version is not None and not _VERSION.fullmatch(version):
                    raise _GraphError(400, 2500, f"Unknown path components: /{version}/me")
                token, via = self._token(request, {})
                page = self._page(token, via)
            except _GraphError as error:
                return self._error_response(error)
            return JSONResponse({"id": page.page_id, "name": page.name})

    # ------------------------------------------------------------------ control API

    @control
    async def _pages_endpoint(self, request: Request) -> Response:
        if request.method == "POST":
            data = await control_object(request)
            page = self.add_page(
                str(data["token"]),
                None if data.get("page_id") is None else str(data["page_id"]),
                name=str(data.get("name") or "Sandbox Page"),
                permissions=data.get("permissions", True),
            )
            return self.control_answer(page.public())
        with self._lock:
            return self.control_answer([p.public() for p in self._pages.values()])

    @control
    async def _people_endpoint(self, request: Request) -> Response:
        if request.method == "POST":
            data = await control_body(request)
            rows = data if isinstance(data, list) else [data]
            out = [self._update_person(row) for row in rows]
            return self.control_answer(out if isinstance(data, list) else out[0])
        with self._lock:
            return self.control_answer([p.public() for p in self._people.values()])

    def _update_person(self, row: Any) -> dict[str, Any]:
        if not isinstance(row, dict):
            raise ValueError("a person is a JSON object")
        psid = str(row["psid"])
        known = self.person(psid)
        status = str(row.get("status", known.status if known else "active"))
        if "last_inbound" in row:
            last = _parse_time(row["last_inbound"])
        else:
            last = known.last_inbound if known else None
        return self.add_person(psid, status, last).public()

    @control
    async def _received_endpoint(self, request: Request) -> Response:
        psid = request.query_params.get("psid")
        if psid is not None:
            return self.control_answer({"psid": psid, "messages": self.received(psid)})
        return self.control_answer(self.all_received())

    @control
    async def _stats_endpoint(self, request: Request) -> Response:
        return self.control_answer(self.stats())

    @control
    async def _reset_endpoint(self, request: Request) -> Response:
        data = await control_body(request, {})
        self.reset(everything=bool(data.get("everything", False)) if isinstance(data, dict) else False)
        return self.control_answer({"ok": True})

    @control
    async def _errors_endpoint(self, request: Request) -> Response:
        data = await control_object(request)
        subcode = data.get("subcode")
        self.fail_next(
            str(data["psid"]),
            int(data["code"]),
            None if subcode is None else int(subcode),
            message=data.get("message"),
            status=int(data.get("status", 400)),
            times=int(data.get("times", 1)),
        )
        return self.control_answer({"ok": True})

    @control
    async def _webhook_endpoint(self, request: Request) -> Response:
        if request.method == "POST":
            data = await control_object(request)
            page_id = data.get("page_id")
            self.webhook(
                str(data["url"]), str(data["app_secret"]), page_id=None if page_id is None else str(page_id)
            )
        with self._lock:
            return self.control_answer(self._webhook.public() if self._webhook else None)

    @control
    async def _inbound_endpoint(self, request: Request) -> Response:
        data = await control_object(request)
        psid = str(data["psid"])
        fields = self._inbound_fields(data)
        try:
            target = self._target()
        except RuntimeError as exc:
            raise ControlError(str(exc)) from None
        raw = self.event_body(psid, fields)
        self.touch(psid)
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": self.sign(raw)}
        try:
            async with httpx.AsyncClient(timeout=10.0) as client:
                answer = await client.post(target.url, content=raw, headers=headers)
        except httpx.HTTPError as exc:
            return self.control_answer(
                {"error": f"the webhook could not be reached: {type(exc).__name__}"}, 502
            )
        return self.control_answer({"status": answer.status_code, "body": answer.text[:1000]})


# ---------------------------------------------------------------------- request bodies


def _raw(body: bytes | str | Mapping[str, Any]) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _parse_body(raw: bytes, content_type: str) -> tuple[dict[str, Any], _GraphError | None]:
    """The request body as a dict, and the error to answer once authenticated."""
    if not raw.strip():
        return {}, _invalid("The parameter recipient is required")
    if "application/x-www-form-urlencoded" in content_type:
        form: dict[str, Any] = {}
        for key, value in parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True):
            if value[:1] in ("{", "["):
                try:
                    form[key] = json.loads(value)
                    continue
                except ValueError:
                    return {}, _invalid(f"param {key} must be a JSON object")
            form[key] = value
        return form, None
    try:
        data = json.loads(raw)
    except ValueError:
        return {}, _invalid("Invalid JSON in the request body")
    if not isinstance(data, dict):
        return {}, _invalid("The request body must be a JSON object")
    return data, None


def _recipient(body: Mapping[str, Any]) -> str:
    recipient = body.get("recipient")
    if recipient is None:
        raise _invalid("The parameter recipient is required")
    if not isinstance(recipient, dict):
        raise _invalid("param recipient must be a JSON object")
    psid = recipient.get("id")
    if isinstance(psid, bool) or not isinstance(psid, str | int) or str(psid) == "":
        raise _invalid("param recipient[id] must be a non-empty page-scoped user id")
    return str(psid)


def _messaging_type(body: Mapping[str, Any]) -> tuple[str, str | None]:
    kind = body.get("messaging_type", "RESPONSE")
    if kind not in MESSAGING_TYPES:
        raise _invalid("param messaging_type must be one of {RESPONSE, UPDATE, MESSAGE_TAG}")
    tag = body.get("tag")
    if kind != "MESSAGE_TAG":
        return kind, None
    if tag is None:
        raise _invalid("param tag is required with messaging_type MESSAGE_TAG")
    if tag not in PERMITTED_TAGS:
        raise _invalid(f"param tag must be one of {{{', '.join(sorted(PERMITTED_TAGS))}}}")
    return kind, str(tag)


def _keys(obj: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    extra = sorted(set(obj) - set(allowed))
    if extra:
        names = ", ".join(f'"{key}"' for key in extra)
        raise _invalid(f'Invalid keys {names} were found in param "{where}".')


def _text(value: Any, where: str, high: int, *, required: bool = True) -> None:
    if not isinstance(value, str):
        raise _invalid(f"param {where} must be a string")
    if required and not value.strip():
        raise _invalid(f"param {where} must be non-empty.")
    if utf16_len(value) > high:
        raise _invalid(f"Length of param {where} must be less than or equal to {high}")


def _url(value: Any, where: str) -> None:
    if not isinstance(value, str) or not _URL.fullmatch(value.strip()):
        raise _invalid(f"param {where} must be a valid URL")


def _check_message(message: Any) -> None:
    where = "message"
    if message is None:
        raise _invalid("The parameter message is required")
    if not isinstance(message, dict):
        raise _invalid("param message must be a JSON object")
    _keys(message, ("text", "attachment", "quick_replies", "metadata"), where)
    if ("text" in message) == ("attachment" in message):
        raise _invalid("param message must contain exactly one of text or attachment")
    if "text" in message:
        _text(message["text"], "message[text]", 2000)
    else:
        _check_attachment(message["attachment"])
    if "quick_replies" in message:
        replies = message["quick_replies"]
        if not isinstance(replies, list) or not replies:
            raise _invalid("param message[quick_replies] must be a non-empty array")
        if len(replies) > 13:
            raise _invalid("param message[quick_replies] must have at most 13 items")
        for index, reply in enumerate(replies):
            at = f"message[quick_replies][{index}]"
            if not isinstance(reply, dict):
                raise _invalid(f"param {at} must be a JSON object")
            kind = reply.get("content_type")
            if kind not in ("text", "user_phone_number", "user_email"):
                raise _invalid(
                    f"param {at}[content_type] must be one of {{text, user_phone_number, user_email}}"
                )
            if kind == "text":
                _text(reply.get("title"), f"{at}[title]", 20)
                _text(reply.get("payload"), f"{at}[payload]", 1000)
    if "metadata" in message:
        _text(message["metadata"], "message[metadata]", 1000, required=False)


def _check_attachment(attachment: Any) -> None:
    where = "message[attachment]"
    if not isinstance(attachment, dict):
        raise _invalid(f"param {where} must be a JSON object")
    _keys(attachment, ("type", "payload"), where)
    kind = attachment.get("type")
    payload = attachment.get("payload")
    if kind not in (*_MEDIA_TYPES, "template"):
        raise _invalid(f"param {where}[type] must be one of {{image, audio, video, file, template}}")
    if not isinstance(payload, dict):
        raise _invalid(f"param {where}[payload] must be a JSON object")
    at = f"{where}[payload]"
    if kind in _MEDIA_TYPES:
        _keys(payload, ("url", "is_reusable", "attachment_id"), at)
        if "attachment_id" in payload:
            if "url" in payload:
                raise _invalid(f"param {at} takes a url or an attachment_id, not both")
            _text(payload["attachment_id"], f"{at}[attachment_id]", 100)
        else:
            _url(payload.get("url"), f"{at}[url]")
        if "is_reusable" in payload and not isinstance(payload["is_reusable"], bool):
            raise _invalid(f"param {at}[is_reusable] must be a boolean")
        return
    template = payload.get("template_type")
    if template == "button":
        _keys(payload, ("template_type", "text", "buttons", "sharable"), at)
        _text(payload.get("text"), f"{at}[text]", 640)
        _check_buttons(payload.get("buttons"), f"{at}[buttons]", required=True)
    elif template == "generic":
        _keys(payload, ("template_type", "elements", "image_aspect_ratio", "sharable"), at)
        if payload.get("image_aspect_ratio", "horizontal") not in ("horizontal", "square"):
            raise _invalid(f"param {at}[image_aspect_ratio] must be one of {{horizontal, square}}")
        elements = payload.get("elements")
        if not isinstance(elements, list) or not elements:
            raise _invalid(f"param {at}[elements] must be a non-empty array")
        if len(elements) > 10:
            raise _invalid(f"param {at}[elements] must have at most 10 elements")
        for index, element in enumerate(elements):
            _check_element(element, f"{at}[elements][{index}]")
    else:
        raise _invalid(f"param {at}[template_type] must be one of {{generic, button}}")


def _check_element(element: Any, at: str) -> None:
    if not isinstance(element, dict):
        raise _invalid(f"param {at} must be a JSON object")
    _keys(element, ("title", "subtitle", "image_url", "default_action", "buttons"), at)
    if "title" not in element:
        raise _invalid(f"param {at}[title] is required")
    _text(element["title"], f"{at}[title]", 80)
    if "subtitle" in element:
        _text(element["subtitle"], f"{at}[subtitle]", 80, required=False)
    if "image_url" in element:
        _url(element["image_url"], f"{at}[image_url]")
    if "default_action" in element:
        action = element["default_action"]
        if not isinstance(action, dict) or action.get("type") != "web_url":
            raise _invalid(f"param {at}[default_action][type] must be web_url")
        _keys(action, ("type", "url", "webview_height_ratio", "messenger_extensions", "fallback_url"), at)
        _url(action.get("url"), f"{at}[default_action][url]")
    if "buttons" in element:
        _check_buttons(element["buttons"], f"{at}[buttons]", required=False)
    if not any(element.get(k) for k in ("subtitle", "image_url", "buttons")):
        raise _GraphError(
            400,
            100,
            "(#100) Incomplete element data: title and at least one other field "
            "(image url, subtitle or buttons) is required with non-empty value",
            2018035,
        )


def _check_buttons(buttons: Any, at: str, *, required: bool) -> None:
    if not isinstance(buttons, list) or (required and not buttons):
        raise _invalid(f"param {at} must be a non-empty array")
    if len(buttons) > 3:
        raise _invalid(f"param {at} must have at most 3 buttons")
    for index, button in enumerate(buttons):
        where = f"{at}[{index}]"
        if not isinstance(button, dict):
            raise _invalid(f"param {where} must be a JSON object")
        kind = button.get("type")
        if kind == "web_url":
            _keys(
                button,
                ("type", "url", "title", "webview_height_ratio", "messenger_extensions", "fallback_url"),
                where,
            )
            _url(button.get("url"), f"{where}[url]")
        elif kind == "postback":
            _keys(button, ("type", "title", "payload"), where)
            _text(button.get("payload"), f"{where}[payload]", 1000)
        elif kind == "phone_number":
            _keys(button, ("type", "title", "payload"), where)
            _text(button.get("payload"), f"{where}[payload]", 30)
        else:
            raise _invalid(f"param {where}[type] must be one of {{web_url, postback, phone_number}}")
        _text(button.get("title"), f"{where}[title]", 20)
