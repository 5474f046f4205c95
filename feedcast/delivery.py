"""The sending path: build a campaign from an automation's queue, then deliver it.

Plain Python (Prefect flows call these functions; so does the CLI).

Exactly once, and what "once" costs after a crash
-------------------------------------------------
:func:`build_campaign` writes the campaign, its items (the automation's cursor moves
past them), its provider calls and one ``pending`` delivery per active subscriber in
one transaction. :func:`deliver` then takes pending deliveries only and records each
outcome; a rerun (``feedcast send`` again) resumes unfinished campaigns before building
a new one. A delivery is recorded after its provider calls succeed, so a process killed
between a provider's answer and the write leaves that delivery pending, and the rerun
sends it again. The engine never lets more than ``max_unrecorded`` deliveries be in
flight or sent but unrecorded (a delivery's slot is released only once its outcome is
written; outcomes are written every ``flush_interval`` or as soon as half the window is
waiting), so a crash duplicates at most ``max_unrecorded`` deliveries (512 by default;
at a provider's paced rate, only what was sent since the last write plus the calls in
flight: about 8 on Telegram, 29/s x 0.25 s); everything else is sent once. Each write
opens the database for one short transaction (about 25 ms), so writes are batched
rather than made per delivery.

Those duplicates show in the history: before a delivery's first call goes out it is
marked started in the store (``started_at`` set, the try counted in ``attempts``), in
batches of the deliveries taking a call slot plus some ahead (``in_flight``, or what
begins in two flush intervals and mark writes at the rate so far, doubled whenever a
delivery had to wait for its mark: a mark write about every flush interval, or fewer
when the database is slow), written apart from the outcomes so a
slow outcome write does not hold them up. A rerun that finds a pending delivery still
marked counts that lost try (``lost_attempts``; ``send_history.unconfirmed_attempts``,
``possibly_duplicated``). Marked deliveries are a subset of the ``max_unrecorded``
window, so a crash flags at most that many, and every one it sent twice. A stop that
is not a crash (``--deadline``, a fatal answer before a delivery's first call) unmarks
the deliveries that sent nothing.

Pacing: every call passes the channel's :class:`~channels.ratelimit.RateGate`
(provider limits as sliding windows); a 429 pauses the whole channel for the provider's
``retry_after``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import math
import os
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from channels import channel_class
from channels.base import (
    ATTACH,
    UNSUBSCRIBE_PLACEHOLDER,
    Channel,
    Outcome,
    Recipient,
    Result,
    SendContext,
)
from channels.http import sending_client
from channels.ratelimit import RateGate
from feedcast.kernel.errors import (
    AutomationBusy,
    ChannelError,
    FeedcastError,
    InvalidValue,
    NotFound,
    PayloadError,
)
from feedcast.kernel.models import (
    Automation,
    CampaignInfo,
    ChannelConfig,
    DeliveryUpdate,
    Message,
    PendingDelivery,
    ProviderCall,
    QueuedItem,
    Upload,
)
from feedcast.store import Store
from feedcast.tokens import signing_key, unsubscribe_url
from feedcast.tracking import LinkTracker, is_tracked, personal_calls, public_url
from layouts.formats import get_format, provider_calls, validate_call
from layouts.limits import RenderLimits
from layouts.render import (
    EventInfo,
    Layout,
    RenderContext,
    identity_link,
    load_layout,
    render,
    search_path_from_env,
)

__all__ = [
    "BuildResult",
    "CampaignPlan",
    "CampaignResult",
    "PlannedMessage",
    "SendSettings",
    "build_campaign",
    "check_channel",
    "deliver",
    "hold_lease",
    "make_channel",
    "plan_campaign",
    "send_automation",
    "send_test",
]

log = logging.getLogger(__name__)
_RNG = random.Random()  # jitter; the global random state stays the caller's


PER_ITEM_DEFAULT = 5  # items in one campaign of a per-item layout without --max-items
_STATUS_OF = {"unsubscribed": "unsubscribed", "unreachable": "unreachable", "bounced": "bounced"}

# (deliveries done, deliveries to do in the campaign): (0, total) first, then after each
# batch of outcomes is recorded
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class SendSettings:
    limits: bool = True  # pace calls to the providers' limits (off only against an emulator)
    max_attempts: int = 5  # tries per call for transient errors
    backoff: float = 1.0  # seconds before the first retry, doubling, jittered
    backoff_cap: float = 60.0
    max_in_flight: int | None = None  # provider calls at once; default: the channel's
    # deliveries in flight or sent but not yet recorded: what a crash may send twice
    max_unrecorded: int = 512
    flush_interval: float = 0.25  # seconds between writes of outcomes (also when half the window waits)
    timeout: float = 30.0  # seconds per provider request
    deadline: float | None = None  # stop starting deliveries after this many seconds


@dataclass(frozen=True, slots=True)
class BuildResult:
    campaign_id: int | None
    reason: str | None = None  # why there is no campaign
    items: int = 0
    waiting: int = 0  # items still queued after this campaign
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CampaignResult:
    campaign: CampaignInfo
    duration: float
    resumed: bool = False
    waited: float = 0.0  # seconds spent waiting on rate limits
    pauses: int = 0  # times a provider paused the channel

    @property
    def rate(self) -> float:
        done = self.campaign.sent + self.campaign.failed + self.campaign.skipped
        return done / self.duration if self.duration > 0 else 0.0


# --------------------------------------------------------------------------- channels


def make_channel(config: ChannelConfig, environ: Mapping[str, str] | None = None) -> Channel:
    from channels.base import Secrets

    cls = channel_class(config.kind)
    return cls(config.name, config.settings, secrets=Secrets(environ))


def _client(settings: SendSettings, in_flight: int) -> httpx.AsyncClient:
    return sending_client(max(in_flight, 4), timeout=settings.timeout)


def check_channel(store: Store, name: str, environ: Mapping[str, str] | None = None) -> str:
    """``feedcast channel test NAME``: the channel's own check (credentials, reachability)."""
    channel = make_channel(store.get_channel(name), environ)

    async def run() -> str:
        async with _client(SendSettings(), 4) as client:
            await channel.open(client)
            try:
                return await channel.check()
            finally:
                await channel.close()

    return asyncio.run(run())


