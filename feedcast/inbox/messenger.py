"""Messenger webhook events: record them, keep the audience true, answer the person.

:func:`handle_events` takes the JSON body of one webhook POST (``{"object": "page",
"entry": [{"messaging": [...]}]}``, already verified by :mod:`feedcast.web.messenger`)
and, event by event:

- records it with :meth:`Store.record_inbound`, keyed by the message's ``mid`` (a
  postback without one: ``sender:timestamp:payload``; a referral or an opt-in:
  ``sender:timestamp:referral:ref``), so an event Meta delivers twice is processed once;
  recording refreshes a subscriber's 24-hour window (``last_inbound_at``), and a person
  who subscribes gets the event's time as theirs;
- acts on it:

  ==========================================  ==============================================
  the Get Started postback (``GET_STARTED``)  the presentation reply (and, when the
                                              conversation was opened by an m.me link with
                                              ``?ref=TAG``, a subscription to TAG + welcome)
  ``subscribe``, ``start``, ``/start``;       subscribe + welcome
  payload ``SUBSCRIBE`` (``SUBSCRIBE:TAG``)
  a referral or an opt-in with ``ref=TAG``    subscribe with tag TAG + welcome
  ``stop``, ``unsubscribe``, ``/stop``;       unsubscribe + goodbye
  payload ``UNSUBSCRIBE``
  anything else a person sends                the default reply
  ==========================================  ==============================================

- a tag (``ref=TAG``, ``SUBSCRIBE:TAG``) counts only when the audience is public
  (``feedcast audience public TAG``): anyone can write any ref, and an internal audience
  is not theirs to join; otherwise the person subscribes without it;
- answers through the channel (:func:`feedcast.delivery.make_channel`) with the channel's
  replies (:func:`feedcast.replies.reply_text`; a reply turned off is not sent), as
  ``messaging_type: RESPONSE`` (they answer the person, inside the window), with quick
  replies *Subscribe* or *Unsubscribe* (whichever the person can do next).

What is not recorded: the page's own messages coming back (``message.is_echo``),
delivery and read receipts, reactions and hand-over events. They are not the person's
actions (they do not open the window) and would only multiply the rows of ``inbound``.

One event that cannot be handled (a malformed event, a bug) is logged, its action
says ``failed: ...``, and the others go on; a reply that cannot be sent is logged (the
subscription still changed).

Through the webhook (:mod:`feedcast.web.messenger`) an event is first kept in the
spool (:func:`spool_events` splits a body into one-event bodies keyed like the store),
then recorded as ``pending`` (:func:`inbound_record`) and processed from that row
(:func:`process_pending`): an event's decision and its ``action`` commit together, so
a crash either left it pending (it is processed after the restart) or processed (it is
not processed again). Its replies are sent after that commit: a crash in between
loses them rather than sending them twice.
Plain Python: no Prefect, no SQL.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from channels.base import REDACTOR, Outcome, Recipient, SendContext, one_line
from feedcast.delivery import SendSettings, _client, make_channel
from feedcast.kernel.errors import ChannelError, InvalidValue, NotFound, StoreError
from feedcast.kernel.models import ChannelConfig, InboundEvent, NewInbound, ProviderCall, Subscriber
from feedcast.replies import reply_calls, reply_text
from feedcast.store import Store
from feedcast.store.inbound import PENDING

__all__ = [
    "Decided",
    "Event",
    "Handled",
    "InboxOptions",
    "decide_pending",
    "handle_events",
    "inbound_record",
    "parse_events",
    "process_pending",
    "send_replies",
    "spool_events",
]

log = logging.getLogger(__name__)

# a tag from an m.me ref or a payload: what a marketer would type as an audience
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


@dataclass(frozen=True, slots=True)
class InboxOptions:
    """What a person says or taps to subscribe and leave (matched without case)."""

    get_started: str = "GET_STARTED"
    subscribe_words: frozenset[str] = frozenset({"subscribe", "start", "/start"})
    unsubscribe_words: frozenset[str] = frozenset({"unsubscribe", "stop", "/stop"})
    subscribe_payload: str = "SUBSCRIBE"
    unsubscribe_payload: str = "UNSUBSCRIBE"
    quick_replies: bool = True  # offer Subscribe / Unsubscribe under the replies


@dataclass(frozen=True, slots=True)
class Event:
    """One person's action from a webhook body."""

    sender: str  # the PSID
    kind: str  # message | quick_reply | postback | referral | optin
    provider_id: str  # the mid, or a stable id built from the event
    at: datetime
    text: str | None = None
    payload: str | None = None  # a postback's or quick reply's payload
    ref: str | None = None  # an m.me link's or an opt-in's ref
    raw: Mapping[str, Any] = field(default_factory=dict)

    def row(self, channel: str) -> NewInbound:
        """The ``inbound`` row of this event on ``channel``."""
        return NewInbound(
            channel,
            sender=self.sender,
            kind=self.kind,
            provider_id=self.provider_id,
            payload=self.raw,
            text=self.text,
            received_at=self.at,
        )


