"""An SMTP sink on loopback: a real SMTP server (aiosmtpd) that records what it accepts.

``with SmtpSink(tls="starttls", users={"bot": "s3cret-pass"}) as sink: ...`` then point an
SMTP client at ``sink.url`` (trusting ``sink.ca_file``) and read ``sink.messages_for(addr)``
and ``sink.stats()``. It answers like a relay would:

- ``reject(address)``: a hard bounce at RCPT (550 5.1.1 by default);
- ``defer(address, times=1)``: a temporary refusal at RCPT (451 4.7.1) the first times;
- ``refuse_content(marker)``: DATA refused (554 5.6.0) when the message contains a marker;
- ``fault_rate`` / ``seed``: that fraction of transactions answered 421 (connection
  closed) or 451 at MAIL FROM;
- ``max_rate``: more than that many accepted messages in a sliding second are refused
  with 451 4.7.0; whatever it is set to, :meth:`stats` reports the most messages accepted
  in any sliding second (``max_per_second``) and the SMTP connections opened, so a test
  can prove pacing and connection reuse; the window reads ``clock`` (:mod:`feedcast.kernel.clock`:
  a ``FakeClock`` makes a burst arrive at one instant, however slow the machine);
- ``users``: AUTH PLAIN / LOGIN required before MAIL (wrong password: 535 5.7.8).

TLS uses a throwaway CA and a certificate for ``localhost`` / ``127.0.0.1`` generated
into a temporary directory at start (``tls="starttls"`` or ``"ssl"``, implicit TLS).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import ipaddress
import shutil
import socket
import ssl
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from feedcast.kernel.clock import SYSTEM, Clock
from feedcast.sandbox.base import Faults, Window

__all__ = ["ReceivedMessage", "SinkStats", "SmtpSink", "make_certificate"]

Tls = Literal["none", "starttls", "ssl"]

# Network jitter between a client's rate gate and our clock: a message that left the
# client just after its window moved on may arrive a few milliseconds "early" here.
WINDOW_SLACK = 0.05


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """One accepted transaction."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    received_at: dt.datetime
    authenticated_as: str | None = None
    tls: bool = False


@dataclass(frozen=True, slots=True)
class SinkStats:
    accepted: int  # messages accepted
    rejected: int  # permanent refusals (5xx at AUTH, RCPT, DATA)
    deferred: int  # temporary refusals (4xx: defer, faults, max_rate)
    rate_limited: int  # of which refused for max_rate
    connections: int  # SMTP connections opened
    max_per_second: int  # most messages accepted in any sliding second (see WINDOW_SLACK)


@dataclass(slots=True)
class _Script:
    code: int
    message: str
    times: int | None = None  # None: always


def make_certificate(directory: Path, hostname: str = "localhost") -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for ``hostname``, 127.0.0.1 and ::1,
    written to ``directory``: (ca.pem, cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "feedcast sandbox CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName(hostname),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


class _Session(Session):
    # aiosmtpd sets the legacy ``login_data`` on every successful AUTH and logs a
    # deprecation warning each time; a plain attribute keeps the sandbox's log quiet
    login_data: Any = None


class _Smtp(SMTP):
    def _create_session(self) -> Session:
        return _Session(self.loop)


class _Controller(Controller):
    """aiosmtpd's threaded controller on a socket we bound ourselves (port 0 works),
    counting the SMTP sessions it creates."""

    def __init__(self, sink: SmtpSink, sock: socket.socket, **kwargs: Any) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(sink, hostname=host, port=port, **kwargs)
        self._sink = sink
        self._sock = sock

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)

    def factory(self) -> SMTP:
        self._sink._connection_opened()
        return _Smtp(self.handler, **self.SMTP_kwargs)


