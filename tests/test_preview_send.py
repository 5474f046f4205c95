"""``feedcast preview AUTOMATION`` shows exactly what ``feedcast send AUTOMATION`` sends:
the same items, the same provider calls (payload for payload), and a verdict line that
says what send then does, scenario after scenario (issue 12.2)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import feedcast.cli as cli_module
from feedcast.sandbox import AsgiServer, SampleServer, sample_text
from feedcast.sandbox.telegram import TelegramEmulator
from feedcast.store import Store
from tests.test_cli import Cli

TOKEN = "525252:preview-equals-send-token"
VERDICT = re.compile(r"^feedcast send (\S+) would (send .+)$", re.MULTILINE)
GOING = re.compile(r"send (\d+) items? in (\d+) messages? to (\d+) subscribers?")


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setattr(cli_module.out, "width", 400)
    monkeypatch.setenv("TG_TOKEN", TOKEN)
    monkeypatch.setenv("FEEDCAST_ALLOW_PRIVATE_NETWORKS", "1")
    return Cli(tmp_path / "same.duckdb", capsys)


@pytest.fixture(scope="module")
def telegram() -> Iterator[tuple[TelegramEmulator, AsgiServer]]:
    emulator = TelegramEmulator(seed=5)
    with AsgiServer(emulator.app) as server:
        yield emulator, server


@pytest.fixture
def world(
    cli: Cli, telegram: tuple[TelegramEmulator, AsgiServer]
) -> Iterator[tuple[Cli, SampleServer, TelegramEmulator]]:
    """A blog and a shop on loopback, a Telegram channel with three subscribers (two vip)."""
    emulator, api = telegram
    emulator.reset(everything=True)
    emulator.add_bot(TOKEN, "same_bot")
    with SampleServer() as samples:
        base = samples.base_url
        samples.put("/blog.rss", sample_text("blog.rss").replace("{base}", base), "application/rss+xml")
        samples.put("/shop.xml", sample_text("shop.xml").replace("{base}", base), "application/xml")
        cli("channel", "add", "tg", "telegram", "--token", "env:TG_TOKEN", "--api-url", api.base_url)
        for chat, tags in (("701", ["--tag", "vip"]), ("702", ["--tag", "vip"]), ("703", [])):
            cli("subscriber", "add", "tg", chat, *tags)
        yield cli, samples, emulator


def _preview(cli: Cli, name: str) -> tuple[list[dict[str, Any]], str]:
    """The payloads ``preview NAME --format json`` prints and the verdict line of the table view."""
    payloads = cli.json("preview", name)
    assert isinstance(payloads, list)
    verdicts = VERDICT.findall(cli("preview", name))
    assert len(verdicts) == 1 and verdicts[0][0] == name, verdicts
    return payloads, verdicts[0][1]


def _send(cli: Cli, name: str) -> dict[str, Any]:
    sent = json.loads(cli("send", name, "--format", "json"))
    assert isinstance(sent, dict)
    return sent


def _stored_calls(db: Path, campaign_id: int) -> list[dict[str, Any]]:
    return [
        {"message": index + 1, "method": call.method, "body": call.body}
        for index, call in Store(db).campaign_calls(campaign_id)
    ]


def _holds_equal(cli: Cli, name: str) -> tuple[str, dict[str, Any]]:
    """Preview, then send: what preview showed is what send stored and did."""
    payloads, verdict = _preview(cli, name)
    sent = _send(cli, name)
    campaigns = [c for c in sent["campaigns"] if not c["resumed"]]
    going = GOING.match(verdict)
    if going is None:
        assert verdict.startswith("send nothing now: "), verdict
        assert campaigns == [], sent
        assert sent["note"] == verdict.removeprefix("send nothing now: ")
        return verdict, sent
    [campaign] = campaigns
    items, messages, recipients = (int(n) for n in going.groups())
    assert (campaign["items"], campaign["messages"], campaign["recipients"]) == (items, messages, recipients)
    assert campaign["status"] == "sent" and campaign["sent"] == recipients
    assert _stored_calls(cli.db, campaign["id"]) == payloads
    return verdict, sent


def test_a_source_backfill_reaches_an_automation_added_after_it(
    world: tuple[Cli, SampleServer, TelegramEmulator],
) -> None:
    """The issue's steps: source add --backfill 3, poll, automation add, preview, send."""
    cli, samples, emulator = world
    cli("source", "add", "news", samples.base_url + "/blog.rss", "--backfill", "3")
    cli("poll", "news")
    cli("automation", "add", "daily", "--source", "news", "--layout", "digest", "--channel", "tg")
    shown = cli("preview", "daily")
    assert "feedcast send daily would send 3 items in 1 message to 3 subscribers" in shown
    verdict, _sent = _holds_equal(cli, "daily")
    assert verdict.startswith("send 3 items")
    assert all(len(emulator.received(chat)) == 1 for chat in (701, 702, 703))
    # a second automation added later on the same source gets the backfill too, once
    cli("automation", "add", "each", "--source", "news", "--layout", "single", "--channel", "tg")
    verdict, _sent = _holds_equal(cli, "each")
    assert verdict.startswith("send 3 items in 3 messages to 3 subscribers")
    # and after a send, both preview and send say there is nothing new
    for name in ("daily", "each"):
        verdict, _sent = _holds_equal(cli, name)
        assert verdict == "send nothing now: no new items since the last campaign"
    out = cli("preview", "daily")
    assert "feedcast preview --source news --layout digest --channel-kind telegram" in out


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--layout", "single", "--backfill", "2"], "send 2 items in 2 messages to 3 subscribers"),
        (["--layout", "digest", "--backfill", "5", "--max-items", "2"], "send 2 items in 1 message"),
        (["--layout", "digest", "--backfill", "3", "--min-items", "9"], "waits for 9"),
        (["--layout", "single", "--backfill", "5", "--audience", "vip"], "to 2 subscribers"),
        (["--layout", "single", "--backfill", "5", "--audience", "nobody"], "no active subscriber tagged"),
        (["--layout", "digest"], "send nothing now: no new items since the last campaign"),
    ],
)
def test_preview_and_send_agree_on_a_blog(
    world: tuple[Cli, SampleServer, TelegramEmulator], flags: list[str], expected: str
) -> None:
    cli, samples, _emulator = world
    cli("source", "add", "blog", samples.base_url + "/blog.rss")
    cli("automation", "add", "a", "--source", "blog", "--channel", "tg", *flags)
    verdict, _sent = _holds_equal(cli, "a")
    assert expected in verdict
    if "--max-items" in flags:  # the rest stays queued, and the next campaign takes it
        assert "3 more stay queued for the next campaign" in verdict
        verdict, _sent = _holds_equal(cli, "a")
        assert verdict.startswith("send 2 items in 1 message")
        verdict, _sent = _holds_equal(cli, "a")
        assert verdict.startswith("send 1 item in 1 message")
    verdict, _sent = _holds_equal(cli, "a")
    assert verdict.startswith("send nothing now")


