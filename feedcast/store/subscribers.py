"""Subscribers: imported or added by hand, subscribing and leaving by themselves (a
bot command, a link, a confirmed email form), the audiences (tags) open to
self-subscription, and the history of every status change (a repository of
:class:`feedcast.store.Store`). :func:`set_statuses` and :func:`move_recipient` are the
steps other repositories take inside their own transactions (a delivery's outcome)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa

from feedcast.kernel.errors import AlreadyExists, InvalidValue, NotFound
from feedcast.kernel.models import NewSubscriber, Subscriber
from feedcast.store._rows import _tuple, _utc, model_from_row
from feedcast.store.channels import ChannelRepository
from feedcast.store.database import Connection, staged

__all__ = ["AUDIENCE_TAG", "SubscriberRepository", "move_recipient", "set_statuses"]

AUDIENCE_TAG = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.:-]{0,63}")  # what a tag may look like

# the fields of Subscriber, in order (model_from_row)
_SUBSCRIBER_SQL = """
    SELECT s.id, c.name, s.recipient, s.status, s.tags, s.name, s.status_reason,
           s.last_inbound_at, s.created_at, s.updated_at, s.locale
    FROM subscribers s JOIN channels c ON c.id = s.channel_id
"""


def _subscriber(r: Sequence[Any]) -> Subscriber:
    return model_from_row(Subscriber, r, utc=("last_inbound_at", "created_at", "updated_at"), tags=_tuple)


def set_statuses(con: Connection, changes: Sequence[tuple[int, str, str | None]], source: str) -> None:
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


def move_recipient(con: Connection, subscriber_id: int, new_recipient: str) -> None:
    row = con.execute(
        "SELECT channel_id, recipient FROM subscribers WHERE id = ?", [subscriber_id]
    ).fetchone()
    if row is None or row[1] == new_recipient:
        return
    clash = con.execute(
        "SELECT id FROM subscribers WHERE channel_id = ? AND recipient = ?", [row[0], new_recipient]
    ).fetchone()
    if clash is not None:  # the new chat is already a subscriber: retire the old id
        set_statuses(con, [(subscriber_id, "unreachable", f"migrated to {new_recipient}")], "provider")
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


# known recipients among new_subscribers: recipient, tags, name, last_inbound_at, merged tags, locale
_KNOWN = (
    "SELECT n.recipient, s.tags, s.name, s.last_inbound_at,"
    " list_sort(list_distinct(list_concat(s.tags, n.tags))) AS merged, s.locale"
    " FROM new_subscribers n JOIN subscribers s"
    " ON s.channel_id = ? AND s.recipient = n.recipient"
)

# known recipients get the new tags merged in, a name and a later last_inbound_at
_MERGE_KNOWN = """
    UPDATE subscribers SET
        tags = list_sort(list_distinct(list_concat(subscribers.tags, n.tags))),
        name = coalesce(n.name, subscribers.name),
        locale = coalesce(n.locale, subscribers.locale),
        last_inbound_at = CASE
            WHEN subscribers.last_inbound_at IS NULL THEN n.last_inbound_at
            WHEN n.last_inbound_at IS NULL THEN subscribers.last_inbound_at
            ELSE greatest(subscribers.last_inbound_at, n.last_inbound_at) END,
        updated_at = now()
    FROM new_subscribers n
    WHERE subscribers.channel_id = ? AND subscribers.recipient = n.recipient
"""

_INSERT_NEW = """
    INSERT INTO subscribers (channel_id, recipient, name, tags, last_inbound_at, locale)
    SELECT ?, n.recipient, n.name, n.tags, n.last_inbound_at, n.locale FROM new_subscribers n
    WHERE NOT EXISTS (
        SELECT 1 FROM subscribers s WHERE s.channel_id = ? AND s.recipient = n.recipient)
    RETURNING id
