"""The report's charts as plain HTML and CSS: no script, no chart library, nothing fetched.

Two kinds, both readable from a phone (390 px) to a desktop, light (a few kB each), and
drawn the same by every browser, by a printer and by a mail client:

* :func:`time_columns`: stacked columns over time buckets (one row of columns per
  series group, e.g. per channel, sharing the time axis and the scale), with tick labels
  at round times (``09:30``, ``26 Nov``) whatever the span;
* :func:`bar_list`: labelled horizontal bars (campaigns, items, sources, reasons).

Each chart has a text alternative (``aria-label``) and per column or bar a tooltip
(``title``). A chart with nothing to draw (no rows, or every value zero) is a
"No data yet" note instead of an empty axis.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

__all__ = ["BUCKETS", "CSS", "Bar", "bar_list", "empty", "nice_scale", "time_columns", "time_ticks"]

BUCKETS: Final[Mapping[str, timedelta]] = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
}
MIN_SLOTS: Final = 12  # a time axis shows at least this many buckets (one bar is not the whole width)
MAX_TICKS: Final = 8  # tick labels on a wide screen; every other one on a phone
# tick spacings, in buckets, for each bucket size (round times of day, weeks, months)
_TICK_STEPS: Final[Mapping[str, tuple[int, ...]]] = {
    "minute": (1, 2, 5, 10, 15, 30, 60, 120, 180, 360),
    "hour": (1, 2, 3, 6, 12, 24, 48, 96, 168),
    "day": (1, 2, 7, 14, 28, 56, 91, 182),
    "week": (1, 2, 4, 8, 13, 26, 52, 104),
}


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def empty(text: str) -> str:
    """The note a section shows instead of a chart (or a table) with nothing in it."""
    return f'<p class="empty">{_e(text)}</p>'


def nice_scale(top: float, *, lines: int = 4, whole: bool = True) -> tuple[float, float]:
    """``(maximum, step)`` of an axis from 0 to at least ``top`` in at most ``lines``
    steps of 1, 2 or 5 times a power of ten (whole numbers when ``whole``)."""
    if top <= 0:
        return 1.0, 1.0
    power = 10 ** math.floor(math.log10(top / lines)) if top / lines > 0 else 1
    for factor in (1, 2, 5, 10, 20, 50):
        step = factor * power
        if whole:
            step = max(1, round(step))
        if math.ceil(top / step - 1e-9) <= lines:
            return math.ceil(top / step - 1e-9) * step, step
    return top, top  # not reached


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2g}"


# --------------------------------------------------------------------------- time axis


def _aligned(moment: datetime, bucket: str, step: int) -> bool:
    """``moment`` (a bucket start, UTC) falls on a round time for ticks every ``step``."""
    if bucket == "minute":
        return (
            (moment.hour * 60 + moment.minute) % step == 0
            if step <= 60
            else (moment.minute == 0 and moment.hour % (step // 60) == 0)
        )
    if bucket == "hour":
        if step <= 24:
            return moment.hour % step == 0
        if step == 168:
            return moment.hour == 0 and moment.weekday() == 0
        return moment.hour == 0 and moment.toordinal() % (step // 24) == 0
    if bucket == "day":
        if step >= 28:
            return moment.day == 1 and (moment.month - 1) % max(1, step // 28) == 0
        if step in (7, 14):
            return moment.weekday() == 0 and (moment.toordinal() // 7) % (step // 7) == 0
        return moment.toordinal() % step == 0
    return (moment.toordinal() // 7) % step == 0  # weeks (bucket starts are Mondays)


def _tick_label(moment: datetime, bucket: str, previous: datetime | None, span_years: bool) -> str:
    day = f"{moment.day} {moment:%b}" + (f" {moment.year}" if span_years or previous is None else "")
    if bucket in ("minute", "hour"):
        time = f"{moment:%H:%M}"
        if previous is None or previous.date() != moment.date():
            return f"{time}<br><small>{_e(day)}</small>"
        return time
    if previous is None or (span_years and previous.year != moment.year):
        return f"{_e(day)}"
    return _e(f"{moment.day} {moment:%b}")


def time_ticks(slots: Sequence[datetime], bucket: str) -> list[tuple[int, str]]:
    """``(slot index, label HTML)`` of the tick labels of a time axis: at round times
    (every 5 / 15 / 30 minutes, 3 / 6 / 12 hours, Mondays, first days of months ...),
    at most :data:`MAX_TICKS` of them, the date shown under the first time of each day."""
    if not slots:
        return []
    span_years = slots[0].year != slots[-1].year
    for step in _TICK_STEPS[bucket]:
        chosen = [i for i, moment in enumerate(slots) if _aligned(moment, bucket, step)]
        if chosen and len(chosen) <= MAX_TICKS:
            break
    else:
        every = math.ceil(len(slots) / MAX_TICKS)
        chosen = list(range(0, len(slots), every))
    ticks = []
    previous: datetime | None = None
    for index in chosen:
        ticks.append((index, _tick_label(slots[index], bucket, previous, span_years)))
        previous = slots[index]
    return ticks


def _slot_text(moment: datetime, bucket: str) -> str:
    if bucket in ("minute", "hour"):
        return f"{moment:%Y-%m-%d %H:%M} UTC"
    if bucket == "week":
        return f"week of {moment:%Y-%m-%d}"
    return f"{moment:%Y-%m-%d}"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


_Totals = dict[tuple[str, datetime], dict[str, float]]  # (group, bucket start) -> stack key -> value


def time_columns(
    points: Sequence[Mapping[str, object]],
    *,
    bucket: str,
    group: str,
    stack: str,
    value: str,
    colours: Mapping[str, str],
    unit: str,
    label: str,
) -> str:
    """Stacked columns of ``points`` (rows with a ``bucket`` datetime, a ``group`` name,
    a ``stack`` key among ``colours`` and a ``value``): one chart row per group, the
    same time axis and scale for all, empty buckets between the first and the last
    shown as gaps, at least :data:`MIN_SLOTS` buckets wide."""
    totals = _totals(points, group=group, stack=stack, value=value)
    if not totals or not any(sum(v.values()) for v in totals.values()):
        return empty(f"No data yet: no {unit} in this period.")
    slots = _slots(totals, BUCKETS[bucket])
    groups = sorted({name for name, _ in totals})
    top, step = nice_scale(max(sum(v.values()) for v in totals.values()))
    rows = "".join(
        _plot_row(
            name,
            totals,
            slots,
            bucket=bucket,
            colours=colours,
            unit=unit,
            scale=(top, step),
            alone=len(groups) == 1,
        )
        for name in groups
    )
    legend = "".join(
        f'<span><i style="background:{colour}"></i>{_e(key)}</span>'
        for key, colour in colours.items()
        if any(cell.get(key) for cell in totals.values())
    )
    summary = (
        f"{label}: {_number(sum(sum(v.values()) for v in totals.values()))} {unit} from "
        f"{_slot_text(slots[0], bucket)} to {_slot_text(slots[-1], bucket)}, per {bucket}"
    )
    return (
        f'<figure class="chart tchart" role="img" aria-label="{_e(summary)}">'
        f'<p class="axis-title">{_e(unit)} per {_e(bucket)} (UTC)</p>{rows}'
        f'<div class="ticks">{_tick_row(slots, bucket)}</div><p class="legend">{legend}</p></figure>'
    )


def _totals(points: Sequence[Mapping[str, object]], *, group: str, stack: str, value: str) -> _Totals:
    """The values of ``points`` summed per group, bucket start (UTC) and stack key."""
    totals: _Totals = {}
    for point in points:
        moment = point["bucket"]
        if not isinstance(moment, datetime):
            continue
        cell = totals.setdefault((str(point[group]), _utc(moment)), {})
        key = str(point[stack])
        cell[key] = cell.get(key, 0.0) + float(point[value] or 0)  # type: ignore[arg-type]
    return totals


def _slots(totals: _Totals, size: timedelta) -> list[datetime]:
    """The buckets of the time axis: from the first to the last with data, padded around
    the data (more before than after) to :data:`MIN_SLOTS`."""
    first = min(moment for _, moment in totals)
    last = max(moment for _, moment in totals)
    count = round((last - first) / size) + 1
    if count < MIN_SLOTS:
        before = (MIN_SLOTS - count + 1) // 2
        first -= before * size
        count = MIN_SLOTS
    return [first + i * size for i in range(count)]


def _tick_row(slots: Sequence[datetime], bucket: str) -> str:
    """The tick labels under the columns (every other one hidden on a phone)."""
    count = len(slots)
    return "".join(
        f'<span class="tick{" alt" if n % 2 else ""}{" end" if (index + 0.5) / count > 0.9 else ""}"'
        f' style="left:{(index + 0.5) / count * 100:.2f}%">{text}</span>'
        for n, (index, text) in enumerate(time_ticks(slots, bucket))
    )


def _plot_row(
    name: str,
    totals: _Totals,
    slots: Sequence[datetime],
    *,
    bucket: str,
    colours: Mapping[str, str],
    unit: str,
    scale: tuple[float, float],
    alone: bool,
) -> str:
    """One group's row of stacked columns, its grid lines and (among others) its name."""
    top, step = scale
    count = len(slots)
    columns = []
    for moment in slots:
        cell = totals.get((name, moment), {})
        total = sum(cell.values())
        parts = "".join(
            f'<i style="height:{cell[key] / top * 100:.2f}%;background:{colour}"></i>'
            for key, colour in colours.items()
            if cell.get(key)
        )
        detail = ", ".join(f"{_number(cell[k])} {k}" for k in colours if cell.get(k)) or f"no {unit}"
        tip = f"{_slot_text(moment, bucket)} · {name}: {detail}"
        columns.append(f'<span class="col" title="{_e(tip)}"{"" if total else " data-zero"}>{parts}</span>')
    grid = "".join(
        f'<span class="grid" style="bottom:{level / top * 100:.2f}%"><b>{_number(level)}</b></span>'
        for level in _levels(top, step)
    )
    heading = "" if alone else f'<p class="series">{_e(name)}</p>'
    height = 150 if alone else 110
    few = " few" if count <= 30 else ""
    gap = "2px" if count <= 60 else ("1px" if count <= 150 else "0px")
    return (
        f'{heading}<div class="plot" style="height:{height}px">{grid}'
        f'<div class="cols{few}" style="gap:{gap}">{"".join(columns)}</div></div>'
    )


