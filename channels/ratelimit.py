"""Pace calls to a provider's published limits, and pause a whole channel on a 429.

A sliding (moving) window per rule key, from the ``limits`` library: no window ever
holds more than the limit, unlike a token bucket that lets a full bucket burst on top of
the refill. Calls are also spread evenly (at least ``period / limit`` apart per key):
a window filled in one burst and refilled in the next would let network jitter push
a few requests of one burst into the provider's next window. Callers ``await
gate.acquire(rules)``; the gate waits until every rule has room, then takes it for all
at once (one event loop: no other caller runs between the check and the take).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from channels.base import RateRule

__all__ = ["RateGate"]


class RateGate:
    """Shared by every send of one channel during one campaign."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._items: dict[tuple[int, int], RateLimitItem] = {}
        self._paused_until = 0.0
        self._next: dict[str, float] = {}  # key -> earliest monotonic time of its next call
        self.waited = 0.0  # seconds spent waiting for room (for reports)
        self.pauses = 0

    def _item(self, rule: RateRule) -> RateLimitItem:
        key = (rule.limit, rule.period)
        item = self._items.get(key)
        if item is None:
            item = self._items[key] = RateLimitItemPerSecond(rule.limit, rule.period)
        return item

    def pause(self, seconds: float) -> None:
        """Nobody sends on this channel for ``seconds`` (a provider's 429 retry_after)."""
        until = time.monotonic() + max(0.0, seconds)
        if until > self._paused_until:
            self._paused_until = until
            self.pauses += 1

    async def acquire(self, rules: Sequence[RateRule]) -> None:
        started = time.monotonic()
        while True:
            pause = self._paused_until - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
                continue
            if not self.enabled or not rules:
                break
            now = time.monotonic()
            wait = max(self._next.get(rule.key, 0.0) - now for rule in rules)
            for rule in rules:
                item = self._item(rule)
                cost = min(rule.cost, rule.limit)
                if not self._limiter.test(item, rule.key, cost=cost):
                    stats = self._limiter.get_window_stats(item, rule.key)
                    wait = max(wait, stats.reset_time - time.time())
            if wait <= 0:
                for rule in rules:
                    self._limiter.hit(self._item(rule), rule.key, cost=min(rule.cost, rule.limit))
                    # from the slot this call was due in, not from when it woke up: late
                    # wake-ups would otherwise add up and drag the rate below the limit
                    unit = rule.spacing if rule.spacing is not None else rule.period / rule.limit
                    spacing = unit * min(rule.cost, rule.limit)
                    slot = self._next.get(rule.key, now)
                    if now - slot > spacing:  # idle for a while: start afresh, no catch-up burst
                        slot = now
                    # late wake-ups are made up for, but two calls never leave closer than
                    # half a spacing (a burst that jitter could push into one window)
                    self._next[rule.key] = max(slot + spacing, now + spacing / 2)
                break
            # the window's oldest hit expires at reset_time; a few ms more avoids spinning
            await asyncio.sleep(min(max(wait, 0.002), 1.0))
        self.waited += time.monotonic() - started
