"""``feedcast sandbox``, ``feedcast run`` and ``feedcast serve``: rehearsing with
local emulators, one pass of due work, feedcast unattended."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from feedcast.cli._common import Format, FormatOpt, State, out, show_json, show_table
from feedcast.kernel.errors import FeedcastError, InvalidValue, UserError

if TYPE_CHECKING:
    from feedcast.automations import RunResult
    from feedcast.compose import ComposedRun
    from feedcast.sandbox.run import Sandbox, SandboxPorts

__all__ = ["commands"]

commands = typer.Typer()


TelegramPort = Annotated[
    int, typer.Option("--telegram-port", help="Telegram Bot API emulator (0: any free port).")
]
MessengerPort = Annotated[int, typer.Option("--messenger-port", help="Messenger Send API emulator.")]
WebhooksPort = Annotated[
    int, typer.Option("--webhooks-port", help="Slack, Discord and JSON webhook receivers.")
]
NoLimits = Annotated[bool, typer.Option("--no-limits", help="Do not enforce the providers' rate limits.")]
FaultRate = Annotated[
    float, typer.Option("--fault-rate", help="Fraction of requests answered with a transient error.")
]
DropRate = Annotated[
    float, typer.Option("--drop-rate", help="Fraction of requests whose connection is dropped.")
]


@commands.command("sandbox")
def sandbox_command(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    telegram_port: TelegramPort = 8081,
    messenger_port: MessengerPort = 8082,
    webhooks_port: WebhooksPort = 8083,
    smtp_port: Annotated[int, typer.Option("--smtp-port", help="SMTP sink.")] = 8025,
    no_limits: NoLimits = False,
    fault_rate: FaultRate = 0.0,
    drop_rate: DropRate = 0.0,
    seed: Annotated[int | None, typer.Option("--seed", help="Make faults repeatable.")] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Run local emulators of Telegram, Messenger, SMTP and webhooks for rehearsals
    without real tokens, until Ctrl-C. --format json prints their URLs as one JSON line."""
    import json
    import signal
    import threading

    from feedcast.sandbox.run import SANDBOX_ENV, SandboxPorts

    for flag, rate in (("--fault-rate", fault_rate), ("--drop-rate", drop_rate)):
        if not 0.0 <= rate <= 1.0:
            raise InvalidValue(f"{flag} must be between 0 and 1")
    ports = SandboxPorts(
        telegram=telegram_port, messenger=messenger_port, smtp=smtp_port, webhooks=webhooks_port
    )
    sandbox = _start_sandbox(
        host, ports, limits=not no_limits, fault_rate=fault_rate, drop_rate=drop_rate, seed=seed
    )

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
            _print_sandbox(sandbox)
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


def _start_sandbox(
    host: str, ports: SandboxPorts, *, limits: bool, fault_rate: float, drop_rate: float, seed: int | None
) -> Sandbox:
    from feedcast.sandbox.run import Sandbox

    try:
        sandbox = Sandbox(host, ports, limits=limits, fault_rate=fault_rate, drop_rate=drop_rate, seed=seed)
        sandbox.start()
    except OSError as exc:
        raise UserError(
            f"cannot listen on {host}: {exc.strerror or exc} (choose other ports, or 0 for any)"
        ) from None
    return sandbox


def _print_sandbox(sandbox: Sandbox) -> None:
    """The emulators' URLs, and the environment and channels to rehearse with."""
    from feedcast.sandbox.run import SANDBOX_ENV

    show_table(["emulator", "url"], [[k, v] for k, v in sandbox.urls.items()], title="feedcast sandbox")
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


# --------------------------------------------------------------------------- run


@commands.command("run")
def run_command(
    no_poll: Annotated[
        bool, typer.Option("--no-poll", help="Only run due automations, do not poll sources.")
    ] = False,
    fmt: FormatOpt = Format.table,
) -> None:
    """One pass of due work, for cron or a quick check: poll the due sources, then run
    every due automation (its schedule has come, new items for --on-new, a send --at)
    and send the composed campaigns whose time has come."""
    from feedcast import watch
    from feedcast.automations import run_due
    from feedcast.compose import run_due_composed

    store = State.reader()
    polled = [] if no_poll else watch.poll(store)
    results = run_due(store)
    composed = run_due_composed(store)
    if fmt == Format.json:
        show_json(
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
                "campaigns": [
                    {
                        "campaign": c.campaign,
                        "note": c.note,
                        "error": c.error,
                        "campaigns": [asdict(r.campaign) for r in c.campaigns],
                    }
                    for c in composed
                ],
            }
        )
    else:
        if not no_poll:
            new = sum(p.new for p in polled)
            out.print(f"polled {len(polled)} due source(s): {new} new item(s)", markup=False)
        _print_run(results)
        _print_composed(composed)
    errors = [r for r in results if r.error]
    if errors:
        raise FeedcastError(
            f"{len(errors)} automation(s) failed; first: {errors[0].automation}: {errors[0].error}"
        )
    failed = [c for c in composed if c.error]
    if failed:
        raise FeedcastError(
            f"{len(failed)} campaign(s) failed; first: {failed[0].campaign}: {failed[0].error}"
        )


def _print_composed(runs: Sequence[ComposedRun]) -> None:
    """A line per campaign a composed campaign's send made, or why it made none."""
    rows: list[list[Any]] = []
    for run in runs:
        if not run.campaigns:
            rows.append([run.campaign, "", "", "", "", run.error or run.note])
        for c in run.campaigns:
            info = c.campaign
            rows.append([run.campaign, info.id, info.channel, info.status, info.sent, info.error or ""])
    if rows:
        show_table(["campaign", "id", "channel", "status", "sent", "note"], rows)


def _print_run(results: Sequence[RunResult]) -> None:
    """A line per campaign the pass sent, or per automation that sent none."""
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
        show_table(["automation", "trigger", "campaign", "status", "sent", "failed/skipped", "note"], rows)


# --------------------------------------------------------------------------- serve


@commands.command("serve")
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
