"""The audience side of the store: inbound messages, subscriptions by the people
themselves, bot replies, channel state (Telegram's update offset), tracked links and
clicks, email double opt-in. A mixin of :class:`feedcast.store.Store`."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from feedcast.kernel.errors import InvalidValue, NotFound
from feedcast.kernel.models import InboundEvent, NewInbound, Subscriber
from feedcast.store._rows import _utc

if TYPE_CHECKING:
    import duckdb

    from feedcast.kernel.models import ChannelConfig

    Connection = duckdb.DuckDBPyConnection

__all__ = ["AUDIENCE_TAG", "PENDING", "REPLY_KINDS", "AudienceStore", "m003", "m006"]

REPLY_KINDS = ("presentation", "welcome", "goodbye", "default")
PENDING = "pending"  # inbound.action of an event recorded and not processed yet
AUDIENCE_TAG = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.:-]{0,63}")  # what a tag may look like


def m003(con: Connection) -> None:
    """inbound, bot_replies, channel_state, campaign_links, clicks, optins; click tracking."""
    con.execute("""
        CREATE SEQUENCE inbound_id_seq START 1;
        CREATE SEQUENCE clicks_id_seq START 1;
        CREATE TABLE inbound (
            id            BIGINT PRIMARY KEY DEFAULT nextval('inbound_id_seq'),
            channel_id    BIGINT NOT NULL,
            subscriber_id BIGINT,
            sender        VARCHAR NOT NULL,
            kind          VARCHAR NOT NULL,
            text          VARCHAR,
            payload       JSON,
            provider_id   VARCHAR,
            received_at   TIMESTAMPTZ NOT NULL,
            action        VARCHAR,
            UNIQUE (channel_id, provider_id)
        );
        CREATE TABLE bot_replies (
            channel_id BIGINT NOT NULL,
            kind       VARCHAR NOT NULL,
            template   VARCHAR,
            enabled    BOOLEAN NOT NULL DEFAULT true,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (channel_id, kind)
        );
        CREATE TABLE channel_state (
            channel_id BIGINT NOT NULL,
            key        VARCHAR NOT NULL,
            value      VARCHAR,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (channel_id, key)
        );
        CREATE TABLE campaign_links (
            campaign_id BIGINT NOT NULL,
            link        INTEGER NOT NULL,
            url         VARCHAR NOT NULL,
            PRIMARY KEY (campaign_id, link)
        );
        CREATE TABLE clicks (
            id            BIGINT PRIMARY KEY DEFAULT nextval('clicks_id_seq'),
            campaign_id   BIGINT NOT NULL,
            subscriber_id BIGINT NOT NULL,
            delivery_id   BIGINT,
            link          INTEGER NOT NULL,
            url           VARCHAR NOT NULL,
            clicked_at    TIMESTAMPTZ NOT NULL,
            user_agent    VARCHAR
        );
        CREATE TABLE optins (
            token        VARCHAR PRIMARY KEY,
            channel_id   BIGINT NOT NULL,
            recipient    VARCHAR NOT NULL,
            tags         VARCHAR[] NOT NULL DEFAULT [],
            created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
            confirmed_at TIMESTAMPTZ
        );
        ALTER TABLE automations ADD COLUMN track_clicks BOOLEAN DEFAULT false;
        CREATE INDEX clicks_campaign ON clicks (campaign_id);
    """)


def _mapping(value: Any) -> Mapping[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, Mapping) else {}


def m006(con: Connection) -> None:
    """audiences: the tags open to self-subscription (subscribe pages, bot deep links)."""
    con.execute("""
        CREATE TABLE audiences (
            tag        VARCHAR PRIMARY KEY,
            public     BOOLEAN NOT NULL DEFAULT false,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
        );
    """)


class AudienceStore:
    """Inbound, subscriptions by the people themselves, bot replies, links and clicks."""

    if TYPE_CHECKING:

        def connect(self, *, read_only: bool = False) -> AbstractContextManager[Connection]: ...
        def transaction(self) -> AbstractContextManager[Connection]: ...
        def atomic(self) -> AbstractContextManager[Connection]: ...
        def get_channel(self, name: str) -> ChannelConfig: ...
        def get_subscriber(self, channel: str, recipient: str) -> Subscriber: ...
        def list_subscribers_by_id(self, ids: Sequence[int]) -> list[Subscriber]: ...
        @staticmethod
        def _set_status(
            con: Connection, changes: Sequence[tuple[int, str, str | None]], source: str
        ) -> None: ...

    # ----------------------------------------------------------------- inbound

    def record_inbound(
        self,
        channel: str,
        *,
        sender: str,
        kind: str,
        text: str | None = None,
        payload: Mapping[str, Any] | None = None,
        provider_id: str | None = None,
        received_at: datetime | None = None,
        action: str | None = None,
    ) -> int | None:
        """Record one inbound event (a message, a command, a postback, a membership
        change); refresh the sender's ``last_inbound_at`` (Messenger's 24-hour window)
        for a person's own actions. None when ``provider_id`` (a Telegram update id, a
        Messenger mid) was seen before: each event is processed once."""
        self.get_channel(channel)  # NotFound for a channel that does not exist
        event = NewInbound(channel, sender, kind, provider_id, payload, text, received_at)
        return self.record_inbound_many([event], action=action)[0]

    def record_inbound_many(
        self, events: Sequence[NewInbound], *, action: str | None = None
    ) -> list[int | None]:
        """Record inbound events in one transaction (see :meth:`record_inbound`), with
        ``action`` as their action (:data:`PENDING`: to be processed, see
        :meth:`pending_inbound`). The new rows' ids, None for an event seen before (or
        given twice) and for one of a channel that no longer exists."""
        ids: list[int | None] = []
        with self.atomic() as con:
            channels: dict[str, int | None] = {}
            for event in events:
                if event.channel not in channels:
                    try:
                        channels[event.channel] = self.get_channel(event.channel).id
                    except NotFound:
                        channels[event.channel] = None
                channel_id = channels[event.channel]
                if channel_id is None:
                    ids.append(None)
                    continue
                ids.append(self._insert_inbound(con, channel_id, event, action))
        return ids

    @staticmethod
    def _insert_inbound(
        con: Connection, channel_id: int, event: NewInbound, action: str | None
    ) -> int | None:
        if (
            event.provider_id is not None
            and con.execute(
                "SELECT 1 FROM inbound WHERE channel_id = ? AND provider_id = ?",
                [channel_id, event.provider_id],
            ).fetchone()
        ):
            return None
        when = event.received_at or datetime.now(UTC)
        sub = con.execute(
            "SELECT id FROM subscribers WHERE channel_id = ? AND recipient = ?", [channel_id, event.sender]
        ).fetchone()
        row = con.execute(
            "INSERT INTO inbound (channel_id, subscriber_id, sender, kind, text, payload, provider_id,"
            " received_at, action) VALUES (?, ?, ?, ?, ?, ?::JSON, ?, ?, ?) RETURNING id",
            [
                channel_id,
                sub[0] if sub else None,
                event.sender,
                event.kind,
                event.text,
                json.dumps(dict(event.payload), default=str) if event.payload is not None else None,
                event.provider_id,
                when,
                action,
            ],
        ).fetchone()
        if sub is not None and event.kind not in ("member", "read", "delivery", "echo"):
            con.execute(
                "UPDATE subscribers SET last_inbound_at = greatest(coalesce(last_inbound_at, ?), ?) WHERE id = ?",
                [when, when, sub[0]],
            )
        assert row is not None
        return int(row[0])

    def pending_inbound(self, limit: int = 500) -> list[InboundEvent]:
        """Recorded events not processed yet (action :data:`PENDING`), oldest first."""
        with self.connect(read_only=True) as con:
            rows = con.execute(
                "SELECT i.id, c.name, c.kind, i.sender, i.kind, i.provider_id, i.payload, i.received_at, i.action"
                " FROM inbound i JOIN channels c ON c.id = i.channel_id WHERE i.action = ? ORDER BY i.id LIMIT ?",
                [PENDING, limit],
            ).fetchall()
        return [
            InboundEvent(
                id=int(r[0]),
                channel=r[1],
                channel_kind=r[2],
                sender=r[3],
                kind=r[4],
                provider_id=r[5],
                payload=_mapping(r[6]),
                received_at=_utc(r[7]) or datetime.now(UTC),
                action=r[8],
            )
            for r in rows
        ]

    def inbound_action(self, inbound_id: int) -> str | None:
        """The action of one recorded event (NotFound for an unknown id)."""
        with self.connect(read_only=True) as con:
            row = con.execute("SELECT action FROM inbound WHERE id = ?", [inbound_id]).fetchone()
        if row is None:
            raise NotFound(f"no inbound event {inbound_id}")
        return None if row[0] is None else str(row[0])

    def set_inbound_action(self, inbound_id: int, action: str) -> None:
        with self.transaction() as con:
            con.execute("UPDATE inbound SET action = ? WHERE id = ?", [action, inbound_id])

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
    ) -> tuple[Subscriber, str]:
        """A person subscribes themselves (a bot command, a link, a confirmed form):
        creates the subscriber or makes it active again, and merges ``tags``. Returns
        the subscriber and what happened: ``subscribed``, ``resubscribed`` or ``already``."""
        ch = self.get_channel(channel)
        clean = sorted({t.strip() for t in tags if t and t.strip()})
        with self.transaction() as con:
            row = con.execute(
                "SELECT id, status FROM subscribers WHERE channel_id = ? AND recipient = ?",
                [ch.id, recipient],
            ).fetchone()
            if row is None:
                created = con.execute(
                    "INSERT INTO subscribers (channel_id, recipient, name, tags, last_inbound_at)"
                    " VALUES (?, ?, ?, ?, ?) RETURNING id",
                    [ch.id, recipient, name, clean, last_inbound_at],
                ).fetchone()
                assert created is not None
                sid, outcome = int(created[0]), "subscribed"
                con.execute(
                    "INSERT INTO subscription_events (subscriber_id, channel_id, event, source, detail)"
                    " VALUES (?, ?, 'subscribe', ?, ?)",
                    [sid, ch.id, source, detail],
                )
            else:
                sid = int(row[0])
                outcome = "already" if row[1] == "active" else "resubscribed"
                con.execute(
                    "UPDATE subscribers SET tags = list_sort(list_distinct(list_concat(tags, ?))),"
                    " name = coalesce(?, name), last_inbound_at = coalesce(?, last_inbound_at), updated_at = now()"
                    " WHERE id = ?",
                    [clean, name, last_inbound_at, sid],
                )
                if outcome == "resubscribed":
                    self._set_status(con, [(sid, "active", detail)], source)
        return self.list_subscribers_by_id([sid])[0], outcome

    def unsubscribe(
        self, channel: str, recipient: str, *, source: str = "bot", detail: str | None = None
    ) -> bool:
        """A person leaves (``/stop``, the one-click link, a kicked bot); False when they
        were not an active subscriber."""
        ch = self.get_channel(channel)
        with self.transaction() as con:
            row = con.execute(
                "SELECT id, status FROM subscribers WHERE channel_id = ? AND recipient = ?",
                [ch.id, recipient],
            ).fetchone()
            if row is None or row[1] != "active":
                return False
            self._set_status(con, [(int(row[0]), "unsubscribed", detail)], source)
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
                self._set_status(con, [(subscriber_id, "unsubscribed", detail)], source)
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

    # ----------------------------------------------------------------- channel state

    def channel_state(self, channel: str, key: str) -> str | None:
        ch = self.get_channel(channel)
        with self.connect(read_only=True) as con:
            row = con.execute(
                "SELECT value FROM channel_state WHERE channel_id = ? AND key = ?", [ch.id, key]
            ).fetchone()
        return None if row is None else row[0]

    def set_channel_state(self, channel: str, key: str, value: str | None) -> None:
        ch = self.get_channel(channel)
        with self.transaction() as con:
            con.execute(
                "INSERT INTO channel_state (channel_id, key, value, updated_at) VALUES (?, ?, ?, now())"
                " ON CONFLICT (channel_id, key) DO UPDATE SET value = excluded.value, updated_at = now()",
                [ch.id, key, value],
            )

    # ----------------------------------------------------------------- bot replies

    def bot_replies(self, channel: str) -> dict[str, tuple[str | None, bool]]:
        """kind -> (template or None for the built-in text, enabled)."""
        ch = self.get_channel(channel)
        with self.connect(read_only=True) as con:
            rows = con.execute(
                "SELECT kind, template, enabled FROM bot_replies WHERE channel_id = ?", [ch.id]
            ).fetchall()
        configured = {r[0]: (r[1], bool(r[2])) for r in rows}
        return {kind: configured.get(kind, (None, True)) for kind in REPLY_KINDS}

    def set_bot_reply(self, channel: str, kind: str, *, template: str | None, enabled: bool = True) -> None:
        if kind not in REPLY_KINDS:
            raise InvalidValue(f"unknown reply {kind!r}; replies: {', '.join(REPLY_KINDS)}")
        ch = self.get_channel(channel)
        with self.transaction() as con:
            con.execute(
                "INSERT INTO bot_replies (channel_id, kind, template, enabled, updated_at) VALUES (?, ?, ?, ?, now())"
                " ON CONFLICT (channel_id, kind) DO UPDATE SET template = excluded.template,"
                " enabled = excluded.enabled, updated_at = now()",
                [ch.id, kind, template, enabled],
            )

    # ----------------------------------------------------------------- links and clicks

    def add_campaign_links(self, campaign_id: int, urls: Sequence[str]) -> None:
        """The tracked links of a campaign, numbered from 0 in the order given."""
        if not urls:
            return
        with self.transaction() as con:
            con.execute(
                "INSERT INTO campaign_links SELECT ?, generate_subscripts(?, 1) - 1, unnest(?)",
                [campaign_id, list(urls), list(urls)],
            )

    def campaign_link(self, campaign_id: int, link: int) -> str:
        """The URL recorded for a campaign's tracked link (NotFound when it has none)."""
        with self.connect(read_only=True) as con:
            row = con.execute(
                "SELECT url FROM campaign_links WHERE campaign_id = ? AND link = ?", [campaign_id, link]
            ).fetchone()
        if row is None:
            raise NotFound("unknown link")
        return str(row[0])

    def record_click(
        self,
        campaign_id: int,
        subscriber_id: int,
        link: int,
        *,
        user_agent: str | None = None,
        clicked_at: datetime | None = None,
    ) -> str:
        """Record a click on a tracked link and return the URL recorded for it (the only
        place a click may redirect to). NotFound for a link the campaign does not have."""
        with self.transaction() as con:
            row = con.execute(
                "SELECT url FROM campaign_links WHERE campaign_id = ? AND link = ?", [campaign_id, link]
            ).fetchone()
            if row is None:
                raise NotFound("unknown link")
            delivery = con.execute(
                "SELECT id FROM deliveries WHERE campaign_id = ? AND subscriber_id = ?",
                [campaign_id, subscriber_id],
            ).fetchone()
            con.execute(
                "INSERT INTO clicks (campaign_id, subscriber_id, delivery_id, link, url, clicked_at, user_agent)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    campaign_id,
                    subscriber_id,
                    delivery[0] if delivery else None,
                    link,
                    row[0],
                    clicked_at or datetime.now(UTC),
                    (user_agent or "")[:300] or None,
                ],
            )
        return str(row[0])

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
