"""The analysts' report: what was sent, to whom, what worked, which sources are healthy.

Plain Python over :meth:`Store.report_data` (the ``campaign_report``, ``source_health``
and ``automation_activity`` views): :func:`build_report` gathers the figures,
:func:`report_html` renders one self-contained page, its charts plain HTML and CSS
(:mod:`feedcast.charts`: no script, no library, a few tens of kB), :func:`report_markdown` the same figures as Markdown
(the Prefect artifact ``feedcast-report``), :func:`report_json` as plain data. Every
section has an empty state: a report on a fresh database reads well.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from feedcast import charts
from feedcast.kernel.errors import InvalidValue
from feedcast.mdtext import md_text
from feedcast.store import Store
from feedcast.store.reports import ReportData

__all__ = ["build_report", "parse_since", "report_html", "report_json", "report_markdown"]

STATUS_COLOURS = {"sent": "#2e7d32", "failed": "#c62828", "skipped": "#f9a825", "pending": "#9e9e9e"}
STATUSES = tuple(STATUS_COLOURS)

_RELATIVE = re.compile(r"^(\d+)\s*([dhw])$")


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """``--since``: a date (``2026-11-01``, midnight UTC), an ISO date-time (UTC when it
    has no offset) or a span back from now (``30d``, ``12h``, ``2w``)."""
    if text is None:
        return None
    value = text.strip()
    match = _RELATIVE.match(value.lower())
    if match:
        unit = {"d": "days", "h": "hours", "w": "weeks"}[match.group(2)]
        return (now or datetime.now(UTC)) - timedelta(**{unit: int(match.group(1))})
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidValue(
            f"--since {text!r} is not a date: use YYYY-MM-DD (midnight UTC), an ISO date-time"
            " (UTC unless it has an offset) or a span such as 30d"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def build_report(
    store: Store,
    *,
    since: datetime | None = None,
    automation: str | None = None,
    now: datetime | None = None,
) -> ReportData:
    """The report's figures (short read-only connections, one per section)."""
    return store.report_data(since=since, automation=automation, now=now or datetime.now(UTC))


def report_json(data: ReportData) -> dict[str, Any]:
    """The report as plain data (``feedcast report --format json``)."""
    return asdict(data)


# --------------------------------------------------------------------------- formatting


def _int(value: Any) -> str:
    return f"{int(value or 0):,}"


def _pct(value: Any) -> str:
    return "–" if value is None else f"{float(value) * 100:.1f} %"


def _when(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, datetime):
        return (
            value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
            if value.tzinfo
            else value.strftime("%Y-%m-%d %H:%M")
        )
    return str(value)


def _seconds(value: Any) -> str:
    if value is None:
        return "–"
    seconds = float(value)
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _short(text: Any, width: int = 60) -> str:
    value = " ".join(str(text or "").split())
    return value if len(value) <= width else value[: width - 1] + "…"


def scope_line(data: ReportData) -> str:
    parts = [f"since {_when(data.since)} UTC" if data.since else "all time"]
    if data.automation:
        parts.append(f"automation {data.automation}")
    return ", ".join(parts)


def campaign_rows(data: ReportData) -> tuple[list[str], list[list[str]]]:
    """The campaigns table, as the terminal, the page and Markdown show it."""
    columns = ["campaign", "created (UTC)", "automation", "channel", "items", "recipients", "sent",
               "failed", "skipped", "pending", "clicks", "click rate", "unsubscribed 7d", "duration"]  # fmt: skip
    rows = [
        [
            str(c["campaign_id"]),
            _when(c["created_at"]),
            str(c["automation"] or ""),
            f"{c['channel']} ({c['channel_kind']})",
            _int(c["items"]),
            _int(c["recipients"]),
            _int(c["sent"]),
            _int(c["failed"]),
            _int(c["skipped"]),
            _int(c["pending"]),
            _int(c["clicks"]),
            _pct(c["click_rate"]),
            _int(c["unsubscribes_7d"]),
            _seconds(c["duration_s"]),
        ]
        for c in data.campaigns
    ]
    return columns, rows


def source_rows(data: ReportData) -> tuple[list[str], list[list[str]]]:
    columns = ["source", "status", "last success (UTC)", "errors in a row", "fetches 30d", "304s",
               "new items/day", "median fetch", "last error"]  # fmt: skip
    rows = [
        [
            str(s["name"]),
            str(s["status"]),
            _when(s["last_success_at"]),
            _int(s["consecutive_errors"]),
            _int(s["fetches"]),
            _pct(s["ratio_304"]),
            f"{float(s['items_per_day']):.2f}",
            "–" if s["median_fetch_ms"] is None else f"{float(s['median_fetch_ms']):.0f} ms",
            _short(s["last_error"], 80),
        ]
        for s in data.sources
    ]
    return columns, rows


