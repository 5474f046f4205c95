"""The analysts' side: the report views' figures (campaign_report, source_health,
automation_activity) on a store built to known numbers, ``feedcast report`` as tables,
JSON, Markdown and an HTML page opened in headless Chromium, and ``export-history``."""

from __future__ import annotations

import os
import re
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

import feedcast.cli as cli_module
from feedcast.kernel.models import NewSubscriber
from feedcast.report import build_report, parse_since, report_html, report_markdown
from feedcast.store import Store
from tests.chromium import open_in_chromium as _open_in_chromium
from tests.chromium import probe as _probe
from tests.test_cli import Cli
from tests.test_preview import _png_sample_rows, _png_size

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)  # campaign 1; campaign 2 a day later
TENT, STOVE = "https://shop.example/tent", "https://shop.example/stove"


def _sql(store: Store, sql: str, params: list[Any] | None = None) -> None:
    store.query(sql, params, read_only=False)


def _campaign(
    store: Store, cid: int, automation: str, channel: str, kind: str, at: datetime, items: int
) -> None:
    _sql(
        store,
        "INSERT INTO campaigns (id, automation_id, automation_name, channel_id, channel_name, channel_kind,"
        " layout, format, items, messages, calls, recipients, created_at, started_at)"
        " SELECT ?, NULL, ?, id, name, kind, 'digest', ?, ?, 1, 1, 0, ?, ? FROM channels WHERE name = ?",
        [cid, automation, kind, items, at, at, channel],
    )


def _delivery(
    store: Store, cid: int, channel: str, recipient: str, status: str, queued: datetime,
    done: datetime | None = None, code: str | None = None, error: str | None = None,
) -> None:  # fmt: skip
    _sql(
        store,
        "INSERT INTO deliveries (campaign_id, subscriber_id, recipient, status, attempts, error, error_code,"
        " queued_at, sent_at, updated_at)"
        " SELECT ?, s.id, s.recipient, ?, 1, ?, ?, ?, ?, ? FROM subscribers s JOIN channels c ON c.id = s.channel_id"
        " WHERE c.name = ? AND s.recipient = ?",
        [cid, status, error, code, queued, done if status == "sent" else None, done, channel, recipient],
    )


def _event(store: Store, channel: str, recipient: str, event: str, at: datetime) -> None:
    _sql(
        store,
        "INSERT INTO subscription_events (subscriber_id, channel_id, event, source, occurred_at)"
        " SELECT s.id, s.channel_id, ?, 'test', ? FROM subscribers s JOIN channels c ON c.id = s.channel_id"
        " WHERE c.name = ? AND s.recipient = ?",
        [event, at, channel, recipient],
    )


