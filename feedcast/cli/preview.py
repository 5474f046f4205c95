"""``feedcast preview``: what a layout makes of real items, or what an automation would
send now, before anything is sent (:mod:`feedcast.preview` builds it; its terminal view
is :mod:`feedcast.cli.preview_terminal`, both loaded when the command runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from feedcast.cli._common import (
    Format,
    FormatOpt,
    State,
    err,
    out,
    show_json,
    write_file,
)
from feedcast.kernel.errors import FeedcastError, UserError

__all__ = ["commands"]

commands = typer.Typer()


@commands.command("preview")
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
    from feedcast.cli.preview_terminal import print_preview
    from feedcast.preview import (
        CHANNEL_KINDS,
        build_preview,
        preview_automation,
        preview_html,
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
        write_file(html_file, preview_html(preview))
    if fmt == Format.json:
        show_json(preview.payloads())
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
