"""Telegram's inbox: what a bot does when people write to it, block it or add it to a chat.

Updates come from ``getUpdates`` long polling (:func:`poll`, which ``feedcast inbox`` and
the Prefect flow ``inbox`` run) or from Telegram's webhook (``feedcast web``, see
:mod:`feedcast.web.telegram`); both hand each update to :func:`process_update`:

1. the update is recorded (:meth:`Store.record_inbound`, keyed on its ``update_id``): an
   update seen before is skipped, so re-reading a batch after a crash does nothing twice;
2. :func:`handle_update` changes the audience and says what to answer:

   ================================================  ===========================================
   update                                            what happens
   ================================================  ===========================================
   ``/start [payload]`` in a private chat            subscribe (the payload, a deep link's
                                                     ``[A-Za-z0-9_-]{1,64}``, becomes a tag
                                                     when that audience is public); the
                                                     welcome reply
   ``/stop``                                         unsubscribe; the goodbye reply
   any other message in a private chat               the default reply
   the first message ever from a chat                the presentation reply first (no
                                                     subscriber row yet)
   ``my_chat_member`` kicked (the person blocked     unsubscribe (source ``bot``, detail
   the bot)                                          ``blocked the bot``); nothing is sent
   ``my_chat_member`` member (unblocked)             resubscribe only who left *by blocking*
                                                     (someone who sent /stop first stays out);
                                                     nothing is sent: the "Restart" button
                                                     also sends /start, which welcomes them
   the bot made administrator / member of a group,   subscribe that chat (tag ``channel`` or
   supergroup or channel                             ``group``, its title as name)
   the bot removed (left / kicked) from one          unsubscribe that chat
   a group upgraded to a supergroup                  the subscriber's chat id follows it
   anything else (messages in groups, edits...)      recorded only
   ================================================  ===========================================

   Replies are the channel's templates (:func:`feedcast.replies.reply_text`); a reply
   turned off sends nothing;
3. the replies are sent through the channel (a reply that fails is logged; a person who
   blocked the bot meanwhile is marked as the campaign engine would).

The offset (``telegram.offset`` in the channel's state) moves past a batch only once it
is processed: a crash re-reads rather than loses updates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from channels.base import Outcome, Recipient, Result, SendContext, one_line
from channels.telegram import TelegramChannel
from feedcast.audience import subscriber_locale
from feedcast.kernel.errors import ChannelError, FeedcastError, InvalidValue, NotFound, StoreError
from feedcast.kernel.models import InboundEvent, NewInbound, ProviderCall, Subscriber
from feedcast.replies import reply_calls, reply_text
from feedcast.store import Store
from feedcast.store.inbound import PENDING
from feedcast.tokens import sign

__all__ = [
    "ALLOWED_UPDATES",
    "OFFSET_KEY",
    "Handled",
    "PollSummary",
    "handle_pending",
    "handle_update",
    "inbound_record",
    "open_channel",
    "poll",
    "poll_channels",
    "process_update",
    "send_replies",
    "stored_offset",
    "telegram_channels",
    "update_webhook",
    "webhook_secret",
]

log = logging.getLogger(__name__)

OFFSET_KEY = "telegram.offset"
ALLOWED_UPDATES = ("message", "my_chat_member")
PAYLOAD = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what a t.me/bot?start=... deep link may carry
_COMMAND = re.compile(r"/([A-Za-z0-9_]{1,32})(?:@([A-Za-z0-9_]{1,64}))?(?=\s|$)")
_RETRIES = 2  # more tries for a reply that met a transient error
_RETRY_CAP = 5.0  # seconds: a reply is not worth a longer wait


def webhook_secret(key: bytes, channel: str) -> str:
    """The ``secret_token`` of a channel's webhook: an HMAC of its name (Telegram allows
    ``A-Z a-z 0-9 _ -`` only, so the MAC part of :func:`feedcast.tokens.sign`)."""
    return sign(key, "telegram-webhook", channel).rpartition(".")[2]


@dataclass(slots=True)
class Handled:
    """One update: what was done and what to send to whom."""

    update_id: int | None
    chat: str | None = None
    event: str = "ignored"  # /start, /stop, message, blocked, unblocked, added, removed, ...
    action: str = "ignored"  # subscribed, resubscribed, already, unsubscribed, replied, duplicate...
    sends: list[tuple[str, list[ProviderCall]]] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)  # the reply kinds, in order
    sent: int = 0  # calls the provider accepted
    failed: int = 0
    inbound_id: int | None = None

    def line(self) -> str:
        """One line for a terminal or a log."""
        who = f"chat {self.chat}" if self.chat is not None else "no chat"
        parts = [f"update {self.update_id}", who, f"{self.event}: {self.action}"]
        if self.replies:
            parts.append("replied " + ", ".join(self.replies))
        if self.failed:
            parts.append(f"{self.failed} reply call(s) failed")
        return "  ".join(parts)


@dataclass(slots=True)
class PollSummary:
    channel: str
    batches: int = 0
    updates: int = 0
    duplicates: int = 0
    subscribed: int = 0  # subscribed or resubscribed
    unsubscribed: int = 0
    replies: int = 0  # reply calls accepted
    errors: int = 0  # updates whose handling failed, replies that failed
    offset: int | None = None

    def count(self, handled: Handled) -> None:
        self.updates += 1
        if handled.action == "duplicate":
            self.duplicates += 1
        elif handled.action.startswith(("subscribed", "resubscribed")):
            self.subscribed += 1
        elif handled.action.startswith("unsubscribed"):
            self.unsubscribed += 1
        elif handled.action.startswith("error"):
            self.errors += 1
        self.replies += handled.sent
        self.errors += handled.failed


# --------------------------------------------------------------------------- deciding


def _subscriber(store: Store, channel: str, chat: str) -> Subscriber | None:
    try:
        return store.get_subscriber(channel, chat)
    except NotFound:
        return None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _when(value: object) -> datetime:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(value, UTC)
    return datetime.now(UTC)


def _command(message: Mapping[str, Any], bot_username: str | None) -> tuple[str, str] | None:
    """``("start", "payload")`` for a command addressed to this bot, else None."""
    text = message.get("text")
    if not isinstance(text, str):
        return None
    match = _COMMAND.match(text)
    if match is None:
        return None
    target = match.group(2)
    if target and bot_username and target.lower() != bot_username.lstrip("@").lower():
        return None  # /start@another_bot in a group: not ours
    return match.group(1).lower(), text[match.end() :].strip()


def _reply(
    handled: Handled,
    store: Store,
    channel: str,
    kind: str,
    fmt: str,
    *,
    name: str | None,
    audience: str | None,
) -> None:
    text = reply_text(store, channel, kind, name=name, audience=audience)
    if text is None or handled.chat is None:
        return  # turned off
    handled.sends.append((handled.chat, reply_calls(text, fmt)))
    handled.replies.append(kind)


def inbound_record(
    channel: str, update: Mapping[str, Any], *, bot_username: str | None = None
) -> NewInbound | None:
    """The ``inbound`` row of one update (None when it is not recorded: no
    ``update_id``, or a message without a chat)."""
    return _record(channel, update, bot_username)[1]


def _record(
    channel: str, update: Mapping[str, Any], bot_username: str | None
) -> tuple[str | None, NewInbound | None]:
    """(why it is not recorded, None) or (None, its row)."""
    raw_id = update.get("update_id")
    if not isinstance(raw_id, int) or isinstance(raw_id, bool):
        return "ignored: no update_id", None
    message = update.get("message")
    member = update.get("my_chat_member")
    body = message if isinstance(message, Mapping) else member if isinstance(member, Mapping) else None
    if body is None:
        kind = next((k for k in update if k != "update_id"), "unknown")
        return None, NewInbound(channel, "", kind, str(raw_id), payload=update)
    chat_id = _mapping(body.get("chat")).get("id")
    if not isinstance(chat_id, int) or isinstance(chat_id, bool):
        return "ignored: no chat", None
    command = _command(body, bot_username) if message is not None else None
    text = body.get("text") if isinstance(body.get("text"), str) else body.get("caption")
    return None, NewInbound(
        channel,
        sender=str(chat_id),
        kind="member" if member is not None else "command" if command else "message",
        provider_id=str(raw_id),
        payload=update,
        text=text if isinstance(text, str) else None,
        received_at=_when(body.get("date")),
        locale=_language(_mapping(body.get("from")))
        if _mapping(body.get("chat")).get("type") == "private"
        else None,
    )


def _language(person: Mapping[str, Any]) -> str | None:
    """The language of a person's Telegram app (``language_code``), when it is one we know."""
    code = person.get("language_code")
    return subscriber_locale(code, strict=False) if isinstance(code, str) else None


