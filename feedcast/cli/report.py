"""``feedcast report`` and ``feedcast export-history``: the analysts' side of the CLI.
Both read through short, retried read-only
connections: the flows keep writing meanwhile."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from feedcast.cli._common import Format, FormatOpt, State, out, show_json, show_table, write_file

if TYPE_CHECKING:
    from feedcast.store.reports import ReportData

__all__ = ["commands"]

commands = typer.Typer()

SinceOpt = Annotated[
    str | None,
    typer.Option(
        "--since",
        metavar="DATE",
        help="Only campaigns created since DATE: YYYY-MM-DD, an ISO date-time (UTC) or a span (30d, 12h).",
    ),
]


@commands.command("report")
def report_command(
    html_file: Annotated[
        Path | None,
        typer.Option(
            "--html", metavar="FILE", help="Write the report with charts (one self-contained page)."
        ),
    ] = None,
    since: SinceOpt = None,
    automation: Annotated[
        str | None, typer.Option("--automation", metavar="A", help="Only the campaigns of this automation.")
    ] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """What was sent, to whom, what worked, which sources are healthy: tables here, or
    charts in an HTML page (--html FILE)."""
    from feedcast.report import build_report, parse_since, report_html, report_json, scope_line

    store = State.reader()
    data = build_report(store, since=parse_since(since), automation=automation)
    if html_file is not None:
        write_file(html_file, report_html(data, database=str(store.path)))
    if fmt == Format.json:
        show_json(report_json(data))
        return
    if html_file is not None:
        out.print(
            f"wrote {html_file}: {data.campaigns_total} campaign(s), {scope_line(data)}",
            markup=False,
            highlight=False,
        )
        return
    _print_report(data)


def _print_report(data: ReportData) -> None:
    """The totals, then a table per section (or a line saying it is empty)."""
    from feedcast.report import (
        activity_rows,
        campaign_rows,
        failure_rows,
        item_rows,
        scope_line,
        source_rows,
        totals_line,
    )

    totals = totals_line(data)
    show_table(
        [k for k, _ in totals], [[v for _, v in totals]], title=f"feedcast report ({scope_line(data)})"
    )
    sections = (
        ("Campaigns (newest first)", campaign_rows(data), "No campaigns yet."),
        ("Failed and skipped, by reason", failure_rows(data), "Nothing failed or was skipped."),
        ("Top items by clicks", item_rows(data), "No clicks yet."),
        ("Source health", source_rows(data), "No sources yet."),
        ("Activity per automation and day", activity_rows(data), "No activity yet."),
    )
    for title, (columns, rows), empty in sections:
        if rows:
            show_table(columns, rows, title=title)
        else:
            out.print(f"{title}: {empty}", markup=False, highlight=False)


@commands.command("export-history")
def export_history_command(
    parquet: Annotated[
        Path, typer.Option("--parquet", metavar="DIR", help="Folder to write the Parquet files into.")
    ],
    since: SinceOpt = None,
) -> None:
    """Write send_history, campaigns, campaign_report, clicks and subscription_events as
    Parquet files into DIR (each written to a temporary name, then renamed), for data
    warehouses, pandas or polars."""
    from feedcast.report import parse_since

    counts = State.reader().export_history(parquet, since=parse_since(since))
    show_table(
        ["file", "rows"],
        [[str(parquet / f"{stem}.parquet"), f"{n:,}"] for stem, n in counts.items()],
        full=None,
    )
