"""The fetch layer against a real local server that misbehaves (tests/hostile_server.py).

Everything goes through ``Fetcher(make_client(limits), limits)`` with small limits so
the suite stays fast; the SSRF tests that need a "public" host use an
``httpx.MockTransport`` and the fetcher's ``resolve`` hook, never the network.
"""

from __future__ import annotations

import asyncio
import gzip
import resource
import sys
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

import httpx
import pytest

from feedcast.kernel.errors import BlockedAddress, FetchError, Gone, HttpStatus, RateLimited, TooLarge
from feedcast.kernel.models import PollOutcome, Source
from sources.fetch import Fetcher, FetchLimits, FetchResponse, make_client, parse_retry_after
from tests.hostile_server import (
    ENDLESS_CAP,
    ETAG,
    LAST_MODIFIED,
    HostileServer,
    billion_laughs_rss,
    gzip_bomb,
    rss,
)

T = TypeVar("T")

LIMITS = FetchLimits(
    max_bytes=1024 * 1024,
    connect_timeout=1.0,
    read_timeout=0.5,
    request_deadline=1.5,
    max_redirects=5,
)
MB = 1024 * 1024
ENV = "FEEDCAST_ALLOW_PRIVATE_NETWORKS"

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


@pytest.fixture(scope="module")
def server() -> Iterator[HostileServer]:
    with HostileServer() as srv:
        yield srv


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def _fetch(url: str, limits: FetchLimits, allow_private: bool | None, **kw: Any) -> FetchResponse:
    async with make_client(limits) as client:
        return await Fetcher(client, limits, allow_private=allow_private).fetch(url, **kw)


def fetch(
    url: str, *, limits: FetchLimits = LIMITS, allow_private: bool | None = True, **kw: Any
) -> FetchResponse:
    return run(_fetch(url, limits, allow_private, **kw))


def fetch_error(url: str, expected: type[FetchError] = FetchError, **kw: Any) -> FetchError:
    with pytest.raises(expected) as info:
        fetch(url, **kw)
    return info.value


DEADLINE_CUT = f"timed out: no complete response within {LIMITS.request_deadline:g} s"


def assert_client_left(server: HostileServer, path: str, before: int) -> None:
    """The server saw the client hang up midway: the fetch let go of the connection
    (the server notices on its next write, a fraction of a second later)."""
    assert server.wait_for(lambda: server.left(path) > before), f"the client kept {path} open"


def max_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


# ------------------------------------------------------------------ validators


def test_first_fetch_returns_body_and_validators(server: HostileServer) -> None:
    response = fetch(server.url("/feed"))
    assert response.status == 200
    assert not response.not_modified
    assert response.body == rss("Validated feed")
    assert response.etag == ETAG
    assert response.last_modified == LAST_MODIFIED
    assert response.permanent_url is None
    assert response.final_url == response.url == server.url("/feed")
    sent = server.last_headers("/feed")
    assert "if-none-match" not in sent
    assert "if-modified-since" not in sent
    assert sent["user-agent"].startswith("feedcast/")


def test_conditional_get_sends_validators_and_returns_not_modified(server: HostileServer) -> None:
    response = fetch(server.url("/feed"), etag=ETAG, last_modified=LAST_MODIFIED)
    assert response.status == 304
    assert response.not_modified
    assert response.body == b""
    assert response.sent_etag == ETAG
    assert response.sent_last_modified == LAST_MODIFIED
    assert response.etag == ETAG
    sent = server.last_headers("/feed")
    assert sent["if-none-match"] == ETAG
    assert sent["if-modified-since"] == LAST_MODIFIED


def test_last_modified_alone_is_enough_for_304(server: HostileServer) -> None:
    response = fetch(server.url("/feed"), last_modified=LAST_MODIFIED)
    assert response.not_modified
    assert "if-none-match" not in server.last_headers("/feed")


def test_stale_etag_gets_the_full_body(server: HostileServer) -> None:
    response = fetch(server.url("/feed"), etag='"old"')
    assert response.status == 200
    assert response.body == rss("Validated feed")


