"""Automations: what each sends where, its schedule, its lease (two processes never
send one automation at once), its one-off sends and its queue (the items waiting for
its next campaign). A repository of :class:`feedcast.store.Store`; an automation's
``--where`` predicate is user SQL, checked by :func:`validate_where` and run guarded.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from feedcast.kernel.errors import AlreadyExists, InvalidValue, NotFound
from feedcast.kernel.models import Automation, QueuedItem
from feedcast.store._rows import _plain_price, _tuple, _utc, item_columns, item_from_row, model_from_row
from feedcast.store.channels import ChannelRepository
from feedcast.store.guard import (
    NO_ACCESS,
    Guard,
    first_line,
    lock_down,
    open_config,
    parse_predicate,
    run_error,
    wrap_where,
)
from feedcast.store.sources import SourceRepository

__all__ = ["FILTER_COLUMNS", "AutomationRepository", "validate_where"]

# an item's pending events collapse into one; the most telling wins
_EVENT_PRIORITY = (
    "CASE event WHEN 'price_drop' THEN 1 WHEN 'back_in_stock' THEN 2 WHEN 'new' THEN 3 ELSE 4 END"
)


# what an automation's --where predicate sees: one row per queued item
FILTER_COLUMNS = {
    "title": "VARCHAR",
    "url": "VARCHAR",
    "summary": "VARCHAR",
    "content": "VARCHAR",
    "author": "VARCHAR",
    "published_at": "TIMESTAMPTZ",
    "updated_at": "TIMESTAMPTZ",
    "first_seen_at": "TIMESTAMPTZ",
    "tags": "VARCHAR[]",
    "price": "DECIMAL(18, 4)",
    "sale_price": "DECIMAL(18, 4)",
    "effective_price": "DECIMAL(18, 4)",
    "currency": "VARCHAR",
    "availability": "VARCHAR",
    "sku": "VARCHAR",
    "gtin": "VARCHAR",
    "mpn": "VARCHAR",
    "brand": "VARCHAR",
    "group_id": "VARCHAR",
    "source": "VARCHAR",
    "event": "VARCHAR",
    "old_price": "DECIMAL(18, 4)",
    "new_price": "DECIMAL(18, 4)",
}


def validate_where(predicate: str) -> str:
    """Check an automation's ``--where``: one boolean expression over the item columns
    (:data:`FILTER_COLUMNS`), bound by DuckDB in an empty in-memory database that holds
    nothing else, guarded like every connection that runs user SQL (no files, URLs or
    extensions, configuration locked: :mod:`feedcast.store.guard`). Returns it tidied;
    InvalidValue with DuckDB's reason otherwise (a reason from parsing or binding, which
    quotes only the predicate and the item columns)."""
    text = predicate.strip()
    if not text:
        raise InvalidValue("--where is empty")
    guard = Guard()
    con = duckdb.connect(":memory:", config=open_config(guard))
    try:
        lock_down(con, guard)
        con.execute(
            "CREATE TABLE item (" + ", ".join(f"{name} {kind}" for name, kind in FILTER_COLUMNS.items()) + ")"
        )
        try:
            statements = con.extract_statements(wrap_where("SELECT * FROM item", text))
            if len(statements) != 1:
                raise InvalidValue("--where must be one boolean expression, not several statements")
            shape = parse_predicate(con, text, "item")
            if shape is not None:
                raise InvalidValue(
                    f"--where {text!r} is not one boolean expression over the item columns: {shape}"
                )
            described = con.execute(f"DESCRIBE SELECT (\n{text}\n) AS keep FROM item").fetchall()
            counted = con.sql(wrap_where("SELECT count(*) FROM item", text))  # bound, not run yet
        except duckdb.PermissionException:
            raise InvalidValue(f"--where {text!r} reads a file, a URL or an extension: {NO_ACCESS}") from None
        except duckdb.Error as exc:
            raise InvalidValue(
                f"--where {text!r} is not a boolean expression over the item columns: {first_line(str(exc))}"
            ) from None
        if len(described) != 1 or str(described[0][1]).upper() not in {"BOOLEAN", '"NULL"', "NULL"}:
            kind = described[0][1] if described else "nothing"
            raise InvalidValue(f"--where {text!r} is {kind}, not a boolean expression (e.g. price < 50)")
        try:  # run once over no rows: nothing but the predicate's own constants to read
            counted.fetchall()
        except duckdb.Error as exc:
            raise InvalidValue(f"--where {text!r} fails: {run_error(exc)}") from None
    finally:
        con.close()
    return text


@functools.lru_cache(maxsize=256)
def _validated_where(predicate: str) -> str:
    """:func:`validate_where`, once per process for each predicate that passes (the
    check is the same every time; one that fails is checked, and fails, again)."""
    return validate_where(predicate)


class AutomationRepository(ChannelRepository, SourceRepository):
    """The automations (each on one channel, watching sources), their runs and queues."""

    # automation fields stored as they are (name -> column)
    _AUTOMATION_COLUMNS = (
        "layout",
        "audience",
        "on_new",
        "max_items",
        "events",
        "backfill",
        "message_tag",
        "timezone",
        "locale",
        "since",
        "schedule",
        "cron",
        "every_seconds",
        "min_items",
        "where_sql",
        "next_run_at",
        "status",
        "track_clicks",
    )

    @classmethod
    def _automation_values(cls, fields: Mapping[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(fields) - set(cls._AUTOMATION_COLUMNS))
        if unknown:
            raise InvalidValue(f"unknown automation field {unknown[0]!r}")
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in fields.items()}

    def add_automation(
        self, name: str, *, channel: str, sources: Sequence[str], layout: str, **fields: Any
    ) -> Automation:
        """Register an automation. ``fields`` are columns of ``automations`` (events,
        schedule, cron, every_seconds, where_sql, next_run_at...)."""
        ch = self.get_channel(channel)
        found = self.list_sources(list(sources))  # NotFound for an unknown source
        values = self._automation_values({"layout": layout, **fields})
        values.setdefault("since", datetime.now(UTC))
        with self.transaction() as con:
            if con.execute("SELECT 1 FROM automations WHERE name = ?", [name]).fetchone():
                raise AlreadyExists(f"an automation named {name!r} already exists")
            columns = ["name", "channel_id", *values]
            row = con.execute(
                f"INSERT INTO automations ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
                " RETURNING id",
                [name, ch.id, *values.values()],
            ).fetchone()
            assert row is not None
            con.execute("INSERT INTO automation_sources SELECT ?, unnest(?)", [row[0], [s.id for s in found]])
        return self.get_automation(name)

    def update_automation(
        self,
        name: str,
        *,
        channel: str | None = None,
        sources: Sequence[str] | None = None,
        **fields: Any,
    ) -> Automation:
        """Change an automation's fields (its cursor stays: nothing is sent twice)."""
        automation = self.get_automation(name)
        values = self._automation_values(fields)
        ch = self.get_channel(channel) if channel is not None else None
        found = self.list_sources(list(sources)) if sources is not None else None
        with self.transaction() as con:
            if ch is not None:
                values["channel_id"] = ch.id
            if values:
                con.execute(
                    f"UPDATE automations SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ?",
                    [*values.values(), automation.id],
                )
            if found is not None:
                con.execute("DELETE FROM automation_sources WHERE automation_id = ?", [automation.id])
                con.execute(
                    "INSERT INTO automation_sources SELECT ?, unnest(?)",
                    [automation.id, [s.id for s in found]],
                )
        return self.get_automation(name)

    # the fields of Automation, in order (model_from_row)
    _AUTOMATION_SQL = """
        SELECT a.id, a.name, c.name, a.layout,
               (SELECT list(s.name ORDER BY s.name) FROM automation_sources x JOIN sources s ON s.id = x.source_id
                WHERE x.automation_id = a.id),
               a.audience, a.on_new, a.max_items, a.events, a.backfill, a.message_tag, a.timezone,
               a.locale, a.status, a.since, a.created_at,
               (SELECT max(created_at) FROM campaigns k WHERE k.automation_id = a.id),
               a.schedule, a.cron, a.every_seconds, a.min_items, a.where_sql, a.next_run_at, a.last_run_at,
               a.track_clicks
        FROM automations a JOIN channels c ON c.id = a.channel_id
    """

    @staticmethod
    def _automation(r: Sequence[Any]) -> Automation:
        return model_from_row(
            Automation,
            r,
            utc=("since", "created_at", "last_campaign_at", "next_run_at", "last_run_at"),
            sources=_tuple,
            events=tuple,
            every=lambda seconds: timedelta(seconds=seconds) if seconds is not None else None,
            track_clicks=bool,
        )

    def get_automation(self, name: str) -> Automation:
        with self.connect(read_only=True) as con:
            row = con.execute(self._AUTOMATION_SQL + " WHERE a.name = ?", [name]).fetchone()
        if row is None:
            raise NotFound(f"no automation named {name!r} (see `feedcast automation list`)")
        return self._automation(row)

    def list_automations(self) -> list[Automation]:
        with self.connect(read_only=True) as con:
            rows = con.execute(self._AUTOMATION_SQL + " ORDER BY a.name").fetchall()
        return [self._automation(r) for r in rows]

    def remove_automation(self, name: str) -> None:
        """Delete an automation; its campaigns and deliveries stay in the history."""
        automation = self.get_automation(name)
        with self.transaction() as con:
            con.execute("DELETE FROM automation_sources WHERE automation_id = ?", [automation.id])
            con.execute(
                "DELETE FROM scheduled_sends WHERE automation_id = ? AND status = 'pending'", [automation.id]
            )
            con.execute("DELETE FROM automations WHERE id = ?", [automation.id])

    def set_automation_status(self, name: str, status: str) -> Automation:
        if status not in {"active", "paused"}:
            raise InvalidValue(f"unknown automation status {status!r}")
        return self.update_automation(name, status=status)

    def claim_automation(
        self, automation_id: int, owner: str, ttl: float, *, steal_from: str | None = None
    ) -> tuple[str, datetime] | None:
        """Take (or renew) the right to send this automation for ``ttl`` seconds: two
        processes never send one automation at once. None when taken; else the holder
        and its expiry when someone else holds it."""
        return self._claim("automations", automation_id, owner, ttl, steal_from)

    def release_automation(self, automation_id: int, owner: str) -> None:
        self._release("automations", automation_id, owner)

    def record_run(self, automation_id: int, *, ran_at: datetime, next_run_at: datetime | None) -> None:
        """An automation ran (or was found with nothing to do): when it runs next."""
        with self.transaction() as con:
            con.execute(
                "UPDATE automations SET last_run_at = ?, next_run_at = ? WHERE id = ?",
                [ran_at, next_run_at, automation_id],
            )

    # ----------------------------------------------------------------- one-off sends

    def add_scheduled_send(self, name: str, run_at: datetime) -> int:
        automation = self.get_automation(name)
        with self.transaction() as con:
            row = con.execute(
                "INSERT INTO scheduled_sends (automation_id, run_at) VALUES (?, ?) RETURNING id",
                [automation.id, run_at],
            ).fetchone()
        assert row is not None
        return int(row[0])

    def scheduled_sends(self, *, due_by: datetime | None = None) -> list[dict[str, Any]]:
        """Pending one-off sends (those due by ``due_by`` when given), soonest first."""
        sql = (
            "SELECT x.id, a.name AS automation, x.run_at, x.status FROM scheduled_sends x"
            " JOIN automations a ON a.id = x.automation_id WHERE x.status = 'pending'"
        )
        params: list[Any] = []
        if due_by is not None:
            sql += " AND x.run_at <= ?"
            params.append(due_by)
        with self.connect(read_only=True) as con:
            cursor = con.execute(sql + " ORDER BY x.run_at, x.id", params)
            columns = [d[0] for d in cursor.description or []]
            return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]

    def finish_scheduled_send(
        self, send_id: int, *, campaign_id: int | None, note: str | None = None
    ) -> None:
        with self.transaction() as con:
            con.execute(
                "UPDATE scheduled_sends SET status = 'done', campaign_id = ?, note = ?, done_at = now()"
                " WHERE id = ?",
                [campaign_id, note, send_id],
            )

    # ----------------------------------------------------------------- the queue

    def _queue_sql(self) -> str:
        return f"""
            WITH covered AS (
                SELECT item_id, max(event_at) AS covered_at FROM campaign_items
                WHERE automation_id = $automation GROUP BY item_id
            ), watched AS (
                SELECT source_id FROM automation_sources WHERE automation_id = $automation
            ), events AS (
                SELECT e.item_id, e.event, e.occurred_at AS event_at, e.old_price, e.new_price
                FROM item_events e
                WHERE e.source_id IN (SELECT source_id FROM watched)
                  AND list_contains($events, e.event) AND e.occurred_at >= $since
                UNION ALL
                -- a source's --backfill reaches every automation on it, added before or
                -- after its first poll (covered below: sent once per automation)
                SELECT e.item_id, e.event, e.occurred_at AS event_at, e.old_price, e.new_price
                FROM item_events e
                WHERE e.source_id IN (SELECT source_id FROM watched) AND e.backfill
                  AND list_contains($events, e.event) AND e.occurred_at < $since
            ), backfill AS (
                SELECT i.id AS item_id, 'new' AS event, i.first_seen_at AS event_at,
                       NULL::DECIMAL(18, 4) AS old_price, NULL::DECIMAL(18, 4) AS new_price
                FROM items i
                WHERE i.source_id IN (SELECT source_id FROM watched) AND i.first_seen_at < $since
                  AND list_contains($events, 'new')
                ORDER BY coalesce(i.published_at, i.first_seen_at) DESC, i.position, i.id
                LIMIT $backfill
            ), pending AS (
                SELECT c.* FROM (SELECT * FROM events UNION ALL SELECT * FROM backfill) c
                LEFT JOIN covered v ON v.item_id = c.item_id
                WHERE v.covered_at IS NULL OR c.event_at > v.covered_at
                QUALIFY row_number() OVER (
                    PARTITION BY c.item_id ORDER BY {_EVENT_PRIORITY}, c.event_at DESC) = 1
            ), filterable AS (
                SELECT i.*, s.name AS source, coalesce(i.sale_price, i.price) AS effective_price
                FROM items i JOIN sources s ON s.id = i.source_id
                WHERE i.id IN (SELECT item_id FROM pending)
            )
        """

    def queued_items(self, automation: Automation, limit: int | None = None) -> tuple[list[QueuedItem], int]:
        """The items waiting for ``automation``'s next campaign, oldest event first (a
        queue: nothing is skipped), at most ``limit``; and how many wait in all."""
        params: dict[str, Any] = {
            "automation": automation.id,
            "events": list(automation.events),
            "since": automation.since,
            "backfill": automation.backfill,
        }
        count_sql = (
            self._queue_sql() + " SELECT count(*) FROM pending p JOIN filterable i ON i.id = p.item_id"
        )
        sql = (
            self._queue_sql()
            + f"""
            SELECT p.item_id, p.event, p.event_at, p.old_price, p.new_price, {item_columns("i")}
            FROM pending p JOIN filterable i ON i.id = p.item_id
            """
        )
        order = "\nORDER BY p.event_at, i.position, i.id" + (
            f" LIMIT {int(limit)}" if limit is not None else ""
        )
        if not automation.where:
            with self.connect(read_only=True) as con:
                total_row = con.execute(count_sql, params).fetchone()
                rows = con.execute(sql + order, params).fetchall()
        else:
            # the predicate is user SQL: checked again as at `automation add` (a store
            # written by an older feedcast may hold anything), then run on a guarded
            # connection, its errors without DuckDB's message (a cast quotes the item)
            _validated_where(automation.where)
            with self.guarded() as con:
                try:
                    total_row = con.execute(wrap_where(count_sql, automation.where), params).fetchone()
                    rows = con.execute(wrap_where(sql, automation.where) + order, params).fetchall()
                except duckdb.Error as exc:
                    raise InvalidValue(
                        f"automation {automation.name!r}: its --where failed on the queued items: {run_error(exc)}"
                    ) from None
        queued = [
            QueuedItem(
                item_id=r[0],
                event=r[1],
                event_at=_utc(r[2]) or datetime.now(UTC),
                old_price=_plain_price(r[3]),
                new_price=_plain_price(r[4]),
                item=item_from_row(r[5:]),
            )
            for r in rows
        ]
        return queued, int(total_row[0]) if total_row else 0

    def audience_size(self, automation: Automation) -> int:
        with self.connect(read_only=True) as con:
            row = con.execute(
                "SELECT count(*) FROM subscribers s JOIN channels c ON c.id = s.channel_id"
                " WHERE c.name = ? AND s.status = 'active' AND (? IS NULL OR list_contains(s.tags, ?))",
                [automation.channel, automation.audience, automation.audience],
            ).fetchone()
        return int(row[0]) if row else 0