def handle_update(
    store: Store,
    channel: str,
    update: Mapping[str, Any],
    *,
    fmt: str = "telegram",
    bot_username: str | None = None,
) -> Handled:
    """Record one update and change the audience; returns what to send (nothing sent
    here). A duplicate ``update_id`` gives action ``duplicate`` and changes nothing.
    The record and the change commit together: a crash leaves neither or both."""
    with store.atomic():
        return _handle_update(store, channel, update, fmt=fmt, bot_username=bot_username)


def handle_pending(
    store: Store,
    event: InboundEvent,
    *,
    fmt: str = "telegram",
    bot_username: str | None = None,
) -> Handled:
    """Change the audience for an update recorded as ``pending`` (the webhook's way:
    :meth:`Store.pending_inbound`), and set its action, together; action ``duplicate``
    when it was processed meanwhile."""
    with store.atomic():
        if store.inbound_action(event.id) != PENDING:
            raw = event.payload.get("update_id")
            return Handled(raw if isinstance(raw, int) else None, event.sender or None, "update", "duplicate")
        return _handle_update(
            store, event.channel, event.payload, fmt=fmt, bot_username=bot_username, recorded=event.id
        )


def _handle_update(
    store: Store,
    channel: str,
    update: Mapping[str, Any],
    *,
    fmt: str,
    bot_username: str | None,
    recorded: int | None = None,
) -> Handled:
    raw_id = update.get("update_id")
    handled = Handled(raw_id if isinstance(raw_id, int) and not isinstance(raw_id, bool) else None)
    reason, row = _record(channel, update, bot_username)
    if row is None:
        handled.action = reason or "ignored"
        if recorded is not None:
            store.set_inbound_action(recorded, handled.action)
        return handled
    inbound = store.record_inbound_event(row, action=PENDING) if recorded is None else recorded
    handled.inbound_id = inbound
    message = update.get("message")
    member = update.get("my_chat_member")
    body = message if isinstance(message, Mapping) else member if isinstance(member, Mapping) else None
    if body is None:
        handled.event, handled.action = row.kind, "duplicate" if inbound is None else "ignored"
        if inbound is not None:
            store.set_inbound_action(inbound, "ignored")
        return handled
    if inbound is None:
        handled.chat = row.sender
        handled.event, handled.action = "update", "duplicate"
        return handled
    handled.chat = row.sender
    chat = _mapping(body.get("chat"))
    chat_type = str(chat.get("type") or "private")
    person = _mapping(body.get("from"))
    first_name = person.get("first_name") if isinstance(person.get("first_name"), str) else None
    command = _command(body, bot_username) if message is not None else None
    if member is not None:
        _member(handled, store, channel, member, chat_type)
    elif chat_type == "private":
        _private(handled, store, channel, command, fmt, first_name, _language(person))
    else:
        _group_message(handled, store, channel, body)
    store.set_inbound_action(inbound, handled.action)
    return handled


