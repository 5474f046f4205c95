"""The Messenger webhook of ``feedcast web``: ``/messenger/{channel}``.

``GET``: the subscription handshake of the Meta app settings. ``hub.mode=subscribe``
and ``hub.verify_token`` equal (constant time) to the channel's ``--verify-token``
(``env:VAR`` resolved) -> 200 with ``hub.challenge`` as plain text; anything else -> 403.

``POST``: the events. ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw
body)>`` is checked in constant time against the channel's ``--app-secret``; a missing
or wrong signature, or a channel without an app secret, -> 403 (the log says which).
A verified body is answered 200 at once and processed after the answer
(:func:`feedcast.inbox.messenger.handle_events`, in a worker thread).

A channel's settings are kept for :data:`CHANNEL_TTL` seconds, so a busy database
(another process writing) does not delay the answers Meta expects within seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Mapping

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from channels.base import REDACTOR, Channel, ChannelError, one_line
from feedcast.delivery import make_channel
from feedcast.errors import NotFound, StoreError
from feedcast.inbox.messenger import InboxOptions, handle_events
from feedcast.store import Store

__all__ = ["CHANNEL_TTL", "routes", "signature_of"]

log = logging.getLogger(__name__)

CHANNEL_TTL = 10.0  # seconds a channel's settings are reused without reading the store
_PREFIX = "sha256="


def signature_of(app_secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value of ``body``."""
    return _PREFIX + hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


class _Channels:
    """Messenger channels by name, read from the store at most every ``ttl`` seconds
    (the last known settings serve while the store is busy)."""

    def __init__(self, store: Store, environ: Mapping[str, str] | None, ttl: float = CHANNEL_TTL) -> None:
        self.store = store
        self.environ = environ
        self.ttl = ttl
        self._lock = threading.Lock()
        self._known: dict[str, tuple[float, Channel | None]] = {}

    def get(self, name: str) -> Channel | None:
        """The channel, or None when there is no Messenger channel of that name."""
        now = time.monotonic()
        with self._lock:
            cached = self._known.get(name)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        try:
            config = self.store.get_channel(name)
        except NotFound:
            channel = None
        except StoreError:
            if cached is not None:
                return cached[1]
            raise
        else:
            channel = make_channel(config, self.environ) if config.kind == "messenger" else None
        with self._lock:
            self._known[name] = (now, channel)
        return channel


class _Webhook:
    def __init__(self, store: Store, environ: Mapping[str, str] | None, options: InboxOptions) -> None:
        self.store = store
        self.environ = environ
        self.options = options
        self.channels = _Channels(store, environ)

    async def endpoint(self, request: Request) -> Response:
        name = request.path_params["channel"]
        try:
            channel = await run_in_threadpool(self.channels.get, name)
        except StoreError as exc:
            log.warning("messenger %s: the store is busy, webhook answered 503: %s", name, exc)
            return JSONResponse({"error": "busy, retry later"}, 503, headers={"Retry-After": "5"})
        if channel is None:
            return JSONResponse({"error": "no such Messenger channel"}, 404)
        if request.method == "GET":
            return self.handshake(request, channel)
        return await self.receive(request, channel)

    def handshake(self, request: Request, channel: Channel) -> Response:
        params = request.query_params
        try:
            expected = channel.setting("verify_token") if channel.settings.get("verify_token") else None
        except ChannelError as exc:
            log.warning("messenger %s: handshake refused: %s", channel.name, channel.error_text(exc))
            return PlainTextResponse("forbidden", 403)
        if expected is None:
            log.warning(
                "messenger %s: handshake refused: the channel has no --verify-token "
                "(feedcast channel add ... --verify-token env:VAR, the same value as in the Meta app)",
                channel.name,
            )
            return PlainTextResponse("forbidden", 403)
        given = params.get("hub.verify_token") or ""
        challenge = params.get("hub.challenge")
        if params.get("hub.mode") != "subscribe" or not _same(given, expected) or not challenge:
            log.warning(
                "messenger %s: handshake refused: wrong mode, verify token or challenge", channel.name
            )
            return PlainTextResponse("forbidden", 403)
        log.info("messenger %s: webhook handshake accepted", channel.name)
        return PlainTextResponse(challenge[:1000])

    async def receive(self, request: Request, channel: Channel) -> Response:
        body = await request.body()
        try:
            secret = channel.setting("app_secret") if channel.settings.get("app_secret") else None
        except ChannelError as exc:
            log.warning("messenger %s: webhook refused: %s", channel.name, channel.error_text(exc))
            return PlainTextResponse("forbidden", 403)
        if secret is None:
            log.warning(
                "messenger %s: webhook refused: the channel has no --app-secret to verify signatures with "
                "(feedcast channel add ... --app-secret env:VAR)",
                channel.name,
            )
            return PlainTextResponse("forbidden", 403)
        given = request.headers.get("x-hub-signature-256", "").strip()
        if not given:
            log.warning("messenger %s: webhook refused: no X-Hub-Signature-256 header", channel.name)
            return PlainTextResponse("forbidden", 403)
        if not _same(given.lower(), signature_of(secret, body)):
            log.warning("messenger %s: webhook refused: the signature does not match the body", channel.name)
            return PlainTextResponse("forbidden", 403)
        try:
            payload = json.loads(body)
        except ValueError:
            log.warning("messenger %s: a signed webhook body that is not JSON", channel.name)
            return PlainTextResponse("the body is not JSON", 400)
        task = BackgroundTask(self.process, channel.name, payload)
        return PlainTextResponse("EVENT_RECEIVED", background=task)

    def process(self, name: str, payload: object) -> None:
        """After the answer, in a worker thread: never raises (a failure is logged)."""
        try:
            handled = handle_events(self.store, name, payload, environ=self.environ, options=self.options)
        except Exception as exc:
            log.error(
                "messenger %s: webhook events not processed: %s",
                name,
                one_line(REDACTOR.scrub(f"{type(exc).__name__}: {exc}")),
            )
            return
        for event in handled:
            log.info(
                "messenger %s: %s from %s -> %s%s",
                name,
                event.kind,
                event.sender,
                event.action,
                f" (replies: {', '.join(event.replies)})" if event.replies else "",
            )


def routes(
    store: Store, *, environ: Mapping[str, str] | None = None, options: InboxOptions | None = None
) -> list[BaseRoute]:
    """``GET|POST /messenger/{channel}``."""
    webhook = _Webhook(store, environ, options or InboxOptions())
    return [
        Route("/messenger/{channel}", webhook.endpoint, methods=["GET", "POST"], name="messenger_webhook")
    ]
