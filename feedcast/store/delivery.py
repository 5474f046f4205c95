"""Channels, subscribers, automations, campaigns and deliveries: the sending side of
the store (a mixin of :class:`feedcast.store.Store`; SQL lives only in this package).

Exactly-once bookkeeping: a campaign is created in one transaction with its items
(the automation's cursor), its provider calls and one ``pending`` delivery per active
subscriber of its audience (unique on campaign and subscriber); sending takes pending
rows only and records outcomes in batches, so a rerun after a crash resumes. Before a
delivery's first call goes out it is marked started (``start_deliveries``, batched), so
a try whose outcome a crash lost is counted on the rerun (``lost_attempts``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from feedcast.kernel.errors import AlreadyExists, InvalidValue, NotFound
from feedcast.kernel.models import (
    Automation,
    CampaignInfo,
    ChannelConfig,
    DeliveryUpdate,
    NewSubscriber,
    PendingDelivery,
    ProviderCall,
    QueuedItem,
    Subscriber,
)
from feedcast.store._rows import _plain_price, _utc, item_columns, item_from_row
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

if TYPE_CHECKING:
    import duckdb

    Connection = duckdb.DuckDBPyConnection

__all__ = ["DeliveryStore", "m002", "m005"]

# an item's pending events collapse into one; the most telling wins
_EVENT_PRIORITY = (
    "CASE event WHEN 'price_drop' THEN 1 WHEN 'back_in_stock' THEN 2 WHEN 'new' THEN 3 ELSE 4 END"
)


def m002(con: Connection) -> None:
    """channels, subscribers, subscription_events, automations, campaigns, deliveries."""
    con.execute("""
        CREATE SEQUENCE channels_id_seq START 1;
        CREATE SEQUENCE subscribers_id_seq START 1;
        CREATE SEQUENCE subscription_events_id_seq START 1;
        CREATE SEQUENCE automations_id_seq START 1;
        CREATE SEQUENCE campaigns_id_seq START 1;
        CREATE SEQUENCE deliveries_id_seq START 1;
        CREATE SEQUENCE scheduled_sends_id_seq START 1;
        CREATE TABLE channels (
            id            BIGINT PRIMARY KEY DEFAULT nextval('channels_id_seq'),
            name          VARCHAR NOT NULL UNIQUE,
            kind          VARCHAR NOT NULL,
            settings      JSON NOT NULL,
            status        VARCHAR NOT NULL DEFAULT 'active',
            last_error    VARCHAR,
            last_error_at TIMESTAMPTZ,
            created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE TABLE subscribers (
            id              BIGINT PRIMARY KEY DEFAULT nextval('subscribers_id_seq'),
            channel_id      BIGINT NOT NULL,
            recipient       VARCHAR NOT NULL,
            name            VARCHAR,
            tags            VARCHAR[] NOT NULL DEFAULT [],
            status          VARCHAR NOT NULL DEFAULT 'active',
            status_reason   VARCHAR,
            last_inbound_at TIMESTAMPTZ,
            created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
            UNIQUE (channel_id, recipient)
        );
        CREATE TABLE subscription_events (
            id            BIGINT PRIMARY KEY DEFAULT nextval('subscription_events_id_seq'),
            subscriber_id BIGINT NOT NULL,
            channel_id    BIGINT NOT NULL,
            event         VARCHAR NOT NULL,
            source        VARCHAR NOT NULL,
            detail        VARCHAR,
            occurred_at   TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE TABLE automations (
            id           BIGINT PRIMARY KEY DEFAULT nextval('automations_id_seq'),
            name         VARCHAR NOT NULL UNIQUE,
            channel_id   BIGINT NOT NULL,
            layout       VARCHAR NOT NULL,
            audience     VARCHAR,
            on_new       BOOLEAN NOT NULL DEFAULT false,
            max_items    INTEGER,
            events       VARCHAR[] NOT NULL DEFAULT ['new'],
            backfill     INTEGER NOT NULL DEFAULT 0,
            message_tag  VARCHAR,
            timezone     VARCHAR NOT NULL DEFAULT 'UTC',
            locale       VARCHAR NOT NULL DEFAULT 'en',
            status       VARCHAR NOT NULL DEFAULT 'active',
            since        TIMESTAMPTZ NOT NULL,
            created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
            schedule     VARCHAR NOT NULL DEFAULT 'manual',
            cron         VARCHAR,
            every_seconds INTEGER,
            min_items    INTEGER NOT NULL DEFAULT 1,
            where_sql    VARCHAR,
            next_run_at  TIMESTAMPTZ,
            last_run_at  TIMESTAMPTZ,
            lease_owner  VARCHAR,
            lease_until  TIMESTAMPTZ
        );
        CREATE TABLE scheduled_sends (
            id            BIGINT PRIMARY KEY DEFAULT nextval('scheduled_sends_id_seq'),
            automation_id BIGINT NOT NULL,
            run_at        TIMESTAMPTZ NOT NULL,
            status        VARCHAR NOT NULL DEFAULT 'pending',
            campaign_id   BIGINT,
            note          VARCHAR,
            created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
            done_at       TIMESTAMPTZ
        );
        CREATE TABLE automation_sources (
            automation_id BIGINT NOT NULL,
            source_id     BIGINT NOT NULL,
            PRIMARY KEY (automation_id, source_id)
        );
        CREATE TABLE campaigns (
            id              BIGINT PRIMARY KEY,
            automation_id   BIGINT,
            automation_name VARCHAR,
            channel_id      BIGINT NOT NULL,
            channel_name    VARCHAR NOT NULL,
            channel_kind    VARCHAR NOT NULL,
            layout          VARCHAR NOT NULL,
            format          VARCHAR NOT NULL,
            trigger         VARCHAR NOT NULL DEFAULT 'manual',
            status          VARCHAR NOT NULL DEFAULT 'sending',
            items           INTEGER NOT NULL,
            messages        INTEGER NOT NULL,
            calls           INTEGER NOT NULL,
            recipients      INTEGER NOT NULL,
            warnings        VARCHAR[],
            error           VARCHAR,
            created_at      TIMESTAMPTZ NOT NULL,
            started_at      TIMESTAMPTZ,
            finished_at     TIMESTAMPTZ
        );
        CREATE TABLE campaign_items (
            campaign_id   BIGINT NOT NULL,
            automation_id BIGINT,
            item_id       BIGINT NOT NULL,
            event         VARCHAR NOT NULL,
            event_at      TIMESTAMPTZ NOT NULL,
            position      INTEGER NOT NULL,
            PRIMARY KEY (campaign_id, item_id)
        );
        CREATE TABLE campaign_calls (
            campaign_id BIGINT NOT NULL,
            position    INTEGER NOT NULL,
            message     INTEGER NOT NULL,
            method      VARCHAR NOT NULL,
            body        JSON NOT NULL,
            PRIMARY KEY (campaign_id, position)
        );
        CREATE TABLE deliveries (
            id                  BIGINT PRIMARY KEY DEFAULT nextval('deliveries_id_seq'),
            campaign_id         BIGINT NOT NULL,
            subscriber_id       BIGINT NOT NULL,
            recipient           VARCHAR NOT NULL,
            status              VARCHAR NOT NULL DEFAULT 'pending',
            attempts            INTEGER NOT NULL DEFAULT 0,
            calls_sent          INTEGER NOT NULL DEFAULT 0,
            error               VARCHAR,
            error_code          VARCHAR,
            provider_message_id VARCHAR,
            queued_at           TIMESTAMPTZ NOT NULL,
            sent_at             TIMESTAMPTZ,
            updated_at          TIMESTAMPTZ,
            UNIQUE (campaign_id, subscriber_id)
        );
        CREATE INDEX campaign_items_automation ON campaign_items (automation_id, item_id);
        CREATE VIEW send_history AS
            SELECT d.id AS delivery_id, d.campaign_id, c.automation_name AS automation,
                   c.channel_name AS channel, c.channel_kind, d.recipient, d.status, d.attempts,
                   d.error, d.provider_message_id, d.queued_at, d.sent_at,
                   d.subscriber_id, d.error_code, d.calls_sent, d.updated_at,
                   c.layout, c.format, c.trigger, c.created_at AS campaign_created_at
            FROM deliveries d JOIN campaigns c ON c.id = d.campaign_id;
    """)


_SEND_HISTORY = """
    CREATE OR REPLACE VIEW send_history AS
        SELECT d.id AS delivery_id, d.campaign_id, c.automation_name AS automation,
               c.channel_name AS channel, c.channel_kind, d.recipient, d.status, d.attempts,
               d.error, d.provider_message_id, d.queued_at, d.sent_at,
               d.subscriber_id, d.error_code, d.calls_sent, d.updated_at,
               c.layout, c.format, c.trigger, c.created_at AS campaign_created_at,
               d.started_at,
               coalesce(d.lost_attempts, 0)
                   + CASE WHEN d.status = 'pending' AND d.started_at IS NOT NULL THEN 1 ELSE 0 END
                   AS unconfirmed_attempts,
               d.status = 'sent' AND coalesce(d.lost_attempts, 0) > 0 AS possibly_duplicated
        FROM deliveries d JOIN campaigns c ON c.id = d.campaign_id
"""


def m005(con: Connection) -> None:
    """deliveries.started_at and lost_attempts: a try whose outcome a crash lost stays
    visible (send_history.unconfirmed_attempts, possibly_duplicated)."""
    con.execute("ALTER TABLE deliveries ADD COLUMN started_at TIMESTAMPTZ")
    con.execute("ALTER TABLE deliveries ADD COLUMN lost_attempts INTEGER DEFAULT 0")
    con.execute(_SEND_HISTORY)


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
    import duckdb

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


def _tags(values: Sequence[str]) -> list[str]:
    return sorted({t.strip() for t in values if t and t.strip()})


class DeliveryStore:
    """The store's sending side. Mixed into :class:`feedcast.store.Store`."""

    if TYPE_CHECKING:

        def connect(self, *, read_only: bool = False) -> AbstractContextManager[Connection]: ...
        def guarded(self, guard: Guard | None = None) -> AbstractContextManager[Connection]: ...
        def transaction(self) -> AbstractContextManager[Connection]: ...
        def list_sources(self, names: Sequence[str] | None = None) -> list[Any]: ...

    # ----------------------------------------------------------------- channels

    def add_channel(
        self, name: str, kind: str, settings: Mapping[str, Any], *, fixed_recipient: str | None = None
    ) -> ChannelConfig:
        """Register a channel (settings already validated: secrets only as env:VAR); a
        channel with one implicit recipient (a webhook) gets it as its subscriber."""
        self._forget_channels()
        with self.transaction() as con:
            if con.execute("SELECT 1 FROM channels WHERE name = ?", [name]).fetchone():
                raise AlreadyExists(f"a channel named {name!r} already exists")
            row = con.execute(
                "INSERT INTO channels (name, kind, settings) VALUES (?, ?, ?::JSON) RETURNING id",
                [name, kind, json.dumps(dict(settings), sort_keys=True)],
            ).fetchone()
            assert row is not None
            if fixed_recipient is not None:
                sub = con.execute(
                    "INSERT INTO subscribers (channel_id, recipient) VALUES (?, ?) RETURNING id",
                    [row[0], fixed_recipient],
                ).fetchone()
                assert sub is not None
                con.execute(
                    "INSERT INTO subscription_events (subscriber_id, channel_id, event, source)"
                    " VALUES (?, ?, 'subscribe', 'channel')",
                    [sub[0], row[0]],
                )
        return self.get_channel(name)

    _CHANNEL_SQL = """
        SELECT c.id, c.name, c.kind, c.settings, c.status, c.last_error, c.last_error_at, c.created_at,
               (SELECT count(*) FROM subscribers s WHERE s.channel_id = c.id AND s.status = 'active')
        FROM channels c
    """

    def _channel(self, r: Sequence[Any]) -> ChannelConfig:
        return ChannelConfig(
            id=r[0],
            name=r[1],
            kind=r[2],
            settings=json.loads(r[3]),
            status=r[4],
            last_error=r[5],
            last_error_at=_utc(r[6]),
            created_at=_utc(r[7]),
            subscribers=int(r[8]),
        )

    def get_channel(self, name: str) -> ChannelConfig:
        """A channel by name (inside :meth:`Store.session`, read once per session: an
        inbound event asks for its channel a dozen times)."""
        known: dict[str, ChannelConfig] | None = getattr(getattr(self, "_session", None), "channels", None)
        if known is not None and name in known:
            return known[name]
        with self.connect(read_only=True) as con:
            row = con.execute(self._CHANNEL_SQL + " WHERE c.name = ?", [name]).fetchone()
        if row is None:
            raise NotFound(f"no channel named {name!r} (see `feedcast channel list`)")
        config = self._channel(row)
        if known is not None:
            known[name] = config
        return config

    def _forget_channels(self) -> None:
        """A channel changed: the session's copies are stale."""
        known: dict[str, ChannelConfig] | None = getattr(getattr(self, "_session", None), "channels", None)
        if known is not None:
            known.clear()

    def list_channels(self) -> list[ChannelConfig]:
        with self.connect(read_only=True) as con:
            rows = con.execute(self._CHANNEL_SQL + " ORDER BY c.name").fetchall()
        return [self._channel(r) for r in rows]

    def remove_channel(self, name: str) -> int:
        """Delete a channel and its subscribers (campaigns and deliveries stay in the
        history); refused while an automation uses it. Returns the subscribers removed."""
        self._forget_channels()
        channel = self.get_channel(name)
        with self.transaction() as con:
            users = con.execute(
                "SELECT name FROM automations WHERE channel_id = ? ORDER BY name", [channel.id]
            ).fetchall()
            if users:
                raise InvalidValue(
                    f"channel {name!r} is used by automation {users[0][0]!r}: remove the automation first"
                )
            row = con.execute(
                "SELECT count(*) FROM subscribers WHERE channel_id = ?", [channel.id]
            ).fetchone()
            con.execute("DELETE FROM subscribers WHERE channel_id = ?", [channel.id])
            con.execute("DELETE FROM channels WHERE id = ?", [channel.id])
        self._forget_channels()
        return int(row[0]) if row else 0

    def update_channel(self, name: str, settings: Mapping[str, Any]) -> ChannelConfig:
        """Replace a channel's settings (already validated: secrets only as env:VAR)."""
        self._forget_channels()
        channel = self.get_channel(name)
        with self.transaction() as con:
            con.execute(
                "UPDATE channels SET settings = ?::JSON WHERE id = ?",
                [json.dumps(dict(settings), sort_keys=True), channel.id],
            )
        self._forget_channels()
        return self.get_channel(name)

    def set_channel_error(self, channel_id: int, error: str | None) -> None:
        self._forget_channels()
        with self.transaction() as con:
            con.execute(
                "UPDATE channels SET last_error = ?, last_error_at = CASE WHEN ? IS NULL THEN last_error_at"
                " ELSE now() END WHERE id = ?",
                [error, error, channel_id],
            )

    # ----------------------------------------------------------------- subscribers

    def add_subscribers(
        self, channel: str, subscribers: Sequence[NewSubscriber], *, source: str = "cli", update: bool = True
    ) -> dict[str, int]:
        """Add subscribers to a channel in one transaction. New recipients become active
        (a ``subscribe`` event from ``source``); known ones get the new tags merged in,
        a name and a later ``last_inbound_at``, but keep their status: an import never
        resubscribes someone who left. With ``update=False`` a known recipient is an
        error. Returns counts: added, updated, unchanged."""
        ch = self.get_channel(channel)
        recipients = [s.recipient for s in subscribers]
        if len(set(recipients)) != len(recipients):
            dup = next(r for r in recipients if recipients.count(r) > 1)
            raise InvalidValue(f"recipient {dup!r} is given twice")
        table = pa.table(
            {
                "recipient": pa.array(recipients, pa.string()),
                "name": pa.array([s.name for s in subscribers], pa.string()),
                "tags": pa.array([_tags(s.tags) for s in subscribers], pa.list_(pa.string())),
                "last_inbound_at": pa.array(
                    [s.last_inbound_at for s in subscribers], pa.timestamp("us", tz="UTC")
                ),
            }
        )
        with self.transaction() as con:
            con.register("new_subscribers", table)
            try:
                known = con.execute(
                    "SELECT n.recipient, s.tags, s.name, s.last_inbound_at,"
                    " list_sort(list_distinct(list_concat(s.tags, n.tags))) AS merged"
                    " FROM new_subscribers n JOIN subscribers s"
                    " ON s.channel_id = ? AND s.recipient = n.recipient",
                    [ch.id],
                ).fetchall()
                if known and not update:
                    raise AlreadyExists(
                        f"{known[0][0]!r} is already a subscriber of {channel!r}"
                        " (`feedcast subscriber list` shows its status)"
                    )
                changed = sum(
                    1
                    for r in known
                    if list(r[1] or []) != list(r[4] or [])
                    or any(s.recipient == r[0] and s.name and s.name != r[2] for s in subscribers)
                    or any(
                        s.recipient == r[0]
                        and s.last_inbound_at is not None
                        and (r[3] is None or s.last_inbound_at > r[3])
                        for s in subscribers
                    )
                )
                if known:
                    con.execute(
                        """
                        UPDATE subscribers SET
                            tags = list_sort(list_distinct(list_concat(subscribers.tags, n.tags))),
                            name = coalesce(n.name, subscribers.name),
                            last_inbound_at = CASE
                                WHEN subscribers.last_inbound_at IS NULL THEN n.last_inbound_at
                                WHEN n.last_inbound_at IS NULL THEN subscribers.last_inbound_at
                                ELSE greatest(subscribers.last_inbound_at, n.last_inbound_at) END,
                            updated_at = now()
                        FROM new_subscribers n
                        WHERE subscribers.channel_id = ? AND subscribers.recipient = n.recipient
                        """,
                        [ch.id],
                    )
                added = con.execute(
                    """
                    INSERT INTO subscribers (channel_id, recipient, name, tags, last_inbound_at)
                    SELECT ?, n.recipient, n.name, n.tags, n.last_inbound_at FROM new_subscribers n
                    WHERE NOT EXISTS (
                        SELECT 1 FROM subscribers s WHERE s.channel_id = ? AND s.recipient = n.recipient)
                    RETURNING id
                    """,
                    [ch.id, ch.id],
                ).fetchall()
                if added:
                    con.execute(
                        "INSERT INTO subscription_events (subscriber_id, channel_id, event, source)"
                        " SELECT unnest(?), ?, 'subscribe', ?",
                        [[r[0] for r in added], ch.id, source],
                    )
            finally:
                con.unregister("new_subscribers")
        return {"added": len(added), "updated": changed, "unchanged": len(known) - changed}

    _SUBSCRIBER_SQL = """
        SELECT s.id, c.name, s.recipient, s.status, s.tags, s.name, s.status_reason,
               s.last_inbound_at, s.created_at, s.updated_at
        FROM subscribers s JOIN channels c ON c.id = s.channel_id
    """

    @staticmethod
    def _subscriber(r: Sequence[Any]) -> Subscriber:
        return Subscriber(
            id=r[0],
            channel=r[1],
            recipient=r[2],
            status=r[3],
            tags=tuple(r[4] or ()),
            name=r[5],
            status_reason=r[6],
            last_inbound_at=_utc(r[7]),
            created_at=_utc(r[8]),
            updated_at=_utc(r[9]),
        )

    def list_subscribers(
        self,
        channel: str | None = None,
        *,
        status: str | None = None,
        tag: str | None = None,
        limit: int | None = None,
    ) -> list[Subscriber]:
        where, params = ["true"], []
        if channel is not None:
            self.get_channel(channel)
            where.append("c.name = ?")
            params.append(channel)
        if status is not None:
            where.append("s.status = ?")
            params.append(status)
        if tag is not None:
            where.append("list_contains(s.tags, ?)")
            params.append(tag)
        sql = self._SUBSCRIBER_SQL + f" WHERE {' AND '.join(where)} ORDER BY c.name, s.id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self.connect(read_only=True) as con:
            rows = con.execute(sql, params).fetchall()
        return [self._subscriber(r) for r in rows]

    def get_subscriber(self, channel: str, recipient: str) -> Subscriber:
        with self.connect(read_only=True) as con:
            row = con.execute(
                self._SUBSCRIBER_SQL + " WHERE c.name = ? AND s.recipient = ?", [channel, recipient]
            ).fetchone()
        if row is None:
            self.get_channel(channel)
            raise NotFound(f"{recipient!r} is not a subscriber of {channel!r}")
        return self._subscriber(row)

    def list_subscribers_by_id(self, ids: Sequence[int]) -> list[Subscriber]:
        with self.connect(read_only=True) as con:
            rows = con.execute(
                self._SUBSCRIBER_SQL + " WHERE s.id IN (SELECT unnest(?)) ORDER BY s.id", [list(ids)]
            ).fetchall()
        return [self._subscriber(r) for r in rows]

    def remove_subscriber(self, channel: str, recipient: str) -> None:
        sub = self.get_subscriber(channel, recipient)
        with self.transaction() as con:
            con.execute("DELETE FROM subscribers WHERE id = ?", [sub.id])

    def set_subscriber_status(
        self, channel: str, recipient: str, status: str, *, source: str = "cli", detail: str | None = None
    ) -> Subscriber:
        sub = self.get_subscriber(channel, recipient)
        with self.transaction() as con:
            self._set_status(con, [(sub.id, status, detail)], source)
        return self.get_subscriber(channel, recipient)

    @staticmethod
    def _set_status(con: Connection, changes: Sequence[tuple[int, str, str | None]], source: str) -> None:
        """Change subscribers' statuses and write their history (one event each)."""
        event_of = {
            "active": "subscribe",
            "unsubscribed": "unsubscribe",
            "unreachable": "unreachable",
            "bounced": "bounced",
        }
        for sid, status, detail in changes:
            if status not in event_of:
                raise InvalidValue(f"unknown subscriber status {status!r}")
            row = con.execute(
                "UPDATE subscribers SET status = ?, status_reason = ?, updated_at = now()"
                " WHERE id = ? AND status <> ? RETURNING channel_id",
                [status, detail, sid, status],
            ).fetchone()
            if row is not None:
                con.execute(
                    "INSERT INTO subscription_events (subscriber_id, channel_id, event, source, detail)"
                    " VALUES (?, ?, ?, ?, ?)",
                    [sid, row[0], event_of[status], source, detail],
                )

    # ----------------------------------------------------------------- automations

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
        return Automation(
            id=r[0],
            name=r[1],
            channel=r[2],
            layout=r[3],
            sources=tuple(r[4] or ()),
            audience=r[5],
            on_new=r[6],
            max_items=r[7],
            events=tuple(r[8]),
            backfill=r[9],
            message_tag=r[10],
            timezone=r[11],
            locale=r[12],
            status=r[13],
            since=_utc(r[14]),
            created_at=_utc(r[15]),
            last_campaign_at=_utc(r[16]),
            schedule=r[17],
            cron=r[18],
            every=timedelta(seconds=r[19]) if r[19] is not None else None,
            min_items=r[20],
            where=r[21],
            next_run_at=_utc(r[22]),
            last_run_at=_utc(r[23]),
            track_clicks=bool(r[24]),
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
        with self.transaction() as con:
            row = con.execute(
                "UPDATE automations SET lease_owner = ?, lease_until = now() + to_microseconds(?::BIGINT)"
                " WHERE id = ? AND (lease_until IS NULL OR lease_until < now() OR lease_owner IN (?, ?))"
                " RETURNING id",
                [owner, int(ttl * 1_000_000), automation_id, owner, steal_from or owner],
            ).fetchone()
            if row is not None:
                return None
            held = con.execute(
                "SELECT lease_owner, lease_until FROM automations WHERE id = ?", [automation_id]
            ).fetchone()
        return (str(held[0]), _utc(held[1]) or datetime.now(UTC)) if held else None

    def release_automation(self, automation_id: int, owner: str) -> None:
        with self.transaction() as con:
            con.execute(
                "UPDATE automations SET lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?",
                [automation_id, owner],
            )

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
            import duckdb

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

    # ----------------------------------------------------------------- campaigns

    def create_campaign(
        self,
        *,
        automation: Automation,
        channel: ChannelConfig,
        layout: str,
        fmt: str,
        items: Sequence[QueuedItem],
        calls: Sequence[tuple[int, ProviderCall]],
        messages: int,
        warnings: Sequence[str] = (),
        trigger: str = "manual",
        now: datetime | None = None,
    ) -> int | None:
        """Create a campaign, its items (the automation's cursor moves past them), its
        calls and one pending delivery per active subscriber of the audience, all in one
        transaction. None when the audience is empty (nothing is consumed). Raises
        InvalidValue when another run took one of the items meanwhile."""
        now = now or datetime.now(UTC)
        items_table = pa.table(
            {
                "item_id": pa.array([q.item_id for q in items], pa.int64()),
                "event": pa.array([q.event for q in items], pa.string()),
                "event_at": pa.array([q.event_at for q in items], pa.timestamp("us", tz="UTC")),
                "position": pa.array(list(range(len(items))), pa.int32()),
            }
        )
        calls_table = pa.table(
            {
                "position": pa.array(list(range(len(calls))), pa.int32()),
                "message": pa.array([m for m, _c in calls], pa.int32()),
                "method": pa.array([c.method for _m, c in calls], pa.string()),
                "body": pa.array([json.dumps(c.body, ensure_ascii=False) for _m, c in calls], pa.string()),
            }
        )
        with self.transaction() as con:
            con.register("campaign_items_new", items_table)
            con.register("campaign_calls_new", calls_table)
            try:
                taken = con.execute(
                    "SELECT count(*) FROM campaign_items_new n JOIN campaign_items c"
                    " ON c.automation_id = ? AND c.item_id = n.item_id AND c.event_at >= n.event_at",
                    [automation.id],
                ).fetchone()
                if taken and taken[0]:
                    raise InvalidValue(
                        f"automation {automation.name!r}: another run just sent some of these items; try again"
                    )
                audience = con.execute(
                    "SELECT count(*) FROM subscribers WHERE channel_id = ? AND status = 'active'"
                    " AND (? IS NULL OR list_contains(tags, ?))",
                    [channel.id, automation.audience, automation.audience],
                ).fetchone()
                recipients = int(audience[0]) if audience else 0
                if recipients == 0:
                    return None
                row = con.execute("SELECT nextval('campaigns_id_seq')").fetchone()
                assert row is not None
                campaign_id = int(row[0])
                con.execute(
                    "INSERT INTO campaigns (id, automation_id, automation_name, channel_id, channel_name,"
                    " channel_kind, layout, format, trigger, items, messages, calls, recipients, warnings,"
                    " created_at, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        campaign_id,
                        automation.id,
                        automation.name,
                        channel.id,
                        channel.name,
                        channel.kind,
                        layout,
                        fmt,
                        trigger,
                        len(items),
                        messages,
                        len(calls),
                        recipients,
                        list(warnings) or None,
                        now,
                        now,
                    ],
                )
                con.execute(
                    "INSERT INTO campaign_items SELECT ?, ?, item_id, event, event_at, position"
                    " FROM campaign_items_new",
                    [campaign_id, automation.id],
                )
                con.execute(
                    "INSERT INTO campaign_calls SELECT ?, position, message, method, body::JSON"
                    " FROM campaign_calls_new",
                    [campaign_id],
                )
                con.execute(
                    "INSERT INTO deliveries (campaign_id, subscriber_id, recipient, queued_at)"
                    " SELECT ?, id, recipient, ? FROM subscribers WHERE channel_id = ? AND status = 'active'"
                    " AND (? IS NULL OR list_contains(tags, ?)) ORDER BY id",
                    [campaign_id, now, channel.id, automation.audience, automation.audience],
                )
            finally:
                con.unregister("campaign_items_new")
                con.unregister("campaign_calls_new")
        return campaign_id

    def campaign_calls(self, campaign_id: int) -> list[tuple[int, ProviderCall]]:
        with self.connect(read_only=True) as con:
            rows = con.execute(
                "SELECT message, method, body FROM campaign_calls WHERE campaign_id = ? ORDER BY position",
                [campaign_id],
            ).fetchall()
        return [(int(r[0]), ProviderCall(method=r[1], body=json.loads(r[2]))) for r in rows]

    def campaign(self, campaign_id: int) -> CampaignInfo:
        with self.connect(read_only=True) as con:
            row = con.execute(
                """
                SELECT c.id, c.automation_name, c.channel_name, c.channel_kind, c.layout, c.format, c.status,
                       c.created_at, c.items, c.messages, c.calls, c.recipients,
                       count(*) FILTER (WHERE d.status = 'sent'),
                       count(*) FILTER (WHERE d.status = 'failed'),
                       count(*) FILTER (WHERE d.status = 'skipped'),
                       count(*) FILTER (WHERE d.status = 'pending'),
                       c.error, c.finished_at, c.trigger
                FROM campaigns c LEFT JOIN deliveries d ON d.campaign_id = c.id
                WHERE c.id = ?
                GROUP BY ALL
                """,
                [campaign_id],
            ).fetchone()
        if row is None:
            raise NotFound(f"no campaign {campaign_id}")
        return CampaignInfo(
            id=row[0],
            automation=row[1],
            channel=row[2],
            channel_kind=row[3],
            layout=row[4],
            format=row[5],
            status=row[6],
            created_at=_utc(row[7]) or datetime.now(UTC),
            items=row[8],
            messages=row[9],
            calls=row[10],
            recipients=row[11],
            sent=row[12],
            failed=row[13],
            skipped=row[14],
            pending=row[15],
            error=row[16],
            finished_at=_utc(row[17]),
            trigger=row[18],
        )

    def unfinished_campaigns(self, automation: str) -> list[int]:
        """Campaigns of ``automation`` with deliveries still pending (a crash, a stop)."""
        with self.connect(read_only=True) as con:
            rows = con.execute(
                "SELECT c.id FROM campaigns c WHERE c.automation_name = ? AND EXISTS ("
                " SELECT 1 FROM deliveries d WHERE d.campaign_id = c.id AND d.status = 'pending')"
                " ORDER BY c.id",
                [automation],
            ).fetchall()
        return [int(r[0]) for r in rows]

    def pending_deliveries(
        self, campaign_id: int, *, after_id: int = 0, limit: int = 1000
    ) -> list[PendingDelivery]:
        """Pending deliveries of a campaign in id order, with each subscriber as it is now."""
        with self.connect(read_only=True) as con:
            rows = con.execute(
                "SELECT d.id, d.subscriber_id, coalesce(s.recipient, d.recipient), coalesce(s.status, 'removed'),"
                " s.name, s.last_inbound_at, d.attempts"
                " FROM deliveries d LEFT JOIN subscribers s ON s.id = d.subscriber_id"
                " WHERE d.campaign_id = ? AND d.status = 'pending' AND d.id > ? ORDER BY d.id LIMIT ?",
                [campaign_id, after_id, limit],
            ).fetchall()
        return [
            PendingDelivery(
                id=r[0],
                subscriber_id=r[1],
                recipient=r[2],
                subscriber_status=r[3],
                name=r[4],
                last_inbound_at=_utc(r[5]),
                attempts=r[6],
            )
            for r in rows
        ]

    def iter_pending(self, campaign_id: int, chunk: int = 2000) -> Iterator[list[PendingDelivery]]:
        after = 0
        while True:
            rows = self.pending_deliveries(campaign_id, after_id=after, limit=chunk)
            if not rows:
                return
            yield rows
            after = rows[-1].id

    def start_deliveries(self, ids: Sequence[int], *, now: datetime | None = None) -> None:
        """Mark pending deliveries as being sent, in one short transaction, before any of
        their provider calls goes out: ``started_at`` is set and the try counts in
        ``attempts`` at once. A delivery still marked from an earlier run (started, no
        outcome recorded: that process died) has its lost try counted in
        ``lost_attempts``; its recipient may already have the message."""
        if not ids:
            return
        now = now or datetime.now(UTC)
        with self.transaction() as con:
            con.execute(
                "UPDATE deliveries SET"
                " lost_attempts = coalesce(lost_attempts, 0) + CASE WHEN started_at IS NULL THEN 0 ELSE 1 END,"
                " attempts = attempts + 1, started_at = ?"
                " WHERE id IN (SELECT unnest(?::BIGINT[])) AND status = 'pending'",
                [now, list(ids)],
            )

    def unstart_deliveries(self, ids: Sequence[int]) -> None:
        """Undo :meth:`start_deliveries` for deliveries that stopped before any call went
        out (a deadline, a stop): nothing can have reached their recipients."""
        if not ids:
            return
        with self.transaction() as con:
            con.execute(
                "UPDATE deliveries SET attempts = greatest(attempts - 1, 0), started_at = NULL"
                " WHERE id IN (SELECT unnest(?::BIGINT[])) AND status = 'pending' AND started_at IS NOT NULL",
                [list(ids)],
            )

    def record_deliveries(self, updates: Sequence[DeliveryUpdate], *, now: datetime | None = None) -> None:
        """Record delivery outcomes in one transaction (bulk, through Arrow), with what
        they mean for subscribers: a new status (history written) or a new recipient
        id (a migrated Telegram group)."""
        if not updates:
            return
        now = now or datetime.now(UTC)
        table = pa.table(
            {
                "id": pa.array([u.id for u in updates], pa.int64()),
                "status": pa.array([u.status for u in updates], pa.string()),
                "attempts": pa.array([u.attempts for u in updates], pa.int32()),
                "calls_sent": pa.array([u.calls_sent for u in updates], pa.int32()),
                "error": pa.array([u.error for u in updates], pa.string()),
                "error_code": pa.array([u.error_code for u in updates], pa.string()),
                "provider_message_id": pa.array([u.provider_message_id for u in updates], pa.string()),
                "sent_at": pa.array([u.sent_at for u in updates], pa.timestamp("us", tz="UTC")),
            }
        )
        with self.transaction() as con:
            con.register("delivery_updates", table)
            try:
                con.execute(
                    """
                    UPDATE deliveries SET status = u.status, attempts = u.attempts, calls_sent = u.calls_sent,
                        error = u.error, error_code = u.error_code,
                        provider_message_id = coalesce(u.provider_message_id, deliveries.provider_message_id),
                        sent_at = coalesce(u.sent_at, deliveries.sent_at), updated_at = ?
                    FROM delivery_updates u WHERE deliveries.id = u.id
                    """,
                    [now],
                )
            finally:
                con.unregister("delivery_updates")
            changes = [
                (u.subscriber_id, u.subscriber_status, u.error)
                for u in updates
                if u.subscriber_id is not None and u.subscriber_status
            ]
            if changes:
                self._set_status(con, changes, "provider")
            for u in updates:
                if u.subscriber_id is not None and u.new_recipient:
                    self._migrate_recipient(con, u.subscriber_id, u.new_recipient)

    def migrate_recipient(self, subscriber_id: int, new_recipient: str) -> None:
        with self.transaction() as con:
            self._migrate_recipient(con, subscriber_id, new_recipient)

    @staticmethod
    def _migrate_recipient(con: Connection, subscriber_id: int, new_recipient: str) -> None:
        row = con.execute(
            "SELECT channel_id, recipient FROM subscribers WHERE id = ?", [subscriber_id]
        ).fetchone()
        if row is None or row[1] == new_recipient:
            return
        clash = con.execute(
            "SELECT id FROM subscribers WHERE channel_id = ? AND recipient = ?", [row[0], new_recipient]
        ).fetchone()
        if clash is not None:  # the new chat is already a subscriber: retire the old id
            DeliveryStore._set_status(
                con, [(subscriber_id, "unreachable", f"migrated to {new_recipient}")], "provider"
            )
            return
        # recipient is part of a UNIQUE key: DuckDB updates it as delete + insert, fine here
        con.execute(
            "UPDATE subscribers SET recipient = ?, updated_at = now() WHERE id = ?",
            [new_recipient, subscriber_id],
        )
        con.execute(
            "INSERT INTO subscription_events (subscriber_id, channel_id, event, source, detail)"
            " VALUES (?, ?, 'migrated', 'provider', ?)",
            [subscriber_id, row[0], f"{row[1]} -> {new_recipient}"],
        )

    def finish_campaign(self, campaign_id: int, status: str, error: str | None = None) -> None:
        with self.transaction() as con:
            con.execute(
                "UPDATE campaigns SET status = ?, error = ?,"
                " finished_at = CASE WHEN ? = 'sending' THEN NULL ELSE now() END WHERE id = ?",
                [status, error, status, campaign_id],
            )
