"""What the provider emulators share: rate windows, fault injection, settings, control API.

- :class:`Window` (a sliding window, :class:`channels.ratelimit.SlidingWindow` that also
  remembers the most it ever held), :class:`FixedWindow` (a window opened by its first
  request, Discord's bucket) and :class:`TokenBucket` (bursts refilled at a steady rate);
  they are given the time, read from the emulator's ``clock`` (:mod:`feedcast.kernel.clock`:
  a ``FakeClock`` makes a burst arrive at one instant, however slow the machine);
- :class:`Faults`: ``fault_rate`` of the requests fail, ``drop_rate`` lose their
  connection, drawn from ``random.Random(seed)`` so that a seed repeats a run;
- :class:`Emulator`, the base of the HTTP emulators (Telegram, Messenger, webhooks): the
  lock, the clock, ``limits`` and the faults, :meth:`Emulator.set_options` for those
  settings (and the emulator's own switches; :class:`Configurable` adds them as the
  keywords of ``configure``), ``serve()``, and the control API's
  plumbing: :func:`control` endpoints answer a :class:`ControlError` (or a ``ValueError``
  from the Python API) with a 400 ``{"error": ...}``, the settings at
  ``/_sandbox/config``;
- :func:`drop_connection`: abort a request's TCP connection without a byte of answer.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import math
import random
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, ClassVar, TypedDict, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive

from channels.ratelimit import SlidingWindow
from feedcast.kernel.clock import SYSTEM, Clock
from feedcast.sandbox.asgi import AsgiServer

__all__ = [
    "Configurable",
    "ControlError",
    "Dropped",
    "Emulator",
    "Faults",
    "FixedWindow",
    "Part",
    "TokenBucket",
    "Window",
    "control",
    "control_body",
    "control_object",
    "drop_connection",
    "flag",
    "is_image",
    "parse_multipart",
    "uvicorn_transport",
]

# --------------------------------------------------------------------------- uploads


@dataclass(frozen=True, slots=True)
class Part:
    """A file part of a multipart request: its name, size, digest and first bytes."""

    filename: str
    size: int
    sha256: str
    head: bytes
    content_type: str = "application/octet-stream"


def parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, str] | None, dict[str, Part]]:
    """A ``multipart/form-data`` body: its plain fields and its file parts, by name
    (fields None when the body is not multipart)."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        return None, {}
    fields: dict[str, str] = {}
    files: dict[str, Part] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        raw = part.get_payload(decode=True)
        payload = raw if isinstance(raw, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            digest = hashlib.sha256(payload).hexdigest()
            files[name] = Part(filename, len(payload), digest, payload[:16], part.get_content_type())
        else:
            fields[name] = payload.decode("utf-8", "replace")
    return fields, files


_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a")


def is_image(head: bytes) -> bool:
    """Whether a file starts as a JPEG, PNG, GIF or WebP image does."""
    return head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


# --------------------------------------------------------------------------- rate windows


class Window(SlidingWindow):
    """Weighted events of the last ``period`` seconds (O(1) amortised), and ``peak``, the
    most the window ever held."""

    __slots__ = ("peak",)

    def __init__(self, period: float) -> None:
        super().__init__(period)
        self.peak = 0

    def count(self, now: float) -> int:
        """What the window holds at ``now``."""
        self._prune(now)
        return self.total

    def fits(self, now: float, cost: int, limit: int) -> bool:
        return self.count(now) + cost <= limit

    def hit(self, now: float, cost: int = 1) -> int:
        """Add ``cost`` at ``now``; what the window then holds."""
        self.add(now, cost)
        self.peak = max(self.peak, self.total)
        return self.total


class FixedWindow:
    """At most ``limit`` requests per window of ``period`` seconds, the window opened by
    the first request after the previous one closed (Discord's bucket)."""

    __slots__ = ("count", "limit", "period", "start")

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self.start = -math.inf
        self.count = 0

    def take(self, now: float, *, enforce: bool = True) -> bool:
        """Count one request at ``now`` if it fits (or ``enforce`` is off): did it?"""
        if now >= self.start + self.period:
            self.start, self.count = now, 0
        allowed = self.count < self.limit or not enforce
        if allowed:
            self.count += 1
        return allowed

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)

    def reset_after(self, now: float) -> float:
        """Seconds until the window closes, rounded up to the millisecond."""
        return math.ceil((self.start + self.period - now) * 1000) / 1000


