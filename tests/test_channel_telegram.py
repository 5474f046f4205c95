"""The Telegram channel against the Bot API emulator, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import httpx
import pytest

from channels.base import Outcome, Recipient, Result, Secrets, SendContext
from channels.ratelimit import RateGate
from channels.telegram import TelegramChannel, classify
from feedcast.kernel.clock import SYSTEM, FakeClock
from feedcast.kernel.errors import ChannelError, InvalidValue
from feedcast.kernel.models import Button, Card, Message, Module, ProviderCall
from feedcast.sandbox.telegram import TelegramEmulator
from layouts.formats import provider_calls
from tests.test_ratelimit import busiest_window

TOKEN = "123456789:AAH-test-SECRET-token_for-feedcast"
OTHER = "987654321:AAH-another-SECRET-token-xyz"
CTX = SendContext(campaign_id=1)


@dataclass
class Sandbox:
    emulator: TelegramEmulator
    url: str

    def channel(self, token: str = TOKEN, **settings: str) -> TelegramChannel:
        stored = TelegramChannel.validate_settings({"token": "env:TG_TOKEN", "api_url": self.url, **settings})
        return TelegramChannel("tg", stored, secrets=Secrets({"TG_TOKEN": token}))


@pytest.fixture(scope="module")
def _served() -> Iterator[Sandbox]:
    emulator = TelegramEmulator()
    with emulator.serve() as server:
        yield Sandbox(emulator, server.base_url)


@pytest.fixture
def sandbox(_served: Sandbox) -> Sandbox:
    """One server for the module; a fresh emulator state for each test."""
    emulator = _served.emulator
    emulator.clock = SYSTEM  # a test that needs exact windows sets a FakeClock
    emulator.reset(everything=True)
    emulator.configure(limits=True, fault_rate=0.0, drop_rate=0.0, seed=7, auto_chats=True)
    emulator.add_bot(TOKEN, "shop_bot")
    return _served


def recipient(address: str | int, subscriber_id: int = 1) -> Recipient:
    return Recipient(subscriber_id=subscriber_id, address=str(address))


def text_call(text: str = "Hello <b>world</b>") -> ProviderCall:
    return ProviderCall("sendMessage", {"text": text, "parse_mode": "HTML"})


async def _send_all(
    channel: TelegramChannel, sends: Sequence[tuple[Recipient, ProviderCall]], gate: RateGate | None = None
) -> list[Result]:
    async with httpx.AsyncClient() as client:
        await channel.open(client)
        try:

            async def one(position: int, rcpt: Recipient, call: ProviderCall) -> Result:
                if gate is not None:
                    await gate.acquire(channel.rate_rules(rcpt, call))
                return await channel.send(rcpt, call, CTX, position)

            return list(await asyncio.gather(*(one(i, r, c) for i, (r, c) in enumerate(sends))))
        finally:
            await channel.close()


def send_all(
    channel: TelegramChannel, sends: Sequence[tuple[Recipient, ProviderCall]], gate: RateGate | None = None
) -> list[Result]:
    return asyncio.run(_send_all(channel, sends, gate))


def send_one(channel: TelegramChannel, rcpt: Recipient, call: ProviderCall) -> Result:
    return send_all(channel, [(rcpt, call)])[0]


# --------------------------------------------------------------------------- sending


def test_every_send_method_succeeds_and_the_chat_receives_it(sandbox: Sandbox) -> None:
    shop = Button("Shop", "https://shop.example/p/1")
    text = provider_calls(Message("telegram", (Module("text", text="<b>New</b> arrivals", buttons=(shop,)),)))
    photo = provider_calls(
        Message(
            "telegram",
            (Module("image", text="<i>Red</i> shoes", url="https://cdn.example/a.jpg", buttons=(shop,)),),
        )
    )
    cards = tuple(
        Card(f"Item {i}", image=f"https://cdn.example/{i}.jpg", url=f"https://shop.example/{i}")
        for i in range(3)
    )
    album = provider_calls(Message("telegram", (Module("cards", text="Three picks", cards=cards),)))
    document = provider_calls(
        Message("telegram", (Module("file", text="Catalogue", url="https://cdn.example/c.pdf"),))
    )
    assert [c.method for c in text] == ["sendMessage"]
    assert [c.method for c in photo] == ["sendPhoto"]
    assert album[0].method == "sendMediaGroup"
    assert [c.method for c in document] == ["sendDocument"]
    calls = [text[0], photo[0], album[0], document[0]]

    results = send_all(sandbox.channel(), [(recipient(1000 + i, i), call) for i, call in enumerate(calls)])

    assert [r.outcome for r in results] == [Outcome.SENT] * 4
    assert all(r.message_id == "1" for r in results)  # each chat's first message (an album's first)
    got = [sandbox.emulator.received(1000 + i) for i in range(4)]
    assert [g[0]["method"] for g in got] == ["sendMessage", "sendPhoto", "sendMediaGroup", "sendDocument"]
    keyboard = {"inline_keyboard": [[{"text": "Shop", "url": "https://shop.example/p/1"}]]}
    assert got[0][0]["params"]["reply_markup"] == keyboard
    assert got[1][0]["params"]["caption"] == "<i>Red</i> shoes"
    assert got[1][0]["params"]["reply_markup"] == keyboard
    assert got[2][0]["message_ids"] == [1, 2, 3]
    assert got[3][0]["params"]["document"] == "https://cdn.example/c.pdf"


def test_settings_add_silence_and_a_forum_topic(sandbox: Sandbox) -> None:
    sandbox.emulator.add_chat(-1001234, "supergroup")
    channel = sandbox.channel(disable_notification="true", thread_id="42")
    result = send_one(channel, recipient(-1001234), text_call())
    assert result.outcome is Outcome.SENT
    params = sandbox.emulator.received(-1001234)[0]["params"]
    assert params["disable_notification"] is True
    assert params["message_thread_id"] == 42


def test_a_channel_username_is_a_recipient(sandbox: Sandbox) -> None:
    sandbox.emulator.add_chat(-1005555, "channel", username="feedcast_news")
    result = send_one(sandbox.channel(), recipient("@feedcast_news"), text_call())
    assert result == Result.sent("1")
    assert sandbox.emulator.received(-1005555)[0]["method"] == "sendMessage"
    assert send_one(sandbox.channel(), recipient("@nobody_here"), text_call()).subscriber_status == "removed"


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kind", "status", "code", "subscriber_status", "description"),
    [
        ("private", "blocked", "403", "unsubscribed", "Forbidden: bot was blocked by the user"),
        ("private", "deactivated", "403", "unreachable", "Forbidden: user is deactivated"),
        ("group", "kicked", "403", "unsubscribed", "Forbidden: bot was kicked from the group chat"),
        (
            "private",
            "never_started",
            "403",
            "unsubscribed",
            "Forbidden: bot can't initiate conversation with a user",
        ),
    ],
)
def test_recipient_errors(
    sandbox: Sandbox, kind: str, status: str, code: str, subscriber_status: str, description: str
) -> None:
    chat_id = 4242 if kind == "private" else -4242
    sandbox.emulator.add_chat(chat_id, kind, status)
    result = send_one(sandbox.channel(), recipient(chat_id), text_call())
    assert result.outcome is Outcome.RECIPIENT
    assert (result.code, result.subscriber_status, result.error) == (code, subscriber_status, description)
    assert sandbox.emulator.received(chat_id) == []


def test_an_unknown_chat_is_removed(sandbox: Sandbox) -> None:
    result = send_one(sandbox.channel(), recipient(-100999), text_call())  # groups are never invented
    assert (result.outcome, result.subscriber_status) == (Outcome.RECIPIENT, "removed")
    assert result.error == "Bad Request: chat not found"
    sandbox.emulator.configure(auto_chats=False)
    assert send_one(sandbox.channel(), recipient(31337), text_call()).subscriber_status == "removed"


def test_a_migrated_group_gives_the_new_id_and_the_resend_succeeds(sandbox: Sandbox) -> None:
    sandbox.emulator.add_chat(-4001, "group", "migrated", migrate_to=-1004001)
    channel = sandbox.channel()
    first = send_one(channel, recipient(-4001), text_call())
    assert first.outcome is Outcome.TRANSIENT
    assert first.migrate_to == "-1004001"
    assert first.error == "Bad Request: group chat was upgraded to a supergroup chat"
    again = send_one(channel, recipient(first.migrate_to), text_call())
    assert again.outcome is Outcome.SENT
    assert len(sandbox.emulator.received(-1004001)) == 1


def test_content_errors_are_never_retried(sandbox: Sandbox) -> None:
    channel = sandbox.channel()
    html = send_one(channel, recipient(1), text_call("<div>hi</div>"))
    assert html.outcome is Outcome.CONTENT
    assert html.error == 'Bad Request: can\'t parse entities: Unsupported start tag "div" at byte offset 0'
    too_long = send_one(channel, recipient(2), ProviderCall("sendMessage", {"text": "x" * 4097}))
    assert (too_long.outcome, too_long.error) == (Outcome.CONTENT, "Bad Request: message is too long")
    # 4096 after entity parsing is fine, however long the markup
    fits = send_one(channel, recipient(3), text_call("<b>" + "&amp;" * 4096 + "</b>"))
    assert fits.outcome is Outcome.SENT
    caption = send_one(
        channel,
        recipient(4),
        ProviderCall("sendPhoto", {"photo": "https://cdn.example/a.jpg", "caption": "y" * 1025}),
    )
    assert (caption.outcome, caption.error) == (Outcome.CONTENT, "Bad Request: message caption is too long")
    mixed = ProviderCall(
        "sendMediaGroup",
        {
            "media": [
                {"type": "photo", "media": "https://cdn.example/a.jpg"},
                {"type": "document", "media": "https://cdn.example/b.pdf"},
            ]
        },
    )
    result = send_one(channel, recipient(5), mixed)
    assert (result.outcome, result.error) == (
        Outcome.CONTENT,
        "Bad Request: document can't be mixed with other media types",
    )
    keyboard = ProviderCall(
        "sendMessage", {"text": "x", "reply_markup": {"inline_keyboard": [[{"text": "no action"}]]}}
    )
    assert send_one(channel, recipient(6), keyboard).outcome is Outcome.CONTENT


def test_the_emulator_answers_html_errors_with_telegrams_envelope(sandbox: Sandbox) -> None:
    url = f"{sandbox.url}/bot{TOKEN}/sendMessage"
    # a form, as a multipart or urlencoded client sends it: nested objects as JSON strings
    answer = httpx.post(url, data={"chat_id": "77", "text": "a <div>b</div>", "parse_mode": "HTML"})
    assert answer.status_code == 400
    assert answer.json() == {
        "ok": False,
        "error_code": 400,
        "description": 'Bad Request: can\'t parse entities: Unsupported start tag "div" at byte offset 2',
    }
    form = httpx.post(
        url,
        files={
            "chat_id": (None, "77"),
            "text": (None, "ok"),
            "reply_markup": (None, '{"inline_keyboard": [[{"text": "a", "url": "https://a.example"}]]}'),
        },
    )
    message = form.json()["result"]
    assert (message["message_id"], message["chat"], message["text"]) == (
        1,
        {"id": 77, "type": "private", "first_name": "User 77"},
        "ok",
    )
    assert message["reply_markup"]["inline_keyboard"][0][0]["url"] == "https://a.example"
    assert httpx.get(f"{sandbox.url}/bot{TOKEN}/noSuchMethod").json()["error_code"] == 404
    assert httpx.get(f"{sandbox.url}/bot{TOKEN}").status_code == 404
    assert httpx.post(f"{sandbox.url}/botWRONG/getMe").json() == {
        "ok": False,
        "error_code": 401,
        "description": "Unauthorized",
    }


def test_a_bad_token_is_fatal(sandbox: Sandbox) -> None:
    result = send_one(sandbox.channel(token="111:not-a-known-token"), recipient(1), text_call())
    assert (result.outcome, result.code) == (Outcome.FATAL, "401")
    unknown_method = send_one(sandbox.channel(), recipient(1), ProviderCall("sendNothing", {}))
    assert (unknown_method.outcome, unknown_method.code) == (Outcome.FATAL, "404")


def test_server_errors_and_dropped_connections_are_transient(sandbox: Sandbox) -> None:
    sandbox.emulator.configure(fault_rate=1.0)
    results = send_all(sandbox.channel(), [(recipient(100 + i), text_call()) for i in range(8)])
    assert {r.outcome for r in results} == {Outcome.TRANSIENT}
    assert {r.code for r in results} == {"500", "502"}  # a JSON 500 and an nginx HTML 502
    sandbox.emulator.configure(fault_rate=0.0, drop_rate=1.0)
    dropped = send_one(sandbox.channel(), recipient(200), text_call())
    assert (dropped.outcome, dropped.code) == (Outcome.TRANSIENT, "network")
    assert dropped.error is not None and "disconnected" in dropped.error
    stats = sandbox.emulator.stats()
    assert (stats["faults"], stats["dropped"], stats["accepted"]) == (8, 1, 0)


def test_a_refused_connection_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    stored = TelegramChannel.validate_settings(
        {"token": "env:TG_TOKEN", "api_url": f"http://127.0.0.1:{port}"}
    )
    channel = TelegramChannel("tg", stored, secrets=Secrets({"TG_TOKEN": TOKEN}))
    result = send_one(channel, recipient(1), text_call())
    assert (result.outcome, result.code) == (Outcome.TRANSIENT, "network")
    assert result.error and TOKEN not in result.error


@pytest.mark.parametrize(
    ("status", "payload", "expected"),
    [
        (200, {"ok": True, "result": {"message_id": 9}}, Result.sent("9")),
        (200, {"ok": True, "result": [{"message_id": 4}, {"message_id": 5}]}, Result.sent("4")),
        (
            429,
            {
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests: retry after 7",
                "parameters": {"retry_after": 7},
            },
            Result(
                Outcome.TRANSIENT,
                error="Too Many Requests: retry after 7",
                code="429",
                retry_after=7.0,
                pause_channel=True,
            ),
        ),
        (
            403,
            {
                "ok": False,
                "error_code": 403,
                "description": "Forbidden: bot was kicked from the supergroup chat",
            },
            Result(
                Outcome.RECIPIENT,
                error="Forbidden: bot was kicked from the supergroup chat",
                code="403",
                subscriber_status="unsubscribed",
            ),
        ),
        (
            400,
            {
                "ok": False,
                "error_code": 400,
                "description": "Bad Request: group chat was upgraded to a supergroup chat",
                "parameters": {"migrate_to_chat_id": -100123},
            },
            Result(
                Outcome.TRANSIENT,
                error="Bad Request: group chat was upgraded to a supergroup chat",
                code="400",
                migrate_to="-100123",
            ),
        ),
        (
            409,
            {
                "ok": False,
                "error_code": 409,
                "description": "Conflict: can't use getUpdates method while webhook is active",
            },
            Result(
                Outcome.FATAL,
                error="configuration conflict (Conflict: can't use getUpdates method while webhook is active)",
                code="409",
            ),
        ),
        (
            404,
            {"ok": False, "error_code": 404, "description": "Not Found"},
            Result(Outcome.FATAL, error="the bot token was refused (404 Not Found)", code="404"),
        ),
        (
            502,
            None,
            Result(Outcome.TRANSIENT, error="malformed answer from the Bot API (HTTP 502)", code="502"),
        ),
        (
            200,
            None,
            Result(Outcome.TRANSIENT, error="malformed answer from the Bot API (HTTP 200)", code="200"),
        ),
        (
            500,
            {"ok": False, "error_code": 500, "description": "Internal Server Error"},
            Result(Outcome.TRANSIENT, error="Internal Server Error", code="500"),
        ),
        (
            400,
            {"ok": False, "error_code": 400, "description": "Bad Request: PEER_ID_INVALID"},
            Result(
                Outcome.RECIPIENT,
                error="Bad Request: PEER_ID_INVALID",
                code="400",
                subscriber_status="removed",
            ),
        ),
    ],
)
def test_classify_maps_every_row_of_the_error_table(status: int, payload: object, expected: Result) -> None:
    assert classify(status, payload) == expected


# --------------------------------------------------------------------------- rate limits


async def _burst(url: str, chats: Sequence[int]) -> list[httpx.Response]:
    """Requests all at once, as a sender without pacing makes them."""
    async with httpx.AsyncClient() as client:
        return list(
            await asyncio.gather(*(client.post(url, json={"chat_id": chat, "text": "hi"}) for chat in chats))
        )


def test_bursting_past_30_per_second_gets_429_with_retry_after(sandbox: Sandbox) -> None:
    sandbox.emulator.clock = FakeClock()  # the 45 arrive in one instant, however slow the machine
    answers = asyncio.run(_burst(f"{sandbox.url}/bot{TOKEN}/sendMessage", range(5000, 5045)))
    assert sorted(a.status_code for a in answers) == [200] * 30 + [429] * 15
    limited = next(a.json() for a in answers if a.status_code == 429)
    retry = limited["parameters"]["retry_after"]
    assert isinstance(retry, int) and retry >= 1
    assert limited == {
        "ok": False,
        "error_code": 429,
        "description": f"Too Many Requests: retry after {retry}",
        "parameters": {"retry_after": retry},
    }
    # the window is still full: the channel's next send is told to pause the bot
    result = send_one(sandbox.channel(), recipient(6000), text_call())
    assert (result.outcome, result.code, result.pause_channel) == (Outcome.TRANSIENT, "429", True)
    assert result.retry_after is not None and result.retry_after >= 1
    bot = sandbox.emulator.stats()["bots"]["123456789"]
    assert (bot["accepted"], bot["rate_limited"], bot["over_limit"]) == (30, 16, 16)
    assert bot["max_per_second"] == 46


def test_one_chat_gets_a_burst_of_3_then_429(sandbox: Sandbox) -> None:
    clock = sandbox.emulator.clock = FakeClock()
    answers = asyncio.run(_burst(f"{sandbox.url}/bot{TOKEN}/sendMessage", [77] * 5))
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 429, 429]
    assert sandbox.emulator.stats(chats=True)["chats"]["77"]["rate_limited"] == 2
    clock.advance(1.0)  # the bucket refills at 1 per second
    answers = asyncio.run(_burst(f"{sandbox.url}/bot{TOKEN}/sendMessage", [77] * 2))
    assert sorted(a.status_code for a in answers) == [200, 429]


def test_limits_off_accepts_everything_but_counts_what_was_over(sandbox: Sandbox) -> None:
    sandbox.emulator.clock = FakeClock()
    sandbox.emulator.configure(limits=False)
    answers = asyncio.run(_burst(f"{sandbox.url}/bot{TOKEN}/sendMessage", range(5000, 5040)))
    assert all(a.status_code == 200 for a in answers)
    stats = sandbox.emulator.stats()
    assert (stats["accepted"], stats["rate_limited"], stats["over_limit"]) == (40, 0, 10)


def send_paced(sandbox: Sandbox, sends: Sequence[tuple[Recipient, ProviderCall]]) -> list[Result]:
    """Through a rate gate that shares the emulator's fake clock, one call after the
    other: nothing moves the clock while a call is on the wire, so every call arrives at
    the instant the gate let it go, and the emulator's windows judge the pace exactly."""
    clock = sandbox.emulator.clock = FakeClock()
    gate = RateGate(clock=clock)
    channel = sandbox.channel()

    async def main() -> list[Result]:
        async with httpx.AsyncClient() as client:
            await channel.open(client)
            try:
                results = []
                for position, (rcpt, call) in enumerate(sends):
                    await gate.acquire(channel.rate_rules(rcpt, call))
                    results.append(await channel.send(rcpt, call, CTX, position))
                return results
            finally:
                await channel.close()

    return asyncio.run(main())


