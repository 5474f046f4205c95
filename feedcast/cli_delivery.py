"""``feedcast channel | subscriber | automation | send``: the sending side of the CLI
(registered on :data:`feedcast.cli.app`)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from feedcast.cli import Format, FormatOpt, State, _fields, _print_json, _table, app, err, out
from feedcast.kernel.errors import FeedcastError, InvalidValue, UserError
from feedcast.kernel.models import SUBSCRIBER_STATUSES, Automation, ChannelConfig, NewSubscriber, Subscriber

channel_app = typer.Typer(
    help="Register and manage channels (Telegram, Messenger, email, webhooks, outbox).", no_args_is_help=True
)
subscriber_app = typer.Typer(
    help="Manage the people (or chats, addresses) a channel sends to.", no_args_is_help=True
)
automation_app = typer.Typer(
    help="Automations: which sources, layout, channel and audience.", no_args_is_help=True
)
app.add_typer(channel_app, name="channel")
app.add_typer(subscriber_app, name="subscriber")
app.add_typer(automation_app, name="automation")

_FLAG_ALIASES = {"from": "from_addr"}


# --------------------------------------------------------------------------- channels


def _parse_options(args: list[str]) -> dict[str, str]:
    """``--api-url U --from=a@b`` -> {"api_url": "U", "from_addr": "a@b"}."""
    options: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or arg == "--":
            raise InvalidValue(f"unexpected argument {arg!r} (channel options look like --name VALUE)")
        name, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                raise InvalidValue(f"--{name} needs a value")
            value = args[i + 1]
            i += 1
        key = name.replace("-", "_")
        key = _FLAG_ALIASES.get(key, key)
        if key in options:
            raise InvalidValue(f"--{name} is given twice")
        options[key] = value
        i += 1
    return options


def _channel_dict(config: ChannelConfig) -> dict[str, Any]:
    from channels import channel_class

    data = asdict(config)
    data["settings"] = channel_class(config.kind).shown_settings(config.settings)
    return data


@channel_app.command("add", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def channel_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A name for the channel.")],
    kind: Annotated[str, typer.Argument(help="telegram, messenger, email, webhook or outbox.")],
) -> None:
    """Register a channel. Options depend on the kind (`feedcast channel kinds` lists them):

    telegram --token env:VAR [--api-url U];
    messenger --page-token env:VAR [--app-secret env:VAR] [--api-url U];
    email --smtp URL --from ADDR [--user U --password env:VAR] [--rate N] [--connections N];
    webhook --url U [--format slack|discord|json] [--secret env:VAR];
    outbox --dir PATH [--format F].

    Secrets are given as env:VAR: feedcast stores the reference, never the value.
    """
    from channels import channel_class
    from feedcast.watch import validate_name

    validate_name(name)
    cls = channel_class(kind)
    settings = cls.validate_settings(_parse_options(list(ctx.args)))
    State.store().add_channel(name, kind, settings, fixed_recipient=cls.fixed_recipient)
    note = f" (subscriber {cls.fixed_recipient!r} added)" if cls.fixed_recipient else ""
    out.print(f"added {kind} channel {name}{note}", markup=False)


@channel_app.command("kinds")
def channel_kinds(fmt: FormatOpt = Format.table) -> None:
    """List the channel kinds and their options."""
    from channels import KINDS, channel_class

    rows = []
    for kind in KINDS:
        cls = channel_class(kind)
        for option in cls.options:
            rows.append(
                {
                    "kind": kind,
                    "option": "--from" if option.name == "from_addr" else option.flag,
                    "required": option.required,
                    "secret": "env:VAR"
                    if option.secret
                    else ("may be env:VAR" if option.may_be_secret else ""),
                    "default": option.default,
                    "help": option.help,
                }
            )
    if fmt == Format.json:
        _print_json(rows)
        return
    _table(
        ["kind", "option", "required", "secret", "default", "help"],
        [
            [r["kind"], r["option"], "yes" if r["required"] else "", r["secret"], r["default"], r["help"]]
            for r in rows
        ],
    )


@channel_app.command("list")
def channel_list(fmt: FormatOpt = Format.table) -> None:
    """List channels (secrets shown as their env:VAR reference)."""
    channels = State.reader().list_channels()
    if fmt == Format.json:
        _print_json([_channel_dict(c) for c in channels])
        return
    if not channels:
        out.print("no channels yet: feedcast channel add NAME KIND [options]")
        return
    _table(
        ["name", "kind", "active subscribers", "settings", "last error"],
        [
            [
                c.name,
                c.kind,
                c.subscribers,
                " ".join(f"{k}={v}" for k, v in _channel_dict(c)["settings"].items()),
                c.last_error,
            ]
            for c in channels
        ],
    )


@channel_app.command("show")
def channel_show(name: str, fmt: FormatOpt = Format.table) -> None:
    """Show one channel."""
    data = _channel_dict(State.reader().get_channel(name))
    if fmt == Format.json:
        _print_json(data)
        return
    settings = data.pop("settings")
    _fields([*data.items(), *[(f"settings.{k}", v) for k, v in settings.items()]])


@channel_app.command("remove")
def channel_remove(name: str) -> None:
    """Remove a channel and its subscribers (its campaigns stay in the history)."""
    removed = State.reader().remove_channel(name)
    out.print(f"removed channel {name} and {removed} subscriber(s)", markup=False)


@channel_app.command("test")
def channel_test(
    name: str,
    to: Annotated[
        str | None, typer.Option("--to", metavar="R", help="Also send a test message to this recipient.")
    ] = None,
) -> None:
    """Check a channel's credentials and reachability; with --to, send a test message."""
    from channels.base import Outcome
    from feedcast.delivery import check_channel, send_test

    store = State.reader()
    out.print(check_channel(store, name), markup=False)
    if to is not None or store.get_channel(name).kind == "webhook":
        if to is None and store.get_channel(name).kind == "webhook":
            return  # a webhook check does not post; --to webhook posts a test message
        result = send_test(store, name, to)
        if result.outcome is not Outcome.SENT:
            raise FeedcastError(f"test message to {to}: {result.outcome.value}: {result.error}")
        ident = f" (message id {result.message_id})" if result.message_id else ""
        out.print(f"test message sent to {to}{ident}", markup=False)


