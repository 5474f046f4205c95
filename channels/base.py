"""What every channel is: the contract between the delivery engine and a provider.

A channel turns one :class:`~feedcast.kernel.models.ProviderCall` (rendered by
``layouts.payloads``) for one :class:`Recipient` into one provider request and maps
the provider's answer, in one place, to a :class:`Result`:

- ``sent``: with the provider's message id;
- ``transient``: retry later (``retry_after`` when the provider said how long;
  ``pause_channel`` when the whole bot / page / webhook must wait, e.g. a 429);
- ``recipient``: permanent for this recipient (blocked, deactivated, unknown, hard
  bounce); ``subscriber_status`` says what the subscriber becomes;
- ``fatal``: the channel cannot work (bad token, permissions): the campaign stops and
  the rest of its deliveries stay pending;
- ``content``: the provider refused our content: never retried as is;
- ``skipped``: not sent on purpose (Messenger outside the 24-hour window).

Channels are plain Python: no Prefect, no SQL. The HTTP client is passed in. Secrets
are references (``env:VAR``) resolved at send time and never put in a message.
"""

from __future__ import annotations

import abc
import asyncio
import enum
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, ClassVar, Final, Protocol
from urllib.parse import urlsplit

import httpx

from feedcast.kernel.errors import BlockedAddress, ChannelError, InvalidValue
from feedcast.kernel.models import ProviderCall, Upload
from feedcast.kernel.netguard import address_problem, secret_transport_problem

__all__ = [
    "ATTACH",
    "NETWORK_ERRORS",
    "UNSUBSCRIBE_PLACEHOLDER",
    "ApiChannel",
    "Channel",
    "Files",
    "Option",
    "Outcome",
    "RateRule",
    "Recipient",
    "Result",
    "SecretRedactor",
    "Secrets",
    "SendContext",
    "UploadOnce",
    "attached",
    "endpoint_problem",
    "is_secret_ref",
    "mask",
    "number",
    "one_line",
    "url_problem",
]

log = logging.getLogger(__name__)

# The URL a layout is given as ``unsubscribe_url`` when rendering a campaign for email:
# the email channel replaces it, per recipient, with that recipient's own link.
UNSUBSCRIBE_PLACEHOLDER = "https://unsubscribe.feedcast.invalid/u/TOKEN"

_ENV_REF = re.compile(r"env:([A-Za-z_][A-Za-z0-9_]*)")


class Outcome(enum.StrEnum):
    SENT = "sent"
    TRANSIENT = "transient"
    RECIPIENT = "recipient"
    FATAL = "fatal"
    CONTENT = "content"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Result:
    """A provider's answer to one call, classified."""

    outcome: Outcome
    message_id: str | None = None
    error: str | None = None  # one line, never a secret
    code: str | None = None  # the provider's code: "403", "551/1545041", "550 5.1.1", "429"
    retry_after: float | None = None  # seconds the provider asked us to wait (transient)
    pause_channel: bool = False  # the wait applies to the whole channel (bot, page, webhook)
    subscriber_status: str | None = None  # recipient: unsubscribed | unreachable | bounced | removed
    migrate_to: str | None = None  # Telegram: the group became a supergroup with this chat id

    @classmethod
    def sent(cls, message_id: str | None = None) -> Result:
        return cls(Outcome.SENT, message_id=message_id)


@dataclass(frozen=True, slots=True)
class Recipient:
    """One subscriber as a channel sees it."""

    subscriber_id: int
    address: str  # chat id / @channel, PSID, email address, "webhook"
    name: str | None = None
    last_inbound_at: datetime | None = None  # Messenger's 24-hour window
    unsubscribe_url: str | None = None  # this recipient's one-click link (email)
    unsubscribe_mailto: str | None = None