def build_store(path: Path) -> Store:
    """Two channels, six subscribers, three campaigns with deliveries of every status,
    clicks, unsubscribes inside and outside the 7-day window, three sources."""
    store = Store(path)
    store.add_channel("bot", "telegram", {"token": "env:T"})
    store.add_channel("news", "email", {"smtp": "smtp://127.0.0.1:25", "from_addr": "shop@example.org"})
    store.add_subscribers("bot", [NewSubscriber(r) for r in ("11", "12", "13", "14")])
    store.add_subscribers("news", [NewSubscriber("a@example.org"), NewSubscriber("b@example.org")])
    s = timedelta(seconds=1)

    # campaign 1: deals on the bot, every status but pending; 40 s from queue to last outcome
    _campaign(store, 1, "deals", "bot", "telegram", T0, 2)
    _delivery(store, 1, "bot", "11", "sent", T0, T0 + 10 * s)
    _delivery(store, 1, "bot", "12", "sent", T0, T0 + 20 * s)
    _delivery(
        store, 1, "bot", "13", "failed", T0, T0 + 30 * s, "403", "Forbidden: bot was blocked by the user"
    )
    _delivery(store, 1, "bot", "14", "skipped", T0, T0 + 40 * s, "skipped", "outside the 24-hour window")
    # campaign 2: deals a day later, one still pending
    c2 = T0 + timedelta(days=1)
    _campaign(store, 2, "deals", "bot", "telegram", c2, 1)
    _delivery(store, 2, "bot", "11", "sent", c2, c2 + 5 * s)
    _delivery(store, 2, "bot", "12", "sent", c2, c2 + 3 * s)
    _delivery(store, 2, "bot", "14", "pending", c2)
    # campaign 3: the email digest at 01:00 UTC (still the previous day west of UTC)
    c3 = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
    _campaign(store, 3, "digest", "news", "email", c3, 3)
    _delivery(store, 3, "news", "a@example.org", "sent", c3, c3 + 60 * s)
    _delivery(store, 3, "news", "b@example.org", "failed", c3, c3 + 120 * s, "550 5.1.1", "No such user")

    # clicks through the store's API (tracked links): 3 on campaign 1 by 2 people, 1 on campaign 2
    store.add_campaign_links(1, [TENT, STOVE])
    store.add_campaign_links(2, [TENT])
    subscriber = {r: store.get_subscriber("bot", r).id for r in ("11", "12", "13", "14")}
    store.record_click(1, subscriber["11"], 0, clicked_at=T0 + timedelta(hours=1))
    store.record_click(1, subscriber["11"], 1, clicked_at=T0 + timedelta(hours=2))
    store.record_click(1, subscriber["12"], 0, clicked_at=T0 + timedelta(hours=3))
    store.record_click(2, subscriber["11"], 0, clicked_at=c2 + timedelta(hours=1))

    # unsubscribes: 13 right after campaign 1; 12 at 7 days 23 h after campaign 1 (outside
    # its window, inside campaign 2's); 14 before both; b@ bounced (not an unsubscribe)
    _event(store, "bot", "13", "unsubscribe", T0 + 30 * s)
    _event(store, "bot", "12", "unsubscribe", T0 + timedelta(days=7, hours=23))
    _event(store, "bot", "14", "unsubscribe", T0 - timedelta(hours=1))
    _event(store, "news", "b@example.org", "bounced", c3 + 120 * s)

    # sources: blog healthy, shop failing, quiet never fetched
    now = datetime.now(UTC)
    for name in ("blog", "shop", "quiet"):
        store.add_source(name, f"https://{name}.example/feed.xml")
    ids = {r["name"]: r["id"] for r in store.query("SELECT id, name FROM sources")[1]}
    fetches = [
        ("blog", "ok", 10.0, 1), ("blog", "not_modified", 20.0, 2), ("blog", "not_modified", 30.0, 3),
        ("blog", "not_modified", 40.0, 4), ("blog", "ok", 1000.0, 40),  # 40 days ago: outside the window
        ("shop", "error", 100.0, 1), ("shop", "error", 300.0, 2),
    ]  # fmt: skip
    for n, (name, outcome, ms, days) in enumerate(fetches, 1):
        _sql(
            store,
            "INSERT INTO fetches (id, source_id, url, started_at, duration_ms, outcome) VALUES (?, ?, 'u', ?, ?, ?)",
            [n, ids[name], now - timedelta(days=days), ms, outcome],
        )
    _sql(store, "UPDATE sources SET error_count = 3, last_error = 'HTTP 500' WHERE name = 'shop'")
    _sql(store, "UPDATE sources SET last_success_at = ? WHERE name = 'blog'", [now - timedelta(days=1)])
    items = [
        (1, "blog", "Ultralight tent", TENT),
        (2, "blog", "Camp stove", STOVE),
        (3, "shop", "Lamp", "u3"),
    ]
    for item_id, name, title, url in items:
        _sql(
            store,
            "INSERT INTO items (id, source_id, key, title, url, content_hash, first_seen_at, last_seen_at)"
            " VALUES (?, ?, ?, ?, ?, 'h', ?, ?)",
            [item_id, ids[name], url, title, url, now, now],
        )
    events = [("blog", "new", False, 1)] * 6 + [("blog", "new", True, 1), ("blog", "changed", False, 1)]
    events += [("blog", "new", False, 40)] * 2 + [("shop", "new", False, 2)] * 3
    for name, event, backfill, days in events:
        _sql(
            store,
            "INSERT INTO item_events (item_id, source_id, event, occurred_at, backfill) VALUES (1, ?, ?, ?, ?)",
            [ids[name], event, now - timedelta(days=days), backfill],
        )
    return store


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("report") / "template.duckdb").path


