"""Facebook Messenger through the Graph Send API, as a Page.

One :class:`~feedcast.kernel.models.ProviderCall` (``method="messages"``, body
``{"messaging_type", "message"}`` from ``layouts.payloads``) becomes one
``POST {api_url}/me/messages`` with the recipient added and the page token in an
``Authorization: Bearer`` header, never in the URL (URLs end up in logs).

The 24-hour rule: a page may message a person freely only within 24 hours of that
person's last message, postback or quick reply (``Recipient.last_inbound_at``).
Outside it, :meth:`MessengerChannel.skip_reason` skips the recipient unless the campaign
has a permitted message tag; then the call goes as ``MESSAGE_TAG`` with that tag.

Every answer is classified in :meth:`MessengerChannel.classify` (docs/channels.md):

=====================  ==========================================================
10 / 2018278           skipped: outside the window (the provider had the last word)
551 (1545041)          recipient: unreachable (blocked the page, deactivated)
100 / 2018001          recipient: removed (no matching user)
613, 4, 17, 32, 80006  transient, pause the page (1 s, or what the usage header says)
1200, 2, is_transient  transient
190, 102               fatal: the page token was refused
10, 200..299, 368      fatal: permissions or policy
other 100              content: Graph refused the message; never retried as is
5xx, 429, network      transient
other                  content (a single delivery fails; the campaign goes on)
=====================  ==========================================================
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx

from channels.base import (
    NETWORK_ERRORS,
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
    one_line,
    retry_after_header,
)
from feedcast.kernel.errors import ChannelError, InvalidValue
from feedcast.kernel.models import ProviderCall
from feedcast.kernel.netguard import guarded_client

__all__ = ["DEFAULT_API_URL", "MESSAGE_TAGS", "OUTSIDE_WINDOW", "MessengerChannel", "attachment_type"]

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://graph.facebook.com/v25.0"
# the non-promotional tags that allow a message outside the 24-hour window
MESSAGE_TAGS = frozenset({"CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "ACCOUNT_UPDATE", "HUMAN_AGENT"})
WINDOW = timedelta(hours=24)
HUMAN_AGENT_WINDOW = timedelta(days=7)
OUTSIDE_WINDOW = "outside the 24-hour messaging window"

# one under the published limits (300 calls/s per page, 10/s for audio and video), so
# that network jitter never lands a burst over them at Graph's end
TEXT_RATE = 290
MEDIA_RATE = 9
_SLOW_MEDIA = frozenset({"audio", "video"})
RATE_PAUSE = 1.0  # seconds the page waits after a rate-limit error without a usage header

_RATE_CODES = frozenset({4, 17, 32, 613, 80006})
_TEMPORARY_CODES = frozenset({1, 2, 1200})
_TOKEN_CODES = frozenset({102, 190})


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _usage_wait(headers: Mapping[str, str]) -> float | None:
    """Seconds until access is regained, from Graph's ``X-Business-Use-Case-Usage``
    header (``estimated_time_to_regain_access`` is in minutes)."""
    raw = headers.get("x-business-use-case-usage")
    if not raw:
        return None
    try:
        usage = json.loads(raw)
    except ValueError:
        return None
    minutes = 0.0
    if isinstance(usage, dict):
        for entries in usage.values():
            for entry in entries if isinstance(entries, list) else ():
                value = entry.get("estimated_time_to_regain_access") if isinstance(entry, dict) else None
                if isinstance(value, int | float) and not isinstance(value, bool):
                    minutes = max(minutes, float(value))
    return minutes * 60 if minutes > 0 else None


class MessengerChannel(ApiChannel):
    kind: ClassVar[str] = "messenger"
    description: ClassVar[str] = "Facebook Messenger (Graph Send API, as a Page)"
    options: ClassVar[tuple[Option, ...]] = (
        Option("page_token", "the Page access token, as env:VAR", required=True, secret=True),
        Option("app_secret", "the app secret (verifies webhook signatures), as env:VAR", secret=True),
        Option("api_url", "the Graph API base URL, version included", default=DEFAULT_API_URL),
        Option("verify_token", "the token of the webhook handshake", may_be_secret=True),
    )
    default_api_url: ClassVar[str] = DEFAULT_API_URL
    # Graph answers in ~100-300 ms: 64 calls in flight keep up with 290 calls/s
    max_in_flight: ClassVar[int] = 64

    def __init__(self, name: str, settings: Mapping[str, Any], *, secrets: Secrets | None = None) -> None:
        super().__init__(name, settings, secrets=secrets)
        self._token: str | None = None
        self._key: str | None = None
        self._uploads = UploadOnce()

    # ----------------------------------------------------------------- configuration

    @classmethod
    def validate_settings(cls, settings: Mapping[str, Any]) -> dict[str, Any]:
        out = super().validate_settings(settings)
        url = cls.api_url_of(out)
        if not url.lower().startswith(("https://", "http://")):
            raise InvalidValue(f"--api-url must be an http(s) URL, not {url!r}")
        out["api_url"] = cls.checked_api_url(url)  # the page token goes with every call
        return out

    def validate_recipient(self, address: str) -> str:
        psid = address.strip()
        if not psid.isascii() or not psid.isdigit():
            raise InvalidValue(
                f"a Messenger recipient is a page-scoped id (PSID, digits), not {one_line(psid, 40)!r}"
            )
        return psid

    def _page_token(self) -> str:
        if self._token is None:
            self.check_api_url()
            self._token = self.setting("page_token")
            digest = hashlib.sha256(self._token.encode("utf-8")).hexdigest()[:16]
            self._key = f"messenger:{digest}"
        return self._token

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._page_token()}"}

    def auth_headers(self) -> dict[str, str]:
        """The page token's header, once the API URL passed the checks (ChannelError)."""
        return self._headers()

    # ----------------------------------------------------------------- sending

    async def open(self, client: httpx.AsyncClient | None) -> None:
        await super().open(client)
        self._page_token()

    def rate_rules(self, recipient: Recipient, call: ProviderCall) -> Sequence[RateRule]:
        if self._key is None:
            try:
                self._page_token()
            except ChannelError:
                self._key = f"messenger:{self.name}"
        key = str(self._key)
        rules = [RateRule(key, TEXT_RATE, 1)]
        if attachment_type(call.body) in _SLOW_MEDIA:
            rules.append(RateRule(key + ":media", MEDIA_RATE, 1))
        return rules

    def _window_open(self, recipient: Recipient, context: SendContext, span: timedelta = WINDOW) -> bool:
        last = recipient.last_inbound_at
        if last is None:
            return False
        now = _aware(context.now) if context.now is not None else datetime.now(UTC)
        return now - _aware(last) < span

    def skip_reason(self, recipient: Recipient, context: SendContext) -> str | None:
        if self._window_open(recipient, context):
            return None
        tag = context.message_tag
        if tag is None:
            return OUTSIDE_WINDOW
        if tag not in MESSAGE_TAGS:
            return (
                f"{OUTSIDE_WINDOW}, and message tag {tag!r} is not one of {', '.join(sorted(MESSAGE_TAGS))}"
            )
        if tag == "HUMAN_AGENT" and not self._window_open(recipient, context, HUMAN_AGENT_WINDOW):
            return "outside the 7-day window of the HUMAN_AGENT tag"
        return None

    def request_body(self, recipient: Recipient, call: ProviderCall, context: SendContext) -> dict[str, Any]:
        """The JSON body for one recipient: the call's body, the recipient, and the tag
        when the window is closed and the campaign has one."""
        body = dict(call.body)
        body["recipient"] = {"id": recipient.address}
        if context.message_tag and not self._window_open(recipient, context):
            body["messaging_type"] = "MESSAGE_TAG"
            body["tag"] = context.message_tag
        return body

    async def send(
        self, recipient: Recipient, call: ProviderCall, context: SendContext, position: int
    ) -> Result:
        client = self.client
        if client is None:
            raise ChannelError(f"messenger channel {self.name!r}: send() before open()")
        body = self.request_body(recipient, call, context)
        try:
            failed = await self._attach(client, body, context.files)
            if failed is not None:
                result = failed
            else:
                response = await client.post(
                    f"{self.api_url}/me/messages", json=body, headers=self._headers()
                )
                result = self.classify(response.status_code, _json_or_none(response), response.headers)
        except NETWORK_ERRORS as exc:
            result = network_result(self, exc)
        log.debug(
            "messenger %s: psid=%s position=%d outcome=%s code=%s",
            self.name,
            recipient.address,
            position,
            result.outcome,
            result.code,
        )
        return result

    async def _attach(
        self, client: httpx.AsyncClient, body: dict[str, Any], files: Files | None
    ) -> Result | None:
        """An attachment naming an uploaded file (``attachment_id: attach://SHA``) gets the
        Page's ``attachment_id`` for it: uploaded once with the Attachment Upload API
        (``is_reusable``), then reused for every recipient. None when the call can go;
        else the failed upload's result."""
        message = body.get("message")
        attachment = message.get("attachment") if isinstance(message, dict) else None
        payload = attachment.get("payload") if isinstance(attachment, dict) else None
        sha = attached(payload.get("attachment_id")) if isinstance(payload, dict) else None
        if sha is None or files is None or not isinstance(message, dict) or not isinstance(attachment, dict):
            return None
        kind = str(attachment.get("type"))
        async with self._uploads.lock(sha, kind):
            known = files.known(sha, kind)
            if known is None:
                upload, data = await files.read(sha)
                spec = {"attachment": {"type": kind, "payload": {"is_reusable": True}}}
                response = await client.post(
                    f"{self.api_url}/me/message_attachments",
                    data={"message": json.dumps(spec)},
                    files={"filedata": (upload.name, data, upload.content_type)},
                    headers=self._headers(),
                )
                answer = _json_or_none(response)
                attachment_id = answer.get("attachment_id") if isinstance(answer, dict) else None
                if not 200 <= response.status_code < 300 or not isinstance(attachment_id, str):
                    return self.classify(response.status_code, answer, response.headers)
                known = attachment_id
                await files.remember(sha, kind, known)
        body["message"] = {**message, "attachment": {"type": kind, "payload": {"attachment_id": known}}}
        return None

    def classify(self, status: int, payload: Any, headers: Mapping[str, str]) -> Result:
        """A Graph answer (status, decoded JSON or None, headers) as a :class:`Result`."""
        error = payload.get("error") if isinstance(payload, dict) else None
        if 200 <= status < 300 and not isinstance(error, dict):
            message_id = payload.get("message_id") if isinstance(payload, dict) else None
            if message_id is None:
                log.warning("messenger %s: a %d answer without a message id", self.name, status)
            return Result.sent(None if message_id is None else str(message_id))
        if not isinstance(error, dict):
            return self._unknown(status, headers)
        code = _int(error.get("code"))
        subcode = _int(error.get("error_subcode"))
        code_text = f"{code}/{subcode}" if subcode else str(code)
        text = self.scrubbed(f"{error.get('message') or 'Graph error'} ({code_text})")
        if code == 10 and subcode == 2018278:
            return Result(Outcome.SKIPPED, error=OUTSIDE_WINDOW, code=code_text)
        if code == 551:
            return Result(Outcome.RECIPIENT, error=text, code=code_text, subscriber_status="unreachable")
        if code == 100 and subcode == 2018001:
            return Result(Outcome.RECIPIENT, error=text, code=code_text, subscriber_status="removed")
        if code in _RATE_CODES:
            wait = retry_after_header(headers) or _usage_wait(headers) or RATE_PAUSE
            return Result(Outcome.TRANSIENT, error=text, code=code_text, retry_after=wait, pause_channel=True)
        if code in _TEMPORARY_CODES or error.get("is_transient") is True:
            return Result(
                Outcome.TRANSIENT, error=text, code=code_text, retry_after=retry_after_header(headers)
            )
        if code in _TOKEN_CODES:
            return Result(Outcome.FATAL, error=f"the page token was refused: {text}", code=code_text)
        if code == 10 or code == 368 or (code is not None and 200 <= code <= 299):
            return Result(Outcome.FATAL, error=f"the page may not send: {text}", code=code_text)
        if code == 100:
            return Result(Outcome.CONTENT, error=text, code=code_text)
        if status >= 500 or status == 429:
            return self._unknown(status, headers, text, code_text)
        return Result(Outcome.CONTENT, error=text, code=code_text)

    def _unknown(
        self, status: int, headers: Mapping[str, str], text: str | None = None, code: str | None = None
    ) -> Result:
        error = text or f"HTTP {status} without a Graph error"
        if status >= 500 or status == 429:
            return Result(
                Outcome.TRANSIENT,
                error=error,
                code=code or str(status),
                retry_after=retry_after_header(headers),
                pause_channel=status == 429,
            )
        return Result(Outcome.CONTENT, error=error, code=code or str(status))

    # ----------------------------------------------------------------- checking

    async def check(self) -> str:
        where = f"messenger channel {self.name!r}"
        headers = self._headers()
        url = f"{self.api_url}/me"
        try:
            if self.client is not None:
                response = await self.client.get(url, headers=headers)
            else:
                async with guarded_client(httpx.Timeout(15.0)) as client:
                    response = await client.get(url, headers=headers)
        except NETWORK_ERRORS as exc:
            raise ChannelError(f"{where}: cannot reach {self.api_url}: {self.error_text(exc)}") from None
        payload = _json_or_none(response)
        if response.status_code == 200 and isinstance(payload, dict) and "id" in payload:
            name = one_line(payload.get("name") or "?", 100)
            return f"page {name} (id {payload['id']})"
        error = payload.get("error") if isinstance(payload, dict) else None
        if not isinstance(error, dict):
            raise ChannelError(f"{where}: {url} answered HTTP {response.status_code} without a Graph error")
        code = _int(error.get("code"))
        message = self.scrubbed(str(error.get("message") or "Graph error"), 200)
        if code in _TOKEN_CODES:
            raise ChannelError(f"{where}: the page token was refused ({code} {message})")
        raise ChannelError(f"{where}: Graph refused the check ({code} {message})")


def attachment_type(body: Mapping[str, Any]) -> str | None:
    """The ``type`` of a Send API body's attachment (``image``, ``audio``...; None: none)."""
    message = body.get("message")
    if isinstance(message, Mapping):
        attachment = message.get("attachment")
        if isinstance(attachment, Mapping):
            kind = attachment.get("type")
            return kind if isinstance(kind, str) else None
    return None


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