def _levels(top: float, step: float) -> list[float]:
    levels = []
    level = step
    while level <= top + 1e-9:
        levels.append(level)
        level += step
    return levels


# --------------------------------------------------------------------------- bars


@dataclass(frozen=True, slots=True)
class Bar:
    label: str  # shown (cut with an ellipsis when long; in full in the tooltip)
    value: float
    shown: str  # the value as written at the end of the bar
    detail: str = ""  # more for the tooltip
    colour: str = "#1565c0"


def bar_list(
    bars: Sequence[Bar], *, label: str, empty_text: str, legend: Mapping[str, str] | None = None
) -> str:
    """Horizontal bars, longest = the largest value; ``empty_text`` when there is no bar
    or every value is zero."""
    if not bars or not any(bar.value > 0 for bar in bars):
        return empty(empty_text)
    top = max(bar.value for bar in bars)
    rows = "".join(
        f'<li title="{_e(bar.label + (" · " + bar.detail if bar.detail else ""))}">'
        f'<span class="name">{_e(bar.label)}</span>'
        f'<span class="track"><i style="width:{max(bar.value / top * 100, 0.5 if bar.value else 0):.2f}%;'
        f'background:{bar.colour}"></i></span><span class="value">{_e(bar.shown)}</span></li>'
        for bar in bars
    )
    keys = (
        '<p class="legend">'
        + "".join(f'<span><i style="background:{c}"></i>{_e(k)}</span>' for k, c in legend.items())
        + "</p>"
        if legend
        else ""
    )
    return f'<figure class="chart bars" role="img" aria-label="{_e(label)}"><ul>{rows}</ul>{keys}</figure>'