# --------------------------------------------------------------------------- subscribers


def _subscriber_dict(s: Subscriber) -> dict[str, Any]:
    return asdict(s)


@subscriber_app.command("add")
def subscriber_add(
    channel: Annotated[str, typer.Argument(help="The channel.")],
    recipient: Annotated[str, typer.Argument(help="Chat id or @channel, PSID, email address...")],
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", metavar="T", help="A tag (repeatable): audiences select by tag."),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="A display name.")] = None,
) -> None:
    """Subscribe a recipient to a channel."""
    from feedcast.delivery import make_channel

    store = State.reader()
    address = make_channel(store.get_channel(channel)).validate_recipient(recipient)
    store.add_subscribers(channel, [NewSubscriber(address, tuple(tag or ()), name)], update=False)
    out.print(f"subscribed {address} to {channel}", markup=False)


@subscriber_app.command("import")
def subscriber_import(
    channel: Annotated[str, typer.Argument(help="The channel.")],
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV with a recipient column (or chat_id, psid, email); optional tags (separated by ; or |), name, last_inbound_at."
        ),
    ],
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", metavar="T", help="Add this tag to every imported subscriber."),
    ] = None,
) -> None:
    """Import subscribers from a CSV file. Known recipients get new tags but keep their
    status (an import never resubscribes someone who left); bad rows are reported by line."""
    from feedcast.audience import read_subscribers_csv
    from feedcast.delivery import make_channel

    store = State.reader()
    ch = make_channel(store.get_channel(channel))
    subscribers, bad = read_subscribers_csv(file, ch, tuple(tag or ()))
    news = {s.recipient: s for s in subscribers}
    counts = (
        store.add_subscribers(channel, list(news.values()), source="import")
        if news
        else {"added": 0, "updated": 0, "unchanged": 0}
    )
    for problem in bad[:10]:
        err.print(f"skipped {problem}", markup=False, highlight=False)
    if len(bad) > 10:
        err.print(f"... and {len(bad) - 10} more rows skipped", markup=False)
    out.print(
        f"{channel}: {counts['added']} added, {counts['updated']} updated, {counts['unchanged']} unchanged, {len(bad)} skipped",
        markup=False,
    )


