"""``feedcast source ...``, ``feedcast poll``, ``feedcast items`` and ``feedcast sql``:
the content side of the CLI."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import asdict
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from feedcast import watch
from feedcast.cli._common import (
    Format,
    FormatOpt,
    State,
    err,
    out,
    plain,
    show_fields,
    show_json,
    show_list,
    show_table,
    write_out,
)
from feedcast.kernel.durations import human_duration, parse_duration
from feedcast.kernel.errors import UserError
from feedcast.kernel.models import Source
from feedcast.store import PollSummary
from feedcast.terminal import literal

__all__ = ["commands", "source_commands"]

source_commands = typer.Typer()  # feedcast source ...
commands = typer.Typer()  # poll, items, sql


class SqlFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def _source_dict(s: Source) -> dict[str, Any]:
    data = asdict(s)
    data.pop("known", None)
    data["every"] = human_duration(s.every)
    return data


# --------------------------------------------------------------------------- sources


@source_commands.command("add")
def source_add(
    name: Annotated[str, typer.Argument(help="A short unique name, e.g. 'blog'.")],
    url: Annotated[str, typer.Argument(help="Feed, page or catalogue URL.")],
    kind: Annotated[str, typer.Option("--kind", help="auto, feed, page or catalogue.")] = "auto",
    every: Annotated[str, typer.Option("--every", help="Poll interval: 90s, 15m, 2h, 1d.")] = "15m",
    backfill: Annotated[
        int,
        typer.Option(
            "--backfill",
            help="Count the newest N items of the first poll as new: every automation on the source,"
            " also one added later, sends them once.",
        ),
    ] = 0,
    selector: Annotated[
        list[str] | None,
        typer.Option(
            "--selector", help="CSS selector for pages: item=..., title=..., link=... (repeatable)."
        ),
    ] = None,
    no_fetch: Annotated[
        bool, typer.Option("--no-fetch", help="Register only; `poll` takes the baseline.")
    ] = False,
    fmt: FormatOpt = Format.table,
) -> None:
    """Register a source and take its baseline (existing items do not count as new)."""
    selectors = _parse_selectors(selector or [])
    source, summary = watch.add_source(
        State.store(),
        name,
        url,
        kind=kind,
        every=parse_duration(every, minimum=timedelta(seconds=30)),
        backfill=backfill,
        selectors=selectors,
        fetch=not no_fetch,
    )
    if fmt == Format.json:
        show_json({"source": _source_dict(source), "poll": asdict(summary) if summary else None})
        return
    added = Text.assemble("added ", (literal(source.name), "bold"), ": ")
    if summary is None:
        out.print(added.append(f"{literal(source.url)} (not fetched yet)"))
    elif summary.error:
        out.print(added.append(literal(source.url)))
        err.print(f"warning: first fetch failed: {summary.error} (will retry)")
    else:
        detail = f"{source.kind}" + (f" ({source.format})" if source.format else "")
        backfilled = f", {summary.new} counted as new (--backfill)" if summary.new else ""
        out.print(added.append(literal(f"{detail}, {summary.items} items in baseline{backfilled}")))
        if source.site_url:
            out.print(f"  feed discovered on {source.site_url}: {source.url}")


def _parse_selectors(values: Sequence[str]) -> dict[str, str] | None:
    selectors: dict[str, str] = {}
    for value in values:
        key, sep, css = value.partition("=")
        if not sep or not key.strip() or not css.strip():
            raise UserError(f"invalid --selector {value!r}: expected FIELD=CSS, e.g. item=article.post")
        selectors[key.strip()] = css.strip()
    return selectors or None


@source_commands.command("list")
def source_list(fmt: FormatOpt = Format.table) -> None:
    """List sources with their health."""
    show_list(
        fmt,
        State.reader().list_sources(),
        as_json=_source_dict,
        empty="no sources yet: add one with `feedcast source add NAME URL`",
        columns=[
            "name",
            "kind",
            "status",
            "every",
            "items",
            "last poll",
            "next poll",
            "errors",
            "last error",
            "url",
        ],
        row=lambda s: [
            s.name,
            s.kind or "?",
            s.status,
            s.every,
            s.item_count,
            s.last_polled_at,
            s.next_poll_at,
            s.error_count or "",
            s.last_error,
            s.url,
        ],
        optional=["next poll", "every", "kind", "errors", "last poll"],
    )


@source_commands.command("show")
def source_show(name: str, fmt: FormatOpt = Format.table) -> None:
    """Show one source."""
    source = State.reader().get_source(name)
    data = _source_dict(source)
    if fmt == Format.json:
        show_json(data)
        return
    show_fields(list(data.items()), title=f"source {name}")


@source_commands.command("remove")
def source_remove(name: str) -> None:
    """Remove a source with its items and fetch log."""
    removed = State.reader().remove_source(name)
    out.print(f"removed {name} ({removed} items)")


@source_commands.command("pause")
def source_pause(name: str) -> None:
    """Stop polling a source (its items stay)."""
    State.reader().set_source_status(name, "paused")
    out.print(f"paused {name}")


@source_commands.command("resume")
def source_resume(name: str) -> None:
    """Poll a paused or failing source again, starting now."""
    State.reader().set_source_status(name, "active")
    out.print(f"resumed {name}")


@source_commands.command("import-opml")
def source_import_opml(
    file: Annotated[Path, typer.Argument(help="An OPML file (e.g. exported from a feed reader).")],
    every: Annotated[str, typer.Option("--every", help="Poll interval for the imported feeds.")] = "15m",
    fmt: FormatOpt = Format.table,
) -> None:
    """Register every feed of an OPML file; the next `poll` takes their baselines."""
    result = watch.import_opml(
        State.store(), file, every=parse_duration(every, minimum=timedelta(seconds=30))
    )
    if fmt == Format.json:
        show_json(asdict(result))
        return
    out.print(
        f"imported {len(result.added)} sources"
        + (f", skipped {len(result.skipped)}" if result.skipped else "")
    )
    for name in result.added:
        out.print(f"  + {name}")
    for skipped in result.skipped:
        out.print(f"  = {skipped}")


# --------------------------------------------------------------------------- poll and items


@commands.command("poll")
def poll_command(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Sources to poll now, whatever their schedule or backoff (default: all due)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Poll every source now, whatever the schedule.")
    ] = False,
    deadline: Annotated[
        float | None, typer.Option("--deadline", help="Stop after this many seconds.")
    ] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Fetch due sources (or the named ones, now) and record new and changed items."""
    store = State.reader()
    show_progress = fmt == Format.table and err.is_terminal
    with Progress(
        TextColumn("polling"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[last]}", markup=False),
        TimeElapsedColumn(),
        console=err,
        disable=not show_progress,
        transient=True,
    ) as bar:
        task = bar.add_task("poll", total=None, last="")

        def on_due(count: int) -> None:
            bar.update(task, total=count)

        def on_result(summary: PollSummary) -> None:
            bar.update(task, advance=1, last=summary.source)

        summaries = watch.poll(
            store,
            names or None,
            force=force or bool(names),  # a source named is polled now, due or not
            deadline=deadline,
            on_due=on_due,
            progress=on_result,
        )
    if fmt == Format.json:
        show_json([asdict(s) for s in summaries])
        return
    _print_polls(summaries)


