"""The guards on SQL a user wrote: ``feedcast sql``, the report and export queries, and
automations' ``--where`` predicates (at validation and at send time).

Such SQL runs on a connection that DuckDB itself keeps from files, URLs and extensions
(``enable_external_access = false``, no extension auto-install or auto-load, no
community extensions), with the configuration locked (``lock_configuration = true``) so
the SQL cannot turn any of it back on. The store file stays readable: DuckDB opens it
before the guards take hold. Only one statement runs, and only a SELECT, as DuckDB's own
parser types it (``extract_statements``), never a regular expression. Error messages
from running a query are withheld (a failed cast quotes the value it failed on, which
may come from a row); those from parsing and binding quote only the user's own text
and the schema, and are kept.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feedcast.kernel.errors import InvalidValue

if TYPE_CHECKING:
    import duckdb

    Connection = duckdb.DuckDBPyConnection

__all__ = [
    "Guard",
    "lock_down",
    "open_config",
    "parse_predicate",
    "run_error",
    "run_select",
    "select_statement",
]

# set when the connection opens: nothing is reachable from its first statement on
_OPEN_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
}

NO_ACCESS = "files, URLs and extensions are out of reach of SQL run by feedcast"


@dataclass(frozen=True, slots=True)
class Guard:
    """How a guarded connection is locked down. ``write_dir``: the one folder it may
    write into (``export-history``'s COPY); None for no file access at all."""

    write_dir: Path | None = None


def open_config(guard: Guard) -> dict[str, str | bool | int | float | list[str]]:
    """The ``duckdb.connect(config=...)`` of a guarded connection. With a ``write_dir``
    external access is turned off by :func:`lock_down` instead (DuckDB only takes
    ``allowed_directories`` while it is still on)."""
    config = dict(_OPEN_CONFIG)
    if guard.write_dir is not None:
        del config["enable_external_access"]
    return config


def lock_down(con: Connection, guard: Guard) -> None:
    """Turn external access off (but for ``guard.write_dir``) and lock the configuration;
    checked after, so a DuckDB that ignored a setting never runs user SQL."""
    if guard.write_dir is not None:
        folder = str(guard.write_dir.resolve()).rstrip("/") + "/"
        con.execute("SET allowed_directories = ?", [[folder]])
        con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    row = con.execute(
        "SELECT current_setting('enable_external_access'), current_setting('autoinstall_known_extensions'),"
        " current_setting('autoload_known_extensions'), current_setting('allow_community_extensions'),"
        " current_setting('lock_configuration')"
    ).fetchall()
    if row != [(False, False, False, False, True)]:
        raise RuntimeError(f"DuckDB did not lock the connection down: {row}")


def select_statement(con: Connection, sql: str) -> duckdb.Statement:
    """The one SELECT (or WITH ... SELECT, FROM ..., DESCRIBE, SHOW, SUMMARIZE) that
    ``sql`` holds, as DuckDB parses it; InvalidValue for anything else."""
    import duckdb

    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise InvalidValue(f"SQL error: {first_line(str(exc))}") from None
    except ValueError:  # a statement type this duckdb module has no name for
        raise InvalidValue(_NOT_A_SELECT.format(kind="a statement of another kind")) from None
    if not statements:
        raise InvalidValue("SQL error: the query is empty")
    if len(statements) > 1:
        raise InvalidValue(
            f"SQL error: feedcast sql is read-only and runs one SELECT query; this is {len(statements)} statements"
        )
    [statement] = statements
    kind = statement.type
    if kind == duckdb.StatementType.SELECT:
        return statement
    if kind == duckdb.StatementType.MULTI:  # PIVOT without IN (...) creates a type first
        raise InvalidValue(
            "SQL error: feedcast sql is read-only and runs one SELECT query; this PIVOT needs"
            " several statements (name its values: PIVOT t ON c IN ('a', 'b') USING count(*))"
        )
    raise InvalidValue(_NOT_A_SELECT.format(kind=f"a {kind.name} statement"))


_NOT_A_SELECT = (
    "SQL error: feedcast sql is read-only and runs one SELECT (or WITH ... SELECT) query; this is {kind}"
)


def run_select(
    con: Connection, sql: str, params: Sequence[Any] | None = None
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run the one SELECT in ``sql``: its column names and rows. Errors are InvalidValue
    lines: DuckDB's message for a query that does not parse or bind (it names the user's
    text and the schema), only the kind of error once rows are being read."""
    import duckdb

    statement = select_statement(con, sql)
    try:  # parse and bind: nothing is read yet
        relation = con.sql(statement, params=list(params or [])) if params else con.sql(statement)
    except duckdb.PermissionException:
        raise InvalidValue(f"SQL error: the query reads a file, a URL or an extension: {NO_ACCESS}") from None
    except duckdb.Error as exc:
        raise InvalidValue(f"SQL error: {first_line(str(exc))}") from None
    try:
        columns = list(relation.columns)
        rows = relation.fetchall()
    except duckdb.Error as exc:
        raise InvalidValue(f"SQL error: {run_error(exc)}") from None
    return columns, rows


def run_error(exc: Exception) -> str:
    """What went wrong while a query ran, without DuckDB's message: a failed cast quotes
    the value, ``error()`` and ``strptime()`` theirs, and that value can be a row's."""
    import duckdb

    if isinstance(exc, duckdb.PermissionException):
        return f"the query reads a file, a URL or an extension: {NO_ACCESS}"
    label = _label(exc)
    hint = _HINTS.get(label, "")
    return f"{label} while reading rows{hint} (DuckDB's message is not shown: it can quote data)"


_HINTS = {
    "Conversion Error": ": a value did not convert to the type asked",
    "Out of Range Error": ": a value was out of range",
    "Invalid Input Error": ": a function refused a value",
}


def _label(exc: Exception) -> str:
    """DuckDB's error kind, e.g. "Conversion Error" (the fixed text before the first colon)."""
    head = str(exc).split(":", 1)[0].strip()
    if re.fullmatch(r"[A-Za-z ]{1,40} Error", head):
        return head
    name = re.sub(r"(Exception|Error)$", "", type(exc).__name__) or "DuckDB"
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name) + " Error"


