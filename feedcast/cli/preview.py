"""``feedcast preview``: what a layout makes of real items, or what an automation would
send now, before anything is sent (:mod:`feedcast.preview` builds it; its terminal view
is :mod:`feedcast.cli.preview_terminal`, both loaded when the command runs)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from feedcast.cli._common import Format, FormatOpt, State, err, out, show_json, write_file
from feedcast.kernel.errors import FeedcastError, UserError
from feedcast.store import Store

if TYPE_CHECKING:
    from feedcast.preview import Preview

__all__ = ["commands"]

commands = typer.Typer()

AutomationArg = Annotated[
    str | None,
    typer.Argument(help="An automation: its sources, layout, channel, time zone and locale."),
]
Sources = Annotated[
    list[str] | None,
    typer.Option("--source", metavar="S", help="A source whose latest items to render (repeatable)."),
]
LayoutName = Annotated[
    str | None,
    typer.Option(
        "--layout", metavar="L", help="A layout name or folder; user layouts from FEEDCAST_LAYOUTS."
    ),
]
ChannelKind = Annotated[
    str | None,
    typer.Option("--channel-kind", metavar="K", help="telegram, messenger, email, slack, discord or json."),
]
Limit = Annotated[
    int | None,
    typer.Option(
        "--limit",
        metavar="N",
        help="How many items, newest first (default: the layout's max_items, 3 per item).",
    ),
]
Timezone = Annotated[
    str | None,
    typer.Option(
        "--timezone", metavar="TZ", help="IANA time zone of dates (default: the automation's, or UTC)."
    ),
]
Locale = Annotated[
    str | None,
    typer.Option(
        "--locale",
        metavar="LOC",
        help="Locale of dates, prices and the layout's words, e.g. fr_FR, ar (default: the automation's, or en).",
    ),
]
HtmlFile = Annotated[
    Path | None,
    typer.Option(
        "--html", metavar="FILE", help="Write a visual preview (one self-contained HTML page) to FILE."
    ),
]


@commands.command("preview")
def preview_command(
    automation: AutomationArg = None,
    source: Sources = None,
    layout: LayoutName = None,
    channel_kind: ChannelKind = None,
    limit: Limit = None,
    timezone: Timezone = None,
    locale: Locale = None,
    html_file: HtmlFile = None,
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
    from feedcast.preview import build_preview, preview_automation, preview_html

    store = State.reader()
    if automation is not None:
        _automation_alone(source, channel_kind)
        preview = preview_automation(
            store, automation, layout=layout, limit=limit, timezone=timezone, locale=locale
        )
    else:
        source, layout, channel_kind = _sources_given(source, layout, channel_kind)
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
            f"wrote {html_file}: {preview.layout.name} → {preview.kind}, {preview.summary()}", markup=False
        )
        if preview.verdict is not None:
            out.print(preview.verdict, markup=False, highlight=False)
    else:
        print_preview(preview, out)
    if automation is not None and not preview.items and fmt != Format.json:
        _latest_items_hint(store, automation, preview)
    _fail_on_invalid(preview.errors)


def _automation_alone(source: list[str] | None, channel_kind: str | None) -> None:
    """An automation has its own sources and channel."""
    given = [flag for flag, value in (("--source", source), ("--channel-kind", channel_kind)) if value]
    if given:
        raise UserError(
            f"{' and '.join(given)} cannot be combined with an automation (it has its own); "
            "feedcast preview --source S --layout L --channel-kind K renders any sources"
        )


def _sources_given(
    source: list[str] | None, layout: str | None, channel_kind: str | None
) -> tuple[list[str], str, str]:
    """Without an automation, the three of --source, --layout and --channel-kind."""
    if not source or not layout or not channel_kind:
        from feedcast.preview import CHANNEL_KINDS

        given_flags = (("--source", source), ("--layout", layout), ("--channel-kind", channel_kind))
        raise UserError(
            f"{', '.join(flag for flag, value in given_flags if not value)} required: "
            f"feedcast preview AUTOMATION"
            f" or feedcast preview --source S --layout L --channel-kind {'|'.join(CHANNEL_KINDS)}"
        )
    return source, layout, channel_kind


def _latest_items_hint(store: Store, automation: str, preview: Preview) -> None:
    """Nothing queued for the automation: how to see its layout anyway."""
    auto = store.get_automation(automation)
    out.print(
        f"to see its layout on the sources' latest items: feedcast preview"
        f" {' '.join('--source ' + s for s in auto.sources)} --layout {preview.layout.name}"
        f" --channel-kind {preview.kind}",
        markup=False,
        highlight=False,
    )


def _fail_on_invalid(errors: Sequence[str]) -> None:
    """One error line per invalid payload, the last as the exit status 1."""
    if errors:
        for line in errors[:-1]:
            err.print(f"error: {line}", highlight=False, markup=False)
        raise FeedcastError(errors[-1])
