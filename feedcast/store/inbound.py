"""Inbound: the messages, commands, postbacks and membership changes people send the
channels' bots, each recorded once (de-duplicated on the provider's own id) before it is
processed (a repository of :class:`feedcast.store.Store`; the webhooks' spool is
:mod:`feedcast.store.spool`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from feedcast.kernel.errors import NotFound
from feedcast.kernel.models import InboundEvent, NewInbound
from feedcast.store._rows import _utc, model_from_row
from feedcast.store.channels import ChannelRepository
from feedcast.store.database import Connection

__all__ = ["PENDING", "InboundRepository"]

PENDING = "pending"  # inbound.action of an event recorded and not processed yet


def _mapping(value: Any) -> Mapping[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, Mapping) else {}


class InboundRepository(ChannelRepository):
    """What people sent the channels, and what was done with it (``action``)."""

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
        event = NewInbound(channel, sender, kind, provider_id, payload, text, received_at)
        return self.record_inbound_event(event, action=action)

    def record_inbound_event(self, event: NewInbound, *, action: str | None = None) -> int | None:
        """:meth:`record_inbound` for an event already made a row (NotFound for a channel
        that does not exist)."""
        self.get_channel(event.channel)
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
                "UPDATE subscribers SET last_inbound_at = greatest(coalesce(last_inbound_at, ?), ?),"
                " locale = coalesce(?, locale) WHERE id = ?",
                [when, when, event.locale, sub[0]],
            )
        assert row is not None
        return int(row[0])

    def pending_inbound(self, limit: int = 500) -> list[InboundEvent]:
        """Recorded events not processed yet (action :data:`PENDING`), oldest first."""
        with self.connect(read_only=True) as con:
            rows = con.execute(  # the fields of InboundEvent, in order
                "SELECT i.id, c.name, c.kind, i.sender, i.kind, i.provider_id, i.payload, i.received_at, i.action"
                " FROM inbound i JOIN channels c ON c.id = i.channel_id WHERE i.action = ? ORDER BY i.id LIMIT ?",
                [PENDING, limit],
            ).fetchall()
        return [
            model_from_row(
                InboundEvent,
                r,
                id=int,
                payload=_mapping,
                received_at=lambda at: _utc(at) or datetime.now(UTC),
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