def _private(
    handled: Handled,
    store: Store,
    channel: str,
    command: tuple[str, str] | None,
    fmt: str,
    name: str | None,
    locale: str | None = None,
) -> None:
    """A person writing to the bot. First contact (no subscriber row yet: ``/start``
    creating one says so) gets the presentation before anything else. ``locale``: the
    language their Telegram app is in, kept on the subscriber."""
    chat = handled.chat
    assert chat is not None
    if command is not None and command[0] == "start":
        payload = command[1]
        shaped = PAYLOAD.fullmatch(payload) is not None
        public = shaped and store.is_public_audience(payload)
        tag = payload if public else None
        handled.event = f"/start {payload}".strip()
        detail = f"/start {tag}" if tag else "/start"
        _sub, outcome = store.subscribe(
            channel, chat, tags=[tag] if tag else [], name=name, source="bot", detail=detail, locale=locale
        )
        handled.action = outcome + (f" (tag {tag})" if tag else "")
        if payload and not shaped:
            handled.action += " (payload ignored: not a deep-link payload)"
        elif payload and not public:
            handled.action += " (payload ignored: not a public audience)"
        if outcome == "subscribed":
            _reply(handled, store, channel, "presentation", fmt, name=name, audience=None)
        _reply(handled, store, channel, "welcome", fmt, name=name, audience=tag)
        return
    if _subscriber(store, channel, chat) is None:
        _reply(handled, store, channel, "presentation", fmt, name=name, audience=None)
    if command is not None and command[0] == "stop":
        handled.event = "/stop"
        left = store.unsubscribe(channel, chat, source="bot", detail="/stop")
        handled.action = "unsubscribed" if left else "not subscribed"
        _reply(handled, store, channel, "goodbye", fmt, name=name, audience=None)
    else:
        handled.event = f"/{command[0]}" if command is not None else "message"
        handled.action = "replied"
        _reply(handled, store, channel, "default", fmt, name=name, audience=None)
    if not handled.replies and handled.action == "replied":
        handled.action = "recorded (replies off)"


