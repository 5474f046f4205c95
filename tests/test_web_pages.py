"""The people-facing pages of ``feedcast web`` (feedcast.web.pages) over real HTTP on
loopback: one-click unsubscribe (RFC 8058), subscribe pages with email double opt-in
through a real SMTP sink, click tracking end to end through the Telegram emulator, and
the subscribe page in headless Chromium."""

from __future__ import annotations

import base64
import json
import os
import re
import select
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from feedcast.automations import AutomationSpec, add_automation, edit_automation
from feedcast.delivery import SendSettings, send_automation
from feedcast.kernel.clock import FakeClock
from feedcast.kernel.errors import NotFound
from feedcast.kernel.models import Item, NewSubscriber, PollOutcome
from feedcast.sandbox import AsgiServer
from feedcast.sandbox.messenger import MessengerEmulator
from feedcast.sandbox.smtp import SmtpSink
from feedcast.sandbox.telegram import TelegramEmulator
from feedcast.store import Store
from feedcast.tokens import sign, signing_key
from feedcast.tracking import click_token
from feedcast.web import pages
from feedcast.web.app import create_app
from tests.conftest import on_ci

KEY = "test-signing-key-" + "k" * 32
TG_TOKEN = "123456:TEST-token-abcdefghijklmnop"
FB_TOKEN = "PAGE-TOKEN-abcdef123456"
ENV = {"FEEDCAST_SECRET_KEY": KEY, "TG_TOKEN": TG_TOKEN, "FB_TOKEN": FB_TOKEN}
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
FAST = SendSettings(backoff=0.05, backoff_cap=0.2, flush_interval=0.05, limits=False)
CHROMIUM = Path("/usr/bin/chromium")


@dataclass
class Site:
    store: Store
    url: str  # the pages' base URL
    env: dict[str, str]
    http: httpx.Client  # one client: each new one costs a TLS context (~25 ms)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(self.url + path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.post(self.url + path, **kwargs)


def _serve(store: Store, env: dict[str, str]) -> AsgiServer:
    app = Starlette(routes=pages.routes(store, environ=env))
    return AsgiServer(app, name="pages")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    store = Store(tmp_path / "feedcast.duckdb")
    store.set_audiences_public(
        ["deals", "news"]
    )  # the audiences these pages offer (feedcast audience public)
    with _serve(store, ENV) as server, httpx.Client(timeout=10) as http:
        yield Site(store, server.base_url, {**ENV, "FEEDCAST_PUBLIC_URL": server.base_url}, http)


def _items(prefix: str, n: int, start: datetime) -> tuple[Item, ...]:
    return tuple(
        Item(
            key=f"{prefix}{i}",
            title=f"Post {prefix}{i}",
            url=f"https://blog.example/{prefix}{i}",
            summary=f"<p>Summary of {prefix}{i}</p>",
            published=start - timedelta(minutes=i),
        )
        for i in range(n)
    )


def _poll(store: Store, items: tuple[Item, ...], when: datetime) -> None:
    source = store.get_source("blog")
    store.record_polls(
        [PollOutcome(source_id=source.id, url=source.url, started_at=when, duration=0.01, outcome="ok",
                     status=200, items=items)],
        now=when,
    )  # fmt: skip


def _with_blog(store: Store) -> None:
    store.add_source("blog", "https://blog.example/feed.xml")
    _poll(store, _items("old", 2, T0), T0)  # the baseline


def _events(store: Store, subscriber_id: int) -> list[tuple[str, str, str | None]]:
    _, rows = store.query(
        f"SELECT event, source, detail FROM subscription_events WHERE subscriber_id = {int(subscriber_id)} ORDER BY id"
    )
    return [(r["event"], r["source"], r["detail"]) for r in rows]


def _assert_safe_headers(response: httpx.Response) -> None:
    assert response.headers["cache-control"] == "no-store"
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "form-action 'self'" in csp and "script-src" not in csp
    assert response.headers["referrer-policy"] == "no-referrer"


def _assert_self_contained(page: str) -> None:
    """No script, stylesheet, image, frame or font from anywhere."""
    lowered = page.lower()
    for marker in ("<script", "<link", "<img", "<iframe", "@import", "url("):
        assert marker not in lowered, marker
    assert not re.search(r"\ssrc\s*=", lowered)