def test_server_without_validators(server: HostileServer) -> None:
    response = fetch(server.url("/novalidators"), etag='"whatever"', last_modified=LAST_MODIFIED)
    assert response.status == 200
    assert response.etag is None
    assert response.last_modified is None
    assert response.body == rss("No validators")
    assert server.last_headers("/novalidators")["if-none-match"] == '"whatever"'


# ------------------------------------------------------------------- redirects


def test_permanent_chain_sets_permanent_url(server: HostileServer) -> None:
    response = fetch(server.url("/perm/a"))  # 301 -> 308 -> 301 (relative) -> /feed
    assert response.status == 200
    assert response.url == server.url("/perm/a")
    assert response.final_url == server.url("/feed")
    assert response.permanent_url == server.url("/feed")


@pytest.mark.parametrize("start", ["/mixed/a", "/templast/a"])
def test_any_temporary_hop_clears_permanent_url(server: HostileServer, start: str) -> None:
    response = fetch(server.url(start))
    assert response.status == 200
    assert response.final_url == server.url("/feed")
    assert response.permanent_url is None


def test_validators_survive_redirects(server: HostileServer) -> None:
    response = fetch(server.url("/perm/a"), etag=ETAG)
    assert response.not_modified
    assert response.permanent_url == server.url("/feed")
    assert server.last_headers("/feed")["if-none-match"] == ETAG


@pytest.mark.parametrize("start", ["/loop/a", "/self"])
def test_redirect_loop_is_refused(server: HostileServer, start: str) -> None:
    before = server.count("/loop/a") + server.count("/loop/b") + server.count("/self")
    with pytest.raises(FetchError, match="too many redirects"):
        fetch(server.url(start))
    after = server.count("/loop/a") + server.count("/loop/b") + server.count("/self")
    assert after - before == LIMITS.max_redirects + 1


def test_redirect_limit_is_configurable(server: HostileServer) -> None:
    strict = FetchLimits(max_bytes=MB, read_timeout=0.5, request_deadline=1.5, max_redirects=2)
    with pytest.raises(FetchError, match="too many redirects"):
        fetch(server.url("/perm/a"), limits=strict)  # needs 3 redirects
    assert fetch(server.url("/perm/b"), limits=strict).status == 200  # needs 2


@pytest.mark.parametrize("path", ["/to-ftp", "/to-file", "/to-javascript"])
def test_redirect_to_non_http_scheme_is_refused(server: HostileServer, path: str) -> None:
    error = fetch_error(server.url(path))
    assert "scheme" in str(error) or "invalid URL" in str(error)
    assert not isinstance(error, HttpStatus)


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/feed.xml", "file:///etc/passwd", "gopher://127.0.0.1:70/"])
def test_non_http_scheme_is_refused(url: str) -> None:
    with pytest.raises(FetchError, match="scheme"):
        fetch(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:99999/feed",
        "http://[::1/feed",
        "http://exa mple.com/feed",
        "http:///feed",
        "feed.xml",
    ],
)
@pytest.mark.parametrize("allow_private", [True, False])
def test_malformed_url_is_a_fetch_error(url: str, allow_private: bool) -> None:
    with pytest.raises(FetchError) as info:
        fetch(url, allow_private=allow_private)
    assert not isinstance(info.value, HttpStatus)


def test_redirect_without_location_is_a_status_error(server: HostileServer) -> None:
    error = fetch_error(server.url("/no-location"), HttpStatus)
    assert error.status == 301


# ---------------------------------------------------------------- status codes


def test_410_is_gone(server: HostileServer) -> None:
    error = fetch_error(server.url("/gone"), Gone)
    assert error.status == 410


def test_429_with_retry_after_seconds(server: HostileServer) -> None:
    error = fetch_error(server.url("/429-seconds"), RateLimited)
    assert isinstance(error, RateLimited)
    assert error.status == 429
    assert error.retry_after == 120


def test_429_with_retry_after_http_date(server: HostileServer) -> None:
    error = fetch_error(server.url("/429-date"), RateLimited)
    assert isinstance(error, RateLimited)
    assert error.retry_after is not None
    assert 3500 < error.retry_after <= 3600


