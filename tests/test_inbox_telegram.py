"""Telegram's inbox end to end: scripted users in the Bot API emulator, getUpdates long
polling and the webhook over real loopback HTTP, the store recording what happened."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from starlette.applications import Starlette

import feedcast.cli as cli_module
from channels.base import Secrets
from channels.telegram import TelegramChannel
from feedcast.inbox.telegram import (
    OFFSET_KEY,
    Handled,
    PollSummary,
    handle_update,
    poll,
    poll_channels,
    webhook_secret,
)
from feedcast.kernel.clock import SYSTEM, FakeClock
from feedcast.kernel.errors import ChannelError
from feedcast.sandbox import AsgiServer
from feedcast.sandbox.telegram import TelegramEmulator
from feedcast.store import Connection, Store
from feedcast.tokens import signing_key
from feedcast.web.telegram import SECRET_HEADER, routes
from tests.test_cli import Cli

TOKEN = "555001:AAH-inbox-SECRET-token_for-tests"
T = TypeVar("T")


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[TelegramEmulator, str]]:
    emulator = TelegramEmulator()
    with emulator.serve() as server:
        yield emulator, server.base_url


@pytest.fixture
def tg(served: tuple[TelegramEmulator, str]) -> TelegramEmulator:
    emulator, _url = served
    emulator.clock = SYSTEM  # a test that needs certain waits sets a FakeClock
    emulator.reset(everything=True)
    emulator.configure(limits=False)  # flood control is the channel tests' business
    emulator.add_bot(TOKEN, "shop_bot")
    return emulator


@pytest.fixture
def store(tmp_path: Path, served: tuple[TelegramEmulator, str], monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("TG_TOKEN", TOKEN)
    store = Store(tmp_path / "inbox.duckdb")
    settings = TelegramChannel.validate_settings({"token": "env:TG_TOKEN", "api_url": served[1]})
    store.add_channel("tg", "telegram", settings)
    # the audiences the deep links here subscribe to (feedcast audience public)
    store.set_audiences_public(["vip", "deals", "spring_sale", "news", "summer", "abc"])
    return store


class SerialStore(Store):
    """One connection at a time in this process, as ``feedcast web``'s app guards its
    store: DuckDB refuses a read-only connection beside a read-write one (and the
    reverse) in one process, and here the test reads while the server writes."""

    _serial = threading.RLock()

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[Connection]:
        with self._serial, super().connect(read_only=read_only) as con:
            yield con


def once(store: Store, channel: str = "tg") -> tuple[PollSummary, list[Handled]]:
    seen: list[Handled] = []
    summary = asyncio.run(poll(store, channel, once=True, timeout=0, on_handled=seen.append))
    return summary, seen


def texts(emulator: TelegramEmulator, chat: int) -> list[str]:
    return [entry["params"]["text"] for entry in emulator.received(chat)]


def events(store: Store, recipient: str) -> list[tuple[str, str, str | None]]:
    _cols, rows = store.query(
        "SELECT e.event, e.source, e.detail FROM subscription_events e JOIN subscribers s ON s.id = e.subscriber_id"
        " WHERE s.recipient = ? ORDER BY e.id",
        [recipient],
    )
    return [(r["event"], r["source"], r["detail"]) for r in rows]


def eventually(check: Callable[[], T], timeout: float = 5.0) -> T:
    """``check()``'s value once it is truthy (it may raise meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
            if value:
                return value
        except Exception:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout} s: {value!r}")
        time.sleep(0.02)


# --------------------------------------------------------------------------- the conversation