def test_pacing_through_the_rate_gate_never_hits_a_limit(sandbox: Sandbox) -> None:
    sends = [(recipient(9000 + i), text_call()) for i in range(60)]
    results = send_paced(sandbox, sends)
    assert all(r.outcome is Outcome.SENT for r in results), {r.error for r in results}
    stats = sandbox.emulator.stats()  # counted from the arrivals, over sliding seconds
    assert stats["rate_limited"] == 0 and stats["over_limit"] == 0
    assert stats["max_per_second"] == 29
    times = [sandbox.emulator.received(9000 + i)[0]["time"] for i in range(60)]
    assert times[-1] - times[0] >= 2.0  # 60 at 29/s: three windows
    # the same pace with every call at once (a campaign's concurrency): no window over
    concurrent = paced_times(sandbox.channel(), sends)
    assert busiest_window(concurrent, 1.0) == 29


def paced_times(channel: TelegramChannel, sends: Sequence[tuple[Recipient, ProviderCall]]) -> list[float]:
    """When a gate on a fake clock lets each call of ``sends`` go, all asked at once,
    under the channel's own rate rules (no network)."""
    clock = FakeClock()
    gate = RateGate(clock=clock)
    asyncio.run(channel.open(None))
    times: list[float] = []

    async def one(rcpt: Recipient, call: ProviderCall) -> None:
        await gate.acquire(channel.rate_rules(rcpt, call))
        times.append(clock.monotonic())

    async def main() -> None:
        await asyncio.gather(*(one(r, c) for r, c in sends))

    asyncio.run(main())
    asyncio.run(channel.close())
    return times