def _email_channel(store: Store, sink: SmtpSink, name: str = "mail") -> None:
    store.add_channel(name, "email", {"smtp": sink.url, "from_addr": "News <news@shop.example>"})


def _wait_for_mail(sink: SmtpSink, address: str, count: int = 1, timeout: float = 10.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = sink.messages_for(address)
        if len(got) >= count:
            return got
        time.sleep(0.02)
    raise AssertionError(
        f"{count} message(s) for {address} did not arrive: {len(sink.messages_for(address))}"
    )


def _text_part(message: Any) -> str:
    part = message.get_body(preferencelist=("plain",))
    return str(part.get_content())


def _html_part(message: Any) -> str:
    part = message.get_body(preferencelist=("html",))
    return str(part.get_content())


# --------------------------------------------------------------------------- unsubscribe


def test_unsubscribe_get_changes_nothing_and_post_unsubscribes(site: Site) -> None:
    with SmtpSink() as sink:
        _email_channel(site.store, sink)
        site.store.add_subscribers(
            "mail", [NewSubscriber("ann@example.org"), NewSubscriber("bob@example.org")]
        )
        ann = site.store.get_subscriber("mail", "ann@example.org")
        token = sign(KEY.encode(), "unsubscribe", str(ann.id))
        before = _events(site.store, ann.id)

        for _ in range(2):  # a link scanner opening the link, twice
            page = site.get(f"/u/{token}")
            assert page.status_code == 200
            _assert_safe_headers(page)
            _assert_self_contained(page.text)
            assert "Unsubscribe?" in page.text and 'method="post"' in page.text
            assert "a•••@example.org" in page.text and "ann@example.org" not in page.text
        assert site.store.get_subscriber("mail", "ann@example.org").status == "active"
        assert _events(site.store, ann.id) == before
        assert (
            site.get(f"/u/{token}", headers={"Accept": "text/html"}).status_code == 200
        )  # HEAD-like probes too

        done = site.post(f"/u/{token}", data={"confirm": "yes"})  # the page's button
        assert done.status_code == 200 and "You are unsubscribed" in done.text
        _assert_safe_headers(done)
        assert site.store.get_subscriber("mail", "ann@example.org").status == "unsubscribed"
        assert _events(site.store, ann.id)[-1] == ("unsubscribe", "link", "unsubscribe page")
        assert site.store.get_subscriber("mail", "bob@example.org").status == "active"

        again = site.get(f"/u/{token}")
        assert again.status_code == 200 and "Already unsubscribed" in again.text
        assert site.post(f"/u/{token}").status_code == 200  # a second POST is harmless
        assert [e for e in _events(site.store, ann.id) if e[0] == "unsubscribe"] == [
            ("unsubscribe", "link", "unsubscribe page")
        ]


def test_forged_and_broken_tokens_get_a_page_not_a_traceback(site: Site) -> None:
    site.store.add_channel("mail", "email", {"smtp": "smtp://127.0.0.1:1", "from_addr": "n@shop.example"})
    site.store.add_subscribers("mail", [NewSubscriber("ann@example.org")])
    ann = site.store.get_subscriber("mail", "ann@example.org")
    good = sign(KEY.encode(), "unsubscribe", str(ann.id))
    forged = [
        "nonsense",
        f"{ann.id}.AAAAAAAAAAAAAAAAAAAAAA",  # a made-up MAC
        sign(b"another key", "unsubscribe", str(ann.id)),
        sign(KEY.encode(), "click", str(ann.id)),  # signed for another purpose
        good[:-1] + ("A" if good[-1] != "A" else "B"),
        sign(KEY.encode(), "unsubscribe", "999999"),  # signed, but nobody
        sign(KEY.encode(), "unsubscribe", "1e3"),
        "%00%ff..",
    ]
    for token in forged:
        for method in ("GET", "POST"):
            response = site.http.request(method, f"{site.url}/u/{token}")
            assert response.status_code == 404, (token, method)
            assert "This link is not valid" in response.text and "Traceback" not in response.text
            _assert_safe_headers(response)
    assert site.store.get_subscriber("mail", "ann@example.org").status == "active"
    assert site.get("/c/nonsense").status_code == 404
    assert site.get("/confirm/short").status_code == 404
    assert site.post("/confirm/" + "x" * 32).status_code == 404  # well-formed, never issued
    assert site.get("/s/bad%20audience!").status_code == 404


def test_an_email_campaign_list_unsubscribe_url_posted_unsubscribes_that_person(site: Site) -> None:
    with SmtpSink() as sink:
        store = site.store
        _with_blog(store)
        _email_channel(store, sink)
        store.add_subscribers("mail", [NewSubscriber("ann@example.org"), NewSubscriber("bob@example.org")])
        spec = AutomationSpec(sources=["blog"], layout="digest", channel="mail", track_clicks=True)
        add_automation(store, "letter", spec, now=T0 + timedelta(minutes=1))
        _poll(store, _items("e", 2, T0 + timedelta(hours=1)), T0 + timedelta(hours=1))

        [result] = send_automation(store, "letter", settings=FAST, environ=site.env)
        assert result.campaign.sent == 2
        [message] = sink.messages_for("ann@example.org")
        header = str(message.message["List-Unsubscribe"])
        url = re.search(r"<(http[^>]+/u/[^>]+)>", header)
        assert url is not None and url.group(1).startswith(site.url + "/u/"), header
        # tracked links in the email: every item link goes through /c/, each a valid URL
        html_part = _html_part(message.message)
        hrefs = re.findall(r'href="([^"]+)"', html_part)
        assert any(h.startswith(site.url + "/c/") for h in hrefs)
        assert not any(h.startswith("https://blog.example/") for h in hrefs), hrefs
        assert "_fc" not in html_part and "/c/_" not in html_part  # no placeholder left

        # what Gmail does: POST the URL with the one-click body, nothing else
        response = site.http.post(
            url.group(1),
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 200
        ann = store.get_subscriber("mail", "ann@example.org")
        assert ann.status == "unsubscribed"
        assert _events(store, ann.id)[-1] == ("unsubscribe", "link", "one-click (List-Unsubscribe-Post)")
        assert store.get_subscriber("mail", "bob@example.org").status == "active"

        # an email link through /c/ redirects to the item and is recorded for ann
        tracked = next(h for h in hrefs if h.startswith(site.url + "/c/"))
        hop = site.http.get(tracked)
        assert hop.status_code == 302 and hop.headers["location"].startswith("https://blog.example/e")
        _, clicks = store.query("SELECT subscriber_id, url FROM clicks")
        assert clicks == [{"subscriber_id": ann.id, "url": hop.headers["location"]}]


# --------------------------------------------------------------------------- subscribe pages


def test_the_subscribe_page_lists_every_way_in(site: Site) -> None:
    telegram = TelegramEmulator(seed=1)
    telegram.add_bot(TG_TOKEN, "shop_bot")
    messenger = MessengerEmulator(seed=1)
    messenger.add_page(FB_TOKEN, page_id="1001", name="Shop")
    with telegram.serve() as tg, AsgiServer(messenger.app, name="messenger") as fb, SmtpSink() as sink:
        store = site.store
        _email_channel(store, sink, "letters")
        store.add_channel("bot", "telegram", {"token": "env:TG_TOKEN", "api_url": tg.base_url})
        store.add_channel(
            "page", "messenger", {"page_token": "env:FB_TOKEN", "api_url": fb.base_url + "/v25.0"}
        )
        store.add_channel("hook", "webhook", {"url": "https://hooks.example/x"})

        page = site.get("/s/deals")
        assert page.status_code == 200, page.text
        _assert_safe_headers(page)
        _assert_self_contained(page.text)
        text = page.text
        assert "Subscribe to deals" in text
        assert 'action="/s/deals/email/letters"' in text and 'type="email"' in text
        assert 'href="https://t.me/shop_bot?start=deals"' in text
        assert 'href="https://m.me/1001?ref=deals"' in text
        assert "hooks.example" not in text  # a webhook takes no subscribers
        assert '<html lang="en">' in text and 'name="viewport"' in text and '<label for="email-' in text
        # asked of the providers once, then remembered
        assert store.channel_state("bot", "telegram.username") == "shop_bot"
        assert store.channel_state("page", "messenger.page_id") == "1001"

        only = site.get("/s/news?channels=bot")
        assert "https://t.me/shop_bot?start=news" in only.text and "m.me" not in only.text
        assert 'type="email"' not in only.text
        assert site.get("/s/news?channels=nosuch").status_code == 404
    # the providers are gone: the remembered names still make the page
    again = site.get("/s/deals")
    assert "https://t.me/shop_bot?start=deals" in again.text and "https://m.me/1001?ref=deals" in again.text


def test_double_opt_in_end_to_end(site: Site) -> None:
    with SmtpSink() as sink:
        store = site.store
        _email_channel(store, sink)

        bad = site.post("/s/deals/email/mail", data={"email": "not-an-address"})
        assert bad.status_code == 400 and 'role="alert"' in bad.text and "not a valid" in bad.text
        assert 'value="not-an-address"' in bad.text and 'aria-invalid="true"' in bad.text
        empty = site.post("/s/deals/email/mail", data={"email": ""})
        assert empty.status_code == 400 and "Enter your email address" in empty.text

        answer = site.post("/s/deals/email/mail", data={"email": "Ann@Example.org"})
        assert answer.status_code == 200 and "Check your inbox" in answer.text
        _assert_safe_headers(answer)
        [mail] = _wait_for_mail(sink, "Ann@example.org")
        assert "Confirm your subscription to deals" in str(mail.message["Subject"])
        link = re.search(r"(http://\S+/confirm/[A-Za-z0-9_-]+)", _text_part(mail.message))
        assert link is not None and link.group(1).startswith(site.url)
        assert link.group(1) in _html_part(mail.message)
        with pytest.raises(NotFound, match="not a subscriber"):
            store.get_subscriber("mail", "Ann@example.org")

        # opening the link (or a mail scanner doing so) changes nothing: a button confirms
        shown = site.http.get(link.group(1))
        assert shown.status_code == 200 and 'method="post"' in shown.text
        with pytest.raises(NotFound, match="not a subscriber"):
            store.get_subscriber("mail", "Ann@example.org")
        confirmed = site.http.post(link.group(1))
        assert confirmed.status_code == 200 and "You are subscribed" in confirmed.text
        ann = store.get_subscriber("mail", "Ann@example.org")
        assert (ann.status, ann.tags) == ("active", ("deals",))
        assert _events(store, ann.id) == [("subscribe", "link", "confirmed by email")]

        # no enumeration: a known address gets the same answer (and another link)
        twice = site.post("/s/deals/email/mail", data={"email": "Ann@Example.org"})
        assert twice.status_code == 200 and twice.text == answer.text
        _wait_for_mail(sink, "Ann@example.org", 2)
        # a bot filling the hidden field gets the same answer and no email
        trap = site.post("/s/deals/email/mail", data={"email": "bot@example.org", "website": "x"})
        assert trap.status_code == 200 and "Check your inbox" in trap.text
        # the same address over and over: answered alike, but at most 3 emails an hour
        for _ in range(3):
            assert site.post("/s/deals/email/mail", data={"email": "eve@example.org"}).status_code == 200
        _wait_for_mail(sink, "eve@example.org", 3)
        time.sleep(0.3)
        assert not sink.messages_for("bot@example.org")
        assert len(sink.messages_for("eve@example.org")) == 3
        # an unknown channel, or one that is not email
        assert site.post("/s/deals/email/nosuch", data={"email": "a@example.org"}).status_code == 404


def test_an_address_gets_at_most_3_confirmation_emails_an_hour(tmp_path: Path) -> None:
    """The form on a fake clock: the 4th request within the hour is answered alike but
    records no opt-in and sends no email; an hour after the first, one more goes."""
    clock = FakeClock()
    store = Store(tmp_path / "feedcast.duckdb")

    def optins() -> int:
        _, rows = store.query("SELECT count(*) AS n FROM optins WHERE recipient = 'eve@example.org'")
        return int(rows[0]["n"])

    with SmtpSink() as sink:
        _email_channel(store, sink)
        store.set_audiences_public(["deals"])
        app = Starlette(routes=pages.routes(store, environ=ENV, clock=clock))
        with AsgiServer(app, name="pages") as server, httpx.Client(timeout=10) as http:

            def post() -> httpx.Response:
                return http.post(f"{server.base_url}/s/deals/email/mail", data={"email": "eve@example.org"})

            answers = [post() for _ in range(4)]
            assert [a.status_code for a in answers] == [200] * 4
            assert len({a.text for a in answers}) == 1  # the refused one reads the same: no enumeration
            assert optins() == 3  # the 4th was refused before anything was recorded or sent
            _wait_for_mail(sink, "eve@example.org", 3)
            clock.advance(3599)
            assert post().status_code == 200 and optins() == 3  # still within the hour
            clock.advance(1)  # an hour after the first: it leaves the window
            assert post().status_code == 200 and optins() == 4
            assert len(_wait_for_mail(sink, "eve@example.org", 4)) == 4


def test_the_form_is_rate_limited_per_client(tmp_path: Path) -> None:
    store = Store(tmp_path / "feedcast.duckdb")
    store.add_channel("mail", "email", {"smtp": "smtp://127.0.0.1:1", "from_addr": "n@shop.example"})
    store.set_audiences_public(["deals"])
    with _serve(store, ENV) as server, httpx.Client(timeout=10) as http:
        statuses = [
            http.post(
                f"{server.base_url}/s/deals/email/mail", data={"email": "a@b.example", "website": "x"}
            ).status_code
            for _ in range(12)
        ]
    assert statuses[:10] == [200] * 10 and statuses[10:] == [429, 429]


# --------------------------------------------------------------------------- click tracking


def test_click_tracking_end_to_end_through_telegram(site: Site) -> None:
    emulator = TelegramEmulator(seed=1)
    emulator.configure(limits=False)  # two campaigns to one chat within a second
    emulator.add_bot(TG_TOKEN, "shop_bot")
    with emulator.serve() as tg:
        store = site.store
        _with_blog(store)
        store.add_channel("tg", "telegram", {"token": "env:TG_TOKEN", "api_url": tg.base_url})
        store.add_subscribers("tg", [NewSubscriber("101"), NewSubscriber("102")])
        spec = AutomationSpec(sources=["blog"], layout="single", channel="tg", max_items=1, track_clicks=True)
        automation = add_automation(store, "news", spec, now=T0 + timedelta(minutes=1))
        assert automation.track_clicks
        _poll(store, _items("new", 1, T0 + timedelta(hours=1)), T0 + timedelta(hours=1))

        [result] = send_automation(store, "news", settings=FAST, environ=site.env)
        assert result.campaign.sent == 2
        campaign = result.campaign.id
        [message] = emulator.received("101")
        params = message["params"]
        markup = params.get("reply_markup")
        markup = json.loads(markup) if isinstance(markup, str) else markup
        buttons = [b["url"] for row in markup["inline_keyboard"] for b in row if "url" in b]
        links = buttons + re.findall(r'href="([^"]+)"', params["text"])
        assert links and all(u.startswith(site.url + "/c/") for u in links), links
        assert "https://blog.example/new0" not in json.dumps(params)
        other = json.dumps(emulator.received("102")[0]["params"])
        assert buttons[0] not in other  # each recipient has links of their own

        sub = store.get_subscriber("tg", "101")
        hop = site.http.get(buttons[0], headers={"User-Agent": "pytest-browser/1.0"})
        assert hop.status_code == 302 and hop.headers["location"] == "https://blog.example/new0"
        assert hop.headers["referrer-policy"] == "no-referrer"
        _, rows = store.query(
            "SELECT campaign_id, subscriber_id, delivery_id, link, url, user_agent FROM clicks"
        )
        assert len(rows) == 1
        row = rows[0]
        assert (row["campaign_id"], row["subscriber_id"], row["link"], row["url"], row["user_agent"]) == (
            campaign, sub.id, 0, "https://blog.example/new0", "pytest-browser/1.0"
        )  # fmt: skip
        assert row["delivery_id"] is not None

        # no open redirect: nothing but the URL recorded for that campaign's link
        token = buttons[0].rsplit("/c/", 1)[1]
        value, _, mac = token.rpartition(".")
        c, link, s = value.split(".")
        key = KEY.encode()
        refused = [
            f"{c}.{int(link) + 1}.{s}.{mac}",  # another link, the same MAC
            f"{c}.{link}.{int(s) + 1}.{mac}",  # someone else
            click_token(key, campaign, 7, sub.id),  # signed, but the campaign has no link 7
            click_token(key, campaign + 1, 0, sub.id),  # signed, no such campaign
            click_token(b"attacker's key", campaign, 0, sub.id),
            sign(key, "unsubscribe", f"{c}.{link}.{s}"),
            "https%3A%2F%2Fevil.example",
        ]
        for bad in refused:
            response = site.http.get(f"{site.url}/c/{bad}")
            assert response.status_code == 404 and "location" not in response.headers, bad
        smuggled = site.http.get(buttons[0] + "?url=https://evil.example/")
        assert smuggled.headers["location"] == "https://blog.example/new0"
        _, count = store.query("SELECT count(*) AS n FROM clicks")
        assert count[0]["n"] == 2

        # tracking off again: plain links in the next campaign
        _, changed = edit_automation(store, "news", {"track_clicks": False})
        assert changed == ["track_clicks"] and not store.get_automation("news").track_clicks
        _poll(store, _items("later", 1, T0 + timedelta(hours=2)), T0 + timedelta(hours=2))
        send_automation(store, "news", settings=FAST, environ=site.env)
        assert "https://blog.example/later0" in json.dumps(emulator.received("101")[-1]["params"])


def test_the_cli_takes_track_clicks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.test_cli import Cli

    cli = Cli(tmp_path / "feedcast.duckdb", capsys)
    store = Store(tmp_path / "feedcast.duckdb")
    _with_blog(store)
    store.add_channel("tg", "telegram", {"token": "env:TG_TOKEN"})
    cli(
        "automation",
        "add",
        "news",
        "--source",
        "blog",
        "--layout",
        "single",
        "--channel",
        "tg",
        "--track-clicks",
    )
    assert store.get_automation("news").track_clicks
    assert "track_clicks" in cli("automation", "edit", "news", "--no-track-clicks")
    assert not store.get_automation("news").track_clicks
    cli("automation", "edit", "news", "--track-clicks")
    assert json.loads(cli("automation", "show", "news", "--format", "json"))["track_clicks"] is True


# --------------------------------------------------------------------------- headless Chromium


def _chromium() -> Path:
    if CHROMIUM.exists() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    if on_ci():
        pytest.fail(f"{CHROMIUM} is missing on CI: .ci/run installs it (apt-get install chromium)")
    pytest.skip(f"{CHROMIUM} not found: install it to run the browser test (apt-get install chromium)")


def _assert_real_png(data: bytes, width: int, height: int) -> None:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    assert (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) == (width, height)
    pos, idat = 8, b""
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        if data[pos + 4 : pos + 8] == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    assert len(set(raw)) > 40, "a blank screenshot?"


class _DevTools:
    """The Chrome DevTools Protocol over one page's websocket: just what the test needs."""

    def __init__(self, url: str) -> None:
        from websockets.sync.client import connect

        self.ws = connect(url, max_size=50_000_000, open_timeout=10)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=30))
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return dict(message.get("result") or {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for index, event in enumerate(self.events):
                if event.get("method") == method:
                    del self.events[: index + 1]
                    return
            self.events.append(json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic()))))

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def close(self) -> None:
        self.ws.close()