@subscriber_app.command("list")
def subscriber_list(
    channel: Annotated[str | None, typer.Option("--channel", help="Only this channel.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="active, unsubscribed, unreachable or bounced.")
    ] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Only subscribers with this tag.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="At most this many.")] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """List subscribers."""
    if status is not None and status not in SUBSCRIBER_STATUSES:
        raise InvalidValue(f"--status must be one of {', '.join(SUBSCRIBER_STATUSES)}")
    subs = State.reader().list_subscribers(channel, status=status, tag=tag, limit=limit)
    if fmt == Format.json:
        _print_json([_subscriber_dict(s) for s in subs])
        return
    if not subs:
        out.print("no subscribers" + (" matching" if status or tag or channel else ""))
        return
    _table(
        ["channel", "recipient", "status", "tags", "name", "reason", "since"],
        [
            [s.channel, s.recipient, s.status, " ".join(s.tags), s.name, s.status_reason, s.created_at]
            for s in subs
        ],
        optional=["since", "reason", "tags"],
    )


@subscriber_app.command("remove")
def subscriber_remove(channel: str, recipient: str) -> None:
    """Delete a subscriber (their deliveries stay in the history)."""
    State.reader().remove_subscriber(channel, recipient)
    out.print(f"removed {recipient} from {channel}", markup=False)


# --------------------------------------------------------------------------- automations


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


def _events(text: str | None) -> list[str] | None:
    return None if text is None else [e.strip() for e in text.split(",") if e.strip()]


