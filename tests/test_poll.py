"""Polling through the real path: local HTTP server -> fetch -> parse -> DuckDB diff."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from feedcast import watch
from feedcast.kernel.clock import FakeClock
from feedcast.sandbox import SampleServer, sample_text
from feedcast.store import Store
from sources.poll import PollSettings
from tests.conftest import SHARED_CORPUS, SHARED_CORPUS_ABSENT
from tests.hostile_server import HostileServer

FIXTURES = Path(__file__).parent / "data" / "fixtures"


@pytest.fixture
def server() -> Iterator[SampleServer]:
    with SampleServer() as s:
        yield s


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "poll.duckdb")


def event_rows(store: Store) -> list[tuple[str, str, Decimal | None, Decimal | None]]:
    _, rows = store.query(
        "SELECT i.key, e.event, e.old_price, e.new_price FROM item_events e JOIN items i ON i.id = e.item_id"
        " ORDER BY i.key, e.event"
    )
    return [(r["key"], r["event"], r["old_price"], r["new_price"]) for r in rows]


def _snapshot_pair(store: Store, server: SampleServer, first: bytes, second: bytes) -> None:
    server.put("/merchant.xml", first, "application/xml")
    source, summary = watch.add_source(store, "shop", server.base_url + "/merchant.xml")
    assert summary is not None and summary.error is None
    assert source.kind == "catalogue" and source.format == "merchant-rss"
    server.put("/merchant.xml", second, "application/xml")
    [summary] = watch.poll(store, force=True)
    assert summary.outcome == "ok"


def test_merchant_snapshots_new_product_and_price_changes(store: Store, server: SampleServer) -> None:
    first = (FIXTURES / "catalogues" / "merchant_gonly_2026-01-05.xml").read_bytes()
    second = (FIXTURES / "catalogues" / "merchant_gonly_2026-02-05.xml").read_bytes()
    _snapshot_pair(store, server, first, second)
    events = event_rows(store)
    assert events, "the second snapshot must raise events"
    kinds = {e[1] for e in events}
    assert "new" in kinds and "changed" in kinds
    for key, event, old, new in events:
        if event == "price_drop":
            assert old is not None and new is not None and new < old, key


def test_merchant_snapshots_rises_are_changes_and_a_sale_is_a_drop(
    store: Store, server: SampleServer
) -> None:
    """The fixture pair mirroring a real shop's snapshots (tests/data/fixtures/MANIFEST.tsv):
    glasses-case is new, camera-strap went up (changed, no price drop), key-fob went on
    sale (a drop), tool-roll came back in stock."""
    first = (FIXTURES / "catalogues" / "merchant_gonly_2026-01-05.xml").read_bytes()
    second = (FIXTURES / "catalogues" / "merchant_gonly_2026-02-05.xml").read_bytes()
    _snapshot_pair(store, server, first, second)
    assert event_rows(store) == [
        ("camera-strap", "changed", Decimal("60.0000"), Decimal("75.0000")),
        ("glasses-case", "new", None, Decimal("30.0000")),
        ("key-fob", "changed", Decimal("12.0000"), Decimal("9.5000")),
        ("key-fob", "price_drop", Decimal("12.0000"), Decimal("9.5000")),
        ("tool-roll", "back_in_stock", Decimal("45.0000"), Decimal("45.0000")),
        ("tool-roll", "changed", Decimal("45.0000"), Decimal("45.0000")),
    ]


@pytest.mark.skipif(not (SHARED_CORPUS / "MANIFEST.tsv").exists(), reason=SHARED_CORPUS_ABSENT)
def test_rawhide_snapshots_from_the_shared_corpus(store: Store, server: SampleServer) -> None:
    """The real shop's two snapshots: velcro-patch is new, two prices went up (no price drop)."""
    first = (SHARED_CORPUS / "catalogues" / "rawhide_merchant_2026-07-23.xml").read_bytes()
    second = (SHARED_CORPUS / "catalogues" / "rawhide_merchant_2026-08-19.xml").read_bytes()
    _snapshot_pair(store, server, first, second)
    _, rows = store.query(
        "SELECT e.event, i.title, e.old_price, e.new_price FROM item_events e JOIN items i ON i.id = e.item_id"
    )
    new = [r["title"] for r in rows if r["event"] == "new"]
    assert len(new) == 1 and "velcro" in new[0].lower()
    rises = sorted(
        (r["old_price"], r["new_price"]) for r in rows if r["event"] == "changed" and r["old_price"]
    )
    assert (Decimal("25.0000"), Decimal("35.0000")) in rises
    assert (Decimal("85.0000"), Decimal("115.0000")) in rises
    assert not [r for r in rows if r["event"] == "price_drop"]


