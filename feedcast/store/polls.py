"""Polls: what one batch of fetches did to the sources and their items, written in one
transaction (a repository of :class:`feedcast.store.Store`). Bulk writes go through
Arrow tables and ``INSERT ... SELECT``, never row-by-row ``executemany``; items are
diffed against the store in SQL (:data:`_POLL_DIFF`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

import pyarrow as pa

from feedcast.kernel.models import Item, PollOutcome
from feedcast.store._rows import to_json
from feedcast.store.database import RNG, Connection, Database, staged

__all__ = ["PollRepository", "PollSummary"]


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


class _Polled(NamedTuple):
    """A polled source as the store knew it before this poll."""

    name: str
    baseline_done: bool
    backfill: int
    every: int  # seconds
    errors: int  # consecutive errors


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

# the Item fields stored as they are, each in the column of its name
_AS_IS = (
    "key", "title", "url", "summary", "content", "image", "author", "currency", "availability", "sku",
    "gtin", "mpn", "brand", "group_id",
)  # fmt: skip

_MAX_PRICE = Decimal("99999999999999.9999")
_QUANTUM = Decimal("0.0001")


def _price(value: Decimal | None) -> Decimal | None:
    if value is None or not value.is_finite() or abs(value) > _MAX_PRICE:
        return None
    return value.quantize(_QUANTUM)


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


# ----------------------------------------------------------------- merging items, in SQL

# the staged items (the first of a key in a feed), each with what the store holds for it
_POLL_DIFF = """
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

# events first, while the old values are still in poll_diff
_RECORD_EVENTS = """
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
"""

_INSERT_NEW_ITEMS = """
    INSERT INTO items
    SELECT item_id, source_id, key, title, url, summary, content, image, media, author,
           published_at, updated_at, tags, price, sale_price, currency, availability, sku, gtin,
           mpn, brand, group_id, variants, extra, content_hash, position, ?, ?, NULL
    FROM poll_diff WHERE old_hash IS NULL
"""

_UPDATE_CHANGED_ITEMS = """
    UPDATE items SET title = d.title, url = d.url, summary = d.summary, content = d.content,
        image = d.image, media = d.media, author = d.author, published_at = d.published_at,
        updated_at = d.updated_at, tags = d.tags, price = d.price, sale_price = d.sale_price,
        currency = d.currency, availability = d.availability, sku = d.sku, gtin = d.gtin,
        mpn = d.mpn, brand = d.brand, group_id = d.group_id, variants = d.variants,
        extra = d.extra, content_hash = d.content_hash, position = d.position,
        last_seen_at = ?, changed_at = ?
    FROM poll_diff d
    WHERE items.id = d.item_id AND d.old_hash IS NOT NULL AND d.old_hash <> d.content_hash
"""

_TOUCH_UNCHANGED_ITEMS = """
    UPDATE items SET last_seen_at = ?, position = d.position
    FROM poll_diff d WHERE items.id = d.item_id AND d.old_hash = d.content_hash
"""

# per source: new (those that raise an event) and changed items
_DIFF_COUNTS = """
    SELECT source_id,
           count(*) FILTER (WHERE old_hash IS NULL AND (baseline_done OR backfill)),
           count(*) FILTER (WHERE old_hash IS NOT NULL AND old_hash <> content_hash)
    FROM poll_diff GROUP BY source_id
"""

# ----------------------------------------------------------------- updating the sources

# the columns of staged_sources, one row per outcome (see _source_row)
_SOURCE_UPDATE = (
    "id", "url", "site_url", "kind", "format", "title", "status", "etag", "last_modified",
    "body_hash", "error_count", "last_error", "last_status", "success", "next_poll_at",
    "baseline_done",
)  # fmt: skip

_UPDATE_SOURCES = """
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
"""


def _next_poll(o: PollOutcome, every: int, errors: int) -> tuple[int, timedelta]:
    """A source's consecutive errors after this outcome, and how long until its next poll."""
    if o.outcome == "deadline":  # not the source's fault: stays due, no error counted
        return errors, timedelta(0)
    if o.succeeded:
        return 0, timedelta(seconds=every)
    if o.retry_after is not None:
        return errors + 1, timedelta(seconds=max(o.retry_after, 1.0))
    errors += 1
    # exponential backoff, capped at a day, with jitter so failures spread out
    return errors, timedelta(seconds=min(every * 2 ** min(errors, 16), 86400) * RNG.uniform(0.8, 1.0))


def _source_row(o: PollOutcome, polled: _Polled, now: datetime) -> dict[str, Any]:
    """One row of staged_sources (:data:`_SOURCE_UPDATE`): what this outcome changes."""
    success = o.succeeded
    errors, delay = _next_poll(o, polled.every, polled.errors)
    return {
        "id": o.source_id,
        "url": o.new_url,
        "site_url": o.site_url,
        "kind": o.kind,
        "format": o.format,
        "title": o.title,
        "status": "gone" if o.outcome == "gone" else None,
        "etag": o.etag if success else None,
        "last_modified": o.last_modified if success else None,
        "body_hash": o.body_hash if success else None,
        "error_count": errors,
        "last_error": None if success else o.error,
        "last_status": o.status,
        "success": success,
        "next_poll_at": now + delay,
        "baseline_done": polled.baseline_done or (o.items is not None and o.backlog == 0),
    }