class SmtpSink:
    """A recording SMTP server on loopback (aiosmtpd in a thread)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls: Tls = "none",
        users: Mapping[str, str] | None = None,
        fault_rate: float = 0.0,
        seed: int | None = None,
        max_rate: int | None = None,
        hostname: str = "sink.feedcast.localhost",
        clock: Clock = SYSTEM,
    ) -> None:
        if tls not in ("none", "starttls", "ssl"):
            raise ValueError(f"tls must be none, starttls or ssl, not {tls!r}")
        self.tls: Tls = tls
        self.users = dict(users) if users is not None else None
        self.faults = Faults(fault_rate, seed=seed)
        self.max_rate = max_rate
        self.clock = clock  # the rate window reads it (a FakeClock in tests)
        self.hostname = hostname
        self._bind = (host, port)
        self.host, self.port = host, port
        self.ca_file: Path | None = None  # trust this to verify the sink's certificate
        self._tmp: str | None = None
        self._controller: _Controller | None = None
        self._lock = threading.Lock()
        self._rejects: dict[str, _Script] = {}
        self._defers: dict[str, _Script] = {}
        self._content: list[tuple[str, _Script]] = []
        self._messages: list[ReceivedMessage] = []
        self._window = Window(1.0 - WINDOW_SLACK)  # messages accepted
        self._accepted = self._rejected = self._deferred = self._rate_limited = 0
        self._connections = 0

    # ----------------------------------------------------------------- lifecycle

    @property
    def scheme(self) -> str:
        return {"none": "smtp", "starttls": "smtp+starttls", "ssl": "smtps"}[self.tls]

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def start(self) -> SmtpSink:
        server_ctx: ssl.SSLContext | None = None
        if self.tls != "none":
            self._tmp = tempfile.mkdtemp(prefix="feedcast-smtp-")
            ca, cert, key = make_certificate(Path(self._tmp))
            self.ca_file = ca
            server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            server_ctx.load_cert_chain(cert, key)
        sock = socket.socket(socket.AF_INET6 if ":" in self._bind[0] else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(self._bind)
        self.host, self.port = sock.getsockname()[:2]
        kwargs: dict[str, Any] = {
            "server_hostname": self.hostname,
            "ready_timeout": 10.0,
            # auth is enforced at MAIL by handle_MAIL (aiosmtpd's auth_required warns
            # when AUTH may travel in clear, which a sandbox allows on purpose)
            "auth_require_tls": self.tls == "starttls",
        }
        if self.users is not None:
            kwargs["authenticator"] = self._authenticate
        if self.tls == "starttls":
            kwargs.update(tls_context=server_ctx, require_starttls=True)
        elif self.tls == "ssl":
            kwargs["ssl_context"] = server_ctx
        self._controller = _Controller(self, sock, **kwargs)
        try:
            self._controller.start()
        except BaseException:
            sock.close()
            self._cleanup_files()
            raise
        with self._lock:
            self._connections = 0  # the controller's own start-up probe
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        self._cleanup_files()

    def _cleanup_files(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- scripting

    def reject(self, address: str, code: int = 550, message: str = "5.1.1 No such user") -> None:
        """Refuse ``address`` at RCPT, permanently (a hard bounce)."""
        with self._lock:
            self._rejects[address.lower()] = _Script(code, message)

    def defer(
        self, address: str, code: int = 451, message: str = "4.7.1 Try again later", times: int = 1
    ) -> None:
        """Refuse ``address`` at RCPT temporarily, the next ``times`` attempts."""
        with self._lock:
            self._defers[address.lower()] = _Script(code, message, times)

    def refuse_content(
        self, marker: str, code: int = 554, message: str = "5.6.0 Message content rejected"
    ) -> None:
        """Refuse at DATA any message whose source contains ``marker``."""
        with self._lock:
            self._content.append((marker, _Script(code, message)))

    # ----------------------------------------------------------------- reading

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._lock:
            return list(self._messages)

    def messages_for(self, address: str) -> list[ReceivedMessage]:
        address = address.lower()
        return [m for m in self.messages if address in (r.lower() for r in m.rcpt_tos)]

    def stats(self) -> SinkStats:
        with self._lock:
            return SinkStats(
                accepted=self._accepted,
                rejected=self._rejected,
                deferred=self._deferred,
                rate_limited=self._rate_limited,
                connections=self._connections,
                max_per_second=self._window.peak,
            )

    # ----------------------------------------------------------------- aiosmtpd hooks

    def _connection_opened(self) -> None:
        with self._lock:
            self._connections += 1

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert self.users is not None
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8", "replace")
            password = auth_data.password.decode("utf-8", "replace")
            if login in self.users and self.users[login] == password:
                return AuthResult(success=True, auth_data=login)
        with self._lock:
            self._rejected += 1
        return AuthResult(success=False, handled=False)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        if self.users is not None and not session.authenticated:
            with self._lock:
                self._rejected += 1
            return "530 5.7.0 Authentication required"
        with self._lock:
            if self.faults.fault():
                self._deferred += 1
                if self.faults.coin():
                    transport = server.transport
                    if transport is not None:
                        asyncio.get_running_loop().call_soon(transport.close)
                    return "421 4.3.2 Service not available, closing transmission channel"
                return "451 4.3.0 Temporary local problem, try again later"
            if self.max_rate is not None and self._window.count(self.clock.monotonic()) >= self.max_rate:
                self._deferred += 1
                self._rate_limited += 1
                return f"451 4.7.0 Rate limit exceeded ({self.max_rate} messages per second), slow down"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        key = address.lower()
        with self._lock:
            script = self._rejects.get(key)
            if script is not None:
                self._rejected += 1
                return f"{script.code} {script.message}"
            script = self._defers.get(key)
            if script is not None and (script.times is None or script.times > 0):
                if script.times is not None:
                    script.times -= 1
                self._deferred += 1
                return f"{script.code} {script.message}"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(envelope.content, bytes) and not raw:
            raw = envelope.content
        with self._lock:
            for marker, script in self._content:
                if marker.encode("utf-8") in raw:
                    self._rejected += 1
                    return f"{script.code} {script.message}"
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        login = session.auth_data if isinstance(session.auth_data, str) else None
        record = ReceivedMessage(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            message=parsed,
            received_at=dt.datetime.now(dt.UTC),
            authenticated_as=login if session.authenticated else None,
            tls=session.ssl is not None or self.tls == "ssl",
        )
        with self._lock:
            self._window.hit(self.clock.monotonic())
            self._messages.append(record)
            self._accepted += 1
        return "250 2.0.0 OK: queued"
