"""Webhooks: Slack incoming webhooks, Discord webhooks and generic JSON receivers.

One channel is one webhook URL and has exactly one recipient (``fixed_recipient``
``"webhook"``). ``--format`` says what the layouts render and how answers are read:

``slack``
    POST ``{"text", "blocks"}``; 200 ``ok``; errors are plain-text codes
    (400 ``invalid_payload`` / ``no_text`` ..., 403 ``action_prohibited``, 404
    ``no_service`` / ``channel_not_found``, 410 ``channel_is_archived``); about one
    message per second per webhook.
``discord``
    POST ``{"content", "embeds"}`` to ``...?wait=true`` (the answer is the message, with
    its id); 5 requests per 2 s per webhook, announced in ``X-RateLimit-*`` headers: when
    ``X-RateLimit-Remaining`` reaches 0 the next send first waits
    ``X-RateLimit-Reset-After``; 429 JSON ``{"retry_after", "global"}``; 404 code 10015
    is a deleted webhook.
``json``
    POST the ``feedcast.v1`` document, signed so that the receiver can check it came
    from us and is fresh::

        X-Feedcast-Timestamp: <unix seconds>
        X-Feedcast-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{raw body}")>
        X-Feedcast-Delivery:  c<campaign>-s<subscriber>-m<position>   (idempotency key)

    Receivers verify with :func:`verify` (constant time, refuses stale timestamps).

Answers map to results in :func:`classify` (one place). A URL that carries a token
(Slack, Discord, credentials, a token-like path segment or query) is accepted only as
``env:VAR`` (:func:`token_in_url`); the resolved URL is registered as a secret and every
error shows scheme and host only. An error records what the provider's format defines
(a Slack error code, Discord's or a JSON receiver's ``code`` / ``message``), never the
raw body of an answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from channels.base import (
    NETWORK_ERRORS,
    Channel,
    Option,
    Outcome,
    RateRule,
    Recipient,
    Result,
    Secrets,
    SendContext,
    endpoint_problem,
    is_secret_ref,
    network_result,
    one_line,
    retry_after_header,
    url_problem,
)
from feedcast.kernel.errors import ChannelError, InvalidValue
from feedcast.kernel.models import ProviderCall
from feedcast.kernel.netguard import guarded_client

__all__ = [
    "DELIVERY_HEADER",
    "FORMATS",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookChannel",
    "classify",
    "delivery_id",
    "sign",
    "token_in_url",
    "verify",
]

log = logging.getLogger(__name__)

FORMATS = ("json", "slack", "discord")
SIGNATURE_HEADER = "X-Feedcast-Signature"
TIMESTAMP_HEADER = "X-Feedcast-Timestamp"
DELIVERY_HEADER = "X-Feedcast-Delivery"
DEFAULT_TOLERANCE = 300  # seconds a signed request stays acceptable

SLACK_RULE = (1, 1)  # 1 message per 1 s per webhook
# calls 1.15 s apart: at exactly 1 s, a request that left a few ms late and the next one
# on time arrive less than a second apart, over Slack's limit
SLACK_SPACING = 1.15
DISCORD_RULE = (5, 2)  # 5 requests per 2 s per webhook

# Slack error codes that mean the webhook itself is gone
_SLACK_GONE = frozenset({"no_service", "channel_not_found", "channel_is_archived", "user_not_found"})
# Slack 400 codes that are configuration, not content
_SLACK_CONFIG = frozenset(
    {"no_service_id", "no_team", "team_disabled", "invalid_token", "invalid_token_type"}
)
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_SLACK_CODE = re.compile(r"[a-z0-9_]{1,64}")  # Slack answers errors as a bare code: nothing else is kept
_LABEL = {"slack": "Slack webhook", "discord": "Discord webhook", "json": "JSON webhook"}


def _user_agent() -> str:
    try:
        from feedcast.kernel import __version__
    except ImportError:  # pragma: no cover - feedcast is always installed beside channels
        return "feedcast"
    return f"feedcast/{__version__}"


# --------------------------------------------------------------------------- signing


def sign(secret: str, timestamp: int | str, body: bytes | str) -> str:
    """``sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>`` over the raw body."""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    mac = hmac.new(secret.encode("utf-8"), str(timestamp).encode("ascii") + b"." + raw, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: str,
    timestamp: int | str | None,
    body: bytes | str,
    signature: str | None,
    tolerance: float | None = DEFAULT_TOLERANCE,
    *,
    now: float | None = None,
) -> bool:
    """Whether ``signature`` is ours for ``body`` at ``timestamp`` (the header values as
    received). Constant-time; refuses a timestamp more than ``tolerance`` seconds from
    ``now`` (None: no age check), so a captured request cannot be replayed later."""
    if not secret or timestamp is None or not signature:
        return False
    stamp = str(timestamp).strip()
    if not stamp.isascii() or not stamp.isdigit():
        return False
    if tolerance is not None:
        current = time.time() if now is None else now
        if abs(current - int(stamp)) > tolerance:
            return False
    expected = sign(secret, stamp, body).encode("ascii")
    given = signature.strip().encode("utf-8", "replace")
    return hmac.compare_digest(expected, given)


def delivery_id(context: SendContext, recipient: Recipient, position: int) -> str:
    """The idempotency key of one call: the same on every retry of it."""
    return f"c{context.campaign_id}-s{recipient.subscriber_id}-m{position}"


# --------------------------------------------------------------------------- answers


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _float(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return max(0.0, float(value))
    if isinstance(value, str):
        try:
            return max(0.0, float(value))
        except ValueError:
            return None
    return None


def classify(fmt: str, status: int, headers: Mapping[str, str], text: str, *, where: str = "") -> Result:
    """One webhook answer as a :class:`Result` (``where``: scheme and host, for errors).

    2xx sent (Discord: the message id; JSON: an ``id`` in a JSON answer); 429 transient,
    pausing the webhook for ``retry_after``; the webhook gone (Slack 404/410
    ``no_service`` / ``channel_not_found`` / ``channel_is_archived``, Discord 404 10015,
    JSON 404/410) -> recipient ``removed``; 401/403 and redirects fatal; content refused
    (400, 413, 422, Discord 50035) -> content; 408, 5xx -> transient.
    """
    label = _LABEL.get(fmt, "webhook") + (f" at {where}" if where else "")
    data = _json_object(text) if fmt in ("discord", "json") else None
    if 200 <= status < 300:
        message_id: str | None = None
        if (
            data is not None
            and isinstance(data.get("id"), str | int)
            and not isinstance(data.get("id"), bool)
        ):
            message_id = str(data["id"])
        return Result.sent(message_id)

    # what the provider said, one line
    provider_code = ""
    if fmt == "slack":
        provider_code = text.strip() if _SLACK_CODE.fullmatch(text.strip()) else ""
        detail = provider_code
    elif data is not None:
        code = data.get("code")
        provider_code = str(code) if isinstance(code, int | str) and not isinstance(code, bool) else ""
        message = data.get("message") or data.get("error") or ""
        detail = one_line(f"{provider_code} {message}".strip(), 160)
        if fmt == "discord" and data.get("errors"):
            detail = one_line(f"{detail} {json.dumps(data['errors'], ensure_ascii=False)}", 240)
    else:
        detail = ""  # not the provider's error format: the body is not recorded (it may be anything)
    code = f"{status} {provider_code}".strip()
    error = one_line(f"{label}: HTTP {status}" + (f" {detail}" if detail else ""))

    def result(outcome: Outcome, **kw: Any) -> Result:
        return Result(outcome, error=error, code=code, **kw)

    if status == 429:
        retry = _float(data.get("retry_after")) if data is not None else None
        if retry is None:
            retry = retry_after_header(headers)
        if retry is None:
            retry = _float(headers.get("x-ratelimit-reset-after"))
        return result(Outcome.TRANSIENT, retry_after=1.0 if retry is None else retry, pause_channel=True)
    if status >= 500 or status == 408:
        retry = retry_after_header(headers)
        return result(Outcome.TRANSIENT, retry_after=retry, pause_channel=retry is not None)
    if fmt == "slack" and provider_code in _SLACK_CONFIG:
        return result(Outcome.FATAL)
    if status in (404, 410) or (fmt == "slack" and provider_code in _SLACK_GONE):
        return result(Outcome.RECIPIENT, subscriber_status="removed")
    if status in (401, 403, 405, 407) or 300 <= status < 400:
        return result(Outcome.FATAL)
    if 400 <= status < 500:
        return result(Outcome.CONTENT)
    return result(Outcome.TRANSIENT)


# --------------------------------------------------------------------------- the channel


_SLACK_HOSTS = ("hooks.slack.com", "hooks.slack-gov.com")
_DISCORD_HOSTS = ("discord.com", "discordapp.com", "ptb.discord.com", "canary.discord.com")
_TOKEN_KEYS = frozenset(
    {
        "token",
        "access_token",
        "auth",
        "authorization",
        "key",
        "api_key",
        "apikey",
        "secret",
        "password",
        "pass",
        "sig",
        "signature",
        "code",
        "hmac",
        "jwt",
    }
)


def _token_like(piece: str) -> bool:
    """A path segment or query value that looks like a credential: long, with letters
    and digits mixed (random ids, hex digests, base64)."""
    piece = piece.strip()
    if len(piece) < 16:
        return False
    return any(c.isdigit() for c in piece) and any(c.isalpha() for c in piece)


def token_in_url(url: str) -> str | None:
    """What makes ``url`` carry a token (None: nothing does), without quoting it:
    a Slack or Discord webhook URL, credentials, a token-like query or path segment."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".").lower()
    except ValueError:
        return None
    if parts.username or parts.password:
        return "holds credentials (user:password@)"
    if host in _SLACK_HOSTS and parts.path.startswith("/services/"):
        return "is a Slack webhook URL (its path is the token)"
    if (host in _DISCORD_HOSTS or host.endswith(".discord.com")) and "/webhooks/" in parts.path:
        return "is a Discord webhook URL (its path holds the token)"
    for pair in parts.query.split("&"):
        key, _, value = pair.partition("=")
        if key.strip().lower() in _TOKEN_KEYS or _token_like(value):
            return "has a token in its query"
    if any(_token_like(segment) for segment in parts.path.split("/")):
        return "has a token-like part in its path"
    return None