def _status(member: Mapping[str, Any]) -> str:
    new = member.get("new_chat_member")
    status = new.get("status") if isinstance(new, Mapping) else None
    if status == "restricted" and isinstance(new, Mapping):
        return "member" if new.get("is_member") and new.get("can_send_messages", True) else "left"
    return str(status or "")


def _member(
    handled: Handled,
    store: Store,
    channel: str,
    member: Mapping[str, Any],
    chat_type: str,
) -> None:
    chat = handled.chat
    assert chat is not None
    status = _status(member)
    if chat_type == "private":
        if status == "kicked":
            handled.event = "blocked the bot"
            left = store.unsubscribe(channel, chat, source="bot", detail="blocked the bot")
            handled.action = "unsubscribed" if left else "not subscribed"
        elif status == "member":
            handled.event = "unblocked the bot"
            known = _subscriber(store, channel, chat)
            reason = (known.status_reason or "").lower() if known is not None else ""
            if known is not None and known.status == "unsubscribed" and "blocked" in reason:
                _sub, outcome = store.subscribe(channel, chat, source="bot", detail="unblocked the bot")
                handled.action = outcome
            else:
                handled.action = "nothing to do (waits for /start)"
        else:
            handled.event, handled.action = f"status {status}", "ignored"
        return
    title = _mapping(member.get("chat")).get("title")
    tag = "channel" if chat_type == "channel" else "group"
    if status in ("administrator", "member", "creator"):
        handled.event = f"bot added to the {chat_type} as {status}"
        _sub, outcome = store.subscribe(
            channel,
            chat,
            tags=[tag],
            name=title if isinstance(title, str) else None,
            source="bot",
            detail=f"bot added to the {chat_type}",
        )
        handled.action = f"{outcome} (tag {tag})"
    elif status in ("left", "kicked"):
        handled.event = f"bot removed from the {chat_type}"
        left = store.unsubscribe(channel, chat, source="bot", detail=f"bot removed from the {chat_type}")
        handled.action = "unsubscribed" if left else "not subscribed"
    else:
        handled.event, handled.action = f"status {status} in the {chat_type}", "ignored"


def _group_message(handled: Handled, store: Store, channel: str, message: Mapping[str, Any]) -> None:
    """Messages in groups are recorded, never answered; an upgrade to a supergroup moves
    the subscriber to the new chat id."""
    handled.event = "group message"
    handled.action = "recorded"
    migrate_to = message.get("migrate_to_chat_id")
    if isinstance(migrate_to, int) and not isinstance(migrate_to, bool):
        known = _subscriber(store, channel, str(handled.chat))
        if known is not None:
            store.migrate_recipient(known.id, str(migrate_to))
            handled.event, handled.action = "group upgraded", f"moved to {migrate_to}"


# --------------------------------------------------------------------------- sending


async def send_replies(store: Store, channel: TelegramChannel, handled: Handled) -> None:
    """Send what :func:`handle_update` decided, in order; one failure stops that chat's
    remaining replies, never the caller."""
    for chat, calls in handled.sends:
        recipient = Recipient(subscriber_id=0, address=chat)
        for position, call in enumerate(calls):
            result = await _send(channel, recipient, call, position)
            if result.outcome is Outcome.SENT:
                handled.sent += 1
                continue
            handled.failed += 1
            log.warning(
                "telegram channel %r: reply to %s failed (%s: %s)",
                channel.name,
                chat,
                result.code,
                result.error,
            )
            if result.outcome is Outcome.RECIPIENT and result.subscriber_status:
                _mark(store, channel.name, chat, result)
            if result.outcome is Outcome.FATAL:
                raise ChannelError(f"telegram channel {channel.name!r}: {result.error}")
            break


