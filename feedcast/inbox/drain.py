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
from feedcast.errors import FeedcastError, StoreError
from feedcast.inbox import messenger, telegram
from feedcast.models import InboundEvent, NewInbound
from feedcast.store import Store
from feedcast.store.audience import PENDING
from feedcast.store.spool import Spool, Spooled

__all__ = ["BATCH", "MAX_PAUSE", "DrainResult", "Drainer"]

log = logging.getLogger(__name__)

BATCH = 500  # events per drain transaction and per processing batch
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
    ) -> None:
        self.store = store
        self.spool = spool
        self.environ = environ
        self.options = options or messenger.InboxOptions()
        self.batch = batch
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
        """Process one batch of pending events; how many were taken up."""
        pending = self.store.pending_inbound(self.batch)
        if not pending:
            return 0
        for channel, kind, events in _runs(pending):
            if kind == "messenger":
                self._messenger(channel, events)
            elif kind == "telegram":
                self._telegram(channel, events)
            else:  # a channel replaced by another kind meanwhile: nothing to do
                for event in events:
                    self.store.set_inbound_action(event.id, f"ignored: {kind} channel")
        return len(pending)

    def _messenger(self, channel: str, events: Sequence[InboundEvent]) -> None:
        handled = messenger.process_pending(
            self.store, channel, events, environ=self.environ, options=self.options
        )
        for event in handled:
            log.info(
                "messenger %s: %s from %s -> %s%s",
                channel,
                event.kind,
                event.sender,
                event.action,
                f" (replies: {', '.join(event.replies)})" if event.replies else "",
            )

    def _telegram(self, channel: str, events: Sequence[InboundEvent]) -> None:
        asyncio.run(self._telegram_batch(channel, events))

    async def _telegram_batch(self, channel: str, events: Sequence[InboundEvent]) -> None:
        try:
            bot = telegram.open_channel(self.store, channel, self.environ)
        except FeedcastError as exc:  # removed, or another kind now
            for event in events:
                self.store.set_inbound_action(event.id, one_line(f"failed: {exc}")[:500])
            return
        async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=10.0)) as client:
            await bot.open(client)
            try:
                if channel not in self._usernames:
                    try:
                        username = (await bot.me()).get("username")
                    except Exception as exc:  # the replies may fail too; deciding does not need it
                        log.warning("telegram channel %r: getMe failed: %s", channel, bot.error_text(exc))
                        username = None
                    else:
                        self._usernames[channel] = username if isinstance(username, str) else None
                username = self._usernames.get(channel)
                for event in events:
                    try:
                        handled = telegram.handle_pending(
                            self.store, event, fmt=bot.format, bot_username=username
                        )
                    except StoreError:
                        raise
                    except Exception as exc:  # one bad update never stops the others
                        error = one_line(REDACTOR.scrub(f"error: {type(exc).__name__}: {exc}"))
                        log.exception("telegram channel %r (webhook): update not processed", channel)
                        self.store.set_inbound_action(event.id, error[:500])
                        continue
                    if handled.sends:
                        try:
                            await telegram.send_replies(self.store, bot, handled)
                        except FeedcastError as exc:
                            log.error("telegram channel %r (webhook): replies not sent: %s", channel, exc)
                    log.info("telegram channel %r (webhook): %s", channel, handled.line())
            finally:
                await bot.close()

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
    """Consecutive events of one channel together, in order."""
    runs: list[tuple[str, str, list[InboundEvent]]] = []
    for event in events:
        if runs and runs[-1][0] == event.channel:
            runs[-1][2].append(event)
        else:
            runs.append((event.channel, event.channel_kind, [event]))
    return runs