def _devtools_url(process: subprocess.Popen[bytes], timeout: float = 30.0) -> str:
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    seen = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stderr], [], [], 0.2)
        if ready:
            chunk = os.read(process.stderr.fileno(), 65536)
            if not chunk:
                break
            seen += chunk
            match = re.search(rb"DevTools listening on (ws://\S+)", seen)
            if match:
                return match.group(1).decode()
    raise AssertionError(f"chromium did not start: {seen[-2000:].decode(errors='replace')}")


@pytest.mark.slow
def test_the_subscribe_page_in_headless_chromium(site: Site, tmp_path: Path) -> None:
    chromium = _chromium()
    width, height = 800, 900
    with SmtpSink() as sink:
        _email_channel(site.store, sink)
        command = [
            str(chromium), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={width},{height}",
            "--hide-scrollbars", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
            "about:blank",
        ]  # fmt: skip
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            browser = _devtools_url(process)
            port = re.search(r":(\d+)/", browser)
            assert port is not None
            targets = site.http.get(f"http://127.0.0.1:{port.group(1)}/json/list").json()
            target = next(t for t in targets if t.get("type") == "page")
            tab = _DevTools(target["webSocketDebuggerUrl"])
            try:
                tab.call("Page.enable")
                tab.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                         deviceScaleFactor=1, mobile=False)  # fmt: skip
                tab.call("Page.navigate", url=f"{site.url}/s/deals")
                tab.wait_for("Page.loadEventFired")
                assert tab.evaluate("document.title") == "Subscribe to deals"
                label = tab.evaluate("document.querySelector('label[for=email-1]').textContent")
                assert label == "Your email address"
                shot = base64.b64decode(tab.call("Page.captureScreenshot", format="png")["data"])
                if keep := os.environ.get("FEEDCAST_KEEP_SCREENSHOTS"):
                    (Path(keep) / "subscribe-page.png").write_bytes(shot)
                _assert_real_png(shot, width, height)
                # a phone: the page fits its width, nothing to scroll sideways
                tab.call("Emulation.setDeviceMetricsOverride", width=360, height=740,
                         deviceScaleFactor=1, mobile=True)  # fmt: skip
                assert tab.evaluate("document.documentElement.scrollWidth") <= 360
                _assert_real_png(
                    base64.b64decode(tab.call("Page.captureScreenshot", format="png")["data"]), 360, 740
                )

                # type an address and press the button, as a person would
                tab.evaluate("document.querySelector('input[type=email]').focus()")
                tab.call("Input.insertText", text="chromium@example.org")
                box = tab.evaluate(
                    "JSON.stringify(document.querySelector('button[type=submit]').getBoundingClientRect())"
                )
                rect = json.loads(box)
                x, y = rect["x"] + rect["width"] / 2, rect["y"] + rect["height"] / 2
                for kind in ("mousePressed", "mouseReleased"):
                    tab.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)
                tab.wait_for("Page.loadEventFired")
                assert tab.evaluate("document.querySelector('h1').textContent") == "Check your inbox"
            finally:
                tab.close()
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        [mail] = _wait_for_mail(sink, "chromium@example.org")
        assert "/confirm/" in _text_part(mail.message)
    assert signing_key(site.store.path, ENV) == KEY.encode()


