"""The address guard: which addresses feedcast may connect to, checked where it connects.

Every outbound HTTP request of feedcast (source fetches, channel calls, ``channel test``,
the web app's lookups) goes through a client built here. Its connections are opened by
:class:`GuardedBackend`, an httpcore network backend that resolves the host once
(``getaddrinfo``), checks every address it got against the :class:`AddressPolicy`, and
connects to a checked address, never to the name: a DNS answer that changes between the
check and the connection (DNS rebinding) cannot send a byte to another address. TLS
(SNI, certificate) and the ``Host`` header still use the host name, as httpcore does.

Refused: loopback, private (RFC 1918, ULA), link-local (169.254.0.0/16, the cloud
metadata address), carrier-grade NAT, multicast, reserved and every other non-global
address, IPv4-mapped IPv6 forms included. ``FEEDCAST_ALLOW_PRIVATE_NETWORKS=1`` lifts the
guard (tests, the sandbox, the demo and benchmarks on loopback);
``FEEDCAST_ALLOWED_NETWORKS`` names addresses or networks allowed on top of the public
internet (e.g. a local Bot API server on ``10.0.0.5``).

Secrets (bot tokens, page tokens, signing keys, credential headers) go only over https:
:func:`secret_transport_problem` says why a URL may not carry one (plain http is allowed
to loopback, and when private networks are allowed).

Kernel module: the standard library, httpcore and httpx (the HTTP client every layer
already uses); no store, no DuckDB, no Prefect.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from feedcast.kernel.errors import BlockedAddress, InvalidValue

__all__ = [
    "ALLOWED_NETWORKS_ENV",
    "ALLOW_PRIVATE_ENV",
    "AddressPolicy",
    "GuardedBackend",
    "GuardedTransport",
    "address_problem",
    "allow_private_networks",
    "blocked_ip",
    "guarded_client",
    "is_loopback_host",
    "secret_transport_problem",
    "verified_context",
]

ALLOW_PRIVATE_ENV = "FEEDCAST_ALLOW_PRIVATE_NETWORKS"
ALLOWED_NETWORKS_ENV = "FEEDCAST_ALLOWED_NETWORKS"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_LOOPBACK_NAMES = ("localhost",)
DEFAULT_LIMITS = httpx.Limits(
    max_connections=100, max_keepalive_connections=20
)  # httpx's own  # RFC 6761: localhost and *.localhost are always loopback


def allow_private_networks(environ: Mapping[str, str] | None = None) -> bool:
    """``FEEDCAST_ALLOW_PRIVATE_NETWORKS=1`` lifts the guard (tests, demo, benchmarks)."""
    env = os.environ if environ is None else environ
    return env.get(ALLOW_PRIVATE_ENV, "").strip().lower() in {"1", "true", "yes"}


def blocked_ip(ip: IPAddress) -> bool:
    """True for every address that is not on the public internet."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def _host_of(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _literal(host: str) -> IPAddress | None:
    """An IP address written as a host (``127.1`` and ``2130706433`` too, as resolvers read them)."""
    host = _host_of(host)
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(c.isdigit() or c in ".xX" or c in "abcdefABCDEF" for c in host) and host[0].isdigit():
        try:  # the forms inet_aton accepts: 127.1, 0x7f.1, 2130706433
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def is_loopback_host(host: str) -> bool:
    """``localhost``, ``*.localhost`` or a loopback address written as the host."""
    name = _host_of(host)
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    ip = _literal(name)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip is not None and ip.is_loopback


