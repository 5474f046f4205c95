"""The ``feedcast web`` app: everything that comes from the outside, in one ASGI app.

:func:`create_app` composes the routes of :mod:`feedcast.web.messenger` (the Messenger
webhook), :mod:`feedcast.web.telegram` (the Telegram webhook) and
:mod:`feedcast.web.pages` (one-click unsubscribe, subscribe pages, click tracking) with
``GET /healthz``, behind three layers that hold for every route:

- security headers on every response: ``X-Content-Type-Options: nosniff``,
  ``Referrer-Policy: no-referrer`` (token URLs never leak to other sites),
  ``X-Frame-Options: DENY``, ``Cache-Control: no-store`` unless the route set its own,
  and ``Content-Security-Policy: default-src 'none'; frame-ancestors 'none'`` on
  responses that are not HTML (an HTML page sets its own, strict, policy);
- a request body limit (:data:`MAX_BODY`, 1 MB by default): larger -> 413, read or not;
- no stack trace ever reaches a client: an unexpected error answers a short JSON 500
  and goes to the log, secrets scrubbed;
- the client address is the connection's: ``X-Forwarded-For`` and
  ``X-Forwarded-Proto`` are believed only from the proxies named in
  ``trusted_proxies`` (addresses or networks; none by default), through uvicorn's
  ``ProxyHeadersMiddleware``. Rate limits key on that address.

The webhooks share one :class:`~feedcast.web.inbound.Inbound` (the spool an event is
written to before its 200, and the drainer that records and processes it): the app's
lifespan starts the drainer (which first takes up what a previous run left) and stops
it; without a lifespan (an embedding server) it starts with the first event.

The routes get the store through a guard that lets one connection at a time be open
in this process: DuckDB refuses a read-only connection while a read-write one to the
same file is open in the same process (and the reverse), which concurrent requests and
webhook processing in worker threads would otherwise run into.
"""

from __future__ import annotations

import abc
import ipaddress
import json
import logging
import threading
import traceback
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from channels.base import REDACTOR
from feedcast.kernel.errors import InvalidValue
from feedcast.store import Connection, Store
from feedcast.web import messenger, pages, telegram
from feedcast.web.inbound import Inbound

__all__ = ["MAX_BODY", "create_app", "trusted_networks"]

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024  # bytes of a request body (webhooks, forms)

_HEADERS = (
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cache-control", "no-store"),
)
_NOT_HTML_CSP = "default-src 'none'; frame-ancestors 'none'"


# --------------------------------------------------------------------------- the store


_LOCKS: dict[Path, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


class _SerialStore(Store):
    """A store whose connections are opened one at a time in this process."""

    def __init__(self, path: Path, *, lock_timeout: float) -> None:
        super().__init__(path, lock_timeout=lock_timeout)
        with _LOCKS_GUARD:
            self._serial = _LOCKS.setdefault(self.path.resolve(), threading.RLock())

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[Connection]:
        with self._serial, super().connect(read_only=read_only) as con:
            yield con


def _serial(store: Store) -> Store:
    if isinstance(store, _SerialStore):
        return store
    return _SerialStore(store.path, lock_timeout=store.lock_timeout)


# --------------------------------------------------------------------------- middleware


class _HttpMiddleware(abc.ABC):
    """An ASGI middleware for HTTP requests: anything else (lifespan) passes through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.http(scope, receive, send)

    @abc.abstractmethod
    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One HTTP request."""


class _Answer:
    """A request's ``send`` that knows whether the response has started (after that,
    no other response may be sent)."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self.send(message)


class _SecurityHeaders(_HttpMiddleware):
    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _HEADERS:
                    if name not in headers:
                        headers[name] = value
                html = headers.get("content-type", "").startswith("text/html")
                if not html and "content-security-policy" not in headers:
                    headers["content-security-policy"] = _NOT_HTML_CSP
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _Errors(_HttpMiddleware):
    """An unexpected error: a short 500 for the client, the scrubbed trace for the log."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = _Answer(send)
        try:
            await self.app(scope, receive, answer)
        except Exception as exc:
            # the first path segment only: later ones may be tokens (/u/TOKEN, /c/TOKEN)
            where = "/" + str(scope.get("path", "")).lstrip("/").split("/", 1)[0]
            trace = REDACTOR.scrub("".join(traceback.format_exception(exc)).rstrip())
            log.error(
                "%s %s… failed%s:\n%s",
                scope.get("method"),
                where,
                " after answering" if answer.started else "",
                trace,
            )
            if not answer.started:
                await JSONResponse({"error": "internal error"}, 500)(scope, receive, send)


class _TooLarge(Exception):
    pass


class _BodyLimit(_HttpMiddleware):
    def __init__(self, app: ASGIApp, max_body: int) -> None:
        super().__init__(app)
        self.max_body = max_body

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _plain(400, "invalid Content-Length")(scope, receive, send)
                return
            if int(declared) > self.max_body:
                await _plain(413, "request body too large")(scope, receive, send)
                return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise _TooLarge
            return message

        answer = _Answer(send)
        try:
            await self.app(scope, limited_receive, answer)
        except _TooLarge:
            if not answer.started:
                await _plain(413, "request body too large")(scope, receive, send)


def _plain(status: int, text: str) -> Response:
    return Response(json.dumps({"error": text}), status, media_type="application/json")


# --------------------------------------------------------------------------- the app


async def _healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def trusted_networks(values: Sequence[str]) -> list[str]:
    """``--trusted-proxy`` values as networks (``10.0.0.5`` -> ``10.0.0.5/32``);
    InvalidValue naming the first one that is neither an address nor a network."""
    networks: list[str] = []
    for value in values:
        try:
            networks.append(str(ipaddress.ip_network(value.strip(), strict=False)))
        except ValueError:
            raise InvalidValue(
                f"--trusted-proxy {value!r} is not an IP address or network (e.g. 10.0.0.5 or 10.0.0.0/24)"
            ) from None
    return networks


def create_app(
    store: Store,
    *,
    public_url: str,
    max_body: int = MAX_BODY,
    environ: Mapping[str, str] | None = None,
    trusted_proxies: Sequence[str] = (),
) -> Starlette:
    """The app ``feedcast web`` serves. ``public_url``: where the outside reaches it
    (links in messages and pages are built on it); ``environ``: where ``env:VAR``
    secrets are read (default: the process environment); ``trusted_proxies``: the
    addresses or networks whose ``X-Forwarded-For`` is believed (none by default)."""
    base = public_url.strip().rstrip("/")
    if not base.lower().startswith(("http://", "https://")):
        raise InvalidValue(f"the public URL must be an http(s) URL, not {public_url!r}")
    proxies = trusted_networks(trusted_proxies)
    guarded = _serial(store)
    inbound = Inbound(guarded, environ=environ)
    routes: list[BaseRoute] = [
        Route("/healthz", _healthz, methods=["GET", "HEAD"], name="healthz"),
        *messenger.routes(guarded, environ=environ, inbound=inbound),
        *telegram.routes(guarded, environ=environ, inbound=inbound),
        *pages.routes(guarded, public_url=base, environ=environ),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        inbound.start()
        try:
            yield
        finally:
            inbound.stop()

    middleware = [
        Middleware(_SecurityHeaders),
        Middleware(_Errors),
        Middleware(_BodyLimit, max_body=max_body),
    ]
    if proxies:
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        middleware.insert(0, Middleware(ProxyHeadersMiddleware, trusted_hosts=proxies))
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.store = guarded
    app.state.public_url = base
    app.state.inbound = inbound
    return app