def _env_name(name: str) -> str:
    return "FEEDCAST_" + re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_") + "_URL"


def _where(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


class WebhookChannel(Channel):
    """A Slack incoming webhook, a Discord webhook or a generic JSON receiver."""

    kind: ClassVar[str] = "webhook"
    description: ClassVar[str] = "Slack / Discord incoming webhooks and signed JSON webhooks"
    fixed_recipient: ClassVar[str | None] = "webhook"
    max_in_flight: ClassVar[int] = 1  # one URL, messages in order
    options: ClassVar[tuple[Option, ...]] = (
        Option(
            "url",
            "the webhook URL; one that carries a token (Slack, Discord, a key in it) only as env:VAR",
            required=True,
            may_be_secret=True,
        ),
        Option("format", "what the receiver expects", default="json", choices=FORMATS),
        Option(
            "secret", "json: HMAC-SHA256 signing key (env:VAR), sent as X-Feedcast-Signature", secret=True
        ),
        Option("header", "an extra request header 'Name: env:VAR' (e.g. 'Authorization: env:HOOK_AUTH')"),
        Option("rate", "json: at most this many requests per second (default: unlimited)"),
    )

    def __init__(self, name: str, settings: Mapping[str, Any], *, secrets: Secrets | None = None) -> None:
        super().__init__(name, settings, secrets=secrets)
        self._url: str | None = None
        self._where = "webhook"
        self._secret: str | None = None
        self._extra: tuple[str, str] | None = None
        # Discord pacing: bucket -> monotonic time before which nothing is sent
        self._resume_at: dict[str, float] = {}
        self._bucket = "webhook"

    # ----------------------------------------------------------------- configuration

    @classmethod
    def validate_settings(cls, settings: Mapping[str, Any]) -> dict[str, Any]:
        out = super().validate_settings(settings)
        url = out["url"]
        carries_secret = bool(out.get("secret") or out.get("header"))
        if not is_secret_ref(url):
            problem = url_problem(url)
            if problem:
                raise InvalidValue(f"--url {problem}")
            token = token_in_url(url)
            if token:
                raise InvalidValue(
                    f"--url {token}: give it as env:VAR (e.g. --url env:{_env_name('hook')}); "
                    "feedcast never stores secrets"
                )
            problem = endpoint_problem(url, carries_secret=carries_secret)
            if problem:
                raise InvalidValue(f"--url {problem}")
        fmt = out.get("format", "json")
        if "secret" in out and fmt != "json":
            raise InvalidValue(f"--secret signs JSON webhooks; a {fmt} webhook does not take it")
        if "rate" in out:
            if fmt != "json":
                raise InvalidValue(f"--rate is for JSON webhooks; {fmt} webhooks have their provider's limit")
            try:
                rate = int(out["rate"])
            except ValueError:
                rate = 0
            if not 1 <= rate <= 10_000:
                raise InvalidValue(
                    f"--rate must be a whole number of requests per second (1..10000), not {out['rate']!r}"
                )
            out["rate"] = str(rate)
        if "header" in out:
            name, sep, value = out["header"].partition(":")
            if not sep or not _HEADER_NAME.fullmatch(name.strip()):
                raise InvalidValue("--header must look like 'Name: env:VAR'")
            if not is_secret_ref(value.strip()):
                raise InvalidValue(
                    "--header carries a credential: give its value as env:VAR (e.g. 'Authorization: env:HOOK_AUTH')"
                )
            out["header"] = f"{name.strip()}: {value.strip()}"
        return out

    @classmethod
    def exported_settings(cls, name: str, settings: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        out = dict(settings)
        url = str(out.get("url") or "")
        if url and not is_secret_ref(url) and token_in_url(url):  # stored by an older feedcast
            var = _env_name(name)
            out["url"] = f"env:{var}"
            return out, [
                f"channel {name}: its url carries a token and is not exported: "
                f"set the environment variable {var} to it"
            ]
        return out, []

    @property
    def format(self) -> str:
        return str(self.settings.get("format") or "json")

    def validate_recipient(self, address: str) -> str:
        address = address.strip()
        if address != "webhook":
            raise InvalidValue("a webhook channel has one recipient, 'webhook'")
        return address

    # ----------------------------------------------------------------- sending

    def _resolve(self) -> str:
        if self._url is not None:
            return self._url
        stored = str(self.settings.get("url") or "")
        if stored and not is_secret_ref(stored) and token_in_url(stored):
            self.secrets.remember(stored)
            raise ChannelError(
                f"channel {self.name!r}: its --url {token_in_url(stored)} and is stored in plain text "
                f"(an older feedcast allowed it): put the URL in an environment variable, e.g. "
                f"{_env_name(self.name)}, then set 'url: env:{_env_name(self.name)}' for this channel "
                "in your YAML and run feedcast apply (feedcast export writes it so)"
            )
        url = self.setting("url")  # Secrets.resolve remembers the value (literal or env)
        problem = url_problem(url)
        carries_secret = is_secret_ref(stored) or bool(
            self.settings.get("secret") or self.settings.get("header")
        )
        problem = problem or endpoint_problem(url, carries_secret=carries_secret)
        if problem:
            raise ChannelError(f"channel {self.name!r}: --url {problem}")
        parts = urlsplit(url)
        # the token may show up alone (a path in an error, a query): scrub those too
        last = parts.path.rstrip("/").rpartition("/")[2]
        pieces = [parts.query, last if len(last) >= 16 else ""]
        if self.format in ("slack", "discord"):
            pieces.append(parts.path)
        for piece in pieces:
            if len(piece) >= 12:
                self.secrets.remember(piece)
        self._where = _where(url)
        if self.format == "json" and self.settings.get("secret"):
            self._secret = self.setting("secret")
        header = self.settings.get("header")
        if header:
            name, _, value = str(header).partition(":")
            self._extra = (name.strip(), self.secrets.resolve(value.strip(), what=f"channel {self.name!r}"))
        self._url = url
        return url

    async def open(self, client: httpx.AsyncClient | None) -> None:
        await super().open(client)
        self._resolve()

    def rate_rules(self, recipient: Recipient, call: ProviderCall) -> Sequence[RateRule]:
        key = f"webhook:{self.name}"
        if self.format == "slack":
            return (RateRule(key, *SLACK_RULE, spacing=SLACK_SPACING),)
        if self.format == "discord":
            return (RateRule(key, *DISCORD_RULE),)
        rate = self.settings.get("rate")
        return (RateRule(key, int(rate), 1),) if rate else ()

    def _headers(
        self, body: bytes, context: SendContext, recipient: Recipient, position: int
    ) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": _user_agent()}
        if self.format == "json":
            headers[DELIVERY_HEADER] = delivery_id(context, recipient, position)
            if self._secret:
                stamp = str(int(time.time()))
                headers[TIMESTAMP_HEADER] = stamp
                headers[SIGNATURE_HEADER] = sign(self._secret, stamp, body)
        if self._extra:
            headers[self._extra[0]] = self._extra[1]
        return headers

    async def _pace(self) -> None:
        """Discord: wait while the bucket said it had no requests left."""
        wait = self._resume_at.get(self._bucket, 0.0) - time.monotonic()
        if wait > 0:
            log.debug("webhook %s: bucket empty, waiting %.3f s", self.name, wait)
            await asyncio.sleep(wait)

    def _learn(self, response: httpx.Response, result: Result) -> None:
        headers = response.headers
        bucket = headers.get("x-ratelimit-bucket")
        if bucket:
            self._bucket = bucket
        remaining = headers.get("x-ratelimit-remaining")
        reset_after = _float(headers.get("x-ratelimit-reset-after"))
        wait = None
        if remaining is not None and remaining.strip() == "0" and reset_after is not None:
            wait = reset_after
        if result.outcome is Outcome.TRANSIENT and result.retry_after and response.status_code == 429:
            wait = max(wait or 0.0, result.retry_after)
        if wait is not None:
            until = time.monotonic() + wait
            self._resume_at[self._bucket] = max(self._resume_at.get(self._bucket, 0.0), until)

    async def send(
        self, recipient: Recipient, call: ProviderCall, context: SendContext, position: int
    ) -> Result:
        try:
            url = self._resolve()
        except ChannelError as err:
            return Result(Outcome.FATAL, error=self.scrubbed(str(err)), code="config")
        if self.client is None:
            return Result(Outcome.FATAL, error=f"channel {self.name!r} was not opened", code="config")
        try:
            body = json.dumps(call.body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        except (TypeError, ValueError) as exc:
            return Result(
                Outcome.CONTENT, error=f"the payload is not JSON: {self.error_text(exc)}", code="payload"
            )
        target = httpx.URL(url)
        if self.format == "discord":
            target = target.copy_merge_params({"wait": "true"})
            await self._pace()
        headers = self._headers(body, context, recipient, position)
        started = time.monotonic()
        try:
            response = await self.client.post(target, content=body, headers=headers)
        except NETWORK_ERRORS as exc:
            result = network_result(self, exc)
            result = Result(
                result.outcome,
                error=one_line(f"{_LABEL[self.format]} at {self._where}: {result.error}"),
                code=result.code,
            )
            log.info(
                "webhook send channel=%s outcome=%s code=%s", self.name, result.outcome.value, result.code
            )
            return result
        text = response.text
        result = self.scrubbed_result(
            classify(self.format, response.status_code, response.headers, text, where=self._where)
        )
        if self.format == "discord":
            self._learn(response, result)
        log.info(
            "webhook send channel=%s format=%s status=%d outcome=%s ms=%.0f",
            self.name,
            self.format,
            response.status_code,
            result.outcome.value,
            (time.monotonic() - started) * 1000,
        )
        return result

    # ----------------------------------------------------------------- checking

    async def check(self) -> str:
        url = self._resolve()
        label = f"{_LABEL[self.format]} at {self._where}"
        if self.format == "slack":
            return f"Slack incoming webhook at {self._where} (Slack has no check without posting)"
        client = self.client
        own = client is None
        if client is None:
            client = guarded_client(10.0)
        try:
            if self.format == "discord":
                response = await client.get(url, headers={"User-Agent": _user_agent()})
            else:
                response = await client.head(url, headers={"User-Agent": _user_agent()})
        except NETWORK_ERRORS as exc:
            raise ChannelError(f"{label} is unreachable: {self.error_text(exc)}") from None
        finally:
            if own:
                await client.aclose()
        if self.format == "json":
            return f"JSON webhook at {self._where} is reachable (HEAD answered {response.status_code})"
        data = _json_object(response.text) if response.status_code == 200 else None
        if data is None:
            result = classify(
                "discord", response.status_code, response.headers, response.text, where=self._where
            )
            problem = {
                Outcome.RECIPIENT: "is gone",
                Outcome.FATAL: "refuses its token",
            }.get(result.outcome, "did not answer as a webhook")
            error = (result.error or "").removeprefix(label + ": ")
            raise ChannelError(
                one_line(self.secrets.redact(f"{label} {problem} ({error or response.status_code})"))
            )
        name = one_line(str(data.get("name") or "?"), 80)
        return f"Discord webhook {name} (id {data.get('id', '?')})"