def test_server_without_validators_is_skipped_by_body_hash(store: Store, server: SampleServer) -> None:
    server.put("/feed", sample_text("news.atom").replace("{base}", server.base_url), "application/atom+xml",
               validators=False)  # fmt: skip
    watch.add_source(store, "news", server.base_url + "/feed")
    [summary] = watch.poll(store, force=True)
    assert summary.outcome == "unchanged" and summary.items is None
    _, rows = store.query("SELECT outcome, sent_etag, bytes > 0 AS got_body FROM fetches ORDER BY id")
    assert [(r["outcome"], r["sent_etag"], r["got_body"]) for r in rows] == [
        ("ok", None, True),
        ("unchanged", None, True),
    ]


def test_page_without_feed_gives_page_items(store: Store, server: SampleServer) -> None:
    server.put("/blog/", (FIXTURES / "pages" / "articles.html").read_bytes(), "text/html; charset=utf-8")
    source, summary = watch.add_source(store, "blog", server.base_url + "/blog/")
    assert summary is not None and summary.error is None
    assert source.kind == "page" and source.url == server.base_url + "/blog/"
    assert summary.items and summary.items > 1


def test_selectors_are_used_for_pages(store: Store, server: SampleServer) -> None:
    server.put("/news/", (FIXTURES / "pages" / "listing_selectors.html").read_bytes(), "text/html")
    selectors = {"item": "div.card", "title": ".card-title", "link": "a.card-link", "summary": "p.teaser"}
    source, summary = watch.add_source(store, "harbour", server.base_url + "/news/", selectors=selectors)
    assert source.kind == "page" and source.selectors == selectors
    assert summary is not None and summary.items == 3
    _, rows = store.query("SELECT title, url, summary FROM items ORDER BY position")
    assert [r["title"] for r in rows] == [
        "New ferry timetable from April",
        "Lighthouse open day & guided tours",
        "Winter storm report",
    ]
    assert rows[0]["url"] == server.base_url + "/news/2024/03/new-ferry-timetable"
    assert rows[2]["url"] == server.base_url + "/news/news/2024/01/winter-storm-report"
    assert rows[0]["summary"] == "The summer timetable adds two evening crossings."


