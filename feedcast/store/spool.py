"""The inbound spool: where a webhook event is kept before its 200 goes out.

Meta and Telegram send an event once they think it failed, and never again once it
got a 200; so an event is written durably before it is answered, and processed from
that record afterwards. The DuckDB file cannot take that write at that moment: another
process may hold it (one writer at a time) for seconds. The spool is a SQLite database
beside it (``<db>.spool``, stdlib :mod:`sqlite3`, WAL mode, ``synchronous=FULL``: a
commit is on disk when it returns), one row per event, de-duplicated on the event's own
id (a Messenger ``mid``, a Telegram ``update_id``). :mod:`feedcast.inbox.drain` moves
its rows into the store's ``inbound`` table in batches and marks them drained; drained
rows stay :data:`RETENTION` seconds so a late re-delivery is still recognised here.

Writes are group-committed: :meth:`Spool.submit` hands the events to one writer thread,
which commits everything that queued up while the previous commit was being synced in
one transaction, so concurrent requests share an fsync (hundreds of events a second on
one disk). The file is created readable by its owner only: it holds people's messages.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from feedcast.kernel.errors import StoreError

__all__ = ["RETENTION", "Spool", "SpoolEvent", "Spooled", "spool_path"]

log = logging.getLogger(__name__)

RETENTION = 7 * 86400.0  # seconds a drained event is kept for de-duplication
_BATCH = 1024  # events in one group commit at most
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    channel     TEXT NOT NULL,
    source      TEXT NOT NULL,
    key         TEXT NOT NULL,
    body        TEXT NOT NULL,
    received_at REAL NOT NULL,
    drained_at  REAL,
    UNIQUE (channel, key)
);
CREATE INDEX IF NOT EXISTS events_undrained ON events (id) WHERE drained_at IS NULL;
"""


def spool_path(db: Path) -> Path:
    """The spool of a DuckDB file: ``<db>.spool`` beside it."""
    return db.with_name(db.name + ".spool")


@dataclass(frozen=True, slots=True)
class SpoolEvent:
    """One event to keep: its channel, where it came from (``messenger``,
    ``telegram``), the provider's id for it and its raw JSON."""

    channel: str
    source: str
    key: str
    body: str


@dataclass(frozen=True, slots=True)
class Spooled:
    """A kept event, not drained yet."""

    id: int
    channel: str
    source: str
    key: str
    body: str
    received_at: float


_Job = tuple[Sequence[SpoolEvent], "Future[list[bool]]"]


class Spool:
    """One spool file. :meth:`submit` is safe from any thread; the other methods open
    their own connection per call."""

    def __init__(self, path: Path, *, busy_timeout: float = 30.0) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._start = threading.Lock()
        self._create()

    # ----------------------------------------------------------------- connections

    def _create(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
            with self._connection() as con:
                con.execute("PRAGMA journal_mode=WAL")
                con.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the inbound spool {self.path}: {exc}") from None

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        con.execute("PRAGMA synchronous=FULL")
        return con

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        con = self._connect()
        try:
            yield con
        finally:
            con.close()

    # ----------------------------------------------------------------- writing

    def submit(self, events: Sequence[SpoolEvent]) -> Future[list[bool]]:
        """Keep ``events``; the future's result, once they are on disk, says for each
        whether it was new (False: that channel and key were kept before). Its
        exception is a :class:`StoreError` when the spool cannot be written."""
        future: Future[list[bool]] = Future()
        if not events:
            future.set_result([])
            return future
        self._ensure_writer()
        self._jobs.put((events, future))
        return future

    def add(self, events: Sequence[SpoolEvent], timeout: float | None = 60.0) -> list[bool]:
        """:meth:`submit` and wait."""
        return self.submit(events).result(timeout)

    def _ensure_writer(self) -> None:
        if self._writer is not None and self._writer.is_alive():
            return
        with self._start:
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._write_loop, name="feedcast-spool", daemon=True)
                self._writer.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the writer once what was submitted is written."""
        writer = self._writer
        if writer is not None and writer.is_alive():
            self._jobs.put(None)
            writer.join(timeout)
        self._writer = None

    def _write_loop(self) -> None:
        con: sqlite3.Connection | None = None
        try:
            while True:
                job = self._jobs.get()
                if job is None:
                    return
                jobs = [job]
                stop = False
                while len(jobs) < _BATCH:
                    try:
                        more = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stop = True
                        break
                    jobs.append(more)
                try:
                    if con is None:
                        con = self._connect()
                    results = self._insert(con, jobs)
                except (sqlite3.Error, OSError) as exc:
                    log.error("inbound spool %s: cannot keep %d event(s): %s", self.path, len(jobs), exc)
                    error = StoreError(f"cannot write the inbound spool: {exc}")
                    for _, future in jobs:
                        future.set_exception(error)
                    with contextlib.suppress(sqlite3.Error):
                        if con is not None:
                            con.close()
                    con = None
                else:
                    for (_, future), result in zip(jobs, results, strict=True):
                        future.set_result(result)
                if stop:
                    return
        finally:
            if con is not None:
                con.close()

    @staticmethod
    def _insert(con: sqlite3.Connection, jobs: Sequence[_Job]) -> list[list[bool]]:
        now = time.time()
        results: list[list[bool]] = []
        con.execute("BEGIN IMMEDIATE")
        try:
            for events, _ in jobs:
                new: list[bool] = []
                for event in events:
                    cursor = con.execute(
                        "INSERT INTO events (channel, source, key, body, received_at) VALUES (?, ?, ?, ?, ?)"
                        " ON CONFLICT (channel, key) DO NOTHING",
                        (event.channel, event.source, event.key, event.body, now),
                    )
                    new.append(cursor.rowcount == 1)
                results.append(new)
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")  # synchronous=FULL: on disk when this returns
        return results

    # ----------------------------------------------------------------- draining

    def undrained(self, limit: int = 500) -> list[Spooled]:
        """Events not drained yet, oldest first."""
        try:
            with self._connection() as con:
                rows = con.execute(
                    "SELECT id, channel, source, key, body, received_at FROM events"
                    " WHERE drained_at IS NULL ORDER BY id LIMIT ?",
                    (limit,),
                ).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the inbound spool {self.path}: {exc}") from None
        return [Spooled(int(r[0]), r[1], r[2], r[3], r[4], float(r[5])) for r in rows]

    def mark_drained(self, ids: Sequence[int]) -> None:
        """These events are in the store now."""
        if not ids:
            return
        now = time.time()
        try:
            with self._connection() as con:
                con.execute("BEGIN IMMEDIATE")
                con.executemany("UPDATE events SET drained_at = ? WHERE id = ?", [(now, i) for i in ids])
                con.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write the inbound spool {self.path}: {exc}") from None

    def prune(self, older_than: float = RETENTION) -> int:
        """Forget drained events older than ``older_than`` seconds; how many."""
        try:
            with self._connection() as con:
                cursor = con.execute(
                    "DELETE FROM events WHERE drained_at IS NOT NULL AND drained_at < ?",
                    (time.time() - older_than,),
                )
                return int(cursor.rowcount)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write the inbound spool {self.path}: {exc}") from None

    def counts(self) -> dict[str, int]:
        """``{"waiting": N, "drained": M}``."""
        try:
            with self._connection() as con:
                row = con.execute(
                    "SELECT count(*) FILTER (WHERE drained_at IS NULL), count(drained_at) FROM events"
                ).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the inbound spool {self.path}: {exc}") from None
        return {"waiting": int(row[0]), "drained": int(row[1])}
