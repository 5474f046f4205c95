"""The injectable clock (feedcast.kernel.clock): the real one and the fake one tests move."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from feedcast.kernel.clock import SYSTEM, Clock, FakeClock, SystemClock


def test_the_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC), monotonic=50.0)
    assert (clock.monotonic(), clock.now()) == (50.0, datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    assert clock.time() == datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp()
    clock.advance(1.5)
    clock.advance(timedelta(minutes=1))
    assert clock.monotonic() == 111.5
    assert clock.now() == datetime(2026, 3, 1, 12, 1, 1, 500000, tzinfo=UTC)
    clock.set(datetime(2026, 3, 2, tzinfo=UTC))
    assert clock.now() == datetime(2026, 3, 2, tzinfo=UTC)
    with pytest.raises(ValueError, match="does not go back"):
        clock.advance(-1)


def test_a_fake_sleep_advances_at_once_and_is_recorded() -> None:
    clock = FakeClock()
    start = clock.monotonic()

    async def main() -> None:
        await clock.sleep(3600)
        await clock.sleep(-2)  # nothing to wait: zero, as asyncio.sleep does

    asyncio.run(main())
    assert clock.monotonic() - start == 3600
    assert clock.sleeps == [3600, 0.0]


def test_a_fake_clock_needs_an_aware_start() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        FakeClock(datetime(2026, 1, 1))


def test_the_system_clock_reads_the_real_clocks() -> None:
    clock: Clock = SYSTEM
    assert isinstance(clock, SystemClock)
    before = time.time()
    assert before - 1 <= clock.time() and clock.now().tzinfo is UTC
    assert clock.monotonic() <= time.monotonic()
    asyncio.run(clock.sleep(0))
