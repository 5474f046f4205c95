"""The Telegram webhook of ``feedcast web`` (optional: polling with ``feedcast inbox``
works without a public address).

``POST /telegram/{channel}``: Telegram sends each update there once
``feedcast channel webhook CHANNEL --url PUBLIC_URL`` has set it. The request must carry
``X-Telegram-Bot-Api-Secret-Token``, the channel's secret (an HMAC of its name with
feedcast's signing key, see :func:`feedcast.inbox.telegram.webhook_secret`), compared in
constant time: anything else gets 403. The update is written to the spool (durably,
de-duplicated on its ``update_id``: Telegram re-sends what it thinks failed) before the
200 goes out, then recorded and processed by the drainer in arrival order, as polling
does (:func:`feedcast.inbox.telegram.handle_pending`): subscriptions, then replies. A
spool that cannot be written answers 503, and Telegram sends the update again.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Mapping

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from feedcast.inbox.telegram import webhook_secret
from feedcast.kernel.errors import StoreError
from feedcast.kernel.models import ChannelConfig
from feedcast.store import Store
from feedcast.store.spool import SpoolEvent
from feedcast.tokens import signing_key
from feedcast.web.inbound import ChannelCache, Inbound

__all__ = ["SECRET_HEADER", "routes"]

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
MAX_BODY = 1_000_000  # an update is a few kilobytes


def routes(
    store: Store, environ: Mapping[str, str] | None = None, *, inbound: Inbound | None = None
) -> list[BaseRoute]:
    """The Telegram webhook route for ``feedcast web``'s app; ``inbound``: the app's
    spool and drainer (one of their own otherwise, on the store's spool)."""
    key = signing_key(store.path, environ)
    keeper = inbound or Inbound(store, environ=environ)
    channels: ChannelCache[ChannelConfig] = ChannelCache(store, "telegram", lambda config: config)

    async def webhook(request: Request) -> Response:
        name = request.path_params["channel"]
        given = request.headers.get(SECRET_HEADER, "")
        expected = webhook_secret(key, name)
        if not hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("ascii")):
            return JSONResponse({"ok": False, "error": "forbidden"}, status_code=403)
        try:
            known, config = channels.cached(name)
            if not known:
                config = await run_in_threadpool(channels.get, name)
        except StoreError as exc:
            log.warning("telegram channel %r (webhook): the store is busy, answered 503: %s", name, exc)
            return JSONResponse({"ok": False, "error": "busy"}, status_code=503, headers={"Retry-After": "5"})
        if config is None:
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
        event = SpoolEvent(name, "telegram", str(update["update_id"]), body.decode("utf-8", "replace"))
        try:
            [new] = await keeper.keep([event])
        except StoreError as exc:
            log.error("telegram channel %r (webhook): answered 503, update not kept: %s", name, exc)
            return JSONResponse({"ok": False, "error": "busy"}, status_code=503, headers={"Retry-After": "5"})
        if not new:
            log.info("telegram channel %r (webhook): update %s again -> duplicate", name, update["update_id"])
        return JSONResponse({"ok": True})

    return [Route("/telegram/{channel}", webhook, methods=["POST"])]
