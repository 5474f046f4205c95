"""Sources and their items: registering a source, changing it, reading what it
brought (a repository of :class:`feedcast.store.Store`; polls are written by
:mod:`feedcast.store.polls`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, overload

import pyarrow as pa

from feedcast.kernel.errors import AlreadyExists, InvalidValue, NotFound
from feedcast.kernel.models import Item, Source
from feedcast.store._rows import _plain_price, item_from_row, model_from_row, to_json
from feedcast.store.database import Connection, Database, staged

__all__ = ["ItemEvent", "NewSource", "SourceRepository"]


@dataclass(frozen=True, slots=True)
class NewSource:
    """A source to register (see :meth:`SourceRepository.add_sources`)."""

    name: str
    url: str
    kind: str | None = None
    every: timedelta = timedelta(minutes=15)
    backfill: int = 0
    selectors: Mapping[str, str] | None = None


# why an item stands out, as recent_items reports it: (event, old price, new price)
ItemEvent = tuple[str, Decimal | None, Decimal | None]

# in the order of Source's fields (model_from_row)
_SOURCE_COLUMNS = (
    "id, name, url, added_url, kind, format, site_url, title, every_seconds, backfill, selectors, status, "
    "etag, last_modified, body_hash, error_count, last_error, last_status, last_polled_at, last_success_at, "
    "next_poll_at, baseline_done, created_at"
)


class SourceRepository(Database):
    """The sources, and the items they brought as the reader asks for them."""

    # ----------------------------------------------------------------- registration

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
                "selectors": pa.array([to_json(s.selectors) for s in sources], pa.string()),
            }
        )
        with self.transaction() as con:
            taken = con.execute(
                "SELECT name FROM sources WHERE name IN (SELECT unnest(?)) ORDER BY name", [names]
            ).fetchall()
            if taken:
                raise AlreadyExists(f"a source named {taken[0][0]!r} already exists")
            with staged(con, new_sources=table):
                con.execute(
                    "INSERT INTO sources (name, url, added_url, kind, every_seconds, backfill, selectors, next_poll_at)"
                    " SELECT name, url, url, kind, every_seconds, backfill, selectors::JSON, now() FROM new_sources"
                )

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
        return [
            model_from_row(
                Source,
                r,
                every=lambda seconds: timedelta(seconds=seconds),
                selectors=lambda raw: json.loads(raw) if raw else None,
            )
            for r in con.execute(sql, params).fetchall()
        ]

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
            params.append(to_json(selectors) if selectors else None)
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

    # ----------------------------------------------------------------- items

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
