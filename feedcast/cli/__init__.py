"""The ``feedcast`` command line, the top layer: nothing else in feedcast imports it.

Every command takes the global ``--db PATH`` (env ``FEEDCAST_DB``); every list/show
command takes ``--format table|json``. A user's mistake prints one line on stderr
and exits 2; a busy or broken database exits 1; never a traceback for either.

Each module of this package holds one group of commands on a Typer of its own and
imports :mod:`feedcast.cli._common`, never this file; the tree of commands is put
together here, in the order ``feedcast --help`` lists them (a Typer added without a
name lays its commands out at that level).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from feedcast.cli import (
    automations,
    campaigns,
    channels,
    config,
    demo,
    inbox,
    preview,
    report,
    send,
    serve,
    sources,
    subscribers,
    web,
)
from feedcast.cli._common import State, err, out
from feedcast.kernel.errors import FeedcastError, NotFound, UserError

__all__ = ["app", "err", "main", "out"]

app = typer.Typer(
    name="feedcast",
    help="Turn feeds, blogs and product catalogues into messaging campaigns, recorded in DuckDB.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _root(
    db: Annotated[
        Path,
        typer.Option("--db", envvar="FEEDCAST_DB", help="DuckDB file holding feedcast's data."),
    ] = Path("feedcast.duckdb"),
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log each fetch.")] = False,
) -> None:
    State.db = db
    State.missing = False
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _group(help_text: str, *parts: typer.Typer) -> typer.Typer:
    """A command group (``feedcast channel ...``) made of the commands of ``parts``."""
    group = typer.Typer(help=help_text, no_args_is_help=True)
    for part in parts:
        group.add_typer(part)
    return group


# the commands first (poll, items, sql, preview, demo, send, sandbox, run, serve, apply,
# export, inbox, report, export-history, web), then the groups
for _commands in (
    sources.commands,
    preview.commands,
    demo.commands,
    send.commands,
    serve.commands,
    config.commands,
    inbox.commands,
    report.commands,
    web.commands,
):
    app.add_typer(_commands)
app.add_typer(_group("Register and manage content sources.", sources.source_commands), name="source")
app.add_typer(
    _group(
        "Register and manage channels (Telegram, Messenger, email, webhooks, outbox).",
        channels.channel_commands,
        inbox.channel_commands,  # channel replies, channel webhook: the bots' inbound side
    ),
    name="channel",
)
app.add_typer(
    _group("Manage the people (or chats, addresses) a channel sends to.", subscribers.subscriber_commands),
    name="subscriber",
)
app.add_typer(
    _group("Automations: which sources, layout, channel and audience.", automations.automation_commands),
    name="automation",
)
app.add_typer(
    _group(
        "Composed campaigns: a message of content modules, sent now or at a local date and time.",
        campaigns.campaign_commands,
    ),
    name="campaign",
)
app.add_typer(
    _group(
        "Audiences (subscriber tags) open to self-subscription: subscribe pages, bot deep links.",
        web.audience_commands,
    ),
    name="audience",
)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: one line and a non-zero exit for every expected failure."""
    try:
        # standalone: usage errors print the usage and exit 2, as every click program
        app(args=list(argv) if argv is not None else None, prog_name="feedcast")
    except SystemExit as exc:
        if State.missing and exc.code in (0, None):
            err.print(Text(f"note: {State.no_database()}; this showed an empty one", style="dim"))
        raise
    except NotFound as exc:
        hint = f" ({State.no_database()})" if State.missing else ""
        err.print(f"error: {exc}{hint}", highlight=False, markup=False)
        raise SystemExit(2) from None
    except UserError as exc:
        err.print(f"error: {exc}", highlight=False, markup=False)
        raise SystemExit(2) from None
    except FeedcastError as exc:
        err.print(f"error: {exc}", highlight=False, markup=False)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        err.print("interrupted")
        raise SystemExit(130) from None
