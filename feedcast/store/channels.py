"""Channels: their registration and settings, the state a channel keeps between runs
(Telegram's update offset) and its bot's replies (a repository of
:class:`feedcast.store.Store`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from feedcast.kernel.errors import AlreadyExists, InvalidValue, NotFound
from feedcast.kernel.models import ChannelConfig
from feedcast.store._rows import model_from_row
from feedcast.store.database import Database

__all__ = ["REPLY_KINDS", "ChannelRepository"]

REPLY_KINDS = ("presentation", "welcome", "goodbye", "default")


class ChannelRepository(Database):
    """The channels, each read once per :meth:`session` (an inbound event asks for its
    channel a dozen times)."""

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

    # the fields of ChannelConfig, in order (model_from_row)
    _CHANNEL_SQL = """
        SELECT c.id, c.name, c.kind, c.settings, c.status, c.last_error, c.last_error_at, c.created_at,
               (SELECT count(*) FROM subscribers s WHERE s.channel_id = c.id AND s.status = 'active')
        FROM channels c
    """

    def _channel(self, r: Sequence[Any]) -> ChannelConfig:
        return model_from_row(
            ChannelConfig, r, utc=("last_error_at", "created_at"), settings=json.loads, subscribers=int
        )

    def get_channel(self, name: str) -> ChannelConfig:
        """A channel by name (inside :meth:`session`, read once per session: an
        inbound event asks for its channel a dozen times)."""
        known = self._known_channels()
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

    def _known_channels(self) -> dict[str, ChannelConfig] | None:
        """The channels read in this :meth:`session` (None outside one)."""
        cache = self.session_cache()
        if cache is None:
            return None
        known: dict[str, ChannelConfig] = cache.setdefault("channels", {})
        return known

    def _forget_channels(self) -> None:
        """A channel changed: the session's copies are stale."""
        known = self._known_channels()
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
