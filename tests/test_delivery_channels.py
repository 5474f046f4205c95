"""The same guarantees on every channel: a campaign through the engine reaches everyone
once, secrets stay out of DuckDB and the logs, and a campaign killed midway resumes
without loss and with duplicates bounded by the channel's in-flight limit."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from channels import channel_class
from feedcast.delivery import SendSettings, send_automation
from feedcast.models import Item, NewSubscriber, PollOutcome
from feedcast.sandbox import AsgiServer
from feedcast.sandbox.messenger import MessengerEmulator
from feedcast.sandbox.smtp import SmtpSink
from feedcast.sandbox.telegram import TelegramEmulator
from feedcast.sandbox.webhooks import WebhookReceiver
from feedcast.store import Store

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
FAST = SendSettings(backoff=0.05, backoff_cap=0.2, flush_interval=0.05)
SECRET = "S3cr3t-value-never-stored-0123456789"


@dataclass
class Rig:
    """A channel kind wired to its emulator."""

    kind: str
    settings: dict[str, str]
    env: dict[str, str]
    recipients: Callable[[int], list[NewSubscriber]]
    accepted: Callable[[], int]
    received: Callable[[str], int]  # messages one recipient got


@pytest.fixture(params=["telegram", "messenger", "email", "webhook"])
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    kind = request.param
    with ExitStack() as stack:
        if kind == "telegram":
            tg = TelegramEmulator(seed=1)
            tg.add_bot("5555:" + SECRET)
            server = stack.enter_context(AsgiServer(tg.app))
            yield Rig(
                kind,
                {"token": "env:SECRET_TOKEN", "api_url": server.base_url},
                {"SECRET_TOKEN": "5555:" + SECRET},
                lambda n: [NewSubscriber(str(10_000 + i)) for i in range(n)],
                lambda: int(tg.stats()["accepted"]),
                lambda r: len(tg.received(r)),
            )
        elif kind == "messenger":
            fb = MessengerEmulator(seed=1)
            fb.add_page(SECRET, page_id="77", name="Page")
            server = stack.enter_context(AsgiServer(fb.app))
            now = datetime.now(UTC)
            yield Rig(
                kind,
                {"page_token": "env:SECRET_TOKEN", "api_url": server.base_url + "/v25.0"},
                {"SECRET_TOKEN": SECRET},
                lambda n: [NewSubscriber(str(90_000 + i), last_inbound_at=now) for i in range(n)],
                lambda: int(fb.stats()["accepted"]),
                lambda r: len(fb.received(r)),
            )
        elif kind == "email":
            sink = stack.enter_context(SmtpSink(users={"mailer": SECRET}))
            yield Rig(
                kind,
                {
                    "smtp": sink.url,
                    "from_addr": "news@shop.example",
                    "user": "mailer",
                    "password": "env:SECRET_TOKEN",
                    "rate": "60",
                    "connections": "2",
                },
                {"SECRET_TOKEN": SECRET, "FEEDCAST_SECRET_KEY": "k" * 32},
                lambda n: [NewSubscriber(f"person{i}@example.org") for i in range(n)],
                lambda: sink.stats().accepted,
                lambda r: len(sink.messages_for(r)),
            )
        else:
            hooks = WebhookReceiver(seed=1)
            hooks.add_json("crm", secret=SECRET)
            server = stack.enter_context(AsgiServer(hooks.app))
            yield Rig(
                kind,
                {"url": server.base_url + "/hooks/crm", "format": "json", "secret": "env:SECRET_TOKEN"},
                {"SECRET_TOKEN": SECRET},
                lambda n: [],  # one implicit recipient: the webhook
                lambda: int(hooks.stats()["accepted"]),
                lambda r: len(hooks.received("json:crm")),
            )


def _setup(tmp_path: Path, rig: Rig, n: int) -> Store:
    store = Store(tmp_path / "feedcast.duckdb")
    source = store.add_source("blog", "https://blog.example/feed.xml")
    item = Item(key="a", title="A post", url="https://blog.example/a", summary="<p>Hello</p>", published=T0)
    old = Item(key="old", title="Old", url="https://blog.example/old", published=T0 - timedelta(days=1))
    store.record_polls([PollOutcome(source.id, source.url, T0, 0.01, "ok", 200, items=(old,))], now=T0)
    cls = channel_class(rig.kind)
    store.add_channel(
        "ch", rig.kind, cls.validate_settings(rig.settings), fixed_recipient=cls.fixed_recipient
    )
    if rig.recipients(n):
        store.add_subscribers("ch", rig.recipients(n))
    store.add_automation(
        "auto", channel="ch", layout="single", sources=["blog"], max_items=1, since=T0 + timedelta(minutes=1)
    )
    later = T0 + timedelta(hours=1)
    store.record_polls(
        [PollOutcome(source.id, source.url, later, 0.01, "ok", 200, items=(item, old))], now=later
    )
    return store


def test_every_channel_delivers_once_and_keeps_secrets_out(
    tmp_path: Path, rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    store = _setup(tmp_path, rig, 5)
    with caplog.at_level(logging.DEBUG):
        [result] = send_automation(store, "auto", settings=FAST, environ=rig.env)
    expected = 1 if rig.kind == "webhook" else 5
    assert (result.campaign.status, result.campaign.sent) == ("sent", expected)
    _, rows = store.query("SELECT recipient, status, provider_message_id FROM send_history")
    assert len(rows) == expected and all(r["status"] == "sent" for r in rows)
    assert all(rig.received(r["recipient"]) == 1 for r in rows)
    assert SECRET not in caplog.text
    assert SECRET.encode() not in (tmp_path / "feedcast.duckdb").read_bytes()
    _, settings = store.query("SELECT settings FROM channels")
    assert "env:SECRET_TOKEN" in str(settings)


@pytest.mark.slow
@pytest.mark.parametrize(
    "rig", ["telegram", "messenger", "email"], indirect=True
)  # a webhook has one recipient
def test_a_killed_campaign_resumes_without_loss(tmp_path: Path, rig: Rig) -> None:
    n = {"telegram": 120, "messenger": 3000, "email": 240}[rig.kind]
    store = _setup(tmp_path, rig, n)
    env = {**os.environ, **rig.env, "FEEDCAST_DB": str(tmp_path / "feedcast.duckdb")}
    process = subprocess.Popen(
        [sys.executable, "-m", "feedcast.cli", "send", "auto"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while rig.accepted() < n // 5 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate()
    assert process.returncode == -signal.SIGKILL, stderr.decode()
    before = rig.accepted()
    assert before < n, "the kill came too late to test a resume"

    [resumed] = send_automation(store, "auto", settings=FAST, environ=rig.env)

    assert resumed.resumed and resumed.campaign.pending == 0 and resumed.campaign.sent == n
    _, rows = store.query("SELECT recipient FROM send_history")
    counts: dict[str, Any] = {r["recipient"]: rig.received(r["recipient"]) for r in rows}
    assert min(counts.values()) == 1, "a recipient was lost"
    duplicates = sum(counts.values()) - n
    assert duplicates <= SendSettings().max_unrecorded  # the documented bound