@pytest.fixture
def store(template: Path, tmp_path: Path) -> Store:
    """A copy of the module's store (built once: some tests change theirs)."""
    path = tmp_path / "report.duckdb"
    shutil.copyfile(template, path)
    return Store(path)


@pytest.fixture
def cli(store: Store, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setattr(cli_module.out, "width", 400)
    return Cli(store.path, capsys)


# --------------------------------------------------------------------------- the views


def test_campaign_report_figures(store: Store) -> None:
    columns, rows = store.query("SELECT * FROM campaign_report ORDER BY campaign_id")
    assert columns[:16] == [
        "campaign_id", "automation", "channel", "channel_kind", "created_at", "items", "recipients", "sent",
        "failed", "skipped", "pending", "clicks", "unique_clickers", "click_rate", "unsubscribes_7d", "duration_s",
    ]  # fmt: skip
    names = ("campaign_id", "automation", "channel", "channel_kind", "items", "recipients", "sent", "failed",
             "skipped", "pending", "clicks", "unique_clickers")  # fmt: skip
    picked = [tuple(r[c] for c in names) for r in rows]
    assert picked == [
        (1, "deals", "bot", "telegram", 2, 4, 2, 1, 1, 0, 3, 2),
        (2, "deals", "bot", "telegram", 1, 3, 2, 0, 0, 1, 1, 1),
        (3, "digest", "news", "email", 3, 2, 1, 1, 0, 0, 0, 0),
    ]
    assert [r["click_rate"] for r in rows] == [1.0, 0.5, 0.0]
    assert [r["unsubscribes_7d"] for r in rows] == [1, 1, 0]  # 7 days 23 h counts for campaign 2 only
    assert [r["duration_s"] for r in rows] == [40.0, 5.0, 120.0]
    assert rows[0]["created_at"] == T0
    # one campaign, as the benchmark times it; and the store's own reader
    assert store.campaign_report(2) == [rows[1]]
    assert [r["campaign_id"] for r in store.campaign_report()] == [3, 2, 1]


def test_source_health_figures(store: Store) -> None:
    _, rows = store.query("SELECT * FROM source_health ORDER BY name")
    by_name = {r["name"]: r for r in rows}
    assert list(by_name) == ["blog", "quiet", "shop"]
    blog, quiet, shop = by_name["blog"], by_name["quiet"], by_name["shop"]
    assert (blog["fetches"], blog["ratio_304"], blog["median_fetch_ms"]) == (4, 0.75, 25.0)
    assert blog["items_per_day"] == pytest.approx(6 / 30)  # no backfill, no `changed`, last 30 days
    assert blog["consecutive_errors"] == 0 and blog["last_success_at"] is not None
    assert (shop["fetches"], shop["ratio_304"], shop["median_fetch_ms"]) == (2, 0.0, 200.0)
    assert (shop["consecutive_errors"], shop["last_error"], shop["items_per_day"]) == (3, "HTTP 500", 0.1)
    assert (quiet["fetches"], quiet["ratio_304"], quiet["median_fetch_ms"], quiet["items_per_day"]) == (
        0, None, None, 0.0,
    )  # fmt: skip
    assert quiet["status"] == "active" and quiet["last_success_at"] is None


def test_automation_activity_per_utc_day(store: Store) -> None:
    sql = (
        "SELECT automation, day, campaigns, items, recipients, sent, failed, skipped, clicks"
        " FROM automation_activity ORDER BY automation, day"
    )
    expected = [
        ("deals", date(2026, 11, 20), 1, 2, 4, 2, 1, 1, 3),
        ("deals", date(2026, 11, 21), 1, 1, 3, 2, 0, 0, 1),
        ("digest", date(2026, 11, 20), 1, 3, 2, 1, 1, 0, 0),
    ]
    assert [tuple(r.values()) for r in store.query(sql)[1]] == expected
    # an analyst's own session west of UTC sees the same days (the view buckets in UTC)
    con = duckdb.connect(str(store.path), read_only=True)
    try:
        con.execute("SET TimeZone = 'America/Los_Angeles'")
        assert con.execute(sql).fetchall() == expected
    finally:
        con.close()


def test_report_data_scopes_by_since_and_automation(store: Store) -> None:
    everything = build_report(store, now=T0)
    assert everything.totals | {"first_campaign_at": None, "last_campaign_at": None} == {
        "campaigns": 3, "deliveries": 9, "sent": 5, "failed": 2, "skipped": 1, "pending": 1, "clicks": 4,
        "unique_clickers": 3, "unsubscribes_7d": 2, "click_rate": 3 / 5,
        "first_campaign_at": None, "last_campaign_at": None,
    }  # fmt: skip
    assert everything.bucket == "hour"  # a day of campaigns: hourly buckets
    timeline: dict[tuple[str, str], int] = {}
    for r in everything.timeline:
        timeline[r["channel"], r["status"]] = timeline.get((r["channel"], r["status"]), 0) + r["deliveries"]
    assert timeline == {
        ("bot", "sent"): 4, ("bot", "failed"): 1, ("bot", "skipped"): 1, ("bot", "pending"): 1,
        ("news", "sent"): 1, ("news", "failed"): 1,
    }  # fmt: skip
    assert [(i["item"], i["clicks"], i["unique_clickers"], i["campaigns"]) for i in everything.top_items] == [
        ("Ultralight tent", 3, 2, 2),
        ("Camp stove", 1, 1, 1),
    ]
    assert [(f["status"], f["error_code"], f["deliveries"]) for f in everything.failures] == [
        ("failed", "403", 1), ("failed", "550 5.1.1", 1), ("skipped", "skipped", 1),
    ]  # fmt: skip
    later = build_report(store, since=T0 + timedelta(hours=12), now=T0)
    assert [c["campaign_id"] for c in later.campaigns] == [2]
    assert (later.totals["deliveries"], later.totals["clicks"], len(later.failures)) == (3, 1, 0)
    digest = build_report(store, automation="digest", now=T0)
    assert [c["campaign_id"] for c in digest.campaigns] == [3] and digest.top_items == []
    assert [a["automation"] for a in digest.activity] == ["digest"]


def test_parse_since() -> None:
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    assert parse_since("2026-11-01") == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_since("2026-11-01T09:30") == datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
    assert parse_since("2026-11-01T09:30+02:00") == datetime(2026, 11, 1, 7, 30, tzinfo=UTC)
    assert parse_since("30d", now) == now - timedelta(days=30)
    assert parse_since("12h", now) == now - timedelta(hours=12)
    assert parse_since(None) is None


# --------------------------------------------------------------------------- the command


def test_report_tables(cli: Cli) -> None:
    out = cli("report")
    assert out.startswith("feedcast report (all time)")
    lines = out.splitlines()
    totals = next(line for line in lines if "│ 3 " in line and "60.0 %" in line)
    assert re.sub(r"\s+", " ", totals).strip("│ ").split(" │ ") == [
        "3", "9", "5", "2", "1", "1", "4", "60.0 %", "2",
    ]  # fmt: skip
    campaign_1 = next(line for line in lines if line.startswith("│ 1 "))
    assert re.sub(r"\s+", " ", campaign_1).strip("│ ").split(" │ ") == [
        "1", "2026-11-20 09:00", "deals", "bot (telegram)", "2", "4", "2", "1", "1", "0", "3", "100.0 %", "1",
        "40.0 s",
    ]  # fmt: skip
    assert "Forbidden: bot was blocked by the user" in out and "Ultralight tent" in out and "HTTP 500" in out


def test_report_json_and_filters(cli: Cli) -> None:
    data = cli.json("report", "--since", "2026-11-21", "--automation", "deals")
    assert isinstance(data, dict)
    assert [c["campaign_id"] for c in data["campaigns"]] == [2]
    assert data["totals"]["sent"] == 2 and data["totals"]["click_rate"] == 0.5
    assert data["since"] == "2026-11-21T00:00:00+00:00" and data["automation"] == "deals"
    assert {s["name"] for s in data["sources"]} == {"blog", "shop", "quiet"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "--since", "2026-13-45"], "error: --since '2026-13-45' is not a date"),
        (["report", "--since", "last week"], "error: --since 'last week' is not a date"),
        (["report", "--automation", "nope"], "error: no automation named 'nope'"),
        (["export-history", "--parquet", "x", "--since", "soon"], "error: --since 'soon' is not a date"),
    ],
)
def test_mistakes_are_one_line(cli: Cli, args: list[str], message: str) -> None:
    err = cli(*args, code=2)
    assert err.startswith(message) and err.count("\n") == 1


