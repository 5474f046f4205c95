"""Running automations on their schedules: plain Python that ``feedcast run``, the
Prefect flows and the tests share (the clock is a parameter).

An automation is due when its cron or interval tick has come (``next_run_at``), when it
sends on new items and enough are queued, or when a one-off ``send --at`` time has
come. A run sends at most one campaign (or nothing when fewer than ``min_items`` are
queued), then sets ``next_run_at`` to the first tick after *now*: after downtime the
missed ticks give one campaign, not one each.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo

from feedcast.delivery import BuildResult, CampaignResult, SendSettings, send_automation
from feedcast.kernel.errors import AutomationBusy, FeedcastError, InvalidValue
from feedcast.kernel.models import Automation
from feedcast.schedule import Schedule, next_run, parse_schedule
from feedcast.store import Store

__all__ = [
    "EVENTS",
    "MESSAGE_TAGS",
    "AutomationSpec",
    "AutomationStatus",
    "Due",
    "RunResult",
    "add_automation",
    "due_automations",
    "edit_automation",
    "next_runs",
    "run_automation",
    "run_due",
    "schedule_of",
    "spec_of",
]

EVENTS = ("new", "changed", "price_drop", "back_in_stock")
MESSAGE_TAGS = ("CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "ACCOUNT_UPDATE", "HUMAN_AGENT")
AutomationStatus = Literal["active", "paused"]


@dataclass(slots=True)
class AutomationSpec:
    """An automation as a user writes it: the one definition of its fields and defaults.

    ``feedcast automation add`` builds one from its options; the YAML entry of
    ``feedcast apply`` (:mod:`feedcast.config`) is generated from these fields; the
    stored :class:`~feedcast.kernel.models.Automation` is what :func:`add_automation`
    makes of it, and :func:`spec_of` turns one back into a spec.
    """

    sources: list[str]
    layout: str
    channel: str
    audience: str | None = None
    schedule: str | None = None  # a cron expression
    every: str | None = None  # a duration: 30m, 1h, 1d
    on_new: bool = False
    timezone: str = "UTC"
    locale: str = "en"
    max_items: int | None = None
    min_items: int = 1
    where: str | None = None
    events: list[str] = field(default_factory=lambda: ["new"])
    backfill: int = 0
    message_tag: str | None = None
    track_clicks: bool = False  # item links go through feedcast web's /c/ (click tracking)
    status: AutomationStatus = "active"


def spec_of(automation: Automation) -> AutomationSpec:
    every = None
    if automation.every is not None:
        seconds = int(automation.every.total_seconds())
        every = next(
            f"{seconds // size}{unit}"
            for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
            if seconds % size == 0
        )
    return AutomationSpec(
        sources=list(automation.sources),
        layout=automation.layout,
        channel=automation.channel,
        audience=automation.audience,
        schedule=automation.cron if automation.schedule == "cron" else None,
        every=every if automation.schedule == "every" else None,
        on_new=automation.schedule == "on-new",
        timezone=automation.timezone,
        locale=automation.locale,
        max_items=automation.max_items,
        min_items=automation.min_items,
        where=automation.where,
        events=list(automation.events),
        backfill=automation.backfill,
        message_tag=automation.message_tag,
        track_clicks=automation.track_clicks,
        status=cast(AutomationStatus, automation.status),  # the store keeps active | paused
    )


def _fields(store: Store, spec: AutomationSpec, *, anchor: datetime, now: datetime) -> dict[str, Any]:
    """Check a spec against the store (channel, sources, layout) and turn it into the
    columns of ``automations``. One-line InvalidValue / NotFound naming what is wrong."""
    from feedcast.delivery import make_channel
    from feedcast.kernel.durations import parse_duration
    from feedcast.store import validate_where
    from layouts.render import MAX_ITEMS_LIMIT, RenderContext, load_layout, search_path_from_env

    if not spec.sources:
        raise InvalidValue("name at least one --source")
    store.list_sources(spec.sources)  # NotFound for an unknown source
    config = store.get_channel(spec.channel)
    fmt = make_channel(config).format
    load_layout(spec.layout, search_path_from_env()).require(fmt)
    RenderContext(timezone=spec.timezone, locale=spec.locale)
    unknown = [e for e in spec.events if e not in EVENTS]
    if unknown or not spec.events:
        raise InvalidValue(f"--events takes a comma-separated list of {', '.join(EVENTS)}")
    if spec.message_tag is not None:
        if config.kind != "messenger":
            raise InvalidValue("--message-tag is for Messenger channels")
        if spec.message_tag not in MESSAGE_TAGS:
            raise InvalidValue(f"--message-tag must be a non-promotional tag: {', '.join(MESSAGE_TAGS)}")
    if spec.max_items is not None and not 1 <= spec.max_items <= MAX_ITEMS_LIMIT:
        raise InvalidValue(f"--max-items must be between 1 and {MAX_ITEMS_LIMIT}")
    if not 1 <= spec.min_items <= MAX_ITEMS_LIMIT:
        raise InvalidValue(f"--min-items must be between 1 and {MAX_ITEMS_LIMIT}")
    if spec.backfill < 0:
        raise InvalidValue("--backfill must be 0 or more")
    if spec.status not in ("active", "paused"):
        raise InvalidValue("status must be active or paused")
    every = parse_duration(spec.every, minimum=timedelta(minutes=1)) if spec.every else None
    schedule = parse_schedule(
        cron=spec.schedule, every=every, on_new=spec.on_new, timezone=spec.timezone, anchor=anchor
    )
    where = validate_where(spec.where) if spec.where else None
    return {
        "layout": spec.layout,
        "audience": spec.audience or None,
        "on_new": schedule.kind == "on-new",
        "max_items": spec.max_items,
        "min_items": spec.min_items,
        "events": list(dict.fromkeys(spec.events)),
        "backfill": spec.backfill,
        "message_tag": spec.message_tag,
        "track_clicks": bool(spec.track_clicks),
        "timezone": spec.timezone,
        "locale": spec.locale,
        "schedule": schedule.kind,
        "cron": schedule.cron,
        "every_seconds": int(every.total_seconds()) if every else None,
        "where_sql": where,
        "next_run_at": next_run(schedule, now),
        "status": spec.status,
    }


def add_automation(
    store: Store, name: str, spec: AutomationSpec, *, now: datetime | None = None
) -> Automation:
    from feedcast.watch import validate_name

    validate_name(name)
    now = now or datetime.now(UTC)
    fields = _fields(store, spec, anchor=now, now=now)
    return store.add_automation(name, channel=spec.channel, sources=spec.sources, since=now, **fields)


def edit_automation(
    store: Store, name: str, changes: Mapping[str, Any], *, now: datetime | None = None
) -> tuple[Automation, list[str]]:
    """Apply ``changes`` (AutomationSpec fields) to an automation; returns it and the
    names of the fields that really changed. Its cursor stays: nothing is sent twice."""
    now = now or datetime.now(UTC)
    current = store.get_automation(name)
    before = spec_of(current)
    unknown = sorted(set(changes) - set(AutomationSpec.__dataclass_fields__))
    if unknown:
        raise InvalidValue(f"unknown automation field {unknown[0]!r}")
    after = replace(before, **changes)
    if any(k in changes for k in ("schedule", "every", "on_new")):
        # a new schedule replaces the old one
        for key in ("schedule", "every", "on_new"):
            if key not in changes:
                setattr(after, key, False if key == "on_new" else None)
    changed = [k for k in AutomationSpec.__dataclass_fields__ if getattr(before, k) != getattr(after, k)]
    if not changed:
        return current, []
    fields = _fields(store, after, anchor=current.since or now, now=now)
    if not {"schedule", "every", "on_new", "timezone", "status"} & set(changed):
        fields.pop("next_run_at")  # the schedule did not change: keep its next tick
    return (
        store.update_automation(
            name,
            channel=after.channel if "channel" in changed else None,
            sources=after.sources if "sources" in changed else None,
            **fields,
        ),
        changed,
    )


log = logging.getLogger(__name__)


def schedule_of(automation: Automation) -> Schedule:
    return parse_schedule(
        cron=automation.cron if automation.schedule == "cron" else None,
        every=automation.every if automation.schedule == "every" else None,
        on_new=automation.schedule == "on-new",
        timezone=automation.timezone,
        anchor=automation.since or automation.created_at,
    )


def next_runs(automation: Automation) -> dict[str, str | None]:
    """The next run, in UTC and in the automation's time zone (ISO 8601)."""
    when = automation.next_run_at if automation.status == "active" else None
    if when is None:
        return {"next_run_utc": None, "next_run_local": None}
    return {
        "next_run_utc": when.astimezone(UTC).isoformat(),
        "next_run_local": when.astimezone(ZoneInfo(automation.timezone)).isoformat(),
    }


