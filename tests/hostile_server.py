"""A real HTTP server on 127.0.0.1 that misbehaves on purpose, for the fetch tests.

Use it as a context manager (or through a pytest fixture)::

    with HostileServer() as server:
        url = server.url("/feed")
        ...
        assert server.count("/feed") == 2

Every route is scripted below (see ``ROUTES``): validators and 304, redirect chains
and loops, 410 / 429 / 503 / 500, a slow drip, a server that never answers,
oversized bodies with and without Content-Length, gzip bombs, an HTML page, a
billion-laughs feed and a truncated body, and ``/held/<name>`` requests answered only
when the test releases them. Requests are counted per path and their headers kept, so
tests can check what the client sent; the server also counts the requests whose client
went away midway (``left``), the bytes each endless answer wrote (``sent``) and the most
``/held/`` requests open at once (``max_held``): evidence of what a client did that does
not depend on how fast the machine is.

Endless routes (drip, hang, endless bodies) stop when the client goes away or when
the server is closed, so leaving the ``with`` block never waits on them.
"""

from __future__ import annotations

import functools
import http.server
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from email.utils import formatdate, parsedate_to_datetime
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "BOMB_SIZE",
    "ETAG",
    "LAST_MODIFIED",
    "OVERSIZE",
    "HostileServer",
    "billion_laughs_rss",
    "gzip_bomb",
    "rss",
]

ETAG = '"feed-v1"'
LAST_MODIFIED = "Wed, 21 Oct 2026 07:28:00 GMT"
OVERSIZE = 2 * 1024 * 1024  # bigger than the 1 MB limit the tests use
BOMB_SIZE = 200 * 1024 * 1024  # what the gzip bombs inflate to
DRIP_INTERVAL = 0.2
ENDLESS_CAP = 64 * 1024 * 1024  # endless bodies stop here even if the client keeps reading
HELD_CAP = 60.0  # a held request is answered after this long even if the test never releases it


def rss(title: str = "Hostile feed", items: int = 3, tag: str = "item") -> bytes:
    """A small valid RSS 2.0 document."""
    entries = "".join(
        f"<item><title>{tag} {i}</title><link>http://example.com/{tag}/{i}</link>"
        f"<guid>{tag}-{i}</guid><description>number {i}</description></item>"
        for i in range(1, items + 1)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
        f"<title>{title}</title><link>http://example.com/</link><description>test</description>"
        f"{entries}</channel></rss>\n"
    ).encode()


def billion_laughs_rss() -> bytes:
    """RSS whose internal DTD subset expands ``&lol9;`` to 10**9 "lol"s (3 GB)."""
    decls = ['  <!ENTITY lol "lol">']
    for level in range(1, 10):
        prev = "lol" if level == 1 else f"lol{level - 1}"
        decls.append(f'  <!ENTITY lol{level} "{("&" + prev + ";") * 10}">')
    subset = "\n".join(decls)
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n{subset}\n]>\n'
        '<rss version="2.0"><channel><title>&lol9;</title><link>http://example.com/</link>'
        "<description>laughs</description>"
        "<item><title>laugh &lol9;</title><link>http://example.com/laugh</link><guid>laugh-1</guid></item>"
        "<item><title>plain</title><link>http://example.com/plain</link><guid>plain-1</guid></item>"
        "</channel></rss>\n"
    ).encode()


def _gzip(chunks: Iterable[bytes]) -> bytes:
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: gzip container
    parts = [comp.compress(chunk) for chunk in chunks]
    parts.append(comp.flush())
    return b"".join(parts)