def test_start_stop_and_anything_else(tg: TelegramEmulator, store: Store) -> None:
    tg.user_sends(501, "/start vip", first_name="Ann")
    summary, [handled] = once(store)
    assert (handled.event, handled.action, handled.replies) == (
        "/start vip",
        "subscribed (tag vip)",
        ["presentation", "welcome"],
    )
    sub = store.get_subscriber("tg", "501")
    assert (sub.status, sub.tags, sub.name) == ("active", ("vip",), "Ann")
    presentation, welcome = texts(tg, 501)
    assert presentation.startswith("Hello Ann! This is tg") and "/start" in presentation
    assert welcome.startswith("You are subscribed to vip.")
    assert events(store, "501") == [("subscribe", "bot", "/start vip")]
    assert (summary.updates, summary.subscribed, summary.replies) == (1, 1, 2)

    tg.user_sends(501, "/start")  # again: already subscribed, welcome only (no presentation)
    _summary, [handled] = once(store)
    assert handled.action == "already" and handled.replies == ["welcome"]
    assert texts(tg, 501)[2].startswith("You are subscribed.")

    tg.user_sends(501, "what's new?")
    _summary, [handled] = once(store)
    assert (handled.event, handled.action, handled.replies) == ("message", "replied", ["default"])
    assert texts(tg, 501)[3] == "Send /start to subscribe or /stop to unsubscribe."

    tg.user_sends(501, "/stop")
    summary, [handled] = once(store)
    assert (handled.event, handled.action, handled.replies) == ("/stop", "unsubscribed", ["goodbye"])
    assert texts(tg, 501)[4].startswith("You are unsubscribed")
    assert store.get_subscriber("tg", "501").status == "unsubscribed"
    assert events(store, "501")[-1] == ("unsubscribe", "bot", "/stop")
    assert summary.unsubscribed == 1

    tg.user_sends(501, "/start@shop_bot deals")  # back, to another audience: tags merge
    _summary, [handled] = once(store)
    assert handled.action == "resubscribed (tag deals)" and handled.replies == ["welcome"]
    assert store.get_subscriber("tg", "501").tags == ("deals", "vip")

    _cols, rows = store.query("SELECT kind, text, action FROM inbound ORDER BY id")
    assert [(r["kind"], r["action"]) for r in rows] == [
        ("command", "subscribed (tag vip)"),
        ("command", "already"),
        ("message", "replied"),
        ("command", "unsubscribed"),
        ("command", "resubscribed (tag deals)"),
    ]


def test_the_language_of_a_persons_app_is_kept_on_the_subscriber(tg: TelegramEmulator, store: Store) -> None:
    tg.user_sends(601, "/start", first_name="Chiara", language_code="it")
    tg.user_sends(602, "/start", first_name="João", language_code="pt-br")
    tg.user_sends(603, "/start", first_name="X", language_code="xx-nope")
    once(store)
    assert [store.get_subscriber("tg", chat).locale for chat in ("601", "602", "603")] == [
        "it",
        "pt_BR",
        None,
    ]
    tg.user_sends(601, "ciao", language_code="fr")  # switched the app to French: every update says so
    once(store)
    assert store.get_subscriber("tg", "601").locale == "fr"


def test_first_contact_without_start_gets_the_presentation_and_the_default(
    tg: TelegramEmulator, store: Store
) -> None:
    tg.user_sends(502, "hello?", first_name="Bo")
    tg.user_sends(503, "/start " + "x" * 65)  # not a deep-link payload: subscribed without a tag
    tg.user_sends(504, "/start@other_bot vip")  # a command for another bot: answered as text
    _summary, handled = once(store)
    assert [h.replies for h in handled] == [
        ["presentation", "default"],
        ["presentation", "welcome"],
        ["presentation", "default"],
    ]
    assert texts(tg, 502)[0].startswith("Hello Bo!")
    with pytest.raises(Exception, match="not a subscriber"):
        store.get_subscriber("tg", "502")  # writing is not subscribing
    assert store.get_subscriber("tg", "503").tags == ()
    assert "payload ignored" in handled[1].action
    with pytest.raises(Exception, match="not a subscriber"):
        store.get_subscriber("tg", "504")


def test_replies_follow_the_templates_and_a_turned_off_reply_sends_nothing(
    tg: TelegramEmulator, store: Store
) -> None:
    store.set_bot_reply("tg", "presentation", template=None, enabled=False)
    store.set_bot_reply("tg", "welcome", template="Welcome {{ name }} to {{ audience or 'everything' }}!")
    store.set_bot_reply("tg", "goodbye", template=None, enabled=False)
    tg.user_sends(601, "/start spring_sale", first_name="Cy")
    tg.user_sends(601, "/stop")
    _summary, handled = once(store)
    assert [h.replies for h in handled] == [["welcome"], []]
    assert texts(tg, 601) == ["Welcome Cy to spring_sale!"]  # no presentation, no goodbye
    assert store.get_subscriber("tg", "601").status == "unsubscribed"  # the change happens anyway

    store.set_bot_reply("tg", "default", template=None, enabled=False)
    tg.user_sends(601, "anyone?")
    _summary, [quiet] = once(store)
    assert quiet.replies == [] and quiet.action == "recorded (replies off)"
    assert len(texts(tg, 601)) == 1


