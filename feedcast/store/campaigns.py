"""Campaigns and their deliveries: the sending side of the store (a repository of
:class:`feedcast.store.Store`), with the tracked links of a campaign and their clicks.

Exactly-once bookkeeping: a campaign is created in one transaction with its items
(the automation's cursor), its provider calls and one ``pending`` delivery per active
subscriber of its audience (unique on campaign and subscriber); sending takes pending
rows only and records outcomes in batches, so a rerun after a crash resumes. Before a
delivery's first call goes out it is marked started (``start_deliveries``, batched), so
a try whose outcome a crash lost is counted on the rerun (``lost_attempts``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from feedcast.kernel.errors import InvalidValue, NotFound
from feedcast.kernel.models import (
    Automation,
    CampaignInfo,
    ChannelConfig,
    DeliveryUpdate,
    PendingDelivery,
    ProviderCall,
    QueuedItem,
)
from feedcast.store._rows import _utc, model_from_row
from feedcast.store.database import Connection, Database, staged
from feedcast.store.subscribers import move_recipient, set_statuses

__all__ = ["CampaignRepository", "campaign_calls_table"]

# the active subscribers of a channel in an automation's audience (channel id, tag, tag)
_AUDIENCE = "channel_id = ? AND status = 'active' AND (? IS NULL OR list_contains(tags, ?))"

_INSERT_CAMPAIGN = (
    "INSERT INTO campaigns (id, automation_id, automation_name, channel_id, channel_name,"
    " channel_kind, layout, format, trigger, items, messages, calls, recipients, warnings,"
    " created_at, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

_RECORD_OUTCOMES = """
    UPDATE deliveries SET status = u.status, attempts = u.attempts, calls_sent = u.calls_sent,
        error = u.error, error_code = u.error_code,
        provider_message_id = coalesce(u.provider_message_id, deliveries.provider_message_id),
        sent_at = coalesce(u.sent_at, deliveries.sent_at), updated_at = ?
    FROM delivery_updates u WHERE deliveries.id = u.id