@dataclass(frozen=True, slots=True)
class Handled:
    """What :func:`handle_events` did with one event."""

    sender: str
    kind: str
    provider_id: str
    # presentation | subscribed | resubscribed | already | unsubscribed | not subscribed
    # | default | ignored | duplicate | failed
    action: str
    inbound_id: int | None = None
    replies: tuple[str, ...] = ()  # the reply kinds sent (or attempted)
    error: str | None = None


@dataclass(slots=True)
class _Reply:
    psid: str
    kind: str
    calls: list[ProviderCall]
    subscriber_id: int
    at: datetime


# --------------------------------------------------------------------------- parsing


def parse_events(body: Any) -> list[Event]:
    """The person actions of a webhook body, in order; everything else is left out
    (echoes, receipts, other objects than ``page``, events without a PSID)."""
    if not isinstance(body, Mapping) or body.get("object") != "page":
        return []
    events: list[Event] = []
    for entry in _list(body.get("entry")):
        if not isinstance(entry, Mapping):
            continue
        for raw in _list(entry.get("messaging")):
            if isinstance(raw, Mapping):
                event = _event(raw)
                if event is not None:
                    events.append(event)
    return events


def spool_events(body: Any) -> list[tuple[str, dict[str, Any]]]:
    """The person actions of a webhook body, each as (its id, a body holding only it:
    ``{"object": "page", "entry": [{"id", "time", "messaging": [event]}]}``), in order.
    The id is the one :meth:`Store.record_inbound` de-duplicates on (the ``mid``, else
    built from the sender, the timestamp and the payload or ref)."""
    if not isinstance(body, Mapping) or body.get("object") != "page":
        return []
    kept: list[tuple[str, dict[str, Any]]] = []
    for entry in _list(body.get("entry")):
        if not isinstance(entry, Mapping):
            continue
        for raw in _list(entry.get("messaging")):
            if not isinstance(raw, Mapping):
                continue
            event = _event(raw)
            if event is not None:
                one = {"id": entry.get("id"), "time": entry.get("time"), "messaging": [raw]}
                kept.append((event.provider_id, {"object": "page", "entry": [one]}))
    return kept


def inbound_record(channel: str, body: Any) -> NewInbound | None:
    """The ``inbound`` row of a one-event body from :func:`spool_events` (None when it
    holds no person action)."""
    events = parse_events(body)
    if not events:
        return None
    return events[0].row(channel)


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _when(raw: Mapping[str, Any]) -> tuple[datetime, str]:
    """The event's time (never later than now) and its timestamp as given."""
    now = datetime.now(UTC)
    stamp = raw.get("timestamp")
    if isinstance(stamp, int | float) and not isinstance(stamp, bool):
        try:
            return min(datetime.fromtimestamp(stamp / 1000, UTC), now), str(int(stamp))
        except (OverflowError, OSError, ValueError):
            pass
    return now, str(stamp)


