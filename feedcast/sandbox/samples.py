"""A local HTTP server for rehearsals: serves sample sources on loopback with real
validators (ETag, Last-Modified, 304) and gzip, so the demo, tests and benchmarks
exercise the same fetch path as production. The provider emulators join it later.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import sys
import threading
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qsl, urlencode, urlsplit

__all__ = ["Route", "SampleServer", "sample_text"]


@dataclass(frozen=True, slots=True)
class Route:
    body: bytes
    content_type: str
    etag: str
    last_modified: str
    status: int = 200
    validators: bool = True  # False: a server that sends neither ETag nor Last-Modified


log = logging.getLogger(__name__)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hung up mid-answer is normal here (a fetcher that gave up,
        read only the headers, or met its size limit); anything else is logged, not
        printed over the command's own output."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            return
        log.warning("sample server: request from %s failed", client_address, exc_info=error)


def _route_key(target: str) -> str:
    """Path plus sorted query, so ``?page=2&limit=5`` and ``?limit=5&page=2`` are one route."""
    parts = urlsplit(target)
    query = urlencode(sorted(parse_qsl(parts.query, keep_blank_values=True)))
    return parts.path + ("?" + query if query else "")


def sample_text(name: str) -> str:
    """A bundled sample file (feedcast/samples/NAME)."""
    return resources.files("feedcast").joinpath("samples", name).read_text(encoding="utf-8")


class SampleServer:
    """``with SampleServer() as server: server.put("/feed.xml", body, "application/rss+xml")``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._routes: dict[str, Route] = {}
        self._lock = threading.Lock()
        self.requests = 0
        self.not_modified = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # silence
                return

            def do_GET(self) -> None:
                server._handle(self)

        self._httpd = _Server((host, port), Handler)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def put(
        self, path: str, body: bytes | str, content_type: str, *, status: int = 200, validators: bool = True
    ) -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        with self._lock:
            self._routes[_route_key(path)] = Route(
                body=data,
                content_type=content_type,
                etag='"' + hashlib.blake2b(data, digest_size=8).hexdigest() + '"',
                last_modified=formatdate(usegmt=True),
                status=status,
                validators=validators,
            )

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.requests += 1
            route = self._routes.get(_route_key(request.path))
        if route is None:
            self._send(request, 404, b"not found", "text/plain", {})
            return
        headers: dict[str, str] = {}
        if route.validators:
            headers = {"ETag": route.etag, "Last-Modified": route.last_modified}
            if request.headers.get("If-None-Match") == route.etag:
                with self._lock:
                    self.not_modified += 1
                self._send(request, 304, b"", route.content_type, headers)
                return
        body = route.body
        if "gzip" in (request.headers.get("Accept-Encoding") or "") and len(body) > 512:
            body = gzip.compress(body, compresslevel=5)
            headers["Content-Encoding"] = "gzip"
        self._send(request, route.status, body, route.content_type, headers)

    @staticmethod
    def _send(
        request: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str, headers: dict[str, str]
    ) -> None:
        request.send_response(status)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            request.send_header(key, value)
        request.end_headers()
        if status != 304:
            request.wfile.write(body)

    def start(self) -> SampleServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="feedcast-sandbox", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> SampleServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