class TokenBucket:
    """``tokens`` refilled at ``rate`` per second up to ``capacity``: short bursts pass,
    a steady rate above ``rate`` does not."""

    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, now: float) -> None:
        self.tokens = tokens
        self.stamp = now

    def wait(self, now: float, capacity: float, rate: float) -> float:
        """Refill up to ``now``; seconds until a token is there (0: one is)."""
        self.tokens = min(capacity, self.tokens + (now - self.stamp) * rate)
        self.stamp = now
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / rate

    def take(self) -> None:
        self.tokens = max(0.0, self.tokens - 1.0)  # limits off: over, yet never in debt


# --------------------------------------------------------------------------- faults


def _fraction(value: Any, name: str) -> float:
    share = float(value)
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"{name} is a fraction between 0 and 1")
    return share


class Faults:
    """Which requests fail: ``fault_rate`` of them get a transient error, ``drop_rate``
    lose their connection; each draw comes from ``random.Random(seed)``."""

    def __init__(self, fault_rate: float = 0.0, drop_rate: float = 0.0, seed: int | None = None) -> None:
        self.fault_rate = fault_rate
        self.drop_rate = drop_rate
        self.reseed(seed)

    def reseed(self, seed: int | None) -> None:
        """Draw from ``seed`` from now on (again: the same faults as the first time)."""
        self.seed = seed
        self.rng = random.Random(seed)

    def drop(self) -> bool:
        return bool(self.drop_rate) and self.rng.random() < self.drop_rate

    def fault(self) -> bool:
        return bool(self.fault_rate) and self.rng.random() < self.fault_rate

    def coin(self) -> bool:
        """Heads or tails, for a fault that takes one of two forms."""
        return self.rng.random() < 0.5


# --------------------------------------------------------------------------- HTTP helpers


class Dropped(Exception):
    """Drop this request's connection without an answer."""


class ControlError(Exception):
    """A bad ``/_sandbox`` request: answered ``status`` with ``{"error": message}``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def uvicorn_transport(receive: Any) -> Any:
    """uvicorn's transport for this connection: ``receive`` is a bound method of its
    request cycle, which holds it (None under another server)."""
    return getattr(getattr(receive, "__self__", None), "transport", None)


async def drop_connection(receive: Receive) -> None:
    """Abort the TCP connection under this request without a byte of answer (an RST, as
    a proxy or a crashed server does): the client sees ``Server disconnected``. uvicorn
    then writes nothing (a response the app still returns is discarded) and logs nothing;
    another server gets a ``ConnectionAbortedError``."""
    cycle: Any = getattr(receive, "__self__", None)
    transport = uvicorn_transport(receive)
    if transport is None or not hasattr(cycle, "disconnected"):
        raise ConnectionAbortedError("the sandbox dropped the connection")
    transport.abort()
    cycle.disconnected = True
    await asyncio.sleep(0)


def flag(value: Any) -> bool:
    """A switch from JSON or a query string (``"true"``, ``"1"``, ``"yes"``: on)."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


async def control_body(request: Request, empty: Any = None) -> Any:
    """The JSON body of a ``/_sandbox`` request; ``empty`` when there is none (None: a
    body is needed)."""
    raw = await request.body()
    if not raw.strip():
        if empty is None:
            raise ControlError("the request needs a JSON body")
        return empty
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ControlError(f"the body is not JSON: {exc}") from None


async def control_object(request: Request, empty: dict[str, Any] | None = None) -> dict[str, Any]:
    """:func:`control_body`, which must be a JSON object."""
    body = await control_body(request, empty)
    if not isinstance(body, dict):
        raise ControlError("give a JSON object")
    return body


E = TypeVar("E", bound="Emulator")


def control(
    endpoint: Callable[[E, Request], Awaitable[Response]],
) -> Callable[[E, Request], Awaitable[Response]]:
    """A ``/_sandbox`` endpoint: a :class:`ControlError`, or a ``ValueError`` /
    ``TypeError`` / ``KeyError`` from the Python API it calls, is answered as a bad request."""

    @functools.wraps(endpoint)
    async def answer(self: E, request: Request) -> Response:
        try:
            return await endpoint(self, request)
        except ControlError as err:
            return self.control_answer({"error": err.message}, err.status)
        except KeyError as err:
            return self.control_answer({"error": f"missing field {err}"}, 400)
        except (TypeError, ValueError) as err:
            return self.control_answer({"error": str(err)}, 400)

    return answer


# --------------------------------------------------------------------------- the base


