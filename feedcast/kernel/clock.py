"""Time as a parameter: the clock that limiters, pacers, emulators and pollers read.

Code that measures or waits takes a ``clock`` (default :data:`SYSTEM`, the real one)
instead of calling ``time`` and ``asyncio.sleep`` itself. A test hands in a
:class:`FakeClock` and moves time itself, so a rate window, a token bucket or a backoff
is checked exactly, whatever the load on the machine::

    clock = FakeClock()
    emulator = TelegramEmulator(clock=clock)   # every request arrives at the same instant
    gate = RateGate(clock=clock)               # its waits advance the fake time at once
    clock.advance(1.0)                         # one window later

The four readings of one clock agree: ``time()`` and ``now()`` move with
``monotonic()``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["SYSTEM", "Clock", "FakeClock", "SystemClock"]


class Clock(Protocol):
    """What code that measures or waits needs of time."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (intervals, deadlines, windows)."""

    def time(self) -> float:
        """Seconds since the epoch (wall-clock time, as ``time.time()``)."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (at least one pass through the event loop)."""


class SystemClock:
    """The real clock: ``time.monotonic``, ``time.time``, ``asyncio.sleep``."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM: Clock = SystemClock()
"""The real clock, the default everywhere a ``clock`` is taken."""

FAKE_START = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)


class FakeClock:
    """Time that moves only when told: :meth:`advance`, or :meth:`sleep`, which moves it
    by the seconds asked at once (then yields to the event loop, as a real sleep does).

    Safe to read from other threads (an emulator's server thread); ``sleeps`` lists
    every wait asked of :meth:`sleep`, in order.
    """

    def __init__(self, start: datetime = FAKE_START, *, monotonic: float = 1_000.0) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start")
        self._lock = threading.Lock()
        self._epoch = start.timestamp() - monotonic
        self._monotonic = monotonic
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self._monotonic

    def time(self) -> float:
        return self._epoch + self._monotonic

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def advance(self, seconds: float | timedelta) -> None:
        """Move time forward (never back)."""
        step = seconds.total_seconds() if isinstance(seconds, timedelta) else float(seconds)
        if step < 0:
            raise ValueError(f"a clock does not go back ({step:g} s)")
        with self._lock:
            self._monotonic += step

    def set(self, when: datetime) -> None:
        """Move time forward to ``when``."""
        self.advance(max(0.0, when.timestamp() - self.time()))

    async def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.sleeps.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"FakeClock({self.now().isoformat()}, monotonic={self._monotonic:g})"
