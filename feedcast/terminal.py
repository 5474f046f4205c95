"""What feedcast shows on a terminal: outside text literally, tables that fit the width.

Titles, URLs, error texts, names from a CSV, provider answers and anything read from
the database come from outside. They reach the terminal only through :func:`literal`
(and :func:`cell`, which every table uses): Rich markup (``[/bold]``) and emoji codes
(``:x:``) stay plain text, and control characters (C0, DEL, C1, ESC sequences, bidi
embeddings and overrides) are shown as visible escapes (``\\x1b``, ``\\u202e``) instead
of acting on the terminal. The consoles of :func:`console` parse no markup and no emoji
codes, highlight nothing, and escape control characters in every string and segment
they print, as a last guard for a value that reached them some other way; only
feedcast's own text is styled, with :class:`rich.text.Text` styles.

:func:`print_table` shows a list one line per row: long text cells are cut with an
ellipsis to fit the console's width (numbers and dates never), optional columns are
hidden first on a narrow terminal, and when even the shortest sensible columns do not
fit, it switches to a vertical record view (one ``column  value`` line per field, records
separated by a blank line, as DuckDB's ``.mode line``). :func:`print_fields` shows one
record (``feedcast source show``), its values wrapped rather than cut.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderableType
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from feedcast.kernel.durations import human_duration

__all__ = [
    "COMFORTABLE_COLUMN",
    "MIN_COLUMN",
    "cell",
    "console",
    "feedcast_command",
    "json_literal",
    "literal",
    "literal_data",
    "print_fields",
    "print_table",
]

# --------------------------------------------------------------------------- literal text

_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
# C0 controls, DEL, C1 controls (U+009B is an 8-bit CSI), line and paragraph separators,
# and the bidi embeddings and overrides (U+202A-U+202E) that reorder what a line shows;
# the isolates (U+2066-U+2069) stay: they only keep a span's direction, and the layouts
# put them around dates in right-to-left messages (layouts.filters)
_UNSAFE_CODES = [
    *range(0x20),
    *range(0x7F, 0xA0),
    0x2028,
    0x2029,
    *range(0x202A, 0x202F),
]


def _escape(code: int) -> str:
    char = chr(code)
    if char in _NAMED:
        return _NAMED[char]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_LITERAL = {code: _escape(code) for code in _UNSAFE_CODES}
_LITERAL_LINES = {code: text for code, text in _LITERAL.items() if code != 0x0A}
_UNSAFE = re.compile("[" + "".join(re.escape(chr(code)) for code in _UNSAFE_CODES) + "]")
_JSON_UNSAFE = re.compile("[" + "".join(re.escape(chr(code)) for code in _UNSAFE_CODES if code > 0x7E) + "]")


def literal(text: str, *, newlines: bool = False) -> str:
    """``text`` as it may reach a terminal: every control character as a visible escape
    (``"\\x1b[31m"`` shows as ``\\x1b[31m``); line breaks too unless ``newlines``."""
    if not _UNSAFE.search(text):
        return text
    return text.translate(_LITERAL_LINES if newlines else _LITERAL)


def literal_data(value: Any) -> Any:
    """``value`` (JSON-like: dicts, lists, strings) with every string :func:`literal`
    (line breaks kept): a payload to show on a terminal."""
    if isinstance(value, str):
        return literal(value, newlines=True)
    if isinstance(value, Mapping):
        return {k: literal_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [literal_data(v) for v in value]
    return value


def json_literal(text: str) -> str:
    """JSON text (from ``json.dumps(..., ensure_ascii=False)``, which escapes C0 controls
    already) with DEL, C1 controls and bidi overrides escaped as ``\\uXXXX`` too: the same
    data, nothing a terminal acts on."""
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return human_duration(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return str(value)


def cell(value: Any) -> Text:
    """One table cell or field value from any value: plain text, on one line, literal
    (dates as ``YYYY-MM-DD HH:MM:SS``, durations as ``15m``, None as empty)."""
    if isinstance(value, Text):  # feedcast's own styled text
        return value
    return Text(literal(_shown(value)))


# --------------------------------------------------------------------------- consoles


class _LiteralConsole(Console):
    """A console that shows strings literally: no markup or emoji codes by default, and
    control characters escaped in every string it renders and every segment it writes."""

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(literal(text, newlines=True), **kwargs)

    def render(self, renderable: RenderableType, options: ConsoleOptions | None = None) -> Iterable[Segment]:
        for segment in super().render(renderable, options):
            if not segment.control and _UNSAFE.search(segment.text.replace("\n", "")):
                yield Segment(literal(segment.text, newlines=True), segment.style)
            else:
                yield segment


def console(*, stderr: bool = False, file: IO[str] | None = None, **options: Any) -> Console:
    """A console for feedcast's output (``stderr`` for messages and progress)."""
    settings: dict[str, Any] = {"soft_wrap": True, "markup": False, "emoji": False, "highlight": False}
    settings.update(options)
    return _LiteralConsole(stderr=stderr, file=file, **settings)


# --------------------------------------------------------------------------- tables

MIN_COLUMN = 8  # a text column is not cut below this (nor below its header, up to 16 cells)
COMFORTABLE_COLUMN = 24  # optional columns are hidden before a text column gets narrower
_MAX_HEADER = 16
_WHOLE = (int, float, Decimal, datetime, date, timedelta, type(None))  # never cut: numbers, dates


def print_table(
    out: Console,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    title: str | None = None,
    optional: Sequence[str] = (),
    full: str | None = "--format json",
    notes: Console | None = None,
) -> None:
    """Rows as a table cut to ``out.width``, one line per row.

    Numbers and dates are never cut; text cells are cut with an ellipsis, down to
    :data:`MIN_COLUMN` cells. Before a text column gets narrower than
    :data:`COMFORTABLE_COLUMN`, the ``optional`` columns are hidden, in that order. When
    even then the columns do not fit, the rows are shown one record after the other
    (``column  value`` lines, every column). A note on ``notes`` says what was cut or
    hidden and which option (``full``) shows everything."""
    headers = [literal(c) for c in columns]
    cells = [[cell(v) for v in row] for row in rows]
    whole = [all(i >= len(row) or isinstance(row[i], _WHOLE) for row in rows) for i in range(len(headers))]
    natural = [
        max([cell_len(header), *(row[i].cell_len for row in cells if i < len(row))])
        for i, header in enumerate(headers)
    ]

    def least(i: int, width: int) -> int:
        header = min(cell_len(headers[i]), _MAX_HEADER)
        return natural[i] if whole[i] else min(natural[i], max(width, header))

    def needs(shown: list[int], width: int) -> int:  # cells and borders ("│ " ... " │")
        return sum(least(i, width) for i in shown) + 3 * len(shown) + 1

    shown = list(range(len(headers)))
    hidden: list[str] = []
    for name in optional:
        if needs(shown, COMFORTABLE_COLUMN) <= out.width:
            break
        if name in columns and len(shown) > 1:
            shown.remove(columns.index(name))
            hidden.append(name)
    if len(shown) > 1 and needs(shown, MIN_COLUMN) > out.width:
        _print_records(out, headers, cells, title=title)
        return
    room = max(out.width - (3 * len(shown) + 1), 1)
    floor = [min(least(i, MIN_COLUMN), room) for i in shown]
    want = [natural[i] for i in shown]
    widths = _fit(want, floor, room)
    table = Table(title=title, header_style="bold")
    for i, width in zip(shown, widths, strict=True):
        table.add_column(headers[i], width=width, no_wrap=True, overflow="ellipsis")
    for row in cells:
        table.add_row(*(row[i] for i in shown if i < len(row)))
    out.print(table)
    if full and notes is not None and (widths != want or hidden):
        said = [f"not shown at {out.width} columns: {', '.join(hidden)}"] if hidden else []
        if widths != want:
            said.append(f"cells cut to fit {out.width} columns end with …")
        notes.print(Text(f"({'; '.join(said)}; {full} shows everything)", style="dim"))


def _fit(natural: list[int], floor: list[int], room: int) -> list[int]:
    """Column widths within ``room``: the widest columns give up cells first (down to a
    common level), none below its floor."""
    if sum(natural) <= room:
        return list(natural)

    def at(level: int) -> list[int]:
        return [max(f, min(n, level)) for n, f in zip(natural, floor, strict=True)]

    low, high = 0, max(natural)  # the highest level whose widths fit
    while low < high:
        middle = (low + high + 1) // 2
        if sum(at(middle)) <= room:
            low = middle
        else:
            high = middle - 1
    widths = at(low)
    spare = room - sum(widths)
    for i, width in enumerate(widths):  # the cells left over, one each, left to right
        if spare > 0 and natural[i] > width:
            widths[i] += 1
            spare -= 1
    return widths


def _print_records(out: Console, headers: list[str], cells: list[list[Text]], *, title: str | None) -> None:
    """DuckDB's line mode: each record as ``column  value`` lines, a blank line between."""
    if title:
        out.print(Text(title, style="bold"))
    label = min(max(cell_len(h) for h in headers), max(MIN_COLUMN, out.width // 3))
    for index, row in enumerate(cells):
        if index or title:
            out.print()
        grid = Table.grid(padding=(0, 1))
        grid.add_column(width=label, justify="right", no_wrap=True, overflow="ellipsis", style="bold")
        grid.add_column(overflow="fold")
        for header, value in zip(headers, row, strict=False):
            grid.add_row(header, value)
        out.print(grid)


def print_fields(out: Console, fields: Iterable[tuple[str, Any]], *, title: str | None = None) -> None:
    """One record as a field / value table (``feedcast source show``); long values wrap."""
    table = Table(title=title, header_style="bold")
    table.add_column("field", no_wrap=True)
    table.add_column("value", overflow="fold")
    for name, value in fields:
        table.add_row(literal(name), cell(value))
    out.print(table)


# --------------------------------------------------------------------------- hints


def feedcast_command() -> str:
    """How to run this feedcast again from the current folder: ``feedcast`` when that is
    the one on PATH, else the path of this one (``.venv/bin/feedcast``)."""
    argv0 = Path(sys.argv[0])
    script = argv0 if argv0.name == "feedcast" else Path(sys.executable).with_name("feedcast")
    if not script.is_file():
        return f"{shlex.quote(sys.executable)} -m feedcast.cli"
    script = script.absolute()
    found = shutil.which("feedcast")
    if found is not None and Path(found).absolute() == script:
        return "feedcast"
    here = Path.cwd().absolute()
    shown = os.path.relpath(script, here) if script.is_relative_to(here) else str(script)
    return shlex.quote(shown if os.sep in shown else os.path.join(".", shown))
