"""What the webhook routes share: the spool an event goes to before its 200, the
drainer that takes it on from there, and channel settings that never wait for the store.

:class:`Inbound` holds one :class:`~feedcast.store.spool.Spool` (``<db>.spool``) and one
:class:`~feedcast.inbox.drain.Drainer` per app; :meth:`Inbound.keep` awaits the group
commit of a request's events and wakes the drainer. :class:`ChannelCache` keeps the
channels the webhooks need (the Messenger app secret, whether a Telegram channel
exists): a stale entry is served at once while one refresh reads the store in the
background, so a busy DuckDB file never holds up an answer once a channel is known.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Generic, TypeVar

from feedcast.inbox.drain import Drainer
from feedcast.inbox.messenger import InboxOptions
from feedcast.kernel.errors import NotFound, StoreError
from feedcast.kernel.models import ChannelConfig
from feedcast.store import Store
from feedcast.store.spool import Spool, SpoolEvent, spool_path

__all__ = ["CHANNEL_TTL", "ChannelCache", "Inbound"]

log = logging.getLogger(__name__)

CHANNEL_TTL = 10.0  # seconds a channel's settings are used before they are read again
_MAX_KNOWN = 1024
T = TypeVar("T")


class Inbound:
    """The spool and the drainer of one app."""

    def __init__(
        self,
        store: Store,
        *,
        environ: Mapping[str, str] | None = None,
        options: InboxOptions | None = None,
    ) -> None:
        self.store = store
        self.spool = Spool(spool_path(store.path))
        self.drainer = Drainer(store, self.spool, environ=environ, options=options)

    async def keep(self, events: Sequence[SpoolEvent]) -> list[bool]:
        """Write ``events`` durably (sharing the fsync with concurrent requests) and
        wake the drainer; for each, whether it was new. StoreError when the spool
        cannot be written (answer 503: the provider sends it again)."""
        result = await asyncio.wrap_future(self.spool.submit(events))
        if any(result):
            self.drainer.wake()
        return result

    def start(self) -> None:
        """Start draining (what a previous run left first)."""
        self.drainer.start()

    def stop(self) -> None:
        self.drainer.stop()
        self.spool.close()


class ChannelCache(Generic[T]):
    """Channels of one kind by name, built with ``build``; None for no such channel."""

    def __init__(
        self,
        store: Store,
        kind: str,
        build: Callable[[ChannelConfig], T],
        *,
        ttl: float = CHANNEL_TTL,
    ) -> None:
        self.store = store
        self.kind = kind
        self.build = build
        self.ttl = ttl
        self._lock = threading.Lock()
        self._known: dict[str, tuple[float, T | None]] = {}
        self._refreshing: set[str] = set()

    def cached(self, name: str) -> tuple[bool, T | None]:
        """(known, the channel) without waiting: a stale entry starts a refresh."""
        with self._lock:
            cached = self._known.get(name)
            if cached is None:
                return False, None
            if time.monotonic() - cached[0] >= self.ttl and name not in self._refreshing:
                self._refreshing.add(name)
                threading.Thread(target=self._refresh, args=(name,), daemon=True).start()
        return True, cached[1]

    def get(self, name: str) -> T | None:
        """The channel: at once when known (see :meth:`cached`), else read from the
        store (StoreError when that fails)."""
        known, value = self.cached(name)
        return value if known else self._load(name)

    def _refresh(self, name: str) -> None:
        try:
            self._load(name)
        except StoreError as exc:  # the last known settings serve meanwhile
            log.info("channel %s: settings not refreshed (%s)", name, exc)
        except Exception:
            log.exception("channel %s: settings not refreshed", name)
        finally:
            with self._lock:
                self._refreshing.discard(name)

    def _load(self, name: str) -> T | None:
        try:
            config = self.store.get_channel(name)
        except NotFound:
            value = None
        else:
            value = self.build(config) if config.kind == self.kind else None
        with self._lock:
            if len(self._known) >= _MAX_KNOWN:  # names nobody has: forgotten first
                for unknown in [k for k, v in self._known.items() if v[1] is None]:
                    del self._known[unknown]
            self._known[name] = (time.monotonic(), value)
        return value