async def _send(channel: TelegramChannel, recipient: Recipient, call: ProviderCall, position: int) -> Result:
    result = await channel.send(recipient, call, SendContext(campaign_id=0), position)
    for _ in range(_RETRIES):
        if result.outcome is not Outcome.TRANSIENT or result.migrate_to:
            break
        await asyncio.sleep(min(_RETRY_CAP, result.retry_after or 0.5))
        result = await channel.send(recipient, call, SendContext(campaign_id=0), position)
    return result


def _mark(store: Store, channel: str, chat: str, result: Result) -> None:
    """A reply refused for good (blocked, deactivated): the subscriber's status follows."""
    status = result.subscriber_status
    if status not in ("unsubscribed", "unreachable"):
        status = "unreachable"
    try:
        sub = store.get_subscriber(channel, chat)
        if sub.status == "active":
            store.set_subscriber_status(channel, chat, status, source="provider", detail=result.error)
    except NotFound:
        pass


def _record_failure(store: Store, channel: str, update: Mapping[str, Any], action: str) -> None:
    """An update whose handling failed (and was rolled back) is recorded with the error
    as its action: it shows in ``inbound`` and is not taken up again."""
    _reason, row = _record(channel, update, None)
    if row is None:
        return
    try:
        store.record_inbound_many([row], action=action[:500])
    except FeedcastError as exc:
        log.warning("telegram channel %r: the failed update could not be recorded: %s", channel, exc)


async def process_update(
    store: Store,
    channel: TelegramChannel,
    update: Mapping[str, Any],
    *,
    bot_username: str | None = None,
) -> Handled:
    """Record, decide and answer one update (the store calls run in a worker thread, so
    a webhook's event loop keeps answering). A failure while deciding is logged and
    given as action ``error: ...``; a database failure is raised (the update must be
    read again)."""
    try:
        handled = await asyncio.to_thread(
            handle_update, store, channel.name, update, fmt=channel.format, bot_username=bot_username
        )
    except StoreError:
        raise
    except Exception as exc:  # one bad update never stops the others
        log.exception(
            "telegram channel %r: update %r could not be handled", channel.name, update.get("update_id")
        )
        raw = update.get("update_id")
        failed = Handled(
            raw if isinstance(raw, int) else None, action=one_line(f"error: {type(exc).__name__}: {exc}")
        )
        await asyncio.to_thread(_record_failure, store, channel.name, update, failed.action)
        return failed
    if handled.sends:
        await send_replies(store, channel, handled)
    return handled


# --------------------------------------------------------------------------- polling


def open_channel(store: Store, name: str, environ: Mapping[str, str] | None = None) -> TelegramChannel:
    """A registered Telegram channel as a channel object (InvalidValue for another kind)."""
    from feedcast.delivery import make_channel

    config = store.get_channel(name)
    if config.kind != "telegram":
        raise InvalidValue(f"channel {name!r} is a {config.kind} channel, not a Telegram bot")
    channel = make_channel(config, environ)
    assert isinstance(channel, TelegramChannel)
    return channel


def stored_offset(store: Store, channel: str) -> int | None:
    raw = store.channel_state(channel, OFFSET_KEY)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


