"""The people-facing pages of ``feedcast web``: one-click unsubscribe, subscribe pages
with email double opt-in, and click tracking.

=============================  ==================================================================
``GET /u/TOKEN``               a confirmation page with a button; changes nothing (link scanners)
``POST /u/TOKEN``              unsubscribes at once (RFC 8058 one-click, or the page's button)
``GET /s/AUDIENCE``            the ways to subscribe to an audience (a tag): an email form per
                               email channel, a Telegram deep link (``?start=AUDIENCE``) per bot,
                               a Messenger link (``m.me/PAGE?ref=AUDIENCE``) per page;
                               ``?channels=a,b`` shows only those channels
``POST /s/AUDIENCE/email/CH``  double opt-in: stores a token, emails a confirmation link, and
                               answers "check your inbox" whatever the address (no enumeration)
``GET /confirm/TOKEN``         a page with a "Yes, subscribe me" button (changes nothing)
``POST /confirm/TOKEN``        confirms: the address is subscribed with the audience's tag
``GET /c/TOKEN``               records a click, redirects to the URL recorded for that link only
=============================  ==================================================================

Only audiences declared public (``feedcast audience public TAG``, or ``public_audiences``
in an applied YAML file) have a subscribe page and take the email form; any other tag,
internal ones included, answers the same 404 as a page that does not exist. A click is
recorded :data:`CLICKS_PER_HOUR` times an hour at most per link and client address (a
script replaying one link inflates nothing); beyond that the redirect still works.

Confirming takes a POST (a button on the page the email links to), not the GET of the
link itself: mail systems' link scanners open links in incoming mail, and a GET that
confirmed would let anyone subscribe an address whose mailbox scans links, which is what
double opt-in exists to prevent. It costs the person one click.

Every page is ``Cache-Control: no-store``, loads nothing from anywhere (inline CSS, no
script, no image), and is served with a Content-Security-Policy that forbids everything
else, ``Referrer-Policy: no-referrer`` (tokens stay out of other sites' logs, the click
redirect included) and ``frame-ancestors 'none'``. A bad token is a 404 page, never a
traceback. The subscribe form is rate-limited per client address and per email address
(in memory, per process), and has a honeypot field for bots. The client address is the
connection's (``X-Forwarded-For`` counts only from ``feedcast web --trusted-proxy``).
"""

from __future__ import annotations

import asyncio
import collections
import html
import logging
import os
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
from jinja2 import Environment, FileSystemLoader
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from channels.base import NETWORK_ERRORS, Outcome, Recipient, SendContext
from feedcast.kernel.clock import SYSTEM, Clock
from feedcast.kernel.errors import ChannelError, FeedcastError, InvalidValue, NotFound
from feedcast.kernel.models import ChannelConfig, ProviderCall, Subscriber
from feedcast.kernel.netguard import guarded_client
from feedcast.store import Store
from feedcast.tokens import signing_key, verify
from feedcast.tracking import read_click_token

__all__ = ["CLICKS_PER_HOUR", "CSP", "SUBSCRIBE_KINDS", "routes"]

# what a provider lookup may raise: network errors, the address guard, a bad answer
LOOKUP_ERRORS: tuple[type[BaseException], ...] = (*NETWORK_ERRORS, ChannelError, ValueError, TimeoutError)

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
SUBSCRIBE_KINDS = ("email", "telegram", "messenger")  # channels people can subscribe to themselves
_AUDIENCE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # Telegram's /start payload alphabet and length
_OPTIN_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,64}")
MAX_FORM_BYTES = 4096
CLICKS_PER_HOUR = 5  # clicks recorded per tracked link and client address (more are only redirected)
LOOKUP_RETRY = 60.0  # seconds before asking a provider again for a bot's or page's name
LOOKUP_TIMEOUT = 10.0  # seconds a page waits for that answer

_ENV = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, trim_blocks=True, lstrip_blocks=True)