"""


def _tags(values: Sequence[str]) -> list[str]:
    return sorted({t.strip() for t in values if t and t.strip()})


def _new_subscribers(subscribers: Sequence[NewSubscriber]) -> pa.Table:
    """The rows of new_subscribers; InvalidValue for a recipient given twice."""
    recipients = [s.recipient for s in subscribers]
    if len(set(recipients)) != len(recipients):
        dup = next(r for r in recipients if recipients.count(r) > 1)
        raise InvalidValue(f"recipient {dup!r} is given twice")
    return pa.table(
        {
            "recipient": pa.array(recipients, pa.string()),
            "name": pa.array([s.name for s in subscribers], pa.string()),
            "tags": pa.array([_tags(s.tags) for s in subscribers], pa.list_(pa.string())),
            "last_inbound_at": pa.array(
                [s.last_inbound_at for s in subscribers], pa.timestamp("us", tz="UTC")
            ),
            "locale": pa.array([s.locale for s in subscribers], pa.string()),
        }
    )


def _changed(known: Sequence[Sequence[Any]], subscribers: Sequence[NewSubscriber]) -> int:
    """How many known recipients (rows of :data:`_KNOWN`) the import changes: new tags,
    another name or a later ``last_inbound_at``."""
    return sum(
        1
        for r in known
        if list(r[1] or []) != list(r[4] or [])
        or any(s.recipient == r[0] and s.name and s.name != r[2] for s in subscribers)
        or any(s.recipient == r[0] and s.locale and s.locale != r[5] for s in subscribers)
        or any(
            s.recipient == r[0]
            and s.last_inbound_at is not None
            and (r[3] is None or s.last_inbound_at > r[3])
            for s in subscribers
        )
    )


def _find(con: Connection, channel_id: int, recipient: str) -> tuple[int, str] | None:
    """A channel's subscriber by recipient: its id and status."""
    row = con.execute(
        "SELECT id, status FROM subscribers WHERE channel_id = ? AND recipient = ?", [channel_id, recipient]
    ).fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


