"""The DuckDB store: the only module that speaks SQL.

DuckDB lets one process write a file at a time (any other open fails with
"Could not set lock"), so every unit of work opens a connection, does its work in
one transaction and closes it; a busy file is retried with jittered exponential
backoff up to ``lock_timeout``. Bulk writes go through Arrow tables and
``INSERT ... SELECT``, never row-by-row ``executemany``.

Schema changes are numbered migrations (:data:`MIGRATIONS`), recorded in
``schema_migrations``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, overload

import duckdb
import pyarrow as pa

from feedcast.kernel.errors import AlreadyExists, InvalidValue, NotFound, StoreBusy, StoreError
from feedcast.kernel.models import Item, PollOutcome, Source
from feedcast.store._rows import _plain_price, item_from_row
from feedcast.store.audience import AudienceStore, m003, m006
from feedcast.store.delivery import DeliveryStore, m002, m005
from feedcast.store.guard import Guard, lock_down, open_config, run_select
from feedcast.store.reports import ReportStore, m004

__all__ = ["MIGRATIONS", "ItemEvent", "NewSource", "PollSummary", "Store", "default_db_path"]

log = logging.getLogger(__name__)
_RNG = random.Random()  # jitter; the global random state stays the caller's

Connection = duckdb.DuckDBPyConnection


def default_db_path() -> Path:
    return Path(os.environ.get("FEEDCAST_DB") or "feedcast.duckdb")


# --------------------------------------------------------------------------- migrations

Migration = Callable[[Connection], None]
MIGRATIONS: list[tuple[int, str, Migration]] = []


def migration(version: int, name: str) -> Callable[[Migration], Migration]:
    def register(fn: Migration) -> Migration:
        MIGRATIONS.append((version, name, fn))
        MIGRATIONS.sort(key=lambda m: m[0])
        return fn

    return register


@migration(1, "sources, items, item_events, fetches")
def _m001(con: Connection) -> None:
    con.execute("""
        CREATE SEQUENCE sources_id_seq START 1;
        CREATE SEQUENCE items_id_seq START 1;
        CREATE SEQUENCE item_events_id_seq START 1;
        CREATE SEQUENCE fetches_id_seq START 1;
        CREATE TABLE sources (
            id              BIGINT PRIMARY KEY DEFAULT nextval('sources_id_seq'),
            name            VARCHAR NOT NULL UNIQUE,
            url             VARCHAR NOT NULL,
            added_url       VARCHAR NOT NULL,
            site_url        VARCHAR,
            kind            VARCHAR,
            format          VARCHAR,
            title           VARCHAR,
            every_seconds   INTEGER NOT NULL DEFAULT 900,
            backfill        INTEGER NOT NULL DEFAULT 0,
            selectors       JSON,
            status          VARCHAR NOT NULL DEFAULT 'active',
            etag            VARCHAR,
            last_modified   VARCHAR,
            body_hash       VARCHAR,
            error_count     INTEGER NOT NULL DEFAULT 0,
            last_error      VARCHAR,
            last_status     INTEGER,
            last_polled_at  TIMESTAMPTZ,
            last_success_at TIMESTAMPTZ,
            next_poll_at    TIMESTAMPTZ,
            baseline_done   BOOLEAN NOT NULL DEFAULT false,
            created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE TABLE items (
            id            BIGINT PRIMARY KEY,
            source_id     BIGINT NOT NULL,
            key           VARCHAR NOT NULL,
            title         VARCHAR,
            url           VARCHAR,
            summary       VARCHAR,
            content       VARCHAR,
            image         VARCHAR,
            media         JSON,
            author        VARCHAR,
            published_at  TIMESTAMPTZ,
            updated_at    TIMESTAMPTZ,
            tags          VARCHAR[],
            price         DECIMAL(18, 4),
            sale_price    DECIMAL(18, 4),
            currency      VARCHAR,
            availability  VARCHAR,
            sku           VARCHAR,
            gtin          VARCHAR,
            mpn           VARCHAR,
            brand         VARCHAR,
            group_id      VARCHAR,
            variants      JSON,
            extra         JSON,
            content_hash  VARCHAR NOT NULL,
            position      INTEGER,
            first_seen_at TIMESTAMPTZ NOT NULL,
            last_seen_at  TIMESTAMPTZ NOT NULL,
            changed_at    TIMESTAMPTZ,
            UNIQUE (source_id, key)
        );
        CREATE TABLE item_events (
            id               BIGINT PRIMARY KEY DEFAULT nextval('item_events_id_seq'),
            item_id          BIGINT NOT NULL,
            source_id        BIGINT NOT NULL,
            fetch_id         BIGINT,
            event            VARCHAR NOT NULL,
            occurred_at      TIMESTAMPTZ NOT NULL,
            old_price        DECIMAL(18, 4),
            new_price        DECIMAL(18, 4),
            currency         VARCHAR,
            old_availability VARCHAR,
            new_availability VARCHAR,
            backfill         BOOLEAN NOT NULL DEFAULT false
        );
        CREATE TABLE fetches (
            id                 BIGINT PRIMARY KEY,
            source_id          BIGINT NOT NULL,
            url                VARCHAR NOT NULL,
            started_at         TIMESTAMPTZ NOT NULL,
            duration_ms        DOUBLE NOT NULL,
            outcome            VARCHAR NOT NULL,
            status             INTEGER,
            bytes              BIGINT NOT NULL DEFAULT 0,
            documents          INTEGER NOT NULL DEFAULT 0,
            sent_etag          VARCHAR,
            sent_last_modified VARCHAR,
            etag               VARCHAR,
            last_modified      VARCHAR,
            kind               VARCHAR,
            format             VARCHAR,
            items              INTEGER,
            new_count          INTEGER NOT NULL DEFAULT 0,
            changed_count      INTEGER NOT NULL DEFAULT 0,
            warnings           VARCHAR[],
            error              VARCHAR
        );
        CREATE INDEX item_events_at ON item_events (occurred_at);
        CREATE INDEX fetches_source ON fetches (source_id, started_at);
    """)


# --------------------------------------------------------------------------- store

_FILE_LOCKS: dict[str, threading.RLock] = {}
_FILE_LOCKS_GUARD = threading.Lock()


def _file_lock(path: Path) -> threading.RLock:
    key = str(path.resolve())
    with _FILE_LOCKS_GUARD:
        lock = _FILE_LOCKS.get(key)
        if lock is None:
            lock = _FILE_LOCKS[key] = threading.RLock()
        return lock


@dataclass(frozen=True, slots=True)
class NewSource:
    """A source to register (see :meth:`Store.add_sources`)."""

    name: str
    url: str
    kind: str | None = None
    every: timedelta = timedelta(minutes=15)
    backfill: int = 0
    selectors: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class PollSummary:
    """What a poll did to one source, for the CLI and flows."""

    source: str
    outcome: str
    items: int | None  # None when nothing was parsed (304, unchanged, error)
    new: int
    changed: int
    error: str | None
    baseline: bool


# why an item stands out, as Store.recent_items reports it: (event, old price, new price)
ItemEvent = tuple[str, Decimal | None, Decimal | None]

_SOURCE_COLUMNS = (
    "id, name, url, kind, format, site_url, title, every_seconds, backfill, selectors, status, etag, "
    "last_modified, body_hash, error_count, last_error, last_status, last_polled_at, last_success_at, "
    "next_poll_at, baseline_done, created_at, added_url"
)

_ITEM_SCHEMA = pa.schema(
    [
        ("source_id", pa.int64()),
        ("fetch_id", pa.int64()),
        ("key", pa.string()),
        ("title", pa.string()),
        ("url", pa.string()),
        ("summary", pa.string()),
        ("content", pa.string()),
        ("image", pa.string()),
        ("media", pa.string()),
        ("author", pa.string()),
        ("published_at", pa.timestamp("us", tz="UTC")),
        ("updated_at", pa.timestamp("us", tz="UTC")),
        ("tags", pa.list_(pa.string())),
        ("price", pa.decimal128(18, 4)),
        ("sale_price", pa.decimal128(18, 4)),
        ("currency", pa.string()),
        ("availability", pa.string()),
        ("sku", pa.string()),
        ("gtin", pa.string()),
        ("mpn", pa.string()),
        ("brand", pa.string()),
        ("group_id", pa.string()),
        ("variants", pa.string()),
        ("extra", pa.string()),
        ("content_hash", pa.string()),
        ("position", pa.int32()),
        ("backfill", pa.bool_()),
    ]
)

_MAX_PRICE = Decimal("99999999999999.9999")
_QUANTUM = Decimal("0.0001")


def _price(value: Decimal | None) -> Decimal | None:
    if value is None or not value.is_finite() or abs(value) > _MAX_PRICE:
        return None
    return value.quantize(_QUANTUM)


def _json(value: Any) -> str | None:
    if not value:
        return None
    return json.dumps(value, default=_json_default, ensure_ascii=False, separators=(",", ":"))


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "__dataclass_fields__"):
        return {
            k: getattr(value, k)
            for k in value.__dataclass_fields__
            if getattr(value, k) not in (None, {}, ())
        }
    if isinstance(value, Mapping):
        return dict(value)
    return str(value)


def _newest_first(items: Sequence[Item]) -> list[int]:
    """Positions of items from newest to oldest: by date when items carry one, else feed order."""
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(
        range(len(items)),
        key=lambda i: (
            (-(items[i].published or items[i].updated or epoch).timestamp(), i)
            if (items[i].published or items[i].updated)
            else (float("inf"), i)
        ),
    )


migration(2, "channels, subscribers, automations, campaigns, deliveries, send_history")(m002)
migration(3, "inbound, bot_replies, channel_state, campaign_links, clicks, optins")(m003)
migration(4, "campaign_report, source_health, automation_activity views")(m004)
migration(5, "deliveries.started_at, lost_attempts; send_history shows unconfirmed tries")(m005)
migration(6, "audiences (the tags open to self-subscription)")(m006)


class Store(DeliveryStore, AudienceStore, ReportStore):
    """One DuckDB file. Cheap to create; holds no connection between calls."""

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
            self._session.channels = {}  # get_channel's copies, for this session only
            try:
                yield
            finally:
                self._session.con = None
                self._session.channels = None

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
                self._migrate(con)
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
                time.sleep(delay * (0.5 + _RNG.random()))
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

    def _migrate(self, con: Connection) -> None:
        con.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
        )
        row = con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
        current = int(row[0]) if row else 0
        for version, name, apply in MIGRATIONS:
            if version <= current:
                continue
            con.execute("BEGIN TRANSACTION")
            try:
                apply(con)
                con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [version, name])
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
            log.info("applied migration %03d %s", version, name)
        self._migrated = True

    def schema_version(self) -> int:
        with self.connect() as con:
            row = con.execute("SELECT max(version) FROM schema_migrations").fetchone()
            return int(row[0]) if row and row[0] is not None else 0

    # ----------------------------------------------------------------- sources

    def add_source(
        self,
        name: str,
        url: str,
        *,
        kind: str | None = None,
        every: timedelta = timedelta(minutes=15),
        backfill: int = 0,
        selectors: Mapping[str, str] | None = None,
    ) -> Source:
        self.add_sources([NewSource(name, url, kind, every, backfill, selectors)])
        return self.get_source(name)

    def add_sources(self, sources: Sequence[NewSource]) -> None:
        """Register many sources in one transaction (all or none)."""
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise AlreadyExists(f"the source name {dup!r} is given twice")
        table = pa.table(
            {
                "name": names,
                "url": [s.url for s in sources],
                "kind": pa.array([s.kind for s in sources], pa.string()),
                "every_seconds": pa.array([int(s.every.total_seconds()) for s in sources], pa.int32()),
                "backfill": pa.array([s.backfill for s in sources], pa.int32()),
                "selectors": pa.array([_json(s.selectors) for s in sources], pa.string()),
            }
        )
        with self.transaction() as con:
            taken = con.execute(
                "SELECT name FROM sources WHERE name IN (SELECT unnest(?)) ORDER BY name", [names]
            ).fetchall()
            if taken:
                raise AlreadyExists(f"a source named {taken[0][0]!r} already exists")
            con.register("new_sources", table)
            con.execute(
                "INSERT INTO sources (name, url, added_url, kind, every_seconds, backfill, selectors, next_poll_at)"
                " SELECT name, url, url, kind, every_seconds, backfill, selectors::JSON, now() FROM new_sources"
            )
            con.unregister("new_sources")

    def get_source(self, name: str) -> Source:
        with self.connect(read_only=True) as con:
            rows = self._select_sources(con, "WHERE s.name = ?", [name])
        if not rows:
            raise NotFound(f"no source named {name!r} (see `feedcast source list`)")
        return rows[0]

    def list_sources(self, names: Sequence[str] | None = None) -> list[Source]:
        with self.connect(read_only=True) as con:
            if names:
                rows = self._select_sources(con, "WHERE s.name IN (SELECT unnest(?))", [list(names)])
                missing = sorted(set(names) - {s.name for s in rows})
                if missing:
                    raise NotFound(f"no source named {missing[0]!r} (see `feedcast source list`)")
                return rows
            return self._select_sources(con, "", [])

    def _select_sources(self, con: Connection, where: str, params: list[Any]) -> list[Source]:
        sql = (
            f"SELECT {', '.join('s.' + c.strip() for c in _SOURCE_COLUMNS.split(','))},"
            " (SELECT count(*) FROM items i WHERE i.source_id = s.id) AS item_count"
            f" FROM sources s {where} ORDER BY s.name"
        )
        out = []
        for r in con.execute(sql, params).fetchall():
            out.append(
                Source(
                    id=r[0],
                    name=r[1],
                    url=r[2],
                    kind=r[3],
                    format=r[4],
                    site_url=r[5],
                    title=r[6],
                    every=timedelta(seconds=r[7]),
                    backfill=r[8],
                    selectors=json.loads(r[9]) if r[9] else None,
                    status=r[10],
                    etag=r[11],
                    last_modified=r[12],
                    body_hash=r[13],
                    error_count=r[14],
                    last_error=r[15],
                    last_status=r[16],
                    last_polled_at=r[17],
                    last_success_at=r[18],
                    next_poll_at=r[19],
                    baseline_done=r[20],
                    created_at=r[21],
                    added_url=r[22],
                    item_count=r[23],
                )
            )
        return out

    def remove_source(self, name: str) -> int:
        """Delete a source with its items, events and fetch log; returns the items removed."""
        source = self.get_source(name)
        with self.transaction() as con:
            con.execute("DELETE FROM item_events WHERE source_id = ?", [source.id])
            con.execute("DELETE FROM items WHERE source_id = ?", [source.id])
            con.execute("DELETE FROM fetches WHERE source_id = ?", [source.id])
            con.execute("DELETE FROM sources WHERE id = ?", [source.id])
        return source.item_count

    def update_source(
        self,
        name: str,
        *,
        url: str | None = None,
        kind: str | None = None,
        every: timedelta | None = None,
        backfill: int | None = None,
        selectors: Mapping[str, str] | None = None,
        clear_selectors: bool = False,
    ) -> Source:
        """Change a source's registration. A new URL starts over from a conditional-GET
        point of view (validators dropped, due now); its items and history stay."""
        source = self.get_source(name)
        sets: list[str] = []
        params: list[Any] = []
        if url is not None and url != source.added_url:
            sets += [
                "url = ?",
                "added_url = ?",
                "site_url = NULL",
                "etag = NULL",
                "last_modified = NULL",
                "body_hash = NULL",
                "next_poll_at = now()",
            ]
            params += [url, url]
        if kind is not None:
            sets.append("kind = ?")
            params.append(kind)
        if every is not None:
            sets.append("every_seconds = ?")
            params.append(int(every.total_seconds()))
        if backfill is not None:
            sets.append("backfill = ?")
            params.append(backfill)
        if selectors is not None or clear_selectors:
            sets.append("selectors = ?::JSON")
            params.append(_json(selectors) if selectors else None)
        if sets:
            with self.transaction() as con:
                con.execute(f"UPDATE sources SET {', '.join(sets)} WHERE id = ?", [*params, source.id])
        return self.get_source(name)

    def set_source_status(self, name: str, status: str) -> Source:
        if status not in {"active", "paused"}:
            raise InvalidValue(f"unknown source status {status!r}")
        source = self.get_source(name)
        with self.transaction() as con:
            con.execute(
                "UPDATE sources SET status = ?, error_count = CASE WHEN ? = 'active' THEN 0 ELSE error_count END,"
                " next_poll_at = CASE WHEN ? = 'active' THEN now() ELSE next_poll_at END WHERE id = ?",
                [status, status, status, source.id],
            )
        return self.get_source(name)

    def due_sources(
        self, names: Sequence[str] | None = None, *, force: bool = False, now: datetime | None = None
    ) -> list[Source]:
        """Sources to poll now: active and due, or every named / all active with ``force``."""
        now = now or datetime.now(UTC)
        sources = self.list_sources(names)
        if force:
            return [s for s in sources if s.status != "paused" or names]
        return [
            s for s in sources if s.status == "active" and (s.next_poll_at is None or s.next_poll_at <= now)
        ]

    def known_keys(self, source_id: int) -> dict[str, datetime | None]:
        with self.connect(read_only=True) as con:
            rows = con.execute(
                "SELECT key, updated_at FROM items WHERE source_id = ?", [source_id]
            ).fetchall()
        return {r[0]: r[1] for r in rows}

    # ----------------------------------------------------------------- polls

    def record_polls(
        self, outcomes: Sequence[PollOutcome], *, now: datetime | None = None
    ) -> list[PollSummary]:
        """Write a batch of poll outcomes in one transaction: fetch log, items, events, sources.

        Items are diffed against the store in SQL: a key not seen before is ``new``, a
        different content hash is ``changed``, a lower effective price is also
        ``price_drop`` and out of stock -> in stock is ``back_in_stock``. A source's first
        successful poll is its baseline: items are stored but raise no event, except the
        newest ``backfill`` ones which count as new.
        """
        if not outcomes:
            return []
        now = now or datetime.now(UTC)
        with self.transaction() as con:
            ids = [o.source_id for o in outcomes]
            state = {
                r[0]: (r[1], r[2], r[3], r[4], r[5])
                for r in con.execute(
                    "SELECT id, name, baseline_done, backfill, every_seconds, error_count FROM sources"
                    " WHERE id IN (SELECT unnest(?))",
                    [ids],
                ).fetchall()
            }
            outcomes = [o for o in outcomes if o.source_id in state]  # removed meanwhile
            if not outcomes:
                return []
            first_fetch = con.execute(
                "SELECT nextval('fetches_id_seq') FROM range(?)", [len(outcomes)]
            ).fetchall()
            fetch_ids = {o.source_id: int(first_fetch[i][0]) for i, o in enumerate(outcomes)}

            staged = self._stage_items(outcomes, fetch_ids, state)
            counts: dict[int, tuple[int, int]] = {}
            if staged.num_rows:
                con.register("staged_items", staged)
                counts = self._merge_items(con, now)
                con.unregister("staged_items")
            self._write_fetches(con, outcomes, fetch_ids, counts)
            self._update_sources(con, outcomes, state, now)

        summaries = []
        for o in outcomes:
            name, baseline_done, _backfill, _every, _errors = state[o.source_id]
            new, changed = counts.get(o.source_id, (0, 0))
            summaries.append(
                PollSummary(
                    source=name,
                    outcome=o.outcome,
                    items=len(o.items) if o.items is not None else None,
                    new=new,
                    changed=changed,
                    error=o.error,
                    baseline=not baseline_done and o.items is not None,
                )
            )
        return summaries

    def _stage_items(
        self,
        outcomes: Sequence[PollOutcome],
        fetch_ids: Mapping[int, int],
        state: Mapping[int, tuple[str, bool, int, int, int]],
    ) -> pa.Table:
        cols: dict[str, list[Any]] = {name: [] for name in _ITEM_SCHEMA.names}
        for o in outcomes:
            if not o.items:
                continue
            _name, baseline_done, backfill, _every, _errors = state[o.source_id]
            backfilled: set[int] = set()
            if not baseline_done and backfill > 0:
                backfilled = set(_newest_first(o.items)[:backfill])
            for position, item in enumerate(o.items):
                cols["source_id"].append(o.source_id)
                cols["fetch_id"].append(fetch_ids[o.source_id])
                cols["key"].append(item.key)
                cols["title"].append(item.title)
                cols["url"].append(item.url)
                cols["summary"].append(item.summary)
                cols["content"].append(item.content)
                cols["image"].append(item.image)
                cols["media"].append(_json(list(item.media)))
                cols["author"].append(item.author)
                cols["published_at"].append(item.published)
                cols["updated_at"].append(item.updated)
                cols["tags"].append(list(item.tags) or None)
                cols["price"].append(_price(item.price))
                cols["sale_price"].append(_price(item.sale_price))
                cols["currency"].append(item.currency)
                cols["availability"].append(item.availability)
                cols["sku"].append(item.sku)
                cols["gtin"].append(item.gtin)
                cols["mpn"].append(item.mpn)
                cols["brand"].append(item.brand)
                cols["group_id"].append(item.group_id)
                cols["variants"].append(_json(list(item.variants)))
                cols["extra"].append(_json(item.extra))
                cols["content_hash"].append(item.content_hash())
                cols["position"].append(position)
                cols["backfill"].append(position in backfilled)
        return pa.Table.from_pydict(cols, schema=_ITEM_SCHEMA)

    def _merge_items(self, con: Connection, now: datetime) -> dict[int, tuple[int, int]]:
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE poll_diff AS
            WITH s AS (
                SELECT * FROM staged_items
                QUALIFY row_number() OVER (PARTITION BY source_id, key ORDER BY position) = 1
            )
            SELECT s.*, i.id AS item_id, i.content_hash AS old_hash,
                   coalesce(i.sale_price, i.price) AS old_price,
                   coalesce(s.sale_price, s.price) AS new_price,
                   i.availability AS old_availability,
                   src.baseline_done
            FROM s
            JOIN sources src ON src.id = s.source_id
            LEFT JOIN items i ON i.source_id = s.source_id AND i.key = s.key
            """
        )
        con.execute("UPDATE poll_diff SET item_id = nextval('items_id_seq') WHERE item_id IS NULL")
        # events first, while the old values are still in poll_diff
        con.execute(
            """
            INSERT INTO item_events (item_id, source_id, fetch_id, event, occurred_at, old_price, new_price,
                                     currency, old_availability, new_availability, backfill)
            SELECT item_id, source_id, fetch_id, 'new', ?, NULL, new_price, currency, NULL, availability,
                   NOT baseline_done
            FROM poll_diff WHERE old_hash IS NULL AND (baseline_done OR backfill)
            UNION ALL
            SELECT item_id, source_id, fetch_id, 'changed', ?, old_price, new_price, currency,
                   old_availability, availability, false
            FROM poll_diff WHERE old_hash IS NOT NULL AND old_hash <> content_hash
            UNION ALL
            SELECT item_id, source_id, fetch_id, 'price_drop', ?, old_price, new_price, currency,
                   old_availability, availability, false
            FROM poll_diff
            WHERE old_hash IS NOT NULL AND old_hash <> content_hash AND new_price < old_price
            UNION ALL
            SELECT item_id, source_id, fetch_id, 'back_in_stock', ?, old_price, new_price, currency,
                   old_availability, availability, false
            FROM poll_diff
            WHERE old_hash IS NOT NULL AND old_hash <> content_hash
              AND old_availability = 'out_of_stock' AND availability IN ('in_stock', 'preorder', 'backorder')
            """,
            [now, now, now, now],
        )
        con.execute(
            """
            INSERT INTO items
            SELECT item_id, source_id, key, title, url, summary, content, image, media, author,
                   published_at, updated_at, tags, price, sale_price, currency, availability, sku, gtin,
                   mpn, brand, group_id, variants, extra, content_hash, position, ?, ?, NULL
            FROM poll_diff WHERE old_hash IS NULL
            """,
            [now, now],
        )
        con.execute(
            """
            UPDATE items SET title = d.title, url = d.url, summary = d.summary, content = d.content,
                image = d.image, media = d.media, author = d.author, published_at = d.published_at,
                updated_at = d.updated_at, tags = d.tags, price = d.price, sale_price = d.sale_price,
                currency = d.currency, availability = d.availability, sku = d.sku, gtin = d.gtin,
                mpn = d.mpn, brand = d.brand, group_id = d.group_id, variants = d.variants,
                extra = d.extra, content_hash = d.content_hash, position = d.position,
                last_seen_at = ?, changed_at = ?
            FROM poll_diff d
            WHERE items.id = d.item_id AND d.old_hash IS NOT NULL AND d.old_hash <> d.content_hash
            """,
            [now, now],
        )
        con.execute(
            """
            UPDATE items SET last_seen_at = ?, position = d.position
            FROM poll_diff d WHERE items.id = d.item_id AND d.old_hash = d.content_hash
            """,
            [now],
        )
        rows = con.execute(
            """
            SELECT source_id,
                   count(*) FILTER (WHERE old_hash IS NULL AND (baseline_done OR backfill)),
                   count(*) FILTER (WHERE old_hash IS NOT NULL AND old_hash <> content_hash)
            FROM poll_diff GROUP BY source_id
            """
        ).fetchall()
        con.execute("DROP TABLE poll_diff")
        return {int(r[0]): (int(r[1]), int(r[2])) for r in rows}

    def _write_fetches(
        self,
        con: Connection,
        outcomes: Sequence[PollOutcome],
        fetch_ids: Mapping[int, int],
        counts: Mapping[int, tuple[int, int]],
    ) -> None:
        table = pa.table(
            {
                "id": pa.array([fetch_ids[o.source_id] for o in outcomes], pa.int64()),
                "source_id": pa.array([o.source_id for o in outcomes], pa.int64()),
                "url": [o.url for o in outcomes],
                "started_at": pa.array([o.started_at for o in outcomes], pa.timestamp("us", tz="UTC")),
                "duration_ms": pa.array([o.duration * 1000 for o in outcomes], pa.float64()),
                "outcome": [o.outcome for o in outcomes],
                "status": pa.array([o.status for o in outcomes], pa.int32()),
                "bytes": pa.array([o.bytes for o in outcomes], pa.int64()),
                "documents": pa.array([o.documents for o in outcomes], pa.int32()),
                "sent_etag": [o.sent_etag for o in outcomes],
                "sent_last_modified": [o.sent_last_modified for o in outcomes],
                "etag": [o.etag for o in outcomes],
                "last_modified": [o.last_modified for o in outcomes],
                "kind": [o.kind for o in outcomes],
                "format": [o.format for o in outcomes],
                "items": pa.array(
                    [len(o.items) if o.items is not None else None for o in outcomes], pa.int32()
                ),
                "new_count": pa.array([counts.get(o.source_id, (0, 0))[0] for o in outcomes], pa.int32()),
                "changed_count": pa.array([counts.get(o.source_id, (0, 0))[1] for o in outcomes], pa.int32()),
                "warnings": pa.array([list(o.warnings) or None for o in outcomes], pa.list_(pa.string())),
                "error": [o.error for o in outcomes],
            }
        )
        con.register("staged_fetches", table)
        con.execute("INSERT INTO fetches BY NAME SELECT * FROM staged_fetches")
        con.unregister("staged_fetches")

    def _update_sources(
        self,
        con: Connection,
        outcomes: Sequence[PollOutcome],
        state: Mapping[int, tuple[str, bool, int, int, int]],
        now: datetime,
    ) -> None:
        rows: dict[str, list[Any]] = {
            k: []
            for k in (
                "id", "url", "site_url", "kind", "format", "title", "status", "etag", "last_modified",
                "body_hash", "error_count", "last_error", "last_status", "success", "next_poll_at",
                "baseline_done",
            )
        }  # fmt: skip
        for o in outcomes:
            _name, baseline_done, _backfill, every, errors = state[o.source_id]
            success = o.succeeded
            if o.outcome == "deadline":  # not the source's fault: stays due, no error counted
                delay = timedelta(0)
            elif success:
                errors = 0
                delay = timedelta(seconds=every)
            elif o.retry_after is not None:
                errors += 1
                delay = timedelta(seconds=max(o.retry_after, 1.0))
            else:
                errors += 1
                # exponential backoff, capped at a day, with jitter so failures spread out
                delay = timedelta(seconds=min(every * 2 ** min(errors, 16), 86400) * _RNG.uniform(0.8, 1.0))
            rows["id"].append(o.source_id)
            rows["url"].append(o.new_url)
            rows["site_url"].append(o.site_url)
            rows["kind"].append(o.kind)
            rows["format"].append(o.format)
            rows["title"].append(o.title)
            rows["status"].append("gone" if o.outcome == "gone" else None)
            rows["etag"].append(o.etag if success else None)
            rows["last_modified"].append(o.last_modified if success else None)
            rows["body_hash"].append(o.body_hash if success else None)
            rows["error_count"].append(errors)
            rows["last_error"].append(None if success else o.error)
            rows["last_status"].append(o.status)
            rows["success"].append(success)
            rows["next_poll_at"].append(now + delay)
            rows["baseline_done"].append(baseline_done or (o.items is not None and o.backlog == 0))
        table = pa.table(
            {
                **rows,
                "id": pa.array(rows["id"], pa.int64()),
                "error_count": pa.array(rows["error_count"], pa.int32()),
                "last_status": pa.array(rows["last_status"], pa.int32()),
                "next_poll_at": pa.array(rows["next_poll_at"], pa.timestamp("us", tz="UTC")),
            }
        )
        con.register("staged_sources", table)
        con.execute(
            """
            UPDATE sources SET
                url = coalesce(u.url, sources.url),
                site_url = coalesce(u.site_url, sources.site_url),
                kind = coalesce(u.kind, sources.kind),
                format = coalesce(u.format, sources.format),
                title = coalesce(u.title, sources.title),
                status = CASE WHEN sources.status = 'paused' THEN 'paused'
                              ELSE coalesce(u.status, sources.status) END,
                etag = CASE WHEN u.success THEN u.etag ELSE sources.etag END,
                last_modified = CASE WHEN u.success THEN u.last_modified ELSE sources.last_modified END,
                body_hash = CASE WHEN u.success THEN coalesce(u.body_hash, sources.body_hash)
                                 ELSE sources.body_hash END,
                error_count = u.error_count,
                last_error = u.last_error,
                last_status = u.last_status,
                last_polled_at = ?,
                last_success_at = CASE WHEN u.success THEN ? ELSE sources.last_success_at END,
                next_poll_at = u.next_poll_at,
                baseline_done = u.baseline_done
            FROM staged_sources u WHERE sources.id = u.id
            """,
            [now, now],
        )
        con.unregister("staged_sources")

    # ----------------------------------------------------------------- reading

    def items(self, source: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        where, params = "", []
        if source:
            where, params = "WHERE s.name = ?", [self.get_source(source).name]
        sql = f"""
            SELECT i.id, s.name AS source, i.title, i.url, i.published_at, i.price, i.sale_price,
                   i.currency, i.availability, i.first_seen_at
            FROM items i JOIN sources s ON s.id = i.source_id {where}
            ORDER BY coalesce(i.published_at, i.first_seen_at) DESC, i.position
            LIMIT ?
        """
        return self.query(sql, [*params, limit])[1]

    @overload
    def recent_items(
        self, source_names: Sequence[str], limit: int, *, with_events: Literal[False] = False
    ) -> list[Item]: ...

    @overload
    def recent_items(
        self, source_names: Sequence[str], limit: int, *, with_events: Literal[True]
    ) -> list[tuple[Item, ItemEvent | None]]: ...

    def recent_items(
        self, source_names: Sequence[str], limit: int, *, with_events: bool = False
    ) -> list[Item] | list[tuple[Item, ItemEvent | None]]:
        """The newest ``limit`` items of the named sources (all sources when none is
        named) as full :class:`Item` objects, newest first: by published time, else the
        time feedcast first saw them, then feed order. An unknown name is NotFound.

        ``with_events``: each item comes with its standing price drop or restock, an
        :data:`ItemEvent` ``(event, old_price, new_price)``: the ``price_drop`` (else
        ``back_in_stock``) event of the item's latest change, None when that change
        raised neither (a later change, say the price going back up, makes an older
        drop stale).
        """
        names = list(dict.fromkeys(source_names))
        with self.connect(read_only=True) as con:
            if names:
                known = {
                    r[0]
                    for r in con.execute(
                        "SELECT name FROM sources WHERE name IN (SELECT unnest(?))", [names]
                    ).fetchall()
                }
                missing = [n for n in names if n not in known]
                if missing:
                    raise NotFound(f"no source named {missing[0]!r} (see `feedcast source list`)")
            if limit < 1:
                return []
            rows = con.execute(
                f"""
                WITH chosen AS (
                    SELECT i.*
                    FROM items i JOIN sources s ON s.id = i.source_id
                    {"WHERE s.name IN (SELECT unnest(?))" if names else ""}
                    ORDER BY coalesce(i.published_at, i.first_seen_at) DESC, i.position, i.id
                    LIMIT ?
                ), standing AS (
                    SELECT e.item_id, e.event, e.old_price, e.new_price
                    FROM item_events e JOIN chosen c ON c.id = e.item_id AND e.occurred_at = c.changed_at
                    WHERE e.event IN ('price_drop', 'back_in_stock')
                    QUALIFY row_number() OVER (
                        PARTITION BY e.item_id ORDER BY e.event = 'price_drop' DESC, e.id DESC) = 1
                )
                SELECT c.key, c.title, c.url, c.summary, c.content, c.image, c.media, c.author,
                       c.published_at, c.updated_at, c.tags, c.price, c.sale_price, c.currency,
                       c.availability, c.sku, c.gtin, c.mpn, c.brand, c.group_id, c.variants, c.extra,
                       st.event, st.old_price, st.new_price
                FROM chosen c LEFT JOIN standing st ON st.item_id = c.id
                ORDER BY coalesce(c.published_at, c.first_seen_at) DESC, c.position, c.id
                """,
                [names, limit] if names else [limit],
            ).fetchall()
        pairs: list[tuple[Item, ItemEvent | None]] = []
        for r in rows:
            item = item_from_row(r)
            pairs.append((item, (r[22], _plain_price(r[23]), _plain_price(r[24])) if r[22] else None))
        if with_events:
            return pairs
        return [item for item, _event in pairs]

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