CSS: Final = """
.chart { margin: 0 0 12px; }
.axis-title { margin: 0 0 6px; color: #5b6475; font-size: 12px; }
.series { margin: 12px 0 10px; font-size: 12px; font-weight: 600; color: #1d2330; }
.plot { position: relative; height: 150px; margin: 8px 0 0 36px; border-bottom: 1px solid #9aa3b2; }
.plot .grid { position: absolute; left: 0; right: 0; border-top: 1px dashed #e1e4ea; }
.plot .grid b { position: absolute; right: calc(100% + 6px); top: -8px; font-weight: 400;
                font-size: 11px; color: #5b6475; font-variant-numeric: tabular-nums; }
.cols { position: absolute; inset: 0; display: flex; align-items: stretch; }
.col { flex: 1 1 0; min-width: 0; display: flex; flex-direction: column-reverse; }
.col:hover { background: #1d233010; }
.cols.few .col i { width: 76%; margin: 0 auto; }
.col i { display: block; width: 100%; }
.col i + i { box-shadow: 0 1px 0 #fff; }
.ticks { position: relative; height: 32px; margin-left: 36px; font-size: 11px; color: #5b6475; }
.tick { position: absolute; top: 4px; transform: translateX(-50%); white-space: nowrap;
        text-align: center; line-height: 1.25; }
.tick small { font-size: 11px; color: #8a92a3; }
.tick.end { transform: translateX(-80%); }
.legend { display: flex; flex-wrap: wrap; gap: 4px 14px; margin: 4px 0 0; font-size: 12px; color: #5b6475; }
.legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 5px;
            vertical-align: -1px; }
.bars ul { list-style: none; margin: 0; padding: 0; }
.bars li { display: grid; grid-template-columns: minmax(0, 20em) minmax(0, 1fr) 5.5em; gap: 10px;
           align-items: center; padding: 3px 0; font-size: 13px; }
.bars .name { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.bars .track { height: 14px; background: #eef0f4; border-radius: 3px; overflow: hidden; }
.bars .track i { display: block; height: 100%; border-radius: 3px; }
.bars .value { text-align: right; font-variant-numeric: tabular-nums; color: #1d2330; white-space: nowrap; }
@media (max-width: 640px) {
  .tick.alt { display: none; }
  .bars li { grid-template-columns: minmax(0, 1fr) auto; row-gap: 2px; }
  .bars .name { grid-column: 1 / -1; }
}
"""
