"""When an automation runs: cron expressions and intervals in the automation's time zone.

Cron is evaluated by ``cronsim`` on time-zone-aware datetimes (a 02:30 run on the night
clocks spring forward happens at 03:00; on the night they fall back, once). Intervals
of whole days keep the local wall-clock time across daylight-saving changes (``whenever``
does the calendar arithmetic); shorter intervals are exact durations. After downtime
the next run is simply the first tick after *now*: missed ticks collapse into one run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from whenever import Instant

from feedcast.kernel.errors import InvalidValue

__all__ = ["Schedule", "describe", "next_run", "parse_schedule"]

_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Schedule:
    kind: str  # cron | every | on-new | manual
    cron: str | None = None
    every: timedelta | None = None
    timezone: str = "UTC"
    anchor: datetime | None = None  # intervals count from here (the automation's creation)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidValue(f"unknown time zone {name!r} (an IANA name such as Europe/Paris)") from None


def parse_schedule(
    *,
    cron: str | None = None,
    every: timedelta | None = None,
    on_new: bool = False,
    timezone: str = "UTC",
    anchor: datetime | None = None,
) -> Schedule:
    """One of cron, every or on-new (or none: the automation runs when told to)."""
    _zone(timezone)
    given = [
        flag for flag, value in (("--schedule", cron), ("--every", every), ("--on-new", on_new)) if value
    ]
    if len(given) > 1:
        raise InvalidValue(f"choose one of {', '.join(given)}")
    if cron:
        expr = " ".join(cron.split())
        try:
            next(CronSim(expr, datetime(2026, 1, 1, tzinfo=UTC)))
        except (CronSimError, StopIteration, ValueError) as exc:
            raise InvalidValue(f"invalid --schedule {cron!r}: {exc or 'not a cron expression'}") from None
        return Schedule("cron", cron=expr, timezone=timezone)
    if every is not None:
        if every < timedelta(minutes=1):
            raise InvalidValue("--every must be at least 1m")
        return Schedule("every", every=every, timezone=timezone, anchor=anchor)
    if on_new:
        return Schedule("on-new", timezone=timezone)
    return Schedule("manual", timezone=timezone)


def next_run(schedule: Schedule, after: datetime) -> datetime | None:
    """The first run strictly after ``after`` (UTC), or None (on-new, manual)."""
    after = after.astimezone(UTC)
    if schedule.kind == "cron":
        assert schedule.cron is not None
        local = after.astimezone(schedule.tz)
        return next(CronSim(schedule.cron, local)).astimezone(UTC)
    if schedule.kind == "every":
        assert schedule.every is not None
        anchor = (schedule.anchor or after).astimezone(UTC)
        every = schedule.every
        if every % _DAY == timedelta(0):
            return _next_wall_clock(anchor, every // _DAY, schedule.timezone, after)
        if after < anchor:
            return anchor
        steps = (after - anchor) // every + 1
        return anchor + steps * every
    return None


def _next_wall_clock(anchor: datetime, days: int, timezone: str, after: datetime) -> datetime:
    """anchor + k * days in local calendar days (same wall-clock time), first after ``after``."""
    start = Instant(anchor).to_tz(timezone)
    if anchor > after:
        return anchor
    # jump close, then step: calendar days are 23-25 h long around DST changes
    k = max(0, int((after - anchor) / timedelta(days=days)) - 1)
    while True:
        candidate = start.add(days=k * days, disambiguation="compatible").to_stdlib().astimezone(UTC)
        if candidate > after:
            return candidate
        k += 1


def describe(schedule: Schedule) -> str:
    if schedule.kind == "cron":
        return f"cron {schedule.cron} ({schedule.timezone})"
    if schedule.kind == "every":
        assert schedule.every is not None
        seconds = int(schedule.every.total_seconds())
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds % size == 0:
                return f"every {seconds // size}{unit} ({schedule.timezone})"
        return f"every {seconds}s"
    if schedule.kind == "on-new":
        return "on new items"
    return "manual (feedcast send)"