def _event(raw: Mapping[str, Any]) -> Event | None:
    sender_obj = raw.get("sender")
    sender = _str(sender_obj.get("id")) if isinstance(sender_obj, Mapping) else None
    if sender is None:  # e.g. a checkbox plugin opt-in (user_ref only): nobody to answer
        return None
    at, stamp = _when(raw)
    message = raw.get("message")
    if isinstance(message, Mapping):
        if message.get("is_echo"):
            return None
        quick = message.get("quick_reply")
        payload = _str(quick.get("payload")) if isinstance(quick, Mapping) else None
        mid = _str(message.get("mid"))
        return Event(
            sender=sender,
            kind="quick_reply" if payload is not None else "message",
            provider_id=mid or f"{sender}:{stamp}:message",
            at=at,
            text=_str(message.get("text")),
            payload=payload,
            raw=raw,
        )
    postback = raw.get("postback")
    if isinstance(postback, Mapping):
        payload = _str(postback.get("payload"))
        referral = postback.get("referral")
        return Event(
            sender=sender,
            kind="postback",
            provider_id=_str(postback.get("mid")) or f"{sender}:{stamp}:{payload}",
            at=at,
            text=_str(postback.get("title")),
            payload=payload,
            ref=_str(referral.get("ref")) if isinstance(referral, Mapping) else None,
            raw=raw,
        )
    for kind in ("referral", "optin"):
        detail = raw.get(kind)
        if isinstance(detail, Mapping):
            ref = _str(detail.get("ref"))
            return Event(
                sender=sender,
                kind=kind,
                provider_id=f"{sender}:{stamp}:{kind}:{ref}",
                at=at,
                ref=ref,
                raw=raw,
            )
    return None  # delivery, read, reaction, hand-over...


# --------------------------------------------------------------------------- handling


def _tag(ref: str | None) -> str | None:
    if ref is None:
        return None
    ref = ref.strip()
    if _TAG.fullmatch(ref):
        return ref
    log.info("messenger: ref %r is not a usable tag; subscribing without one", one_line(ref, 80))
    return None


def _intent(event: Event, options: InboxOptions) -> tuple[str, str | None]:
    """(what the person asks for, the tag): get_started | subscribe | unsubscribe |
    default | ignored."""
    if event.kind in ("referral", "optin"):
        return ("subscribe", _tag(event.ref)) if event.ref or event.kind == "optin" else ("ignored", None)
    payload = (event.payload or "").strip()
    if event.kind == "postback" and payload == options.get_started:
        return "get_started", _tag(event.ref)
    if payload:
        head, _, tag = payload.partition(":")
        if head == options.subscribe_payload:
            return "subscribe", _tag(tag or event.ref)
        if head == options.unsubscribe_payload and not tag:
            return "unsubscribe", None
    words = " ".join((event.text or "").split()).casefold() if event.kind != "postback" else ""
    if words in options.subscribe_words:
        return "subscribe", None
    if words in options.unsubscribe_words:
        return "unsubscribe", None
    return "default", None


def handle_events(
    store: Store,
    channel: str,
    body: Any,
    *,
    environ: Mapping[str, str] | None = None,
    options: InboxOptions | None = None,
) -> list[Handled]:
    """Record and act on every person action of one webhook body, then send the
    replies (see the module's docstring). Returns what was done, event by event."""
    options = options or InboxOptions()
    config = _messenger(store, channel)
    handled: list[Handled] = []
    replies: list[_Reply] = []
    for event in parse_events(body):
        try:
            with store.atomic():  # recorded and decided together, or neither
                inbound_id = store.record_inbound_event(event.row(channel), action=PENDING)
                if inbound_id is None:
                    handled.append(Handled(event.sender, event.kind, event.provider_id, "duplicate"))
                    continue
                outcome, queued = _decide(store, channel, event, options, inbound_id)
        except StoreError:
            raise
        except Exception as exc:  # one bad event never stops the others
            failed = _failed(event, exc, channel)
            store.record_inbound_event(event.row(channel), action=f"failed: {failed.error}"[:500])
            handled.append(failed)
            continue
        replies.extend(queued)
        handled.append(outcome)
    if replies:
        asyncio.run(_send(config, replies, environ))
    return handled