def _test_message(fmt: str, channel: str) -> Message:
    return get_format(fmt).test_message(f"feedcast test message from channel {channel}", channel)


def send_test(
    store: Store, name: str, to: str | None = None, environ: Mapping[str, str] | None = None
) -> Result:
    """``channel test NAME --to R``: send one test message to R (not recorded)."""
    config = store.get_channel(name)
    channel = make_channel(config, environ)
    address = to if to is not None else channel.fixed_recipient
    if address is None:
        raise InvalidValue(f"name a recipient: feedcast channel test {name} --to RECIPIENT")
    address = channel.validate_recipient(address)
    calls = provider_calls(_test_message(channel.format, name))

    async def run() -> Result:
        async with _client(SendSettings(), 4) as client:
            await channel.open(client)
            try:
                result = Result.sent()
                recipient = Recipient(subscriber_id=0, address=address, last_inbound_at=datetime.now(UTC))
                for position, call in enumerate(calls):
                    result = await channel.send(recipient, call, SendContext(campaign_id=0), position)
                    if result.outcome is not Outcome.SENT:
                        return result
                return result
            finally:
                await channel.close()

    return asyncio.run(run())


# --------------------------------------------------------------------------- campaigns


def _limit(automation: Automation, per: str, layout_max: int) -> int:
    if automation.max_items is not None:
        return automation.max_items
    return layout_max if per == "campaign" else PER_ITEM_DEFAULT


@dataclass(frozen=True, slots=True)
class PlannedMessage:
    """One rendered Message of a campaign plan (``number`` counts from 1), its provider
    calls and what the validator said of each (None: valid). ``error``: the payloads
    could not be built at all. An invalid message is left out of the campaign."""

    number: int
    message: Message
    calls: tuple[ProviderCall, ...]
    call_errors: tuple[str | None, ...]
    error: str | None = None

    @property
    def problem(self) -> str | None:
        """Why the message is left out (the first error), or None."""
        if self.error is not None:
            return self.error
        return next((e for e in self.call_errors if e is not None), None)


@dataclass(frozen=True, slots=True)
class CampaignPlan:
    """What ``feedcast send AUTOMATION`` would put in the automation's next campaign,
    now: the one selection of items and the one render that both ``send`` and
    ``preview AUTOMATION`` use, so the preview never promises what send will not do."""

    automation: Automation
    config: ChannelConfig
    fmt: str
    layout: Layout
    context: RenderContext
    queued: tuple[QueuedItem, ...]
    waiting: int  # items queued in all (``queued`` is at most the campaign's limit)
    audience: int  # active subscribers the campaign would go to
    messages: tuple[PlannedMessage, ...]
    reason: str | None  # why send would build no campaign now; None: it would
    tracker: LinkTracker | None = None

    @property
    def calls(self) -> list[tuple[int, ProviderCall]]:
        """(message index from 0, call) of every message that goes out."""
        return [(m.number - 1, call) for m in self.messages if m.problem is None for call in m.calls]

    @property
    def warnings(self) -> list[str]:
        return [
            f"message {m.number} (items {', '.join(m.message.item_keys) or '?'}) left out: {m.problem}"
            for m in self.messages
            if m.problem is not None
        ]

    @property
    def events(self) -> dict[str, EventInfo]:
        return {
            q.item.key: EventInfo(q.event, q.old_price, q.new_price) for q in self.queued if q.event != "new"
        }