# --------------------------------------------------------------------------- proxies


def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy(tmp_path: Path) -> None:
    store = Store(tmp_path / "feedcast.duckdb")
    store.add_channel("mail", "email", {"smtp": "smtp://127.0.0.1:1", "from_addr": "n@shop.example"})
    store.set_audiences_public(["deals"])
    app = create_app(store, public_url="https://pages.example", environ=ENV, trusted_proxies=["127.0.0.0/8"])

    def post(http: httpx.Client, base: str, client: str) -> int:
        form = {"email": "a@b.example", "website": "x"}
        return http.post(
            f"{base}/s/deals/email/mail", data=form, headers={"X-Forwarded-For": client}
        ).status_code

    with AsgiServer(app, name="web") as server, httpx.Client(timeout=10) as http:
        # behind the proxy, each person is their forwarded address: 12 people, no limit
        assert [post(http, server.base_url, f"198.51.100.{i}") for i in range(12)] == [200] * 12
        # one person posting again and again is limited, whatever the proxy's address
        statuses = [post(http, server.base_url, "192.0.2.7") for _ in range(12)]
    assert statuses[:10] == [200] * 10 and statuses[10:] == [429, 429]


def test_a_trusted_proxy_that_is_no_address_is_one_clear_line(tmp_path: Path) -> None:
    from feedcast.kernel.errors import InvalidValue
    from feedcast.web.app import trusted_networks

    assert trusted_networks(["10.0.0.5", "10.1.0.0/16", "::1"]) == ["10.0.0.5/32", "10.1.0.0/16", "::1/128"]
    with pytest.raises(
        InvalidValue, match=r"--trusted-proxy 'proxy\.example' is not an IP address or network"
    ):
        trusted_networks(["proxy.example"])
    env = {**os.environ, "FEEDCAST_DB": str(tmp_path / "feedcast.duckdb")}
    done = subprocess.run(
        [sys.executable, "-c", "from feedcast.cli import main; main()", "web", "--trusted-proxy", "nope"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: --trusted-proxy 'nope' is not an IP address or network (e.g. 10.0.0.5 or 10.0.0.0/24)"
    ]
