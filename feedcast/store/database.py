"""One DuckDB file and the connections to it: what every repository of the store works
through (:class:`Database`).

DuckDB lets one process write a file at a time (any other open fails with
"Could not set lock"), so every unit of work opens a connection, does its work in
one transaction and closes it; a busy file is retried with jittered exponential
backoff up to ``lock_timeout``. Bulk writes go through Arrow tables (:func:`staged`).
The first writable connection of a process brings the file's schema up to date
(:mod:`feedcast.store.migrations`).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from feedcast.kernel.errors import StoreBusy, StoreError
from feedcast.store.guard import Guard, lock_down, open_config, run_select
from feedcast.store.migrations import migrate

__all__ = ["RNG", "Connection", "Database", "default_db_path", "staged"]

RNG = random.Random()  # jitter; the global random state stays the caller's

Connection = duckdb.DuckDBPyConnection


def default_db_path() -> Path:
    return Path(os.environ.get("FEEDCAST_DB") or "feedcast.duckdb")


@contextmanager
def staged(con: Connection, **tables: pa.Table) -> Iterator[Connection]:
    """Arrow tables as relations of ``con`` for the block, by name: how bulk writes reach
    DuckDB (``INSERT ... SELECT`` from them, never row-by-row ``executemany``)."""
    for name, table in tables.items():
        con.register(name, table)
    try:
        yield con
    finally:
        for name in tables:
            con.unregister(name)


_FILE_LOCKS: dict[str, threading.RLock] = {}
_FILE_LOCKS_GUARD = threading.Lock()


def _file_lock(path: Path) -> threading.RLock:
    key = str(path.resolve())
    with _FILE_LOCKS_GUARD:
        lock = _FILE_LOCKS.get(key)
        if lock is None:
            lock = _FILE_LOCKS[key] = threading.RLock()
        return lock


class Database:
    """One DuckDB file. Cheap to create; holds no connection between calls.

    Every repository of the store is a :class:`Database`: it reads and writes through
    :meth:`connect`, :meth:`transaction` and :meth:`guarded`, so a store that guards its
    connections (``feedcast web`` opens them one at a time) guards them all."""

    def __init__(self, path: str | Path | None = None, *, lock_timeout: float | None = None) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        self.lock_timeout = (
            lock_timeout if lock_timeout is not None else float(os.environ.get("FEEDCAST_LOCK_TIMEOUT", "60"))
        )
        self.write_memory_limit = os.environ.get("FEEDCAST_WRITE_MEMORY_LIMIT", "128MB")
        # "off": writes stay in <db>.wal, never checkpointed into the file (for tests and
        # audits that read every byte written, e.g. that no secret is; the WAL grows)
        self.checkpoint = os.environ.get("FEEDCAST_CHECKPOINT", "on").strip().lower() != "off"
        self._migrated = False
        self._session = threading.local()

    # ----------------------------------------------------------------- connections

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[Connection]:
        """A connection for one unit of work, retrying a busy file with jittered backoff.

        Within a process, one connection per file at a time (threads, the web app, a
        campaign's lease renewal): DuckDB refuses a read-only and a read-write
        connection to one file in one process at once, and units of work are short."""
        held = getattr(self._session, "con", None)
        if held is not None:  # inside session(): every unit of work shares its connection
            yield held
            return
        if read_only and not self._migrated:
            # create the file / bring its schema up to date once per process, then read
            with self.connect():
                pass
        with _file_lock(self.path), self._connection(read_only) as con:
            yield con

    @contextmanager
    def guarded(self, guard: Guard | None = None) -> Iterator[Connection]:
        """A read-only connection for SQL a user wrote (:mod:`feedcast.store.guard`): no
        files, URLs or extensions, its configuration locked; retried like
        :meth:`connect`, one connection per file at a time in this process. Always a
        connection of its own: DuckDB settings hold for every connection to one file in
        a process, so it never shares a :meth:`session`'s."""
        if getattr(self._session, "con", None) is not None:
            raise RuntimeError("a guarded connection cannot share a session's connection")
        if not self._migrated:
            with self.connect():
                pass
        with _file_lock(self.path), self._connection(True, guard or Guard()) as con:
            yield con

    @contextmanager
    def session(self) -> Iterator[None]:
        """Several units of work on one connection (this thread only): handling one
        inbound event takes a dozen small reads and writes, and opening the file for each
        costs ~25 ms. Hold a session for milliseconds, never for a long process."""
        if getattr(self._session, "con", None) is not None:
            yield
            return
        with self.connect() as con:
            self._session.con = con
            self._session.cache = {}  # what repositories keep for this session only
            try:
                yield
            finally:
                self._session.con = None
                self._session.cache = None

    def session_cache(self) -> dict[str, Any] | None:
        """Inside :meth:`session`, a dict that lives as long as it (this thread only):
        where a repository keeps what it read once for the session; None outside one."""
        cache: dict[str, Any] | None = getattr(self._session, "cache", None)
        return cache

    @contextmanager
    def _connection(self, read_only: bool, guard: Guard | None = None) -> Iterator[Connection]:
        con = self._open(read_only, open_config(guard) if guard is not None else None)
        try:
            con.execute("SET TimeZone = 'UTC'")
            if not read_only:
                # bounds DuckDB's buffers while writing (checkpoints included): the
                # poller's peak memory stays flat however big the store grows
                con.execute("SET memory_limit = ?", [self.write_memory_limit])
                if not self.checkpoint:
                    con.execute("PRAGMA disable_checkpoint_on_shutdown")
                    con.execute("SET checkpoint_threshold = '1TB'")
            if not read_only and not self._migrated:
                migrate(con)
                self._migrated = True
            if guard is not None:
                lock_down(con, guard)
            yield con
        finally:
            con.close()

    def _open(self, read_only: bool, config: dict[str, Any] | None = None) -> Connection:
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.01
        while True:
            try:
                if not read_only:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                if config is not None:
                    return duckdb.connect(str(self.path), read_only=read_only, config=config)
                return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.IOException as exc:
                message = str(exc)
                if "lock" not in message.lower():
                    raise StoreError(f"cannot open {self.path}: {message.splitlines()[0]}") from None
                if time.monotonic() >= deadline:
                    raise StoreBusy(
                        f"{self.path} is busy: another process kept it open for more than "
                        f"{self.lock_timeout:g} s"
                    ) from None
                time.sleep(delay * (0.5 + RNG.random()))
                delay = min(delay * 2, 0.5)
            except duckdb.Error as exc:
                raise StoreError(f"cannot open {self.path}: {str(exc).splitlines()[0]}") from None

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction; inside :meth:`atomic`, the atomic block's (no commit of its own)."""
        if getattr(self._session, "atomic", False):
            yield self._session.con
            return
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    @contextmanager
    def atomic(self) -> Iterator[Connection]:
        """Several units of work as one transaction on one connection (this thread only):
        every :meth:`transaction` inside joins it, and all of it commits at the end or
        none of it does (handling one inbound event: its decision and its ``action``)."""
        if getattr(self._session, "atomic", False):
            yield self._session.con
            return
        with self.session(), self.transaction() as con:
            self._session.atomic = True
            try:
                yield con
            finally:
                self._session.atomic = False

    def schema_version(self) -> int:
        with self.connect() as con:
            row = con.execute("SELECT max(version) FROM schema_migrations").fetchone()
            return int(row[0]) if row and row[0] is not None else 0

    # ----------------------------------------------------------------- any SQL

    def query(
        self, sql: str, params: Sequence[Any] | None = None, *, read_only: bool = True
    ) -> tuple[list[str], list[dict[str, Any]]]:
        """Run one SELECT (what ``feedcast sql`` runs) on a guarded read-only connection:
        no files, URLs or extensions, its configuration locked, errors that quote no
        data (:mod:`feedcast.store.guard`). Returns column names and rows as dicts.

        ``read_only=False`` is for feedcast's own SQL only (tests, maintenance): one
        statement of any kind on a plain writable connection. No user text goes there."""
        if not read_only:
            with self.connect() as con:
                cursor = con.execute(sql, list(params or []))
                description: list[Any] | None = cursor.description
                if not description:  # a statement without a result set
                    return [], []
                names = [d[0] for d in description]
                return names, [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        with self.guarded() as con:
            columns, rows = run_select(con, sql, params)
        return columns, [dict(zip(columns, row, strict=True)) for row in rows]

    # ----------------------------------------------------------------- leases

    _LEASED = frozenset({"automations", "composed_campaigns"})  # tables with lease_owner, lease_until

    def _claim(
        self, table: str, row_id: int, owner: str, ttl: float, steal_from: str | None
    ) -> tuple[str, datetime] | None:
        """Take (or renew) the lease of a row of ``table`` for ``ttl`` seconds. None when
        taken; else the holder and its expiry when someone else holds it."""
        assert table in self._LEASED
        with self.transaction() as con:
            row = con.execute(
                f"UPDATE {table} SET lease_owner = ?, lease_until = now() + to_microseconds(?::BIGINT)"
                " WHERE id = ? AND (lease_until IS NULL OR lease_until < now() OR lease_owner IN (?, ?))"
                " RETURNING id",
                [owner, int(ttl * 1_000_000), row_id, owner, steal_from or owner],
            ).fetchone()
            if row is not None:
                return None
            held = con.execute(
                f"SELECT lease_owner, lease_until FROM {table} WHERE id = ?", [row_id]
            ).fetchone()
        if not held:
            return None
        until = held[1].astimezone(UTC) if held[1] is not None else datetime.now(UTC)
        return str(held[0]), until

    def _release(self, table: str, row_id: int, owner: str) -> None:
        assert table in self._LEASED
        with self.transaction() as con:
            con.execute(
                f"UPDATE {table} SET lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?",
                [row_id, owner],
            )