def test_empty_database_reads_well(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli = Cli(tmp_path / "empty.duckdb", capsys)
    out = cli("report")
    assert "Campaigns (newest first): No campaigns yet." in out and "Source health: No sources yet." in out
    page = tmp_path / "empty.html"
    assert cli("report", "--html", str(page)).startswith(f"wrote {page}: 0 campaign(s)")
    html = page.read_text(encoding="utf-8")
    assert html.count('class="empty"') == 7 and 'class="chart' not in html
    assert "No campaigns yet" in report_markdown(build_report(Store(tmp_path / "empty.duckdb")))


def test_markdown_report(store: Store) -> None:
    text = report_markdown(build_report(store, now=T0))
    assert text.startswith("## feedcast report (all time)")
    assert "| 3 | 9 | 5 | 2 | 1 | 1 | 4 | 60.0 % | 2 |" in text
    assert (
        "| 2 | 2026-11-21 09:00 | deals | bot (telegram) | 1 | 3 | 2 | 0 | 0 | 1 | 1 | 50.0 % | 1 | 5.0 s |"
        in text
    )
    assert "| shop | active |" in text and "HTTP 500" in text


def test_html_page_is_self_contained_and_escaped(store: Store, tmp_path: Path) -> None:
    _sql(store, "UPDATE campaigns SET automation_name = '</script><script>alert(1)</script>' WHERE id = 3")
    html = report_html(build_report(store, now=T0))
    assert html.count('<figure class="chart') == 5  # timeline, click rate, items, failures, sources
    assert "<script>alert(1)" not in html and "&lt;/script&gt;&lt;script&gt;alert(1)" in html
    # no network and no script: the charts are HTML and CSS, nothing is loaded from elsewhere
    assert not re.search(r"<script|<link[^>]+href=|@import|url\(", html)
    assert len(html.encode()) < 60_000  # it was 4.8 MB with plotly.js inlined


# --------------------------------------------------------------------------- export-history


def test_export_history_writes_parquet(cli: Cli, store: Store, tmp_path: Path) -> None:
    target = tmp_path / "warehouse"
    out = cli("export-history", "--parquet", str(target))
    events = store.query("SELECT count(*) AS n FROM subscription_events")[1][0]["n"]
    expected = {
        "send_history": 9,
        "campaigns": 3,
        "campaign_report": 3,
        "clicks": 4,
        "subscription_events": events,
    }
    assert sorted(p.name for p in target.iterdir()) == sorted(
        f"{k}.parquet" for k in expected
    )  # no temp left
    con = duckdb.connect()
    try:
        for stem, n in expected.items():
            assert con.execute(f"SELECT count(*) FROM '{target / stem}.parquet'").fetchone() == (n,)
            assert re.search(rf"{stem}\.parquet\s+│\s+{n}\s", out), out
        report = con.execute(
            f"SELECT campaign_id, click_rate FROM '{target}/campaign_report.parquet' ORDER BY 1"
        )
        assert report.fetchall() == [(1, 1.0), (2, 0.5), (3, 0.0)]
    finally:
        con.close()
    cli("export-history", "--parquet", str(target), "--since", "2026-11-21")
    con = duckdb.connect()
    try:
        counts = {s: con.execute(f"SELECT count(*) FROM '{target / s}.parquet'").fetchone() for s in expected}
    finally:
        con.close()
    assert {k: v for k, v in counts.items() if k != "subscription_events"} == {
        "send_history": (3,), "campaigns": (1,), "campaign_report": (1,), "clicks": (1,),
    }  # fmt: skip


def test_export_history_unwritable_folder(cli: Cli, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    err = cli("export-history", "--parquet", str(blocker), code=2)
    assert err.startswith(f"error: cannot create {blocker}: File exists") and err.count("\n") == 1
    err = cli("export-history", "--parquet", str(blocker / "sub"), code=2)
    assert err.startswith(f"error: cannot create {blocker / 'sub'}: Not a directory") and err.count("\n") == 1


# --------------------------------------------------------------------------- headless Chromium


@pytest.mark.slow
def test_console_capture_catches_errors(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<p>x</p><script>console.error('boom'); notDefined();</script>", encoding="utf-8")
    _, console = _open_in_chromium(page, tmp_path, "--dump-dom")
    assert "boom" in console and "notDefined" in console


@pytest.mark.slow
@pytest.mark.parametrize("empty", [False, True])
def test_headless_chromium_renders_the_report(store: Store, tmp_path: Path, empty: bool) -> None:
    db = Store(tmp_path / "empty.duckdb") if empty else store
    page = tmp_path / "report.html"
    page.write_text(report_html(build_report(db)), encoding="utf-8")
    dom, console = _open_in_chromium(page, tmp_path, "--dump-dom")
    assert console == ""  # no console message at all: no error, no warning
    charts = 0 if empty else 5
    assert dom.count('<figure class="chart') == charts  # every chart, as HTML...
    assert dom.count('class="col"') + dom.count("<li title=") >= 3 * charts  # ...with its columns and bars
    if not empty:
        assert "Ultralight tent" in dom and "HTTP 500" in dom
    shot = tmp_path / "shot.png"
    _, console = _open_in_chromium(page, tmp_path, "--window-size=1280,2400", "--hide-scrollbars",
                                   f"--screenshot={shot}")  # fmt: skip
    assert console == ""
    if keep := os.environ.get("FEEDCAST_KEEP_SCREENSHOTS"):
        (Path(keep) / f"report{'-empty' if empty else ''}.png").write_bytes(shot.read_bytes())
    data = shot.read_bytes()
    assert _png_size(data) == (1280, 2400)
    rows = _png_sample_rows(data)
    bpp = len(rows[0]) // 1280
    colours = {row[i : i + 3] for row in rows for i in range(0, len(row), bpp * 4)}
    assert len(colours) > (8 if empty else 40), f"a blank screenshot? {len(colours)} colours"
    assert len(set(rows)) > 5


# --------------------------------------------------------------------------- small data, narrow screens


def _one_quick_campaign(path: Path) -> Store:
    """What a first try leaves: one campaign sent in seconds, sources without new items."""
    store = Store(path)
    store.add_channel("bot", "telegram", {"token": "env:T"})
    store.add_subscribers("bot", [NewSubscriber(r) for r in ("11", "12", "13", "14")])
    _campaign(store, 1, "first-try", "bot", "telegram", T0, 3)
    for n, (recipient, status) in enumerate(
        [("11", "sent"), ("12", "sent"), ("13", "sent"), ("14", "failed")]
    ):
        _delivery(store, 1, "bot", recipient, status, T0, T0 + timedelta(seconds=n + 1), error="blocked")
    for name in ("blog", "shop"):
        store.add_source(name, f"https://{name}.example/feed.xml")
    return store


@pytest.mark.parametrize(
    ("span", "bucket"),
    [
        (timedelta(seconds=3), "minute"),
        (timedelta(hours=2), "minute"),
        (timedelta(days=2), "hour"),
        (timedelta(days=40), "day"),
        (timedelta(days=400), "week"),
    ],
)
def test_the_timeline_bucket_follows_the_span(tmp_path: Path, span: timedelta, bucket: str) -> None:
    store = Store(tmp_path / "span.duckdb")
    store.add_channel("bot", "telegram", {"token": "env:T"})
    store.add_subscribers("bot", [NewSubscriber("11")])
    _campaign(store, 1, "a", "bot", "telegram", T0, 1)
    _delivery(store, 1, "bot", "11", "sent", T0, T0 + span)
    data = build_report(store, now=T0)
    assert data.bucket == bucket
    [row] = data.timeline
    moment = row["bucket"].replace(tzinfo=UTC)
    if bucket == "week":
        assert moment.weekday() == 0 and moment.time() == datetime.min.time()  # weeks start on Monday
    assert moment <= T0 + span < moment + {"minute": timedelta(minutes=1), "hour": timedelta(hours=1),
                                            "day": timedelta(days=1), "week": timedelta(weeks=1)}[bucket]  # fmt: skip


def _ticks(html: str) -> list[str]:
    return [
        re.sub(r"<[^>]+>", " ", t).split()[0]
        for t in re.findall(r'<span class="tick[^"]*"[^>]*>(.*?)</span>', html)
    ]


def test_one_quick_campaign_reads_in_minutes_with_round_ticks(tmp_path: Path) -> None:
    data = build_report(_one_quick_campaign(tmp_path / "quick.duckdb"), now=T0)
    assert data.bucket == "minute"
    html = report_html(data)
    assert html.count('class="col"') + html.count('class="col" ') >= 12  # not one full-width bar
    ticks = _ticks(html)
    assert 2 <= len(ticks) <= 8 and all(re.fullmatch(r"\d\d:\d\d", t) for t in ticks), ticks
    assert len({int(t[3:]) % 2 for t in ticks}) == 1  # evenly spaced round minutes
    assert "09:00" in ticks or "08:58" in ticks  # around the campaign's minute (09:00 UTC)
    assert "20 Nov 2026" in html  # the date under the first time


def test_sources_without_new_items_say_no_data_yet(tmp_path: Path) -> None:
    html = report_html(build_report(_one_quick_campaign(tmp_path / "quick.duckdb"), now=T0))
    health = html[html.index("<h2>Source health</h2>") :]
    health = health[: health.index("</section>")]
    assert "No data yet: no source found new items in the last 30 days" in health
    assert '<figure class="chart' not in health and "<td" in health  # no empty axis; the table stays


@pytest.mark.slow
@pytest.mark.parametrize("width", [390, 1280])
@pytest.mark.parametrize("kind", ["full", "quick"])
def test_the_report_fits_a_phone_and_a_desktop(store: Store, tmp_path: Path, width: int, kind: str) -> None:
    db = store if kind == "full" else _one_quick_campaign(tmp_path / "quick.duckdb")
    page = tmp_path / "report.html"
    page.write_text(report_html(build_report(db, now=T0)), encoding="utf-8")
    probe = _probe(page, tmp_path, width)
    assert probe["inner"] == width
    assert probe["scroll"] <= width and probe["wide"] == [], probe  # no horizontal scrolling, nothing cut
    ticks = [t.split("\n")[0] for t in probe["ticks"]]
    assert 2 <= len(ticks) <= (4 if width < 640 else 8), ticks
    assert all(re.fullmatch(r"\d\d:\d\d", t) for t in ticks), ticks
    if keep := os.environ.get("FEEDCAST_KEEP_SCREENSHOTS"):
        shot = Path(keep) / f"report-{kind}-{width}.png"
        wrapper = tmp_path / f"probe-{width}.html"
        _open_in_chromium(wrapper, tmp_path, f"--window-size={max(width, 500)},2400", "--hide-scrollbars",
                          f"--screenshot={shot}")  # fmt: skip
