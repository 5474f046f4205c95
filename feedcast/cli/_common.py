"""What every command module of the CLI shares: the two consoles, the ``--format``
option, the database the command works on (:class:`State`) and the output helpers."""

from __future__ import annotations

import atexit
import json
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.text import Text

from feedcast.kernel.errors import UserError
from feedcast.store import Store, default_db_path
from feedcast.terminal import console, json_literal, literal, print_fields, print_table

__all__ = [
    "DeadlineOpt",
    "Format",
    "FormatOpt",
    "State",
    "err",
    "out",
    "plain",
    "show_fields",
    "show_json",
    "show_list",
    "show_table",
    "write_file",
    "write_out",
]

T = TypeVar("T")

# text from outside (titles, URLs, errors, names) is printed literally: these consoles
# parse no markup or emoji codes and escape control characters (feedcast.terminal)
out = console()
err = console(stderr=True)


class Format(StrEnum):
    table = "table"
    json = "json"


FormatOpt = Annotated[Format, typer.Option("--format", help="Output format.")]
DeadlineOpt = Annotated[
    float | None,
    typer.Option(
        "--deadline", metavar="S", help="Stop starting deliveries after S seconds (the rest stays pending)."
    ),
]


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


# --------------------------------------------------------------------------- output helpers


def plain(value: Any) -> Any:
    """``value`` as JSON (and CSV) can hold it: dates as ISO text, durations in seconds."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return int(value.total_seconds())
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def show_json(value: Any) -> None:
    out.print(Text(json_literal(json.dumps(plain(value), ensure_ascii=False, indent=2))))


def show_table(
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


def show_fields(fields: Sequence[tuple[str, Any]], title: str | None = None) -> None:
    """Every show view: a field / value table, long values wrapped."""
    print_fields(out, fields, title=title)


def show_list(
    fmt: Format,
    records: Sequence[T],
    *,
    as_json: Callable[[T], Any],
    empty: str,
    columns: Sequence[str],
    row: Callable[[T], Sequence[Any]],
    optional: Sequence[str] = (),
) -> None:
    """Every ``list`` command: the records as JSON, a line saying there are none yet,
    or one row each."""
    if fmt == Format.json:
        show_json([as_json(r) for r in records])
        return
    if not records:
        out.print(empty)
        return
    show_table(columns, [row(r) for r in records], optional=optional)


def write_out(text: str) -> None:
    """``text`` on stdout: to a file or pipe as it is; on a terminal its control
    characters shown."""
    sys.stdout.write(literal(text, newlines=True) if sys.stdout.isatty() else text)


def write_file(path: Path, text: str) -> None:
    """``--html FILE``, ``--output FILE``: a file that cannot be written is the user's
    mistake (one line, exit 2)."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