def test_per_chat_pacing_spaces_messages_a_second_apart(sandbox: Sandbox) -> None:
    results = send_paced(sandbox, [(recipient(321), text_call(f"n{i}")) for i in range(3)])
    assert all(r.outcome is Outcome.SENT for r in results)
    times = [entry["time"] for entry in sandbox.emulator.received(321)]
    assert len(times) == 3
    assert all(later - earlier >= 1.0 for earlier, later in itertools.pairwise(times))
    concurrent = sorted(paced_times(sandbox.channel(), [(recipient(321), text_call())] * 3))
    assert [round(later - earlier, 6) for earlier, later in itertools.pairwise(concurrent)] == [1.0, 1.0]


def test_rate_rules_name_the_bot_by_a_digest_and_weigh_albums(sandbox: Sandbox) -> None:
    channel = sandbox.channel()
    asyncio.run(channel.open(None))
    album = ProviderCall(
        "sendMediaGroup",
        {"media": [{"type": "photo", "media": f"https://c.example/{i}.jpg"} for i in range(4)]},
    )
    private = channel.rate_rules(recipient(5), album)
    group = channel.rate_rules(recipient(-1005), text_call())
    asyncio.run(channel.close())
    assert [(r.limit, r.period, r.cost) for r in private] == [(29, 1, 4), (1, 1, 1)]
    assert [(r.limit, r.period, r.cost) for r in group] == [(29, 1, 1), (1, 1, 1), (19, 60, 1)]
    assert all(TOKEN not in r.key and "SECRET" not in r.key for r in [*private, *group])
    assert private[0].key == group[0].key
    other = sandbox.channel(token=OTHER)
    asyncio.run(other.open(None))
    assert other.rate_rules(recipient(5), album)[0].key != private[0].key  # another bot, other limits
    asyncio.run(other.close())


