"""Polite, bounded HTTP fetching: conditional GET, size limits, SSRF guard.

The ``httpx.AsyncClient`` is always passed in (tests hand in one pointed at a local
server or with a ``MockTransport``); :func:`make_client` builds the default one.
Redirects are followed here, hop by hop, so every hop passes the address guard and
we know whether the whole chain was permanent (the stored URL is then updated). The
guard itself is :mod:`feedcast.kernel.netguard`: the client's connections resolve each host
once, check every address and connect to a checked one (no DNS rebinding between the
check and the connection); the address actually connected to is checked again.
Bodies are decompressed here too, in bounded steps, so a gzip bomb stops at the size
limit instead of inflating a whole network read at once; the request deadline covers
the whole chain of hops.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import httpx

from feedcast.kernel.errors import BlockedAddress, FetchError, Gone, HttpStatus, RateLimited, TooLarge
from feedcast.kernel.netguard import AddressPolicy, GuardedTransport, allow_private_networks

__all__ = [
    "FetchLimits",
    "FetchResponse",
    "Fetcher",
    "Resolver",
    "allow_private_networks",
    "make_client",
    "parse_retry_after",
    "system_resolve",
]

log = logging.getLogger(__name__)

USER_AGENT = "feedcast/0.1 (+https://github.com/feedcast/feedcast)"
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/json;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, text/html;q=0.8, text/csv;q=0.7, */*;q=0.5"
)
ACCEPT_ENCODING = "gzip, deflate"  # what :class:`_Decoder` undoes, in bounded steps


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """Named defaults for everything that bounds a fetch."""

    max_bytes: int = 20 * 1024 * 1024  # decoded body, so a gzip bomb stops here too
    connect_timeout: float = 10.0
    read_timeout: float = 20.0  # between two reads
    request_deadline: float = 60.0  # whole fetch, every redirect hop: a slow drip cannot hold a slot longer
    max_redirects: int = 5
    max_connections: int = 64  # as many as sources polled at once; more slows httpcore's pool
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


def make_client(
    limits: FetchLimits | None = None, *, policy: AddressPolicy | None = None
) -> httpx.AsyncClient:
    """The default client: pooled connections through the address guard (``policy``,
    else the environment's), compression, explicit timeouts, no proxy, no redirects."""
    limits = limits or FetchLimits()
    pool = httpx.Limits(
        max_connections=limits.max_connections, max_keepalive_connections=limits.max_connections
    )
    return httpx.AsyncClient(
        transport=GuardedTransport(policy=policy, limits=pool),
        headers={"User-Agent": USER_AGENT, "Accept": ACCEPT, "Accept-Encoding": ACCEPT_ENCODING},
        timeout=httpx.Timeout(limits.read_timeout, connect=limits.connect_timeout),
        follow_redirects=False,
        trust_env=False,
    )


Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``resolve(host, port)`` -> the host's IP addresses as strings; raises OSError when it has none."""


async def system_resolve(host: str, port: int) -> list[str]:
    """The default :data:`Resolver`: the system's ``getaddrinfo``."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class _Budget:
    """The request deadline, spent only while a fetch is on the network: across every
    redirect hop and DNS lookup, but not while it queues for a per-host slot."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.left = seconds

    @contextlib.asynccontextmanager
    async def spend(self) -> AsyncIterator[None]:
        if self.left <= 0:
            raise TimeoutError
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.left):
                yield
        finally:
            self.left -= time.perf_counter() - started


