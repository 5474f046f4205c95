"""Polite, bounded HTTP fetching: conditional GET, size limits, SSRF guard.

The ``httpx.AsyncClient`` is always passed in (tests hand in one pointed at a local
server or with a ``MockTransport``); :func:`make_client` builds the default one.
Redirects are followed here, hop by hop, so every hop passes the address guard and
we know whether the whole chain was permanent (the stored URL is then updated).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import httpx

from feedcast.errors import BlockedAddress, FetchError, Gone, HttpStatus, RateLimited, TooLarge

__all__ = [
    "FetchLimits",
    "FetchResponse",
    "Fetcher",
    "allow_private_networks",
    "make_client",
]

log = logging.getLogger(__name__)

USER_AGENT = "feedcast/0.1 (+https://github.com/feedcast/feedcast)"
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/json;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, text/html;q=0.8, text/csv;q=0.7, */*;q=0.5"
)


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """Named defaults for everything that bounds a fetch."""

    max_bytes: int = 20 * 1024 * 1024  # decoded body, so a gzip bomb stops here too
    connect_timeout: float = 10.0
    read_timeout: float = 20.0  # between two reads
    request_deadline: float = 60.0  # whole request: a slow drip cannot hold a slot longer
    max_redirects: int = 5
    max_connections: int = 100
    per_host: int = 4


@dataclass(frozen=True, slots=True)
class FetchResponse:
    url: str  # as requested
    final_url: str  # after redirects
    status: int
    headers: Mapping[str, str]
    body: bytes = b""
    elapsed: float = 0.0
    permanent_url: str | None = None  # set when every redirect hop was permanent
    sent_etag: str | None = None
    sent_last_modified: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag")

    @property
    def last_modified(self) -> str | None:
        return self.headers.get("last-modified")


def allow_private_networks() -> bool:
    """``FEEDCAST_ALLOW_PRIVATE_NETWORKS=1`` lifts the SSRF guard (tests, demo, benchmarks)."""
    return os.environ.get("FEEDCAST_ALLOW_PRIVATE_NETWORKS", "").strip().lower() in {"1", "true", "yes"}


def make_client(limits: FetchLimits | None = None) -> httpx.AsyncClient:
    """The default client: pooled connections, compression, explicit timeouts."""
    limits = limits or FetchLimits()
    return httpx.AsyncClient(
        headers={"User-Agent": USER_AGENT, "Accept": ACCEPT},
        timeout=httpx.Timeout(limits.read_timeout, connect=limits.connect_timeout),
        limits=httpx.Limits(
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_connections,
        ),
        follow_redirects=False,
        trust_env=False,
    )


def _blocked_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
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


class Fetcher:
    """Fetches documents with per-host concurrency, validators and guards."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        limits: FetchLimits | None = None,
        *,
        allow_private: bool | None = None,
    ) -> None:
        self.client = client
        self.limits = limits or FetchLimits()
        self.allow_private = allow_private_networks() if allow_private is None else allow_private
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._resolved: dict[str, bool] = {}

    async def _check_address(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"}:
            raise FetchError(f"unsupported URL scheme {parts.scheme!r} (http and https only)")
        host = parts.hostname
        if not host:
            raise FetchError("URL has no host")
        if self.allow_private:
            return
        cached = self._resolved.get(host)
        if cached is None:
            try:
                literal = ipaddress.ip_address(host)
                addresses = [literal]
            except ValueError:
                try:
                    infos = await asyncio.get_running_loop().getaddrinfo(
                        host, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM
                    )
                except OSError as exc:
                    raise FetchError(f"cannot resolve host {host}: {exc.strerror or exc}") from None
                addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
            cached = any(_blocked_ip(a) for a in addresses)
            self._resolved[host] = cached
        if cached:
            raise BlockedAddress(
                f"refused to fetch {host}: private, loopback or link-local address "
                "(set FEEDCAST_ALLOW_PRIVATE_NETWORKS=1 to allow)"
            )

    def _host_slot(self, url: str) -> asyncio.Semaphore:
        host = urlsplit(url).netloc.lower()
        slot = self._hosts.get(host)
        if slot is None:
            slot = self._hosts[host] = asyncio.Semaphore(self.limits.per_host)
        return slot

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> FetchResponse:
        """GET ``url``; 2xx and 304 return, everything else raises a FetchError."""
        started = time.perf_counter()
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        current = url
        permanent = True
        for _hop in range(self.limits.max_redirects + 1):
            await self._check_address(current)
            async with self._host_slot(current):
                try:
                    async with asyncio.timeout(self.limits.request_deadline):
                        status, resp_headers, body = await self._get(current, headers)
                except TimeoutError:
                    raise FetchError(
                        f"timed out: no complete response within {self.limits.request_deadline:g} s"
                    ) from None
                except httpx.TimeoutException:
                    raise FetchError("timed out waiting for the server") from None
                except httpx.HTTPError as exc:
                    raise FetchError(f"connection failed: {type(exc).__name__}: {exc}") from None
            if status in {301, 302, 303, 307, 308} and "location" in resp_headers:
                permanent = permanent and status in {301, 308}
                current = urljoin(current, resp_headers["location"])
                continue
            elapsed = time.perf_counter() - started
            if status == 304 or 200 <= status < 300:
                return FetchResponse(
                    url=url,
                    final_url=current,
                    status=status,
                    headers=resp_headers,
                    body=body,
                    elapsed=elapsed,
                    permanent_url=current if permanent and current != url else None,
                    sent_etag=etag,
                    sent_last_modified=last_modified,
                )
            if status == 410:
                raise Gone("HTTP 410 Gone: the source was removed by its publisher", status=410)
            if status in {429, 503}:
                retry_after = parse_retry_after(resp_headers.get("retry-after"))
                if status == 429 or retry_after is not None:
                    wait = f", retry after {retry_after:g} s" if retry_after is not None else ""
                    raise RateLimited(f"HTTP {status}: rate limited{wait}", status=status, retry_after=retry_after)
            raise HttpStatus(f"HTTP {status}", status=status)
        raise FetchError(f"too many redirects (more than {self.limits.max_redirects})")

    async def _get(self, url: str, headers: Mapping[str, str]) -> tuple[int, dict[str, str], bytes]:
        async with self.client.stream("GET", url, headers=headers) as response:
            resp_headers = {k.lower(): v for k, v in response.headers.items()}
            status = response.status_code
            if not 200 <= status < 300:
                return status, resp_headers, b""
            declared = resp_headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.limits.max_bytes and not resp_headers.get(
                "content-encoding"
            ):
                raise TooLarge(f"body of {int(declared):,} bytes is over the {self.limits.max_bytes:,} byte limit")
            chunks: list[bytes] = []
            size = 0
            try:
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self.limits.max_bytes:
                        raise TooLarge(
                            f"body is over the {self.limits.max_bytes:,} byte limit"
                            + (" after decompression" if resp_headers.get("content-encoding") else "")
                        )
                    chunks.append(chunk)
            except httpx.DecodingError as exc:
                raise FetchError(f"could not decode the response body: {exc}") from None
            return status, resp_headers, b"".join(chunks)


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())