def plan_campaign(
    store: Store,
    automation: Automation,
    *,
    now: datetime | None = None,
    search_path: Sequence[Path] | None = None,
    environ: Mapping[str, str] | None = None,
    track_links: bool = True,
    render_always: bool = False,
) -> CampaignPlan:
    """The automation's next campaign as ``send`` would build it now: its queued items
    (:meth:`Store.queued_items`, oldest event first), rendered with its layout, time
    zone and locale, each payload checked. ``reason`` says why no campaign would be
    built (nothing queued, fewer than ``min_items``, no audience, nothing valid).

    ``track_links=False`` renders item links as they are instead of click-tracking
    placeholders (a preview writes no signing key); ``render_always`` renders the
    queued items even when the campaign would wait (a preview shows them)."""
    config = store.get_channel(automation.channel)
    channel = make_channel(config, environ)
    fmt = channel.format
    layout = load_layout(automation.layout, search_path_from_env() if search_path is None else search_path)
    layout.require(fmt)
    limit = _limit(automation, layout.per, layout.max_items)
    queued, waiting = store.queued_items(automation, limit)
    reason, audience = _waits_for(store, automation, queued, waiting)
    context, tracker = _render_context(
        store, automation, fmt, limit, now=now, environ=environ, track_links=track_links
    )
    plan = CampaignPlan(
        automation, config, fmt, layout, context, tuple(queued), waiting, audience, (), reason, tracker
    )
    if not queued or (reason is not None and not render_always):
        return plan
    plan = replace(plan, messages=_planned_messages(plan))
    if reason is None and not plan.calls:
        warnings = plan.warnings
        plan = replace(plan, reason=warnings[0] if warnings else "the layout rendered nothing to send")
    return plan


def _waits_for(
    store: Store, automation: Automation, queued: Sequence[QueuedItem], waiting: int
) -> tuple[str | None, int]:
    """Why the campaign would not be sent now (None: it would), and its audience size
    (counted only once there are enough items)."""
    if not queued:
        return "no new items since the last campaign", 0
    if waiting < automation.min_items:
        return f"{waiting} item(s) queued; this automation waits for {automation.min_items}", 0
    audience = store.audience_size(automation)
    if audience == 0:
        who = f"tagged {automation.audience!r} " if automation.audience else ""
        return (
            f"no active subscriber {who}on channel {automation.channel!r}: nothing sent, "
            f"{waiting} item(s) stay queued"
        ), 0
    return None, audience


def _render_context(
    store: Store,
    automation: Automation,
    fmt: str,
    limit: int,
    *,
    now: datetime | None,
    environ: Mapping[str, str] | None,
    track_links: bool,
) -> tuple[RenderContext, LinkTracker | None]:
    """What the layout renders with, and the link tracker when it tracks clicks."""
    sources = store.list_sources(list(automation.sources))
    titles = sorted({s.title or s.name for s in sources})
    # click tracking: item links become numbered placeholders (feedcast.tracking)
    tracker = (
        LinkTracker(public_url(environ), signing_key(store.path, environ))
        if automation.track_clicks and track_links
        else None
    )
    context = RenderContext(
        timezone=automation.timezone,
        locale=automation.locale,
        automation=automation.name,
        site_title=titles[0] if len(titles) == 1 else None,
        max_items=limit,
        now=now,
        unsubscribe_url=UNSUBSCRIBE_PLACEHOLDER if get_format(fmt).unsubscribe_link else None,
        link=tracker if tracker is not None else identity_link,
        limits=RenderLimits.from_env(environ),
    )
    return context, tracker


def _planned_messages(plan: CampaignPlan) -> tuple[PlannedMessage, ...]:
    """The plan's queued items rendered, each message's provider calls built and checked."""
    items = [q.item for q in plan.queued]
    sizes = {m.url: m.length for item in items for m in item.media if m.length}
    messages: list[PlannedMessage] = []
    rendered = render(plan.layout, plan.fmt, items, context=plan.context, events=plan.events)
    for number, message in enumerate(rendered, 1):
        try:
            message_calls = provider_calls(message, media_sizes=sizes, locale=plan.context.locale)
        except PayloadError as exc:
            messages.append(PlannedMessage(number, message, (), (), str(exc)))
            continue
        errors: list[str | None] = []
        for call in message_calls:
            try:
                validate_call(plan.fmt, call)
            except PayloadError as exc:
                errors.append(str(exc))
            else:
                errors.append(None)
        messages.append(PlannedMessage(number, message, tuple(message_calls), tuple(errors)))
    return tuple(messages)


