"""Serve an ASGI app (Starlette) with uvicorn on a background thread, on loopback.

The emulators run in the caller's process for tests and the demo
(``with AsgiServer(app) as server: server.base_url``) and in their own process under
``feedcast sandbox`` (benchmarks use that, so the emulator does not share the GIL with
the sender it measures).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import uvicorn

__all__ = ["AsgiServer"]


class AsgiServer:
    """``with AsgiServer(app) as server: httpx.get(server.base_url + "/...")``."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, *, name: str = "emulator") -> None:
        self.app = app
        self.name = name
        # proto=IPPROTO_TCP: asyncio then sets TCP_NODELAY on accepted connections (else
        # each keep-alive answer waits ~40 ms for a delayed ACK)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            http="h11",  # as before httptools was installed (for feedcast web): emulators unchanged
            timeout_keep_alive=30,
            backlog=2048,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> AsgiServer:
        def run() -> None:
            asyncio.run(self._server.serve(sockets=[self._socket]))

        self._thread = threading.Thread(target=run, name=f"feedcast-{self.name}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the {self.name} emulator did not start on {self.base_url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> AsgiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
