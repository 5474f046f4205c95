"""``feedcast send``: an automation now, with a progress bar, or once at a given time."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

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

from feedcast.cli._common import DeadlineOpt, Format, FormatOpt, State, err, out, show_json, show_table
from feedcast.kernel.errors import FeedcastError, InvalidValue
from feedcast.store import Store

if TYPE_CHECKING:
    from feedcast.delivery import BuildResult, CampaignResult

__all__ = ["commands", "send_bar"]

commands = typer.Typer()


class _RateColumn(ProgressColumn):
    """Deliveries a second, over the last seconds."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("–/s" if speed is None else f"{speed:,.1f}/s", style="progress.data.speed")


@contextmanager
def send_bar(*, disable: bool) -> Iterator[Callable[[int, int], None]]:
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


@commands.command("send")
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
    deadline: DeadlineOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Send an automation now: finish its unfinished campaigns, then build one from the
    items it has not sent yet and deliver it to every active subscriber of its audience."""
    from feedcast.delivery import SendSettings, send_automation

    store = State.reader()
    auto = store.get_automation(automation)
    if at is not None:
        _send_at(store, automation, auto.timezone, at)
        return
    notes: list[BuildResult] = []
    with send_bar(disable=fmt != Format.table or not err.is_terminal) as progress:
        results = send_automation(
            store,
            automation,
            settings=SendSettings(deadline=deadline),
            progress=progress,
            on_build=notes.append,
        )
    if fmt == Format.json:
        show_json(_sent_json(results, notes))
    else:
        _print_sent(automation, results, notes)
    stopped = [r for r in results if r.campaign.status == "stopped"]
    if stopped:
        raise FeedcastError(
            f"campaign {stopped[-1].campaign.id} stopped: {stopped[-1].campaign.error}; its other deliveries stay pending (fix it, then send again)"
        )


def _send_at(store: Store, automation: str, timezone: str, at: str) -> None:
    """``send --at``: recorded for `feedcast run` or `feedcast serve` to send."""
    from zoneinfo import ZoneInfo

    when = _parse_at(at, timezone, datetime.now(UTC))
    store.add_scheduled_send(automation, when)
    local = when.astimezone(ZoneInfo(timezone))
    out.print(
        f"{automation} will be sent at {local.isoformat()} ({when.isoformat()} UTC) by `feedcast run` or `feedcast serve`",
        markup=False,
    )


def _sent_json(results: Sequence[CampaignResult], notes: Sequence[BuildResult]) -> dict[str, Any]:
    return {
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


def _print_sent(automation: str, results: Sequence[CampaignResult], notes: Sequence[BuildResult]) -> None:
    for note in notes:
        for warning in note.warnings:
            err.print(f"warning: {warning}", markup=False, highlight=False)
        if note.campaign_id is None and note.reason:
            out.print(f"{automation}: {note.reason}", markup=False)
    if results:
        show_table(
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