@automation_app.command("add")
def automation_add(
    name: Annotated[str, typer.Argument(help="A name for the automation.")],
    source: Annotated[list[str], typer.Option("--source", metavar="S", help="A source (repeatable).")],
    layout: Annotated[str, typer.Option("--layout", metavar="L", help="A layout name or folder.")],
    channel: Annotated[str, typer.Option("--channel", metavar="C", help="The channel to send on.")],
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


@automation_app.command("edit")
def automation_edit(
    name: Annotated[str, typer.Argument(help="The automation to change.")],
    source: Annotated[
        list[str] | None, typer.Option("--source", metavar="S", help="Replace the sources (repeatable).")
    ] = None,
    layout: Annotated[
        str | None, typer.Option("--layout", metavar="L", help="A layout name or folder.")
    ] = None,
    channel: Annotated[
        str | None, typer.Option("--channel", metavar="C", help="The channel to send on.")
    ] = None,
    audience: Audience = None,
    all_subscribers: Annotated[
        bool, typer.Option("--all-subscribers", help="Send to every active subscriber (drop --audience).")
    ] = False,
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

    changes: dict[str, Any] = {}
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
    ):
        if value is not None:
            changes[key] = value
    if all_subscribers:
        changes["audience"] = None
    if no_where:
        changes["where"] = None
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
    if chosen:
        changes.update(schedule=schedule, every=every, on_new=on_new)
    if not changes:
        raise InvalidValue("nothing to change: give the options to change (see --help)")
    _automation, changed = edit_automation(State.reader(), name, changes)
    out.print(f"{name}: " + (f"changed {', '.join(changed)}" if changed else "nothing changed"), markup=False)


@automation_app.command("list")
def automation_list(fmt: FormatOpt = Format.table) -> None:
    """List automations."""
    automations = State.reader().list_automations()
    if fmt == Format.json:
        _print_json([_automation_dict(a) for a in automations])
        return
    if not automations:
        out.print("no automations yet: feedcast automation add NAME --source S --layout L --channel C")
        return
    from feedcast.automations import schedule_of
    from feedcast.schedule import describe

    _table(
        [
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
        [
            [
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
            ]
            for a in automations
        ],
        optional=["last campaign", "events", "audience", "layout", "next run (UTC)"],
    )


@automation_app.command("show")
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
        _print_json(data)
        return
    _fields([(k, " ".join(v) if isinstance(v, tuple) else v) for k, v in data.items()])


@automation_app.command("remove")
def automation_remove(name: str) -> None:
    """Remove an automation (its campaigns stay in the history)."""
    State.reader().remove_automation(name)
    out.print(f"removed automation {name}", markup=False)


@automation_app.command("pause")
def automation_pause(name: str) -> None:
    """Pause an automation."""
    State.reader().set_automation_status(name, "paused")
    out.print(f"paused {name}", markup=False)


@automation_app.command("resume")
def automation_resume(name: str) -> None:
    """Resume a paused automation."""
    State.reader().set_automation_status(name, "active")
    out.print(f"resumed {name}", markup=False)


# --------------------------------------------------------------------------- send


class _RateColumn(ProgressColumn):
    """Deliveries a second, over the last seconds."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("–/s" if speed is None else f"{speed:,.1f}/s", style="progress.data.speed")


@contextmanager
def _send_bar(*, disable: bool) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr for ``feedcast send``: deliveries recorded of those to do
    (the campaigns of one send added up), their rate, the time taken and left; and the
    callback that moves it, each time the engine records a batch."""
    bar = Progress(
        TextColumn("sending"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=err,
        disable=disable,
        transient=True,
    )
    task = bar.add_task("send", total=None, visible=False)  # shown from the first count
    earlier = [0]  # deliveries of the campaigns this send finished before the current one
    current = [0]  # the current campaign's total

    def progress(done: int, total: int) -> None:
        if done == 0:  # a campaign starts
            earlier[0] += current[0]
            current[0] = total
        bar.update(task, completed=earlier[0] + done, total=earlier[0] + total, visible=True, refresh=True)

    with bar:
        yield progress


def _minutes(when: datetime) -> str:
    """``2026-12-01 09:00`` (seconds only when there are some)."""
    return when.strftime("%Y-%m-%d %H:%M:%S" if when.second else "%Y-%m-%d %H:%M")


def _zone_label(when: datetime, timezone: str, had_offset: bool) -> str:
    if not had_offset:
        return timezone
    offset = when.strftime("%z")
    return "UTC" if offset in ("+0000", "-0000") else f"UTC{offset[:3]}:{offset[3:]}"


def _parse_at(text: str, timezone: str, now: datetime) -> datetime:
    """``send --at``: an ISO date-time in the automation's time zone unless it has an
    offset. Every mistake names the time zone the time was read in."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(timezone)
    try:
        given = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidValue(
            f"--at {text!r} is not an ISO date-time, read in {timezone} unless it has an offset"
            " (e.g. 2026-12-01T09:00 or 2026-12-01T09:00+01:00)"
        ) from None
    had_offset = given.tzinfo is not None
    when = given if had_offset else given.replace(tzinfo=zone)  # the automation's own time zone
    if not had_offset and when.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != given:
        raise InvalidValue(
            f"--at {_minutes(given)} does not exist in {timezone}: the clocks go forward then"
            " (choose a time outside the gap, or give an offset)"
        )
    if when < now - timedelta(minutes=1):
        label = _zone_label(when, timezone, had_offset)
        there = now.astimezone(when.tzinfo)
        raise InvalidValue(
            f"--at {_minutes(when)} ({label}) is in the past; it is now {there:%Y-%m-%d %H:%M} there"
        )
    return when.astimezone(UTC)


@app.command("send")
def send_command(
    automation: Annotated[str, typer.Argument(help="The automation to send.")],
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            metavar="ISO_DATETIME",
            help="Send once at this time (the automation's time zone unless the time has an offset); `feedcast run` or `feedcast serve` sends it.",
        ),
    ] = None,
    deadline: Annotated[
        float | None,
        typer.Option(
            "--deadline",
            metavar="S",
            help="Stop starting deliveries after S seconds (the rest stays pending).",
        ),
    ] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Send an automation now: finish its unfinished campaigns, then build one from the
    items it has not sent yet and deliver it to every active subscriber of its audience."""
    from feedcast.delivery import BuildResult, SendSettings, send_automation

    store = State.reader()
    auto = store.get_automation(automation)
    if at is not None:
        from zoneinfo import ZoneInfo

        when = _parse_at(at, auto.timezone, datetime.now(UTC))
        store.add_scheduled_send(automation, when)
        local = when.astimezone(ZoneInfo(auto.timezone))
        out.print(
            f"{automation} will be sent at {local.isoformat()} ({when.isoformat()} UTC) by `feedcast run` or `feedcast serve`",
            markup=False,
        )
        return
    notes: list[BuildResult] = []
    with _send_bar(disable=fmt != Format.table or not err.is_terminal) as progress:
        results = send_automation(
            store,
            automation,
            settings=SendSettings(deadline=deadline),
            progress=progress,
            on_build=notes.append,
        )
    if fmt == Format.json:
        _print_json(
            {
                "campaigns": [
                    {
                        **asdict(r.campaign),
                        "duration": round(r.duration, 3),
                        "resumed": r.resumed,
                        "rate": round(r.rate, 1),
                    }
                    for r in results
                ],
                "note": notes[0].reason if notes and notes[0].campaign_id is None else None,
                "warnings": list(notes[0].warnings) if notes else [],
            }
        )
    else:
        for note in notes:
            for warning in note.warnings:
                err.print(f"warning: {warning}", markup=False, highlight=False)
            if note.campaign_id is None and note.reason:
                out.print(f"{automation}: {note.reason}", markup=False)
        if results:
            _table(
                [
                    "campaign",
                    "status",
                    "items",
                    "recipients",
                    "sent",
                    "failed",
                    "skipped",
                    "pending",
                    "seconds",
                    "per s",
                ],
                [
                    [
                        f"{r.campaign.id}{' (resumed)' if r.resumed else ''}",
                        r.campaign.status,
                        r.campaign.items,
                        r.campaign.recipients,
                        r.campaign.sent,
                        r.campaign.failed,
                        r.campaign.skipped,
                        r.campaign.pending,
                        f"{r.duration:.1f}",
                        f"{r.rate:.1f}",
                    ]
                    for r in results
                ],
                optional=["seconds", "pending", "skipped", "items"],
            )
    stopped = [r for r in results if r.campaign.status == "stopped"]
    if stopped:
        raise FeedcastError(
            f"campaign {stopped[-1].campaign.id} stopped: {stopped[-1].campaign.error}; its other deliveries stay pending (fix it, then send again)"
        )


# --------------------------------------------------------------------------- sandbox


@app.command("sandbox")
def sandbox_command(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    telegram_port: Annotated[
        int, typer.Option("--telegram-port", help="Telegram Bot API emulator (0: any free port).")
    ] = 8081,
    messenger_port: Annotated[
        int, typer.Option("--messenger-port", help="Messenger Send API emulator.")
    ] = 8082,
    webhooks_port: Annotated[
        int, typer.Option("--webhooks-port", help="Slack, Discord and JSON webhook receivers.")
    ] = 8083,
    smtp_port: Annotated[int, typer.Option("--smtp-port", help="SMTP sink.")] = 8025,
    no_limits: Annotated[
        bool, typer.Option("--no-limits", help="Do not enforce the providers' rate limits.")
    ] = False,
    fault_rate: Annotated[
        float, typer.Option("--fault-rate", help="Fraction of requests answered with a transient error.")
    ] = 0.0,
    drop_rate: Annotated[
        float, typer.Option("--drop-rate", help="Fraction of requests whose connection is dropped.")
    ] = 0.0,
    seed: Annotated[int | None, typer.Option("--seed", help="Make faults repeatable.")] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Run local emulators of Telegram, Messenger, SMTP and webhooks for rehearsals
    without real tokens, until Ctrl-C. --format json prints their URLs as one JSON line."""
    import json
    import signal
    import threading

    from feedcast.sandbox.run import SANDBOX_ENV, Sandbox, SandboxPorts

    for flag, rate in (("--fault-rate", fault_rate), ("--drop-rate", drop_rate)):
        if not 0.0 <= rate <= 1.0:
            raise InvalidValue(f"{flag} must be between 0 and 1")
    ports = SandboxPorts(
        telegram=telegram_port, messenger=messenger_port, smtp=smtp_port, webhooks=webhooks_port
    )
    try:
        sandbox = Sandbox(
            host, ports, limits=not no_limits, fault_rate=fault_rate, drop_rate=drop_rate, seed=seed
        )
        sandbox.start()
    except OSError as exc:
        raise UserError(
            f"cannot listen on {host}: {exc.strerror or exc} (choose other ports, or 0 for any)"
        ) from None

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        # `kill` stops it as cleanly as Ctrl-C, also the moment after it printed its URLs
        signal.signal(signal.SIGTERM, interrupt)
        # sources served on this machine (a local blog, a test feed) are on loopback or a
        # private network, which feedcast refuses unless told
        env = {**SANDBOX_ENV, "FEEDCAST_ALLOW_PRIVATE_NETWORKS": "1"}
        if fmt == Format.json:
            print(json.dumps({"urls": sandbox.urls, "env": env}), flush=True)
        else:
            _table(["emulator", "url"], [[k, v] for k, v in sandbox.urls.items()], title="feedcast sandbox")
            out.print("Rehearse with these credentials (not secret) and channels:", markup=False)
            for key, value in SANDBOX_ENV.items():
                if key == "FEEDCAST_ALLOW_PRIVATE_NETWORKS":
                    continue  # said below, with why
                out.print(f"  export {key}={value}", markup=False, highlight=False)
            out.print(
                "  export FEEDCAST_ALLOW_PRIVATE_NETWORKS=1   # also poll sources on this machine or a private network",
                markup=False,
                highlight=False,
            )
            for line in sandbox.channel_commands():
                out.print(f"  {line}", markup=False, highlight=False)
            out.print(
                "Each emulator shows what it received at /_sandbox/received and /_sandbox/stats. Ctrl-C stops.",
                markup=False,
            )
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        stats = sandbox.stats()
        sandbox.stop()
        if fmt != Format.json:
            out.print(
                f"sandbox stopped: telegram {stats['telegram']['accepted']} accepted, "
                f"messenger {stats['messenger']['accepted']}, email {stats['smtp']['accepted']}",
                markup=False,
            )


# --------------------------------------------------------------------------- run


@app.command("run")
def run_command(
    no_poll: Annotated[
        bool, typer.Option("--no-poll", help="Only run due automations, do not poll sources.")
    ] = False,
    fmt: FormatOpt = Format.table,
) -> None:
    """One pass of due work, for cron or a quick check: poll the due sources, then run
    every due automation (its schedule has come, new items for --on-new, a send --at)."""
    from feedcast import watch
    from feedcast.automations import run_due

    store = State.reader()
    polled = [] if no_poll else watch.poll(store)
    results = run_due(store)
    if fmt == Format.json:
        _print_json(
            {
                "polled": [asdict(p) for p in polled],
                "automations": [
                    {
                        "automation": r.automation,
                        "trigger": r.trigger,
                        "note": r.note,
                        "error": r.error,
                        "campaigns": [asdict(c.campaign) for c in r.campaigns],
                    }
                    for r in results
                ],
            }
        )
    else:
        if not no_poll:
            new = sum(p.new for p in polled)
            out.print(f"polled {len(polled)} due source(s): {new} new item(s)", markup=False)
        if not results:
            out.print("no automation due", markup=False)
        rows: list[list[Any]] = []
        for r in results:
            if not r.campaigns:
                rows.append([r.automation, r.trigger, "", "", "", "", r.error or r.note])
            for c in r.campaigns:
                rows.append(
                    [
                        r.automation,
                        r.trigger,
                        c.campaign.id,
                        c.campaign.status,
                        c.campaign.sent,
                        c.campaign.failed + c.campaign.skipped,
                        c.campaign.error or "",
                    ]
                )
        if rows:
            _table(["automation", "trigger", "campaign", "status", "sent", "failed/skipped", "note"], rows)
    errors = [r for r in results if r.error]
    if errors:
        raise FeedcastError(
            f"{len(errors)} automation(s) failed; first: {errors[0].automation}: {errors[0].error}"
        )


# --------------------------------------------------------------------------- serve


@app.command("serve")
def serve_command(
    port: Annotated[
        int,
        typer.Option(
            "--port", help="Port of the Prefect server (and UI) started when PREFECT_API_URL is not set."
        ),
    ] = 4200,
    every: Annotated[
        int,
        typer.Option("--every", metavar="SECONDS", help="How often due sources and automations are checked."),
    ] = 60,
    limit: Annotated[
        int, typer.Option("--limit", help="Flow runs at once (each automation runs in its own process).")
    ] = 8,
    prefect_home: Annotated[
        Path | None,
        typer.Option(
            "--prefect-home",
            help="Where the started Prefect server keeps its SQLite database (default: .feedcast/prefect beside the feedcast database).",
        ),
    ] = None,
) -> None:
    """Run feedcast unattended on this machine: a Prefect server (unless PREFECT_API_URL
    names one) and the scheduled deployments, until Ctrl-C or SIGTERM (both stop every
    process it started, flow runs included, within seconds)."""
    import os

    if every < 5:
        raise InvalidValue("--every must be at least 5 seconds")
    if limit < 1:
        raise InvalidValue("--limit must be at least 1")

    def log(line: str) -> None:
        out.print(line, markup=False, highlight=False)

    db = State.db.resolve()
    os.environ["FEEDCAST_DB"] = str(db)
    from flows.serve import supervise

    try:
        status = supervise(db, every=every, limit=limit, port=port, home=prefect_home, log=log)
    except RuntimeError as exc:
        raise FeedcastError(str(exc)) from None
    log("stopped")
    if status:
        raise typer.Exit(status)


# --------------------------------------------------------------------------- apply / export


@app.command("apply")
def apply_command(
    file: Annotated[Path, typer.Argument(help="A YAML file: sources, channels, subscribers, automations.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change, change nothing.")
    ] = False,
    prune: Annotated[
        bool,
        typer.Option("--prune", help="Also remove sources, channels and automations the file does not list."),
    ] = False,
    no_fetch: Annotated[
        bool, typer.Option("--no-fetch", help="Register new sources without their baseline fetch.")
    ] = False,
    fmt: FormatOpt = Format.table,
) -> None:
    """Make the set-up match a YAML file (idempotent): prints what it created, changed
    and removed. Everything is checked first; errors name the file, entry and field."""
    from feedcast.config import apply_config, load_config, plan_config

    store = State.store()
    config = load_config(file)
    plan = plan_config(store, config, file, prune=prune)
    notes = [] if dry_run else apply_config(store, plan, fetch=not no_fetch)
    if fmt == Format.json:
        _print_json(
            {
                "dry_run": dry_run,
                "created": plan.created,
                "changed": plan.changed,
                "removed": plan.removed,
                "unchanged": plan.unchanged,
                "kept": plan.kept,
                "notes": notes,
            }
        )
        return
    prefix = "would be " if dry_run else ""
    for label, entries in (("created", plan.created), ("changed", plan.changed), ("removed", plan.removed)):
        for entry in entries:
            out.print(f"{prefix}{label}: {entry}", markup=False, highlight=False)
    for note in notes:
        out.print(f"  {note}", markup=False, highlight=False)
    for entry in plan.kept:
        out.print(f"kept (not in the file; --prune removes it): {entry}", markup=False, highlight=False)
    if plan.empty:
        out.print(f"{file}: nothing to change ({len(plan.unchanged)} entries up to date)", markup=False)
    elif dry_run:
        out.print("dry run: nothing was changed", markup=False)


@app.command("export")
def export_command(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", metavar="FILE", help="Write to FILE instead of stdout.")
    ] = None,
) -> None:
    """Write the current sources, channels and automations as YAML for `feedcast apply`
    (secrets stay env:VAR references; subscribers are data: see `feedcast subscriber list`)."""
    from feedcast.config import export_config

    notes: list[str] = []
    text = export_config(State.reader(), notes)
    for note in notes:
        err.print(f"warning: {note}", markup=False)
    if output is None:
        from feedcast.terminal import literal

        # to a file or pipe as it is; on a terminal its control characters shown
        sys.stdout.write(literal(text, newlines=True) if sys.stdout.isatty() else text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {output}: {exc.strerror or exc}") from None
    out.print(f"wrote {output}", markup=False)