def _parse_networks(raw: str) -> tuple[IPNetwork, ...]:
    networks: list[IPNetwork] = []
    for entry in raw.replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise InvalidValue(
                f"{ALLOWED_NETWORKS_ENV}: {entry!r} is not an address or network "
                "(e.g. 10.0.0.5 or 10.1.0.0/16, separated by commas)"
            ) from None
    return tuple(networks)


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Which addresses may be connected to: public ones, plus ``allowed`` networks;
    everything when ``allow_private``."""

    allow_private: bool = False
    allowed: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AddressPolicy:
        """The policy the environment sets (InvalidValue for a malformed allowed network)."""
        env = os.environ if environ is None else environ
        return cls(allow_private_networks(env), _parse_networks(env.get(ALLOWED_NETWORKS_ENV, "")))

    def permits(self, ip: IPAddress) -> bool:
        if self.allow_private or not blocked_ip(ip):
            return True
        plain = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else ip
        return any(plain in network for network in self.allowed if network.version == plain.version)

    def blocked(
        self, host: str, address: object | None = None, *, action: str = "connect to"
    ) -> BlockedAddress:
        at = f" ({address})" if address is not None and str(address) != _host_of(host) else ""
        return BlockedAddress(
            f"refused to {action} {_host_of(host)}{at}: private, loopback or link-local address "
            f"(set {ALLOW_PRIVATE_ENV}=1 to allow)"
        )

    def check_host(self, host: str, *, action: str = "connect to") -> None:
        """What can be told without DNS: a refused address written as the host, or a
        ``localhost`` name (BlockedAddress); names are checked when resolved."""
        if self.allow_private:
            return
        name = _host_of(host)
        if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
            loopback = ipaddress.ip_address("127.0.0.1")
            if not self.permits(loopback):
                raise self.blocked(name, action=action)
            return
        ip = _literal(name)
        if ip is not None and not self.permits(ip):
            raise self.blocked(name, ip, action=action)

    def check_addresses(
        self, host: str, addresses: Iterable[str], *, action: str = "connect to"
    ) -> list[str]:
        """``addresses`` (a host's DNS answer), all permitted, else BlockedAddress: a name
        that resolves to one refused address is refused whole."""
        checked: list[str] = []
        for raw in addresses:
            ip = ipaddress.ip_address(raw.split("%", 1)[0])
            if not self.permits(ip):
                raise self.blocked(host, ip, action=action)
            checked.append(str(ip))
        return checked

    async def resolve(self, host: str, port: int) -> list[str]:
        """Resolve ``host`` once and check every address (BlockedAddress when one is
        refused; OSError when there is none)."""
        name = _host_of(host)
        ip = _literal(name)
        if ip is not None:
            return self.check_addresses(name, [str(ip)])
        if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
            return self.check_addresses(name, ["127.0.0.1"])
        infos = await asyncio.get_running_loop().getaddrinfo(name, port, type=socket.SOCK_STREAM)
        answers = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not answers:
            raise OSError(f"no addresses for {name}")
        return self.check_addresses(name, answers)


def address_problem(url: str, policy: AddressPolicy | None = None) -> str | None:
    """Why ``url``'s host is refused without asking DNS (a refused address written as the
    host, ``localhost``), or None; names are checked when a connection resolves them.
    The sentence names the host only, never the URL (its path or query may hold a token)."""
    policy = policy or AddressPolicy.from_env()
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return "is not a valid URL"
    try:
        policy.check_host(host)
    except BlockedAddress:
        return (
            f"points to {_host_of(host)}, a private, loopback or link-local address "
            f"(set {ALLOW_PRIVATE_ENV}=1 to allow, or name it in {ALLOWED_NETWORKS_ENV})"
        )
    return None


def secret_transport_problem(url: str, policy: AddressPolicy | None = None) -> str | None:
    """Why ``url`` may not carry a secret (None: it may): only https, or plain http to
    loopback or with private networks allowed."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "is not a valid URL"
    if parts.scheme == "https":
        return None
    policy = policy or AddressPolicy.from_env()
    if parts.scheme == "http" and (policy.allow_private or is_loopback_host(host)):
        return None
    return (
        f"carries a secret and must be an https URL, not {parts.scheme or 'a relative'}:// "
        f"(plain http only to loopback, or with {ALLOW_PRIVATE_ENV}=1)"
    )


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to addresses the policy permits:
    one lookup per connection, every address checked, the connection made to a checked
    address (pinned), so the name is never resolved again behind the guard's back."""

    def __init__(
        self, policy: AddressPolicy | None = None, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self.policy = policy if policy is not None else AddressPolicy.from_env()
        self.inner = inner if inner is not None else httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                addresses = await self.policy.resolve(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"timed out resolving {_host_of(host)}") from None
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise httpcore.ConnectError(f"cannot resolve host {_host_of(host)}: {reason}") from None
        error: Exception | None = None
        for index, address in enumerate(addresses):
            left = None if deadline is None else max(0.0, deadline - loop.time())
            if left is not None:  # an unreachable first address (IPv6 blackholed) leaves time for the others
                left /= len(addresses) - index
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout=left, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("feedcast connects over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


@cache
def verified_context() -> ssl.SSLContext:
    """The one certificate-verifying TLS context every client shares: loading the CA
    bundle takes ~30 ms, and a campaign's sharded transport or a poll's client would
    otherwise load it once per pool. A context is safe to share between connections."""
    return httpx.create_ssl_context(verify=True, trust_env=False)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` whose connection pool opens its connections through
    a :class:`GuardedBackend` (httpx takes no network backend itself: the pool it built
    is replaced by the same pool with the guarded backend). Proxies are not used: the
    address the guard checks must be the one connected to."""

    def __init__(
        self,
        *,
        policy: AddressPolicy | None = None,
        limits: httpx.Limits | None = None,
        verify: ssl.SSLContext | bool = True,
        http2: bool = False,
    ) -> None:
        limits = limits or DEFAULT_LIMITS
        context = (
            verified_context() if verify is True else httpx.create_ssl_context(verify=verify, trust_env=False)
        )
        super().__init__(verify=context, limits=limits, http2=http2, trust_env=False)
        self.policy = policy if policy is not None else AddressPolicy.from_env()
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=http2,
            network_backend=GuardedBackend(self.policy),
        )


def guarded_client(
    timeout: httpx.Timeout | float = 30.0,
    *,
    policy: AddressPolicy | None = None,
    limits: httpx.Limits | None = None,
    **kwargs: Any,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` whose every connection passes the address guard; no
    redirects followed (a caller that follows them checks each hop) and no proxy from
    the environment (``trust_env=False``)."""
    transport = GuardedTransport(policy=policy, limits=limits)
    kwargs.setdefault("follow_redirects", False)
    return httpx.AsyncClient(transport=transport, timeout=timeout, trust_env=False, **kwargs)