@dataclass(slots=True)
class Decided:
    """What :func:`decide_pending` did: the events handled, the replies to send, and
    the store error that stopped it (the rest stays pending)."""

    handled: list[Handled] = field(default_factory=list)
    replies: list[_Reply] = field(default_factory=list)
    error: StoreError | None = None


def decide_pending(
    store: Store,
    channel: str,
    events: Sequence[InboundEvent],
    *,
    options: InboxOptions | None = None,
) -> Decided:
    """Decide recorded events still ``pending`` (:meth:`Store.pending_inbound`), in
    order, each with its action in one transaction; nothing is sent here. An event
    processed meanwhile (by another process) is left alone; a store error (a busy
    file) stops there."""
    options = options or InboxOptions()
    decided = Decided()
    for row in events:
        event = _event(row.payload)
        try:
            with store.atomic():
                if store.inbound_action(row.id) != PENDING:
                    continue
                if event is None:
                    store.set_inbound_action(row.id, "ignored")
                    decided.handled.append(
                        Handled(row.sender, row.kind, row.provider_id or "", "ignored", row.id)
                    )
                    continue
                outcome, queued = _decide(store, channel, event, options, row.id)
        except StoreError as exc:
            decided.error = exc
            break
        except Exception as exc:  # one bad event never stops the others
            failed = _failed(event or _unparsed(row), exc, channel)
            store.set_inbound_action(row.id, f"failed: {failed.error}"[:500])
            decided.handled.append(
                Handled(failed.sender, failed.kind, failed.provider_id, "failed", row.id, error=failed.error)
            )
            continue
        decided.replies.extend(queued)
        decided.handled.append(outcome)
    return decided


def send_replies(
    store: Store, channel: str, replies: Sequence[_Reply], environ: Mapping[str, str] | None = None
) -> None:
    """Send the replies :func:`decide_pending` queued (failures are logged)."""
    if replies:
        asyncio.run(_send(_messenger(store, channel), replies, environ))


def process_pending(
    store: Store,
    channel: str,
    events: Sequence[InboundEvent],
    *,
    environ: Mapping[str, str] | None = None,
    options: InboxOptions | None = None,
) -> list[Handled]:
    """:func:`decide_pending`, then :func:`send_replies`; a store error is raised
    once the replies of what was decided are sent."""
    _messenger(store, channel)
    decided = decide_pending(store, channel, events, options=options)
    send_replies(store, channel, decided.replies, environ)
    if decided.error is not None:
        raise decided.error
    return decided.handled


def _messenger(store: Store, channel: str) -> ChannelConfig:
    config = store.get_channel(channel)
    if config.kind != "messenger":
        raise InvalidValue(f"channel {channel!r} is a {config.kind} channel, not messenger")
    return config


def _unparsed(row: InboundEvent) -> Event:
    return Event(row.sender, row.kind, row.provider_id or "", row.received_at, raw=row.payload)


def _failed(event: Event, exc: Exception, channel: str) -> Handled:
    error = one_line(REDACTOR.scrub(f"{type(exc).__name__}: {exc}"))
    log.error("messenger %s: event %s of %s failed: %s", channel, event.kind, event.sender, error)
    return Handled(event.sender, event.kind, event.provider_id, "failed", error=error)


