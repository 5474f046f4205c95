"""The Messenger webhook of ``feedcast web``: ``/messenger/{channel}``.

``GET``: the subscription handshake of the Meta app settings. ``hub.mode=subscribe``
and ``hub.verify_token`` equal (constant time) to the channel's ``--verify-token``
(``env:VAR`` resolved) -> 200 with ``hub.challenge`` as plain text; anything else -> 403.

``POST``: the events. ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw
body)>`` is checked in constant time against the channel's ``--app-secret``; a missing
or wrong signature, or a channel without an app secret, -> 403 (the log says which).
A verified body is split into its events, which are written to the spool (durably,
de-duplicated on the ``mid``) before the 200 goes out; the drainer records them in the
store and processes them from there (:mod:`feedcast.inbox.drain`). A spool that cannot
be written answers 503, so Meta sends the events again.

A channel's settings are read again after :data:`CHANNEL_TTL` seconds, in the
background: a busy database (another process writing) never delays the answers Meta
expects within seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Mapping

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from channels.base import Channel
from feedcast.delivery import make_channel
from feedcast.inbox.messenger import InboxOptions, spool_events
from feedcast.kernel.errors import ChannelError, StoreError
from feedcast.store import Store
from feedcast.store.spool import SpoolEvent
from feedcast.web.inbound import CHANNEL_TTL, ChannelCache, Inbound

__all__ = ["CHANNEL_TTL", "routes", "signature_of"]

log = logging.getLogger(__name__)

_PREFIX = "sha256="


def signature_of(app_secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value of ``body``."""
    return _PREFIX + hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def _secret(channel: Channel, key: str, what: str, missing: str) -> str | None:
    """The channel's ``key`` secret, resolved; None when the channel has none or its
    environment variable is unset (logged: ``what`` refused; ``missing`` names the
    option and how to set it)."""
    try:
        value = channel.setting(key) if channel.settings.get(key) else None
    except ChannelError as exc:
        log.warning("messenger %s: %s refused: %s", channel.name, what, channel.error_text(exc))
        return None
    if value is None:
        log.warning("messenger %s: %s refused: the channel has no %s", channel.name, what, missing)
    return value


class _Webhook:
    def __init__(self, store: Store, environ: Mapping[str, str] | None, inbound: Inbound) -> None:
        self.store = store
        self.environ = environ
        self.inbound = inbound
        self.channels: ChannelCache[Channel] = ChannelCache(
            store, "messenger", lambda config: make_channel(config, environ)
        )

    async def endpoint(self, request: Request) -> Response:
        name = request.path_params["channel"]
        try:
            known, channel = self.channels.cached(name)
            if not known:
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
        expected = _secret(
            channel,
            "verify_token",
            "handshake",
            "--verify-token (feedcast channel add ... --verify-token env:VAR, the same value as in the Meta app)",
        )
        if expected is None:
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
        secret = _secret(
            channel,
            "app_secret",
            "webhook",
            "--app-secret to verify signatures with (feedcast channel add ... --app-secret env:VAR)",
        )
        if secret is None:
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
        events = spool_events(payload)
        keep = [
            SpoolEvent(channel.name, "messenger", key, json.dumps(one, separators=(",", ":")))
            for key, one in events
        ]
        try:
            new = await self.inbound.keep(keep)
        except StoreError as exc:
            log.error("messenger %s: webhook answered 503, events not kept: %s", channel.name, exc)
            return JSONResponse({"error": "busy, retry later"}, 503, headers={"Retry-After": "5"})
        for (key, one), fresh in zip(events, new, strict=True):
            if not fresh:  # Meta sent it again: kept once, processed once
                sender = one["entry"][0]["messaging"][0]["sender"]["id"]
                log.info("messenger %s: event %s from %s -> duplicate", channel.name, key, sender)
        return PlainTextResponse("EVENT_RECEIVED")


def routes(
    store: Store,
    *,
    environ: Mapping[str, str] | None = None,
    options: InboxOptions | None = None,
    inbound: Inbound | None = None,
) -> list[BaseRoute]:
    """``GET|POST /messenger/{channel}``; ``inbound``: the app's spool and drainer (one
    of their own otherwise, on the store's spool)."""
    webhook = _Webhook(store, environ, inbound or Inbound(store, environ=environ, options=options))
    return [
        Route("/messenger/{channel}", webhook.endpoint, methods=["GET", "POST"], name="messenger_webhook")
    ]
