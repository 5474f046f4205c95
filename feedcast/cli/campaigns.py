"""``feedcast campaign ...``: composed campaigns, a marketer's message of content modules
sent now or at a local date and time (:mod:`feedcast.compose`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from feedcast.cli._common import (
    DeadlineOpt,
    Format,
    FormatOpt,
    State,
    err,
    out,
    show_fields,
    show_json,
    show_list,
    show_table,
    write_file,
)
from feedcast.cli.send import send_bar
from feedcast.compose import (
    ComposedPlan,
    ComposedRun,
    create_composed,
    plan_composed,
    read_message_file,
    send_composed,
)
from feedcast.kernel.errors import FeedcastError
from feedcast.kernel.models import CampaignInfo, ComposedCampaign

__all__ = ["campaign_commands"]

campaign_commands = typer.Typer()


def _when(composed: ComposedCampaign) -> str:
    if composed.send_at_local:
        return composed.send_at_local
    return "on `campaign send`" if composed.status == "draft" else ""


def _modules(composed: ComposedCampaign) -> str:
    return ", ".join(m.kind + (" + buttons" if m.buttons else "") for m in composed.message.modules)


def _campaign_json(c: CampaignInfo) -> dict[str, Any]:
    """One campaign of a composed campaign (a channel, a language) and how it went."""
    fields = ("id", "channel", "locale", "status", "recipients", "sent", "failed", "skipped", "pending")
    return {key: getattr(c, key) for key in fields}


def _as_json(composed: ComposedCampaign) -> dict[str, Any]:
    return {
        "name": composed.name,
        "status": composed.status,
        "channels": list(composed.channels),
        "audience": composed.audience,
        "locale": composed.locale,
        "timezone": composed.timezone,
        "send_at": composed.send_at.isoformat() if composed.send_at else None,
        "send_at_local": composed.send_at_local,
        "modules": [m.kind for m in composed.message.modules],
        "subject": composed.message.subject,
        "source_file": composed.source_file,
        "created_at": composed.created_at.isoformat() if composed.created_at else None,
        "started_at": composed.started_at.isoformat() if composed.started_at else None,
        "finished_at": composed.finished_at.isoformat() if composed.finished_at else None,
        "error": composed.error,
    }


@campaign_commands.command("create")
def create_command(
    name: Annotated[str, typer.Argument(help="A name for the campaign.")],
    channel: Annotated[
        list[str], typer.Option("--channel", help="A channel to send it on (repeat for several).")
    ],
    file: Annotated[Path, typer.Option("--file", metavar="MESSAGE.yaml", help="The message file.")],
    audience: Annotated[
        str | None, typer.Option("--audience", metavar="TAG", help="Only subscribers with this tag.")
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            metavar="ISO_DATETIME",
            help="Send at this local date and time (in --timezone); `feedcast run` or `serve` sends it.",
        ),
    ] = None,
    timezone: Annotated[str, typer.Option("--timezone", metavar="TZ", help="The zone of --at.")] = "UTC",
    locale: Annotated[
        str | None,
        typer.Option(
            "--locale",
            metavar="LOC",
            help="The language of subscribers whose own is unknown (default: the channel's, else en).",
        ),
    ] = None,
    message_tag: Annotated[
        str | None,
        typer.Option(
            "--message-tag", metavar="TAG", help="Messenger: a permitted tag outside the 24-hour window."
        ),
    ] = None,
    check_media: Annotated[
        bool, typer.Option("--check-media/--no-check-media", help="Check that each media URL answers.")
    ] = True,
    fmt: FormatOpt = Format.table,
) -> None:
    """Compose a campaign from a message file: checked against every channel's provider
    before anything is stored; sent by `campaign send`, or at --at."""
    store = State.store()
    loaded = read_message_file(file, check_media=check_media)
    composed, warnings = create_composed(
        store,
        name,
        channels=channel,
        loaded=loaded,
        audience=audience,
        at=at,
        timezone=timezone,
        locale=locale,
        message_tag=message_tag,
    )
    if fmt == Format.json:
        show_json({**_as_json(composed), "warnings": warnings})
        return
    for warning in warnings:
        err.print(f"warning: {warning}", markup=False, highlight=False)
    files = sum(1 for m in composed.message.modules if m.upload is not None)
    kept = f", {files} file(s) kept" if files else ""
    where = ", ".join(composed.channels)
    if composed.send_at is not None:
        next_step = (
            f"scheduled for {composed.send_at_local}: `feedcast run` or `feedcast serve` sends it then"
        )
    else:
        next_step = f"`feedcast campaign preview {name}` shows it, `feedcast campaign send {name}` sends it"
    out.print(
        f"campaign {name}: {len(composed.message.modules)} module(s){kept} for {where}; {next_step}",
        markup=False,
        highlight=False,
    )


@campaign_commands.command("list")
def list_command(fmt: FormatOpt = Format.table) -> None:
    """Composed campaigns, newest last."""
    store = State.reader()
    show_list(
        fmt,
        store.list_composed(),
        as_json=_as_json,
        empty="no campaigns yet (`feedcast campaign create NAME --channel C --file MESSAGE.yaml`)",
        columns=["name", "status", "channels", "audience", "when", "modules"],
        row=lambda c: [
            c.name,
            c.status,
            ", ".join(c.channels),
            c.audience or "everyone",
            _when(c),
            _modules(c),
        ],
        optional=["modules", "audience"],
    )


@campaign_commands.command("show")
def show_command(
    name: Annotated[str, typer.Argument(help="The campaign.")], fmt: FormatOpt = Format.table
) -> None:
    """A composed campaign: its message, its schedule and how its campaigns went."""
    store = State.reader()
    composed = store.get_composed(name)
    campaigns = [store.campaign(cid) for cid in store.composed_campaign_ids(composed.id)]
    if fmt == Format.json:
        show_json(
            {
                **_as_json(composed),
                "campaigns": [_campaign_json(c) for c in campaigns],
            }
        )
        return
    show_fields(
        [
            ("name", composed.name),
            ("status", composed.status + (f" ({composed.error})" if composed.error else "")),
            ("channels", ", ".join(composed.channels)),
            ("audience", composed.audience or "every active subscriber"),
            ("when", _when(composed)),
            ("language", composed.locale or "each channel's (en by default), or the subscriber's own"),
            ("subject", composed.message.subject or ""),
            ("modules", _modules(composed)),
            ("file", composed.source_file or ""),
        ],
        title=f"campaign {name}",
    )
    if campaigns:
        _campaigns_table([(c, "", None) for c in campaigns])


@campaign_commands.command("preview")
def preview_command(
    name: Annotated[str, typer.Argument(help="The campaign.")],
    html: Annotated[
        Path | None, typer.Option("--html", metavar="FILE", help="Write the preview as an HTML page.")
    ] = None,
    locale: Annotated[
        list[str] | None,
        typer.Option("--locale", metavar="LOC", help="Preview in this language (repeat for several)."),
    ] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """What `campaign send` would send: each channel's provider calls, per language of
    its audience, checked against the provider's rules."""
    from feedcast.preview import composed_preview_html

    store = State.reader()
    plan = plan_composed(store, store.get_composed(name), locales=locale or None)
    if html is not None:
        write_file(html, composed_preview_html(plan))
        out.print(f"wrote {html}", markup=False)
    if fmt == Format.json:
        show_json(_plan_json(plan))
        return
    if html is None:
        _print_plan(plan)