def test_429_without_retry_after_is_still_rate_limited(server: HostileServer) -> None:
    error = fetch_error(server.url("/429-bare"), RateLimited)
    assert isinstance(error, RateLimited)
    assert error.retry_after is None


def test_503_with_retry_after_is_rate_limited(server: HostileServer) -> None:
    error = fetch_error(server.url("/503-retry"), RateLimited)
    assert isinstance(error, RateLimited)
    assert error.status == 503
    assert error.retry_after == 30


def test_503_without_retry_after_is_a_plain_status_error(server: HostileServer) -> None:
    error = fetch_error(server.url("/503"), HttpStatus)
    assert error.status == 503


@pytest.mark.parametrize(("path", "status"), [("/500", 500), ("/404", 404), ("/nowhere", 404)])
def test_other_statuses_are_http_status(server: HostileServer, path: str, status: int) -> None:
    error = fetch_error(server.url(path), HttpStatus)
    assert error.status == status
    assert str(status) in str(error)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("soon", None),
        ("-5", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: retry now
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_date_without_zone_is_utc() -> None:
    from email.utils import formatdate

    now = 1_800_000_000.0
    when = formatdate(now + 600, usegmt=True).replace("GMT", "-0000")
    assert parse_retry_after(when, now=now) == 600
    assert parse_retry_after(formatdate(now + 600, usegmt=True), now=now) == 600
    assert parse_retry_after(formatdate(now - 5, usegmt=True), now=now) == 0.0  # in the past: now


# ------------------------------------------------------------ slow and silent


# The drips never end and send a byte every 0.2 s (under the 0.5 s read timeout): only
# the request deadline can end them, so the error must be the deadline's. How close to
# the deadline the cut comes is measured in bench/speed.py, not asserted here.


def test_slow_drip_is_cut_at_the_deadline(server: HostileServer) -> None:
    before = server.left("/drip")
    error = fetch_error(server.url("/drip"))
    assert str(error) == DEADLINE_CUT
    assert_client_left(server, "/drip", before)


def test_slow_drip_of_headers_is_cut_at_the_deadline(server: HostileServer) -> None:
    before = server.left("/drip-headers")
    error = fetch_error(server.url("/drip-headers"))
    assert str(error) == DEADLINE_CUT
    assert_client_left(server, "/drip-headers", before)


def test_server_that_never_answers(server: HostileServer) -> None:
    error = fetch_error(server.url("/hang"))
    assert str(error) in {"timed out waiting for the server", DEADLINE_CUT}


def test_deadline_covers_the_whole_redirect_chain(server: HostileServer) -> None:
    # 5 hops of at least 0.4 s each + the feed: every hop is fine, the chain takes 2.4 s
    before = server.count("/slow-redirect/0")
    error = fetch_error(server.url("/slow-redirect/5"))
    assert str(error) == DEADLINE_CUT
    assert server.count("/slow-redirect/0") == before  # cut before the chain's end


# ------------------------------------------------------------------ big bodies


def test_oversized_with_content_length(server: HostileServer) -> None:
    error = fetch_error(server.url("/big"), TooLarge)
    # refused on the declared length, before reading the body
    assert str(error) == "body of 2,097,152 bytes is over the 1,048,576 byte limit"


@pytest.mark.parametrize("path", ["/big-chunked", "/big-eof"])
def test_oversized_without_content_length(server: HostileServer, path: str) -> None:
    before = len(server.sent(path))
    error = fetch_error(server.url(path), TooLarge)
    assert str(error) == "body is over the 1,048,576 byte limit"
    # the client stopped reading and hung up: the endless body ended far short of its cap
    assert server.wait_for(lambda: len(server.sent(path)) > before)
    assert server.left(path) > 0
    assert server.sent(path)[-1] < ENDLESS_CAP // 4


def test_body_longer_than_content_length_is_cut_at_the_declared_length(server: HostileServer) -> None:
    response = fetch(server.url("/big-lying"))
    assert response.status == 200
    assert response.body == b"y" * 500


def test_truncated_body_is_an_error_not_a_short_document(server: HostileServer) -> None:
    error = fetch_error(server.url("/truncated"))
    assert not isinstance(error, HttpStatus)
    assert str(error) != DEADLINE_CUT  # the short body itself, not a wait for the rest


def test_endless_headers_are_refused(server: HostileServer) -> None:
    error = fetch_error(server.url("/header-bomb"))
    assert str(error).startswith("connection failed: RemoteProtocolError")  # not a wait for the end


def traced_peak(call: Callable[[], object]) -> int:
    """Peak Python allocation (bytes, all threads) while ``call`` runs."""
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("path", ["/gzip-bomb", "/gzip-bomb-2"])
def test_gzip_bomb_is_too_large_and_memory_stays_bounded(server: HostileServer, path: str) -> None:
    gzip_bomb(1), gzip_bomb(2)  # the server's copies are built before measuring
    rss_before = max_rss_bytes()
    error = fetch_error(server.url(path), TooLarge)
    assert "decompression" in str(error)

    def again() -> None:
        with pytest.raises(TooLarge):
            fetch(server.url(path))

    peak = traced_peak(again)
    assert peak < 150 * MB, f"peak traced memory {peak / MB:.0f} MB"
    assert peak < 20 * MB, f"decoding is not streamed: peak {peak / MB:.0f} MB for a 1 MB limit"
    assert max_rss_bytes() - rss_before < 150 * MB


def test_bomb_is_small_on_the_wire() -> None:
    assert len(gzip_bomb(1)) < 300_000
    assert len(gzip_bomb(2)) < 5_000


@pytest.mark.parametrize(
    ("path", "title"), [("/gzip-feed", "Gzipped feed"), ("/deflate-feed", "Deflated feed")]
)
def test_compressed_feeds_are_decoded(server: HostileServer, path: str, title: str) -> None:
    response = fetch(server.url(path))
    assert response.body == rss(title)
    assert "gzip" in server.last_headers(path)["accept-encoding"]


class Chunks(httpx.AsyncByteStream):
    """A streamed mock body, delivered in the given pieces."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _raw_deflate(data: bytes) -> bytes:
    comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return comp.compress(data) + comp.flush()


def mock_get(
    body: httpx.AsyncByteStream | bytes, encoding: str | None, *, split: bool = False
) -> FetchResponse:
    headers = {"Content-Type": "application/rss+xml"}
    if encoding is not None:
        headers["Content-Encoding"] = encoding
    if split and isinstance(body, bytes):
        body = Chunks(*(body[i : i + 1] for i in range(len(body))))

    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, bytes):
            return httpx.Response(200, headers=headers, content=body)
        return httpx.Response(200, headers=headers, stream=body)

    async def go() -> FetchResponse:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await Fetcher(client, LIMITS, allow_private=True).fetch("http://feeds.example.com/feed")

    return run(go())


FEED = rss("Coded", items=20)


@pytest.mark.parametrize(
    ("wire", "encoding"),
    [
        (_gz(FEED), "gzip"),
        (_gz(FEED), "x-gzip"),
        (zlib.compress(FEED), "deflate"),
        (_raw_deflate(FEED), "deflate"),  # "deflate" without the zlib header, as IIS sends it
        (zlib.compress(_gz(FEED)), "gzip, deflate"),  # applied in order: undone in reverse
        (_gz(_gz(FEED)), "gzip,gzip"),
        (_gz(FEED[:100]) + _gz(FEED[100:]), "gzip"),  # two gzip members
        (FEED, "identity"),
        (FEED, "x-custom-nonsense"),  # unknown tokens are ignored, as httpx does
        (FEED, None),
    ],
)
@pytest.mark.parametrize("split", [False, True], ids=["whole", "bytewise"])
def test_content_codings_are_decoded(wire: bytes, encoding: str | None, split: bool) -> None:
    response = mock_get(Chunks(wire) if not split else wire, encoding, split=split)
    assert response.body == FEED


@pytest.mark.parametrize(("encoding", "match"), [("br", "unsupported"), ("gzip, " * 4 + "gzip", "too many")])
def test_unusable_content_codings_are_fetch_errors(encoding: str, match: str) -> None:
    with pytest.raises(FetchError, match=match):
        mock_get(Chunks(b"whatever"), encoding)


def test_mock_transport_bodies_are_size_limited_too() -> None:
    assert mock_get(FEED, None).body == FEED  # an already-read body (content=...)
    with pytest.raises(TooLarge):
        mock_get(b"x" * (LIMITS.max_bytes + 1), None)
    with pytest.raises(TooLarge, match="decompression"):
        mock_get(Chunks(gzip_bomb(1)), "gzip")


def test_corrupt_gzip_is_a_fetch_error(server: HostileServer) -> None:
    error = fetch_error(server.url("/bad-gzip"))
    assert "decode" in str(error)


def test_html_instead_of_a_feed_is_returned_as_is(server: HostileServer) -> None:
    response = fetch(server.url("/html"))
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.body.startswith(b"<!doctype html>")


# ------------------------------------------------------------------------- SSRF


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/feed",
        "http://localhost/feed",
        "http://LOCALHOST./feed",
        "http://10.0.0.1/feed",
        "http://172.16.5.4/feed",
        "http://192.168.1.1/feed",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/feed",  # carrier-grade NAT
        "http://0.0.0.0/feed",
        "http://127.1/feed",
        "http://2130706433/feed",  # 127.0.0.1 as an integer
        "http://[::1]/feed",
        "http://[::ffff:127.0.0.1]/feed",
        "http://[fd00::1]/feed",
        "http://[fe80::1]/feed",
        "https://[::]/feed",
    ],
)
def test_private_addresses_are_blocked(url: str) -> None:
    with pytest.raises(BlockedAddress, match=ENV):
        fetch(url, allow_private=False)


def test_local_server_is_blocked_and_never_contacted(server: HostileServer) -> None:
    before = server.count("/novalidators")
    for host in ("127.0.0.1", "localhost", "[::1]"):
        with pytest.raises(BlockedAddress, match=ENV):
            fetch(f"http://{host}:{server.port}/novalidators", allow_private=False)
    assert server.count("/novalidators") == before


def test_env_var_controls_the_default(server: HostileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "0")
    with pytest.raises(BlockedAddress, match=ENV):
        fetch(server.url("/novalidators"), allow_private=None)
    monkeypatch.setenv(ENV, "1")
    assert fetch(server.url("/novalidators"), allow_private=None).status == 200


PUBLIC = {"feeds.example.com": "93.184.216.34", "cdn.example.net": "2606:2800:220:1:248:1893:25c8:1946"}


async def fake_resolve(host: str, port: int) -> Sequence[str]:
    table = {**PUBLIC, "intranet.example.com": "10.1.2.3", "metadata.example.com": "169.254.169.254"}
    if host not in table:
        raise OSError(f"no such host {host}")
    return [table[host]]


class Recorder:
    """A MockTransport handler: public hosts redirect or answer, the rest is recorded."""

    def __init__(self, redirects: dict[str, str]) -> None:
        self.redirects = redirects
        self.seen: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        self.seen.append(url)
        if url in self.redirects:
            return httpx.Response(302, headers={"Location": self.redirects[url]})
        return httpx.Response(200, content=rss("Public"), headers={"Content-Type": "application/rss+xml"})


async def _mock_fetch(url: str, recorder: Recorder, resolve: Resolver | None = fake_resolve) -> FetchResponse:
    async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as client:
        fetcher = Fetcher(client, LIMITS, allow_private=False, resolve=resolve)
        return await fetcher.fetch(url)


def test_public_host_is_allowed() -> None:
    recorder = Recorder({"http://feeds.example.com/feed": "https://cdn.example.net/feed.xml"})
    response = run(_mock_fetch("http://feeds.example.com/feed", recorder))
    assert response.status == 200
    assert response.final_url == "https://cdn.example.net/feed.xml"
    assert recorder.seen == ["http://feeds.example.com/feed", "https://cdn.example.net/feed.xml"]


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:8080/admin",
        "http://localhost/admin",
        "http://[::1]/admin",
        "http://169.254.169.254/latest/meta-data/",
        "http://intranet.example.com/secret",  # a public-looking name that resolves privately
        "http://metadata.example.com/",
    ],
)
def test_redirect_from_public_host_to_private_address_is_blocked(target: str) -> None:
    recorder = Recorder({"http://feeds.example.com/feed": target})
    with pytest.raises(BlockedAddress, match=ENV):
        run(_mock_fetch("http://feeds.example.com/feed", recorder))
    assert recorder.seen == ["http://feeds.example.com/feed"]  # the private target was never requested


def test_host_resolving_to_a_private_address_is_blocked() -> None:
    recorder = Recorder({})
    with pytest.raises(BlockedAddress, match=ENV):
        run(_mock_fetch("http://intranet.example.com/feed", recorder))
    assert recorder.seen == []


def test_unresolvable_host_is_a_fetch_error() -> None:
    recorder = Recorder({})
    with pytest.raises(FetchError, match="cannot resolve"):
        run(_mock_fetch("http://nowhere.example.org/feed", recorder))
    assert recorder.seen == []


def test_dns_rebinding_is_caught_after_connecting(server: HostileServer) -> None:
    """The guard's lookup says "public", the connection lands on loopback anyway
    (a rebinding DNS answer): the response must not be used."""

    async def lying_resolve(host: str, port: int) -> Sequence[str]:
        return ["93.184.216.34"]

    async def go() -> FetchResponse:
        async with make_client(LIMITS) as client:
            fetcher = Fetcher(client, LIMITS, allow_private=False, resolve=lying_resolve)
            return await fetcher.fetch(f"http://localhost:{server.port}/novalidators")

    with pytest.raises(BlockedAddress, match=ENV):
        run(go())


# ------------------------------------------------------------- through polling


async def _poll(url: str, allow_private: bool = True, **source: Any) -> PollOutcome:
    from sources.poll import poll_source

    async with make_client(LIMITS) as client:
        fetcher = Fetcher(client, LIMITS, allow_private=allow_private)
        return await poll_source(fetcher, Source(id=1, name="x", url=url, **source))


def poll(url: str, allow_private: bool = True, **source: Any) -> PollOutcome:
    return run(_poll(url, allow_private, **source))


def test_poll_ok_then_not_modified(server: HostileServer) -> None:
    first = poll(server.url("/feed"))
    assert first.outcome == "ok", first.error
    assert first.items is not None
    assert [i.title for i in first.items] == ["item 1", "item 2", "item 3"]
    assert first.etag == ETAG
    second = poll(server.url("/feed"), etag=first.etag, last_modified=first.last_modified)
    assert second.outcome == "not_modified"
    assert second.sent_etag == ETAG


def test_poll_permanent_redirect_reports_new_url(server: HostileServer) -> None:
    outcome = poll(server.url("/perm/a"))
    assert outcome.outcome == "ok", outcome.error
    assert outcome.new_url == server.url("/feed")


@pytest.mark.parametrize(
    ("path", "outcome", "status", "retry_after"),
    [
        ("/gone", "gone", 410, None),
        ("/429-seconds", "rate_limited", 429, 120.0),
        ("/503-retry", "rate_limited", 503, 30.0),
        ("/500", "error", 500, None),
        ("/loop/a", "error", None, None),
        ("/to-file", "error", None, None),
        ("/big-chunked", "error", None, None),
        ("/gzip-bomb-2", "error", None, None),
        ("/truncated", "error", None, None),
        ("/hang", "error", None, None),
    ],
)
def test_poll_turns_fetch_errors_into_outcomes(
    server: HostileServer, path: str, outcome: str, status: int | None, retry_after: float | None
) -> None:
    result = poll(server.url(path))
    assert result.outcome == outcome
    assert not result.succeeded
    assert result.status == status
    assert result.retry_after == retry_after
    assert result.error
    assert result.items is None


def test_poll_blocked_address(server: HostileServer) -> None:
    result = poll(server.url("/feed"), allow_private=False)
    assert result.outcome == "blocked"
    assert result.error is not None
    assert ENV in result.error


def test_poll_many_deadline_returns_fast_sources_and_marks_the_slow_one(server: HostileServer) -> None:
    from sources.poll import poll_many

    sources = [Source(id=i, name=n, url=server.url(f"/fast/{n}")) for i, n in enumerate("abc", 1)]
    sources.append(Source(id=4, name="drip", url=server.url("/drip")))

    async def go() -> list[PollOutcome]:
        async with make_client(LIMITS) as client:
            fetcher = Fetcher(client, LIMITS, allow_private=True)
            return [o async for o in poll_many(fetcher, sources, deadline=1.0)]

    outcomes = run(go())
    by_id = {o.source_id: o for o in outcomes}
    assert len(outcomes) == 4
    assert [by_id[i].outcome for i in (1, 2, 3)] == ["ok", "ok", "ok"]
    assert by_id[1].items is not None
    assert by_id[1].items[0].title == "a 1"
    # the poll's 1 s deadline ended it, not the drip's 1.5 s request deadline ("error")
    assert by_id[4].outcome == "deadline"
    assert by_id[4].error == "poll deadline of 1 s reached before this source finished"


def test_billion_laughs_feed_is_harmless_end_to_end(server: HostileServer) -> None:
    assert b"<!ENTITY lol9" in billion_laughs_rss()
    rss_before = max_rss_bytes()
    outcome = poll(server.url("/laughs"))
    assert outcome.outcome == "ok", outcome.error
    assert outcome.items is not None
    texts = [outcome.title or ""] + [i.title or "" for i in outcome.items]
    assert all(len(t) < 1000 for t in texts), "entities were expanded"
    assert "plain" in [i.title for i in outcome.items]
    peak = traced_peak(lambda: poll(server.url("/laughs")))
    assert peak < 100 * MB, f"peak traced memory {peak / MB:.0f} MB"
    assert max_rss_bytes() - rss_before < 150 * MB


# -------------------------------------------------------------- per-host concurrency


def test_one_host_gets_at_most_per_host_connections_and_others_are_not_held_up() -> None:
    """Eight sources on one host, two on another, polled at once: the busy host never
    has more than ``per_host`` requests open (its server holds each until released),
    and the other host's sources finish while the busy host's slots are all taken."""
    from sources.poll import poll_many

    limits = FetchLimits(max_bytes=MB, read_timeout=90, request_deadline=120, per_host=3)
    with HostileServer() as busy, HostileServer() as other:
        sources = [Source(id=i, name=f"b{i}", url=busy.url(f"/held/b{i}")) for i in range(8)]
        sources += [Source(id=10 + i, name=f"o{i}", url=other.url(f"/fast/o{i}")) for i in range(2)]

        async def go() -> tuple[list[PollOutcome], int]:
            held_at_once = 0
            outcomes: list[PollOutcome] = []
            async with make_client(limits) as client:
                fetcher = Fetcher(client, limits, allow_private=True)
                async for outcome in poll_many(fetcher, sources):
                    outcomes.append(outcome)
                    if len(outcomes) == 2:  # the other host's, while the busy host is held
                        assert await asyncio.to_thread(busy.wait_for, lambda: busy.held >= limits.per_host)
                        await asyncio.sleep(0.3)  # room for a fourth to show up, were the limit not kept
                        held_at_once = busy.max_held
                        busy.release()
            return outcomes, held_at_once

        outcomes, held_at_once = run(go())
    assert sorted(o.source_id for o in outcomes[:2]) == [10, 11]
    assert held_at_once == limits.per_host
    assert busy.max_held == limits.per_host  # never more, before or after the release
    assert sorted(o.source_id for o in outcomes) == [*range(8), 10, 11]
    assert all(o.outcome == "ok" for o in outcomes), [o.error for o in outcomes]