@dataclass(frozen=True, slots=True)
class Due:
    automation: str
    trigger: str  # schedule | on-new | at
    send_id: int | None = None  # a one-off send


@dataclass(slots=True)
class RunResult:
    automation: str
    trigger: str
    campaigns: list[CampaignResult] = field(default_factory=list)
    note: str | None = None  # why nothing was sent
    error: str | None = None


def due_automations(store: Store, now: datetime) -> list[Due]:
    """What should run at ``now``, one entry per automation (a one-off send first)."""
    due: dict[str, Due] = {}
    for send in store.scheduled_sends(due_by=now):
        due.setdefault(send["automation"], Due(send["automation"], "at", int(send["id"])))
    for automation in store.list_automations():
        if automation.status != "active" or automation.name in due:
            continue
        if automation.schedule in ("cron", "every"):
            if automation.next_run_at is not None and automation.next_run_at <= now:
                due[automation.name] = Due(automation.name, "schedule")
        elif automation.schedule == "on-new":
            try:
                _, waiting = store.queued_items(automation, 0)
            except FeedcastError:  # e.g. a --where that fails: its run reports why
                due[automation.name] = Due(automation.name, "on-new")
                continue
            if waiting >= max(1, automation.min_items):
                due[automation.name] = Due(automation.name, "on-new")
    return list(due.values())