def failure_rows(data: ReportData) -> tuple[list[str], list[list[str]]]:
    columns = ["status", "channel kind", "code", "example", "deliveries"]
    rows = [
        [
            str(f["status"]),
            str(f["channel_kind"]),
            str(f["error_code"] or "–"),
            _short(f["error"], 90),
            _int(f["deliveries"]),
        ]
        for f in data.failures
    ]
    return columns, rows


def item_rows(data: ReportData) -> tuple[list[str], list[list[str]]]:
    columns = ["item", "clicks", "unique clickers", "campaigns", "url"]
    rows = [
        [
            _short(i["item"], 70),
            _int(i["clicks"]),
            _int(i["unique_clickers"]),
            _int(i["campaigns"]),
            str(i["url"]),
        ]
        for i in data.top_items
    ]
    return columns, rows


def activity_rows(data: ReportData) -> tuple[list[str], list[list[str]]]:
    columns = ["day", "automation", "campaigns", "items", "recipients", "sent", "failed", "skipped", "clicks"]
    rows = [
        [
            str(a["day"]),
            str(a["automation"] or ""),
            _int(a["campaigns"]),
            _int(a["items"]),
            _int(a["recipients"]),
            _int(a["sent"]),
            _int(a["failed"]),
            _int(a["skipped"]),
            _int(a["clicks"]),
        ]
        for a in data.activity
    ]
    return columns, rows


def totals_line(data: ReportData) -> list[tuple[str, str]]:
    t = data.totals
    return [
        ("campaigns", _int(t["campaigns"])),
        ("deliveries", _int(t["deliveries"])),
        ("sent", _int(t["sent"])),
        ("failed", _int(t["failed"])),
        ("skipped", _int(t["skipped"])),
        ("pending", _int(t["pending"])),
        ("clicks", _int(t["clicks"])),
        ("click rate", _pct(t["click_rate"])),
        ("unsubscribed within 7 days", _int(t["unsubscribes_7d"])),
    ]


# --------------------------------------------------------------------------- Markdown


def _md_cell(value: str) -> str:
    return md_text(value)  # names, titles and errors from outside: literal text


def _md_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
        *("| " + " | ".join(_md_cell(v) for v in row) + " |" for row in rows),
    ]


def report_markdown(data: ReportData, *, campaigns: int = 10) -> str:
    """The report as Markdown (the Prefect artifact ``feedcast-report``): totals, the
    latest campaigns, failures by reason and source health; no charts."""
    lines = [f"## feedcast report ({md_text(scope_line(data))})", ""]
    lines += _md_table([k for k, _ in totals_line(data)], [[v for _, v in totals_line(data)]])
    columns, rows = campaign_rows(data)
    lines += ["", f"### Latest campaigns ({min(campaigns, len(rows))} of {data.campaigns_total})", ""]
    lines += _md_table(columns, rows[:campaigns]) if rows else ["No campaigns yet."]
    columns, rows = failure_rows(data)
    lines += ["", "### Failed and skipped, by reason", ""]
    lines += _md_table(columns, rows[:10]) if rows else ["Nothing failed or was skipped."]
    columns, rows = source_rows(data)
    lines += ["", "### Source health", ""]
    lines += _md_table(columns, rows[:30]) if rows else ["No sources yet."]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- HTML


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


# how each table's columns read: numbers right-aligned; long text may wrap
_NUMERIC = {"campaign", "items", "recipients", "sent", "failed", "skipped", "pending", "clicks", "click rate",
            "unsubscribed 7d", "duration", "errors in a row", "fetches 30d", "304s", "new items/day",
            "median fetch", "unique clickers", "campaigns", "deliveries"}  # fmt: skip
_WRAP = {"last error", "example", "url", "item", "automation"}