class SubscriberRepository(ChannelRepository):
    """The subscribers of the channels, and how each came and went."""

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
        table = _new_subscribers(subscribers)
        with self.transaction() as con, staged(con, new_subscribers=table):
            known = con.execute(_KNOWN, [ch.id]).fetchall()
            if known and not update:
                raise AlreadyExists(
                    f"{known[0][0]!r} is already a subscriber of {channel!r}"
                    " (`feedcast subscriber list` shows its status)"
                )
            changed = _changed(known, subscribers)
            if known:
                con.execute(_MERGE_KNOWN, [ch.id])
            added = con.execute(_INSERT_NEW, [ch.id, ch.id]).fetchall()
            if added:
                con.execute(
                    "INSERT INTO subscription_events (subscriber_id, channel_id, event, source)"
                    " SELECT unnest(?), ?, 'subscribe', ?",
                    [[r[0] for r in added], ch.id, source],
                )
        return {"added": len(added), "updated": changed, "unchanged": len(known) - changed}

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
        sql = _SUBSCRIBER_SQL + f" WHERE {' AND '.join(where)} ORDER BY c.name, s.id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self.connect(read_only=True) as con:
            rows = con.execute(sql, params).fetchall()
        return [_subscriber(r) for r in rows]

    def get_subscriber(self, channel: str, recipient: str) -> Subscriber:
        with self.connect(read_only=True) as con:
            row = con.execute(
                _SUBSCRIBER_SQL + " WHERE c.name = ? AND s.recipient = ?", [channel, recipient]
            ).fetchone()
        if row is None:
            self.get_channel(channel)
            raise NotFound(f"{recipient!r} is not a subscriber of {channel!r}")
        return _subscriber(row)

    def list_subscribers_by_id(self, ids: Sequence[int]) -> list[Subscriber]:
        with self.connect(read_only=True) as con:
            rows = con.execute(
                _SUBSCRIBER_SQL + " WHERE s.id IN (SELECT unnest(?)) ORDER BY s.id", [list(ids)]
            ).fetchall()
        return [_subscriber(r) for r in rows]

    def inactive_subscribers(self) -> list[dict[str, Any]]:
        """The subscribers no longer active, by channel and recipient: ``channel``,
        ``recipient``, ``status``."""
        return self.query(
            "SELECT c.name AS channel, s.recipient, s.status FROM subscribers s JOIN channels c ON c.id = s.channel_id"
            " WHERE s.status <> 'active' ORDER BY 1, 2"
        )[1]

    def remove_subscriber(self, channel: str, recipient: str) -> None:
        sub = self.get_subscriber(channel, recipient)
        with self.transaction() as con:
            con.execute("DELETE FROM subscribers WHERE id = ?", [sub.id])

    def set_subscriber_status(
        self, channel: str, recipient: str, status: str, *, source: str = "cli", detail: str | None = None
    ) -> Subscriber:
        sub = self.get_subscriber(channel, recipient)
        with self.transaction() as con:
            set_statuses(con, [(sub.id, status, detail)], source)
        return self.get_subscriber(channel, recipient)

    def migrate_recipient(self, subscriber_id: int, new_recipient: str) -> None:
        with self.transaction() as con:
            move_recipient(con, subscriber_id, new_recipient)

    # ----------------------------------------------------------------- subscriptions

    def subscribe(
        self,
        channel: str,
        recipient: str,
        *,
        tags: Sequence[str] = (),
        name: str | None = None,
        source: str = "bot",
        detail: str | None = None,
        last_inbound_at: datetime | None = None,
        locale: str | None = None,
    ) -> tuple[Subscriber, str]:
        """A person subscribes themselves (a bot command, a link, a confirmed form):
        creates the subscriber or makes it active again, and merges ``tags``. Returns
        the subscriber and what happened: ``subscribed``, ``resubscribed`` or ``already``."""
        ch = self.get_channel(channel)
        clean = _tags(tags)
        with self.transaction() as con:
            found = _find(con, ch.id, recipient)
            if found is None:
                created = con.execute(
                    "INSERT INTO subscribers (channel_id, recipient, name, tags, last_inbound_at, locale)"
                    " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                    [ch.id, recipient, name, clean, last_inbound_at, locale],
                ).fetchone()
                assert created is not None
                sid, outcome = int(created[0]), "subscribed"
                con.execute(
                    "INSERT INTO subscription_events (subscriber_id, channel_id, event, source, detail)"
                    " VALUES (?, ?, 'subscribe', ?, ?)",
                    [sid, ch.id, source, detail],
                )
            else:
                sid, status = found
                outcome = "already" if status == "active" else "resubscribed"
                con.execute(
                    "UPDATE subscribers SET tags = list_sort(list_distinct(list_concat(tags, ?))),"
                    " name = coalesce(?, name), last_inbound_at = coalesce(?, last_inbound_at),"
                    " locale = coalesce(?, locale), updated_at = now() WHERE id = ?",
                    [clean, name, last_inbound_at, locale, sid],
                )
                if outcome == "resubscribed":
                    set_statuses(con, [(sid, "active", detail)], source)
        return self.list_subscribers_by_id([sid])[0], outcome

    def unsubscribe(
        self, channel: str, recipient: str, *, source: str = "bot", detail: str | None = None
    ) -> bool:
        """A person leaves (``/stop``, the one-click link, a kicked bot); False when they
        were not an active subscriber."""
        ch = self.get_channel(channel)
        with self.transaction() as con:
            found = _find(con, ch.id, recipient)
            if found is None or found[1] != "active":
                return False
            set_statuses(con, [(found[0], "unsubscribed", detail)], source)
        return True

    def unsubscribe_by_id(
        self, subscriber_id: int, *, source: str = "link", detail: str | None = None
    ) -> Subscriber:
        """The one-click unsubscribe: by the id inside a signed token."""
        with self.transaction() as con:
            row = con.execute("SELECT status FROM subscribers WHERE id = ?", [subscriber_id]).fetchone()
            if row is None:
                raise NotFound("this subscription no longer exists")
            if row[0] == "active":
                set_statuses(con, [(subscriber_id, "unsubscribed", detail)], source)
        return self.list_subscribers_by_id([subscriber_id])[0]

    # ----------------------------------------------------------------- public audiences

    def set_audiences_public(self, tags: Sequence[str], public: bool = True) -> list[str]:
        """Declare audiences (tags) open to self-subscription, or not (``public=False``);
        the tags whose state changed. InvalidValue for a tag that cannot be one."""
        clean = list(dict.fromkeys(t.strip() for t in tags))
        for tag in clean:
            if not AUDIENCE_TAG.fullmatch(tag):
                raise InvalidValue(
                    f"{tag!r} is not an audience tag (letters, digits, _ - . : and up to 64 characters)"
                )
        changed: list[str] = []
        with self.transaction() as con:
            for tag in clean:
                row = con.execute("SELECT public FROM audiences WHERE tag = ?", [tag]).fetchone()
                if row is not None and bool(row[0]) == public:
                    continue
                if row is None and not public:
                    continue
                con.execute(
                    "INSERT INTO audiences (tag, public, updated_at) VALUES (?, ?, now())"
                    " ON CONFLICT (tag) DO UPDATE SET public = excluded.public, updated_at = now()",
                    [tag, public],
                )
                changed.append(tag)
        return changed

    def public_audiences(self) -> list[str]:
        """The tags declared public, sorted."""
        with self.connect(read_only=True) as con:
            rows = con.execute("SELECT tag FROM audiences WHERE public ORDER BY tag").fetchall()
        return [str(r[0]) for r in rows]

    def is_public_audience(self, tag: str) -> bool:
        """Whether people may subscribe themselves to ``tag`` (a page, a deep link)."""
        with self.connect(read_only=True) as con:
            row = con.execute("SELECT public FROM audiences WHERE tag = ?", [tag]).fetchone()
        return bool(row and row[0])

    def audiences(self) -> list[dict[str, Any]]:
        """Every tag in use or declared: ``tag``, ``public``, ``subscribers`` (active)."""
        with self.connect(read_only=True) as con:
            rows = con.execute("""
                WITH used AS (
                    SELECT tag, count(*) FILTER (WHERE status = 'active') AS n
                    FROM (SELECT unnest(tags) AS tag, status FROM subscribers) GROUP BY tag
                )
                SELECT coalesce(a.tag, u.tag), coalesce(a.public, false), coalesce(u.n, 0)
                FROM audiences a FULL JOIN used u ON u.tag = a.tag ORDER BY 1
            """).fetchall()
        return [{"tag": r[0], "public": bool(r[1]), "subscribers": int(r[2])} for r in rows]

    # ----------------------------------------------------------------- double opt-in

    def add_optin(self, token: str, channel: str, recipient: str, tags: Sequence[str] = ()) -> None:
        ch = self.get_channel(channel)
        with self.transaction() as con:
            con.execute(
                "INSERT INTO optins (token, channel_id, recipient, tags) VALUES (?, ?, ?, ?)",
                [token, ch.id, recipient, sorted(set(tags))],
            )

    def confirm_optin(self, token: str) -> tuple[Subscriber, str]:
        """Confirm an email subscription (the link in the confirmation email); a link
        older than 7 days has expired."""
        with self.transaction() as con:
            row = con.execute(
                "SELECT o.recipient, o.tags, c.name, o.confirmed_at, o.created_at < now() - INTERVAL 7 DAY"
                " FROM optins o JOIN channels c ON c.id = o.channel_id WHERE o.token = ?",
                [token],
            ).fetchone()
            if row is None:
                raise NotFound("this confirmation link is not valid")
            if row[4] and row[3] is None:
                raise NotFound("this confirmation link has expired (after 7 days): please subscribe again")
            con.execute(
                "UPDATE optins SET confirmed_at = coalesce(confirmed_at, now()) WHERE token = ?", [token]
            )
        return self.subscribe(row[2], row[0], tags=row[1] or (), source="link", detail="confirmed by email")

    def optin_confirmed_at(self, token: str) -> datetime | None:
        with self.connect(read_only=True) as con:
            row = con.execute("SELECT confirmed_at FROM optins WHERE token = ?", [token]).fetchone()
        return _utc(row[0]) if row else None