@functools.cache
def gzip_bomb(layers: int = 1) -> bytes:
    """``BOMB_SIZE`` zero bytes, gzip'd ``layers`` times, built streaming (1 MB at a time).

    One layer is ~200 KB on the wire, two layers ~500 bytes.
    """
    block = bytes(1024 * 1024)
    body = _gzip(block for _ in range(BOMB_SIZE // len(block)))
    for _ in range(layers - 1):
        body = _gzip([body])
    return body


HTML_PAGE = (
    b"<!doctype html><html><head><title>Not a feed</title></head>"
    b"<body><h1>Welcome</h1><p>This is a web page, not a feed.</p></body></html>"
)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        owner = self.server.owner
        owner._record(path, {k.lower(): v for k, v in self.headers.items()})
        route = owner.route_for(path)
        try:
            if route is None:
                self._send(404, b"not found", "text/plain")
            else:
                route(self, path, query)
        except (TimeoutError, BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True  # the client gave up: exactly what the tests want
            owner._client_left(path)

    # ------------------------------------------------------------------ helpers

    @property
    def stopping(self) -> threading.Event:
        return self.server.owner.stopping

    def _send(
        self,
        status: int,
        body: bytes = b"",
        content_type: str | None = "application/rss+xml",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, status: int, location: str) -> None:
        self._send(status, b"", None, {"Location": location})

    def _wait_forever(self) -> None:
        """Hold the connection until the server closes (the client may leave first)."""
        self.close_connection = True
        self.stopping.wait()

    def _endless(self, chunked: bool) -> None:
        """200 with a body that never ends (capped at ``ENDLESS_CAP``)."""
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")  # body ends when the connection does
        self.end_headers()
        chunk = b"<!-- padding -->" * 4096  # 64 KB
        sent = 0
        try:
            while sent < ENDLESS_CAP and not self.stopping.is_set():
                if chunked:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                else:
                    self.wfile.write(chunk)
                sent += len(chunk)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        finally:
            self.server.owner._note_sent(urlsplit(self.path).path, sent)


Route = Callable[[_Handler, str, dict[str, str]], None]


# ---------------------------------------------------------------------- routes


def _feed(h: _Handler, path: str, q: dict[str, str]) -> None:
    """ETag + Last-Modified; honours If-None-Match (first) and If-Modified-Since."""
    validators = {"ETag": ETAG, "Last-Modified": LAST_MODIFIED}
    inm = h.headers.get("If-None-Match")
    ims = h.headers.get("If-Modified-Since")
    if inm is not None:
        fresh = ETAG in [t.strip() for t in inm.split(",")] or inm.strip() == "*"
    elif ims is not None:
        try:
            fresh = parsedate_to_datetime(ims) >= parsedate_to_datetime(LAST_MODIFIED)
        except (TypeError, ValueError):
            fresh = False
    else:
        fresh = False
    if fresh:
        h._send(304, b"", None, validators)
    else:
        h._send(200, rss("Validated feed"), headers=validators)


def _novalidators(h: _Handler, path: str, q: dict[str, str]) -> None:
    h._send(200, rss("No validators"))


def _redirect_table(table: dict[str, tuple[int, str]]) -> Route:
    def route(h: _Handler, path: str, q: dict[str, str]) -> None:
        status, location = table[path]
        h._redirect(status, location)

    return route


_REDIRECTS: dict[str, tuple[int, str]] = {
    # all permanent: 301 -> 308 -> (relative) 301 -> /feed
    "/perm/a": (301, "/perm/b"),
    "/perm/b": (308, "/perm/c"),
    "/perm/c": (301, "../feed"),
    # a temporary hop in the middle: 301 -> 302 -> 308 -> /feed
    "/mixed/a": (301, "/mixed/b"),
    "/mixed/b": (302, "/mixed/c"),
    "/mixed/c": (308, "/feed"),
    # temporary last: 308 -> 307 -> /feed
    "/templast/a": (308, "/templast/b"),
    "/templast/b": (307, "/feed"),
    "/loop/a": (302, "/loop/b"),
    "/loop/b": (301, "/loop/a"),
    "/self": (301, "/self"),
    "/to-ftp": (301, "ftp://127.0.0.1/feed.xml"),
    "/to-file": (302, "file:///etc/passwd"),
    "/to-javascript": (302, "javascript:alert(1)"),
}


def _redirect_to(h: _Handler, path: str, q: dict[str, str]) -> None:
    """``/redirect?to=<url>&status=301``"""
    h._redirect(int(q.get("status", "302")), q["to"])


def _no_location(h: _Handler, path: str, q: dict[str, str]) -> None:
    h._send(301, b"moved, but where?", "text/plain")


def _status(status: int, headers: dict[str, str] | None = None) -> Route:
    def route(h: _Handler, path: str, q: dict[str, str]) -> None:
        h._send(status, f"status {status}".encode(), "text/plain", headers)

    return route


def _retry_after_date(h: _Handler, path: str, q: dict[str, str]) -> None:
    when = formatdate(time.time() + 3600, usegmt=True)
    h._send(429, b"slow down", "text/plain", {"Retry-After": when})


def _drip(h: _Handler, path: str, q: dict[str, str]) -> None:
    """Headers at once, then one body byte every 0.2 s, forever."""
    h.close_connection = True
    h.send_response(200)
    h.send_header("Content-Type", "application/rss+xml")
    h.send_header("Connection", "close")
    h.end_headers()
    h.wfile.write(b"<")
    while not h.stopping.wait(DRIP_INTERVAL):
        h.wfile.write(b" ")


def _drip_headers(h: _Handler, path: str, q: dict[str, str]) -> None:
    """The status line and headers one byte every 0.2 s: a slowloris in reverse."""
    h.close_connection = True
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n" + b"X-Padding: " + b"a" * 10_000
    for byte in head:
        if h.stopping.wait(DRIP_INTERVAL):
            return
        h.wfile.write(bytes([byte]))


def _hang(h: _Handler, path: str, q: dict[str, str]) -> None:
    """Read the request, then never answer."""
    h._wait_forever()


def _big(h: _Handler, path: str, q: dict[str, str]) -> None:
    """An honest Content-Length over the limit."""
    h.close_connection = True
    h.send_response(200)
    h.send_header("Content-Type", "application/rss+xml")
    h.send_header("Content-Length", str(OVERSIZE))
    h.end_headers()
    chunk = b"x" * 65536
    for _ in range(OVERSIZE // len(chunk)):
        h.wfile.write(chunk)


def _big_chunked(h: _Handler, path: str, q: dict[str, str]) -> None:
    h._endless(chunked=True)


def _big_eof(h: _Handler, path: str, q: dict[str, str]) -> None:
    h._endless(chunked=False)


def _big_lying(h: _Handler, path: str, q: dict[str, str]) -> None:
    """Content-Length says 500 bytes, then the server keeps sending (the client must stop at 500)."""
    h.close_connection = True
    h.send_response(200)
    h.send_header("Content-Type", "application/rss+xml")
    h.send_header("Content-Length", "500")
    h.send_header("Connection", "close")
    h.end_headers()
    h.wfile.write(b"y" * OVERSIZE)


def _gzip_bomb(layers: int) -> Route:
    def route(h: _Handler, path: str, q: dict[str, str]) -> None:
        body = gzip_bomb(layers)
        h.close_connection = True
        h._send(200, body, headers={"Content-Encoding": ", ".join(["gzip"] * layers)})

    return route


def _bad_gzip(h: _Handler, path: str, q: dict[str, str]) -> None:
    h._send(200, b"\x1f\x8b\x08\x00this is not gzip at all", headers={"Content-Encoding": "gzip"})


def _gzip_feed(h: _Handler, path: str, q: dict[str, str]) -> None:
    h._send(200, _gzip([rss("Gzipped feed")]), headers={"Content-Encoding": "gzip"})


def _deflate_feed(h: _Handler, path: str, q: dict[str, str]) -> None:
    h._send(200, zlib.compress(rss("Deflated feed")), headers={"Content-Encoding": "deflate"})


def _html(h: _Handler, path: str, q: dict[str, str]) -> None:
    h._send(200, HTML_PAGE, "text/html; charset=utf-8")


def _laughs(h: _Handler, path: str, q: dict[str, str]) -> None:
    h._send(200, billion_laughs_rss())


def _truncated(h: _Handler, path: str, q: dict[str, str]) -> None:
    """Content-Length: 10000, 100 bytes sent, connection closed."""
    h.close_connection = True
    h.send_response(200)
    h.send_header("Content-Type", "application/rss+xml")
    h.send_header("Content-Length", "10000")
    h.end_headers()
    h.wfile.write(rss()[:100])


def _header_bomb(h: _Handler, path: str, q: dict[str, str]) -> None:
    """Headers that never end (capped at a few MB)."""
    h.close_connection = True
    h.wfile.write(b"HTTP/1.1 200 OK\r\n")
    line = b"X-Junk: " + b"j" * 1000 + b"\r\n"
    for _ in range(4000):
        if h.stopping.is_set():
            return
        h.wfile.write(line)


def _slow_redirect(h: _Handler, path: str, q: dict[str, str]) -> None:
    """``/slow-redirect/<n>``: wait 0.4 s (under the read timeout), then 301 to ``<n-1>``;
    ``/slow-redirect/0`` is the feed. Each hop is fine, the whole chain is slow."""
    if h.stopping.wait(0.4):
        return
    n = int(path.rsplit("/", 1)[-1])
    if n <= 0:
        h._send(200, rss("Slowly reached"))
    else:
        h._redirect(301, f"/slow-redirect/{n - 1}")


def _fast(h: _Handler, path: str, q: dict[str, str]) -> None:
    """``/fast/<name>``: a distinct small feed per name."""
    name = path.rsplit("/", 1)[-1]
    h._send(200, rss(f"Fast {name}", tag=name))


def _held(h: _Handler, path: str, q: dict[str, str]) -> None:
    """``/held/<name>``: a small feed, answered only once the test calls
    :meth:`HostileServer.release` (or after ``HELD_CAP`` s); the requests held at once
    are counted, so a test sees how many connections a client opens to one host."""
    owner = h.server.owner
    owner._hold()
    try:
        owner.released.wait(HELD_CAP)
    finally:
        owner._unhold()
    name = path.rsplit("/", 1)[-1]
    h._send(200, rss(f"Held {name}", tag=name))


ROUTES: dict[str, Route] = {
    "/feed": _feed,
    "/novalidators": _novalidators,
    **dict.fromkeys(_REDIRECTS, _redirect_table(_REDIRECTS)),
    "/redirect": _redirect_to,
    "/no-location": _no_location,
    "/gone": _status(410),
    "/429-seconds": _status(429, {"Retry-After": "120"}),
    "/429-date": _retry_after_date,
    "/429-bare": _status(429),
    "/503-retry": _status(503, {"Retry-After": "30"}),
    "/503": _status(503),
    "/500": _status(500),
    "/404": _status(404),
    "/drip": _drip,
    "/drip-headers": _drip_headers,
    "/hang": _hang,
    "/big": _big,
    "/big-chunked": _big_chunked,
    "/big-eof": _big_eof,
    "/big-lying": _big_lying,
    "/gzip-bomb": _gzip_bomb(1),
    "/gzip-bomb-2": _gzip_bomb(2),
    "/bad-gzip": _bad_gzip,
    "/gzip-feed": _gzip_feed,
    "/deflate-feed": _deflate_feed,
    "/html": _html,
    "/laughs": _laughs,
    "/truncated": _truncated,
    "/header-bomb": _header_bomb,
}
PREFIX_ROUTES: dict[str, Route] = {"/fast/": _fast, "/held/": _held, "/slow-redirect/": _slow_redirect}


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: HostileServer


class HostileServer:
    """The misbehaving server; start with ``with`` (or :meth:`start` / :meth:`close`)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._left: Counter[str] = Counter()
        self._sent: dict[str, list[int]] = {}
        self._headers: dict[str, list[dict[str, str]]] = {}
        self.released = threading.Event()  # lets the /held/ requests go
        self.held = 0  # /held/ requests waiting now
        self.max_held = 0  # the most ever waiting at once
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # --------------------------------------------------------------- lifecycle

    def start(self) -> HostileServer:
        httpd = _Server((self.host, 0), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="hostile-server", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self.stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ access

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return int(self._httpd.server_address[1])

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def route_for(self, path: str) -> Route | None:
        if path in ROUTES:
            return ROUTES[path]
        for prefix, route in PREFIX_ROUTES.items():
            if path.startswith(prefix):
                return route
        return None

    def _record(self, path: str, headers: dict[str, str]) -> None:
        with self._lock:
            self._counts[path] += 1
            self._headers.setdefault(path, []).append(headers)

    def count(self, path: str) -> int:
        """Requests received for ``path`` so far."""
        with self._lock:
            return self._counts[path]

    def _client_left(self, path: str) -> None:
        with self._lock:
            self._left[path] += 1

    def left(self, path: str) -> int:
        """Requests for ``path`` whose client went away before the answer was complete
        (the server noticed on its next write)."""
        with self._lock:
            return self._left[path]

    def _note_sent(self, path: str, size: int) -> None:
        with self._lock:
            self._sent.setdefault(path, []).append(size)

    def sent(self, path: str) -> list[int]:
        """Body bytes written for each finished request of an endless route."""
        with self._lock:
            return list(self._sent.get(path, []))

    def _hold(self) -> None:
        with self._lock:
            self.held += 1
            self.max_held = max(self.max_held, self.held)

    def _unhold(self) -> None:
        with self._lock:
            self.held -= 1

    def release(self) -> None:
        """Answer every held request, now and from now on."""
        self.released.set()

    def wait_for(self, condition: Callable[[], bool], timeout: float = 30.0) -> bool:
        """Poll ``condition`` until it holds (True) or ``timeout`` passes (False): a wait
        for something that must happen, never a measure of how fast it did."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def last_headers(self, path: str) -> dict[str, str]:
        """Headers (lower-cased names) of the last request for ``path``."""
        with self._lock:
            return dict(self._headers[path][-1])

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._left.clear()
            self._sent.clear()
            self._headers.clear()
            self.held = self.max_held = 0
        self.released.clear()