def _html_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A table that fits its page: on a desktop its long columns wrap; on a phone each
    row becomes a card of ``label: value`` pairs (no horizontal scrolling)."""

    def kind(column: str) -> str:
        return "num" if column in _NUMERIC else ("wrap" if column in _WRAP else "")

    head = "".join(f'<th class="{kind(c)}" scope="col">{_e(c)}</th>' for c in columns)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{kind(c)}" data-label="{_e(c)}">{_e(v)}</td>'
            for c, v in zip(columns, row, strict=True)
        )
        + "</tr>"
        for row in rows
    )
    return f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _empty(text: str) -> str:
    return charts.empty(text)


def _timeline_chart(data: ReportData) -> str:
    if not data.timeline:
        return _empty(
            "No deliveries yet: they appear here once a campaign is sent (feedcast send AUTOMATION)."
        )
    return charts.time_columns(
        data.timeline,
        bucket=data.bucket,
        group="channel",
        stack="status",
        value="deliveries",
        colours=STATUS_COLOURS,
        unit="deliveries",
        label="Deliveries over time",
    )


def _click_rate_chart(data: ReportData, *, latest: int = 20) -> str:
    rated = [c for c in data.campaigns if c["click_rate"] is not None][:latest]
    if not rated:
        return _empty("No sent campaign yet: click rates appear once deliveries are sent.")
    if not any(c["clicks"] for c in rated):
        return _empty(
            f"No data yet: no clicks on the {len(rated)} latest sent campaign(s). Automations record"
            " clicks with --track-clicks (links go through feedcast web)."
        )
    bars = [
        charts.Bar(
            label=f"#{c['campaign_id']} {_short(c['automation'], 28)} · {_when(c['created_at'])}",
            value=float(c["click_rate"]),
            shown=_pct(c["click_rate"]),
            detail=f"{_int(c['unique_clickers'])} of {_int(c['sent'])} clicked ({_int(c['clicks'])} clicks)",
        )
        for c in rated
    ]
    return charts.bar_list(
        bars,
        label=f"Click rate (unique clickers / sent) of the {len(bars)} latest sent campaigns",
        empty_text="No data yet: no clicks.",
    )


def _top_items_chart(data: ReportData) -> str:
    if not data.top_items:
        return _empty(
            "No clicks yet: automations record clicks with --track-clicks (links go through feedcast web)."
        )
    bars = [
        charts.Bar(
            label=_short(i["item"], 80),
            value=float(i["clicks"]),
            shown=_int(i["clicks"]),
            detail=f"{_int(i['unique_clickers'])} people · {i['url']}",
            colour="#6a1b9a",
        )
        for i in data.top_items
    ]
    return charts.bar_list(bars, label="Clicks per item", empty_text="No data yet: no clicks.")


def _source_chart(data: ReportData) -> str:
    if not data.sources:
        return _empty("No sources yet: add one with feedcast source add NAME URL.")

    def colour(s: dict[str, Any]) -> str:
        if s["status"] != "active":
            return "#9e9e9e"
        return "#c62828" if s["consecutive_errors"] else "#2e7d32"

    bars = [
        charts.Bar(
            label=_short(s["name"], 40),
            value=float(s["items_per_day"]),
            shown=f"{float(s['items_per_day']):.2f}/day",
            detail=f"{s['status']}, {s['consecutive_errors']} errors in a row"
            + (f", last error: {_short(s['last_error'], 80)}" if s["last_error"] else ""),
            colour=colour(s),
        )
        for s in data.sources
    ]
    return charts.bar_list(
        bars,
        label="New items per day per source, last 30 days",
        empty_text="No data yet: no source found new items in the last 30 days (the table below shows their health).",
        legend={"healthy": "#2e7d32", "failing": "#c62828", "paused or gone": "#9e9e9e"},
    )


def _failures_chart(data: ReportData) -> str:
    if not data.failures:
        return _empty("Nothing failed or was skipped.")
    bars = [
        charts.Bar(
            label=f"{f['channel_kind']} {f['error_code'] or '–'}: {_short(f['error'], 60)}",
            value=float(f["deliveries"]),
            shown=_int(f["deliveries"]),
            detail=str(f["status"]),
            colour=STATUS_COLOURS[str(f["status"])],
        )
        for f in data.failures
    ]
    legend = {
        k: STATUS_COLOURS[k] for k in ("failed", "skipped") if any(f["status"] == k for f in data.failures)
    }
    return charts.bar_list(
        bars, label="Failed and skipped deliveries by reason", empty_text="No data yet.", legend=legend
    )


_CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       background: #f5f6f8; color: #1d2330; line-height: 1.4; }
header { background: #1d2330; color: #fff; padding: 20px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; color: #c5cad6; font-size: 13px; overflow-wrap: anywhere; }
main { padding: 20px 32px 40px; max-width: 1280px; margin: 0 auto; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(118px, 1fr)); gap: 12px; }
.card { background: #fff; border-radius: 8px; padding: 12px 14px; box-shadow: 0 1px 2px #0001; }
.card b { display: block; font-size: 22px; font-variant-numeric: tabular-nums; }
.card span { color: #5b6475; font-size: 12px; }
section { background: #fff; border-radius: 8px; padding: 16px 20px; margin-top: 18px;
          box-shadow: 0 1px 2px #0001; min-width: 0; }
section h2 { font-size: 16px; margin: 0 0 12px; }
.empty { color: #5b6475; background: #f5f6f8; border: 1px dashed #c5cad6; border-radius: 6px;
         padding: 24px; text-align: center; margin: 0 0 12px; }
table.data { border-collapse: collapse; width: 100%; font-size: 13px; }
.data th, .data td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #e6e8ee; vertical-align: top; }
.data th { color: #5b6475; font-weight: 600; font-size: 12px; }
.data td { white-space: nowrap; }
.data .num { text-align: right; font-variant-numeric: tabular-nums; }
.data td.wrap { white-space: normal; overflow-wrap: anywhere; min-width: 8em; }
.data tbody tr:hover { background: #f8f9fb; }
.note { color: #5b6475; font-size: 12px; margin: 8px 0 0; }
@media (max-width: 720px) {
  header { padding: 16px; }
  main { padding: 12px 12px 32px; }
  .cards { grid-template-columns: repeat(auto-fill, minmax(100px, 1fr)); gap: 8px; }
  .card b { font-size: 18px; }
  section { padding: 14px; }
  .data thead { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
  .data, .data tbody, .data tr { display: block; }
  .data tr { display: grid; grid-template-columns: repeat(auto-fill, minmax(96px, 1fr)); gap: 4px 12px;
             padding: 10px 0; border-bottom: 1px solid #e6e8ee; }
  .data td { display: block; padding: 0; border: 0; white-space: normal; overflow-wrap: anywhere; text-align: left; }
  .data td.num { text-align: left; }
  .data td::before { content: attr(data-label); display: block; color: #5b6475; font-size: 11px; }
  .data td:first-child { grid-column: 1 / -1; font-weight: 600; }
  .data td:first-child::before { display: inline; content: attr(data-label) " "; font-size: inherit;
                                  color: inherit; }
}
"""