def _print_polls(summaries: Sequence[PollSummary]) -> None:
    """A line per source polled (only those with news or trouble in a big poll), and the totals."""
    if not summaries:
        out.print("nothing due (use --force to poll anyway)")
        return
    shown = summaries
    if len(summaries) > 50:  # a big poll: the sources with news or trouble
        shown = [s for s in summaries if s.new or s.changed or s.error or s.baseline]
    show_table(
        ["source", "outcome", "items", "new", "changed", "note"],
        [
            [s.source, s.outcome, s.items, s.new, s.changed, s.error or ("baseline" if s.baseline else "")]
            for s in shown
        ],
    )
    if len(shown) < len(summaries):
        out.print(f"({len(summaries) - len(shown)} sources without news not listed; --format json lists all)")
    failed = sum(1 for s in summaries if s.error)
    new = sum(s.new for s in summaries)
    changed = sum(s.changed for s in summaries)
    out.print(f"{len(summaries)} polled, {new} new, {changed} changed, {failed} failed")


@commands.command("items")
def items_command(
    source: Annotated[str | None, typer.Option("--source", help="Only this source.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="How many, newest first.")] = 20,
    fmt: FormatOpt = Format.table,
) -> None:
    """Show the newest items."""
    if limit < 1:
        raise UserError("--limit must be at least 1")
    rows = State.reader().items(source, limit)
    if fmt == Format.json:
        show_json(rows)
        return
    show_table(
        ["id", "source", "title", "published", "price", "availability", "url"],
        [
            [
                r["id"],
                r["source"],
                r["title"],
                r["published_at"],
                f"{r['sale_price'] or r['price']} {r['currency'] or ''}".strip() if r["price"] else "",
                r["availability"],
                r["url"],
            ]
            for r in rows
        ],
        optional=["availability", "published", "id"],
    )


@commands.command("sql")
def sql_command(
    query: Annotated[str, typer.Argument(help="One SQL statement (read-only).")],
    fmt: Annotated[SqlFormat, typer.Option("--format", help="table, csv or json.")] = SqlFormat.table,
) -> None:
    """Run a read-only SQL query on the data (DuckDB dialect)."""
    columns, rows = State.reader().query(query)
    if fmt == SqlFormat.json:
        show_json(rows)
    elif fmt == SqlFormat.csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[plain(r[c]) for c in columns] for r in rows])
        write_out(buffer.getvalue())
    else:
        show_table(columns, [[r[c] for c in columns] for r in rows], full="--format csv or json")
