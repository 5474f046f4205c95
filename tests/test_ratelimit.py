"""The rate gate (channels.ratelimit) on a fake clock: every wait is exact, so the
windows are checked to the call, whatever the load on the machine."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from channels.base import RateRule
from channels.ratelimit import RateGate, SlidingWindow
from feedcast.kernel.clock import FakeClock

EPS = 1e-9


def take(gate: RateGate, calls: Sequence[Sequence[RateRule]], *, concurrent: bool = False) -> list[float]:
    """Acquire for each call in turn (or all at once); the fake time each one got through."""
    clock = gate.clock
    assert isinstance(clock, FakeClock)
    times: list[float] = []

    async def one(rules: Sequence[RateRule]) -> None:
        await gate.acquire(rules)
        times.append(clock.monotonic())

    async def main() -> None:
        if concurrent:
            await asyncio.gather(*(one(rules) for rules in calls))
        else:
            for rules in calls:
                await one(rules)

    asyncio.run(main())
    return times


def busiest_window(times: Sequence[float], period: float, costs: Sequence[int] | None = None) -> int:
    """The most weight any sliding window of ``period`` seconds holds (a call ``period``
    seconds after another is in the next window, as the providers count)."""
    costs = costs or [1] * len(times)
    pairs = sorted(zip(times, costs, strict=True))
    return max(
        (sum(c for t, c in pairs if end - period + EPS < t <= end + EPS) for end, _ in pairs), default=0
    )


def test_no_window_holds_more_than_the_limit_and_calls_are_spread_evenly() -> None:
    gate = RateGate(clock=FakeClock())
    start = gate.clock.monotonic()
    rule = RateRule("bot", 30, 1)
    times = take(gate, [[rule]] * 90)
    assert busiest_window(times, 1.0) == 30
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 1 / 30 - EPS  # spread, never a burst
    assert times[-1] - start >= 89 / 30 - EPS  # 90 calls at 30/s: three windows
    assert abs(gate.waited - (times[-1] - start)) < EPS


def test_concurrent_callers_share_the_windows() -> None:
    gate = RateGate(clock=FakeClock())
    times = take(gate, [[RateRule("page", 10, 1)]] * 45, concurrent=True)
    assert len(times) == 45
    assert busiest_window(times, 1.0) <= 10


def test_a_costly_call_counts_its_weight() -> None:
    gate = RateGate(clock=FakeClock())
    album = RateRule("bot", 29, 1, cost=4)
    times = take(gate, [[album]] * 20)
    assert busiest_window(times, 1.0, [4] * 20) <= 29
    assert busiest_window(times, 1.0) <= 7  # 7 albums of 4 fit in 29, an eighth does not


def test_every_rule_of_a_call_must_have_room() -> None:
    """Telegram: the bot's 29/s and one chat's 1/s; three messages to one chat go a
    second apart while the bot's window has room for more."""
    gate = RateGate(clock=FakeClock())
    bot, chat = RateRule("bot", 29, 1), RateRule("bot:chat:42", 1, 1)
    times = take(gate, [[bot, chat]] * 3, concurrent=True)
    assert [round(b - a, 9) for a, b in itertools.pairwise(times)] == [1.0, 1.0]
    other = take(gate, [[bot, RateRule("bot:chat:43", 1, 1)]])
    assert other[0] - times[-1] < 1.0  # another chat does not wait for chat 42


def test_a_minute_window_holds_the_group_rate() -> None:
    gate = RateGate(clock=FakeClock())
    times = take(gate, [[RateRule("bot:group:-100", 19, 60)]] * 40)
    assert busiest_window(times, 60.0) == 19
    assert times[-1] - times[0] >= 2 * 60 - 60 / 19 - EPS


def test_a_spacing_above_period_over_limit_keeps_slack() -> None:
    gate = RateGate(clock=FakeClock())
    times = take(gate, [[RateRule("bot", 30, 1, spacing=0.04)]] * 10)
    assert min(b - a for a, b in itertools.pairwise(times)) >= 0.04 - EPS


def test_a_pause_holds_every_caller_for_the_retry_after() -> None:
    clock = FakeClock()
    gate = RateGate(clock=clock)
    rule = RateRule("bot", 30, 1)
    take(gate, [[rule]])
    paused_at = clock.monotonic()
    gate.pause(5)
    gate.pause(2)  # a shorter pause inside a longer one changes nothing
    times = take(gate, [[rule]] * 3, concurrent=True)
    assert min(times) >= paused_at + 5
    assert gate.pauses == 1


def test_a_disabled_gate_never_waits_but_still_pauses() -> None:
    clock = FakeClock()
    gate = RateGate(enabled=False, clock=clock)
    start = clock.monotonic()
    assert take(gate, [[RateRule("bot", 1, 1)]] * 50) == [start] * 50
    gate.pause(3)
    assert take(gate, [[RateRule("bot", 1, 1)]]) == [start + 3]


def test_after_an_idle_spell_there_is_no_catch_up_burst() -> None:
    clock = FakeClock()
    gate = RateGate(clock=clock)
    rule = RateRule("hook", 5, 2)  # Discord: 5 per 2 s, 0.4 s apart
    take(gate, [[rule]] * 3)
    clock.advance(60)
    times = take(gate, [[rule]] * 5)
    assert min(b - a for a, b in itertools.pairwise(times)) >= 0.4 - EPS


def test_the_sliding_window_says_how_long_until_there_is_room() -> None:
    window = SlidingWindow(1.0)
    for t in (0.0, 0.25, 0.5):
        window.add(t, 1)
    assert window.wait(0.5, 1, 3) == 0.5  # the call at 0.0 leaves the window at 1.0
    assert window.wait(0.5, 2, 3) == 0.75  # two must leave: 0.25 does at 1.25
    assert window.wait(1.0, 1, 3) == 0.0  # exactly one period later: room
    assert window.wait(0.6, 4, 3) == 1.0  # never fits: one whole period, then try again


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(1, 40),
    period=st.integers(1, 60),
    cost=st.integers(1, 5),
    calls=st.integers(1, 80),
    concurrent=st.booleans(),
)
def test_no_window_ever_exceeds_the_limit(
    limit: int, period: int, cost: int, calls: int, concurrent: bool
) -> None:
    gate = RateGate(clock=FakeClock())
    rule = RateRule("k", limit, period, cost)
    times = take(gate, [[rule]] * calls, concurrent=concurrent)
    weight = min(cost, limit)
    assert len(times) == calls
    assert busiest_window(times, period, [weight] * calls) <= limit