def _plan_json(plan: ComposedPlan) -> dict[str, Any]:
    return {
        "campaign": plan.campaign.name,
        "verdict": plan.verdict,
        "parts": [
            {
                "channel": p.channel.name,
                "format": p.fmt,
                "locale": p.locale,
                "recipients": p.recipients,
                "warnings": list(p.composed.warnings),
                "calls": [
                    {"method": c.method, "body": c.body, "error": e}
                    for c, e in zip(p.calls, p.errors, strict=True)
                ],
            }
            for p in plan.parts
        ],
    }


def _print_plan(plan: ComposedPlan) -> None:
    rows = []
    for part in plan.parts:
        for warning in part.composed.warnings:
            err.print(f"warning: {part.channel.name}: {warning}", markup=False, highlight=False)
        methods = ", ".join(dict.fromkeys(c.method for c in part.calls))
        state = "all valid" if part.problem is None else f"invalid: {part.problem}"
        rows.append(
            [part.channel.name, part.fmt, part.locale, part.recipients, len(part.calls), methods, state]
        )
    show_table(
        ["channel", "format", "language", "recipients", "calls", "methods", "check"],
        rows,
        optional=["methods", "format"],
    )
    out.print(plan.verdict, markup=False, highlight=False)


@campaign_commands.command("send")
def send_command(
    name: Annotated[str, typer.Argument(help="The campaign.")],
    now: Annotated[
        bool, typer.Option("--now", help="Send a scheduled campaign now, before its time.")
    ] = False,
    deadline: DeadlineOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Send a composed campaign now, or resume one that stopped; every active subscriber
    of its audience on each channel gets it once."""
    from feedcast.delivery import SendSettings

    store = State.reader()
    with send_bar(disable=fmt != Format.table or not err.is_terminal) as progress:
        run = send_composed(
            store, name, settings=SendSettings(deadline=deadline), progress=progress, early=now
        )
    if fmt == Format.json:
        show_json(_run_json(run))
    else:
        _print_run(run)
    if run.error is not None:
        raise FeedcastError(
            f"campaign {name!r}: {run.error}; the rest stays pending (fix it, then send again)"
        )


def _run_json(run: ComposedRun) -> dict[str, Any]:
    return {
        "campaign": run.campaign,
        "note": run.note,
        "error": run.error,
        "campaigns": [
            {**_campaign_json(r.campaign), "resumed": r.resumed, "duration": round(r.duration, 3)}
            for r in run.campaigns
        ],
    }


def _print_run(run: ComposedRun) -> None:
    if run.note:
        out.print(f"{run.campaign}: {run.note}", markup=False, highlight=False)
    if run.campaigns:
        _campaigns_table([(r.campaign, " (resumed)" if r.resumed else "", r.duration) for r in run.campaigns])


def _campaigns_table(rows: list[tuple[CampaignInfo, str, float | None]]) -> None:
    """The campaigns of a composed campaign (a channel and language each): how each went,
    with ``(resumed)`` and the seconds it took when it was just sent."""
    timed = any(seconds is not None for _c, _note, seconds in rows)
    columns = [
        "campaign",
        "channel",
        "language",
        "status",
        "recipients",
        "sent",
        "failed",
        "skipped",
        "pending",
    ]
    show_table(
        columns + (["seconds"] if timed else []),
        [
            [
                f"{c.id}{note}",
                c.channel,
                c.locale or "",
                c.status,
                c.recipients,
                c.sent,
                c.failed,
                c.skipped,
                c.pending,
                *([f"{seconds:.1f}"] if seconds is not None else []),
            ]
            for c, note, seconds in rows
        ],
        optional=["seconds", "pending", "skipped", "language"],
    )


@campaign_commands.command("cancel")
def cancel_command(name: Annotated[str, typer.Argument(help="The campaign.")]) -> None:
    """Cancel a campaign: one not started never starts; a started one sends nothing more
    (what it sent stays as it is)."""
    store = State.reader()
    was, stopped = store.cancel_composed(name)
    if was in ("draft", "scheduled"):
        out.print(f"campaign {name} cancelled before it started", markup=False)
    else:
        out.print(
            f"campaign {name} cancelled: {stopped} delivery(ies) will not be made; what was sent stays",
            markup=False,
        )


@campaign_commands.command("remove")
def remove_command(name: Annotated[str, typer.Argument(help="The campaign.")]) -> None:
    """Forget a campaign that never started."""
    State.reader().remove_composed(name)
    out.print(f"campaign {name} removed", markup=False)
