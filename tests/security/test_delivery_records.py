"""Delivery records after a crash (issue 13.8): `feedcast send` killed with SIGKILL in
the middle of a campaign, then rerun, all through the real command line against the
Telegram emulator. The recipients the crash made feedcast message twice must show in
send_history, as analysts read it with `feedcast sql`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from feedcast.kernel.models import Item, NewSubscriber, PollOutcome
from feedcast.sandbox import AsgiServer
from feedcast.sandbox.telegram import TelegramEmulator
from feedcast.store import Store

TOKEN = "909090:CRASH-window-token-abcdefgh"
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@pytest.fixture
def telegram() -> Iterator[tuple[TelegramEmulator, str]]:
    emulator = TelegramEmulator(seed=1, limits=True, auto_chats=True)
    emulator.add_bot(TOKEN, "crash_bot")
    with AsgiServer(emulator.app) as server:
        yield emulator, server.base_url


def _feedcast(db: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "TG_TOKEN": TOKEN, "FEEDCAST_DB": str(db), "FEEDCAST_ALLOW_PRIVATE_NETWORKS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "feedcast.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _sql(db: Path, query: str) -> list[dict[str, Any]]:
    process = _feedcast(db, "sql", query, "--format", "json")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    rows: list[dict[str, Any]] = json.loads(out)
    return rows


@pytest.mark.slow
def test_a_crash_mid_campaign_shows_every_duplicate_in_send_history(
    tmp_path: Path, telegram: tuple[TelegramEmulator, str]
) -> None:
    emulator, url = telegram
    db = tmp_path / "feedcast.duckdb"
    chats = [str(4000 + i) for i in range(150)]
    store = Store(db)
    source = store.add_source("blog", "https://blog.example/feed.xml")
    old = Item(key="old", title="Old", url="https://blog.example/old", published=T0 - timedelta(days=1))
    store.record_polls([PollOutcome(source.id, source.url, T0, 0.01, "ok", 200, items=(old,))], now=T0)
    store.add_channel("tg", "telegram", {"token": "env:TG_TOKEN", "api_url": url})
    store.add_subscribers("tg", [NewSubscriber(c) for c in chats])
    store.add_automation(
        "news", channel="tg", layout="single", sources=["blog"], max_items=1, since=T0 + timedelta(minutes=1)
    )
    later = T0 + timedelta(hours=1)
    post = Item(key="a", title="A post", url="https://blog.example/a", published=later)
    store.record_polls(
        [PollOutcome(source.id, source.url, later, 0.01, "ok", 200, items=(post, old))], now=later
    )

    sender = _feedcast(db, "send", "news")
    deadline = time.monotonic() + 60
    while emulator.stats()["accepted"] < 40 and time.monotonic() < deadline and sender.poll() is None:
        time.sleep(0.01)
    sender.send_signal(signal.SIGKILL)
    _, err = sender.communicate()
    assert sender.returncode == -signal.SIGKILL, err
    assert emulator.stats()["accepted"] < len(chats), "the kill came too late"

    # right after the crash: a delivery that reached its recipient but has no outcome on
    # record is in doubt, with its try counted
    doubt = {
        r["recipient"]: r
        for r in _sql(
            db, "SELECT recipient, attempts, unconfirmed_attempts FROM send_history WHERE status = 'pending'"
        )
    }
    reached = {c for c in doubt if emulator.received(int(c))}
    assert all(doubt[c]["unconfirmed_attempts"] == 1 and doubt[c]["attempts"] == 1 for c in reached)

    rerun = _feedcast(db, "send", "news", "--format", "json")
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    [resumed] = json.loads(out)["campaigns"]
    assert resumed["resumed"] and resumed["sent"] == len(chats) and resumed["pending"] == 0

    history = {
        r["recipient"]: r
        for r in _sql(
            db,
            "SELECT recipient, status, attempts, unconfirmed_attempts, possibly_duplicated FROM send_history",
        )
    }
    assert len(history) == len(chats) and all(r["status"] == "sent" for r in history.values())
    twice = {c for c in chats if len(emulator.received(int(c))) == 2}
    assert all(len(emulator.received(int(c))) in (1, 2) for c in chats)
    assert twice == reached  # the crash's duplicates: exactly those in doubt that had it
    for chat in twice:
        row = history[chat]
        assert row["attempts"] == 2 and row["unconfirmed_attempts"] == 1 and row["possibly_duplicated"], row
    flagged = {c for c, r in history.items() if r["possibly_duplicated"]}
    assert twice <= flagged and flagged <= set(doubt)  # flagged: what was in doubt, nothing more
