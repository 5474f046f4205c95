"""The audience side of the store: inbound de-duplication and the Messenger window,
people subscribing and leaving themselves, channel state, bot replies, links, opt-ins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from feedcast.kernel.errors import InvalidValue, NotFound
from feedcast.kernel.models import NewSubscriber
from feedcast.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "a.duckdb")
    store.add_channel("bot", "telegram", {"token": "env:T"})
    store.add_subscribers("bot", [NewSubscriber("11")])
    return store


def test_inbound_is_recorded_once_and_refreshes_the_window(store: Store) -> None:
    at = datetime(2026, 11, 25, 10, tzinfo=UTC)
    first = store.record_inbound(
        "bot", sender="11", kind="message", text="hi", provider_id="u1", received_at=at
    )
    assert first is not None
    assert store.record_inbound("bot", sender="11", kind="message", text="hi", provider_id="u1") is None
    assert store.get_subscriber("bot", "11").last_inbound_at == at
    member = store.record_inbound(
        "bot", sender="11", kind="member", provider_id="u2", received_at=at + timedelta(hours=1)
    )
    assert (
        member is not None and store.get_subscriber("bot", "11").last_inbound_at == at
    )  # not a person's action
    store.set_inbound_action(first, "replied")
    assert store.query("SELECT action FROM inbound WHERE id = ?", [first])[1] == [{"action": "replied"}]


def test_people_subscribe_leave_and_come_back(store: Store) -> None:
    sub, outcome = store.subscribe("bot", "22", tags=["launch"], source="bot", detail="/start launch")
    assert outcome == "subscribed" and sub.tags == ("launch",) and sub.status == "active"
    assert store.subscribe("bot", "22", tags=["vip"])[1] == "already"
    assert store.unsubscribe("bot", "22", detail="/stop") is True
    assert store.unsubscribe("bot", "22") is False
    sub, outcome = store.subscribe("bot", "22")
    assert outcome == "resubscribed" and sub.status == "active" and sub.tags == ("launch", "vip")
    _, events = store.query(
        "SELECT event, source FROM subscription_events WHERE subscriber_id = ? ORDER BY id", [sub.id]
    )
    assert [e["event"] for e in events] == ["subscribe", "unsubscribe", "subscribe"]
    left = store.unsubscribe_by_id(sub.id, source="link")
    assert left.status == "unsubscribed"
    with pytest.raises(NotFound):
        store.unsubscribe_by_id(999)


def test_channel_state_and_bot_replies(store: Store) -> None:
    assert store.channel_state("bot", "telegram.offset") is None
    store.set_channel_state("bot", "telegram.offset", "42")
    store.set_channel_state("bot", "telegram.offset", "43")
    assert store.channel_state("bot", "telegram.offset") == "43"
    assert store.bot_replies("bot")["welcome"] == (None, True)
    store.set_bot_reply("bot", "welcome", template="Hi {{ name }}!")
    store.set_bot_reply("bot", "default", template=None, enabled=False)
    replies = store.bot_replies("bot")
    assert replies["welcome"] == ("Hi {{ name }}!", True) and replies["default"] == (None, False)
    with pytest.raises(InvalidValue):
        store.set_bot_reply("bot", "farewell", template="x")


def test_clicks_go_only_to_recorded_links_and_optins_confirm(store: Store) -> None:
    store.add_campaign_links(7, ["https://a.example/1", "https://a.example/2"])
    assert store.record_click(7, 1, 1, user_agent="UA") == "https://a.example/2"
    with pytest.raises(NotFound):
        store.record_click(7, 1, 5)
    assert store.query("SELECT link, url FROM clicks")[1] == [{"link": 1, "url": "https://a.example/2"}]
    store.add_channel("mail", "email", {"smtp": "smtp://127.0.0.1:25", "from_addr": "a@b.example"})
    store.add_optin("tok123", "mail", "ann@example.org", ["news"])
    assert store.optin_confirmed_at("tok123") is None
    sub, outcome = store.confirm_optin("tok123")
    assert outcome == "subscribed" and sub.recipient == "ann@example.org" and sub.tags == ("news",)
    assert store.optin_confirmed_at("tok123") is not None
    with pytest.raises(NotFound):
        store.confirm_optin("nope")


def test_an_optin_expires_after_seven_days(store: Store) -> None:
    store.add_channel("mail", "email", {"smtp": "smtp://127.0.0.1:25", "from_addr": "a@b.example"})
    store.add_optin("old", "mail", "late@example.org")
    store.query("UPDATE optins SET created_at = now() - INTERVAL 8 DAY", read_only=False)
    with pytest.raises(NotFound, match="expired"):
        store.confirm_optin("old")
    assert store.list_subscribers("mail") == []
