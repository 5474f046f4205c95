"""Email over SMTP: one message per recipient through a relay, on a few reused connections.

A campaign's email call (``ProviderCall("smtp", {"subject", "html", "text"})``) becomes a
``multipart/alternative`` message (plain text first, HTML last) with a Message-ID derived
from campaign, subscriber and position (a retry is recognisable) and RFC 8058 one-click
unsubscribe headers. The unsubscribe link a layout rendered
(:data:`~channels.base.UNSUBSCRIBE_PLACEHOLDER`) is replaced by each recipient's own.

``smtplib`` is blocking: it runs in threads (``asyncio.to_thread``), on a pool of
``connections`` sessions kept open for the campaign (RSET between messages, a new session
when the relay dropped one). The relay's replies are mapped in one place
(:func:`classify`):

====================================  ===========================================
2xx                                   sent (message id: our Message-ID)
4xx anywhere, dropped connection,     transient
timeout, refused after a session
5xx at RCPT (550/551/553 5.1.x...)    recipient: the address bounced
5xx at DATA, 5.1.x                    recipient: the address bounced
552 / 554 / other 5xx at DATA         content: refused as is
530 / 535 (auth), TLS failure,        fatal: the channel cannot work
refused before any session, 5xx at
MAIL FROM or at the greeting
====================================  ===========================================
"""

from __future__ import annotations

import asyncio
import email.policy
import email.utils
import logging
import os
import re
import smtplib
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address, HeaderRegistry
from email.message import EmailMessage
from fractions import Fraction
from typing import Any, Literal
from urllib.parse import SplitResult, urlsplit

import httpx

from channels.base import (
    UNSUBSCRIBE_PLACEHOLDER,
    Channel,
    Files,
    Option,
    Outcome,
    RateRule,
    Recipient,
    Result,
    Secrets,
    SendContext,
    attached,
    one_line,
)
from channels.ratelimit import RateGate
from feedcast.kernel.errors import ChannelError, InvalidValue
from feedcast.kernel.models import ProviderCall, Upload

__all__ = [
    "EmailChannel",
    "SmtpTarget",
    "build_email",
    "classify",
    "parse_address",
    "parse_smtp_url",
]

log = logging.getLogger(__name__)

Tls = Literal["none", "starttls", "ssl"]
Stage = Literal["session", "mail", "rcpt", "data"]

_SCHEMES: dict[str, tuple[Tls, int]] = {
    "smtp": ("none", 25),
    "smtp+starttls": ("starttls", 587),
    "smtps": ("ssl", 465),
}
_TLS_NAMES = {"none": "plain", "starttls": "STARTTLS", "ssl": "implicit TLS"}
TIMEOUT = 30.0  # seconds for connect and each SMTP command
MAX_CONNECTIONS = 20

_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")
_HEADERS = HeaderRegistry()


# --------------------------------------------------------------------------- addresses


def parse_address(value: str, *, what: str = "address", name_allowed: bool = True) -> Address:
    """One email address (``a@example.com``, or ``Name <a@example.com>`` when
    ``name_allowed``), its domain in ASCII (IDNA); InvalidValue with one line otherwise."""
    text = value.strip()
    if not text:
        raise InvalidValue(f"the {what} is empty")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise InvalidValue(f"the {what} {one_line(text, 80)!r} contains control characters")
    try:
        header = _HEADERS("To", text)
        addresses = header.addresses  # type: ignore[attr-defined]
    except Exception:  # the header parser raises on some garbage ("a@")
        addresses, header = (), None
    shown = one_line(text, 80)
    if header is None or header.defects or len(addresses) != 1:
        raise InvalidValue(f"{shown!r} is not a valid {what} (expected e.g. someone@example.com)")
    address: Address = addresses[0]
    if not name_allowed and address.display_name:
        raise InvalidValue(f"{shown!r}: give the {what} alone, without a display name")
    if not address.username or not address.domain:
        raise InvalidValue(f"{shown!r} is not a valid {what} (expected e.g. someone@example.com)")
    domain = address.domain
    if not (domain.startswith("[") and domain.endswith("]")):
        try:
            domain = domain.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise InvalidValue(f"{shown!r}: the domain is not a valid host name") from None
        labels = domain.split(".")
        if not all(_LABEL.match(label) for label in labels) or (len(labels) < 2 and domain != "localhost"):
            raise InvalidValue(f"{shown!r}: the domain is not a valid host name")
    return Address(display_name=address.display_name, username=address.username, domain=domain)