def run_automation(
    store: Store,
    due: Due,
    *,
    now: datetime | None = None,
    settings: SendSettings | None = None,
    environ: Mapping[str, str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Run one due automation: one campaign at most, then its next tick."""
    now = now or datetime.now(UTC)
    result = RunResult(due.automation, due.trigger)
    notes: list[BuildResult] = []
    try:
        result.campaigns = send_automation(
            store,
            due.automation,
            settings=settings,
            trigger=due.trigger,
            now=now,
            environ=environ,
            progress=progress,
            on_build=notes.append,
        )
    except AutomationBusy as exc:  # another process is on it: it will finish the job
        result.note = str(exc)
        return result
    except FeedcastError as exc:  # one broken automation never stops the others
        result.error = str(exc)
        log.warning("automation %s: %s", due.automation, exc)
    if notes and notes[0].campaign_id is None:
        result.note = notes[0].reason
    automation = store.get_automation(due.automation)
    upcoming = next_run(schedule_of(automation), now)
    store.record_run(automation.id, ran_at=now, next_run_at=upcoming)
    if due.send_id is not None:
        campaign = result.campaigns[-1].campaign.id if result.campaigns else None
        store.finish_scheduled_send(due.send_id, campaign_id=campaign, note=result.note or result.error)
    return result


def run_due(
    store: Store,
    *,
    now: datetime | None = None,
    settings: SendSettings | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[RunResult]:
    now = now or datetime.now(UTC)
    return [
        run_automation(store, due, now=now, settings=settings, environ=environ)
        for due in due_automations(store, now)
    ]