async def poll(
    store: Store,
    channel_name: str,
    *,
    once: bool = False,
    timeout: float = 25.0,
    stop_after: float | None = None,
    stop: asyncio.Event | None = None,
    on_handled: Callable[[Handled], None] | None = None,
    client: httpx.AsyncClient | None = None,
    environ: Mapping[str, str] | None = None,
) -> PollSummary:
    """Long-poll ``getUpdates`` for one channel and process every update: one batch with
    ``once``, else until ``stop_after`` seconds have passed or ``stop`` is set. The
    offset is stored after each batch. ChannelError when the bot cannot poll (bad token,
    a webhook set: 409)."""
    channel = open_channel(store, channel_name, environ)
    summary = PollSummary(channel_name, offset=stored_offset(store, channel_name))
    started = time.monotonic()
    await channel.open(client)
    try:
        username = (await channel.me()).get("username")
        bot_username = username if isinstance(username, str) else None
        while True:
            remaining = None if stop_after is None else stop_after - (time.monotonic() - started)
            if (remaining is not None and remaining <= 0 and summary.batches) or (stop and stop.is_set()):
                break
            wait = timeout if remaining is None else max(0.0, min(timeout, remaining))
            asked = time.monotonic()
            updates = await _get(channel, summary.offset, wait, stop)
            if updates is None:  # stopped while waiting
                break
            summary.batches += 1
            for update in updates:
                handled = await process_update(store, channel, update, bot_username=bot_username)
                summary.count(handled)
                if on_handled is not None:
                    on_handled(handled)
            ids = [u["update_id"] for u in updates if isinstance(u.get("update_id"), int)]
            if ids:
                summary.offset = max(ids) + 1
                await asyncio.to_thread(
                    store.set_channel_state, channel_name, OFFSET_KEY, str(summary.offset)
                )
            if once:
                break
            if not updates and time.monotonic() - asked < min(1.0, wait):
                # answered at once with nothing (an error, or no wait asked): do not spin
                pause = 1.0 if remaining is None else min(1.0, max(0.0, remaining))
                if await _stopped(stop, pause):
                    break
    finally:
        await channel.close()
    return summary


async def _get(
    channel: TelegramChannel, offset: int | None, wait: float, stop: asyncio.Event | None
) -> list[dict[str, Any]] | None:
    """One getUpdates; None when ``stop`` was set before it answered (the request is
    abandoned: its updates stay unconfirmed and come again)."""
    request = asyncio.ensure_future(channel.get_updates(offset, wait, allowed_updates=ALLOWED_UPDATES))
    if stop is None:
        return await request
    stopping = asyncio.ensure_future(stop.wait())
    done, _pending = await asyncio.wait({request, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if request in done:
        stopping.cancel()
        return request.result()
    request.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await request
    return None


async def _stopped(stop: asyncio.Event | None, seconds: float) -> bool:
    if stop is None:
        await asyncio.sleep(seconds)
        return False
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return False
    return True


def telegram_channels(store: Store, names: Sequence[str] | None = None) -> list[str]:
    """The channels to poll: ``names`` (each must be a Telegram channel), else every
    Telegram channel; InvalidValue when there is none."""
    if names:
        for name in names:
            kind = store.get_channel(name).kind
            if kind != "telegram":
                raise InvalidValue(f"channel {name!r} is a {kind} channel: the inbox polls Telegram bots")
        return list(dict.fromkeys(names))
    found = [c.name for c in store.list_channels() if c.kind == "telegram"]
    if not found:
        raise InvalidValue("no Telegram channel yet: feedcast channel add NAME telegram --token env:VAR")
    return found


async def poll_channels(
    store: Store,
    names: Sequence[str] | None = None,
    *,
    once: bool = False,
    timeout: float = 25.0,
    duration: float | None = None,
    stop: asyncio.Event | None = None,
    on_handled: Callable[[str, Handled], None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[PollSummary | FeedcastError]:
    """:func:`poll` every Telegram channel (or ``names``) at once, for ``duration``
    seconds (None: until ``stop``); one channel that cannot poll (a bad token, a webhook
    set) gives its error in the list and never stops the others."""
    channels = telegram_channels(store, names)

    async def one(name: str) -> PollSummary | FeedcastError:
        def report(handled: Handled) -> None:
            if on_handled is not None:
                on_handled(name, handled)

        try:
            return await poll(
                store,
                name,
                once=once,
                timeout=timeout,
                stop_after=duration,
                stop=stop,
                on_handled=report,
                environ=environ,
            )
        except StoreError:
            raise
        except FeedcastError as exc:
            log.error("%s", exc)
            return exc

    return list(await asyncio.gather(*(one(name) for name in channels)))


async def update_webhook(
    channel: TelegramChannel, url: str | None, secret: str | None, *, delete: bool = False
) -> dict[str, Any]:
    """Point a bot's webhook at ``url`` (Telegram sends ``secret`` back with each update,
    see :func:`webhook_secret`), or delete it, or neither; then what Telegram says of it
    (``getWebhookInfo``)."""
    await channel.open(None)
    try:
        if url is not None:
            await channel.set_webhook(url, secret, allowed_updates=ALLOWED_UPDATES)
        elif delete:
            await channel.delete_webhook()
        return await channel.webhook_info()
    finally:
        await channel.close()