def test_group_limit_of_20_per_minute_with_a_clock() -> None:
    clock = FakeClock()
    emulator = TelegramEmulator(clock=clock)
    emulator.add_bot(TOKEN)
    emulator.add_chat(-1007, "supergroup")
    with emulator.serve() as server:
        url = f"{server.base_url}/bot{TOKEN}/sendMessage"
        for _ in range(20):
            assert httpx.post(url, json={"chat_id": -1007, "text": "hi"}).json()["ok"] is True
            clock.advance(1.5)
        limited = httpx.post(url, json={"chat_id": -1007, "text": "hi"}).json()
        assert limited["error_code"] == 429
        assert limited["parameters"]["retry_after"] == 30  # the first of the 20 leaves the minute in 30 s
        clock.advance(30.0)
        assert httpx.post(url, json={"chat_id": -1007, "text": "hi"}).json()["ok"] is True


# --------------------------------------------------------------------------- secrets, settings, check


def test_the_token_never_leaks_into_results_or_logs(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sandbox.emulator.add_chat(66, "private", "blocked")
    channel = sandbox.channel()
    results = send_all(
        channel,
        [(recipient(65), text_call()), (recipient(66), text_call()), (recipient(67), text_call("<div>"))],
    )
    sandbox.emulator.configure(drop_rate=1.0)
    results.append(send_one(sandbox.channel(), recipient(68), text_call()))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    stored = TelegramChannel.validate_settings(
        {"token": "env:TG_TOKEN", "api_url": f"http://127.0.0.1:{port}"}
    )
    results.append(
        send_one(
            TelegramChannel("tg", stored, secrets=Secrets({"TG_TOKEN": TOKEN})), recipient(69), text_call()
        )
    )
    assert [r.outcome for r in results] == [
        Outcome.SENT,
        Outcome.RECIPIENT,
        Outcome.CONTENT,
        Outcome.TRANSIENT,
        Outcome.TRANSIENT,
    ]
    assert any("HTTP Request" in r.getMessage() for r in caplog.records)  # httpx did log the URLs
    for result in results:
        assert TOKEN not in (result.error or "")
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
    assert TOKEN not in caplog.text


def test_validate_settings_refuses_a_literal_token() -> None:
    with pytest.raises(InvalidValue) as info:
        TelegramChannel.validate_settings({"token": TOKEN})
    message = str(info.value)
    assert "\n" not in message and TOKEN not in message
    assert "env:" in message
    with pytest.raises(InvalidValue, match="need --token"):
        TelegramChannel.validate_settings({})
    settings = TelegramChannel.validate_settings({"token": "env:T"})
    assert settings == {
        "token": "env:T",
        "api_url": "https://api.telegram.org",
        "disable_notification": "false",
    }
    with pytest.raises(InvalidValue, match="--thread-id"):
        TelegramChannel.validate_settings({"token": "env:T", "thread_id": "topic"})
    with pytest.raises(InvalidValue, match="--api-url"):
        TelegramChannel.validate_settings({"token": "env:T", "api_url": "ftp://x"})


def test_validate_recipient() -> None:
    channel = TelegramChannel("tg", {"token": "env:T"})
    assert channel.validate_recipient(" 123456789 ") == "123456789"
    assert channel.validate_recipient("-1001234567890") == "-1001234567890"
    assert channel.validate_recipient("@feedcast_news") == "@feedcast_news"
    for bad in ("", "abc", "@ab", "12.5", "0", "@1abcde"):
        with pytest.raises(InvalidValue):
            channel.validate_recipient(bad)


def test_a_missing_environment_variable_is_one_clear_line(sandbox: Sandbox) -> None:
    stored = TelegramChannel.validate_settings({"token": "env:TG_UNSET_VAR", "api_url": sandbox.url})
    channel = TelegramChannel("tg", stored, secrets=Secrets({}))
    with pytest.raises(ChannelError, match="TG_UNSET_VAR is not set"):
        asyncio.run(channel.open(None))


def test_check_names_the_bot_or_says_the_token_was_refused(sandbox: Sandbox) -> None:
    assert asyncio.run(sandbox.channel().check()) == "bot @shop_bot (id 123456789)"
    bad = sandbox.channel(token="555:refused-token-value")
    with pytest.raises(ChannelError) as info:
        asyncio.run(bad.check())
    assert str(info.value) == "telegram channel 'tg': the bot token was refused (401 Unauthorized)"
    assert "refused-token-value" not in str(info.value)


# --------------------------------------------------------------------------- control API


def test_the_control_api_over_http(sandbox: Sandbox) -> None:
    base = f"{sandbox.url}/_sandbox"
    with httpx.Client() as http:
        bot = http.post(f"{base}/bots", json={"token": OTHER, "username": "news_bot"}).json()
        assert bot == {"ok": True, "bot": {"id": 987654321, "username": "news_bot", "first_name": "News"}}
        chats = http.post(
            f"{base}/chats",
            json={
                "chats": [
                    {"chat_id": 11, "status": "blocked"},
                    {"chat_id": -1002, "kind": "channel", "username": "deals"},
                ]
            },
        ).json()
        assert [c["chat_id"] for c in chats["chats"]] == [11, -1002]
        assert http.post(f"{base}/chats", json={"chat_id": 5, "kind": "nope"}).status_code == 400
        assert http.get(f"{base}/chats", params={"chat_id": 11}).json()["chat"]["status"] == "blocked"

        sent = http.post(
            f"{sandbox.url}/bot{OTHER}/sendMessage", json={"chat_id": "@deals", "text": "Deal!"}
        ).json()
        assert sent["result"]["sender_chat"]["id"] == -1002
        blocked = http.post(f"{sandbox.url}/bot{OTHER}/sendMessage", json={"chat_id": 11, "text": "x"})
        assert blocked.status_code == 403

        received = http.get(f"{base}/received", params={"chat_id": -1002}).json()
        assert [m["params"]["text"] for m in received["messages"]] == ["Deal!"]
        assert list(http.get(f"{base}/received").json()["received"]) == ["-1002"]

        stats = http.get(f"{base}/stats", params={"chats": 1}).json()
        other = stats["bots"]["987654321"]
        assert (other["requests"], other["accepted"], other["errors"], other["max_per_second"]) == (
            2,
            1,
            1,
            2,
        )
        assert stats["chats"]["-1002"]["accepted"] == 1

        config = http.post(f"{base}/config", json={"limits": False, "fault_rate": 0.25, "seed": 3}).json()
        assert (config["limits"], config["fault_rate"]) == (False, 0.25)
        assert sandbox.emulator.limits is False

        assert http.post(f"{base}/reset").json() == {"ok": True}
        assert http.get(f"{base}/stats").json()["requests"] == 0
        assert http.get(f"{base}/received", params={"chat_id": -1002}).json()["messages"] == []
        assert http.get(f"{base}/chats", params={"chat_id": 11}).json()["chat"]["status"] == "blocked"  # kept
        http.post(f"{base}/reset", json={"everything": True})
        assert http.get(f"{base}/bots").json()["bots"] == []


def test_get_me_and_get_updates(sandbox: Sandbox) -> None:
    me = httpx.get(f"{sandbox.url}/bot{TOKEN}/getMe").json()["result"]
    assert (me["id"], me["username"], me["is_bot"]) == (123456789, "shop_bot", True)
    assert httpx.post(f"{sandbox.url}/bot{TOKEN}/getUpdates", json={"offset": 0}).json() == {
        "ok": True,
        "result": [],
    }
