"""The web endpoints and what they show, attacked as a stranger would (issue 13.9): one
test per attack, through the real app (``feedcast web`` in its own process, or the app
served by uvicorn in this one) and the real flows."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from feedcast.inbox.telegram import webhook_secret
from feedcast.kernel.models import Item, NewSubscriber, PollOutcome
from feedcast.sandbox.asgi import AsgiServer
from feedcast.store import Store
from feedcast.tokens import signing_key
from feedcast.tracking import click_token
from feedcast.web.app import create_app

APP_SECRET = "web-attacks-app-secret-42"
ENV = {
    "FB_PAGE_TOKEN": "EAAwebAttacksToken",
    "FB_APP_SECRET": APP_SECRET,
    "TG_TOKEN": "555003:AAH-web-attacks",
}
CLOSED = "http://127.0.0.1:9"  # nothing listens: replies fail, which these tests do not look at


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def feedcast(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI, as a user types it."""
    env = {**os.environ, **ENV, "FEEDCAST_DB": str(db)}
    return subprocess.run(
        [sys.executable, "-c", "from feedcast.cli import main; main()", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def declare_public(db: Path, *tags: str) -> None:
    done = feedcast(db, "audience", "public", *tags)
    assert done.returncode == 0, done.stderr


def _store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "feedcast.duckdb")
    store.add_channel("mail", "email", {"smtp": "smtp://127.0.0.1:9", "from_addr": "news@shop.example"})
    return store


def _eventually(check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


# --------------------------------------------------------------------------- forwarded headers


@pytest.mark.slow
def test_x_forwarded_for_from_loopback_does_not_bypass_the_subscribe_rate_limit(tmp_path: Path) -> None:
    """A client on the same host (or behind no proxy at all) changes X-Forwarded-For on
    every post: it is still one client, limited to 10 posts in 10 minutes."""
    store = _store(tmp_path)
    declare_public(store.path, "deals")
    port = _free_port()
    env = {**os.environ, **ENV, "FEEDCAST_DB": str(store.path)}
    env.pop("FORWARDED_ALLOW_IPS", None)
    web = subprocess.Popen(
        [sys.executable, "-c", "from feedcast.cli import main; main()", "web", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert web.poll() is None and time.monotonic() < deadline, "feedcast web did not start"
            time.sleep(0.05)
        statuses = [
            httpx.post(
                base + "/s/deals/email/mail",
                data={"email": f"person{i}@example.org"},
                headers={"X-Forwarded-For": f"203.0.113.{i}"},
            ).status_code
            for i in range(12)
        ]
    finally:
        web.send_signal(signal.SIGINT)
        web.wait(30)
    assert statuses[:10] == [200] * 10
    assert statuses[10:] == [429, 429]


# --------------------------------------------------------------------------- clicks


def test_one_client_replaying_a_tracked_link_is_counted_a_bounded_number_of_times(tmp_path: Path) -> None:
    """A script requesting one /c/ link in a loop inflates the campaign's clicks: at most
    5 an hour are recorded per link and client; every request is still redirected."""
    store = _store(tmp_path)
    store.add_campaign_links(1, ["https://shop.example/a"])
    token = click_token(signing_key(store.path), 1, 0, 42)
    app = create_app(store, public_url="https://links.example", environ=ENV)
    with AsgiServer(app, name="web") as server:
        answers = [httpx.get(f"{server.base_url}/c/{token}") for _ in range(20)]
        _, rows = app.state.store.query("SELECT count(*) AS n FROM clicks")
    assert all(a.status_code == 302 and a.headers["location"] == "https://shop.example/a" for a in answers)
    assert rows[0]["n"] == 5


# --------------------------------------------------------------------------- audiences


def test_an_internal_audience_has_no_subscribe_page_and_takes_no_form(tmp_path: Path) -> None:
    """Anyone could open /s/staff (or post its form) and join the audience internal
    campaigns go to: only audiences declared public have a page."""
    store = _store(tmp_path)
    store.add_subscribers("mail", [NewSubscriber("boss@shop.example", ("staff",))])
    declare_public(store.path, "deals")
    app = create_app(store, public_url="https://pages.example", environ=ENV)
    with AsgiServer(app, name="web") as server:
        base = server.base_url
        internal = httpx.get(base + "/s/staff")
        posted = httpx.post(base + "/s/staff/email/mail", data={"email": "eve@example.org"})
        unknown = httpx.get(base + "/s/nosuchtag")
        public = httpx.get(base + "/s/deals")
        _, optins = app.state.store.query("SELECT recipient, tags FROM optins")
    assert internal.status_code == 404 and posted.status_code == 404
    assert internal.text == unknown.text  # an internal tag looks like no page at all
    assert public.status_code == 200 and 'action="/s/deals/email/mail"' in public.text
    assert optins == []


def _signed(body: bytes) -> dict[str, str]:
    digest = hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


def test_a_bot_link_to_an_internal_audience_subscribes_without_it(tmp_path: Path) -> None:
    """t.me/BOT?start=staff and m.me/PAGE?ref=staff are links anyone can write: the
    person subscribes, the internal tag is not given; a public one is."""
    store = Store(tmp_path / "feedcast.duckdb")
    store.add_channel(
        "fb",
        "messenger",
        {"page_token": "env:FB_PAGE_TOKEN", "app_secret": "env:FB_APP_SECRET", "api_url": CLOSED + "/v25.0"},
    )
    store.add_channel("tg", "telegram", {"token": "env:TG_TOKEN", "api_url": CLOSED})
    declare_public(store.path, "deals")
    secret = webhook_secret(signing_key(store.path), "tg")
    app = create_app(store, public_url="https://bots.example", environ=ENV)
    guarded = app.state.store
    with AsgiServer(app, name="web") as server, httpx.Client(base_url=server.base_url) as client:
        for i, ref in enumerate(("staff", "deals")):
            stamp = int(time.time() * 1000)
            event = {"sender": {"id": f"290000000000000{i}"}, "recipient": {"id": "1"}, "timestamp": stamp,
                     "referral": {"ref": ref, "source": "SHORTLINK", "type": "OPEN_THREAD"}}  # fmt: skip
            body = json.dumps(
                {"object": "page", "entry": [{"id": "1", "time": stamp, "messaging": [event]}]}
            ).encode()
            assert client.post("/messenger/fb", content=body, headers=_signed(body)).status_code == 200
            update = {"update_id": 900 + i, "message": {"message_id": i + 1, "date": int(time.time()),
                      "chat": {"id": 8100 + i, "type": "private"}, "from": {"id": 8100 + i, "first_name": "X"},
                      "text": f"/start {ref}"}}  # fmt: skip
            answer = client.post(
                "/telegram/tg", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": secret}
            )
            assert answer.status_code == 200

        def subscribed() -> bool:
            _, rows = guarded.query("SELECT count(*) AS n FROM subscribers")
            return bool(rows[0]["n"] == 4)

        _eventually(subscribed)
        _, rows = guarded.query(
            "SELECT c.name AS channel, s.recipient, s.tags FROM subscribers s JOIN channels c ON c.id = s.channel_id"
            " ORDER BY 1, 2"
        )
    assert [(r["channel"], r["recipient"], list(r["tags"])) for r in rows] == [
        ("fb", "2900000000000000", []),
        ("fb", "2900000000000001", ["deals"]),
        ("tg", "8100", []),
        ("tg", "8101", ["deals"]),
    ]


# --------------------------------------------------------------------------- artifacts


@pytest.fixture(scope="module")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    home = tmp_path_factory.mktemp("prefect-home")
    os.environ["PREFECT_HOME"] = str(home)
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with (
        prefect_test_harness(server_startup_timeout=90),
        temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
    ):
        yield


HOSTILE_TITLE = (
    "Sale | ![x](https://tracker.example/p.gif) [click](javascript:alert(1)) <img src=x onerror=alert(1)>"
)
HOSTILE_ERROR = "HTTP 500: [login again](https://phish.example/login) | *now*"


@pytest.mark.slow
def test_artifact_markdown_shows_titles_urls_and_errors_literally(
    prefect_harness: None, tmp_path: Path
) -> None:
    """An item title, its URL or an error text from a source is Markdown in the
    Prefect UI: no link, image, HTML or table cell of theirs may come out of it."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from feedcast.automations import AutomationSpec, add_automation
    from flows.automations import run_automations

    store = Store(tmp_path / "flows.duckdb")
    source = store.add_source("shop", "https://shop.example/feed.xml")
    broken = store.add_source("broken", "https://broken.example/feed.xml")
    t0 = datetime.now(UTC) - timedelta(hours=1)
    base = Item(key="base", title="Base", url="https://shop.example/base")
    store.record_polls([PollOutcome(source.id, source.url, t0, 0.01, "ok", 200, items=(base,))], now=t0)
    store.add_channel("review", "outbox", {"dir": str(tmp_path / "outbox"), "format": "json"})
    store.add_subscribers("review", [NewSubscriber("team")])
    add_automation(
        store,
        "instant",
        AutomationSpec(sources=["shop"], layout="plain", channel="review", on_new=True),
        now=t0,
    )
    now = datetime.now(UTC)
    hostile = Item(key="evil", title=HOSTILE_TITLE, url="javascript:alert(document.cookie)")
    linked = Item(key="odd", title="Odd (url)", url="https://shop.example/a b)(c")
    store.record_polls(
        [
            PollOutcome(source.id, source.url, now, 0.01, "ok", 200, items=(base, hostile, linked)),
            PollOutcome(broken.id, broken.url, now, 0.01, "error", 500, error=HOSTILE_ERROR),
        ],
        now=now,
    )
    outcomes = run_automations(db=str(store.path))
    assert [o["automation"] for o in outcomes] == ["instant"]

    async def artifacts() -> dict[str, str]:
        async with get_client() as client:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["campaign-1", "feedcast-report"]))
            )
        return {str(a.key): str(a.data) for a in found}

    texts = asyncio.run(artifacts())
    campaign, report = texts["campaign-1"], texts["feedcast-report"]
    for text in (campaign, report):
        # every link left is one feedcast made, to an http(s) URL of an item
        targets = re.findall(r"(?<!\\)\]\(([^)\s]*)", text)
        assert all(t.startswith("https://shop.example/") for t in targets), targets
        assert "<img" not in text and "![" not in text
    # the hostile title is one cell, shown as text; its URL is no link
    assert (
        "Sale \\| !\\[x\\](https://tracker.example/p.gif) \\[click\\](javascript:alert(1)) &lt;img"
        in campaign
    )
    rows = [line for line in campaign.splitlines() if "Sale" in line]
    assert len(rows) == 1 and rows[0].count(" | ") == 1  # item | event: the title's | split nothing
    # an http(s) URL stays a link, with what could close it percent-encoded
    assert "[Odd (url)](https://shop.example/a%20b%29%28c)" in campaign
    assert "\\[login again\\](https://phish.example/login) \\| \\*now\\*" in report