# --------------------------------------------------------------------------- membership


def test_blocking_unsubscribes_without_a_send_and_unblocking_restores_who_left_that_way(
    tg: TelegramEmulator, store: Store, served: tuple[TelegramEmulator, str]
) -> None:
    store.subscribe("tg", "701", name="Di")
    store.subscribe("tg", "702", name="Ed")
    store.unsubscribe("tg", "702", detail="/stop")  # left on their own before blocking

    tg.user_blocks(701)
    tg.user_blocks(702)
    _summary, handled = once(store)
    assert [(h.event, h.action, h.sends) for h in handled] == [
        ("blocked the bot", "unsubscribed", []),
        ("blocked the bot", "not subscribed", []),
    ]
    assert "701" not in tg.stats(chats=True).get("chats", {})  # not even an attempt
    sub = store.get_subscriber("tg", "701")
    assert (sub.status, sub.status_reason) == ("unsubscribed", "blocked the bot")
    assert events(store, "701")[-1] == ("unsubscribe", "bot", "blocked the bot")
    refused = httpx.post(f"{served[1]}/bot{TOKEN}/sendMessage", json={"chat_id": 701, "text": "hi"})
    assert refused.status_code == 403 and "blocked by the user" in refused.json()["description"]

    tg.user_unblocks(701)
    tg.user_unblocks(702)
    _summary, handled = once(store)
    assert [h.action for h in handled] == ["resubscribed", "nothing to do (waits for /start)"]
    assert all(h.sends == [] for h in handled)
    assert store.get_subscriber("tg", "701").status == "active"
    assert store.get_subscriber("tg", "702").status == "unsubscribed"  # sent /stop before blocking
    ok = httpx.post(f"{served[1]}/bot{TOKEN}/sendMessage", json={"chat_id": 701, "text": "hi"})
    assert ok.status_code == 200

    tg.user_blocks(702)
    tg.user_sends(702, "/start")  # Telegram's "Restart": unblocks, then /start
    _summary, handled = once(store)
    assert [h.event for h in handled] == ["blocked the bot", "unblocked the bot", "/start"]
    assert handled[2].action == "resubscribed" and handled[2].replies == ["welcome"]


def test_the_bot_added_to_a_channel_or_group_registers_it(tg: TelegramEmulator, store: Store) -> None:
    tg.bot_added_to(-1001234, "channel", title="Deals channel")
    tg.bot_added_to(-4321, "group", title="Hikers", status="member")
    tg.user_sends(-4321, "hello group", from_id=9001)  # group chatter: recorded, never answered
    _summary, handled = once(store)
    assert [h.action for h in handled] == ["subscribed (tag channel)", "subscribed (tag group)", "recorded"]
    channel = store.get_subscriber("tg", "-1001234")
    assert (channel.status, channel.tags, channel.name) == ("active", ("channel",), "Deals channel")
    assert store.get_subscriber("tg", "-4321").tags == ("group",)
    assert tg.received(-1001234) == [] and tg.received(-4321) == []

    tg.bot_removed_from(-1001234)
    _summary, [removed] = once(store)
    assert (removed.event, removed.action) == ("bot removed from the channel", "unsubscribed")
    assert store.get_subscriber("tg", "-1001234").status == "unsubscribed"


# --------------------------------------------------------------------------- exactly once


def test_duplicate_updates_are_processed_once(tg: TelegramEmulator, store: Store) -> None:
    update = tg.user_sends(801, "/start", first_name="Fay")
    tg.push_update(TOKEN, update)  # Telegram delivered it twice
    summary, handled = once(store)
    assert [h.action for h in handled] == ["subscribed", "duplicate"]
    assert (summary.updates, summary.duplicates) == (2, 1)
    assert len(texts(tg, 801)) == 2  # presentation + welcome, once
    assert store.query("SELECT count(*) AS n FROM inbound")[1][0]["n"] == 1


