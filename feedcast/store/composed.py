"""Composed campaigns (``feedcast campaign ...``) and the files they upload: a repository
of :class:`feedcast.store.Store`.

A composed campaign is a row of ``composed_campaigns`` (the marketer's message as JSON,
its channels, audience, locale and the instant it is due). When it starts, one
transaction writes a ``campaigns`` row per channel and language of the audience present
(``kind = 'composed'``), its provider calls and one pending delivery per subscriber,
and marks it ``sending``; from there the deliveries are the automations' own (resumed
after a crash, counted in ``send_history``). Its local files live in ``uploads`` by
SHA-256 (the same bytes for every host); what a provider returned for an upload (a
Telegram ``file_id``, a Messenger ``attachment_id``) is kept in ``upload_ids`` so every
recipient and every rerun reuses it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from feedcast.kernel.errors import InvalidValue, NotFound
from feedcast.kernel.models import (
    Button,
    ChannelConfig,
    ComposedCampaign,
    ComposedMessage,
    ComposedModule,
    ProviderCall,
    Upload,
)
from feedcast.store._rows import _utc
from feedcast.store.campaigns import campaign_calls_table
from feedcast.store.channels import ChannelRepository
from feedcast.store.database import staged

__all__ = ["ComposedPart", "ComposedRepository", "message_from_json", "message_to_json"]

DEFAULT_LOCALE = "en"
CHUNK = 1 << 20  # bytes of an upload per row of upload_chunks

_COLUMNS = (
    "id, name, channels, audience, message, source_file, locale, timezone, send_at, send_at_local,"
    " message_tag, status, created_at, started_at, finished_at, error"
)

# the active subscribers of a channel in an audience, with the language each reads:
# (channel id, tag, tag), then the locale that stands for "none known"
_AUDIENCE = "channel_id = ? AND status = 'active' AND (? IS NULL OR list_contains(tags, ?))"


def message_to_json(message: ComposedMessage) -> str:
    """A composed message as the JSON of ``composed_campaigns.message``."""

    def module(m: ComposedModule) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": m.kind}
        for key in ("text", "url", "caption", "alt", "name", "size"):
            value = getattr(m, key)
            if value is not None:
                out[key] = value
        if m.upload is not None:
            out["upload"] = {
                "sha256": m.upload.sha256,
                "name": m.upload.name,
                "content_type": m.upload.content_type,
                "size": m.upload.size,
            }
        if m.buttons:
            out["buttons"] = [
                {"title": b.title, "reply": b.reply}
                if b.reply is not None
                else {"title": b.title, "url": b.url}
                for b in m.buttons
            ]
        return out

    return json.dumps(
        {"subject": message.subject, "modules": [module(m) for m in message.modules]}, ensure_ascii=False
    )


def message_from_json(raw: str) -> ComposedMessage:
    data = json.loads(raw)
    modules = []
    for m in data.get("modules", []):
        upload = m.get("upload")
        modules.append(
            ComposedModule(
                kind=m["kind"],
                text=m.get("text"),
                url=m.get("url"),
                caption=m.get("caption"),
                alt=m.get("alt"),
                name=m.get("name"),
                size=m.get("size"),
                upload=Upload(**upload) if isinstance(upload, dict) else None,
                buttons=tuple(
                    Button(title=b["title"], url=b.get("url", ""), reply=b.get("reply"))
                    for b in m.get("buttons", [])
                ),
            )
        )
    return ComposedMessage(modules=tuple(modules), subject=data.get("subject"))


@dataclass(frozen=True, slots=True)
class ComposedPart:
    """One campaign of a composed campaign when it starts: a channel, a language of its
    audience, the calls of its message."""

    channel: ChannelConfig
    locale: str
    fmt: str
    calls: Sequence[tuple[int, ProviderCall]]
    messages: int
    fallback: str = DEFAULT_LOCALE  # the language of the channel's subscribers whose own is unknown
    warnings: Sequence[str] = ()


class ComposedRepository(ChannelRepository):
    """Composed campaigns, their start, and the uploaded files."""

    def _composed(self, row: Sequence[Any]) -> ComposedCampaign:
        return ComposedCampaign(
            id=int(row[0]),
            name=row[1],
            channels=tuple(row[2] or ()),
            audience=row[3],
            message=message_from_json(row[4]),
            source_file=row[5],
            locale=row[6],
            timezone=row[7],
            send_at=_utc(row[8]),
            send_at_local=row[9],
            message_tag=row[10],
            status=row[11],
            created_at=_utc(row[12]),
            started_at=_utc(row[13]),
            finished_at=_utc(row[14]),
            error=row[15],
        )

    def add_composed(
        self,
        name: str,
        *,
        channels: Sequence[str],
        message: ComposedMessage,
        files: Mapping[str, bytes] = {},
        audience: str | None = None,
        locale: str | None = None,
        timezone: str = "UTC",
        send_at: datetime | None = None,
        send_at_local: str | None = None,
        message_tag: str | None = None,
        source_file: str | None = None,
        replace: bool = False,
    ) -> ComposedCampaign:
        """Record a composed campaign (``scheduled`` with a ``send_at``, else ``draft``) and
        its files (SHA-256 -> bytes), in one transaction. ``replace``: a campaign of that
        name that has not started is replaced (``apply``); one that has is refused."""
        for channel in channels:
            self.get_channel(channel)  # NotFound names it
        status = "scheduled" if send_at is not None else "draft"
        uploads = {m.upload.sha256: m.upload for m in message.modules if m.upload is not None}
        with self.transaction() as con:
            existing = con.execute("SELECT status FROM composed_campaigns WHERE name = ?", [name]).fetchone()
            if existing is not None:
                if not replace:
                    raise InvalidValue(
                        f"a campaign named {name!r} exists (see `feedcast campaign show {name}`)"
                    )
                if existing[0] not in ("draft", "scheduled", "cancelled"):
                    raise InvalidValue(
                        f"campaign {name!r} is {existing[0]}: a started campaign is not replaced"
                    )
                con.execute("DELETE FROM composed_campaigns WHERE name = ?", [name])
            for sha, upload in uploads.items():
                data = files.get(sha)
                if data is None:
                    known = con.execute("SELECT 1 FROM uploads WHERE sha256 = ?", [sha]).fetchone()
                    if known is None:
                        raise InvalidValue(f"the file {upload.name!r} was not given")
                    continue
                known = con.execute("SELECT 1 FROM uploads WHERE sha256 = ?", [sha]).fetchone()
                if known is not None:
                    continue
                con.execute(
                    "INSERT INTO uploads (sha256, name, content_type, size) VALUES (?, ?, ?, ?)",
                    [sha, upload.name, upload.content_type, upload.size],
                )
                for seq, start in enumerate(range(0, len(data), CHUNK)):  # a large file in bounded memory
                    con.execute(
                        "INSERT INTO upload_chunks (sha256, seq, data) VALUES (?, ?, ?)",
                        [sha, seq, data[start : start + CHUNK]],
                    )
            con.execute(
                "INSERT INTO composed_campaigns (name, channels, audience, message, source_file, locale,"
                " timezone, send_at, send_at_local, message_tag, status)"
                " VALUES (?, ?, ?, ?::JSON, ?, ?, ?, ?, ?, ?, ?)",
                [name, list(channels), audience, message_to_json(message), source_file, locale, timezone,
                 send_at, send_at_local, message_tag, status],
            )  # fmt: skip
        return self.get_composed(name)

    def get_composed(self, name: str) -> ComposedCampaign:
        with self.connect(read_only=True) as con:
            row = con.execute(f"SELECT {_COLUMNS} FROM composed_campaigns WHERE name = ?", [name]).fetchone()
        if row is None:
            raise NotFound(f"no campaign named {name!r} (see `feedcast campaign list`)")
        return self._composed(row)

    def list_composed(self) -> list[ComposedCampaign]:
        with self.connect(read_only=True) as con:
            rows = con.execute(f"SELECT {_COLUMNS} FROM composed_campaigns ORDER BY id").fetchall()
        return [self._composed(r) for r in rows]

    def due_composed(self, now: datetime) -> list[ComposedCampaign]:
        """Scheduled campaigns whose time has come, and started ones left unfinished."""
        with self.connect(read_only=True) as con:
            rows = con.execute(
                f"SELECT {_COLUMNS} FROM composed_campaigns"
                " WHERE (status = 'scheduled' AND send_at <= ?) OR status = 'sending' ORDER BY send_at, id",
                [now],
            ).fetchall()
        return [self._composed(r) for r in rows]

    def composed_audience(
        self, composed: ComposedCampaign, channel: ChannelConfig, default_locale: str
    ) -> dict[str, int]:
        """The active subscribers a composed campaign reaches on ``channel``, by the
        language each reads (``default_locale`` for those whose language is unknown)."""
        with self.connect(read_only=True) as con:
            rows = con.execute(
                f"SELECT coalesce(locale, ?) AS l, count(*) FROM subscribers WHERE {_AUDIENCE}"
                " GROUP BY l ORDER BY l",
                [default_locale, channel.id, composed.audience, composed.audience],
            ).fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def start_composed(
        self,
        composed: ComposedCampaign,
        parts: Sequence[ComposedPart],
        *,
        trigger: str,
        now: datetime | None = None,
    ) -> list[int]:
        """Start a composed campaign: a campaign per part, its calls and one pending
        delivery per subscriber of the audience who reads the part's language, all in one
        transaction, and the composed campaign ``sending``. The campaign ids; a part with
        no subscriber left gets no campaign. InvalidValue when it started meanwhile."""
        now = now or datetime.now(UTC)
        ids: list[int] = []
        with self.transaction() as con:
            row = con.execute(
                "UPDATE composed_campaigns SET status = 'sending', started_at = ?, updated_at = ?"
                " WHERE id = ? AND status IN ('draft', 'scheduled', 'stopped') RETURNING id",
                [now, now, composed.id],
            ).fetchone()
            if row is None:
                raise InvalidValue(f"campaign {composed.name!r} has already started or was cancelled")
            for part in parts:
                audience = [part.channel.id, composed.audience, composed.audience]
                language = "coalesce(locale, ?) = ?"
                fallback = part.fallback
                count = con.execute(
                    f"SELECT count(*) FROM subscribers WHERE {_AUDIENCE} AND {language}",
                    [*audience, fallback, part.locale],
                ).fetchone()
                recipients = int(count[0]) if count else 0
                if recipients == 0:
                    continue
                seq = con.execute("SELECT nextval('campaigns_id_seq')").fetchone()
                assert seq is not None
                campaign_id = int(seq[0])
                ids.append(campaign_id)
                con.execute(
                    "INSERT INTO campaigns (id, automation_id, automation_name, channel_id, channel_name,"
                    " channel_kind, layout, format, trigger, items, messages, calls, recipients, warnings,"
                    " created_at, started_at, kind, composed_id, composed_name, locale)"
                    " VALUES (?, NULL, NULL, ?, ?, ?, 'composed', ?, ?, 0, ?, ?, ?, ?, ?, ?, 'composed', ?, ?, ?)",
                    [campaign_id, part.channel.id, part.channel.name, part.channel.kind, part.fmt, trigger,
                     part.messages, len(part.calls), recipients, list(part.warnings) or None, now, now,
                     composed.id, composed.name, part.locale],
                )  # fmt: skip
                with staged(con, composed_calls_new=campaign_calls_table(part.calls)):
                    con.execute(
                        "INSERT INTO campaign_calls SELECT ?, position, message, method, body::JSON"
                        " FROM composed_calls_new",
                        [campaign_id],
                    )
                con.execute(
                    "INSERT INTO deliveries (campaign_id, subscriber_id, recipient, queued_at)"
                    f" SELECT ?, id, recipient, ? FROM subscribers WHERE {_AUDIENCE} AND {language} ORDER BY id",
                    [campaign_id, now, *audience, fallback, part.locale],
                )
        return ids

    def composed_campaign_ids(self, composed_id: int) -> list[int]:
        """The campaigns a composed campaign started, in order."""
        with self.connect(read_only=True) as con:
            rows = con.execute(
                "SELECT id FROM campaigns WHERE composed_id = ? ORDER BY id", [composed_id]
            ).fetchall()
        return [int(r[0]) for r in rows]

    def finish_composed(self, composed_id: int, status: str, error: str | None = None) -> None:
        with self.transaction() as con:
            con.execute(
                "UPDATE composed_campaigns SET status = ?, error = ?, updated_at = now(),"
                " finished_at = CASE WHEN ? IN ('sent', 'cancelled', 'stopped') THEN now() END WHERE id = ?",
                [status, error, status, composed_id],
            )

    def cancel_composed(self, name: str, *, now: datetime | None = None) -> tuple[str, int]:
        """Cancel a composed campaign: one not started never starts; a started one sends
        nothing more (its pending deliveries are skipped, what was sent stays as it is).
        The status it had and the deliveries it no longer makes."""
        now = now or datetime.now(UTC)
        composed = self.get_composed(name)
        if composed.status in ("sent", "cancelled"):
            raise InvalidValue(f"campaign {name!r} is {composed.status} already")
        with self.transaction() as con:
            row = con.execute(
                "UPDATE deliveries SET status = 'skipped', error = 'campaign cancelled', error_code = 'cancelled',"
                " updated_at = ? WHERE status = 'pending'"
                " AND campaign_id IN (SELECT id FROM campaigns WHERE composed_id = ?) RETURNING id",
                [now, composed.id],
            ).fetchall()
            con.execute(
                "UPDATE campaigns SET status = 'cancelled', finished_at = ? WHERE composed_id = ? AND status = 'sending'",
                [now, composed.id],
            )
            con.execute(
                "UPDATE composed_campaigns SET status = 'cancelled', updated_at = ?, finished_at = ? WHERE id = ?",
                [now, now, composed.id],
            )
        return composed.status, len(row)

    def remove_composed(self, name: str) -> None:
        """Forget a composed campaign that never started (its history stays otherwise)."""
        composed = self.get_composed(name)
        if composed.started_at is not None:
            raise InvalidValue(f"campaign {name!r} has started: cancel it instead (its history stays)")
        with self.transaction() as con:
            con.execute("DELETE FROM composed_campaigns WHERE id = ?", [composed.id])

    def claim_composed(
        self, composed_id: int, owner: str, ttl: float, *, steal_from: str | None = None
    ) -> tuple[str, datetime] | None:
        """The right to send a composed campaign for ``ttl`` seconds (as
        :meth:`claim_automation`)."""
        return self._claim("composed_campaigns", composed_id, owner, ttl, steal_from)

    def release_composed(self, composed_id: int, owner: str) -> None:
        self._release("composed_campaigns", composed_id, owner)

    # ----------------------------------------------------------------- uploads

    def upload_data(self, sha256: str) -> bytes:
        """The bytes of an uploaded file."""
        with self.connect(read_only=True) as con:
            rows = con.execute(
                "SELECT data FROM upload_chunks WHERE sha256 = ? ORDER BY seq", [sha256]
            ).fetchall()
        if not rows:
            raise NotFound(f"no uploaded file {sha256[:12]}")
        return b"".join(bytes(r[0]) for r in rows)

    def upload_info(self, sha256: str) -> Upload:
        with self.connect(read_only=True) as con:
            row = con.execute(
                "SELECT sha256, name, content_type, size FROM uploads WHERE sha256 = ?", [sha256]
            ).fetchone()
        if row is None:
            raise NotFound(f"no uploaded file {sha256[:12]}")
        return Upload(sha256=row[0], name=row[1], content_type=row[2], size=int(row[3]))

    def provider_upload_ids(self, channel_id: int) -> dict[tuple[str, str], str]:
        """What the channel's provider returned for files uploaded to it: (SHA-256, kind)
        -> its id (a Telegram file_id, a Messenger attachment_id)."""
        with self.connect(read_only=True) as con:
            rows = con.execute(
                "SELECT sha256, kind, provider_id FROM upload_ids WHERE channel_id = ?", [channel_id]
            ).fetchall()
        return {(str(r[0]), str(r[1])): str(r[2]) for r in rows}

    def remember_upload_id(self, channel_id: int, sha256: str, kind: str, provider_id: str) -> None:
        with self.transaction() as con:
            con.execute(
                "INSERT INTO upload_ids (channel_id, sha256, kind, provider_id) VALUES (?, ?, ?, ?)"
                " ON CONFLICT DO UPDATE SET provider_id = excluded.provider_id, created_at = now()",
                [channel_id, sha256, kind, provider_id],
            )
