"""The Telegram webhook of ``feedcast web`` (optional: polling with ``feedcast inbox``
works without a public address).

``POST /telegram/{channel}``: Telegram sends each update there once
``feedcast channel webhook CHANNEL --url PUBLIC_URL`` has set it. The request must carry
``X-Telegram-Bot-Api-Secret-Token``, the channel's secret (an HMAC of its name with
feedcast's signing key, see :func:`feedcast.inbox.telegram.webhook_secret`), compared in
constant time: anything else gets 403. The update is answered 200 at once and processed
after the answer (a Starlette background task; one at a time, in arrival order), exactly
as polling does
(:func:`feedcast.inbox.telegram.process_update`): recorded with de-duplication on its
``update_id`` (Telegram re-sends what it thinks failed), then subscriptions and replies.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Mapping
from typing import Any

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from feedcast.errors import FeedcastError, NotFound
from feedcast.inbox.telegram import open_channel, process_update, webhook_secret
from feedcast.netguard import guarded_client
from feedcast.store import Store
from feedcast.tokens import signing_key

__all__ = ["SECRET_HEADER", "routes"]

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
MAX_BODY = 1_000_000  # an update is a few kilobytes


def routes(store: Store, environ: Mapping[str, str] | None = None) -> list[BaseRoute]:
    """The Telegram webhook route for ``feedcast web``'s app."""
    key = signing_key(store.path, environ)
    usernames: dict[str, str | None] = {}  # channel -> bot username, asked once
    # one update at a time, in arrival order: Telegram sends a chat's updates in order,
    # and DuckDB wants one writer (and no read-only connection beside it) per process
    serial: list[asyncio.Lock] = []

    async def process(name: str, update: dict[str, Any]) -> None:
        if not serial:
            serial.append(asyncio.Lock())
        async with serial[0]:
            await _process(name, update)

    async def _process(name: str, update: dict[str, Any]) -> None:
        try:
            channel = open_channel(store, name, environ)
            async with guarded_client(httpx.Timeout(30.0, connect=10.0)) as client:
                await channel.open(client)
                try:
                    if name not in usernames:
                        username = (await channel.me()).get("username")
                        usernames[name] = username if isinstance(username, str) else None
                    handled = await process_update(store, channel, update, bot_username=usernames[name])
                finally:
                    await channel.close()
            log.info("telegram channel %r (webhook): %s", name, handled.line())
        except FeedcastError as exc:
            log.error("telegram channel %r (webhook): update not processed: %s", name, exc)
        except Exception:  # a background task must not take the server down
            log.exception("telegram channel %r (webhook): update not processed", name)

    async def webhook(request: Request) -> Response:
        name = request.path_params["channel"]
        given = request.headers.get(SECRET_HEADER, "")
        expected = webhook_secret(key, name)
        if not hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("ascii")):
            return JSONResponse({"ok": False, "error": "forbidden"}, status_code=403)
        try:
            config = store.get_channel(name)
        except NotFound:
            return JSONResponse({"ok": False, "error": "unknown channel"}, status_code=404)
        if config.kind != "telegram":
            return JSONResponse({"ok": False, "error": "unknown channel"}, status_code=404)
        body = await request.body()
        if len(body) > MAX_BODY:
            return JSONResponse({"ok": False, "error": "too large"}, status_code=413)
        try:
            update = json.loads(body)
        except ValueError:
            return JSONResponse({"ok": False, "error": "not JSON"}, status_code=400)
        if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
            return JSONResponse({"ok": False, "error": "not an update"}, status_code=400)
        return JSONResponse({"ok": True}, background=BackgroundTask(process, name, update))

    return [Route("/telegram/{channel}", webhook, methods=["POST"])]