def _table_or(table: tuple[list[str], list[list[str]]], otherwise: str = "") -> str:
    """A table (columns, rows) as HTML, or ``otherwise`` when it has no row."""
    columns, rows = table
    return _html_table(columns, rows) if rows else otherwise


def _campaigns_section(data: ReportData) -> str:
    columns, rows = campaign_rows(data)
    if not rows:
        return _empty("No campaigns yet: create an automation and run feedcast send AUTOMATION.")
    latest = (
        f'<p class="note">The {len(rows)} latest of {data.campaigns_total:,} campaigns.</p>'
        if data.campaigns_total > len(rows)
        else ""
    )
    return _html_table(columns, rows) + latest


def report_html(data: ReportData, *, title: str = "feedcast report", database: str = "") -> str:
    """One self-contained page, light and without script: the charts are HTML and CSS
    (:mod:`feedcast.charts`), every section has an empty state, nothing is fetched."""
    cards = "".join(
        f'<div class="card"><b>{_e(v)}</b><span>{_e(k)}</span></div>' for k, v in totals_line(data)
    )
    activity = _table_or(activity_rows(data), _empty("No activity yet."))
    sources = _table_or(source_rows(data))
    failures = _table_or(failure_rows(data))
    items = _table_or(item_rows(data))
    subtitle = f"{scope_line(data)} · generated {_when(data.generated_at)} UTC"
    if database:
        subtitle += f" · {database}"
    sections = [
        ("Deliveries over time, per channel and status", _timeline_chart(data)),
        ("Click rate per campaign", _click_rate_chart(data)),
        ("Campaigns", _campaigns_section(data)),
        ("Top items by clicks", _top_items_chart(data) + items),
        ("Failed and skipped deliveries, by reason", _failures_chart(data) + failures),
        ("Source health", _source_chart(data) + sources),
        ("Activity per automation and day", activity),
    ]
    body = "".join(f"<section><h2>{_e(name)}</h2>{content}</section>" for name, content in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}{charts.CSS}</style></head><body>"
        f"<header><h1>{_e(title)}</h1><p>{_e(subtitle)}</p></header>"
        f'<main><div class="cards">{cards}</div>{body}</main></body></html>\n'
    )