def test_the_offset_moves_after_processing_and_a_crash_rereads_without_redoing(
    tg: TelegramEmulator, store: Store, served: tuple[TelegramEmulator, str]
) -> None:
    first = tg.user_sends(901, "/start", first_name="Gus")
    second = tg.user_sends(902, "/start", first_name="Hal")
    # a previous run processed the first update, then died before storing the offset
    handle_update(store, "tg", first)
    assert store.channel_state("tg", OFFSET_KEY) is None
    summary, handled = once(store)
    assert [h.action for h in handled] == ["duplicate", "subscribed"]
    assert tg.received(901) == [] and len(tg.received(902)) == 2
    assert summary.offset == second["update_id"] + 1
    assert store.channel_state("tg", OFFSET_KEY) == str(second["update_id"] + 1)
    assert len(tg.pending_updates()) == 2  # not confirmed yet: getUpdates with the offset does it

    summary, handled = once(store)
    assert handled == [] and tg.pending_updates() == []
    third = tg.user_sends(903, "hi")
    _summary, [last] = once(store)
    assert last.update_id == third["update_id"]

    # getUpdates itself: an offset confirms what is before it, a limit caps the batch
    for n in range(5):
        tg.user_sends(904, f"message {n}")
    base = f"{served[1]}/bot{TOKEN}/getUpdates"
    got = httpx.post(base, json={"offset": last.update_id + 1, "limit": 2}).json()["result"]
    assert [u["message"]["text"] for u in got] == ["message 0", "message 1"]
    got = httpx.post(base, json={"offset": got[-1]["update_id"] + 1, "limit": 100}).json()["result"]
    assert [u["message"]["text"] for u in got] == ["message 2", "message 3", "message 4"]
    got = httpx.post(base, data={"offset": "-1"}).json()["result"]
    assert [u["message"]["text"] for u in got] == ["message 4"]
    assert len(tg.pending_updates()) == 1


def test_long_polling_waits_for_an_update_without_holding_up_other_requests(
    tg: TelegramEmulator, served: tuple[TelegramEmulator, str]
) -> None:
    # on a fake clock a long poll can only end on an update or when the test moves time:
    # what it waits for is certain, however slow the machine (latencies: bench/speed.py)
    clock = tg.clock = FakeClock()
    base = f"{served[1]}/bot{TOKEN}"

    async def arrived(before: int) -> None:
        """Until the emulator has seen the request sent after ``before`` requests."""
        for _ in range(3000):
            if tg.requests > before:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the request never reached the emulator")

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with httpx.AsyncClient(timeout=10) as client:
            before = tg.requests
            waiting = asyncio.ensure_future(client.post(f"{base}/getUpdates", json={"timeout": 5}))
            await arrived(before)
            me = await client.post(f"{base}/getMe")  # would time out if the long poll held the server
            seen["me"] = me.json()["result"]["username"]
            seen["waiting after getMe"] = not waiting.done()
            tg.user_sends(1001, "/start")
            got = (await waiting).json()["result"]
            seen["got"] = got
            # nothing more to come: the poll holds for its whole timeout, then answers []
            before = tg.requests
            empty = asyncio.ensure_future(
                client.post(f"{base}/getUpdates", json={"offset": got[-1]["update_id"] + 1, "timeout": 1})
            )
            await arrived(before)
            await asyncio.sleep(0.1)
            seen["empty held"] = not empty.done()
            clock.advance(1.0)
            seen["empty"] = (await empty).json()["result"]
            # a newer getUpdates ends a waiting one (two pollers of one bot)
            before = tg.requests
            first = asyncio.ensure_future(client.post(f"{base}/getUpdates", json={"timeout": 3}))
            await arrived(before)
            second = asyncio.ensure_future(client.post(f"{base}/getUpdates", json={"timeout": 0.3}))
            seen["conflict"] = (await first).status_code
            clock.advance(0.3)
            seen["second"] = (await second).json()["result"]
        return seen

    seen = asyncio.run(scenario())
    assert seen["me"] == "shop_bot" and seen["waiting after getMe"]
    [update] = seen["got"]
    assert update["message"]["text"] == "/start"
    assert update["message"]["entities"] == [{"offset": 0, "length": 6, "type": "bot_command"}]
    assert seen["empty held"] and seen["empty"] == []
    assert seen["conflict"] == 409 and seen["second"] == []


