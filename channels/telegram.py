"""Telegram: the Bot API (``POST {api}/bot<TOKEN>/<method>``, JSON).

One call of a campaign (``sendMessage``, ``sendPhoto``, ``sendMediaGroup``...) becomes one
request with the recipient's ``chat_id`` added; :func:`classify` maps every answer of the
Bot API (``docs/channels.md``, "Errors and the sender's reaction") to a :class:`Result`:

=====================================================  ===========================================
answer                                                 result
=====================================================  ===========================================
``ok: true``                                           sent, the (first) message's id
429 ``retry after N``                                  transient, ``retry_after`` N, pause the bot
403 blocked / kicked / can't initiate / not a member   recipient, ``unsubscribed``
403 user is deactivated (and any other 403)            recipient, ``unreachable``
400 ``chat not found`` (and the like)                  recipient, ``removed``
400 with ``migrate_to_chat_id``                        transient, ``migrate_to`` the supergroup id
400 anything else (too long, can't parse entities...)  content: never retried as is
401 / 404                                              fatal: the bot token is refused
409                                                    fatal: a webhook / getUpdates conflict
5xx, a malformed answer, a network error               transient
=====================================================  ===========================================

Receiving (the inbox, :mod:`feedcast.inbox.telegram`): :meth:`TelegramChannel.get_updates`
(long polling), :meth:`~TelegramChannel.set_webhook`, :meth:`~TelegramChannel.delete_webhook`,
:meth:`~TelegramChannel.webhook_info` and :meth:`~TelegramChannel.me` (``getMe``, once).

The token is part of every URL, so it is kept out of every error text (httpx exceptions
carry the URL): errors go through :meth:`Channel.error_text`, which scrubs secrets.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from channels.base import (
    NETWORK_ERRORS,
    REDACTOR,
    ApiChannel,
    Files,
    Option,
    Outcome,
    RateRule,
    Recipient,
    Result,
    Secrets,
    SendContext,
    UploadOnce,
    attached,
    network_result,
    number,
    one_line,
)
from feedcast.kernel.errors import ChannelError, InvalidValue
from feedcast.kernel.models import ProviderCall
from feedcast.kernel.netguard import guarded_client

__all__ = ["DEFAULT_API_URL", "TIMEOUT", "TelegramChannel", "classify"]

log = logging.getLogger(__name__)
log.addFilter(REDACTOR)  # logger filters are not inherited from "channels"

DEFAULT_API_URL = "https://api.telegram.org"
# a hung Bot API never blocks a campaign: 30 s for an answer, 10 s to connect
TIMEOUT = httpx.Timeout(30.0, connect=10.0)

# our pacing: one under the published figures, so jitter never lands one too many
BOT_PER_SECOND = 29
# calls spread 1/28.5 s apart: ~28.5 a second (95 % of Telegram's 30) leaves a message and
# a half of slack in every second for network and scheduling jitter; 29 stays the cap
BOT_SPACING = 1 / 28.5
CHAT_PER_SECOND = 1
GROUP_PER_MINUTE = 19

_CHAT_ID = re.compile(r"-?[0-9]{1,19}")
_USERNAME = re.compile(r"@[A-Za-z][A-Za-z0-9_]{3,31}")
_UNSUBSCRIBED = (
    "blocked",
    "kicked",
    "can't initiate",
    "not a member",
    "have no rights to send",
    "not enough rights",
)
_GONE = (
    "chat not found",
    "user not found",
    "peer_id_invalid",
    "chat_id is empty",
    "group chat was deactivated",
    "chat was deleted",
)


def classify(status: int, payload: object) -> Result:
    """A Bot API answer (HTTP status, decoded JSON body or None) as a :class:`Result`."""
    if not isinstance(payload, Mapping) or "ok" not in payload:
        return Result(
            Outcome.TRANSIENT, error=f"malformed answer from the Bot API (HTTP {status})", code=str(status)
        )
    if payload.get("ok") is True and 200 <= status < 300:
        return Result.sent(_message_id(payload.get("result")))
    raw_code = payload.get("error_code")
    code = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else status
    description = one_line(payload.get("description") or f"HTTP {status}")
    raw_parameters = payload.get("parameters")
    parameters: Mapping[str, Any] = raw_parameters if isinstance(raw_parameters, Mapping) else {}
    text = description.lower()
    migrate_to = parameters.get("migrate_to_chat_id")
    if migrate_to is not None:
        return Result(Outcome.TRANSIENT, error=description, code=str(code), migrate_to=str(migrate_to))
    retry_after = parameters.get("retry_after")
    if code == 429 or retry_after is not None:
        seconds = number(retry_after)
        if seconds is None:
            match = re.search(r"retry after (\d+)", text)
            seconds = float(match.group(1)) if match else 1.0
        return Result(
            Outcome.TRANSIENT,
            error=description,
            code="429",
            retry_after=max(1.0, seconds),
            pause_channel=True,
        )
    if code in (401, 404):
        return Result(
            Outcome.FATAL, error=f"the bot token was refused ({code} {description})", code=str(code)
        )
    if code == 409:
        return Result(Outcome.FATAL, error=f"configuration conflict ({description})", code="409")
    if code == 403:
        status_after = "unsubscribed" if any(s in text for s in _UNSUBSCRIBED) else "unreachable"
        return Result(Outcome.RECIPIENT, error=description, code="403", subscriber_status=status_after)
    if code == 400 and any(s in text for s in _GONE):
        return Result(Outcome.RECIPIENT, error=description, code="400", subscriber_status="removed")
    if 400 <= code < 500:
        return Result(Outcome.CONTENT, error=description, code=str(code))
    return Result(Outcome.TRANSIENT, error=description, code=str(code))


def _message_id(result: object) -> str | None:
    if isinstance(result, list) and result:
        result = result[0]  # an album: its first message
    if isinstance(result, Mapping) and result.get("message_id") is not None:
        return str(result["message_id"])
    return None


class TelegramChannel(ApiChannel):
    """A Telegram bot: ``feedcast channel add NAME --kind telegram --token env:TELEGRAM_TOKEN``."""

    kind: ClassVar[str] = "telegram"
    description: ClassVar[str] = "Telegram Bot API: messages, photos, albums and inline keyboards"
    options: ClassVar[tuple[Option, ...]] = (
        Option("token", "the bot token from @BotFather, as env:VAR", required=True, secret=True),
        Option(
            "api_url",
            "the Bot API's base URL (a local Bot API server, the sandbox)",
            default=DEFAULT_API_URL,
        ),
        Option(
            "disable_notification",
            "deliver silently (no sound on the recipient's phone)",
            default="false",
            choices=("true", "false"),
        ),
        Option("thread_id", "forum topic to post in (message_thread_id) when the chat is a forum"),
    )
    max_in_flight: ClassVar[int] = 32
    default_api_url: ClassVar[str] = DEFAULT_API_URL

    def __init__(self, name: str, settings: Mapping[str, Any], *, secrets: Secrets | None = None) -> None:
        super().__init__(name, settings, secrets=secrets)
        self._token: str | None = None
        self._own_client: httpx.AsyncClient | None = None
        self._me: dict[str, Any] | None = None
        self._uploads = UploadOnce()

    # ----------------------------------------------------------------- configuration

    @classmethod
    def validate_settings(cls, settings: Mapping[str, Any]) -> dict[str, Any]:
        out = super().validate_settings(settings)
        api = cls.api_url_of(out)
        parts = urlsplit(api)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise InvalidValue(f"--api-url must be an http(s) URL such as {DEFAULT_API_URL}, not {api!r}")
        out["api_url"] = cls.checked_api_url(api)  # the bot token is in every URL
        thread = out.get("thread_id")
        if thread is not None:
            if not re.fullmatch(r"[0-9]{1,19}", str(thread)) or int(thread) <= 0:
                raise InvalidValue(f"--thread-id must be a forum topic's positive integer id, not {thread!r}")
            out["thread_id"] = str(int(thread))
        return out

    def validate_recipient(self, address: str) -> str:
        address = address.strip()
        if _CHAT_ID.fullmatch(address) and int(address) != 0:
            return str(int(address))
        if _USERNAME.fullmatch(address):
            return address
        raise InvalidValue(
            "a Telegram recipient is a chat id (123456789, or -1001234567890 for a group or channel) "
            f"or a public @channelusername, not {address!r}"
        )

    # ----------------------------------------------------------------- sending

    def _resolve_token(self) -> str:
        if self._token is None:
            self.check_api_url()
            self._token = self.setting("token", secret=True)
        return self._token

    def _url(self, method: str) -> str:
        return f"{self.api_url}/bot{self._resolve_token()}/{method}"

    async def open(self, client: httpx.AsyncClient | None) -> None:
        await super().open(client)
        self._resolve_token()
        if client is None:
            self._own_client = guarded_client(TIMEOUT)
            self.client = self._own_client

    async def close(self) -> None:
        if self._own_client is not None:
            await self._own_client.aclose()
            self._own_client = None
        self.client = None  # the engine's client is the engine's to close; check() opens its own

    @property
    def _bot_key(self) -> str:
        """The bot in rate-limit keys: a digest of its token, never the token."""
        basis = self._token or str(self.settings.get("token", self.name))
        return "telegram:" + hashlib.sha256(basis.encode()).hexdigest()[:16]

    def rate_rules(self, recipient: Recipient, call: ProviderCall) -> Sequence[RateRule]:
        """29 messages per second per bot (an album of n counts n); per chat 1 per second;
        groups and channels also 19 per minute."""
        cost = _cost(call)
        bot = self._bot_key
        chat = recipient.address
        rules = [
            RateRule(bot, BOT_PER_SECOND, 1, cost, spacing=BOT_SPACING),
            RateRule(f"{bot}:chat:{chat}", CHAT_PER_SECOND, 1),
        ]
        if _is_group(chat):
            rules.append(RateRule(f"{bot}:group:{chat}", GROUP_PER_MINUTE, 60, cost))
        return rules

    def _body(self, recipient: Recipient, call: ProviderCall) -> dict[str, Any]:
        body = dict(call.body)
        address = recipient.address.strip()
        body["chat_id"] = int(address) if _CHAT_ID.fullmatch(address) else address
        if str(self.settings.get("disable_notification", "false")).lower() == "true":
            body["disable_notification"] = True
        thread = self.settings.get("thread_id")
        if thread:
            body["message_thread_id"] = int(thread)
        return body

    async def send(
        self, recipient: Recipient, call: ProviderCall, context: SendContext, position: int
    ) -> Result:
        if self.client is None:
            await self.open(None)
        client = self.client
        assert client is not None
        refs = _attachments(call)
        try:
            if refs and context.files is not None:
                result = await self._send_files(
                    client, self._body(recipient, call), call.method, refs, context.files
                )
            else:
                response = await client.post(
                    self._url(call.method), json=self._body(recipient, call), timeout=_timeout(client)
                )
                result = self._classify(response)
        except NETWORK_ERRORS as exc:
            result = network_result(self, exc)
        log.debug(
            "telegram %s to %s: %s%s",
            call.method,
            recipient.address,
            result.outcome.value,
            f" ({result.code}: {result.error})" if result.error else f" message {result.message_id}",
        )
        return result

    async def _send_files(
        self,
        client: httpx.AsyncClient,
        body: dict[str, Any],
        method: str,
        refs: Sequence[tuple[str | int, str, str]],
        files: Files,
    ) -> Result:
        """A call naming uploaded files: each file Telegram already has goes by its
        ``file_id``; the others are uploaded (multipart), once: whoever uploads a file
        holds its lock, and the deliveries behind it reuse the ``file_id`` it returned."""
        body = copy.deepcopy(body)  # album items are nested: the campaign's call stays as it is
        pending = sorted({(sha, kind) for _place, sha, kind in refs if files.known(sha, kind) is None})
        async with contextlib.AsyncExitStack() as stack:
            for sha, kind in pending:
                await stack.enter_async_context(self._uploads.lock(sha, kind))
            parts: dict[str, tuple[str, bytes, str]] = {}
            for place, sha, kind in refs:
                known = files.known(sha, kind)
                if isinstance(place, int):  # an album item: attach://SHA names a part
                    if known is not None:
                        body["media"][place]["media"] = known
                    elif sha not in parts:
                        upload, data = await files.read(sha)
                        parts[sha] = (upload.name, data, upload.content_type)
                elif known is not None:
                    body[place] = known
                else:
                    upload, data = await files.read(sha)
                    del body[place]
                    parts[place] = (upload.name, data, upload.content_type)
            if not parts:
                response = await client.post(self._url(method), json=body, timeout=_timeout(client))
                return self._classify(response)
            form = {k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()}
            response = await client.post(self._url(method), data=form, files=parts, timeout=_timeout(client))
            result = self._classify(response)
            if result.outcome is Outcome.SENT:
                for place, sha, kind in refs:
                    file_id = _file_id_of(response, place, kind)
                    if file_id is not None and files.known(sha, kind) is None:
                        await files.remember(sha, kind, file_id)
            return result

    def _classify(self, response: httpx.Response) -> Result:
        try:
            payload: object = response.json()
        except ValueError:
            payload = None
        return self.scrubbed_result(classify(response.status_code, payload))

    async def check(self) -> str:
        """``getMe``: "bot @username (id N)"; ChannelError when the token is refused or
        the Bot API cannot be reached."""
        where = f"telegram channel {self.name!r}"
        url = self._url("getMe")
        client = self.client
        own = client is None
        if client is None:
            client = guarded_client(TIMEOUT)
        try:
            response = await client.post(url, timeout=_timeout(client))
        except NETWORK_ERRORS as exc:
            raise ChannelError(
                f"{where}: the Bot API at {self.api_url} is unreachable ({self.error_text(exc)})"
            ) from None
        finally:
            if own:
                await client.aclose()
        result = self._classify(response)
        if result.outcome is Outcome.SENT:
            bot = response.json().get("result") or {}
            return f"bot @{bot.get('username', '?')} (id {bot.get('id', '?')})"
        if result.code in ("401", "404"):
            reason = "401 Unauthorized" if result.code == "401" else "404 Not Found"
            raise ChannelError(f"{where}: the bot token was refused ({reason})")
        raise ChannelError(f"{where}: getMe failed ({result.code}: {result.error})")

    # ----------------------------------------------------------------- receiving

    async def _method(
        self, method: str, params: Mapping[str, Any] | None = None, *, timeout: httpx.Timeout | None = None
    ) -> tuple[Result, object]:
        """Call a Bot API method that sends nothing: its classified answer and ``result``.
        Network errors propagate (:data:`~channels.base.NETWORK_ERRORS`); the caller decides."""
        client = self.client
        own = client is None
        if client is None:
            client = guarded_client(TIMEOUT)
        try:
            response = await client.post(
                self._url(method), json=dict(params or {}), timeout=timeout or _timeout(client)
            )
        finally:
            if own:
                await client.aclose()
        result = self._classify(response)
        try:
            payload = response.json()
        except ValueError:
            payload = None
        return result, payload.get("result") if isinstance(payload, Mapping) else None

    def _refused(self, method: str, result: Result) -> ChannelError:
        where = f"telegram channel {self.name!r}"
        if result.code in ("401", "404"):
            reason = "401 Unauthorized" if result.code == "401" else "404 Not Found"
            return ChannelError(f"{where}: the bot token was refused ({reason})")
        if result.code == "409":
            return ChannelError(
                f"{where}: {method} refused (409: {result.error}); a webhook is set "
                f"(feedcast channel webhook {self.name} --delete) or another process polls this bot"
            )
        return ChannelError(f"{where}: {method} failed ({result.code}: {result.error})")

    async def _checked(
        self, method: str, params: Mapping[str, Any] | None = None, *, timeout: httpx.Timeout | None = None
    ) -> object:
        """A method's ``result``, or ChannelError (one line, no secret) for any failure."""
        try:
            result, value = await self._method(method, params, timeout=timeout)
        except NETWORK_ERRORS as exc:
            raise ChannelError(
                f"telegram channel {self.name!r}: the Bot API at {self.api_url} is unreachable "
                f"({self.error_text(exc)})"
            ) from None
        if result.outcome is not Outcome.SENT:
            raise self._refused(method, result)
        return value

    async def me(self) -> dict[str, Any]:
        """``getMe``: the bot's user (``id``, ``username``, ``first_name``...), asked once."""
        if self._me is None:
            value = await self._checked("getMe")
            if not isinstance(value, Mapping):
                raise ChannelError(f"telegram channel {self.name!r}: getMe gave no bot")
            self._me = dict(value)
        return dict(self._me)

    async def get_updates(
        self,
        offset: int | None,
        timeout: float,
        limit: int = 100,
        *,
        allowed_updates: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """``getUpdates``: the updates from ``offset`` (which confirms the earlier ones),
        waiting up to ``timeout`` seconds for one (long polling). ChannelError when the
        token is refused (401 / 404) or a webhook or another poller is in the way (409);
        a network error, a 5xx or a 429 is logged and gives ``[]`` (the caller polls again)."""
        seconds = max(0, int(timeout))
        params: dict[str, Any] = {"timeout": seconds, "limit": max(1, min(100, int(limit)))}
        if offset is not None:
            params["offset"] = int(offset)
        if allowed_updates is not None:
            params["allowed_updates"] = list(allowed_updates)
        try:
            result, value = await self._method(
                "getUpdates", params, timeout=httpx.Timeout(seconds + 15.0, connect=10.0)
            )
        except NETWORK_ERRORS as exc:
            log.warning("telegram channel %r: getUpdates failed: %s", self.name, self.error_text(exc))
            return []
        if result.outcome is Outcome.SENT:
            return [u for u in value if isinstance(u, dict)] if isinstance(value, list) else []
        if result.outcome is Outcome.FATAL or result.code in ("401", "404", "409"):
            raise self._refused("getUpdates", result)
        log.warning("telegram channel %r: getUpdates failed (%s: %s)", self.name, result.code, result.error)
        return []

    async def set_webhook(
        self, url: str, secret: str | None = None, *, allowed_updates: Sequence[str] | None = None
    ) -> None:
        """``setWebhook``: Telegram POSTs each update to ``url`` with ``secret`` in the
        ``X-Telegram-Bot-Api-Secret-Token`` header (1-256 of ``A-Z a-z 0-9 _ -``)."""
        params: dict[str, Any] = {"url": url}
        if secret is not None:
            self.secrets.remember(secret)
            params["secret_token"] = secret
        if allowed_updates is not None:
            params["allowed_updates"] = list(allowed_updates)
        await self._checked("setWebhook", params)

    async def delete_webhook(self, *, drop_pending_updates: bool = False) -> None:
        """``deleteWebhook``: back to ``getUpdates`` (pending updates kept unless dropped)."""
        await self._checked("deleteWebhook", {"drop_pending_updates": drop_pending_updates})

    async def webhook_info(self) -> dict[str, Any]:
        """``getWebhookInfo``: ``url`` (empty: none), ``pending_update_count``, the last error."""
        value = await self._checked("getWebhookInfo")
        return dict(value) if isinstance(value, Mapping) else {}


def _timeout(client: httpx.AsyncClient) -> httpx.Timeout:
    """The client's own timeouts (the engine sets them), :data:`TIMEOUT` where it has none."""
    own = client.timeout
    if own.read is None or own.connect is None or own.pool is None:
        return TIMEOUT
    return own


_MEDIA_FIELDS = {"sendPhoto": "photo", "sendVideo": "video", "sendAudio": "audio", "sendDocument": "document"}


def _attachments(call: ProviderCall) -> list[tuple[str | int, str, str]]:
    """(where, SHA-256, kind) of each uploaded file a call names: a media call's field,
    or an album item's index."""
    field = _MEDIA_FIELDS.get(call.method)
    if field is not None:
        sha = attached(call.body.get(field))
        return [(field, sha, field)] if sha else []
    if call.method == "sendMediaGroup":
        items = call.body.get("media")
        return [
            (index, sha, str(item.get("type")))
            for index, item in enumerate(items if isinstance(items, list) else [])
            if isinstance(item, Mapping) and (sha := attached(item.get("media")))
        ]
    return []


def _file_id_of(response: httpx.Response, place: str | int, kind: str) -> str | None:
    """The ``file_id`` Telegram gave an uploaded file: of the largest photo size, or of the
    video, audio or document (the album message at ``place``)."""
    try:
        result = response.json().get("result")
    except (ValueError, AttributeError):
        return None
    if isinstance(place, int):
        result = result[place] if isinstance(result, list) and place < len(result) else None
    if not isinstance(result, Mapping):
        return None
    media = result.get(kind)
    if kind == "photo" and isinstance(media, list) and media:
        media = media[-1]
    file_id = media.get("file_id") if isinstance(media, Mapping) else None
    return file_id if isinstance(file_id, str) else None


def _cost(call: ProviderCall) -> int:
    """Messages a call sends: an album of n is n."""
    if call.method == "sendMediaGroup":
        media = call.body.get("media")
        if isinstance(media, list | tuple):
            return max(1, len(media))
    return 1


def _is_group(address: str) -> bool:
    address = address.strip()
    return address.startswith(("@", "-"))
