"""The address guard (feedcast.kernel.netguard): the policy, and the guarded connection over
real loopback sockets, TLS included (a throwaway CA from trustme)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import trustme

from channels.webhook import token_in_url
from feedcast.kernel.errors import BlockedAddress, InvalidValue
from feedcast.kernel.netguard import (
    AddressPolicy,
    GuardedTransport,
    address_problem,
    is_loopback_host,
    secret_transport_problem,
)

GUARDED = AddressPolicy()
PUBLIC = "127.0.0.2"  # stands for a public host in these tests


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.1", "2130706433", "0x7f.1", "localhost", "a.localhost", "[::1]", "::ffff:127.0.0.1",
     "10.0.0.1", "169.254.169.254", "::ffff:a9fe:a9fe", "100.64.0.1", "fd00::1", "fe80::1", "0.0.0.0", "[::]"],
)  # fmt: skip
def test_refused_hosts_are_told_without_dns(host: str) -> None:
    with pytest.raises(BlockedAddress, match="FEEDCAST_ALLOW_PRIVATE_NETWORKS"):
        GUARDED.check_host(host)
    AddressPolicy(allow_private=True).check_host(host)  # the switch lifts it


@pytest.mark.parametrize("host", ["93.184.216.34", "example.org", "2606:2800:220:1::1", "127x.example"])
def test_public_addresses_and_names_pass_the_check_without_dns(host: str) -> None:
    GUARDED.check_host(host)


def test_allowed_networks_come_from_the_environment_and_a_bad_one_is_one_line() -> None:
    policy = AddressPolicy.from_env({"FEEDCAST_ALLOWED_NETWORKS": "10.1.0.0/16, 127.0.0.2"})
    assert policy.permits(ipaddress.ip_address("10.1.2.3")) and policy.permits(ipaddress.ip_address(PUBLIC))
    assert policy.permits(ipaddress.ip_address("::ffff:10.1.2.3"))
    assert not policy.permits(ipaddress.ip_address("10.2.0.1"))
    assert not policy.permits(ipaddress.ip_address("127.0.0.1"))
    with pytest.raises(InvalidValue, match=r"'10\.0\.0\.300' is not an address or network"):
        AddressPolicy.from_env({"FEEDCAST_ALLOWED_NETWORKS": "10.0.0.300"})


def test_a_name_with_one_refused_address_is_refused_whole() -> None:
    with pytest.raises(BlockedAddress, match=r"mixed.example \(10.0.0.1\)"):
        GUARDED.check_addresses("mixed.example", ["93.184.216.34", "10.0.0.1"])


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://api.telegram.org", False),
        ("http://api.telegram.org", True),
        ("http://127.0.0.1:8081", False),
        ("http://localhost:8081", False),
        ("http://[::1]:8081", False),
        ("ftp://api.telegram.org", True),
    ],
)
def test_a_secret_goes_over_https_or_to_loopback_only(url: str, problem: bool) -> None:
    assert (secret_transport_problem(url, GUARDED) is not None) is problem
    if url.startswith("http://"):  # the switch allows plain http anywhere (the sandbox, tests)
        assert secret_transport_problem(url, AddressPolicy(allow_private=True)) is None


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("localhost", True), ("x.localhost", True), ("127.0.0.9", True), ("[::1]", True), ("::ffff:127.0.0.1", True),
     ("127.1", True), ("10.0.0.1", False), ("localhost.example.org", False)],
)  # fmt: skip
def test_loopback_hosts_are_recognised(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_address_problem_names_the_host_never_the_url() -> None:
    problem = address_problem("http://169.254.169.254/hooks/s3cr3t-t0ken-value-0123", GUARDED)
    assert problem is not None and "169.254.169.254" in problem and "s3cr3t" not in problem


@pytest.mark.parametrize(
    ("url", "carries"),
    [
        ("https://hooks.slack.com/services/T0/B0/abcdefghijklmnopqrstuvwx", True),
        ("https://discord.com/api/webhooks/1/tok", True),
        ("https://hooks.example.org/in?access_token=x", True),
        ("https://hooks.example.org/in?x=3f9a2b7c4d5e6f708192", True),
        ("https://u:p@hooks.example.org/in", True),
        ("https://hooks.example.org/h/0b9a1c2d-3e4f-5a6b-7c8d-9e0f1a2b3c4d", True),
        ("https://hooks.example.org/incoming/notifications-production", False),
        ("https://hooks.example.org/v2/events?format=json", False),
        ("http://127.0.0.1:8080/hooks/orders", False),
    ],
)
def test_token_bearing_webhook_urls_are_recognised(url: str, carries: bool) -> None:
    assert (token_in_url(url) is not None) is carries


# --------------------------------------------------------------------------- connections


@pytest.fixture
def resolve_to(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """``socket.getaddrinfo`` for chosen names (loopback answers only)."""
    table: dict[str, str] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name in table:
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (table[name], int(port)))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table


class TlsServer:
    """An HTTPS server on 127.0.0.2 with a certificate for ``name``; records the SNI
    and the request line and Host header it got."""

    def __init__(self, ca: trustme.CA, name: str) -> None:
        self.sni: list[str | None] = []
        self.heads: list[bytes] = []
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(name).configure_cert(context)
        context.sni_callback = lambda sock, server_name, ctx: self.sni.append(server_name)  # type: ignore[assignment,misc]
        self._context = context
        self._sock = socket.socket()
        self._sock.bind((PUBLIC, 0))
        self._sock.listen(8)
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self._sock.accept()
            except OSError:
                return
            try:
                with self._context.wrap_socket(raw, server_side=True) as conn:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    self.heads.append(data)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            except (OSError, ssl.SSLError):
                raw.close()

    def close(self) -> None:
        self._sock.close()


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_server(ca: trustme.CA) -> Iterator[TlsServer]:
    server = TlsServer(ca, "feeds.tls.test")
    yield server
    server.close()


def _get(url: str, ca: trustme.CA) -> httpx.Response:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    policy = AddressPolicy(allowed=(ipaddress.ip_network(f"{PUBLIC}/32"),))

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=GuardedTransport(policy=policy, verify=context)) as client:
            return await client.get(url)

    return asyncio.run(go())


def test_a_pinned_connection_keeps_tls_on_the_host_name(
    tls_server: TlsServer, ca: trustme.CA, resolve_to: dict[str, str]
) -> None:
    """Connected to the checked address, verified and addressed by name: SNI, the
    certificate check and the Host header all use the host name."""
    resolve_to["feeds.tls.test"] = PUBLIC
    response = _get(f"https://feeds.tls.test:{tls_server.port}/feed", ca)
    assert response.status_code == 200 and response.text == "ok"
    assert tls_server.sni == ["feeds.tls.test"]
    assert f"Host: feeds.tls.test:{tls_server.port}".encode() in tls_server.heads[0]


def test_a_certificate_for_another_name_is_refused_on_a_pinned_connection(
    tls_server: TlsServer, ca: trustme.CA, resolve_to: dict[str, str]
) -> None:
    resolve_to["other.tls.test"] = PUBLIC  # same address, a name the certificate does not cover
    with pytest.raises(httpx.ConnectError, match="certificate verify failed"):
        _get(f"https://other.tls.test:{tls_server.port}/feed", ca)
    assert tls_server.heads == []


def test_a_name_resolving_inside_is_refused_before_connecting(resolve_to: dict[str, str]) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.setblocking(False)
    resolve_to["admin.corp.test"] = "127.0.0.1"

    async def go() -> None:
        async with httpx.AsyncClient(transport=GuardedTransport(policy=GUARDED)) as client:
            await client.get(f"http://admin.corp.test:{listener.getsockname()[1]}/")

    try:
        with pytest.raises(BlockedAddress, match=r"admin.corp.test \(127.0.0.1\)"):
            asyncio.run(go())
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody ever connected
    finally:
        listener.close()