def build_campaign(
    store: Store,
    automation: Automation,
    *,
    trigger: str = "manual",
    now: datetime | None = None,
    search_path: Sequence[Path] | None = None,
    environ: Mapping[str, str] | None = None,
) -> BuildResult:
    """Render the automation's queued items into a campaign and queue its deliveries."""
    plan = plan_campaign(store, automation, now=now, search_path=search_path, environ=environ)
    warnings = plan.warnings
    if plan.reason is not None:
        waiting = plan.waiting if plan.queued and plan.messages == () else 0
        return BuildResult(None, plan.reason, waiting=waiting, warnings=tuple(warnings))
    campaign_id = store.create_campaign(
        automation=automation,
        channel=plan.config,
        layout=plan.layout.name,
        fmt=plan.fmt,
        items=plan.queued,
        calls=plan.calls,
        messages=sum(1 for m in plan.messages if m.problem is None),
        warnings=warnings,
        trigger=trigger,
        now=now,
    )
    if campaign_id is None:  # the audience emptied meanwhile
        return BuildResult(
            None, f"no active subscriber on channel {automation.channel!r}", waiting=plan.waiting
        )
    if plan.tracker is not None:  # the only URLs /c/ redirects to for this campaign
        store.add_campaign_links(campaign_id, plan.tracker.urls)
    return BuildResult(
        campaign_id, items=len(plan.queued), waiting=plan.waiting - len(plan.queued), warnings=tuple(warnings)
    )


def send_automation(
    store: Store,
    name: str,
    *,
    settings: SendSettings | None = None,
    trigger: str = "manual",
    now: datetime | None = None,
    environ: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    on_build: Callable[[BuildResult], None] | None = None,
) -> list[CampaignResult]:
    """Finish the automation's unfinished campaigns (a crash, a stop), then build and
    deliver a new one from the items it has not sent yet. One process at a time per
    automation (a lease in the store, renewed while sending)."""
    automation = store.get_automation(name)
    with _lease(store, automation):
        return _send_automation(store, automation, settings, trigger, now, environ, progress, on_build)


LEASE_SECONDS = 60.0


@contextmanager
def _lease(store: Store, automation: Automation) -> Iterator[None]:
    with hold_lease(
        store.claim_automation,
        store.release_automation,
        automation.id,
        f"automation {automation.name!r}",
    ):
        yield


Claim = Callable[..., tuple[str, datetime] | None]