def test_poll_channels_runs_for_a_duration(tg: TelegramEmulator, store: Store) -> None:
    timer = threading.Timer(0.3, tg.user_sends, args=(1101, "/start"))
    timer.start()
    seen: list[tuple[str, Handled]] = []
    [summary] = asyncio.run(
        poll_channels(store, None, timeout=1, duration=1.5, on_handled=lambda n, h: seen.append((n, h)))
    )
    timer.join()
    # it went on polling after the first batch and then stopped by itself (a poller that
    # ignored its duration would run into the suite's timeout); how long: bench/speed.py
    assert isinstance(summary, PollSummary) and summary.subscribed == 1 and summary.batches >= 2
    assert [(n, h.action) for n, h in seen] == [("tg", "subscribed")]


# --------------------------------------------------------------------------- webhook mode


def test_get_updates_is_refused_while_a_webhook_is_set(
    tg: TelegramEmulator, store: Store, served: tuple[TelegramEmulator, str]
) -> None:
    channel = TelegramChannel(
        "tg",
        TelegramChannel.validate_settings({"token": "env:TG_TOKEN", "api_url": served[1]}),
        secrets=Secrets({"TG_TOKEN": TOKEN}),
    )

    async def set_hook() -> dict[str, Any]:
        await channel.open(None)
        try:
            await channel.set_webhook("http://127.0.0.1:9/telegram/tg", "abc_DEF-123")
            with pytest.raises(ChannelError, match=r"secret"):
                await channel.set_webhook("http://127.0.0.1:9/telegram/tg", "has.a.dot")
            return await channel.webhook_info()
        finally:
            await channel.close()

    info = asyncio.run(set_hook())
    assert info["url"] == "http://127.0.0.1:9/telegram/tg"
    answer = httpx.post(f"{served[1]}/bot{TOKEN}/getUpdates", json={})
    assert answer.status_code == 409
    assert answer.json()["description"].startswith(
        "Conflict: can't use getUpdates method while webhook is active"
    )
    with pytest.raises(ChannelError, match="409") as refused:
        once(store)
    assert "webhook" in str(refused.value) and TOKEN not in str(refused.value)


@pytest.mark.slow
def test_webhook_mode_end_to_end(
    tg: TelegramEmulator,
    store: Store,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cli_module.out, "width", 400)
    cli = Cli(store.path, capsys)
    store = SerialStore(store.path)
    app = Starlette(routes=routes(store))
    with AsgiServer(app, name="web") as web:
        out = cli("channel", "webhook", "tg", "--url", web.base_url)
        secret = webhook_secret(signing_key(store.path), "tg")
        assert f"{web.base_url}/telegram/tg" in out and secret not in out
        assert tg.webhook()["url"] == f"{web.base_url}/telegram/tg"

        tg.user_sends(1201, "/start news", first_name="Ida")
        eventually(lambda: len(tg.received(1201)) == 2)
        assert texts(tg, 1201)[1].startswith("You are subscribed to news.")
        sub = eventually(lambda: store.get_subscriber("tg", "1201"))
        assert (sub.status, sub.tags) == ("active", ("news",))
        [delivery] = tg.webhook_deliveries()
        assert (delivery["status"], delivery["ok"]) == (200, True)
        assert tg.pending_updates() == []

        tg.user_blocks(1201)
        eventually(lambda: store.get_subscriber("tg", "1201").status == "unsubscribed")

        # Telegram retries what it thinks failed: the same update twice is processed once
        repeat: dict[str, Any] = {"update_id": 777, "message": {"message_id": 9, "date": 1, "chat": {"id": 1202, "type": "private"}, "from": {"id": 1202, "first_name": "Jo"}, "text": "/start"}}  # fmt: skip
        for _ in range(2):
            answer = httpx.post(f"{web.base_url}/telegram/tg", json=repeat, headers={SECRET_HEADER: secret})
            assert answer.status_code == 200
        eventually(lambda: len(tg.received(1202)) == 2)
        time.sleep(0.2)
        assert len(tg.received(1202)) == 2

        forged = {
            **repeat,
            "update_id": 778,
            "message": {**repeat["message"], "chat": {"id": 1203, "type": "private"}},
        }
        assert (
            httpx.post(
                f"{web.base_url}/telegram/tg", json=forged, headers={SECRET_HEADER: "wrong"}
            ).status_code
            == 403
        )
        assert httpx.post(f"{web.base_url}/telegram/tg", json=forged).status_code == 403
        assert (
            httpx.post(
                f"{web.base_url}/telegram/other", json=forged, headers={SECRET_HEADER: secret}
            ).status_code
            == 403
        )
        time.sleep(0.2)
        assert tg.received(1203) == []
        assert store.query("SELECT count(*) AS n FROM inbound WHERE sender = '1203'")[1][0]["n"] == 0

        out = cli("channel", "webhook", "tg", "--delete")
        assert "webhook deleted" in out
    assert tg.webhook()["url"] == ""
    _summary, handled = once(store)  # polling works again
    assert handled == []