def _summary(o: PollOutcome, polled: _Polled, counts: tuple[int, int]) -> PollSummary:
    new, changed = counts
    return PollSummary(
        source=polled.name,
        outcome=o.outcome,
        items=len(o.items) if o.items is not None else None,
        new=new,
        changed=changed,
        error=o.error,
        baseline=not polled.baseline_done and o.items is not None,
    )


class PollRepository(Database):
    """Writes poll outcomes: the fetch log, the items and their events, the sources."""

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
            state = self._polled(con, [o.source_id for o in outcomes])
            outcomes = [o for o in outcomes if o.source_id in state]  # removed meanwhile
            if not outcomes:
                return []
            first_fetch = con.execute(
                "SELECT nextval('fetches_id_seq') FROM range(?)", [len(outcomes)]
            ).fetchall()
            fetch_ids = {o.source_id: int(first_fetch[i][0]) for i, o in enumerate(outcomes)}
            counts = self._merge_items(con, self._stage_items(outcomes, fetch_ids, state), now)
            self._write_fetches(con, outcomes, fetch_ids, counts)
            self._update_sources(con, outcomes, state, now)
        return [_summary(o, state[o.source_id], counts.get(o.source_id, (0, 0))) for o in outcomes]

    @staticmethod
    def _polled(con: Connection, ids: list[int]) -> dict[int, _Polled]:
        rows = con.execute(
            "SELECT id, name, baseline_done, backfill, every_seconds, error_count FROM sources"
            " WHERE id IN (SELECT unnest(?))",
            [ids],
        ).fetchall()
        return {r[0]: _Polled(r[1], r[2], r[3], r[4], r[5]) for r in rows}

    def _stage_items(
        self,
        outcomes: Sequence[PollOutcome],
        fetch_ids: Mapping[int, int],
        state: Mapping[int, _Polled],
    ) -> pa.Table:
        cols: dict[str, list[Any]] = {name: [] for name in _ITEM_SCHEMA.names}
        for o in outcomes:
            if not o.items:
                continue
            polled = state[o.source_id]
            backfilled: set[int] = set()
            if not polled.baseline_done and polled.backfill > 0:
                backfilled = set(_newest_first(o.items)[: polled.backfill])
            for position, item in enumerate(o.items):
                cols["source_id"].append(o.source_id)
                cols["fetch_id"].append(fetch_ids[o.source_id])
                for name in _AS_IS:
                    cols[name].append(getattr(item, name))
                cols["media"].append(to_json(list(item.media)))
                cols["published_at"].append(item.published)
                cols["updated_at"].append(item.updated)
                cols["tags"].append(list(item.tags) or None)
                cols["price"].append(_price(item.price))
                cols["sale_price"].append(_price(item.sale_price))
                cols["variants"].append(to_json(list(item.variants)))
                cols["extra"].append(to_json(item.extra))
                cols["content_hash"].append(item.content_hash())
                cols["position"].append(position)
                cols["backfill"].append(position in backfilled)
        return pa.Table.from_pydict(cols, schema=_ITEM_SCHEMA)

    @staticmethod
    def _merge_items(con: Connection, items: pa.Table, now: datetime) -> dict[int, tuple[int, int]]:
        """Diff the staged items against the store and write the difference: events,
        new items, changed items, the last sighting of the others. New and changed
        counts per source."""
        if not items.num_rows:
            return {}
        with staged(con, staged_items=items):
            con.execute(_POLL_DIFF)
            con.execute("UPDATE poll_diff SET item_id = nextval('items_id_seq') WHERE item_id IS NULL")
            con.execute(_RECORD_EVENTS, [now, now, now, now])
            con.execute(_INSERT_NEW_ITEMS, [now, now])
            con.execute(_UPDATE_CHANGED_ITEMS, [now, now])
            con.execute(_TOUCH_UNCHANGED_ITEMS, [now])
            rows = con.execute(_DIFF_COUNTS).fetchall()
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
        with staged(con, staged_fetches=table):
            con.execute("INSERT INTO fetches BY NAME SELECT * FROM staged_fetches")

    @staticmethod
    def _update_sources(
        con: Connection, outcomes: Sequence[PollOutcome], state: Mapping[int, _Polled], now: datetime
    ) -> None:
        rows = [_source_row(o, state[o.source_id], now) for o in outcomes]
        columns: dict[str, list[Any]] = {k: [r[k] for r in rows] for k in _SOURCE_UPDATE}
        table = pa.table(
            {
                **columns,
                "id": pa.array(columns["id"], pa.int64()),
                "error_count": pa.array(columns["error_count"], pa.int32()),
                "last_status": pa.array(columns["last_status"], pa.int32()),
                "next_poll_at": pa.array(columns["next_poll_at"], pa.timestamp("us", tz="UTC")),
            }
        )
        with staged(con, staged_sources=table):
            con.execute(_UPDATE_SOURCES, [now, now])
