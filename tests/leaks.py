"""One check that a secret was written nowhere: every file beside the database (the
``.duckdb`` file, its ``.wal``, the ``.key``, spools, outboxes, exports, logs written
there), the tables as DuckDB reads them, and any text the test captured (log lines, CLI
output).

Reading only the ``.duckdb`` bytes proves little: a committed write sits in
``<db>.wal`` until a checkpoint moves it into the file, where DuckDB may store the
string compressed. So a test that checks for a secret makes its store keep the WAL
(``FEEDCAST_CHECKPOINT=off``, or ``store.checkpoint = False``) and calls
:func:`assert_secret_absent` while the WAL holds everything the run wrote; the helper
fails when there is no WAL to read.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import duckdb

__all__ = ["assert_secret_absent", "wal_of"]


def wal_of(db: Path) -> Path:
    return db.with_name(db.name + ".wal")


def _files(paths: Iterable[Path]) -> list[Path]:
    found: set[Path] = set()
    for path in paths:
        if path.is_dir():
            found.update(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            found.add(path)
    return sorted(found)


def _text_columns(db: Path) -> list[tuple[str, str]]:
    con = duckdb.connect(str(db), read_only=True)  # replays the WAL, does not checkpoint it
    try:
        return [
            (str(table), str(column))
            for table, column in con.execute(
                "SELECT c.table_name, c.column_name FROM information_schema.columns c"
                " JOIN information_schema.tables t USING (table_schema, table_name)"
                " WHERE t.table_type = 'BASE TABLE'"
                " AND (c.data_type IN ('VARCHAR', 'JSON') OR c.data_type LIKE 'VARCHAR[%')"
            ).fetchall()
        ]
    finally:
        con.close()


def _tables_holding(db: Path, secret: str) -> list[str]:
    columns = _text_columns(db)
    con = duckdb.connect(str(db), read_only=True)
    try:
        return [
            f"{table}.{column}"
            for table, column in columns
            if con.execute(
                f'SELECT count(*) FROM "{table}" WHERE contains(CAST("{column}" AS VARCHAR), ?)', [secret]
            ).fetchone()
            != (0,)
        ]
    finally:
        con.close()


def assert_secret_absent(
    secret: str, db: Path, *texts: str, also: Iterable[Path] = (), wal: bool = True
) -> None:
    """``secret`` is in no file beside ``db`` (recursively), none of ``also`` (files or
    folders elsewhere: an export, a log file), no text column of any table, and none of
    ``texts``. With ``wal`` (the default), the WAL must exist and hold the run's writes."""
    assert secret, "an empty secret is in everything"
    db = Path(db)
    if wal:
        assert wal_of(db).is_file() and wal_of(db).stat().st_size > 0, (
            f"no {wal_of(db).name}: the writes were checkpointed into {db.name} before the check "
            "(run the store with FEEDCAST_CHECKPOINT=off)"
        )
    files = _files([db.parent, *also])
    assert db in files, f"{db} does not exist"
    needle = secret.encode("utf-8")
    found = [str(path) for path in files if needle in path.read_bytes()]
    assert not found, f"the secret is written in {found}"
    tables = _tables_holding(db, secret)
    assert not tables, f"the secret is stored in {tables}"
    for number, text in enumerate(texts):
        assert secret not in text, f"the secret is in captured text #{number + 1}"
