"""The providers' limits as the engine keeps them: campaigns sent through
``send_automation`` (the channel's own rate rules, the engine's gate, default settings)
to the emulators running with the providers' real limits. Each test counts what the
emulator saw over its windows (its over-limit counters, or the arrival log counted over
sliding windows), never a wall-clock burst.

Without the pacing each of them breaks: Slack answers 429 to the second message of a
burst, a Telegram group refuses the 21st message of a minute, a Messenger page the
301st call of a second (on a machine fast enough to make them)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from channels import channel_class
from feedcast.delivery import SendSettings, send_automation
from feedcast.kernel.models import Item, NewSubscriber, PollOutcome
from feedcast.sandbox import AsgiServer
from feedcast.sandbox.messenger import MessengerEmulator
from feedcast.sandbox.telegram import GROUP_PER_MINUTE, TelegramEmulator
from feedcast.sandbox.webhooks import WebhookReceiver
from feedcast.store import Store

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
NETWORK = {"FEEDCAST_ALLOW_PRIVATE_NETWORKS": "1"}  # the emulators are on loopback


def _store(
    tmp_path: Path,
    kind: str,
    settings: dict[str, str],
    recipients: Sequence[NewSubscriber],
    *,
    items: int = 1,
) -> Store:
    """A channel, its subscribers and an automation with ``items`` new posts queued
    (layout ``single``: one message per item)."""
    store = Store(tmp_path / "feedcast.duckdb")
    source = store.add_source("blog", "https://blog.example/feed.xml")
    old = Item(key="old", title="Old", url="https://blog.example/old", published=T0 - timedelta(days=1))
    store.record_polls([PollOutcome(source.id, source.url, T0, 0.01, "ok", 200, items=(old,))], now=T0)
    cls = channel_class(kind)
    store.add_channel("ch", kind, cls.validate_settings(settings), fixed_recipient=cls.fixed_recipient)
    if recipients:
        store.add_subscribers("ch", list(recipients))
    store.add_automation(
        "auto",
        channel="ch",
        layout="single",
        sources=["blog"],
        max_items=items,
        since=T0 + timedelta(minutes=1),
    )
    later = T0 + timedelta(hours=1)
    posts = tuple(
        Item(
            key=f"p{i}",
            title=f"Post {i}",
            url=f"https://blog.example/p{i}",
            published=later - timedelta(seconds=i),
        )
        for i in range(items)
    )
    store.record_polls(
        [PollOutcome(source.id, source.url, later, 0.01, "ok", 200, items=(*posts, old))], now=later
    )
    return store


def _most_in_a_window(times: Sequence[float], period: float) -> int:
    """The most arrivals in any sliding window of ``period`` seconds (half-open, as the
    providers count: an arrival ``period`` after another is in the next window)."""
    ordered = sorted(times)
    most, start = 0, 0
    for end, stamp in enumerate(ordered):
        while ordered[start] <= stamp - period:
            start += 1
        most = max(most, end - start + 1)
    return most


def test_messenger_campaign_of_320_stays_under_290_a_second(tmp_path: Path) -> None:
    token = "PAGE-limits-token-0123456789"
    emulator = MessengerEmulator(seed=1, limits=True, auto_people=True)
    emulator.add_page(token, page_id="4242", name="Shop")
    now = datetime.now(UTC)
    people = [NewSubscriber(str(70_000 + i), last_inbound_at=now) for i in range(320)]
    env = {"FB_TOKEN": token, **NETWORK}
    with AsgiServer(emulator.app) as server:
        store = _store(
            tmp_path,
            "messenger",
            {"page_token": "env:FB_TOKEN", "api_url": server.base_url + "/v25.0"},
            people,
        )
        [result] = send_automation(store, "auto", settings=SendSettings(), environ=env)
    stats = emulator.stats()
    assert result.campaign.sent == 320 and stats["accepted"] == 320
    assert stats["rate_limited"] == 0 and "613" not in str(stats["errors"])  # no (#613) answer
    [page] = [w for key, w in stats["keys"].items() if not key.endswith(":media")]
    assert page["over_limit"] == 0 and page["max_window"] <= page["limit"] == 300


def test_slack_webhook_gets_one_message_a_second(tmp_path: Path) -> None:
    receiver = WebhookReceiver(seed=1, limits=True)
    hook = receiver.add_slack("T0LIMITS/B0LIMITS/limits-slack-token-0001")
    with AsgiServer(receiver.app) as server:
        env = {"HOOK_URL": server.base_url + hook.path, **NETWORK}
        store = _store(tmp_path, "webhook", {"url": "env:HOOK_URL", "format": "slack"}, (), items=5)
        [result] = send_automation(store, "auto", settings=SendSettings(), environ=env)
    stats = receiver.stats(hook.name)
    assert result.campaign.sent == 1 and result.campaign.calls == 5
    assert stats["accepted"] == 5 and stats["rate_limited"] == 0
    # the receiver's own sliding second (every request it saw) never held two
    assert stats["over_limit"] == 0 and stats["max_per_second"] == 1
    arrivals = [r.at for r in receiver.received(hook.name)]
    assert _most_in_a_window(arrivals, 1.0) == 1


@pytest.mark.slow  # 21 messages to a group, paced at 19 a minute: about 64 s
def test_telegram_group_gets_at_most_20_messages_a_minute(tmp_path: Path) -> None:
    token = "777001:GROUP-limits-token-abcdefgh"
    emulator = TelegramEmulator(seed=1, limits=True)
    emulator.add_bot(token, "limits_bot")
    groups = [-1001000000001, -1001000000002]
    for chat in groups:
        emulator.add_chat(chat, kind="supergroup")
    env = {"TG_TOKEN": token, **NETWORK}
    n = GROUP_PER_MINUTE + 1  # one more than a group takes in a minute
    with AsgiServer(emulator.app) as server:
        store = _store(
            tmp_path,
            "telegram",
            {"token": "env:TG_TOKEN", "api_url": server.base_url},
            [NewSubscriber(str(chat)) for chat in groups],
            items=n,
        )
        [result] = send_automation(store, "auto", settings=SendSettings(), environ=env)
    assert result.campaign.sent == 2 and result.campaign.calls == n
    chats = emulator.stats(chats=True)["chats"]
    for chat in groups:
        got = emulator.received(chat)
        assert len(got) == n
        assert chats[str(chat)]["rate_limited"] == 0 and chats[str(chat)]["over_limit"] == 0
        # counted over the provider's window, arrivals as the emulator logged them: never
        # more than the group's 20 a minute (the engine aims at 19; arrival jitter can put
        # the 20th a few ms inside the first one's minute)
        assert _most_in_a_window([m["time"] for m in got], 60.0) <= GROUP_PER_MINUTE