class EmulatorSettings(TypedDict, total=False):
    """The keywords every emulator takes (:class:`Emulator`), beside its own."""

    limits: bool  # False: never refuse for a rate limit (what goes over is still counted)
    fault_rate: float  # the share of requests answered with a transient error
    drop_rate: float  # the share of requests whose connection is dropped
    seed: int | None  # faults and drops are drawn from random.Random(seed)
    clock: Clock  # what rate windows, buckets and arrival times read (a FakeClock in tests)


class Emulator:
    """The lock, the clock, ``limits`` and the :class:`Faults` of an HTTP emulator, its
    settings (:meth:`set_options`) and its control API's answers. A subclass builds
    ``app`` and routes ``/_sandbox/config`` to :meth:`_http_options`."""

    name: ClassVar[str]  # the server thread's name
    # its own switches, set like ``limits`` (auto_chats, auto_people...)
    switches: ClassVar[tuple[str, ...]] = ()
    # Telegram's control API answers {"ok": true | false, ...}, like its Bot API
    ok_envelope: ClassVar[bool] = False
    app: Starlette

    def __init__(
        self,
        *,
        limits: bool = True,
        fault_rate: float = 0.0,
        drop_rate: float = 0.0,
        seed: int | None = None,
        clock: Clock = SYSTEM,
    ) -> None:
        self._lock = threading.Lock()
        self.clock = clock  # rate windows, buckets and arrival times read it (a FakeClock in tests)
        self.limits = limits
        self.faults = Faults(fault_rate, drop_rate, seed)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> AsgiServer:
        """An :class:`AsgiServer` for this emulator (``with emulator.serve() as server``)."""
        return AsgiServer(self.app, host, port, name=self.name)

    # ----------------------------------------------------------------- settings

    def options(self) -> dict[str, Any]:
        """The settings: ``limits``, ``fault_rate``, ``drop_rate``, ``seed``, the switches."""
        return {
            "limits": self.limits,
            "fault_rate": self.faults.fault_rate,
            "drop_rate": self.faults.drop_rate,
            "seed": self.faults.seed,
            **{name: getattr(self, name) for name in self.switches},
        }

    def set_options(self, **options: Any) -> dict[str, Any]:
        """Change ``limits``, ``fault_rate``, ``drop_rate`` (0..1), ``seed`` (the fault
        generator restarts from it) or a switch; all or none (ValueError). The settings."""
        values: dict[str, Any] = {}
        for key, value in options.items():
            if key in ("fault_rate", "drop_rate"):
                values[key] = _fraction(value, key)
            elif key == "seed":
                values[key] = None if value is None else int(value)
            elif key in ("limits", *self.switches):
                values[key] = bool(value)
            else:
                raise ValueError(f"unknown option {key!r}")
        with self._lock:
            for key, value in values.items():
                if key == "seed":
                    self._reseed(value)
                else:
                    setattr(self.faults if key in ("fault_rate", "drop_rate") else self, key, value)
            return self.options()

    def _reseed(self, seed: int | None) -> None:
        """Restart the fault generator (and any other seeded one) from ``seed``."""
        self.faults.reseed(seed)

    # ----------------------------------------------------------------- control API

    def control_answer(self, data: Any, status: int = 200) -> Response:
        """A control API answer (``ok`` added in Telegram's envelope)."""
        if self.ok_envelope and isinstance(data, dict):
            data = {"ok": 200 <= status < 300, **data}
        return JSONResponse(data, status_code=status)

    @control
    async def _http_options(self, request: Request) -> Response:
        """``GET``: the settings; ``POST {"limits"?, "fault_rate"?, "seed"?, ...}`` changes
        those given (null: unchanged; switches may be strings, ``"true"`` / ``"0"``)."""
        if request.method == "POST":
            body = await control_object(request)
            switches = ("limits", *self.switches)
            given = {k: flag(v) if k in switches else v for k, v in body.items() if v is not None}
            return self.control_answer(self.set_options(**given))
        with self._lock:
            return self.control_answer(self.options())


class Configurable(Emulator):
    """An emulator whose settings are also the keywords of :meth:`configure` (the webhook
    receivers' ``configure`` describes a hook: they have :meth:`set_options` only)."""

    def configure(self, **settings: float | None) -> dict[str, Any]:
        """:meth:`set_options` for the settings given (None: unchanged): ``limits``,
        ``fault_rate``, ``drop_rate``, ``seed`` and the switches (``auto_chats``...)."""
        return self.set_options(**{k: v for k, v in settings.items() if v is not None})
