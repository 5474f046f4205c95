"""The ``feedcast`` command line.

Every command takes the global ``--db PATH`` (env ``FEEDCAST_DB``); every list/show
command takes ``--format table|json``. A user's mistake prints one line on stderr
and exits 2; a busy or broken database exits 1; never a traceback for either.
"""

from __future__ import annotations

import atexit
import csv
import io
import json
import logging
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from feedcast import watch
from feedcast.kernel.durations import human_duration, parse_duration
from feedcast.kernel.errors import FeedcastError, NotFound, UserError
from feedcast.kernel.models import Source
from feedcast.store import PollSummary, Store, default_db_path
from feedcast.terminal import console, json_literal, literal, print_fields, print_table

__all__ = ["app", "main"]

app = typer.Typer(
    name="feedcast",
    help="Turn feeds, blogs and product catalogues into messaging campaigns, recorded in DuckDB.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
source_app = typer.Typer(help="Register and manage content sources.", no_args_is_help=True)
app.add_typer(source_app, name="source")

# text from outside (titles, URLs, errors, names) is printed literally: these consoles
# parse no markup or emoji codes and escape control characters (feedcast.terminal)
out = console()
err = console(stderr=True)


class Format(StrEnum):
    table = "table"
    json = "json"


class SqlFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


class State:
    db: Path = default_db_path()
    missing: bool = False  # this command read a stand-in: there is no database at db yet
    _empty: Path | None = None

    @classmethod
    def store(cls) -> Store:
        """The database, created if missing: for commands that add something."""
        return Store(cls.db)

    @classmethod
    def reader(cls) -> Store:
        """The database for a command that reads, or needs what an earlier command made.
        When there is none yet, an empty stand-in in a temporary folder: lists are empty,
        names are not found, and no file appears at ``db``."""
        if cls.db.exists():
            return Store(cls.db)
        cls.missing = True
        if cls._empty is None:
            folder = Path(tempfile.mkdtemp(prefix="feedcast-empty-"))
            atexit.register(shutil.rmtree, folder, True)
            cls._empty = folder / "empty.duckdb"
        return Store(cls._empty)

    @classmethod
    def no_database(cls) -> str:
        return f"no database at {cls.db} yet (`feedcast source add NAME URL` creates it)"


FormatOpt = Annotated[Format, typer.Option("--format", help="Output format.")]


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


# --------------------------------------------------------------------------- output helpers


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return int(value.total_seconds())
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _print_json(value: Any) -> None:
    out.print(Text(json_literal(json.dumps(_plain(value), ensure_ascii=False, indent=2))))


def _table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    title: str | None = None,
    *,
    optional: Sequence[str] = (),
    full: str | None = "--format json",
) -> None:
    """Every list: one line per row, cut to the terminal's width, ``optional`` columns
    hidden first on a narrow one, or one record after the other (feedcast.terminal)."""
    print_table(out, columns, rows, title=title, optional=optional, full=full, notes=err)


def _fields(fields: Sequence[tuple[str, Any]], title: str | None = None) -> None:
    """Every show view: a field / value table, long values wrapped."""
    print_fields(out, fields, title=title)


def _source_dict(s: Source) -> dict[str, Any]:
    data = asdict(s)
    data.pop("known", None)
    data["every"] = human_duration(s.every)
    return data


# --------------------------------------------------------------------------- sources


@source_app.command("add")
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
        _print_json({"source": _source_dict(source), "poll": asdict(summary) if summary else None})
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


@source_app.command("list")
def source_list(fmt: FormatOpt = Format.table) -> None:
    """List sources with their health."""
    sources = State.reader().list_sources()
    if fmt == Format.json:
        _print_json([_source_dict(s) for s in sources])
        return
    if not sources:
        out.print("no sources yet: add one with `feedcast source add NAME URL`")
        return
    _table(
        ["name", "kind", "status", "every", "items", "last poll", "next poll", "errors", "last error", "url"],
        [
            [
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
            ]
            for s in sources
        ],
        optional=["next poll", "every", "kind", "errors", "last poll"],
    )


@source_app.command("show")
def source_show(name: str, fmt: FormatOpt = Format.table) -> None:
    """Show one source."""
    source = State.reader().get_source(name)
    data = _source_dict(source)
    if fmt == Format.json:
        _print_json(data)
        return
    _fields(list(data.items()), title=f"source {name}")


@source_app.command("remove")
def source_remove(name: str) -> None:
    """Remove a source with its items and fetch log."""
    removed = State.reader().remove_source(name)
    out.print(f"removed {name} ({removed} items)")


@source_app.command("pause")
def source_pause(name: str) -> None:
    """Stop polling a source (its items stay)."""
    State.reader().set_source_status(name, "paused")
    out.print(f"paused {name}")


@source_app.command("resume")
def source_resume(name: str) -> None:
    """Poll a paused or failing source again, starting now."""
    State.reader().set_source_status(name, "active")
    out.print(f"resumed {name}")


@source_app.command("import-opml")
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
        _print_json(asdict(result))
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


@app.command("poll")
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
        _print_json([asdict(s) for s in summaries])
        return
    if not summaries:
        out.print("nothing due (use --force to poll anyway)")
        return
    shown = summaries
    if len(summaries) > 50:  # a big poll: the sources with news or trouble
        shown = [s for s in summaries if s.new or s.changed or s.error or s.baseline]
    _table(
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


@app.command("items")
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
        _print_json(rows)
        return
    _table(
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


@app.command("sql")
def sql_command(
    query: Annotated[str, typer.Argument(help="One SQL statement (read-only).")],
    fmt: Annotated[SqlFormat, typer.Option("--format", help="table, csv or json.")] = SqlFormat.table,
) -> None:
    """Run a read-only SQL query on the data (DuckDB dialect)."""
    columns, rows = State.reader().query(query)
    if fmt == SqlFormat.json:
        _print_json(rows)
    elif fmt == SqlFormat.csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_plain(r[c]) for c in columns] for r in rows])
        text = buffer.getvalue()
        # to a file or pipe the data as it is; on a terminal its control characters shown
        sys.stdout.write(literal(text, newlines=True) if sys.stdout.isatty() else text)
    else:
        _table(columns, [[r[c] for c in columns] for r in rows], full="--format csv or json")