def routes(
    store: Store,
    *,
    public_url: str | None = None,
    environ: Mapping[str, str] | None = None,
    clock: Clock = SYSTEM,
) -> list[BaseRoute]:
    """The routes of these pages. ``public_url`` is the base of the links in confirmation
    emails (default: ``FEEDCAST_PUBLIC_URL``, else the address the request came to);
    ``clock`` is what the subscribe form's rate limits read (a FakeClock in tests)."""
    pages = _Pages(store, public_url, environ, clock)
    return [
        Route("/u/{token}", pages.unsubscribe, methods=["GET", "POST"], name="unsubscribe"),
        Route("/s/{audience}", pages.subscribe_page, methods=["GET"], name="subscribe"),
        Route(
            "/s/{audience}/email/{channel}",
            pages.subscribe_email,
            methods=["POST"],
            name="subscribe_email",
        ),
        Route("/confirm/{token}", pages.confirm, methods=["GET", "POST"], name="confirm"),
        Route("/c/{token}", pages.click, methods=["GET"], name="click"),
        Route("/f/{sha256}/{name}", pages.file, methods=["GET", "HEAD"], name="file"),
    ]


# --------------------------------------------------------------------------- helpers


class RateWindow:
    """At most ``limit`` hits per ``period`` seconds per key (a sliding window, in memory)."""

    def __init__(self, limit: int, period: float, *, max_keys: int = 10_000) -> None:
        self.limit = limit
        self.period = period
        self.max_keys = max_keys
        self._hits: dict[str, collections.deque[float]] = {}

    def allow(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if len(self._hits) >= self.max_keys:  # forget the idle ones: memory stays bounded
            idle = [k for k, q in self._hits.items() if not q or q[-1] <= now - self.period]
            for k in idle:
                del self._hits[k]
        hits = self._hits.setdefault(key, collections.deque())
        while hits and hits[0] <= now - self.period:
            hits.popleft()
        if len(hits) >= self.limit:
            return False
        hits.append(now)
        return True


def _page(template: str, status: int = 200, **values: Any) -> HTMLResponse:
    body = _ENV.get_template(template).render(**values)
    return HTMLResponse(body, status_code=status, headers=_HEADERS)


def _message(status: int, title: str, *lines: str, ok: bool = False) -> HTMLResponse:
    return _page("message.html", status, title=title, lines=lines, ok=ok)


def _not_valid() -> HTMLResponse:
    return _message(
        404,
        "This link is not valid",
        "It may have been mistyped or cut when it was copied. Use the link exactly as you received it.",
    )


def _masked(recipient: str) -> str:
    """An email address shown without giving it away (``a•••@example.org``); else "You"."""
    user, at, domain = recipient.partition("@")
    if not at:
        return "You"
    return f"{user[:1]}•••@{domain}"


async def _form(request: Request) -> dict[str, str] | None:
    """A small urlencoded form (first value per field); None when too big."""
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_FORM_BYTES:
            return None
    fields = parse_qs(data.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=20)
    return {k: v[0] for k, v in fields.items() if v}


@dataclass(frozen=True, slots=True)
class _Way:
    kind: str  # email | telegram | messenger
    label: str  # the channel name, the bot's @username
    url: str | None = None  # deep link
    action: str | None = None  # the email form's target
    value: str | None = None  # what was typed (shown again with an error)
    error: str | None = None


# --------------------------------------------------------------------------- the pages


class _Pages:
    def __init__(
        self, store: Store, public_url: str | None, environ: Mapping[str, str] | None, clock: Clock = SYSTEM
    ) -> None:
        self.store = store
        self.clock = clock
        self.public_url = public_url.rstrip("/") if public_url else None
        self.environ = environ
        self._key: bytes | None = None
        self.per_client = RateWindow(limit=10, period=600.0)  # form posts per client address
        self.per_address = RateWindow(limit=3, period=3600.0)  # confirmation emails per address
        self.clicks = RateWindow(limit=CLICKS_PER_HOUR, period=3600.0)  # recorded clicks per link and client
        self._lookup_failed: dict[str, float] = {}  # channel -> when to ask its provider again

    @property
    def key(self) -> bytes:
        if self._key is None:
            self._key = signing_key(self.store.path, self.environ)
        return self._key

    def _base(self, request: Request) -> str:
        """Where links in confirmation emails point: ``routes(public_url=)``, else the
        app's ``state.public_url`` (``create_app``), else ``FEEDCAST_PUBLIC_URL``, else
        the address the request came to."""
        if self.public_url:
            return self.public_url
        app = request.scope.get("app")
        configured_app = getattr(getattr(app, "state", None), "public_url", None)
        if isinstance(configured_app, str) and configured_app:
            return configured_app.rstrip("/")
        env = os.environ if self.environ is None else self.environ
        configured = env.get("FEEDCAST_PUBLIC_URL")
        return (configured or str(request.base_url)).rstrip("/")

    @staticmethod
    def _root(request: Request) -> str:
        return str(request.scope.get("root_path") or "").rstrip("/")

    # ----------------------------------------------------------------- one-click unsubscribe

    async def unsubscribe(self, request: Request) -> Response:
        subscriber = await self._token_subscriber(request.path_params["token"])
        if subscriber is None:
            return _not_valid()
        who, channel = _masked(subscriber.recipient), subscriber.channel
        if request.method == "GET":  # never a change: link scanners open links in mail
            state = "confirm" if subscriber.status == "active" else "already"
            title = "Unsubscribe?" if state == "confirm" else "Already unsubscribed"
            return _page("unsubscribe.html", title=title, state=state, who=who, channel=channel)
        form = await _form(request) or {}
        one_click = form.get("List-Unsubscribe") == "One-Click"
        detail = "one-click (List-Unsubscribe-Post)" if one_click else "unsubscribe page"
        try:
            await run_in_threadpool(self.store.unsubscribe_by_id, subscriber.id, source="link", detail=detail)
        except NotFound:
            return _not_valid()
        return _page("unsubscribe.html", title="You are unsubscribed", state="done", who=who, channel=channel)

    async def _token_subscriber(self, token: str) -> Subscriber | None:
        value = verify(self.key, "unsubscribe", token)
        if value is None or not value.isascii() or not value.isdigit() or len(value) > 18:
            return None
        found = await run_in_threadpool(self.store.list_subscribers_by_id, [int(value)])
        return found[0] if found else None

    # ----------------------------------------------------------------- subscribe pages

    async def _public(self, audience: str) -> bool:
        """An audience people may subscribe themselves to (``feedcast audience public``)."""
        return bool(_AUDIENCE.fullmatch(audience)) and await run_in_threadpool(
            self.store.is_public_audience, audience
        )

    async def subscribe_page(self, request: Request) -> Response:
        audience = request.path_params["audience"]
        if not await self._public(audience):  # internal tags look like unknown pages
            return _not_valid()
        wanted = request.query_params.get("channels")
        names = [n.strip() for n in wanted.split(",") if n.strip()] if wanted else None
        return await self._subscribe_response(request, audience, names)

    async def _subscribe_response(
        self,
        request: Request,
        audience: str,
        names: Sequence[str] | None,
        *,
        errors: Mapping[str, tuple[str, str]] | None = None,
        status: int = 200,
    ) -> Response:
        configs = await run_in_threadpool(self.store.list_channels)
        usable = {c.name: c for c in configs if c.kind in SUBSCRIBE_KINDS and c.status == "active"}
        chosen = [usable[n] for n in dict.fromkeys(names) if n in usable] if names else list(usable.values())
        ways: list[_Way] = []
        for config in chosen:
            way = await self._way(request, config, audience)
            if way is None:
                continue
            if errors and config.name in errors:
                value, error = errors[config.name]
                way = _Way(way.kind, way.label, way.url, way.action, value, error)
            ways.append(way)
        if not ways:
            return _message(404, "Nothing to subscribe to here", "This page offers no way to subscribe yet.")
        kinds = collections.Counter(w.kind for w in ways)
        return _page(
            "subscribe.html",
            status,
            title=f"Subscribe to {audience}",
            audience=audience,
            ways=ways,
            ways_by_kind=kinds,
        )

    async def _way(self, request: Request, config: ChannelConfig, audience: str) -> _Way | None:
        if config.kind == "email":
            action = f"{self._root(request)}/s/{quote(audience)}/email/{quote(config.name)}"
            return _Way("email", config.name, action=action)
        if config.kind == "telegram":
            username = await self._handle(config, "telegram.username", self._telegram_username)
            if username is None:
                return None
            return _Way("telegram", username, url=f"https://t.me/{quote(username)}?start={quote(audience)}")
        page = str(config.settings.get("page_id") or "") or await self._handle(
            config, "messenger.page_id", self._messenger_page
        )
        if page is None:
            return None
        return _Way("messenger", config.name, url=f"https://m.me/{quote(page)}?ref={quote(audience)}")

    async def _handle(self, config: ChannelConfig, key: str, ask: Any) -> str | None:
        """A bot's username or a page's id: cached in the channel's state, else asked
        of the provider once (and not again for a minute when that failed)."""
        cached = await run_in_threadpool(self.store.channel_state, config.name, key)
        if cached:
            return cached
        if self._lookup_failed.get(config.name, 0.0) > time.monotonic():
            return None
        from feedcast.delivery import make_channel

        channel = make_channel(config, self.environ)
        try:
            value: str | None = await asyncio.wait_for(ask(channel), LOOKUP_TIMEOUT)
        except LOOKUP_ERRORS as exc:
            log.warning("channel %s: cannot tell its %s: %s", config.name, key, channel.error_text(exc))
            value = None
        if not value:
            self._lookup_failed[config.name] = time.monotonic() + LOOKUP_RETRY
            return None
        await run_in_threadpool(self.store.set_channel_state, config.name, key, value)
        return value

    @staticmethod
    async def _telegram_username(channel: Any) -> str | None:
        me = getattr(channel, "me", None)
        if me is not None:  # getMe through the channel
            bot = await me()
            username = bot.get("username") if isinstance(bot, Mapping) else None
        else:  # an older channel: its check() is getMe, "bot @username (id N)"
            found = re.search(r"@([A-Za-z0-9_]{3,64})", await channel.check())
            username = found.group(1) if found else None
        return str(username) if username else None

    @staticmethod
    async def _messenger_page(channel: Any) -> str | None:
        headers = channel.auth_headers()  # ChannelError when the API URL may not carry the token
        async with guarded_client(httpx.Timeout(10.0)) as client:
            response = await client.get(f"{channel.api_url}/me", headers=headers)
        if response.status_code != 200:
            raise ChannelError(f"GET /me answered HTTP {response.status_code}")
        page = response.json().get("id")
        return str(page) if page else None

    # ----------------------------------------------------------------- email double opt-in

    async def subscribe_email(self, request: Request) -> Response:
        audience, name = request.path_params["audience"], request.path_params["channel"]
        if not await self._public(audience):
            return _not_valid()
        try:
            config = await run_in_threadpool(self.store.get_channel, name)
        except NotFound:
            return _not_valid()
        if config.kind != "email" or config.status != "active":
            return _not_valid()
        client = request.client.host if request.client else "unknown"
        if not self.per_client.allow(client, self.clock.monotonic()):
            return _message(429, "Too many attempts", "Please wait a few minutes, then try again.")
        form = await _form(request)
        if form is None:
            return _message(413, "That is too much", "The form takes one email address.")
        from feedcast.delivery import make_channel

        channel = make_channel(config, self.environ)
        typed = form.get("email", "").strip()[:254]
        try:
            address = channel.validate_recipient(typed)
        except InvalidValue as exc:
            error = str(exc) if typed else "Enter your email address."
            return await self._subscribe_response(
                request, audience, [name], errors={name: (typed, error)}, status=400
            )
        answer = _message(
            200,
            "Check your inbox",
            f"We sent a confirmation link to {address}.",
            "Open it to confirm: you are subscribed only once you do. Nothing came? Look in your spam folder.",
            ok=True,
        )
        if form.get("website") or not self.per_address.allow(
            f"{name}\n{address.lower()}", self.clock.monotonic()
        ):
            return answer  # a bot filled the trap, or this address had its emails: the same answer
        token = secrets.token_urlsafe(24)
        try:
            await run_in_threadpool(self.store.add_optin, token, name, address, [audience])
        except FeedcastError as exc:
            log.warning("channel %s: cannot record an opt-in: %s", name, exc)
            return _message(503, "Please try again", "We could not take your subscription right now.")
        link = f"{self._base(request)}/confirm/{token}"
        # after the answer: the page comes back as fast whether the mail goes or not
        answer.background = BackgroundTask(self._send_confirmation, config, address, audience, link, token)
        return answer

    async def _send_confirmation(
        self, config: ChannelConfig, address: str, audience: str, link: str, token: str
    ) -> None:
        from feedcast.delivery import make_channel

        channel = make_channel(config, self.environ)
        call = confirmation_call(audience, link)
        # a Message-ID of its own per opt-in (build_email derives it from campaign 0 and this)
        number = int.from_bytes(token.encode()[:6], "big")
        recipient = Recipient(subscriber_id=number, address=address)
        try:
            await channel.open(None)
            result = await channel.send(recipient, call, SendContext(campaign_id=0, automation="optin"), 0)
        except Exception as exc:  # a broken channel must not break the page
            log.warning("channel %s: confirmation email failed: %s", config.name, channel.error_text(exc))
            return
        finally:
            await channel.close()
        if result.outcome is not Outcome.SENT:
            log.warning("channel %s: confirmation email not sent: %s", config.name, result.error)

    async def confirm(self, request: Request) -> Response:
        token = request.path_params["token"]
        if not _OPTIN_TOKEN.fullmatch(token):
            return _not_valid()
        if request.method == "GET":  # a page with a button: scanners opening the link change nothing
            return _page("optin.html", title="Confirm your subscription")
        try:
            subscriber, _outcome = await run_in_threadpool(self.store.confirm_optin, token)
        except NotFound:
            return _not_valid()
        return _message(
            200,
            "You are subscribed",
            f"Updates will come to {subscriber.recipient}.",
            "Every message has a link to unsubscribe in one click.",
            ok=True,
        )

    # ----------------------------------------------------------------- click tracking

    async def file(self, request: Request) -> Response:
        return await _file(self.store, request)

    async def click(self, request: Request) -> Response:
        parsed = read_click_token(self.key, request.path_params["token"])
        if parsed is None:
            return _not_valid()
        campaign, link, subscriber = parsed
        agent = request.headers.get("user-agent")
        client = request.client.host if request.client else "unknown"
        record = self.clicks.allow(f"{request.path_params['token']}\n{client}")
        try:
            if record:
                url = await run_in_threadpool(
                    self.store.record_click, campaign, subscriber, link, user_agent=agent
                )
            else:  # the same link from the same client again and again: followed, not counted
                url = await run_in_threadpool(self.store.campaign_link, campaign, link)
        except NotFound:
            return _not_valid()
        if urlsplit(url).scheme.lower() not in ("http", "https"):
            return _not_valid()
        return RedirectResponse(url, status_code=302, headers=_HEADERS)


_SHA256 = re.compile(r"[0-9a-f]{64}")
_SHOWN_INLINE = ("image/", "video/", "audio/")  # served to be shown; anything else downloads


async def _file(store: Store, request: Request) -> Response:
    """``/f/SHA256/NAME``: a composed campaign's uploaded file, where a provider takes no
    upload (a webhook) or the file is over its limit. Named by its digest (unguessable,
    never changes: cached for a year); anything but an image, a video or a sound is a
    download, and sandboxed, so a file can never act as a page of this site."""
    sha = request.path_params["sha256"]
    if not _SHA256.fullmatch(sha):
        return _not_valid()
    try:
        upload = await run_in_threadpool(store.upload_info, sha)
        data = b"" if request.method == "HEAD" else await run_in_threadpool(store.upload_data, sha)
    except NotFound:
        return _not_valid()
    inline = upload.content_type.startswith(_SHOWN_INLINE) and upload.content_type != "image/svg+xml"
    disposition = "inline" if inline else "attachment"
    headers = {
        "Cache-Control": "public, max-age=31536000, immutable",
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(upload.name)}",
        "Content-Security-Policy": "sandbox; default-src 'none'",
        "X-Content-Type-Options": "nosniff",
        "Content-Length": str(upload.size),
    }
    media_type = upload.content_type if inline else "application/octet-stream"
    return Response(data, media_type=media_type, headers=headers)