def test_preview_and_send_agree_on_a_filtered_shop_and_its_price_drops(
    world: tuple[Cli, SampleServer, TelegramEmulator],
) -> None:
    cli, samples, _emulator = world
    cli("source", "add", "shop", samples.base_url + "/shop.xml", "--backfill", "5")
    cli(
        "automation", "add", "cheap", "--source", "shop", "--layout", "product", "--channel", "tg",
        "--where", "effective_price < 200",
    )  # fmt: skip
    cli(
        "automation", "add", "drops", "--source", "shop", "--layout", "digest", "--channel", "tg",
        "--events", "price_drop,back_in_stock",
    )  # fmt: skip
    cheap = Store(cli.db).queued_items(Store(cli.db).get_automation("cheap"))[0]
    assert cheap and all(q.item.price is not None and q.item.price < 200 for q in cheap)
    verdict, _sent = _holds_equal(cli, "cheap")
    assert verdict.startswith(f"send {len(cheap)} item")
    verdict, _sent = _holds_equal(cli, "drops")
    assert verdict == "send nothing now: no new items since the last campaign"
    base = samples.base_url
    samples.put("/shop.xml", sample_text("shop-v2.xml").replace("{base}", base), "application/xml")
    cli("poll", "shop")
    verdict, _sent = _holds_equal(cli, "drops")
    assert verdict.startswith("send 2 items in 1 message to 3 subscribers")
    shown = cli.json("preview", "drops")
    assert isinstance(shown, list)
    verdict, _sent = _holds_equal(cli, "drops")
    assert verdict.startswith("send nothing now")


def test_trying_another_setting_on_the_same_queue_says_so(
    world: tuple[Cli, SampleServer, TelegramEmulator],
) -> None:
    cli, samples, _emulator = world
    cli("source", "add", "blog", samples.base_url + "/blog.rss", "--backfill", "4")
    cli("automation", "add", "a", "--source", "blog", "--layout", "digest", "--channel", "tg")
    out = cli("preview", "a", "--layout", "single", "--limit", "2", "--locale", "fr_FR")
    assert "feedcast send a would send 2 items in 2 messages to 3 subscribers" in out
    assert "(with layout single, max-items 2, locale fr_FR)" in out
    err = cli("preview", "a", "--source", "blog", code=2)
    assert "--source cannot be combined with an automation" in err and len(err.strip().splitlines()) == 1
    # the queue is untouched by previews: send still sends the automation's own campaign
    verdict, _sent = _holds_equal(cli, "a")
    assert verdict.startswith("send 4 items in 1 message")