@app.command("preview")
def preview_command(
    automation: Annotated[
        str | None,
        typer.Argument(help="An automation: its sources, layout, channel, time zone and locale."),
    ] = None,
    source: Annotated[
        list[str] | None,
        typer.Option("--source", metavar="S", help="A source whose latest items to render (repeatable)."),
    ] = None,
    layout: Annotated[
        str | None,
        typer.Option(
            "--layout", metavar="L", help="A layout name or folder; user layouts from FEEDCAST_LAYOUTS."
        ),
    ] = None,
    channel_kind: Annotated[
        str | None,
        typer.Option(
            "--channel-kind", metavar="K", help="telegram, messenger, email, slack, discord or json."
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            metavar="N",
            help="How many items, newest first (default: the layout's max_items, 3 per item).",
        ),
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option(
            "--timezone", metavar="TZ", help="IANA time zone of dates (default: the automation's, or UTC)."
        ),
    ] = None,
    locale: Annotated[
        str | None,
        typer.Option(
            "--locale",
            metavar="LOC",
            help="Locale of dates and prices, e.g. fr_FR (default: the automation's, or en).",
        ),
    ] = None,
    html_file: Annotated[
        Path | None,
        typer.Option(
            "--html", metavar="FILE", help="Write a visual preview (one self-contained HTML page) to FILE."
        ),
    ] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Render items with a layout into a channel's exact payloads, checked.

    feedcast preview AUTOMATION shows exactly the campaign `feedcast send AUTOMATION`
    would build now (its queued items, whether it would go out, to how many);
    feedcast preview --source S --layout L --channel-kind K renders any sources'
    latest items. Shows each message as it reads (default), the payloads (--format
    json) or a visual page (--html FILE). An invalid payload is an error line and exit
    status 1.
    """
    from feedcast.preview import (
        CHANNEL_KINDS,
        build_preview,
        preview_automation,
        preview_html,
        print_preview,
    )

    store = State.reader()
    if automation is not None:
        given = [flag for flag, value in (("--source", source), ("--channel-kind", channel_kind)) if value]
        if given:
            raise UserError(
                f"{' and '.join(given)} cannot be combined with an automation (it has its own); "
                "feedcast preview --source S --layout L --channel-kind K renders any sources"
            )
        preview = preview_automation(
            store, automation, layout=layout, limit=limit, timezone=timezone, locale=locale
        )
        channel_kind = preview.kind
    else:
        if not source or not layout or not channel_kind:
            given_flags = (("--source", source), ("--layout", layout), ("--channel-kind", channel_kind))
            raise UserError(
                f"{', '.join(flag for flag, value in given_flags if not value)} required: "
                f"feedcast preview AUTOMATION"
                f" or feedcast preview --source S --layout L --channel-kind {'|'.join(CHANNEL_KINDS)}"
            )
        preview = build_preview(
            store,
            source,
            layout,
            channel_kind,
            limit=limit,
            timezone=timezone or "UTC",
            locale=locale or "en",
        )
    if html_file is not None:
        try:
            html_file.write_text(preview_html(preview), encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot write {html_file}: {exc.strerror or exc}") from None
    if fmt == Format.json:
        _print_json(preview.payloads())
    elif html_file is not None:
        out.print(
            f"wrote {html_file}: {preview.layout.name} → {channel_kind}, {preview.summary()}", markup=False
        )
        if preview.verdict is not None:
            out.print(preview.verdict, markup=False, highlight=False)
    else:
        print_preview(preview, out)
    if automation is not None and not preview.items and fmt != Format.json:
        auto = store.get_automation(automation)
        out.print(
            f"to see its layout on the sources' latest items: feedcast preview"
            f" {' '.join('--source ' + s for s in auto.sources)} --layout {preview.layout.name}"
            f" --channel-kind {preview.kind}",
            markup=False,
            highlight=False,
        )
    errors = preview.errors
    if errors:
        for line in errors[:-1]:
            err.print(f"error: {line}", highlight=False, markup=False)
        raise FeedcastError(errors[-1])  # one line per invalid payload, exit 1


@app.command("demo")
def demo_command(
    demo_db: Annotated[
        Path,
        typer.Option(
            "--demo-db",
            help="Scratch database for the demo (recreated each run); its other files go beside it.",
        ),
    ] = Path(".feedcast/demo/feedcast-demo.duckdb"),
    keep: Annotated[bool, typer.Option("--keep", help="Keep serving the samples until Ctrl-C.")] = False,
) -> None:
    """Run the pipeline end to end on bundled samples served on loopback."""
    from feedcast.demo import run_demo

    run_demo(Store(demo_db), out, keep=keep)


# the other command modules (channel, subscriber, automation, send, inbox, web, report...)
# register on `app` when imported; not when this file runs as `python -m feedcast.cli`:
# then the __main__ block below imports the real module, which registers them once
if __name__ != "__main__":
    import importlib

    for _module in ("cli_delivery", "cli_inbox", "cli_report", "cli_web"):
        importlib.import_module(f"feedcast.{_module}")


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


if __name__ == "__main__":
    # `python -m feedcast.cli`: run the imported module's app, on which the other
    # command modules registered their commands (this __main__ copy has none of them)
    from feedcast.cli import main as _main

    _main()