@contextmanager
def hold_lease(claim: Claim, release: Callable[[int, str], None], row_id: int, what: str) -> Iterator[None]:
    """Hold the lease of a row (an automation, a composed campaign: ``claim(row_id,
    owner, ttl[, steal_from=])``) while the block sends, renewed in a thread; a lease
    whose holder died on this host is taken over. AutomationBusy when another holds it."""
    owner = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
    held = claim(row_id, owner, LEASE_SECONDS)
    if held is not None and _dead_here(held[0]):  # its holder crashed on this machine
        held = claim(row_id, owner, LEASE_SECONDS, steal_from=held[0])
    if held is not None:
        holder, until = held
        raise AutomationBusy(
            f"{what} is being sent by {holder} (lease until {until:%H:%M:%S} UTC); "
            "it resumes any unfinished campaign itself"
        )
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(LEASE_SECONDS / 3):
            try:
                claim(row_id, owner, LEASE_SECONDS)
            except FeedcastError as exc:  # a busy file: the next renewal tries again
                log.warning("%s: lease renewal failed: %s", what, exc)

    renewer = threading.Thread(target=renew, name=f"lease-{row_id}", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()
        release(row_id, owner)


def _dead_here(owner: str) -> bool:
    """A lease holder (host:pid:thread) that was a process of this host, now gone."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def _send_automation(
    store: Store,
    automation: Automation,
    settings: SendSettings | None,
    trigger: str,
    now: datetime | None,
    environ: Mapping[str, str] | None,
    progress: Progress | None,
    on_build: Callable[[BuildResult], None] | None,
) -> list[CampaignResult]:
    name = automation.name
    results = []
    for campaign_id in store.unfinished_campaigns(name):
        results.append(
            deliver(store, campaign_id, settings=settings, environ=environ, progress=progress, resumed=True)
        )
        if results[-1].campaign.status == "stopped":
            return results  # the channel is broken: do not pile up another campaign
    built = build_campaign(store, automation, trigger=trigger, now=now, environ=environ)
    if on_build is not None:
        on_build(built)
    if built.campaign_id is not None:
        results.append(
            deliver(store, built.campaign_id, settings=settings, environ=environ, progress=progress)
        )
    return results


# --------------------------------------------------------------------------- delivery


def deliver(
    store: Store,
    campaign_id: int,
    *,
    settings: SendSettings | None = None,
    environ: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    resumed: bool = False,
) -> CampaignResult:
    """Deliver a campaign's pending deliveries; returns the campaign as recorded."""
    settings = settings or SendSettings()
    info = store.campaign(campaign_id)
    try:
        config = store.get_channel(info.channel)
    except NotFound:
        store.finish_campaign(campaign_id, "stopped", f"channel {info.channel!r} was removed")
        return CampaignResult(store.campaign(campaign_id), 0.0, resumed)
    message_tag = None
    try:
        if info.automation is not None:
            message_tag = store.get_automation(info.automation).message_tag
        elif info.composed is not None:
            message_tag = store.get_composed(info.composed).message_tag
    except NotFound:
        message_tag = None
    channel = make_channel(config, environ)
    engine = _Engine(store, info, config, channel, message_tag, settings, progress, environ)
    if progress is not None:
        progress(0, info.pending)  # the total up front; then after each recorded batch
    started = time.monotonic()
    # what exists now (modules, Prefect, the calls) is left out of garbage collections while
    # sending: a full collection over it stalls the event loop for tens of milliseconds,
    # long enough to bunch paced calls into one of the provider's windows
    gc.freeze()
    try:
        asyncio.run(engine.run())
    finally:
        gc.unfreeze()
    duration = time.monotonic() - started
    if engine.fatal is not None:
        store.finish_campaign(campaign_id, "stopped", engine.fatal)
        store.set_channel_error(config.id, engine.fatal)
    else:
        final = store.campaign(campaign_id)
        store.finish_campaign(campaign_id, "sending" if final.pending else "sent")
        if config.last_error:
            store.set_channel_error(config.id, None)
    return CampaignResult(
        store.campaign(campaign_id), duration, resumed, engine.gate.waited, engine.gate.pauses
    )


class _StoreFiles:
    """The campaign's uploaded files from the store, for the channel to upload its way
    (:class:`channels.base.Files`), and what the provider returned for each: kept in
    ``upload_ids``, so every recipient, campaign and rerun on the channel reuses it."""

    def __init__(
        self, store: Store, channel_id: int, db_lock: asyncio.Lock, known: dict[tuple[str, str], str]
    ) -> None:
        self.store = store
        self.channel_id = channel_id
        self.db_lock = db_lock
        self.ids = known

    async def read(self, sha256: str) -> tuple[Upload, bytes]:
        def read() -> tuple[Upload, bytes]:
            return self.store.upload_info(sha256), self.store.upload_data(sha256)

        return await asyncio.to_thread(read)

    def known(self, sha256: str, kind: str) -> str | None:
        return self.ids.get((sha256, kind))

    async def remember(self, sha256: str, kind: str, provider_id: str) -> None:
        self.ids[(sha256, kind)] = provider_id
        async with self.db_lock:
            await asyncio.to_thread(self.store.remember_upload_id, self.channel_id, sha256, kind, provider_id)


@dataclass(slots=True)
class _Tried:
    """A delivery's calls so far: its tries (from the stored count), the recipient (a new
    address once a Telegram group migrated), the provider's id of its first message."""

    attempts: int
    recipient: Recipient
    first_id: str | None = None
    new_recipient: str | None = None


@dataclass(slots=True)
class _Marks:
    """Marking deliveries as started (``store.start_deliveries``) before their first call."""

    # deliveries marked ahead of need: a call slot's worth, or what begins in two flush
    # intervals and mark writes at the rate seen so far (a mark write about every
    # interval, fewer when the database is slow), doubled whenever a delivery had to
    # wait for its mark; never more than the window
    ahead: int
    # the ones about to take a call slot, in the order they take it, not marked yet; the
    # marked ones whose first call has not begun; the deliveries waiting for it
    to_mark: deque[int] = field(default_factory=deque)
    marked: set[int] = field(default_factory=set)
    waiters: dict[int, asyncio.Future[bool]] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # the marker writes now
    begun: int = 0  # deliveries past their mark, for the rate
    begun_since: float | None = None
    latency: float = 0.0  # seconds a mark write takes (moving average)
    unstart: list[int] = field(default_factory=list)  # marked, stopped before any call went out

    def next_batch(self, window: int, flush_interval: float) -> list[int]:
        """The deliveries to mark now: the ones waiting for their mark, and the next to
        take a call slot up to ``ahead``, grown first to the pace seen so far."""
        if self.begun_since is not None:
            elapsed = max(1.0, time.monotonic() - self.begun_since)  # past the first burst
            span = 2 * (flush_interval + self.latency)
            pace = math.ceil(span * self.begun / elapsed)
            self.ahead = min(window, max(self.ahead, pace))
        want = len(self.waiters) + max(0, self.ahead - len(self.marked))
        batch: list[int] = []
        while self.to_mark and len(batch) < want:
            batch.append(self.to_mark.popleft())
        chosen = set(batch)
        for delivery_id in self.waiters:  # a waiter out of order: never left waiting
            if delivery_id not in chosen:
                self.to_mark.remove(delivery_id)
                batch.append(delivery_id)
        return batch

    def written(self, batch: list[int], seconds: float, window: int) -> None:
        """A batch is marked in the store (in ``seconds``): its waiters go on."""
        self.latency = 0.7 * self.latency + 0.3 * seconds
        self.marked.update(batch)
        for delivery_id in batch:
            waiter = self.waiters.pop(delivery_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(True)
        if self.waiters:  # a delivery took a call slot while this batch was written
            self.ahead = min(window, self.ahead * 2)
            self.wake.set()


class _Engine:
    def __init__(
        self,
        store: Store,
        info: CampaignInfo,
        config: ChannelConfig,
        channel: Channel,
        message_tag: str | None,
        settings: SendSettings,
        progress: Progress | None,
        environ: Mapping[str, str] | None,
    ) -> None:
        self.store = store
        self.info = info
        self.config = config
        self.channel = channel
        self.settings = settings
        self.progress = progress
        self.gate = RateGate(enabled=settings.limits)
        self.context = SendContext(
            campaign_id=info.id,
            automation=info.automation,
            message_tag=message_tag,
        )
        self.in_flight = max(1, settings.max_in_flight or channel.max_in_flight)
        self.window = max(self.in_flight, settings.max_unrecorded)
        self.flush_error: BaseException | None = None
        self.fatal: str | None = None
        # asyncio primitives bind to the running loop on first use (Python 3.10+)
        self.stopping = asyncio.Event()
        self.finished = asyncio.Event()
        self.wake = asyncio.Event()  # the flusher writes now
        self.db_lock = asyncio.Lock()
        self.slots = asyncio.Semaphore(self.window)  # released when an outcome is recorded
        self.calls = asyncio.Semaphore(self.in_flight)  # released when a delivery's calls are done
        self.buffer: list[DeliveryUpdate] = []
        self.marks = _Marks(ahead=self.in_flight)
        self.done = 0
        self.total = info.pending
        self.key: bytes | None = None
        self.public_url = (environ if environ is not None else os.environ).get(
            "FEEDCAST_PUBLIC_URL", "http://127.0.0.1:8080"
        )
        self.mailto = config.settings.get("unsubscribe_mailto")
        if get_format(info.format).unsubscribe_link:  # signed unsubscribe links
            self.key = signing_key(store.path, environ)
        self.environ = environ
        self.click_key: bytes | None = None  # set when the campaign's links are tracked
        self.deadline: float | None = None  # monotonic time after which no delivery starts

    async def run(self) -> None:
        calls = await asyncio.to_thread(self.store.campaign_calls, self.info.id)
        if any(ATTACH in json.dumps(call.body) for _message, call in calls):  # uploads to make, or reuse
            known = await asyncio.to_thread(self.store.provider_upload_ids, self.config.id)
            files = _StoreFiles(self.store, self.config.id, self.db_lock, known)
            self.context = replace(self.context, files=files)
        key = self.key or signing_key(self.store.path, self.environ)
        if is_tracked(calls, key):
            self.click_key = key
        if self.settings.deadline:
            self.deadline = time.monotonic() + self.settings.deadline
        async with _client(self.settings, self.in_flight) as client:
            try:
                await self.channel.open(client)
            except ChannelError as exc:
                self.fatal = str(exc)
                return
            flusher = asyncio.create_task(self._flush_loop())
            marker = asyncio.create_task(self._mark_loop())
            tasks: set[asyncio.Task[None]] = set()
            try:
                after = 0
                expired = False
                while not expired and not self.stopping.is_set():
                    async with self.db_lock:
                        chunk = await asyncio.to_thread(
                            self.store.pending_deliveries, self.info.id, after_id=after, limit=2000
                        )
                    if not chunk:
                        break
                    after = chunk[-1].id
                    for pending in chunk:
                        await self.slots.acquire()
                        if self._past_deadline():  # deliveries in progress finish
                            self.slots.release()
                            expired = True
                            break
                        task = asyncio.create_task(self._deliver(pending, calls))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                if tasks:
                    await asyncio.gather(*tasks)
            finally:
                self.finished.set()
                self.wake.set()
                self.marks.wake.set()
                await marker  # never cancelled mid-write either
                await flusher  # never cancelled mid-write: its thread would go on writing
                if self.flush_error is None:
                    await self._flush()
                    await self._unstart()
                await self.channel.close()
            if self.flush_error is not None:
                raise self.flush_error

    async def _flush_loop(self) -> None:
        while not self.finished.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.settings.flush_interval)
            self.wake.clear()
            try:
                await self._flush()
            except BaseException as exc:  # the store failed: stop sending, keep the rest pending
                self._store_failed(exc)
                return

    def _past_deadline(self) -> bool:
        """No new delivery starts: the deadline passed, or sending stops (a fatal answer,
        the store failed). A delivery whose first call went out finishes its calls unless
        sending stops."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            return True
        return self.stopping.is_set()

    def _store_failed(self, exc: BaseException) -> None:
        if self.flush_error is None:
            self.flush_error = exc
        self.stopping.set()
        for _ in range(self.window):  # whoever waits for a slot sees the stop
            self.slots.release()
        for waiter in self.marks.waiters.values():  # and whoever waits for a mark
            if not waiter.done():
                waiter.set_result(False)
        self.marks.waiters.clear()

    async def _mark_loop(self) -> None:
        """Mark deliveries as started in the store, in batches, before their first call:
        the ones waiting for it, and as many more as ``ahead`` (the next to take a call
        slot), so a delivery rarely waits. A crash then leaves every delivery that may
        have reached its recipient marked, and the rerun counts that try."""
        while True:
            await self.marks.wake.wait()
            self.marks.wake.clear()
            if self.finished.is_set() or self.flush_error is not None:
                return
            batch = self.marks.next_batch(self.window, self.settings.flush_interval)
            if not batch:
                continue
            began = time.monotonic()
            try:
                await asyncio.to_thread(self.store.start_deliveries, batch)
            except BaseException as exc:  # the store failed: nothing unmarked goes out
                self._store_failed(exc)
                return
            self.marks.written(batch, time.monotonic() - began, self.window)

    async def _started(self, delivery_id: int) -> bool:
        """Wait until the delivery is marked started in the store (False: the store failed)."""
        if delivery_id not in self.marks.marked:
            if self.flush_error is not None:
                return False
            waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            self.marks.waiters[delivery_id] = waiter
            self.marks.wake.set()
            if not await waiter:
                return False
        self.marks.marked.discard(delivery_id)
        self.marks.begun += 1
        if self.marks.begun_since is None:
            self.marks.begun_since = time.monotonic()
        if len(self.marks.marked) <= self.marks.ahead // 2 and self.marks.to_mark:
            self.marks.wake.set()  # refill ahead of need
        return True

    async def _unstart(self) -> None:
        """Deliveries marked started that stopped before any call went out (a deadline,
        a stop) are unmarked: nothing of them can have reached anyone."""
        ids = sorted(set(self.marks.unstart) | self.marks.marked)
        self.marks.unstart, self.marks.marked = [], set()
        if ids:
            async with self.db_lock:
                await asyncio.to_thread(self.store.unstart_deliveries, ids)

    async def _flush(self) -> None:
        async with self.db_lock:
            batch, self.buffer = self.buffer, []
            if not batch:
                return
            await asyncio.to_thread(self.store.record_deliveries, batch)
        self.done += len(batch)
        for _ in batch:
            self.slots.release()
        if self.progress is not None:
            self.progress(self.done, self.total)

    def _finish(self, update: DeliveryUpdate) -> None:
        self.buffer.append(update)
        if len(self.buffer) >= max(1, self.window // 2):
            self.wake.set()  # half the window waits to be written: write now

    def _recipient(self, pending: PendingDelivery) -> Recipient:
        url = None
        if self.key is not None:
            url = unsubscribe_url(self.public_url, self.key, pending.subscriber_id)
        return Recipient(
            subscriber_id=pending.subscriber_id,
            address=pending.recipient,
            name=pending.name,
            last_inbound_at=pending.last_inbound_at,
            unsubscribe_url=url,
            unsubscribe_mailto=self.mailto,
        )

    async def _deliver(self, pending: PendingDelivery, calls: Sequence[tuple[int, ProviderCall]]) -> None:
        try:
            update = self._skip(pending)
            if update is None:
                self.marks.to_mark.append(pending.id)  # in the order deliveries take a call slot
                async with self.calls:
                    # a delivery starts when it takes a call slot (up to max_unrecorded wait
                    # for one): the deadline stops the ones that have not started yet
                    if not self._past_deadline() and await self._started(pending.id):
                        update = await self._attempt(pending, calls)
                    elif pending.id in self.marks.marked:  # marked ahead, never begun
                        self.marks.marked.discard(pending.id)
                        self.marks.unstart.append(pending.id)
                    else:
                        with contextlib.suppress(ValueError):
                            self.marks.to_mark.remove(pending.id)
        except Exception as exc:  # a bug in a channel must not lose the others
            log.exception("delivery %s failed unexpectedly", pending.id)
            update = DeliveryUpdate(
                id=pending.id,
                status="failed",
                attempts=pending.attempts + 1,
                error=self.channel.error_text(exc),
                error_code="internal",
            )
        if update is None:  # stopped: stays pending, nothing to write
            self.slots.release()
            return
        self._finish(update)

    def _skip(self, pending: PendingDelivery) -> DeliveryUpdate | None:
        """The outcome of a delivery that is not attempted (no call goes out), if it is one."""
        if pending.subscriber_status != "active":
            return DeliveryUpdate(
                id=pending.id,
                status="skipped",
                attempts=pending.attempts,
                error=f"subscriber is {pending.subscriber_status}",
                error_code="subscriber",
            )
        reason = self.channel.skip_reason(self._recipient(pending), self.context)
        if reason is not None:
            return DeliveryUpdate(
                id=pending.id, status="skipped", attempts=pending.attempts, error=reason, error_code="skipped"
            )
        return None

    async def _attempt(
        self, pending: PendingDelivery, calls: Sequence[tuple[int, ProviderCall]]
    ) -> DeliveryUpdate | None:
        """Make the delivery's calls (it is marked started in the store). ``attempts``
        starts from the stored count, which includes any try a crash lost."""
        tried = _Tried(pending.attempts, self._recipient(pending))
        if self.click_key is not None:  # click tracking: this recipient's own links
            calls = personal_calls(calls, self.click_key, self.info.id, pending.subscriber_id)
        for position, (_message, call) in enumerate(calls):
            answer = await self._call(pending, call, position, tried)
            if answer is None:
                return None
            result, tries = answer
            if result.outcome is not Outcome.SENT:
                return self._unsent(pending, tried, position, result, tries)
        return DeliveryUpdate(
            id=pending.id,
            status="sent",
            attempts=tried.attempts,
            provider_message_id=tried.first_id,
            sent_at=datetime.now(UTC),
            calls_sent=len(calls),
            subscriber_id=pending.subscriber_id,
            new_recipient=tried.new_recipient,
        )

    async def _call(
        self, pending: PendingDelivery, call: ProviderCall, position: int, tried: _Tried
    ) -> tuple[Result, int] | None:
        """One call of a delivery, tried again after a transient failure (up to
        ``max_attempts``) and made again to a group that migrated: its last answer and the
        tries it took; None when sending halts before it goes out."""
        tries = 0
        while True:
            if self._halted(pending, tried.attempts):
                return None
            await self.gate.acquire(self.channel.rate_rules(tried.recipient, call))
            if self._halted(pending, tried.attempts):
                return None
            tried.attempts += 1
            tries += 1
            result = await self.channel.send(tried.recipient, call, self.context, position)
            if result.outcome is Outcome.SENT:
                tried.first_id = tried.first_id or result.message_id
                return result, tries
            if result.migrate_to and tried.new_recipient is None:
                tried.new_recipient = result.migrate_to
                tried.recipient = replace(tried.recipient, address=result.migrate_to)
                continue
            if result.outcome is not Outcome.TRANSIENT:
                return result, tries
            if result.pause_channel and result.retry_after:
                self.gate.pause(result.retry_after)
            if tries >= self.settings.max_attempts:
                return result, tries
            await asyncio.sleep(self._delay(result, tries))

    def _unsent(
        self, pending: PendingDelivery, tried: _Tried, position: int, result: Result, tries: int
    ) -> DeliveryUpdate | None:
        """The outcome of a delivery whose call at ``position`` was not sent (None: it
        stays pending)."""
        common: dict[str, Any] = {
            "id": pending.id,
            "attempts": tried.attempts,
            "error": result.error,
            "error_code": result.code,
            "provider_message_id": tried.first_id,
            "calls_sent": position,
            "subscriber_id": pending.subscriber_id,
            "new_recipient": tried.new_recipient,
        }
        if result.outcome is Outcome.TRANSIENT:
            common["error"] = f"gave up after {tries} attempts: {result.error}"
            return DeliveryUpdate(status="failed", **common)
        if result.outcome is Outcome.FATAL:
            if self.fatal is None:
                self.fatal = f"channel {self.config.name!r}: {result.error}"
            self.stopping.set()
            return None  # stays pending and marked: its earlier calls may have gone out
        if result.outcome is Outcome.SKIPPED:
            return DeliveryUpdate(status="skipped", **common)
        if result.outcome is Outcome.RECIPIENT:
            status = _STATUS_OF.get(result.subscriber_status or "", "unreachable")
            return DeliveryUpdate(status="failed", subscriber_status=status, **common)
        return DeliveryUpdate(status="failed", **common)  # CONTENT: never retried as is

    def _halted(self, pending: PendingDelivery, attempts: int) -> bool:
        """Whether the next call must not go out: before the first one, a deadline or a
        stop (the delivery stays pending and is unmarked: nothing of it went out); after,
        only a stop (a fatal answer, the store failed; it stays pending and marked)."""
        if attempts == pending.attempts:
            if self._past_deadline():
                self.marks.unstart.append(pending.id)
                return True
            return False
        return self.stopping.is_set()

    def _delay(self, result: Result, tries: int) -> float:
        if result.pause_channel:
            return 0.0  # the gate holds every sender for retry_after
        if result.retry_after is not None:
            return result.retry_after
        base = min(self.settings.backoff_cap, self.settings.backoff * 2.0 ** (tries - 1))
        return base * (0.5 + _RNG.random() / 2)