class Fetcher:
    """Fetches documents with per-host concurrency, validators and guards.

    Each hop's URL is checked before it is requested (scheme, and a refused address or
    ``localhost`` written as the host); the client built by :func:`make_client` then
    resolves the name once per connection, checks every address and connects to a
    checked one. ``resolve`` adds a DNS check before the request (a transport that does
    not connect, such as ``httpx.MockTransport`` in tests; a caching resolver).
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        limits: FetchLimits | None = None,
        *,
        allow_private: bool | None = None,
        resolve: Resolver | None = None,
    ) -> None:
        self.client = client
        self.limits = limits or FetchLimits()
        env = AddressPolicy.from_env()
        self.policy = env if allow_private is None else AddressPolicy(allow_private, env.allowed)
        self.allow_private = self.policy.allow_private
        self.resolve: Resolver | None = resolve
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._resolved: dict[str, BlockedAddress | None] = {}

    async def _check_address(self, url: str) -> None:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise FetchError(f"invalid URL {url!r}: {exc}") from None
        if parts.scheme not in {"http", "https"}:
            raise FetchError(f"unsupported URL scheme {parts.scheme!r} (http and https only)")
        host = (parts.hostname or "").rstrip(".")
        if not host:
            raise FetchError("URL has no host")
        if self.allow_private:
            return
        self.policy.check_host(host, action="fetch")
        if self.resolve is None:
            return  # the guarded client resolves and checks when it connects
        if host not in self._resolved:
            addresses = await self._addresses(host, port or (443 if parts.scheme == "https" else 80))
            try:
                self.policy.check_addresses(host, addresses, action="fetch")
                self._resolved[host] = None
            except BlockedAddress as exc:
                self._resolved[host] = exc
        refused = self._resolved[host]
        if refused is not None:
            raise BlockedAddress(str(refused))

    async def _addresses(self, host: str, port: int) -> list[str]:
        assert self.resolve is not None
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            pass
        try:
            addresses = [str(ipaddress.ip_address(a)) for a in await self.resolve(host, port)]
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise FetchError(f"cannot resolve host {host}: {reason}") from None
        if not addresses:
            raise FetchError(f"cannot resolve host {host}: no addresses")
        return addresses

    def _check_peer(self, response: httpx.Response, url: str) -> None:
        """The address actually connected to, against the guard once more (a client
        that is not guarded, a transport that connects by itself)."""
        stream = response.extensions.get("network_stream")
        peer = stream.get_extra_info("server_addr") if stream is not None else None
        if not peer:
            return  # not a socket (a mock transport)
        try:
            ip = ipaddress.ip_address(peer[0])
        except ValueError:
            return
        if not self.policy.permits(ip):
            raise self.policy.blocked(urlsplit(url).hostname or "?", ip, action="fetch")

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
        headers: dict[str, str] = {"Accept-Encoding": ACCEPT_ENCODING}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        budget = _Budget(self.limits.request_deadline)
        current = url
        permanent = True
        for _hop in range(self.limits.max_redirects + 1):
            status, resp_headers, body = await self._hop(current, headers, budget)
            if status in {301, 302, 303, 307, 308} and "location" in resp_headers:
                permanent = permanent and status in {301, 308}
                try:
                    current = urljoin(current, resp_headers["location"].strip())
                except ValueError as exc:
                    raise FetchError(f"invalid redirect target: {exc}") from None
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
                    raise RateLimited(
                        f"HTTP {status}: rate limited{wait}", status=status, retry_after=retry_after
                    )
            raise HttpStatus(f"HTTP {status}", status=status)
        raise FetchError(f"too many redirects (more than {self.limits.max_redirects})")

    async def _hop(
        self, url: str, headers: Mapping[str, str], budget: _Budget
    ) -> tuple[int, dict[str, str], bytes]:
        """One request of a redirect chain: address guard, host slot, deadline, errors."""
        try:
            async with budget.spend():
                await self._check_address(url)
            async with self._host_slot(url), budget.spend():
                return await self._get(url, headers)
        except TimeoutError:
            raise FetchError(f"timed out: no complete response within {budget.seconds:g} s") from None
        except httpx.TimeoutException:
            raise FetchError("timed out waiting for the server") from None
        except httpx.InvalidURL as exc:  # also raised by httpx for a malformed Location
            raise FetchError(f"invalid URL (in the request or a redirect): {exc}") from None
        except httpx.ConnectError as exc:
            if str(exc).startswith("cannot resolve host"):  # the guarded backend's lookup
                raise FetchError(str(exc)) from None
            raise FetchError(f"connection failed: {type(exc).__name__}: {exc}") from None
        except httpx.HTTPError as exc:
            raise FetchError(f"connection failed: {type(exc).__name__}: {exc}") from None

    async def _get(self, url: str, headers: Mapping[str, str]) -> tuple[int, dict[str, str], bytes]:
        async with self.client.stream("GET", url, headers=headers) as response:
            if not self.allow_private:
                self._check_peer(response, url)
            resp_headers = {k.lower(): v for k, v in response.headers.items()}
            status = response.status_code
            if not 200 <= status < 300:
                return status, resp_headers, b""
            limit = self.limits.max_bytes
            declared = resp_headers.get("content-length", "").strip()
            if declared.isdigit() and int(declared) > limit:  # on the wire: decoded is checked below
                raise TooLarge(f"body of {int(declared):,} bytes is over the {limit:,} byte limit")
            return status, resp_headers, await self._read_body(response, resp_headers.get("content-encoding"))

    async def _read_body(self, response: httpx.Response, content_encoding: str | None) -> bytes:
        limit = self.limits.max_bytes
        if response.is_stream_consumed:  # a transport that hands over a whole, decoded body (a mock)
            if len(response.content) > limit:
                raise TooLarge(f"body is over the {limit:,} byte limit")
            return response.content
        decoder = _Decoder(content_encoding)
        over = f"body is over the {limit:,} byte limit" + (" after decompression" if decoder.layers else "")
        chunks: list[bytes] = []
        raw_size = size = 0
        try:
            async for raw in response.aiter_raw():
                raw_size += len(raw)
                if raw_size > limit:
                    raise TooLarge(f"body is over the {limit:,} byte limit")
                for chunk in decoder.feed(raw):  # at most _STEP bytes at a time: bombs stop here
                    size += len(chunk)
                    if size > limit:
                        raise TooLarge(over)
                    chunks.append(chunk)
            for chunk in decoder.flush():
                size += len(chunk)
                if size > limit:
                    raise TooLarge(over)
                chunks.append(chunk)
        except zlib.error as exc:
            raise FetchError(f"could not decode the response body: {exc}") from None
        return b"".join(chunks)


# ------------------------------------------------------------------ content decoding
# httpx decodes each network read in one go: 64 KB of gzip can inflate to 64 MB (and a
# second gzip layer to anything) before a size check sees it. Decoding here, with a cap
# on every step, keeps memory at the size limit plus a few steps whatever comes in.

_STEP = 64 * 1024  # the most one decoding step may produce
_MAX_CODINGS = 3
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
_UNSUPPORTED = {"br", "zstd", "compress", "x-compress"}  # never asked for


class _Inflater:
    """One gzip / deflate layer, decoded at most ``_STEP`` bytes at a time."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self._z = zlib.decompressobj(_WBITS[coding])
        # "deflate" is zlib-wrapped by the spec, raw by some servers: the first two bytes tell
        self._head: bytes | None = b"" if coding == "deflate" else None

    def feed(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for data in chunks:
            yield from self._feed(data)

    def _feed(self, data: bytes) -> Iterator[bytes]:
        if self._head is not None:
            self._head += data
            if len(self._head) < 2:
                return
            data, self._head = self._head, None
            cmf, flg = data[0], data[1]
            if not (cmf & 0x0F == 8 and ((cmf << 8) | flg) % 31 == 0):
                self._z = zlib.decompressobj(-zlib.MAX_WBITS)
        while True:
            out = self._z.decompress(data, _STEP)
            if out:
                yield out
            if self._z.eof:
                rest = self._z.unused_data
                if self.coding == "deflate" or not rest.startswith(b"\x1f\x8b"):
                    return  # anything after the end of the stream is ignored
                self._z = zlib.decompressobj(_WBITS[self.coding])  # another gzip member
                data = rest
                continue
            data = self._z.unconsumed_tail
            if not data and len(out) < _STEP:
                return

    def flush(self) -> bytes:
        return self._z.flush() if not self._z.eof else b""


class _Decoder:
    """The Content-Encoding chain of a response, undone lazily and in bounded steps."""

    def __init__(self, content_encoding: str | None) -> None:
        codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
        codings = [c for c in codings if c and c != "identity"]
        for coding in codings:
            if coding in _UNSUPPORTED:
                raise FetchError(f"unsupported content-encoding {coding!r} (we ask for {ACCEPT_ENCODING})")
        codings = [c for c in codings if c in _WBITS]  # unknown tokens are ignored, as httpx does
        if len(codings) > _MAX_CODINGS:
            raise FetchError(f"too many content-encodings ({len(codings)})")
        self.layers = [_Inflater(c) for c in reversed(codings)]  # the last applied is undone first

    def feed(self, data: bytes) -> Iterator[bytes]:
        return self._through(0, [data])

    def flush(self) -> Iterator[bytes]:
        for i, layer in enumerate(self.layers):
            tail = layer.flush()
            if tail:
                yield from self._through(i + 1, [tail])

    def _through(self, first: int, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for layer in self.layers[first:]:
            chunks = layer.feed(chunks)
        yield from chunks


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date, counted from ``now``,
    seconds since the epoch, default the current time); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC without saying so
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
