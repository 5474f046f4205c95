"""The Messenger webhook of ``feedcast web``, over real HTTP on loopback: the Messenger
emulator posts signed webhook events (as Meta does) to the app served by uvicorn, and
receives the page's replies through its Send API."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router

from channels.base import REDACTOR
from feedcast.delivery import SendSettings, send_automation
from feedcast.kernel.models import Item, NewSubscriber, PollOutcome
from feedcast.sandbox.asgi import AsgiServer
from feedcast.sandbox.messenger import MessengerEmulator
from feedcast.store import Store
from feedcast.web.app import MAX_BODY, create_app

PAGE_TOKEN = "EAAwebhookPageToken0123456789"
APP_SECRET = "app-secret-0123456789abcdef"
VERIFY = "verify-token-5566778899"
ENV = {"FB_PAGE_TOKEN": PAGE_TOKEN, "FB_APP_SECRET": APP_SECRET, "FB_VERIFY": VERIFY}
PAGE_ID = "1000000077"
PSID = "2500000000000042"
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
FAST = SendSettings(backoff=0.05, backoff_cap=0.2, flush_interval=0.05)


@pytest.fixture(scope="module")
def _graph() -> Iterator[tuple[MessengerEmulator, str]]:
    emulator = MessengerEmulator(seed=3)
    with AsgiServer(emulator.app, name="messenger") as server:
        yield emulator, server.base_url


@dataclass
class Web:
    emulator: MessengerEmulator
    store: Store  # the app's own (guarded) store: no DuckDB connection clash with the app's threads
    base_url: str
    caplog: pytest.LogCaptureFixture

    def url(self, channel: str = "fb") -> str:
        return f"{self.base_url}/messenger/{channel}"

    def wait(self, what: str, check: Callable[[], Any], timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.02)

    def processed(self, psid: str, action: str, count: int = 1) -> None:
        """Wait until the app logged ``count`` events of ``psid`` handled as ``action``
        (logged once its replies were sent)."""
        needle = f"from {psid} -> {action}"

        def seen() -> bool:
            return sum(needle in r.getMessage() for r in self.caplog.records) >= count

        self.wait(f"{psid} -> {action}", seen)

    def inbound(self, psid: str = PSID) -> list[dict[str, Any]]:
        return self.store.query("SELECT * FROM inbound WHERE sender = ? ORDER BY id", [psid])[1]

    def texts(self, psid: str = PSID) -> list[str]:
        return [m["message"].get("text", "") for m in self.emulator.received(psid)]


def _setup(tmp_path: Path, api_url: str, settings: dict[str, str] | None = None) -> Store:
    store = Store(tmp_path / "feedcast.duckdb")
    store.set_audiences_public(["vip", "spring-sale"])  # what m.me links here may subscribe to
    store.add_channel(
        "fb",
        "messenger",
        settings
        or {
            "page_token": "env:FB_PAGE_TOKEN",
            "app_secret": "env:FB_APP_SECRET",
            "verify_token": "env:FB_VERIFY",
            "api_url": api_url,
        },
    )
    return store


@pytest.fixture
def web(
    tmp_path: Path, _graph: tuple[MessengerEmulator, str], caplog: pytest.LogCaptureFixture
) -> Iterator[Web]:
    emulator, graph_url = _graph
    emulator.reset(everything=True)
    emulator.configure(limits=True, fault_rate=0.0, drop_rate=0.0, auto_people=True, auto_window_open=False)
    emulator.add_page(PAGE_TOKEN, PAGE_ID, name="Sandbox Shop")
    caplog.set_level(logging.INFO, logger="feedcast")
    store = _setup(tmp_path, graph_url + "/v25.0")
    app = create_app(store, public_url="https://hooks.example", environ=ENV)
    with AsgiServer(app, name="web") as server:
        emulator.webhook(f"{server.base_url}/messenger/fb", APP_SECRET)
        yield Web(emulator, app.state.store, server.base_url, caplog)


# --------------------------------------------------------------------------- handshake


def test_handshake_echoes_the_challenge_only_for_the_right_token(web: Web) -> None:
    ok = httpx.get(
        web.url(), params={"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1158201444"}
    )
    assert ok.status_code == 200 and ok.text == "1158201444"
    assert ok.headers["content-type"].startswith("text/plain")
    for params in (
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY, "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
    ):
        refused = httpx.get(web.url(), params=params)
        assert refused.status_code == 403 and "1" not in refused.text
    assert httpx.get(web.url("nope"), params={"hub.mode": "subscribe"}).status_code == 404


def test_a_channel_without_verify_token_or_app_secret_refuses_and_says_why(tmp_path: Path) -> None:
    store = _setup(tmp_path, "http://127.0.0.1:9/v25.0", {"page_token": "env:FB_PAGE_TOKEN"})
    logs = logging.getLogger("feedcast.web.messenger")
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logs.addHandler(handler)
    try:
        with AsgiServer(create_app(store, public_url="http://127.0.0.1", environ=ENV)) as server:
            url = server.base_url + "/messenger/fb"
            params = {"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "7"}
            assert httpx.get(url, params=params).status_code == 403
            signed = httpx.post(url, content=b"{}", headers={"X-Hub-Signature-256": "sha256=00"})
            assert signed.status_code == 403
    finally:
        logs.removeHandler(handler)
    assert any("no --verify-token" in r for r in records)
    assert any("no --app-secret" in r for r in records)
    assert not store.query("SELECT * FROM inbound")[1]


# --------------------------------------------------------------------------- signatures


def test_a_signed_post_is_answered_at_once_and_processed_after(web: Web) -> None:
    answer = web.emulator.person_writes(PSID, "hello there")
    assert answer.status_code == 200 and answer.text == "EVENT_RECEIVED"
    processed = lambda: [r for r in web.inbound() if r["action"] not in (None, "pending")]  # noqa: E731
    [row] = web.wait("the inbound row processed", processed)
    assert (row["kind"], row["text"], row["action"]) == ("message", "hello there", "default")
    assert row["provider_id"].startswith("m_")


def test_unsigned_or_badly_signed_posts_are_refused_and_not_recorded(web: Web) -> None:
    body = web.emulator.event_body(PSID, {"message": {"mid": "m_forged", "text": "subscribe"}})
    assert web.emulator.send_raw(body, signature=False).status_code == 403
    assert web.emulator.send_raw(body, signature="sha256=" + "0" * 64).status_code == 403
    assert web.emulator.send_raw(body, signature="not-even-a-signature").status_code == 403
    # signed for another body: the signature covers the raw bytes
    other = web.emulator.sign(body + b" ")
    assert web.emulator.send_raw(body, signature=other).status_code == 403
    # a genuine event afterwards is processed: the refused ones never were
    assert web.emulator.person_writes(PSID, "hi").status_code == 200
    web.processed(PSID, "default")
    assert [r["text"] for r in web.inbound()] == ["hi"]
    assert web.store.list_subscribers("fb") == []
    assert any("signature does not match" in r.getMessage() for r in web.caplog.records)


def test_the_same_mid_twice_is_processed_once(web: Web) -> None:
    first = web.emulator.person_writes(PSID, "subscribe")
    assert first.status_code == 200
    again = web.emulator.send_raw(first.request.content)  # Meta retries, same mid
    assert again.status_code == 200
    web.processed(PSID, "subscribed")
    web.processed(PSID, "duplicate")
    assert len(web.inbound()) == 1
    assert len(web.emulator.received(PSID)) == 1  # one welcome


# --------------------------------------------------------------------------- behaviour


def test_get_started_gets_the_presentation(web: Web) -> None:
    assert web.emulator.person_postback(PSID, "GET_STARTED", title="Get Started").status_code == 200
    web.processed(PSID, "presentation")
    [got] = web.emulator.received(PSID)
    assert got["messaging_type"] == "RESPONSE"
    assert "This is fb" in got["message"]["text"]
    assert got["message"]["quick_replies"] == [
        {"content_type": "text", "title": "Subscribe", "payload": "SUBSCRIBE"}
    ]
    [row] = web.inbound()
    assert (row["kind"], row["action"]) == ("postback", "presentation")
    assert web.store.list_subscribers("fb") == []  # presented, not subscribed


def test_subscribe_then_stop(web: Web) -> None:
    web.emulator.person_writes(PSID, "Subscribe")
    web.processed(PSID, "subscribed")
    sub = web.store.get_subscriber("fb", PSID)
    assert sub.status == "active" and sub.last_inbound_at is not None
    assert web.texts()[-1].startswith("You are subscribed")
    assert web.emulator.received(PSID)[-1]["message"]["quick_replies"][0]["payload"] == "UNSUBSCRIBE"

    web.emulator.person_quick_reply(PSID, "UNSUBSCRIBE", "Unsubscribe")
    web.processed(PSID, "unsubscribed")
    assert web.store.get_subscriber("fb", PSID).status == "unsubscribed"
    assert web.texts()[-1].startswith("You are unsubscribed")

    web.emulator.person_writes(PSID, "start")
    web.processed(PSID, "resubscribed")
    web.emulator.person_writes(PSID, "STOP")
    web.processed(PSID, "unsubscribed", count=2)
    assert web.store.get_subscriber("fb", PSID).status == "unsubscribed"
    _, events = web.store.query(
        "SELECT event, source FROM subscription_events e JOIN subscribers s ON s.id = e.subscriber_id"
        " WHERE s.recipient = ? ORDER BY e.id",
        [PSID],
    )
    assert [(e["event"], e["source"]) for e in events] == [
        ("subscribe", "bot"),
        ("unsubscribe", "bot"),
        ("subscribe", "bot"),
        ("unsubscribe", "bot"),
    ]
    assert len(web.texts()) == 4  # welcome, goodbye, welcome, goodbye


def test_an_m_me_link_with_ref_subscribes_to_that_tag(web: Web) -> None:
    web.emulator.person_referral(PSID, "vip")
    web.processed(PSID, "subscribed")
    sub = web.store.get_subscriber("fb", PSID)
    assert sub.tags == ("vip",) and sub.status == "active"
    [welcome] = web.texts()
    assert welcome.startswith("You are subscribed to vip.")
    # a new conversation opened by the link: Get Started carries the ref
    other = "2500000000000043"
    web.emulator.person_postback(other, "GET_STARTED", ref="spring-sale")
    web.processed(other, "subscribed")
    assert web.store.get_subscriber("fb", other).tags == ("spring-sale",)
    presentation, welcome = web.texts(other)
    assert "This is fb" in presentation and "subscribed to spring-sale" in welcome


def test_other_text_gets_the_default_reply_unless_it_is_turned_off(web: Web) -> None:
    web.emulator.person_writes(PSID, "what are your opening hours?")
    web.processed(PSID, "default")
    assert web.texts() == ["Send /start to subscribe or /stop to unsubscribe."]
    web.store.set_bot_reply("fb", "default", template=None, enabled=False)
    web.emulator.person_writes(PSID, "hello?")
    web.processed(PSID, "default", count=2)
    assert len(web.texts()) == 1  # turned off: recorded, not answered
    assert [r["action"] for r in web.inbound()] == ["default", "default"]


def test_echoes_and_receipts_are_ignored(web: Web) -> None:
    body = {
        "object": "page",
        "entry": [
            {
                "id": PAGE_ID,
                "time": 1,
                "messaging": [
                    {"sender": {"id": PAGE_ID}, "recipient": {"id": PSID}, "timestamp": 1,
                     "message": {"mid": "m_echo", "is_echo": True, "text": "our own"}},
                    {"sender": {"id": PSID}, "recipient": {"id": PAGE_ID}, "timestamp": 2,
                     "delivery": {"mids": ["m_x"], "watermark": 2}},
                    {"sender": {"id": PSID}, "recipient": {"id": PAGE_ID}, "timestamp": 3,
                     "read": {"watermark": 3}},
                    {"sender": {"id": PSID}, "recipient": {"id": PAGE_ID}, "timestamp": int(time.time() * 1000),
                     "message": {"mid": "m_real", "text": "stop"}},
                ],
            }
        ],
    }  # fmt: skip
    web.emulator.touch(PSID)  # the person wrote: the emulator's window opens (send_raw does not)
    assert web.emulator.send_raw(body).status_code == 200
    web.processed(PSID, "not subscribed")
    assert [r["provider_id"] for r in web.inbound()] == ["m_real"]
    assert web.inbound(PAGE_ID) == []
    assert web.texts() == ["You are unsubscribed and will get no more messages. Send /start to come back."]


@pytest.mark.slow
def test_a_message_reopens_the_24_hour_window_for_campaigns(web: Web) -> None:
    store = web.store
    old = datetime.now(UTC) - timedelta(days=2)
    store.add_subscribers("fb", [NewSubscriber(PSID, last_inbound_at=old)])
    web.emulator.add_person(PSID, last_inbound=old)
    store.add_source("blog", "https://blog.example/feed.xml")
    _poll(store, "old", T0)
    store.add_automation(
        "news", channel="fb", layout="single", sources=["blog"], max_items=1, since=T0 + timedelta(minutes=1)
    )
    _poll(store, "first", T0 + timedelta(hours=1))
    [skipped] = send_automation(store, "news", settings=FAST, environ=ENV)
    assert (skipped.campaign.sent, skipped.campaign.skipped) == (0, 1)

    web.emulator.person_writes(PSID, "hi again")
    web.processed(PSID, "default")
    last = store.get_subscriber("fb", PSID).last_inbound_at
    assert last is not None and last > datetime.now(UTC) - timedelta(minutes=1)

    _poll(store, "second", T0 + timedelta(hours=2))
    [sent] = send_automation(store, "news", settings=FAST, environ=ENV)
    assert (sent.campaign.sent, sent.campaign.skipped) == (1, 0)
    assert any("Post second" in str(m["message"]) for m in web.emulator.received(PSID))


def _poll(store: Store, key: str, when: datetime) -> None:
    source = store.get_source("blog")
    item = Item(key=key, title=f"Post {key}", url=f"https://blog.example/{key}", published=when)
    store.record_polls(
        [
            PollOutcome(
                source_id=source.id,
                url=source.url,
                started_at=when,
                duration=0.01,
                outcome="ok",
                status=200,
                items=(item,),
            )
        ],
        now=when,
    )


# --------------------------------------------------------------------------- the app


def test_a_body_over_the_limit_is_refused_with_413(web: Web) -> None:
    big = b"{" + b" " * MAX_BODY + b"}"
    declared = httpx.post(web.url(), content=big, headers={"X-Hub-Signature-256": web.emulator.sign(big)})
    assert declared.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(20):
            yield b" " * 65536

    streamed = httpx.post(web.url(), content=chunks(), headers={"X-Hub-Signature-256": "sha256=00"})
    assert streamed.status_code == 413
    assert web.inbound() == []


def test_healthz_and_the_security_headers(web: Web) -> None:
    answer = httpx.get(web.base_url + "/healthz")
    assert answer.status_code == 200 and answer.json() == {"status": "ok"}
    for response in (answer, httpx.get(web.url(), params={"hub.mode": "subscribe"})):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "default-src 'none'" in response.headers["content-security-policy"]


def test_an_unexpected_error_is_a_short_500_and_a_scrubbed_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from feedcast.web.app import _Errors, _SecurityHeaders

    secret = "sk-live-do-not-leak-0123456789"
    REDACTOR.add(secret)

    async def boom(request: Request) -> Response:
        raise RuntimeError(f"the provider said no to {secret}")

    inner = Router(routes=[Route("/u/{token}", boom)])  # as create_app's routes, inside the guards
    with AsgiServer(_SecurityHeaders(_Errors(inner))) as server:
        answer = httpx.get(server.base_url + "/u/TOKEN-abc")
    assert answer.status_code == 500 and answer.json() == {"error": "internal error"}
    assert "Traceback" not in answer.text and secret not in answer.text
    assert answer.headers["x-content-type-options"] == "nosniff"
    [record] = [r for r in caplog.records if r.name == "feedcast.web.app"]
    assert "RuntimeError" in record.getMessage() and "****" in record.getMessage()
    assert secret not in record.getMessage() and "TOKEN-abc" not in record.getMessage()


# --------------------------------------------------------------------------- the command


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_feedcast_web_serves_until_interrupted_and_prints_the_endpoints(tmp_path: Path) -> None:
    _setup(tmp_path, "http://127.0.0.1:9/v25.0")
    port = _free_port()
    env = {**os.environ, **ENV, "FEEDCAST_DB": str(tmp_path / "feedcast.duckdb")}
    env.pop("FEEDCAST_PUBLIC_URL", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from feedcast.cli import main; main()",
            "web",
            "--port",
            str(port),
            "--public-url",
            "https://hooks.example",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "feedcast web did not start"
            time.sleep(0.05)
        params = {"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "42"}
        assert httpx.get(f"http://127.0.0.1:{port}/messenger/fb", params=params).text == "42"
    finally:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=15)
    assert process.returncode == 0, stderr
    assert "messenger fb: https://hooks.example/messenger/fb" in stdout
    assert "https://hooks.example/healthz" in stdout
    assert "note: campaigns put links on FEEDCAST_PUBLIC_URL" in stderr
    assert "Traceback" not in stderr


def test_the_emulator_control_api_plays_the_person_too(web: Web) -> None:
    control = web.emulator
    with AsgiServer(control.app, name="messenger-control") as server:
        target = httpx.get(server.base_url + "/_sandbox/webhook").json()
        assert target == {"url": web.url(), "page_id": None}  # the app secret is never listed
        answer = httpx.post(server.base_url + "/_sandbox/inbound", json={"psid": PSID, "referral": "vip"})
        assert answer.json() == {"status": 200, "body": "EVENT_RECEIVED"}
        bad = httpx.post(
            server.base_url + "/_sandbox/inbound", json={"psid": PSID, "text": "a", "postback": "b"}
        )
        assert bad.status_code == 400
    web.processed(PSID, "subscribed")
    assert web.store.get_subscriber("fb", PSID).tags == ("vip",)
    person = control.person(PSID)
    assert person is not None and person.last_inbound is not None  # the window opened