# --------------------------------------------------------------------------- the command line


def test_inbox_and_replies_through_the_cli(
    tg: TelegramEmulator, store: Store, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_module.out, "width", 400)
    cli = Cli(store.path, capsys)
    out = cli(
        "channel",
        "replies",
        "tg",
        "--welcome",
        "Hi {{ name }}, you follow {{ audience }}.",
        "--presentation",
        "off",
    )
    assert "tg: welcome reply set" in out and "tg: presentation reply turned off" in out
    shown = cli.json("channel", "replies", "tg", "--show")
    assert isinstance(shown, list)
    by_kind = {r["kind"]: r for r in shown}
    assert by_kind["welcome"]["preview"] == "Hi Alex, you follow deals."
    assert by_kind["presentation"]["enabled"] is False and by_kind["goodbye"]["builtin"] is True

    tg.user_sends(1301, "/start summer", first_name="Kim")
    tg.user_sends(1302, "hello")
    out = cli("inbox", "--once", "--timeout", "0")
    lines = out.strip().splitlines()
    assert "chat 1301" in lines[0] and "/start summer: subscribed (tag summer)" in lines[0]
    assert "chat 1302" in lines[1] and "replied default" in lines[1]
    assert lines[-1].startswith("tg: 2 updates, 1 subscribed, 0 unsubscribed, 2 replies sent; next offset")
    assert texts(tg, 1301) == ["Hi Kim, you follow summer."]

    cli("channel", "replies", "tg", "--presentation", "on", "--welcome", "builtin")
    replies = cli.json("channel", "replies", "tg")
    assert isinstance(replies, list)
    assert {r["kind"]: r["template"] for r in replies}["welcome"] is None

    error = cli("channel", "replies", "tg", "--welcome", "Hi {{ name ", code=2)
    assert "does not compile" in error and len(error.strip().splitlines()) == 1
    error = cli("inbox", "--channel", "nope", "--once", code=2)
    assert "no channel named 'nope'" in error and "Traceback" not in error
    store.add_channel("mail", "outbox", {"dir": str(store.path.parent / "out"), "format": "email"})
    assert "only bots" in cli("channel", "replies", "mail", "--welcome", "x", code=2)
    assert "the inbox polls Telegram bots" in cli("inbox", "--channel", "mail", code=2)

    tg.reset(everything=True)  # the bot's token is no longer known: 401
    tg.add_bot("555003:AAH-someone-else", "else_bot")
    error = cli("inbox", "--once", "--timeout", "0", code=1)
    assert "the bot token was refused" in error and TOKEN not in error


def test_the_control_api_scripts_users(tg: TelegramEmulator, served: tuple[TelegramEmulator, str]) -> None:
    base = f"{served[1]}/_sandbox/updates"
    pushed = httpx.post(
        base, json={"action": "sends", "chat_id": 1401, "text": "/start abc", "first_name": "Lu"}
    ).json()
    assert pushed["ok"] and pushed["updates"][0]["message"]["entities"][0]["type"] == "bot_command"
    httpx.post(base, json={"bot": "@shop_bot", "action": "added", "chat_id": -1005, "kind": "channel"})
    httpx.post(base, json={"bot": TOKEN, "update": {"message": {"message_id": 1, "date": 1, "chat": {"id": 1402, "type": "private"}, "text": "raw"}}})  # fmt: skip
    httpx.post(base, json={"action": "blocks", "chat_id": 1401})
    shown = httpx.get(base).json()
    kinds = [next(k for k in u if k != "update_id") for u in shown["updates"]]
    assert kinds == ["message", "my_chat_member", "message", "my_chat_member"]
    assert shown["updates"][1]["my_chat_member"]["new_chat_member"]["status"] == "administrator"
    assert shown["updates"][3]["my_chat_member"]["new_chat_member"]["status"] == "kicked"
    ids = [u["update_id"] for u in shown["updates"]]
    assert ids == list(range(ids[0], ids[0] + 4))
    assert httpx.post(base, json={"action": "dances", "chat_id": 1}).status_code == 400
