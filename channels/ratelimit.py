"""Pace calls to a provider's published limits, and pause a whole channel on a 429.

A sliding (moving) window per rule: a log of the calls of the last ``period`` seconds,
so no window ever holds more than the limit, unlike a token bucket that lets a full
bucket burst on top of the refill. Calls are also spread evenly (at least ``period /
limit`` apart per key): a window filled in one burst and refilled in the next would let
network jitter push a few requests of one burst into the provider's next window.
Callers ``await gate.acquire(rules)``; the gate waits until every rule has room, then
takes it for all at once (one event loop: no other caller runs between the check and
the take).

Time comes from the gate's ``clock`` (:mod:`feedcast.kernel.clock`): the real one by default,
a :class:`~feedcast.kernel.clock.FakeClock` in tests, where every wait is exact.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from channels.base import RateRule
from feedcast.kernel.clock import SYSTEM, Clock

__all__ = ["RateGate", "SlidingWindow"]


class SlidingWindow:
    """Weighted calls of the last ``period`` seconds: O(1) amortised per call."""

    __slots__ = ("events", "period", "total")

    def __init__(self, period: float) -> None:
        self.period = period
        self.events: deque[tuple[float, int]] = deque()
        self.total = 0

    def _prune(self, now: float) -> None:
        edge = now - self.period
        while self.events and self.events[0][0] <= edge:
            self.total -= self.events.popleft()[1]

    def wait(self, now: float, cost: int, limit: int) -> float:
        """Seconds until ``cost`` more fits under ``limit`` (0: it fits now)."""
        self._prune(now)
        excess = self.total + cost - limit
        if excess <= 0:
            return 0.0
        for stamp, weight in self.events:
            excess -= weight
            if excess <= 0:
                return stamp + self.period - now
        return self.period

    def add(self, now: float, cost: int) -> None:
        self._prune(now)
        self.events.append((now, cost))
        self.total += cost


class RateGate:
    """Shared by every send of one channel during one campaign."""

    def __init__(self, *, enabled: bool = True, clock: Clock = SYSTEM) -> None:
        self.enabled = enabled
        self.clock = clock
        self._windows: dict[tuple[str, int, int], SlidingWindow] = {}
        self._paused_until = 0.0
        self._next: dict[str, float] = {}  # key -> earliest monotonic time of its next call
        self.waited = 0.0  # seconds spent waiting for room (for reports)
        self.pauses = 0

    def _window(self, rule: RateRule) -> SlidingWindow:
        key = (rule.key, rule.limit, rule.period)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = SlidingWindow(rule.period)
        return window

    def pause(self, seconds: float) -> None:
        """Nobody sends on this channel for ``seconds`` (a provider's 429 retry_after)."""
        until = self.clock.monotonic() + max(0.0, seconds)
        if until > self._paused_until:
            self._paused_until = until
            self.pauses += 1

    async def acquire(self, rules: Sequence[RateRule]) -> None:
        clock = self.clock
        started = clock.monotonic()
        while True:
            pause = self._paused_until - clock.monotonic()
            if pause > 0:
                await clock.sleep(pause)
                continue
            if not self.enabled or not rules:
                break
            now = clock.monotonic()
            wait = max(self._next.get(rule.key, 0.0) - now for rule in rules)
            for rule in rules:
                wait = max(wait, self._window(rule).wait(now, min(rule.cost, rule.limit), rule.limit))
            if wait <= 0:
                for rule in rules:
                    cost = min(rule.cost, rule.limit)
                    self._window(rule).add(now, cost)
                    # from the slot this call was due in, not from when it woke up: late
                    # wake-ups would otherwise add up and drag the rate below the limit
                    unit = rule.spacing if rule.spacing is not None else rule.period / rule.limit
                    spacing = unit * cost
                    slot = self._next.get(rule.key, now)
                    if now - slot > spacing:  # idle for a while: start afresh, no catch-up burst
                        slot = now
                    # late wake-ups are made up for, but two calls never leave closer than
                    # half a spacing (a burst that jitter could push into one window)
                    self._next[rule.key] = max(slot + spacing, now + spacing / 2)
                break
            # the window's oldest call leaves it after ``wait``; a few ms more avoids spinning
            await clock.sleep(min(max(wait, 0.002), 1.0))
        self.waited += clock.monotonic() - started