def _mailto(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip()
    return value if value.lower().startswith("mailto:") else f"mailto:{value}"


# --------------------------------------------------------------------------- the message


def build_email(
    call: ProviderCall,
    recipient: Recipient,
    context: SendContext,
    position: int,
    *,
    from_addr: str,
    reply_to: str | None = None,
    unsubscribe_mailto: str | None = None,
    files: Mapping[str, tuple[Upload, bytes]] | None = None,
) -> EmailMessage:
    """The message one recipient gets for one ``smtp`` call: ``multipart/alternative``
    (text, then HTML), the unsubscribe placeholder replaced by the recipient's own link,
    From / To / Subject / Date / Message-ID, Reply-To when given, and List-Unsubscribe
    (+ List-Unsubscribe-Post when there is an https link). ``unsubscribe_mailto`` is used
    when the recipient has none of its own."""
    sender = parse_address(from_addr, what="from address")
    body = call.body
    link = recipient.unsubscribe_url or ""
    html = str(body.get("html") or "").replace(UNSUBSCRIBE_PLACEHOLDER, link)
    text = str(body.get("text") or "").replace(UNSUBSCRIBE_PLACEHOLDER, link)

    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = sender
    try:
        to = parse_address(recipient.address, what="recipient", name_allowed=False)
        msg["To"] = Address(
            display_name=one_line(recipient.name or ""), username=to.username, domain=to.domain
        )
    except InvalidValue:
        msg["To"] = one_line(recipient.address)  # an outbox reviewer ("review"), not an address
    msg["Subject"] = one_line(body.get("subject") or "", limit=998)
    when = context.now or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    msg["Date"] = email.utils.format_datetime(when)
    msg["Message-ID"] = message_id(context.campaign_id, recipient.subscriber_id, position, sender.domain)
    if reply_to:
        msg["Reply-To"] = parse_address(reply_to, what="reply-to address")
    mailto = _mailto(recipient.unsubscribe_mailto or unsubscribe_mailto)
    targets = [u for u in (recipient.unsubscribe_url, mailto) if u]
    if targets:
        msg["List-Unsubscribe"] = ", ".join(f"<{u}>" for u in targets)
    if recipient.unsubscribe_url and recipient.unsubscribe_url.lower().startswith("https://"):
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"

    if text.strip() or not html.strip():
        msg.set_content(text, subtype="plain", charset="utf-8")
        if html.strip():
            msg.add_alternative(html, subtype="html", charset="utf-8")
    else:
        msg.set_content(html, subtype="html", charset="utf-8")
    _attach(msg, body.get("attachments"), files or {})
    return msg


def _attach(msg: EmailMessage, attachments: object, files: Mapping[str, tuple[Upload, bytes]]) -> None:
    """The files of a composed message as MIME parts: an inline image beside the HTML
    (``multipart/related``, named by its ``cid:``), every other file attached
    (``multipart/mixed``). ValueError when a file's bytes are not at hand."""
    if not isinstance(attachments, list) or not attachments:
        return
    html = msg.get_body(("html",))
    for item in attachments:
        sha = attached(item.get("file")) if isinstance(item, Mapping) else None
        if sha is None or sha not in files:
            raise ValueError(
                f"an attached file ({item.get('filename') if isinstance(item, Mapping) else item}) is missing"
            )
        upload, data = files[sha]
        maintype, _, subtype = upload.content_type.partition("/")
        cid = item.get("cid")
        if cid and html is not None and isinstance(html, EmailMessage):
            html.add_related(
                data,
                maintype,
                subtype or "octet-stream",
                cid=f"<{cid}>",
                disposition="inline",
                filename=upload.name,
            )
        else:
            msg.add_attachment(
                data, maintype, subtype or "octet-stream", filename=str(item.get("filename") or upload.name)
            )


async def read_attachments(
    call: ProviderCall, files: Files | None, cache: dict[str, tuple[Upload, bytes]]
) -> dict[str, tuple[Upload, bytes]]:
    """The bytes of the files an ``smtp`` call attaches, read once per channel (``cache``)."""
    attachments = call.body.get("attachments")
    if not isinstance(attachments, list) or files is None:
        return cache
    for item in attachments:
        sha = attached(item.get("file")) if isinstance(item, Mapping) else None
        if sha is not None and sha not in cache:
            cache[sha] = await files.read(sha)
    return cache


def message_id(campaign_id: int, subscriber_id: int, position: int, domain: str) -> str:
    """The same for every attempt of one delivery, so a retry is recognisable."""
    return f"<c{campaign_id}.s{subscriber_id}.m{position}.feedcast@{domain}>"


# --------------------------------------------------------------------------- the relay


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    tls: Tls
    host: str
    port: int

    @property
    def where(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        scheme = next(name for name, (tls, _) in _SCHEMES.items() if tls == self.tls)
        return f"{scheme}://{self.where}"


def parse_smtp_url(url: str) -> SmtpTarget:
    """``smtp://host[:25]`` (plain), ``smtp+starttls://host[:587]`` (STARTTLS required) or
    ``smtps://host[:465]`` (implicit TLS). Credentials never go in the URL."""
    raw = url.strip()
    try:
        parts: SplitResult = urlsplit(raw)
        port = parts.port
    except ValueError:
        raise InvalidValue("--smtp is not a valid URL (e.g. smtp+starttls://smtp.example.com:587)") from None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise InvalidValue(
            f"--smtp must start with smtp://, smtp+starttls:// or smtps://, not {scheme + '://' if scheme else 'nothing'}"
        )
    if parts.password is not None or parts.username is not None:
        # never echo the URL: it carries a secret
        raise InvalidValue(
            "--smtp must not carry credentials: give --user NAME and --password env:VAR "
            "(feedcast never stores secrets)"
        )
    if not parts.hostname:
        raise InvalidValue(f"--smtp has no host: {one_line(raw, 100)!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidValue(f"--smtp takes only a scheme, a host and a port: {one_line(raw, 100)!r}")
    tls, default_port = _SCHEMES[scheme]
    return SmtpTarget(tls, parts.hostname, port or default_port)


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _reply(code: int, message: bytes | str) -> tuple[str, str]:
    """``(one-line text, code like "550 5.1.1")`` of an SMTP reply."""
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    text = one_line(text, 200)
    enhanced = _ENHANCED.match(text)
    code_text = f"{code} {enhanced.group(0)}" if enhanced else str(code)
    reply = f"{code} {text}" if text else str(code)
    return reply, code_text


def classify(code: int, message: bytes | str, stage: Stage, *, address: str | None = None) -> Result:
    """One SMTP reply (not 2xx) at one stage of a transaction, as a :class:`Result`."""
    reply, code_text = _reply(code, message)
    where = f" (RCPT TO {address})" if stage == "rcpt" and address else f" (at {stage.upper()})"
    error = reply + where
    enh = code_text.partition(" ")[2]  # "5.1.1", or "" when the relay gave none
    if 400 <= code < 500:
        return Result(Outcome.TRANSIENT, error=error, code=code_text)
    if code in (530, 534, 535, 538) or enh in ("5.7.0", "5.7.8", "5.7.11"):
        return Result(
            Outcome.FATAL, error=f"the relay refused our credentials or session: {error}", code=code_text
        )
    if stage == "rcpt":
        if enh == "5.7.1" and "relay" in reply.lower():
            return Result(Outcome.FATAL, error=f"the relay refuses to relay for us: {error}", code=code_text)
        return Result(Outcome.RECIPIENT, error=error, code=code_text, subscriber_status="bounced")
    if stage == "data":
        if enh.startswith("5.1.") or code == 551:
            return Result(Outcome.RECIPIENT, error=error, code=code_text, subscriber_status="bounced")
        return Result(Outcome.CONTENT, error=error, code=code_text)
    if stage == "mail" and (code == 552 or enh.startswith("5.3.4")):
        return Result(Outcome.CONTENT, error=error, code=code_text)
    return Result(Outcome.FATAL, error=error, code=code_text)


class _Pool:
    """``size`` slots, each holding an open SMTP session or None (connect on use)."""

    def __init__(self, size: int, conns: Sequence[smtplib.SMTP] = ()) -> None:
        self.size = size
        self._slots: asyncio.Queue[smtplib.SMTP | None] = asyncio.Queue()
        for index in range(size):
            self._slots.put_nowait(conns[index] if index < len(conns) else None)

    async def run(
        self,
        work: Callable[[smtplib.SMTP | None], tuple[smtplib.SMTP | None, Result]],
        pace: Callable[[], Awaitable[None]] | None = None,
    ) -> Result:
        conn = await self._slots.get()
        if pace is not None:
            try:
                await pace()
            except BaseException:
                self._slots.put_nowait(conn)
                raise
        try:
            conn, result = await asyncio.to_thread(work, conn)
        except BaseException:
            self._slots.put_nowait(None)  # cancelled mid-call: the session's state is unknown
            raise
        self._slots.put_nowait(conn)
        return result

    def drain(self) -> list[smtplib.SMTP]:
        """The open sessions, taken out (slots in use keep theirs)."""
        conns: list[smtplib.SMTP] = []
        while not self._slots.empty():
            conn = self._slots.get_nowait()
            if conn is not None:
                conns.append(conn)
        return conns


def _quit(conn: smtplib.SMTP) -> None:
    try:
        conn.quit()
    except (smtplib.SMTPException, OSError):
        conn.close()


class _SessionError(Exception):
    """A session could not be set up; ``result`` says how to take it."""

    def __init__(self, result: Result) -> None:
        super().__init__(result.error)
        self.result = result


class EmailChannel(Channel):
    kind = "email"
    description = "Email through an SMTP relay (STARTTLS or implicit TLS, AUTH), one-click unsubscribe"
    options = (
        Option(
            "smtp",
            "the relay: smtp+starttls://host:587, smtps://host:465 or smtp://host:25 (no credentials in it)",
            required=True,
        ),
        Option("user", "the SMTP user name (AUTH)"),
        Option("password", "the SMTP password, as env:VAR", secret=True),
        Option("from_addr", "the From address: news@example.com or 'Name <news@example.com>'", required=True),
        Option("reply_to", "a Reply-To address"),
        Option("rate", "messages per second at most (e.g. 10, or 0.5 for one every 2 s)", default="10"),
        Option("connections", f"SMTP connections kept open (1..{MAX_CONNECTIONS})", default="2"),
        Option("ca_file", "trust this CA or certificate (PEM) for the relay (a sandbox, a private relay)"),
        Option("unsubscribe_mailto", "an address for mailto: unsubscribe requests (List-Unsubscribe)"),
    )
    max_in_flight = 8

    def __init__(self, name: str, settings: Mapping[str, Any], *, secrets: Secrets | None = None) -> None:
        super().__init__(name, settings, secrets=secrets)
        self._pool: _Pool | None = None
        # The engine's gate paces calls into send(); this one paces them onto the wire,
        # once a pooled session is free: waiting for a session must not bunch messages
        # into a burst the relay would count against its limit.
        self._wire: RateGate | None = None
        self._files: dict[str, tuple[Upload, bytes]] = {}  # the campaign's attached files, read once
        self._target: SmtpTarget | None = None
        self._context: ssl.SSLContext | None = None
        self._user: str | None = None
        self._password: str | None = None
        self._from: str = ""
        self._sender: Address | None = None
        self._connected_once = False

    # ----------------------------------------------------------------- configuration

    @classmethod
    def validate_settings(cls, settings: Mapping[str, Any]) -> dict[str, Any]:
        out = super().validate_settings(settings)
        target = parse_smtp_url(out["smtp"])
        out["smtp"] = target.url
        out["from_addr"] = str(parse_address(out["from_addr"], what="--from-addr"))
        if out.get("reply_to"):
            out["reply_to"] = str(parse_address(out["reply_to"], what="--reply-to"))
        if out.get("unsubscribe_mailto"):
            raw = out["unsubscribe_mailto"]
            raw = raw[len("mailto:") :] if raw.lower().startswith("mailto:") else raw
            out["unsubscribe_mailto"] = parse_address(
                raw, what="--unsubscribe-mailto", name_allowed=False
            ).addr_spec
        if out.get("password") and not out.get("user"):
            raise InvalidValue("--password needs --user")
        if out.get("user") and target.tls == "none" and not _is_loopback(target.host):
            raise InvalidValue(
                "--user over smtp:// would send the password in clear: use smtp+starttls:// or smtps://"
            )
        out["rate"] = str(_rate(out["rate"]))
        try:
            connections = int(out["connections"])
        except ValueError:
            connections = 0
        if not 1 <= connections <= MAX_CONNECTIONS:
            raise InvalidValue(f"--connections must be a whole number from 1 to {MAX_CONNECTIONS}")
        out["connections"] = str(connections)
        if out.get("ca_file"):
            path = os.path.abspath(os.path.expanduser(out["ca_file"]))
            if not os.path.isfile(path):
                raise InvalidValue(f"--ca-file {path} is not a file")
            out["ca_file"] = path
        return out

    def validate_recipient(self, address: str) -> str:
        return parse_address(address, what="email address", name_allowed=False).addr_spec

    # ----------------------------------------------------------------- set-up

    def _prepare(self) -> SmtpTarget:
        if self._target is not None:
            return self._target
        try:
            target = parse_smtp_url(self.setting("smtp"))
            self._sender = parse_address(self.setting("from_addr"), what="--from-addr")
        except InvalidValue as err:
            raise ChannelError(f"channel {self.name!r}: {err}") from None
        self._from = str(self._sender)
        self._user = self.settings.get("user") or None
        self._password = self.setting("password", secret=True) if self.settings.get("password") else None
        if target.tls != "none":
            ca_file = self.settings.get("ca_file")
            try:
                self._context = ssl.create_default_context(cafile=ca_file or None)
            except (OSError, ssl.SSLError) as exc:
                raise ChannelError(
                    f"channel {self.name!r}: --ca-file {ca_file}: {self.error_text(exc)}"
                ) from None
        self._target = target
        return target

    @property
    def _connections(self) -> int:
        try:
            return max(1, min(MAX_CONNECTIONS, int(self.settings.get("connections") or 2)))
        except ValueError:
            return 2

    def _connect(self) -> smtplib.SMTP:
        """A ready session: connected, TLS as configured, authenticated (blocking).
        Raises :class:`_SessionError` with the classified failure."""
        target = self._prepare()
        assert self._sender is not None
        local = self._sender.domain if not self._sender.domain.startswith("[") else "localhost"
        try:
            conn: smtplib.SMTP
            if target.tls == "ssl":
                conn = smtplib.SMTP_SSL(
                    target.host, target.port, local_hostname=local, timeout=TIMEOUT, context=self._context
                )
            else:
                conn = smtplib.SMTP(target.host, target.port, local_hostname=local, timeout=TIMEOUT)
            conn.set_debuglevel(0)  # smtplib's debug output would print the AUTH exchange
        except Exception as exc:
            raise _SessionError(self._session_failure(exc, target)) from None
        try:
            conn.ehlo()
            if target.tls == "starttls":
                if not conn.has_extn("starttls"):
                    raise _SessionError(
                        Result(
                            Outcome.FATAL,
                            error=f"SMTP relay {target.where} does not offer STARTTLS",
                            code="tls",
                        )
                    )
                conn.starttls(context=self._context)
                conn.ehlo()
            if self._user:
                conn.login(self._user, self._password or "")
        except _SessionError:
            conn.close()
            raise
        except Exception as exc:
            conn.close()
            raise _SessionError(self._session_failure(exc, target)) from None
        self._connected_once = True
        log.info(
            "smtp session open channel=%s relay=%s tls=%s user=%s",
            self.name,
            target.where,
            target.tls,
            self._user or "-",
        )
        return conn

    def _session_failure(self, exc: BaseException, target: SmtpTarget) -> Result:
        where = target.where
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            reply, code = _reply(exc.smtp_code, exc.smtp_error)
            return Result(
                Outcome.FATAL,
                error=self.scrubbed(f"SMTP relay {where} refused the credentials of {self._user}: {reply}"),
                code=code,
            )
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            return Result(
                Outcome.FATAL, error=self.scrubbed(f"SMTP relay {where}: {exc}"), code="unsupported"
            )
        if isinstance(exc, smtplib.SMTPResponseException):  # greeting, EHLO, STARTTLS refused
            result = classify(exc.smtp_code, exc.smtp_error, "session")
            return Result(
                result.outcome, error=self.scrubbed(f"SMTP relay {where}: {result.error}"), code=result.code
            )
        if isinstance(exc, smtplib.SMTPServerDisconnected | TimeoutError):
            return Result(
                Outcome.TRANSIENT, error=f"SMTP relay {where}: {self.error_text(exc)}", code="network"
            )
        if isinstance(exc, ssl.SSLError | ssl.CertificateError):
            return Result(Outcome.FATAL, error=f"TLS with {where} failed: {self.error_text(exc)}", code="tls")
        if isinstance(exc, smtplib.SMTPException):  # "No suitable authentication method found."
            return Result(Outcome.FATAL, error=f"SMTP relay {where}: {self.error_text(exc)}", code="smtp")
        if isinstance(exc, ConnectionRefusedError | socket.gaierror) and not self._connected_once:
            # nothing listening there (or no such host): the configuration is wrong
            return Result(
                Outcome.FATAL,
                error=f"cannot reach SMTP relay {where}: {self.error_text(exc)}",
                code="network",
            )
        return Result(Outcome.TRANSIENT, error=f"SMTP relay {where}: {self.error_text(exc)}", code="network")

    async def open(self, client: httpx.AsyncClient | None) -> None:
        """Resolve secrets and open the pool's sessions; raise ChannelError when the relay
        cannot work (refused connection, TLS, credentials). A temporary failure (4xx,
        timeout) is left for the sends to retry."""
        await super().open(client)
        self._prepare()
        size = self._connections
        opened = await asyncio.gather(
            *(asyncio.to_thread(self._connect) for _ in range(size)), return_exceptions=True
        )
        conns = [c for c in opened if isinstance(c, smtplib.SMTP)]
        failures = [c for c in opened if isinstance(c, BaseException)]
        fatal = [
            c.result for c in failures if isinstance(c, _SessionError) and c.result.outcome is Outcome.FATAL
        ]
        unexpected = [c for c in failures if not isinstance(c, _SessionError)]
        if fatal or unexpected:
            await asyncio.gather(*(asyncio.to_thread(_quit, c) for c in conns))
            if unexpected:
                raise unexpected[0]
            raise ChannelError(f"channel {self.name!r}: {fatal[0].error}")
        self._pool = _Pool(size, conns)
        self._wire = RateGate()

    async def close(self) -> None:
        if self._pool is not None:
            conns = self._pool.drain()
            self._pool = None
            await asyncio.gather(*(asyncio.to_thread(_quit, c) for c in conns))

    # ----------------------------------------------------------------- sending

    def rate_rules(self, recipient: Recipient, call: ProviderCall) -> Sequence[RateRule]:
        rate = _rate(str(self.settings.get("rate") or "10"))
        host = self._target.host if self._target else parse_smtp_url(str(self.settings["smtp"])).host
        return (RateRule("smtp:" + host, rate.numerator, rate.denominator),)

    async def send(
        self, recipient: Recipient, call: ProviderCall, context: SendContext, position: int
    ) -> Result:
        try:
            self._prepare()
        except ChannelError as err:
            return Result(Outcome.FATAL, error=one_line(str(err)), code="config")
        if call.method != "smtp":
            return Result(
                Outcome.CONTENT, error=f"email channels send smtp calls, not {call.method!r}", code="format"
            )
        try:
            to = parse_address(recipient.address, what="email address", name_allowed=False).addr_spec
        except InvalidValue as exc:  # subscribed before it was validated, or edited since
            return Result(
                Outcome.RECIPIENT, error=one_line(str(exc)), code="address", subscriber_status="unreachable"
            )
        try:
            msg = build_email(
                call,
                recipient,
                context,
                position,
                from_addr=self._from,
                reply_to=self.settings.get("reply_to") or None,
                unsubscribe_mailto=self.settings.get("unsubscribe_mailto") or None,
                files=await read_attachments(call, context.files, self._files),
            )
        except (InvalidValue, ValueError) as exc:
            return Result(Outcome.CONTENT, error=self.error_text(exc), code="message")
        if self._pool is None:
            self._pool = _Pool(self._connections)
        assert self._sender is not None
        envelope_from = self._sender.addr_spec
        msg_id = str(msg["Message-ID"])

        def deliver(conn: smtplib.SMTP | None) -> tuple[smtplib.SMTP | None, Result]:
            return self._deliver(conn, msg, envelope_from, to, msg_id)

        if self._wire is None:
            self._wire = RateGate()
        wire, rules = self._wire, self.rate_rules(recipient, call)
        result = await self._pool.run(deliver, lambda: wire.acquire(rules))
        log.debug(
            "smtp send channel=%s campaign=%s subscriber=%s position=%s outcome=%s code=%s",
            self.name,
            context.campaign_id,
            recipient.subscriber_id,
            position,
            result.outcome,
            result.code or "-",
        )
        return result

    def _deliver(
        self, conn: smtplib.SMTP | None, msg: EmailMessage, envelope_from: str, to: str, msg_id: str
    ) -> tuple[smtplib.SMTP | None, Result]:
        """One transaction on a pooled session (blocking; runs in a thread)."""
        if conn is not None:
            try:
                conn.rset()
            except (smtplib.SMTPException, OSError):
                conn.close()  # the relay dropped an idle session: open a new one
                conn = None
        if conn is None:
            try:
                conn = self._connect()
            except _SessionError as err:
                return None, err.result
        try:
            conn.send_message(msg, from_addr=envelope_from, to_addrs=[to])
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = exc.recipients.get(to) or next(iter(exc.recipients.values()), (550, b""))
            return self._after(conn, code), self._scrubbed(classify(code, text, "rcpt", address=to))
        except smtplib.SMTPSenderRefused as exc:
            return self._after(conn, exc.smtp_code), self._scrubbed(
                classify(exc.smtp_code, exc.smtp_error, "mail")
            )
        except smtplib.SMTPDataError as exc:
            return self._after(conn, exc.smtp_code), self._scrubbed(
                classify(exc.smtp_code, exc.smtp_error, "data")
            )
        except smtplib.SMTPNotSupportedError as exc:  # SMTPUTF8 needed and not offered
            return conn, Result(Outcome.CONTENT, error=self.error_text(exc), code="unsupported")
        except smtplib.SMTPResponseException as exc:
            conn.close()
            return None, self._scrubbed(classify(exc.smtp_code, exc.smtp_error, "session"))
        except (smtplib.SMTPException, OSError) as exc:  # dropped, timed out, reset
            conn.close()
            where = self._target.where if self._target else "?"
            return None, Result(
                Outcome.TRANSIENT, error=f"SMTP relay {where}: {self.error_text(exc)}", code="network"
            )
        return conn, Result.sent(msg_id)

    @staticmethod
    def _after(conn: smtplib.SMTP, code: int) -> smtplib.SMTP | None:
        """The session after a refusal: smtplib closed it on a 421."""
        return None if code == 421 or conn.sock is None else conn

    def _scrubbed(self, result: Result) -> Result:
        if result.error is None:
            return result
        return Result(
            result.outcome,
            error=self.scrubbed(result.error),
            code=result.code,
            subscriber_status=result.subscriber_status,
        )

    # ----------------------------------------------------------------- check

    async def check(self) -> str:
        """Connect, TLS, AUTH, NOOP, QUIT: nothing is sent."""
        target = self._prepare()

        def probe() -> None:
            try:
                conn = self._connect()
            except _SessionError as err:
                raise ChannelError(f"channel {self.name!r}: {err.result.error}") from None
            try:
                code, text = conn.noop()
                if code != 250:
                    reply, _ = _reply(code, text)
                    raise ChannelError(
                        f"channel {self.name!r}: SMTP relay {target.where} answered NOOP with {reply}"
                    )
            except (smtplib.SMTPException, OSError) as exc:
                raise ChannelError(
                    f"channel {self.name!r}: SMTP relay {target.where}: {self.error_text(exc)}"
                ) from None
            finally:
                _quit(conn)

        self._connected_once = False
        await asyncio.to_thread(probe)
        auth = f"authenticated as {self._user}" if self._user else "no authentication"
        return f"SMTP relay {target.where} ({_TLS_NAMES[target.tls]}, {auth})"


def _rate(value: str) -> Fraction:
    """Messages per second as a fraction (calls, seconds) the rate gate can use."""
    try:
        rate = Fraction(str(value).strip()).limit_denominator(3600)
    except (ValueError, ZeroDivisionError):
        raise InvalidValue(f"--rate must be a number of messages per second, not {value!r}") from None
    if rate <= 0 or rate > 10_000:
        raise InvalidValue(f"--rate must be more than 0 and at most 10000 messages per second, not {value!r}")
    return rate