class Files(Protocol):
    """The uploaded files of a campaign (``attach://SHA256`` in its calls), for a channel
    that uploads them its provider's way, and what the provider returned for each
    (a Telegram ``file_id``, a Messenger ``attachment_id``) so every recipient and every
    rerun reuses it. ``kind``: the call's field for the file (``photo``, ``document``,
    ``image``...)."""

    async def read(self, sha256: str) -> tuple[Upload, bytes]: ...

    def known(self, sha256: str, kind: str) -> str | None: ...

    async def remember(self, sha256: str, kind: str, provider_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class SendContext:
    """What a channel may need to know about the campaign a call belongs to."""

    campaign_id: int
    automation: str | None = None
    message_tag: str | None = None  # Messenger: a permitted tag outside the 24-hour window
    now: datetime | None = None  # fixed in tests
    files: Files | None = None  # the campaign's uploaded files, when its calls name some


ATTACH: Final = "attach://"  # how a call names an uploaded file until the channel uploads it


def attached(value: object) -> str | None:
    """The SHA-256 of an uploaded file a call's value names (``attach://SHA256``), or None."""
    if isinstance(value, str) and value.startswith(ATTACH):
        sha = value.removeprefix(ATTACH)
        return sha if len(sha) == 64 else None
    return None


class UploadOnce:
    """One upload per file and kind at a time on a channel: the first delivery that needs
    a file uploads it, the ones behind it wait and reuse the provider's id."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def lock(self, sha256: str, kind: str) -> asyncio.Lock:
        return self._locks.setdefault((sha256, kind), asyncio.Lock())


@dataclass(frozen=True, slots=True)
class RateRule:
    """At most ``limit`` calls (weighted by ``cost``) per ``period`` seconds for ``key``,
    spread at least ``spacing`` seconds apart (default ``period / limit``): a spacing a
    little above that keeps slack for network jitter while the window stays the cap."""

    key: str
    limit: int
    period: int  # seconds (whole seconds: the limiter's windows)
    cost: int = 1
    spacing: float | None = None


@dataclass(frozen=True, slots=True)
class Option:
    """A setting of a channel kind, given as ``--name`` to ``feedcast channel add``."""

    name: str  # the setting's key, also the option: "api_url" <- --api-url
    help: str
    required: bool = False
    secret: bool = False  # must be env:VAR; masked when shown
    may_be_secret: bool = False  # a literal is allowed, env:VAR too (webhook URLs carry tokens)
    default: str | None = None
    choices: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


# what a provider call may raise instead of answering: network errors, and the address
# guard refusing the endpoint (feedcast.kernel.netguard) before any byte was sent
NETWORK_ERRORS: tuple[type[BaseException], ...] = (httpx.HTTPError, httpx.InvalidURL, OSError, BlockedAddress)


def url_problem(url: str) -> str | None:
    """Why ``url`` is no http(s) URL with a host (None: it is one). Never quotes it."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("http", "https"):
        return f"must be an http or https URL, not {parts.scheme or 'a relative'!s} one"
    if not parts.hostname:
        return "has no host"
    return None


def endpoint_problem(url: str, *, carries_secret: bool) -> str | None:
    """Why a channel may not call ``url`` (None: it may): not http(s), a refused address
    written as its host (private, loopback, link-local), or a secret over plain http.
    The sentence never quotes the URL (it may carry a token)."""
    problem = url_problem(url)
    if problem is not None:
        return problem
    problem = address_problem(url)
    if problem is None and carries_secret:
        problem = secret_transport_problem(url)
    return problem


def is_secret_ref(value: object) -> bool:
    return isinstance(value, str) and _ENV_REF.fullmatch(value) is not None


def mask(value: str | None) -> str:
    """How a secret is shown: its reference when it is one, else a fixed mask."""
    if value is None:
        return ""
    if is_secret_ref(value):
        return value
    return "****"


def number(value: object) -> float | None:
    """A number from JSON or a form (``3``, ``2.5``, ``"2.5"``); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def one_line(text: object, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class Secrets:
    """Resolves ``env:VAR`` references from an environment, remembering every value it
    handed out so that :meth:`redact` can scrub them from any text."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ
        self._values: set[str] = set()

    def resolve(self, value: str, *, what: str) -> str:
        match = _ENV_REF.fullmatch(value)
        if match is None:
            self.remember(value)
            return value
        var = match.group(1)
        resolved = self._environ.get(var)
        if not resolved:
            raise ChannelError(f"{what}: the environment variable {var} is not set")
        self.remember(resolved)
        return resolved

    def remember(self, value: str) -> None:
        if len(value) >= 6:
            self._values.add(value)
            REDACTOR.add(value)

    def redact(self, text: str) -> str:
        for value in sorted(self._values, key=len, reverse=True):
            text = text.replace(value, "****")
        return text


class SecretRedactor(logging.Filter):
    """Replaces known secret values with ``****`` in every log record of the process,
    whatever the logger (``httpx`` logs request URLs, and a Telegram token is part of
    every Bot API URL): installed as the log record factory, so no handler, child
    logger or third-party library sees a secret once it has been resolved."""

    def __init__(self) -> None:
        super().__init__()
        self._values: set[str] = set()
        self._base = logging.getLogRecordFactory()
        logging.setLogRecordFactory(self._record)

    def add(self, value: str) -> None:
        self._values.add(value)

    def scrub(self, text: str) -> str:
        for value in sorted(self._values, key=len, reverse=True):
            if value in text:
                text = text.replace(value, "****")
        return text

    def _record(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self._base(*args, **kwargs)
        if self._values:
            try:
                message = record.getMessage()
            except Exception:  # a malformed log call: leave it to logging's own handling
                return record
            scrubbed = self.scrub(message)
            if scrubbed != message:
                record.msg, record.args = scrubbed, None
        return record

    def filter(self, record: logging.LogRecord) -> bool:
        """Also usable as a logging filter (records are already scrubbed at creation)."""
        return True


REDACTOR = SecretRedactor()


class Channel(abc.ABC):
    """One configured channel. Subclasses declare their kind, options and formats and
    implement :meth:`send` (and usually :meth:`check`, :meth:`rate_rules`)."""

    kind: ClassVar[str]
    description: ClassVar[str]
    options: ClassVar[tuple[Option, ...]] = ()
    # a channel with one implicit recipient (a webhook): `channel add` subscribes it
    fixed_recipient: ClassVar[str | None] = None
    # calls in flight at once (also bounds what a crash may send twice)
    max_in_flight: ClassVar[int] = 32

    def __init__(self, name: str, settings: Mapping[str, Any], *, secrets: Secrets | None = None) -> None:
        self.name = name
        self.settings = dict(settings)
        self.secrets = secrets or Secrets()
        self.client: httpx.AsyncClient | None = None

    # ----------------------------------------------------------------- configuration

    @classmethod
    def validate_settings(cls, settings: Mapping[str, Any]) -> dict[str, Any]:
        """Check and normalise the settings given to ``channel add`` (keys are option
        names). Secrets must be ``env:VAR``. Raises InvalidValue naming the option."""
        known = {o.name: o for o in cls.options}
        out: dict[str, Any] = {}
        for key, value in settings.items():
            if value is None:
                continue
            option = known.get(key)
            if option is None:
                flags = ", ".join(o.flag for o in cls.options) or "none"
                raise InvalidValue(
                    f"{cls.kind} channels take no {'--' + key.replace('_', '-')} (options: {flags})"
                )
            value = str(value).strip()
            if option.secret and not is_secret_ref(value):
                raise InvalidValue(
                    f"{option.flag} is a secret: give it as env:VAR (e.g. {option.flag} "
                    f"env:{cls.kind.upper()}_{option.name.upper()}); feedcast never stores secrets"
                )
            if option.choices and value not in option.choices:
                raise InvalidValue(f"{option.flag} must be one of {', '.join(option.choices)}, not {value!r}")
            out[key] = value
        for option in cls.options:
            if option.name not in out:
                if option.required:
                    raise InvalidValue(f"{cls.kind} channels need {option.flag}")
                if option.default is not None:
                    out[option.name] = option.default
        return out

    @classmethod
    def shown_settings(cls, settings: Mapping[str, Any]) -> dict[str, Any]:
        """Settings as ``channel list / show`` print them: secrets masked."""
        secret = {o.name for o in cls.options if o.secret or o.may_be_secret}
        return {k: (mask(v) if k in secret else v) for k, v in settings.items()}

    @classmethod
    def exported_settings(cls, name: str, settings: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Settings as ``feedcast export`` writes them, and a note for each one left out
        (a secret stored by an older feedcast is replaced by an ``env:VAR`` to set)."""
        return dict(settings), []

    def validate_recipient(self, address: str) -> str:
        """Normalise a recipient id for this channel; InvalidValue when it cannot be one."""
        address = address.strip()
        if not address:
            raise InvalidValue("the recipient is empty")
        return address

    @property
    def format(self) -> str:
        """The message format a layout renders for this channel."""
        return self.kind

    def setting(self, key: str, *, secret: bool = False) -> str:
        """A setting's value, ``env:VAR`` resolved (ChannelError when unset)."""
        value = self.settings.get(key)
        if value is None:
            raise ChannelError(f"channel {self.name!r}: --{key.replace('_', '-')} is not set")
        return self.secrets.resolve(str(value), what=f"channel {self.name!r}")

    # ----------------------------------------------------------------- sending

    async def open(self, client: httpx.AsyncClient | None) -> None:
        """Called once before a campaign: resolve secrets, open connections.
        Raise :class:`ChannelError` when the channel cannot work."""
        self.client = client

    async def close(self) -> None:
        """Called once after a campaign (also after a failure)."""
        return

    def rate_rules(self, recipient: Recipient, call: ProviderCall) -> Sequence[RateRule]:
        """The limits this call counts against (empty: unlimited)."""
        return ()

    def skip_reason(self, recipient: Recipient, context: SendContext) -> str | None:
        """Why this recipient must not get this campaign now (None: send)."""
        return None

    @abc.abstractmethod
    async def send(
        self, recipient: Recipient, call: ProviderCall, context: SendContext, position: int
    ) -> Result:
        """Make one provider call for one recipient; never raise for a provider's answer
        or a network error: classify it. ``position`` numbers the campaign's calls (0..)."""

    async def check(self) -> str:
        """Verify the channel works (credentials, reachability) without messaging
        anyone; return a one-line description (e.g. the bot's name)."""
        return f"{self.kind} channel {self.name!r} is configured"

    def error_text(self, exc: BaseException) -> str:
        """An exception as a one-line error with every secret scrubbed."""
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return self.scrubbed(text)

    def scrubbed(self, text: str, limit: int = 300) -> str:
        """``text`` on one line (at most ``limit`` characters) without a secret: the
        values this channel resolved and every other one the process knows."""
        return one_line(REDACTOR.scrub(self.secrets.redact(text)), limit)

    def scrubbed_result(self, result: Result) -> Result:
        """``result`` with its error :meth:`scrubbed` (a provider may quote a token)."""
        if result.error is None:
            return result
        error = self.scrubbed(result.error)
        return result if error == result.error else replace(result, error=error)


class ApiChannel(Channel):
    """A channel that calls one provider API, at ``--api-url`` (``default_api_url`` when
    unset), with a secret in every call (a token in the URL or a header): the URL is
    checked when the channel is added and again before the secret is first resolved."""

    default_api_url: ClassVar[str]

    @classmethod
    def api_url_of(cls, settings: Mapping[str, Any]) -> str:
        """The API's base URL in ``settings``, without a trailing slash."""
        return str(settings.get("api_url") or cls.default_api_url).rstrip("/")

    @classmethod
    def checked_api_url(cls, url: str) -> str:
        """``url`` when a secret may go to it (InvalidValue naming --api-url if not)."""
        problem = endpoint_problem(url, carries_secret=True)
        if problem:
            raise InvalidValue(f"--api-url {problem}")
        return url

    @property
    def api_url(self) -> str:
        return self.api_url_of(self.settings)

    def check_api_url(self) -> None:
        """Checked again before the secret is resolved: the row may predate the check,
        the environment change (ChannelError)."""
        problem = endpoint_problem(self.api_url, carries_secret=True)
        if problem:
            raise ChannelError(f"{self.kind} channel {self.name!r}: --api-url {problem}")


def network_result(channel: Channel, exc: BaseException) -> Result:
    """A network failure (connect, read timeout, dropped connection) is transient; an
    endpoint the address guard refuses is fatal (nothing was sent, retrying cannot help).
    A malformed answer is named, never quoted (it may come from anything)."""
    if isinstance(exc, BlockedAddress):
        return Result(
            Outcome.FATAL, error=channel.error_text(exc).removeprefix("BlockedAddress: "), code="blocked"
        )
    if isinstance(exc, httpx.RemoteProtocolError) and re.search(r"""b['"]""", str(exc)):
        # h11 quotes the bytes it could not parse: the reason, not the bytes
        reason = str(exc).partition(":")[0].strip() or "malformed answer"
        return Result(Outcome.TRANSIENT, error=f"RemoteProtocolError: {reason}", code="network")
    return Result(Outcome.TRANSIENT, error=channel.error_text(exc), code="network")


def retry_after_header(headers: Mapping[str, str]) -> float | None:
    """Seconds from a Retry-After header (seconds form; the date form is rare for APIs)."""
    raw = headers.get("retry-after") or headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        from datetime import UTC

        return max(0.0, (when - datetime.now(UTC)).total_seconds())