def confirmation_call(audience: str, link: str) -> ProviderCall:
    """The confirmation email of a double opt-in (an ``smtp`` call, as campaigns make)."""
    subject = f"Confirm your subscription to {audience}"
    text = (
        f"Hello,\n\nSomeone, hopefully you, asked to get {audience} updates at this address.\n"
        f"Confirm here:\n\n{link}\n\n"
        "If it was not you, ignore this email: nothing more will be sent to you.\n"
    )
    esc_link, esc_audience = html.escape(link), html.escape(audience)
    body = (
        '<!doctype html><html lang="en"><body style="font-family:system-ui,Arial,sans-serif;'
        'line-height:1.5;color:#1d2330">'
        f"<p>Hello,</p><p>Someone, hopefully you, asked to get <strong>{esc_audience}</strong> "
        "updates at this address.</p>"
        f'<p><a href="{esc_link}" style="display:inline-block;padding:10px 18px;background:#1f5fd1;'
        'color:#fff;border-radius:6px;text-decoration:none;font-weight:600">Confirm my subscription</a></p>'
        f'<p style="color:#5a6272;font-size:14px">Or open this link: {esc_link}</p>'
        '<p style="color:#5a6272;font-size:14px">If it was not you, ignore this email: '
        "nothing more will be sent to you.</p></body></html>"
    )
    return ProviderCall(method="smtp", body={"subject": subject, "html": body, "text": text})
