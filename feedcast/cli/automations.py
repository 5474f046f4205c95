"""``feedcast automation ...``: which sources, layout, channel and audience, and when."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import typer

from feedcast.cli._common import Format, FormatOpt, State, out, show_fields, show_json, show_list
from feedcast.kernel.errors import InvalidValue
from feedcast.kernel.models import Automation

__all__ = ["automation_commands"]

automation_commands = typer.Typer()  # feedcast automation ...


def _automation_dict(a: Automation) -> dict[str, Any]:
    return asdict(a)


Schedule = Annotated[
    str | None,
    typer.Option("--schedule", metavar="CRON", help="A cron expression, in --timezone (e.g. '0 9 * * 1-5')."),
]
Every = Annotated[
    str | None,
    typer.Option(
        "--every", metavar="DURATION", help="An interval: 30m, 6h, 1d (whole days keep the local time)."
    ),
]
OnNew = Annotated[bool, typer.Option("--on-new", help="Send as soon as new items arrive.")]
Audience = Annotated[
    str | None,
    typer.Option("--audience", metavar="TAG", help="Only subscribers with this tag (default: all active)."),
]
MaxItems = Annotated[
    int | None,
    typer.Option(
        "--max-items", metavar="N", help="Items per campaign (default: the layout's; 5 for per-item layouts)."
    ),
]
MinItems = Annotated[
    int | None,
    typer.Option("--min-items", metavar="N", help="Send nothing until N items are queued (default 1)."),
]
Where = Annotated[
    str | None,
    typer.Option(
        "--where",
        metavar="SQL",
        help="A DuckDB boolean expression over item columns, e.g. \"price < 50 AND title ILIKE '%shoe%'\".",
    ),
]
Events = Annotated[
    str | None,
    typer.Option(
        "--events", help="Which item events to send: new,changed,price_drop,back_in_stock (default: new)."
    ),
]
Backfill = Annotated[
    int | None, typer.Option("--backfill", metavar="N", help="Also send the N newest items already known.")
]
MessageTag = Annotated[
    str | None,
    typer.Option(
        "--message-tag", help="Messenger: a permitted tag for recipients outside the 24-hour window."
    ),
]
Timezone = Annotated[
    str | None,
    typer.Option(
        "--timezone", metavar="TZ", help="IANA time zone of the schedule and of dates (default UTC)."
    ),
]
Locale = Annotated[
    str | None, typer.Option("--locale", help="Locale of dates and prices, e.g. fr_FR (default en).")
]
# click tracking (feedcast.tracking): item links go through feedcast web's /c/TOKEN
TrackClicks = Annotated[
    bool,
    typer.Option("--track-clicks", help="Send item links through feedcast web (/c/...) to record clicks."),
]
TrackClicksEdit = Annotated[
    bool | None,
    typer.Option(
        "--track-clicks/--no-track-clicks",
        help="Turn click tracking on or off (item links through feedcast web's /c/...).",
    ),
]


NewSources = Annotated[
    list[str] | None, typer.Option("--source", metavar="S", help="Replace the sources (repeatable).")
]
# the same in automation add (required) and automation edit (optional)
LAYOUT = typer.Option("--layout", metavar="L", help="A layout name or folder.")
CHANNEL = typer.Option("--channel", metavar="C", help="The channel to send on.")
AllSubscribers = Annotated[
    bool, typer.Option("--all-subscribers", help="Send to every active subscriber (drop --audience).")
]


def _schedule_change(schedule: str | None, every: str | None, on_new: bool, manual: bool) -> dict[str, Any]:
    """``automation edit``: at most one of --schedule, --every, --on-new and --manual,
    which replaces the other three."""
    chosen = [
        flag
        for flag, on in (
            ("--schedule", schedule),
            ("--every", every),
            ("--on-new", on_new),
            ("--manual", manual),
        )
        if on
    ]
    if len(chosen) > 1:
        raise InvalidValue(f"choose one of {', '.join(chosen)}")
    return {"schedule": schedule, "every": every, "on_new": on_new} if chosen else {}


def _events(text: str | None) -> list[str] | None:
    return None if text is None else [e.strip() for e in text.split(",") if e.strip()]


@automation_commands.command("add")
def automation_add(
    name: Annotated[str, typer.Argument(help="A name for the automation.")],
    source: Annotated[list[str], typer.Option("--source", metavar="S", help="A source (repeatable).")],
    layout: Annotated[str, LAYOUT],
    channel: Annotated[str, CHANNEL],
    audience: Audience = None,
    schedule: Schedule = None,
    every: Every = None,
    on_new: OnNew = False,
    timezone: Timezone = None,
    max_items: MaxItems = None,
    min_items: MinItems = None,
    where: Where = None,
    events: Events = None,
    backfill: Backfill = None,
    message_tag: MessageTag = None,
    locale: Locale = None,
    track_clicks: TrackClicks = False,
) -> None:
    """Register an automation: items of its sources, rendered with a layout, sent on a
    channel, on a schedule (cron or interval in a time zone), on new items, or when told."""
    from feedcast.automations import AutomationSpec, add_automation
    from feedcast.schedule import describe

    spec = AutomationSpec(
        sources=list(source),
        layout=layout,
        channel=channel,
        audience=audience,
        schedule=schedule,
        every=every,
        on_new=on_new,
        timezone=timezone or "UTC",
        locale=locale or "en",
        max_items=max_items,
        min_items=min_items or 1,
        where=where,
        events=_events(events) or ["new"],
        backfill=backfill or 0,
        message_tag=message_tag,
        track_clicks=track_clicks,
    )
    automation = add_automation(State.reader(), name, spec)
    from feedcast.automations import schedule_of

    out.print(
        f"added automation {automation.name}: {', '.join(automation.sources)} → {automation.layout} → "
        f"{automation.channel}, {describe(schedule_of(automation))}",
        markup=False,
    )


@automation_commands.command("edit")
def automation_edit(
    name: Annotated[str, typer.Argument(help="The automation to change.")],
    source: NewSources = None,
    layout: Annotated[str | None, LAYOUT] = None,
    channel: Annotated[str | None, CHANNEL] = None,
    audience: Audience = None,
    all_subscribers: AllSubscribers = False,
    schedule: Schedule = None,
    every: Every = None,
    on_new: OnNew = False,
    manual: Annotated[bool, typer.Option("--manual", help="No schedule: only `feedcast send`.")] = False,
    timezone: Timezone = None,
    max_items: MaxItems = None,
    min_items: MinItems = None,
    where: Where = None,
    no_where: Annotated[bool, typer.Option("--no-where", help="Drop the --where filter.")] = False,
    events: Events = None,
    backfill: Backfill = None,
    message_tag: MessageTag = None,
    locale: Locale = None,
    track_clicks: TrackClicksEdit = None,
) -> None:
    """Change an automation. Items it already sent stay sent."""
    from feedcast.automations import edit_automation

    changes: dict[str, Any] = {
        key: value
        for key, value in (
            ("sources", list(source) if source else None),
            ("layout", layout),
            ("channel", channel),
            ("audience", audience),
            ("timezone", timezone),
            ("max_items", max_items),
            ("min_items", min_items),
            ("where", where),
            ("events", _events(events)),
            ("backfill", backfill),
            ("message_tag", message_tag),
            ("locale", locale),
            ("track_clicks", track_clicks),
        )
        if value is not None
    }
    if all_subscribers:
        changes["audience"] = None
    if no_where:
        changes["where"] = None
    changes.update(_schedule_change(schedule, every, on_new, manual))
    if not changes:
        raise InvalidValue("nothing to change: give the options to change (see --help)")
    _automation, changed = edit_automation(State.reader(), name, changes)
    out.print(f"{name}: " + (f"changed {', '.join(changed)}" if changed else "nothing changed"), markup=False)


@automation_commands.command("list")
def automation_list(fmt: FormatOpt = Format.table) -> None:
    """List automations."""
    from feedcast.automations import schedule_of
    from feedcast.schedule import describe

    show_list(
        fmt,
        State.reader().list_automations(),
        as_json=_automation_dict,
        empty="no automations yet: feedcast automation add NAME --source S --layout L --channel C",
        columns=[
            "name",
            "status",
            "schedule",
            "next run (UTC)",
            "sources",
            "layout",
            "channel",
            "audience",
            "events",
            "last campaign",
        ],
        row=lambda a: [
            a.name,
            a.status,
            describe(schedule_of(a)),
            a.next_run_at if a.status == "active" else None,
            " ".join(a.sources),
            a.layout,
            a.channel,
            a.audience or "all",
            ",".join(a.events),
            a.last_campaign_at,
        ],
        optional=["last campaign", "events", "audience", "layout", "next run (UTC)"],
    )


@automation_commands.command("show")
def automation_show(name: str, fmt: FormatOpt = Format.table) -> None:
    """Show one automation, with how many items wait for its next campaign."""
    store = State.reader()
    automation = store.get_automation(name)
    from feedcast.automations import next_runs

    data = _automation_dict(automation)
    data.update(next_runs(automation))
    data["queued_items"] = store.queued_items(automation, 0)[1]
    data["audience_size"] = store.audience_size(automation)
    if fmt == Format.json:
        show_json(data)
        return
    show_fields([(k, " ".join(v) if isinstance(v, tuple) else v) for k, v in data.items()])


@automation_commands.command("remove")
def automation_remove(name: str) -> None:
    """Remove an automation (its campaigns stay in the history)."""
    State.reader().remove_automation(name)
    out.print(f"removed automation {name}", markup=False)


@automation_commands.command("pause")
def automation_pause(name: str) -> None:
    """Pause an automation."""
    State.reader().set_automation_status(name, "paused")
    out.print(f"paused {name}", markup=False)


@automation_commands.command("resume")
def automation_resume(name: str) -> None:
    """Resume a paused automation."""
    State.reader().set_automation_status(name, "active")
    out.print(f"resumed {name}", markup=False)
