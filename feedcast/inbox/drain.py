"""From the inbound spool to the store, then to the people: the webhooks' second half.

A webhook answers once its event is in the spool (:mod:`feedcast.store.spool`); a
:class:`Drainer` (one thread of ``feedcast web``) does the rest, in batches:

1. **drain**: spooled events become ``inbound`` rows with action ``pending``
   (:meth:`Store.record_inbound_many`, one transaction per batch, de-duplicated on the
   provider's id), then are marked drained in the spool. A crash between the two
   drains them again, and the store's de-duplication makes that a no-op;
2. **process**: each pending row is decided from its stored payload
   (:func:`feedcast.inbox.messenger.process_pending`,
   :func:`feedcast.inbox.telegram.handle_pending`): the subscription change and the
   row's action commit together, so a row is processed once whatever stops when; the
   replies are sent after.

A busy DuckDB file (another process writing) only delays this: the spool keeps
accepting, and the drainer retries with a growing pause (up to :data:`MAX_PAUSE`).
Plain Python: no Prefect, no SQL (the store and the spool hold it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx

from channels.base import REDACTOR, one_line
from channels.telegram import TelegramChannel
from feedcast.inbox import messenger, telegram
from feedcast.kernel.errors import FeedcastError, StoreError
from feedcast.kernel.models import InboundEvent, NewInbound
from feedcast.kernel.netguard import guarded_client
from feedcast.store import Store
from feedcast.store.inbound import PENDING
from feedcast.store.spool import Spool, Spooled

__all__ = ["BATCH", "BREATHER", "CHUNK", "MAX_PAUSE", "DrainResult", "Drainer"]

log = logging.getLogger(__name__)

BATCH = 500  # events per drain transaction and per query of pending ones
CHUNK = 50  # events decided on one connection before the file is let go
BREATHER = 0.05  # seconds the file is left to other processes between chunks
MAX_PAUSE = 30.0  # seconds between tries at most while the store is busy
_PRUNE_EVERY = 3600.0  # seconds between prunes of old drained spool rows


@dataclass(slots=True)
class DrainResult:
    drained: int = 0  # spool rows moved into the store (new ones)
    processed: int = 0  # pending rows decided


class Drainer:
    """Drains one spool into one store and processes what it drained."""

    def __init__(
        self,
        store: Store,
        spool: Spool,
        *,
        environ: Mapping[str, str] | None = None,
        options: messenger.InboxOptions | None = None,
        batch: int = BATCH,
        chunk: int = CHUNK,
        breather: float = BREATHER,
    ) -> None:
        self.store = store
        self.spool = spool
        self.environ = environ
        self.options = options or messenger.InboxOptions()
        self.batch = batch
        self.chunk = chunk
        self.breather = breather
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()
        self._usernames: dict[str, str | None] = {}  # Telegram channel -> bot username
        self._pruned = 0.0
        self.idle = threading.Event()  # set while nothing is left to do

    # ----------------------------------------------------------------- the thread

    def start(self) -> None:
        """Start the thread (once); it drains what a previous run left at once."""
        with self._start:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="feedcast-drain", daemon=True)
            self._thread.start()
        self._wake.set()

    def wake(self) -> None:
        """New events are in the spool."""
        self.idle.clear()
        if self._thread is None or not self._thread.is_alive():
            self.start()
        self._wake.set()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop after the batch in hand (what is left stays in the spool or pending)."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        self._thread = None

    def _loop(self) -> None:
        pause = 0.0
        while not self._stop.is_set():
            if pause:
                self._wake.wait(pause)
            else:
                self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.run_once()
            except StoreError as exc:
                pause = min(MAX_PAUSE, max(0.5, pause * 2))
                log.warning("inbound events wait: %s (next try in %.1f s)", exc, pause)
                continue
            except Exception:  # the thread must outlive any one bad batch
                pause = min(MAX_PAUSE, max(1.0, pause * 2))
                log.exception("inbound events: a batch failed (next try in %.1f s)", pause)
                continue
            pause = 0.0

    # ----------------------------------------------------------------- the work

    def run_once(self) -> DrainResult:
        """Drain the spool and process every pending event, until none is left (or the
        drainer is stopped). Raises :class:`StoreError` while the store is busy."""
        result = DrainResult()
        while not self._stop.is_set():
            drained = self.drain()
            result.drained += drained
            processed = self.process()
            result.processed += processed
            if not drained and not processed:
                break
        self._prune()
        self.idle.set()
        return result

    def drain(self) -> int:
        """Move one batch from the spool into the store; the number of spool rows."""
        rows = self.spool.undrained(self.batch)
        if not rows:
            return 0
        records: list[NewInbound] = []
        for row in rows:
            record = _record(row)
            if record is not None:
                records.append(record)
        ids = self.store.record_inbound_many(records, action=PENDING) if records else []
        self.spool.mark_drained([r.id for r in rows])
        new = sum(1 for i in ids if i is not None)
        log.debug("inbound: %d spooled event(s) drained, %d new", len(rows), new)
        return len(rows)

    def process(self) -> int:
        """Process pending events, a chunk at a time; how many were taken up."""
        pending = self.store.pending_inbound(self.batch)
        if not pending:
            return 0
        for channel, kind, events in _runs(pending):
            for start in range(0, len(events), self.chunk):
                if self._stop.is_set():
                    return len(pending)
                chunk = events[start : start + self.chunk]
                if kind == "messenger":
                    self._messenger(channel, chunk)
                elif kind == "telegram":
                    self._telegram(channel, chunk)
                else:  # a channel replaced by another kind meanwhile: nothing to do
                    for event in chunk:
                        self.store.set_inbound_action(event.id, f"ignored: {kind} channel")
                # let other processes (an analyst, a campaign) have the file a moment
                self._stop.wait(self.breather)
        return len(pending)

    def _messenger(self, channel: str, events: Sequence[InboundEvent]) -> None:
        with self.store.session():  # one connection for the chunk, a transaction per event
            decided = messenger.decide_pending(self.store, channel, events, options=self.options)
        messenger.send_replies(self.store, channel, decided.replies, self.environ)
        for event in decided.handled:
            log.info(
                "messenger %s: %s from %s -> %s%s",
                channel,
                event.kind,
                event.sender,
                event.action,
                f" (replies: {', '.join(event.replies)})" if event.replies else "",
            )
        if decided.error is not None:
            raise decided.error

    def _telegram(self, channel: str, events: Sequence[InboundEvent]) -> None:
        try:
            bot = telegram.open_channel(self.store, channel, self.environ)
        except FeedcastError as exc:  # another kind now
            for event in events:
                self.store.set_inbound_action(event.id, one_line(f"failed: {exc}")[:500])
            return
        if channel not in self._usernames:
            self._usernames[channel] = asyncio.run(self._username(bot))
        username = self._usernames[channel]
        done: list[telegram.Handled] = []
        error: StoreError | None = None
        with self.store.session():
            for event in events:
                try:
                    done.append(
                        telegram.handle_pending(self.store, event, fmt=bot.format, bot_username=username)
                    )
                except StoreError as exc:
                    error = exc
                    break
                except Exception as exc:  # one bad update never stops the others
                    text = one_line(REDACTOR.scrub(f"error: {type(exc).__name__}: {exc}"))
                    log.exception("telegram channel %r (webhook): update not processed", channel)
                    self.store.set_inbound_action(event.id, text[:500])
        asyncio.run(self._telegram_replies(bot, done))
        if error is not None:
            raise error

    @staticmethod
    async def _username(bot: TelegramChannel) -> str | None:
        async with guarded_client(httpx.Timeout(30.0, connect=10.0)) as client:
            await bot.open(client)
            try:
                username = (await bot.me()).get("username")
            except Exception as exc:  # deciding works without it (commands @another_bot aside)
                log.warning("telegram channel %r: getMe failed: %s", bot.name, bot.error_text(exc))
                return None
            finally:
                await bot.close()
        return username if isinstance(username, str) else None

    async def _telegram_replies(self, bot: TelegramChannel, done: Sequence[telegram.Handled]) -> None:
        if any(h.sends for h in done):
            async with guarded_client(httpx.Timeout(30.0, connect=10.0)) as client:
                await bot.open(client)
                try:
                    for handled in done:
                        if handled.sends:
                            try:
                                await telegram.send_replies(self.store, bot, handled)
                            except FeedcastError as exc:
                                log.error(
                                    "telegram channel %r (webhook): replies not sent: %s", bot.name, exc
                                )
                                break
                finally:
                    await bot.close()
        for handled in done:
            log.info("telegram channel %r (webhook): %s", bot.name, handled.line())

    def _prune(self) -> None:
        now = time.monotonic()
        if self._pruned and now - self._pruned < _PRUNE_EVERY:
            return
        self._pruned = now
        try:
            gone = self.spool.prune()
        except StoreError as exc:
            log.warning("inbound spool: old events not pruned: %s", exc)
            return
        if gone:
            log.info("inbound spool: %d drained event(s) older than 7 days forgotten", gone)


def _record(row: Spooled) -> NewInbound | None:
    try:
        body = json.loads(row.body)
    except ValueError:
        log.error("inbound spool: event %d of %s is not JSON; skipped", row.id, row.channel)
        return None
    if row.source == "messenger":
        return messenger.inbound_record(row.channel, body)
    if row.source == "telegram" and isinstance(body, Mapping):
        return telegram.inbound_record(row.channel, body)
    log.error(
        "inbound spool: event %d of %s from %r is not understood; skipped", row.id, row.channel, row.source
    )
    return None


def _runs(events: Sequence[InboundEvent]) -> list[tuple[str, str, list[InboundEvent]]]:
    """The events of each channel together, each channel's in order (a person's
    events stay in the order they came; channels do not wait on one another)."""
    runs: dict[str, tuple[str, str, list[InboundEvent]]] = {}
    for event in events:
        runs.setdefault(event.channel, (event.channel, event.channel_kind, []))[2].append(event)
    return list(runs.values())