"""


def _campaign_items(items: Sequence[QueuedItem]) -> pa.Table:
    return pa.table(
        {
            "item_id": pa.array([q.item_id for q in items], pa.int64()),
            "event": pa.array([q.event for q in items], pa.string()),
            "event_at": pa.array([q.event_at for q in items], pa.timestamp("us", tz="UTC")),
            "position": pa.array(list(range(len(items))), pa.int32()),
        }
    )


def campaign_calls_table(calls: Sequence[tuple[int, ProviderCall]]) -> pa.Table:
    return pa.table(
        {
            "position": pa.array(list(range(len(calls))), pa.int32()),
            "message": pa.array([m for m, _c in calls], pa.int32()),
            "method": pa.array([c.method for _m, c in calls], pa.string()),
            "body": pa.array([json.dumps(c.body, ensure_ascii=False) for _m, c in calls], pa.string()),
        }
    )


def _refuse_taken(con: Connection, automation: Automation) -> None:
    """InvalidValue when another run of ``automation`` sent one of the staged items since."""
    taken = con.execute(
        "SELECT count(*) FROM campaign_items_new n JOIN campaign_items c"
        " ON c.automation_id = ? AND c.item_id = n.item_id AND c.event_at >= n.event_at",
        [automation.id],
    ).fetchone()
    if taken and taken[0]:
        raise InvalidValue(
            f"automation {automation.name!r}: another run just sent some of these items; try again"
        )


class CampaignRepository(Database):
    """Campaigns, their deliveries and what became of each, their links and clicks."""

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
        audience = [channel.id, automation.audience, automation.audience]
        new = {
            "campaign_items_new": _campaign_items(items),
            "campaign_calls_new": campaign_calls_table(calls),
        }
        with self.transaction() as con, staged(con, **new):
            _refuse_taken(con, automation)
            row = con.execute(f"SELECT count(*) FROM subscribers WHERE {_AUDIENCE}", audience).fetchone()
            recipients = int(row[0]) if row else 0
            if recipients == 0:
                return None
            row = con.execute("SELECT nextval('campaigns_id_seq')").fetchone()
            assert row is not None
            campaign_id = int(row[0])
            sizes = [len(items), messages, len(calls), recipients]
            con.execute(
                _INSERT_CAMPAIGN,
                [campaign_id, automation.id, automation.name, channel.id, channel.name, channel.kind,
                 layout, fmt, trigger, *sizes, list(warnings) or None, now, now],
            )  # fmt: skip
            con.execute(
                "INSERT INTO campaign_items SELECT ?, ?, item_id, event, event_at, position FROM campaign_items_new",
                [campaign_id, automation.id],
            )
            con.execute(
                "INSERT INTO campaign_calls SELECT ?, position, message, method, body::JSON FROM campaign_calls_new",
                [campaign_id],
            )
            con.execute(
                "INSERT INTO deliveries (campaign_id, subscriber_id, recipient, queued_at)"
                f" SELECT ?, id, recipient, ? FROM subscribers WHERE {_AUDIENCE} ORDER BY id",
                [campaign_id, now, *audience],
            )
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
            row = con.execute(  # the fields of CampaignInfo, in order (model_from_row)
                """
                SELECT c.id, c.automation_name, c.channel_name, c.channel_kind, c.layout, c.format, c.status,
                       c.created_at, c.items, c.messages, c.calls, c.recipients,
                       count(*) FILTER (WHERE d.status = 'sent'),
                       count(*) FILTER (WHERE d.status = 'failed'),
                       count(*) FILTER (WHERE d.status = 'skipped'),
                       count(*) FILTER (WHERE d.status = 'pending'),
                       c.error, c.finished_at, c.trigger,
                       coalesce(c.kind, 'automated'), c.composed_name, c.locale
                FROM campaigns c LEFT JOIN deliveries d ON d.campaign_id = c.id
                WHERE c.id = ?
                GROUP BY ALL
                """,
                [campaign_id],
            ).fetchone()
        if row is None:
            raise NotFound(f"no campaign {campaign_id}")
        return model_from_row(
            CampaignInfo,
            row,
            utc=("finished_at",),
            created_at=lambda at: _utc(at) or datetime.now(UTC),
        )

    def campaign_items(self, campaign_id: int) -> list[dict[str, Any]]:
        """The items a campaign sent, in its order: ``title``, ``url``, ``event``."""
        return self.query(
            "SELECT i.title, i.url, ci.event FROM campaign_items ci JOIN items i ON i.id = ci.item_id"
            " WHERE ci.campaign_id = ? ORDER BY ci.position",
            [campaign_id],
        )[1]

    def campaign_failures(self, campaign_id: int, limit: int = 10) -> list[dict[str, Any]]:
        """Why a campaign's deliveries were not sent, the most common reason first:
        ``error_code``, ``error`` (one of its messages) and ``n`` (deliveries)."""
        return self.query(
            "SELECT error_code, any_value(error) AS error, count(*) AS n FROM deliveries"
            " WHERE campaign_id = ? AND status IN ('failed', 'skipped') GROUP BY ALL ORDER BY n DESC LIMIT ?",
            [campaign_id, limit],
        )[1]

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
            rows = con.execute(  # the fields of PendingDelivery, in order
                "SELECT d.id, d.subscriber_id, coalesce(s.recipient, d.recipient), coalesce(s.status, 'removed'),"
                " s.name, s.last_inbound_at, d.attempts"
                " FROM deliveries d LEFT JOIN subscribers s ON s.id = d.subscriber_id"
                " WHERE d.campaign_id = ? AND d.status = 'pending' AND d.id > ? ORDER BY d.id LIMIT ?",
                [campaign_id, after_id, limit],
            ).fetchall()
        return [model_from_row(PendingDelivery, r, utc=("last_inbound_at",)) for r in rows]

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
            with staged(con, delivery_updates=table):
                con.execute(_RECORD_OUTCOMES, [now])
            changes = [
                (u.subscriber_id, u.subscriber_status, u.error)
                for u in updates
                if u.subscriber_id is not None and u.subscriber_status
            ]
            if changes:
                set_statuses(con, changes, "provider")
            for u in updates:
                if u.subscriber_id is not None and u.new_recipient:
                    move_recipient(con, u.subscriber_id, u.new_recipient)

    def finish_campaign(self, campaign_id: int, status: str, error: str | None = None) -> None:
        with self.transaction() as con:
            con.execute(
                "UPDATE campaigns SET status = ?, error = ?,"
                " finished_at = CASE WHEN ? = 'sending' THEN NULL ELSE now() END WHERE id = ?",
                [status, error, status, campaign_id],
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