def first_line(message: str) -> str:
    text = message.strip()
    return re.sub(r"\s+", " ", text.splitlines()[0] if text else text)


# --------------------------------------------------------------------------- --where


def parse_predicate(con: Connection, text: str, table: str) -> str | None:
    """Why ``text`` is not one expression standing alone in ``SELECT * FROM {table}
    WHERE (...)``, as DuckDB's parser sees it (``json_serialize_sql``); None when it is.
    Text that closes the parenthesis and goes on (``true) UNION SELECT ...``, ``ORDER
    BY``, ``--``) changes the shape and is refused."""
    [(serialized,)] = con.execute(
        "SELECT json_serialize_sql(?)", [wrap_where(f"SELECT * FROM {table}", text)]
    ).fetchall()
    tree: dict[str, Any] = json.loads(serialized)
    if tree.get("error"):
        return str(tree.get("error_message") or "it does not parse")
    statements = tree.get("statements") or []
    if len(statements) != 1:
        return "it is several statements"
    node = statements[0].get("node") or {}
    source = node.get("from_table") or {}
    select_list = node.get("select_list") or []
    alone = (
        node.get("type") == "SELECT_NODE"
        and not node.get("modifiers")
        and not (node.get("cte_map") or {}).get("map")
        and len(select_list) == 1
        and select_list[0].get("class") == "STAR"
        and source.get("type") == "BASE_TABLE"
        and source.get("table_name") == table
        and not source.get("alias")
        and not node.get("group_expressions")
        and not node.get("group_sets")
        and node.get("having") is None
        and node.get("qualify") is None
        and node.get("sample") is None
        and node.get("where_clause") is not None
    )
    return None if alone else "it reaches outside the WHERE clause"


def wrap_where(select: str, predicate: str) -> str:
    """``select`` filtered by ``predicate``, on lines of its own (a ``--`` comment in it
    ends at the line, never swallowing the closing parenthesis)."""
    return f"{select} WHERE (\n{predicate}\n)"