def test_one_broken_source_does_not_stop_the_others(
    store: Store, server: SampleServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sources.poll as poll_module

    server.put("/good.rss", sample_text("blog.rss").replace("{base}", server.base_url), "application/rss+xml")
    server.put("/bad.rss", "<rss version='2.0'><channel><item><title>x</title></item></channel></rss>",
               "application/rss+xml")  # fmt: skip
    watch.add_source(store, "good", server.base_url + "/good.rss", fetch=False)
    watch.add_source(store, "bad", server.base_url + "/bad.rss", fetch=False)
    real = poll_module.parse_document

    def explode(body: bytes, url: str, *args: object, **kwargs: object) -> object:
        if url.endswith("/bad.rss"):
            raise RuntimeError("parser bug")
        return real(body, url, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(poll_module, "parse_document", explode)
    summaries = {s.source: s for s in watch.poll(store)}
    assert summaries["good"].outcome == "ok" and summaries["good"].items == 5
    assert summaries["bad"].outcome == "error"
    assert "internal error while polling: RuntimeError: parser bug" in (summaries["bad"].error or "")


def test_poll_deadline_leaves_slow_sources_due(store: Store, server: SampleServer) -> None:
    server.put("/a.rss", sample_text("blog.rss").replace("{base}", server.base_url), "application/rss+xml")
    watch.add_source(store, "a", server.base_url + "/a.rss", fetch=False)
    summaries = watch.poll(store, deadline=0.0)
    assert [s.outcome for s in summaries] == ["deadline"]
    source = store.get_source("a")
    assert source.error_count == 0 and source.item_count == 0
    assert [s.name for s in store.due_sources()] == ["a"]


def test_progress_reports_every_source(store: Store, server: SampleServer) -> None:
    for i in range(5):
        body = (
            sample_text("blog.rss").replace("{base}", server.base_url).replace("northwind-journal-", f"s{i}-")
        )
        server.put(f"/{i}.rss", body, "application/rss+xml")
        watch.add_source(store, f"s{i}", f"{server.base_url}/{i}.rss", fetch=False)
    due: list[int] = []
    seen: list[str] = []
    watch.poll(store, on_due=due.append, progress=lambda s: seen.append(s.source),
               settings=PollSettings(concurrency=2), batch_size=2)  # fmt: skip
    assert due == [5] and sorted(seen) == [f"s{i}" for i in range(5)]
    _, rows = store.query("SELECT count(*) AS n FROM items")
    assert rows[0]["n"] == 25


def test_items_keep_media_and_products_keep_variants_as_json(store: Store, server: SampleServer) -> None:
    server.put("/blog.rss", sample_text("blog.rss").replace("{base}", server.base_url), "application/rss+xml")
    watch.add_source(store, "blog", server.base_url + "/blog.rss")
    _, rows = store.query("SELECT key, media, image FROM items WHERE key = 'northwind-journal-103'")
    media = json.loads(rows[0]["media"])
    assert media[0]["medium"] == "audio" and media[0]["url"].endswith("/audio/podcast-12.mp3")
    assert media[0]["length"] == 18234567


def _shopify_product(n: int, price: str) -> dict[str, object]:
    return {
        "id": 1000 + n,
        "title": f"Candle {n}",
        "handle": f"candle-{n}",
        "body_html": f"<p>Hand-poured candle number {n}.</p>",
        "vendor": "Wick & Co",
        "images": [{"src": f"https://cdn.example/candle-{n}.jpg"}],
        "variants": [
            {"id": 5000 + n, "price": price, "compare_at_price": None, "available": True, "sku": f"C{n}"}
        ],
    }


def test_shopify_pagination_is_followed(store: Store, server: SampleServer) -> None:
    products = [_shopify_product(n, "12.00") for n in range(1, 6)]
    for page in range(1, 4):
        chunk = products[(page - 1) * 2 : page * 2]
        path = "/products.json?limit=2" + (f"&page={page}" if page > 1 else "")
        server.put(path, json.dumps({"products": chunk}), "application/json")
    source, summary = watch.add_source(store, "candles", server.base_url + "/products.json?limit=2")
    assert source.format == "shopify-json"
    assert summary is not None and summary.items == 5
    _, rows = store.query("SELECT documents FROM fetches")
    assert rows[0]["documents"] == 3  # page 3 has one product: no page 4
    # a price drop on page 3 is found although page 1 did not change
    products[4] = _shopify_product(5, "9.50")
    server.put("/products.json?limit=2&page=3", json.dumps({"products": products[4:]}), "application/json")
    watch.poll(store, force=True)
    assert ("1005", "price_drop", Decimal("12.0000"), Decimal("9.5000")) in event_rows(store)


def test_woocommerce_pages_follow_total_pages_header(store: Store, server: SampleServer) -> None:
    def product(n: int) -> dict[str, object]:
        return {
            "id": n,
            "name": f"Mug {n}",
            "permalink": f"{server.base_url}/product/mug-{n}/",
            "sku": f"M{n}",
            "is_in_stock": True,
            "prices": {"price": "1500", "regular_price": "1500", "sale_price": "1500",
                       "currency_code": "EUR", "currency_minor_unit": 2},
            "images": [],
        }  # fmt: skip

    base = "/wp-json/wc/store/v1/products"
    server.put(base + "?per_page=2", json.dumps([product(1), product(2)]), "application/json")
    server.put(base + "?page=2&per_page=2", json.dumps([product(3)]), "application/json")
    source, summary = watch.add_source(store, "mugs", server.base_url + base + "?per_page=2")
    assert source.format == "woocommerce-json"
    assert summary is not None and summary.items == 3
    _, rows = store.query("SELECT key, price, currency FROM items ORDER BY key")
    assert [(r["key"], r["price"], r["currency"]) for r in rows] == [
        ("1", Decimal("15.0000"), "EUR"),
        ("2", Decimal("15.0000"), "EUR"),
        ("3", Decimal("15.0000"), "EUR"),
    ]


def _product_page(name: str, price: str, availability: str = "InStock") -> str:
    data = {
        "@context": "https://schema.org",
        "@type": "Product",
        "name": name,
        "sku": name.lower().replace(" ", "-"),
        "offers": {"@type": "Offer", "price": price, "priceCurrency": "EUR",
                   "availability": f"https://schema.org/{availability}"},
    }  # fmt: skip
    return f'<html><head><script type="application/ld+json">{json.dumps(data)}</script></head><body></body></html>'


def _sitemap(base: str, entries: list[tuple[str, str]]) -> str:
    urls = "".join(
        f"<url><loc>{base}{path}</loc><lastmod>{lastmod}</lastmod></url>" for path, lastmod in entries
    )
    return f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'


def test_sitemap_catalogue_fetches_product_pages_in_bounded_steps(store: Store, server: SampleServer) -> None:
    base = server.base_url
    lamps = [f"/lamp-{n}" for n in range(5)]
    server.put(
        "/sitemap.xml",
        '<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"<sitemap><loc>{base}/sitemap-1.xml</loc></sitemap><sitemap><loc>/sitemap-2.xml</loc></sitemap>"
        "</sitemapindex>",
        "application/xml",
    )
    entries = [(path, "2026-11-01") for path in lamps]
    server.put("/sitemap-1.xml", _sitemap(base, entries[:3]), "application/xml")
    server.put("/sitemap-2.xml", _sitemap(base, entries[3:]), "application/xml")
    for n, path in enumerate(lamps):
        server.put(path, _product_page(f"Lamp {n}", f"{40 + n}.00"), "text/html")
    watch.add_source(store, "lamps", base + "/sitemap.xml", fetch=False)
    settings = PollSettings(max_product_pages=3)

    [first] = watch.poll(store, force=True, settings=settings)
    assert (first.items, first.new) == (3, 0)
    assert not store.get_source("lamps").baseline_done  # 2 product pages still to fetch
    [second] = watch.poll(store, force=True, settings=settings)
    assert (second.items, second.new) == (2, 0)  # still the baseline: nothing is new
    source = store.get_source("lamps")
    assert source.baseline_done and source.item_count == 5 and source.format == "sitemap"
    _, rows = store.query("SELECT key, title, price FROM items ORDER BY key")
    assert rows[0] == {"key": base + "/lamp-0", "title": "Lamp 0", "price": Decimal("40.0000")}

    # a cheaper lamp (lastmod moves) and a new lamp: only those two pages are fetched
    requests_before = server.requests
    server.put("/lamp-1", _product_page("Lamp 1", "29.00"), "text/html")
    server.put("/lamp-9", _product_page("Lamp 9", "99.00"), "text/html")
    entries[1] = ("/lamp-1", "2026-11-20")
    server.put("/sitemap-1.xml", _sitemap(base, [*entries[:3], ("/lamp-9", "2026-11-20")]), "application/xml")
    [third] = watch.poll(store, force=True, settings=settings)
    assert (third.items, third.new, third.changed) == (2, 1, 1)
    assert server.requests - requests_before == 3 + 2  # index + 2 child sitemaps + 2 product pages
    events = event_rows(store)
    assert (base + "/lamp-1", "price_drop", Decimal("41.0000"), Decimal("29.0000")) in events
    assert (base + "/lamp-9", "new", None, Decimal("99.0000")) in events


def test_failures_back_off_exponentially_to_at_most_a_day(store: Store) -> None:
    """A source that always fails, polled whenever it is due on a fake clock: the wait
    doubles, then stays at most a day (with up to 20 % jitter below), for as long as
    it keeps failing; before its time it is not polled."""
    clock = FakeClock(datetime.now(UTC) + timedelta(seconds=1))  # the source is due on registering
    with HostileServer() as server:
        watch.add_source(store, "flaky", server.url("/500"), every=timedelta(minutes=15), fetch=False)
        waits = []
        for _ in range(12):
            [summary] = watch.poll(store, clock=clock)
            assert summary.outcome == "error" and summary.error == "HTTP 500"
            due = store.get_source("flaky").next_poll_at
            assert due is not None
            waits.append(due - clock.now())
            clock.set(due - timedelta(seconds=1))
            assert watch.poll(store, clock=clock) == []  # not due yet
            clock.advance(2)
        assert server.count("/500") == 12
    source = store.get_source("flaky")
    assert source.error_count == 12 and source.last_status == 500
    day = timedelta(days=1)
    assert timedelta(minutes=24) <= waits[0] <= timedelta(minutes=30)  # 15 min x 2, jittered
    assert all(earlier < later for earlier, later in itertools.pairwise(waits[:5]))  # doubling
    assert all(wait <= day for wait in waits)  # the cap
    assert all(wait >= 0.8 * day for wait in waits[-5:])  # and it stays there (from the 7th)