def _decide(
    store: Store, channel: str, event: Event, options: InboxOptions, inbound_id: int
) -> tuple[Handled, list[_Reply]]:
    """Change the subscription a recorded event asks for and set its action (inside
    the caller's :meth:`Store.atomic`); the replies it calls for."""
    intent, tag = _intent(event, options)
    if tag is not None and not store.is_public_audience(tag):
        log.info("messenger %s: %s is not a public audience; subscribing without it", channel, tag)
        tag = None
    wanted: list[tuple[str, str | None]] = []
    detail = f"messenger {event.kind}" + (f" ref={tag}" if tag else "")
    if intent == "get_started":
        action = "presentation"
        wanted.append(("presentation", None))
        if tag is not None:
            _, action = store.subscribe(
                channel, event.sender, tags=[tag], source="bot", detail=detail, last_inbound_at=event.at
            )
            wanted.append(("welcome", tag))
    elif intent == "subscribe":
        _, action = store.subscribe(
            channel,
            event.sender,
            tags=[tag] if tag else (),
            source="bot",
            detail=detail,
            last_inbound_at=event.at,
        )
        wanted.append(("welcome", tag))
    elif intent == "unsubscribe":
        left = store.unsubscribe(channel, event.sender, source="bot", detail=detail)
        action = "unsubscribed" if left else "not subscribed"
        wanted.append(("goodbye", None))
    elif intent == "default":
        action = "default"
        wanted.append(("default", None))
    else:
        action = "ignored"
    store.set_inbound_action(inbound_id, action)
    queued = [r for kind, tag in wanted if (r := _reply(store, channel, event, kind, tag, options))]
    outcome = Handled(
        event.sender, event.kind, event.provider_id, action, inbound_id, tuple(r.kind for r in queued)
    )
    return outcome, queued


def _subscriber(store: Store, channel: str, psid: str) -> Subscriber | None:
    try:
        return store.get_subscriber(channel, psid)
    except NotFound:
        return None


def _reply(
    store: Store, channel: str, event: Event, kind: str, tag: str | None, options: InboxOptions
) -> _Reply | None:
    """The calls of one reply, or None when the channel turned it off."""
    sub = _subscriber(store, channel, event.sender)
    text = reply_text(store, channel, kind, name=sub.name if sub else None, audience=tag)
    if text is None:
        return None
    calls = [
        ProviderCall(call.method, {**call.body, "messaging_type": "RESPONSE"})
        for call in reply_calls(text, "messenger")
    ]
    if options.quick_replies and calls:
        active = sub is not None and sub.status == "active"
        calls[-1] = _with_quick_reply(calls[-1], options, subscribed=active)
    return _Reply(event.sender, kind, calls, sub.id if sub else 0, event.at)


def _with_quick_reply(call: ProviderCall, options: InboxOptions, *, subscribed: bool) -> ProviderCall:
    """The call with one quick reply: Unsubscribe for a subscriber, else Subscribe."""
    message = call.body.get("message")
    if not isinstance(message, Mapping) or "text" not in message or "quick_replies" in message:
        return call
    title, payload = (
        ("Unsubscribe", options.unsubscribe_payload)
        if subscribed
        else ("Subscribe", options.subscribe_payload)
    )
    quick = [{"content_type": "text", "title": title, "payload": payload}]
    return ProviderCall(call.method, {**call.body, "message": {**message, "quick_replies": quick}})


async def _send(config: ChannelConfig, replies: Sequence[_Reply], environ: Mapping[str, str] | None) -> None:
    channel = make_channel(config, environ)
    async with _client(SendSettings(timeout=15.0), 4) as client:
        try:
            await channel.open(client)
        except ChannelError as exc:
            log.warning("messenger %s: cannot answer anyone: %s", config.name, channel.error_text(exc))
            return
        try:
            for reply in replies:
                recipient = Recipient(
                    subscriber_id=reply.subscriber_id, address=reply.psid, last_inbound_at=reply.at
                )
                for position, call in enumerate(reply.calls):
                    result = await channel.send(recipient, call, SendContext(campaign_id=0), position)
                    if result.outcome is not Outcome.SENT:
                        log.warning(
                            "messenger %s: the %s reply to %s was not sent (%s %s): %s",
                            config.name,
                            reply.kind,
                            reply.psid,
                            result.outcome,
                            result.code,
                            result.error,
                        )
                        break
                else:
                    log.info("messenger %s: %s reply sent to %s", config.name, reply.kind, reply.psid)
        finally:
            await channel.close()
