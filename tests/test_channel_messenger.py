"""The Messenger channel against the Send API emulator, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from channels.base import Outcome, Recipient, Result, Secrets, SendContext
from channels.messenger import MEDIA_RATE, OUTSIDE_WINDOW, TEXT_RATE, MessengerChannel
from channels.ratelimit import RateGate
from feedcast.kernel.clock import SYSTEM, FakeClock
from feedcast.kernel.errors import ChannelError, InvalidValue
from feedcast.kernel.models import Button, Card, Message, Module, ProviderCall
from feedcast.sandbox.asgi import AsgiServer
from feedcast.sandbox.messenger import MessengerEmulator
from layouts.formats import provider_calls

TOKEN = "EAAsandboxPageToken0123456789"
ENV = {
    "FB_PAGE_TOKEN": TOKEN,
    "FB_WRONG": "EAAwrongToken9876543210",
    "FB_NO_PERMISSION": "EAAnoPermission55555555",
    "FB_NO_PERMISSION_10": "EAAnoPermission10101010",
}
PAGE_ID = "1000000042"
PSID = "2500000000000001"
NOW = datetime.now(UTC)
OPEN = NOW - timedelta(hours=1)
CLOSED = NOW - timedelta(days=2)
CTX = SendContext(campaign_id=1)


@dataclass
class Sandbox:
    emulator: MessengerEmulator
    base_url: str

    @property
    def api_url(self) -> str:
        return self.base_url + "/v25.0"


@pytest.fixture(scope="module")
def _server() -> Iterator[tuple[MessengerEmulator, str]]:
    emulator = MessengerEmulator(seed=7)
    with AsgiServer(emulator.app, name="messenger") as server:
        yield emulator, server.base_url


@pytest.fixture
def sandbox(_server: tuple[MessengerEmulator, str]) -> Sandbox:
    emulator, base_url = _server
    emulator.clock = SYSTEM  # a test that needs exact windows sets a FakeClock
    emulator.reset(everything=True)
    emulator.configure(
        limits=True, fault_rate=0.0, drop_rate=0.0, seed=7, auto_people=True, auto_window_open=True
    )
    emulator.add_page(TOKEN, PAGE_ID, name="Sandbox Shop")
    return Sandbox(emulator, base_url)


def channel(sandbox: Sandbox, token_var: str = "FB_PAGE_TOKEN") -> MessengerChannel:
    settings = MessengerChannel.validate_settings(
        {"page_token": f"env:{token_var}", "api_url": sandbox.api_url}
    )
    return MessengerChannel("fb", settings, secrets=Secrets(ENV))


def recipient(psid: str = PSID, last_inbound: datetime | None = OPEN) -> Recipient:
    return Recipient(subscriber_id=1, address=psid, last_inbound_at=last_inbound)


def call(message: dict[str, Any]) -> ProviderCall:
    return ProviderCall("messages", {"messaging_type": "UPDATE", "message": message})


TEXT = call({"text": "Hello from the sandbox"})
VIDEO = call({"attachment": {"type": "video", "payload": {"url": "https://cdn.example.com/a.mp4"}}})


async def _send_all(
    ch: MessengerChannel, to: Recipient, calls: Sequence[ProviderCall], ctx: SendContext = CTX
) -> list[Result]:
    async with httpx.AsyncClient(timeout=10) as client:
        await ch.open(client)
        try:
            return [await ch.send(to, c, ctx, i) for i, c in enumerate(calls)]
        finally:
            await ch.close()


def send(
    sandbox: Sandbox,
    calls: Sequence[ProviderCall],
    to: Recipient | None = None,
    ctx: SendContext = CTX,
    token_var: str = "FB_PAGE_TOKEN",
) -> list[Result]:
    return asyncio.run(_send_all(channel(sandbox, token_var), to or recipient(), calls, ctx))


# --------------------------------------------------------------------------- success


def test_every_module_kind_is_delivered_and_recorded(sandbox: Sandbox) -> None:
    message = Message(
        "messenger",
        (
            Module("text", text="New arrivals this week"),
            Module("text", text="Shop the sale", buttons=(Button("Shop", "https://shop.example.com"),)),
            Module("image", url="https://cdn.example.com/a.jpg"),
            Module("video", url="https://cdn.example.com/a.mp4"),
            Module(
                "cards",
                cards=tuple(
                    Card(
                        f"Product {n}",
                        subtitle="In stock",
                        image=f"https://cdn.example.com/{n}.jpg",
                        url=f"https://shop.example.com/p/{n}",
                        buttons=(Button("Buy", f"https://shop.example.com/buy/{n}"),),
                    )
                    for n in range(12)
                ),
            ),
        ),
    )
    calls = provider_calls(message)
    kinds = [c.body["message"].get("attachment", {}).get("type", "text") for c in calls]
    assert kinds == ["text", "template", "image", "video", "template", "template"]  # 12 cards: 10 + 2

    results = send(sandbox, calls)

    assert [r.outcome for r in results] == [Outcome.SENT] * len(calls)
    assert all(r.message_id and r.message_id.startswith("m_") for r in results)
    got = sandbox.emulator.received(PSID)
    assert [row["message"] for row in got] == [c.body["message"] for c in calls]
    assert [row["message_id"] for row in got] == [r.message_id for r in results]
    assert {row["messaging_type"] for row in got} == {"UPDATE"}
    assert {row["page_id"] for row in got} == {PAGE_ID}
    templates = [row["message"]["attachment"]["payload"]["template_type"] for row in got[1:2] + got[4:]]
    assert templates == ["button", "generic", "generic"]


def test_limits_are_accepted_at_their_edges(sandbox: Sandbox) -> None:
    buttons = [{"type": "web_url", "url": "https://x.example/", "title": "t" * 20}] * 3
    element = {"title": "T" * 80, "subtitle": "S" * 80, "buttons": buttons}
    edge = [
        call({"text": "é" * 2000}),
        call(
            {
                "attachment": {
                    "type": "template",
                    "payload": {"template_type": "generic", "elements": [element] * 10},
                }
            }
        ),
        call(
            {
                "attachment": {
                    "type": "template",
                    "payload": {"template_type": "button", "text": "x" * 640, "buttons": buttons},
                }
            }
        ),
        call(
            {"text": "pick", "quick_replies": [{"content_type": "text", "title": "q", "payload": "P"}] * 13}
        ),
        call({"attachment": {"type": "file", "payload": {"url": "https://cdn.example.com/a.pdf"}}}),
        call({"attachment": {"type": "audio", "payload": {"url": "https://cdn.example.com/a.mp3"}}}),
    ]
    results = send(sandbox, edge)
    assert [r.outcome for r in results] == [Outcome.SENT] * len(edge), [r.error for r in results]
    assert len(sandbox.emulator.received(PSID)) == len(edge)


# --------------------------------------------------------------------------- errors


def test_outside_the_window_the_provider_answer_is_a_skip(sandbox: Sandbox) -> None:
    sandbox.emulator.add_person(PSID, last_inbound=CLOSED)
    # the engine would have skipped: the recipient's record says the window is open
    [result] = send(sandbox, [TEXT], recipient(last_inbound=OPEN))
    assert result.outcome is Outcome.SKIPPED
    assert result.error == OUTSIDE_WINDOW
    assert result.code == "10/2018278"
    assert sandbox.emulator.received(PSID) == []
    assert sandbox.emulator.stats()["errors"] == {"10/2018278": 1}


@pytest.mark.parametrize("status", ["blocked", "deactivated"])
def test_blocked_or_deactivated_person_is_unreachable(sandbox: Sandbox, status: str) -> None:
    sandbox.emulator.add_person(PSID, status=status, last_inbound=OPEN)
    [result] = send(sandbox, [TEXT])
    assert result.outcome is Outcome.RECIPIENT
    assert result.subscriber_status == "unreachable"
    assert result.code == "551/1545041"


def test_unknown_person_is_removed(sandbox: Sandbox) -> None:
    sandbox.emulator.configure(auto_people=False)
    [result] = send(sandbox, [TEXT])
    assert result.outcome is Outcome.RECIPIENT
    assert result.subscriber_status == "removed"
    assert result.code == "100/2018001"
    assert "No matching user" in (result.error or "")


def test_rate_limit_613_pauses_the_page(sandbox: Sandbox) -> None:
    sandbox.emulator.clock = FakeClock()  # the 14 arrive in one instant, however slow the machine
    ch = channel(sandbox)

    async def burst() -> list[Result]:
        async with httpx.AsyncClient(timeout=10) as client:
            await ch.open(client)
            people = [recipient(str(3_000_000 + n)) for n in range(14)]
            return await asyncio.gather(*(ch.send(p, VIDEO, CTX, 0) for p in people))

    results = asyncio.run(burst())
    limited = [r for r in results if r.outcome is Outcome.TRANSIENT]
    assert sum(r.outcome is Outcome.SENT for r in results) == 10
    assert len(limited) == 4
    assert all(r.code == "613" and r.pause_channel and r.retry_after == 1.0 for r in limited)
    media = sandbox.emulator.stats()["keys"][f"page:{PAGE_ID}:media"]
    assert media["rate_limited"] == 4
    assert media["max_window"] == 14
    assert media["over_limit"] == 4


def test_temporary_errors_are_transient_without_pausing(sandbox: Sandbox) -> None:
    sandbox.emulator.fail_next(PSID, 1200, message="Temporary send message failure", status=500)
    sandbox.emulator.fail_next(PSID, 2, message="An unexpected error has occurred", status=500)
    sandbox.emulator.fail_next(PSID, 4, message="(#4) Application request limit reached")
    results = send(sandbox, [TEXT, TEXT, TEXT, TEXT])
    assert [(r.outcome, r.code, r.pause_channel) for r in results] == [
        (Outcome.TRANSIENT, "1200", False),
        (Outcome.TRANSIENT, "2", False),
        (Outcome.TRANSIENT, "4", True),
        (Outcome.SENT, None, False),
    ]


@pytest.mark.parametrize(
    ("token_var", "permissions", "code"),
    [("FB_WRONG", None, "190"), ("FB_NO_PERMISSION", False, "200"), ("FB_NO_PERMISSION_10", 10, "10")],
)
def test_token_and_permission_errors_are_fatal(
    sandbox: Sandbox, token_var: str, permissions: bool | int | None, code: str
) -> None:
    if permissions is not None:
        sandbox.emulator.add_page(ENV[token_var], "1000000099", permissions=permissions)
    [result] = send(sandbox, [TEXT], token_var=token_var)
    assert result.outcome is Outcome.FATAL
    assert result.code == code
    assert ENV[token_var] not in (result.error or "")
    assert sandbox.emulator.received(PSID) == []


INVALID: dict[str, dict[str, Any]] = {
    "text over 2000": {"text": "x" * 2001},
    "astral text over 2000 UTF-16 units": {"text": "😀" * 1001},
    "empty text": {"text": " "},
    "unknown attachment type": {"attachment": {"type": "sticker", "payload": {"url": "https://x.example/a"}}},
    "media without url": {"attachment": {"type": "image", "payload": {}}},
    "11 elements": {
        "attachment": {
            "type": "template",
            "payload": {"template_type": "generic", "elements": [{"title": "t"}] * 11},
        }
    },
    "element without title": {
        "attachment": {
            "type": "template",
            "payload": {"template_type": "generic", "elements": [{"subtitle": "s"}]},
        }
    },
    "title over 80": {
        "attachment": {
            "type": "template",
            "payload": {"template_type": "generic", "elements": [{"title": "t" * 81}]},
        }
    },
    "subtitle over 80": {
        "attachment": {
            "type": "template",
            "payload": {"template_type": "generic", "elements": [{"title": "t", "subtitle": "s" * 81}]},
        }
    },
    "4 buttons on an element": {
        "attachment": {
            "type": "template",
            "payload": {
                "template_type": "generic",
                "elements": [
                    {
                        "title": "t",
                        "buttons": [{"type": "web_url", "url": "https://x.example/", "title": "b"}] * 4,
                    }
                ],
            },
        }
    },
    "button template text over 640": {
        "attachment": {
            "type": "template",
            "payload": {
                "template_type": "button",
                "text": "x" * 641,
                "buttons": [{"type": "web_url", "url": "https://x.example/", "title": "b"}],
            },
        }
    },
    "button template without buttons": {
        "attachment": {"type": "template", "payload": {"template_type": "button", "text": "x", "buttons": []}}
    },
    "button title over 20": {
        "attachment": {
            "type": "template",
            "payload": {
                "template_type": "button",
                "text": "x",
                "buttons": [{"type": "web_url", "url": "https://x.example/", "title": "b" * 21}],
            },
        }
    },
    "14 quick replies": {
        "text": "pick",
        "quick_replies": [{"content_type": "text", "title": "q", "payload": "P"}] * 14,
    },
    "text and attachment": {
        "text": "x",
        "attachment": {"type": "image", "payload": {"url": "https://x.example/a"}},
    },
    "unknown key": {"text": "x", "colour": "red"},
}


def test_invalid_messages_are_content_errors(sandbox: Sandbox) -> None:
    results = send(sandbox, [call(m) for m in INVALID.values()])
    for name, result in zip(INVALID, results, strict=True):
        assert result.outcome is Outcome.CONTENT, name
        assert result.code == "100", name
        assert (result.error or "").startswith("(#100) "), name
    assert sandbox.emulator.received(PSID) == []
    assert sandbox.emulator.stats()["errors"] == {"100": len(INVALID)}


def test_a_card_with_only_a_title_is_refused_like_graph_does(sandbox: Sandbox) -> None:
    bare = {
        "attachment": {
            "type": "template",
            "payload": {"template_type": "generic", "elements": [{"title": "t"}]},
        }
    }
    [result] = send(sandbox, [call(bare)])
    assert result.outcome is Outcome.CONTENT
    assert "Incomplete element data" in (result.error or "")
    assert sandbox.emulator.stats()["errors"] == {"100/2018035": 1}
    # what the layouts build for such a card passes: a link becomes an "Open" button
    cards = provider_calls(
        Message(
            format="messenger",
            modules=(Module(kind="cards", cards=(Card("t", url="https://x.example/t"), Card("u"))),),
        )
    )
    assert [r.outcome for r in send(sandbox, cards)] == [Outcome.SENT]


def test_invalid_tag_is_refused_by_the_provider(sandbox: Sandbox) -> None:
    bodies = [
        {"messaging_type": "MESSAGE_TAG", "message": {"text": "x"}},
        {"messaging_type": "MESSAGE_TAG", "tag": "SHIPPING_UPDATE", "message": {"text": "x"}},
        {"messaging_type": "PROMOTION", "message": {"text": "x"}},
    ]
    results = send(sandbox, [ProviderCall("messages", b) for b in bodies])
    assert [(r.outcome, r.code) for r in results] == [(Outcome.CONTENT, "100")] * 3


# --------------------------------------------------------------------------- window and tags


def test_skip_reason_inside_and_outside_the_window(sandbox: Sandbox) -> None:
    ch = channel(sandbox)
    fixed = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    at = SendContext(campaign_id=1, now=fixed)
    tagged = SendContext(campaign_id=1, now=fixed, message_tag="ACCOUNT_UPDATE")
    human = SendContext(campaign_id=1, now=fixed, message_tag="HUMAN_AGENT")
    promo = SendContext(campaign_id=1, now=fixed, message_tag="PROMOTION")

    inside = recipient(last_inbound=fixed - timedelta(hours=23, minutes=59))
    naive_inside = recipient(last_inbound=(fixed - timedelta(hours=2)).replace(tzinfo=None))
    outside = recipient(last_inbound=fixed - timedelta(hours=24, minutes=1))
    never = recipient(last_inbound=None)
    long_ago = recipient(last_inbound=fixed - timedelta(days=8))

    assert ch.skip_reason(inside, at) is None
    assert ch.skip_reason(naive_inside, at) is None
    assert ch.skip_reason(outside, at) == OUTSIDE_WINDOW
    assert ch.skip_reason(never, at) == OUTSIDE_WINDOW
    assert ch.skip_reason(outside, tagged) is None
    assert ch.skip_reason(never, tagged) is None
    assert ch.skip_reason(outside, human) is None
    assert "HUMAN_AGENT" in (ch.skip_reason(long_ago, human) or "")
    assert "PROMOTION" in (ch.skip_reason(outside, promo) or "")
    # without ctx.now the current time decides
    assert ch.skip_reason(recipient(last_inbound=NOW - timedelta(hours=25)), CTX) == OUTSIDE_WINDOW
    assert ch.skip_reason(recipient(last_inbound=OPEN), CTX) is None


def test_tagged_send_outside_the_window_goes_as_message_tag(sandbox: Sandbox) -> None:
    sandbox.emulator.add_person(PSID, last_inbound=CLOSED)
    tagged = SendContext(campaign_id=1, message_tag="POST_PURCHASE_UPDATE")
    closed = recipient(last_inbound=CLOSED)
    assert channel(sandbox).skip_reason(closed, tagged) is None

    [result] = send(sandbox, [TEXT], closed, tagged)

    assert result.outcome is Outcome.SENT
    [row] = sandbox.emulator.received(PSID)
    assert (row["messaging_type"], row["tag"]) == ("MESSAGE_TAG", "POST_PURCHASE_UPDATE")


def test_tag_is_not_used_inside_the_window(sandbox: Sandbox) -> None:
    tagged = SendContext(campaign_id=1, message_tag="ACCOUNT_UPDATE")
    [result] = send(sandbox, [TEXT], recipient(last_inbound=OPEN), tagged)
    assert result.outcome is Outcome.SENT
    [row] = sandbox.emulator.received(PSID)
    assert (row["messaging_type"], row["tag"]) == ("UPDATE", None)


# --------------------------------------------------------------------------- pacing


def test_rate_rules_per_page_and_for_slow_media(sandbox: Sandbox) -> None:
    ch = channel(sandbox)
    image = call({"attachment": {"type": "image", "payload": {"url": "https://cdn.example.com/a.jpg"}}})
    audio = call({"attachment": {"type": "audio", "payload": {"url": "https://cdn.example.com/a.mp3"}}})
    [text_rule] = ch.rate_rules(recipient(), TEXT)
    assert (text_rule.limit, text_rule.period) == (TEXT_RATE, 1) == (290, 1)
    assert len(ch.rate_rules(recipient(), image)) == 1
    for media in (VIDEO, audio):
        page_rule, media_rule = ch.rate_rules(recipient(), media)
        assert page_rule == text_rule
        assert (media_rule.limit, media_rule.period) == (MEDIA_RATE, 1) == (9, 1)
        assert media_rule.key != page_rule.key
    assert TOKEN not in text_rule.key
    # another page has another key; the same token, the same key
    assert channel(sandbox, "FB_WRONG").rate_rules(recipient(), TEXT)[0].key != text_rule.key
    assert channel(sandbox).rate_rules(recipient(), TEXT)[0].key == text_rule.key


def test_media_through_the_gate_never_hit_the_limit(sandbox: Sandbox) -> None:
    # the gate shares the emulator's fake clock and sends one call after the other:
    # each arrives at the instant the gate let it go, the emulator's windows judge exactly
    clock = sandbox.emulator.clock = FakeClock()
    ch = channel(sandbox)
    gate = RateGate(clock=clock)

    async def one(client_recipient: Recipient) -> Result:
        await gate.acquire(ch.rate_rules(client_recipient, VIDEO))
        result = await ch.send(client_recipient, VIDEO, CTX, 0)
        if result.pause_channel and result.retry_after:
            gate.pause(result.retry_after)
        return result

    async def campaign() -> list[Result]:
        async with httpx.AsyncClient(timeout=10) as client:
            await ch.open(client)
            people = [recipient(str(4_000_000 + n)) for n in range(20)]
            return [await one(p) for p in people]

    results = asyncio.run(campaign())
    assert [r.outcome for r in results] == [Outcome.SENT] * 20
    stats = sandbox.emulator.stats()
    media = stats["keys"][f"page:{PAGE_ID}:media"]
    assert stats["rate_limited"] == 0
    assert media["requests"] == 20
    assert media["max_window"] == MEDIA_RATE  # the gate uses the limit it keeps under
    assert media["over_limit"] == 0
    assert gate.waited >= 1.0  # 20 at 9/s: over two windows, in fake seconds


# --------------------------------------------------------------------------- secrets


def test_the_token_stays_out_of_urls_errors_and_logs(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # a provider error that echoes the token: the channel must scrub it
    sandbox.emulator.fail_next(PSID, 100, message=f"(#100) Bad value near {TOKEN}")
    results = send(sandbox, [TEXT, TEXT])
    assert [r.outcome for r in results] == [Outcome.CONTENT, Outcome.SENT]
    assert TOKEN not in (results[0].error or "")
    assert "****" in (results[0].error or "")
    [row] = sandbox.emulator.received(PSID)
    assert row["url"] == "/v25.0/me/messages"
    assert sandbox.emulator.stats()["token_via"] == {"header": 2}
    sandbox.emulator.configure(drop_rate=1.0)
    [dropped] = send(sandbox, [TEXT])
    assert dropped.outcome is Outcome.TRANSIENT
    assert dropped.code == "network"
    assert TOKEN not in (dropped.error or "")
    assert "POST" in caplog.text  # httpx logged its requests...
    assert TOKEN not in caplog.text  # ...without the token


def test_settings_refuse_a_literal_token() -> None:
    with pytest.raises(InvalidValue, match="env:VAR"):
        MessengerChannel.validate_settings({"page_token": TOKEN})
    with pytest.raises(InvalidValue, match="--page-token"):
        MessengerChannel.validate_settings({})
    with pytest.raises(InvalidValue, match="--api-url"):
        MessengerChannel.validate_settings(
            {"page_token": "env:FB_PAGE_TOKEN", "api_url": "graph.facebook.com"}
        )
    settings = MessengerChannel.validate_settings(
        {"page_token": "env:FB_PAGE_TOKEN", "verify_token": "hello"}
    )
    assert settings == {
        "page_token": "env:FB_PAGE_TOKEN",
        "verify_token": "hello",
        "api_url": "https://graph.facebook.com/v25.0",
    }
    shown = MessengerChannel.shown_settings(settings)
    assert shown["verify_token"] == "****"
    slash = MessengerChannel.validate_settings(
        {"page_token": "env:X", "api_url": "http://127.0.0.1:1/v25.0/"}
    )
    assert slash["api_url"] == "http://127.0.0.1:1/v25.0"


def test_recipients_are_psids(sandbox: Sandbox) -> None:
    ch = channel(sandbox)
    assert ch.validate_recipient(" 2500000000000001 ") == "2500000000000001"
    for bad in ("@someone", "25000x", "", "١٢٣"):
        with pytest.raises(InvalidValue):
            ch.validate_recipient(bad)


def test_open_without_the_environment_variable_is_one_clear_error(sandbox: Sandbox) -> None:
    ch = MessengerChannel(
        "fb", {"page_token": "env:FB_UNSET", "api_url": sandbox.api_url}, secrets=Secrets({})
    )
    with pytest.raises(ChannelError, match="FB_UNSET is not set") as info:
        asyncio.run(ch.open(None))
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- check


def test_check_names_the_page(sandbox: Sandbox) -> None:
    async def check(ch: MessengerChannel) -> str:
        async with httpx.AsyncClient(timeout=10) as client:
            await ch.open(client)
            return await ch.check()

    assert asyncio.run(check(channel(sandbox))) == f"page Sandbox Shop (id {PAGE_ID})"
    # without open(): its own short-lived client
    assert asyncio.run(channel(sandbox).check()) == f"page Sandbox Shop (id {PAGE_ID})"
    with pytest.raises(ChannelError) as info:
        asyncio.run(check(channel(sandbox, "FB_WRONG")))
    text = str(info.value)
    assert text.startswith("messenger channel 'fb': the page token was refused (190 ")
    assert ENV["FB_WRONG"] not in text
    assert sandbox.emulator.stats()["requests"] == 0  # nobody was messaged


def test_check_on_an_unreachable_api_is_a_channel_error(sandbox: Sandbox) -> None:
    ch = MessengerChannel(
        "fb", {"page_token": "env:FB_PAGE_TOKEN", "api_url": "http://127.0.0.1:9/v25.0"}, secrets=Secrets(ENV)
    )
    with pytest.raises(ChannelError, match="cannot reach"):
        asyncio.run(ch.check())


# --------------------------------------------------------------------------- faults


def test_fault_injection_gives_transient_results(sandbox: Sandbox) -> None:
    sandbox.emulator.configure(fault_rate=1.0, seed=11)
    first = send(sandbox, [TEXT] * 12)
    assert {r.outcome for r in first} == {Outcome.TRANSIENT}
    assert {r.code for r in first} == {"2", "1200"}
    assert not any(r.pause_channel for r in first)
    assert sandbox.emulator.stats()["faults"] == 12
    # the same seed gives the same faults
    sandbox.emulator.reset()
    again = send(sandbox, [TEXT] * 12)
    assert [r.code for r in again] == [r.code for r in first]
    assert sandbox.emulator.received(PSID) == []


def test_half_the_requests_faulty_some_get_through(sandbox: Sandbox) -> None:
    sandbox.emulator.configure(fault_rate=0.3, drop_rate=0.2, seed=3)
    results = send(sandbox, [TEXT] * 40)
    outcomes = {r.outcome for r in results}
    assert outcomes == {Outcome.SENT, Outcome.TRANSIENT}
    codes = {r.code for r in results if r.outcome is Outcome.TRANSIENT}
    assert "network" in codes
    assert codes & {"2", "1200"}
    stats = sandbox.emulator.stats()
    sent = sum(r.outcome is Outcome.SENT for r in results)
    assert stats["accepted"] == sent == len(sandbox.emulator.received(PSID))
    assert stats["dropped"] == sum(r.code == "network" for r in results)


# --------------------------------------------------------------------------- unit: classify


def test_classify_answers_without_the_emulator() -> None:
    ch = MessengerChannel("fb", {"page_token": "env:X"}, secrets=Secrets({"X": TOKEN}))

    def error(code: int, subcode: int | None = None, **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"message": "m", "type": "OAuthException", "code": code, **extra}
        if subcode:
            body["error_subcode"] = subcode
        return {"error": body}

    usage = {"x-business-use-case-usage": '{"1": [{"type": "pages", "estimated_time_to_regain_access": 2}]}'}
    assert ch.classify(400, error(613), usage).retry_after == 120
    assert ch.classify(400, error(613), {"retry-after": "3"}).retry_after == 3
    assert ch.classify(400, error(32), {}).pause_channel
    assert ch.classify(500, error(9999, is_transient=True), {}).outcome is Outcome.TRANSIENT
    assert ch.classify(502, None, {}).outcome is Outcome.TRANSIENT
    assert ch.classify(429, None, {}).pause_channel
    assert ch.classify(400, error(12345), {}).outcome is Outcome.CONTENT
    assert ch.classify(403, error(230), {}).outcome is Outcome.FATAL
    assert ch.classify(400, error(368), {}).outcome is Outcome.FATAL
    assert ch.classify(400, error(10, 2018065), {}).outcome is Outcome.FATAL
    assert ch.classify(400, error(551), {}).subscriber_status == "unreachable"
    assert ch.classify(200, {"recipient_id": "1", "message_id": "m_1"}, {}) == Result.sent("m_1")
    assert ch.classify(200, None, {}) == Result.sent(None)


# --------------------------------------------------------------------------- control API


def test_control_api_over_http(sandbox: Sandbox) -> None:
    sandbox.emulator.clock = FakeClock()  # max_window below counts requests of one instant
    with httpx.Client(base_url=sandbox.base_url, timeout=10) as http:
        page = http.post(
            "/_sandbox/pages", json={"token": "EAAotherPage00000", "page_id": "77", "name": "Other"}
        )
        assert page.json() == {"id": "77", "name": "Other", "permissions": True}
        pages = http.get("/_sandbox/pages").json()
        assert {p["id"] for p in pages} == {PAGE_ID, "77"}
        assert "EAAotherPage00000" not in http.get("/_sandbox/pages").text

        closed_at = (NOW - timedelta(days=3)).isoformat()
        people = http.post(
            "/_sandbox/people",
            json=[{"psid": "111", "last_inbound": closed_at}, {"psid": "222", "status": "blocked"}],
        )
        assert people.status_code == 200
        assert people.json()[0]["last_inbound"] == closed_at
        # an update keeps what it does not mention
        http.post("/_sandbox/people", json={"psid": "222", "last_inbound": "now"})
        listed = {p["psid"]: p for p in http.get("/_sandbox/people").json()}
        assert listed["222"]["status"] == "blocked"
        assert listed["222"]["last_inbound"] is not None

        headers = {"Authorization": "Bearer EAAotherPage00000"}
        body = {"recipient": {"id": "111"}, "messaging_type": "UPDATE", "message": {"text": "hi"}}
        closed = http.post("/v25.0/me/messages", headers=headers, json=body)
        assert closed.status_code == 400
        assert closed.json()["error"]["error_subcode"] == 2018278
        http.post("/_sandbox/people", json={"psid": "111", "last_inbound": "now"})
        sent = http.post("/v25.0/me/messages", headers=headers, json=body)
        assert sent.status_code == 200
        assert sent.json()["recipient_id"] == "111"

        # the token as a query parameter and in a form body also work (Graph accepts both)
        query = http.post("/v19.0/me/messages", params={"access_token": "EAAotherPage00000"}, json=body)
        assert query.status_code == 200
        form = http.post(
            "/me/messages",
            data={
                "access_token": "EAAotherPage00000",
                "recipient": '{"id": "111"}',
                "message": '{"text": "f"}',
            },
        )
        assert form.status_code == 200

        received = http.get("/_sandbox/received", params={"psid": "111"}).json()
        assert [m["message"]["text"] for m in received["messages"]] == ["hi", "hi", "f"]
        assert received["messages"][1]["url"].startswith("/v19.0/me/messages?access_token=")
        assert set(http.get("/_sandbox/received").json()) == {"111"}

        stats = http.get("/_sandbox/stats").json()
        assert (stats["requests"], stats["accepted"], stats["rejected"]) == (4, 3, 1)
        assert stats["token_via"] == {"header": 2, "query": 1, "body": 1}
        assert stats["keys"]["page:77"]["max_window"] == 4

        config = http.post("/_sandbox/config", json={"limits": False, "fault_rate": 0.25}).json()
        assert (config["limits"], config["fault_rate"]) == (False, 0.25)
        assert http.post("/_sandbox/config", json={"colour": 1}).status_code == 400
        http.post("/_sandbox/config", json={"fault_rate": 0})

        assert (
            http.post("/_sandbox/errors", json={"psid": "*", "code": 1200, "status": 503}).status_code == 200
        )
        faulty = http.post("/v25.0/me/messages", headers=headers, json=body)
        assert (faulty.status_code, faulty.json()["error"]["code"]) == (503, 1200)

        me = http.get("/v25.0/me", headers=headers).json()
        assert me == {"id": "77", "name": "Other"}
        bad = http.get("/v25.0/me", headers={"Authorization": "Bearer nope"})
        assert (bad.status_code, bad.json()["error"]["code"]) == (401, 190)

        assert http.post("/_sandbox/people", json={"status": "blocked"}).status_code == 400
        assert http.post("/_sandbox/reset").json() == {"ok": True}
        assert http.get("/_sandbox/received", params={"psid": "111"}).json()["messages"] == []
        assert http.get("/_sandbox/stats").json()["requests"] == 0
        assert len(http.get("/_sandbox/people").json()) == 2  # kept
        http.post("/_sandbox/reset", json={"everything": True})
        assert http.get("/_sandbox/pages").json() == []
