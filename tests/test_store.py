"""The DuckDB store: migrations, sources, change detection, scheduling, the file lock."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from feedcast.kernel.errors import AlreadyExists, InvalidValue, NotFound, StoreBusy
from feedcast.kernel.models import Item, PollOutcome
from feedcast.store import MIGRATIONS, Store

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "t.duckdb", lock_timeout=5)


def ok(source_id: int, items: list[Item], **kw: object) -> PollOutcome:
    return PollOutcome(
        source_id=source_id,
        url="http://example.test/feed",
        started_at=NOW,
        duration=0.01,
        outcome="ok",
        status=200,
        items=tuple(items),
        kind="feed",
        format="rss20",
        **kw,  # type: ignore[arg-type]
    )


def post(n: int, **kw: object) -> Item:
    fields: dict[str, object] = {
        "key": f"post-{n}",
        "title": f"Post {n}",
        "url": f"http://example.test/{n}",
        "published": datetime(2026, 11, n, tzinfo=UTC),
    }
    fields.update(kw)
    return Item(**fields)  # type: ignore[arg-type]


def events(store: Store) -> list[tuple[str, str, object, object]]:
    _, rows = store.query(
        "SELECT i.key, e.event, e.old_price, e.new_price FROM item_events e JOIN items i ON i.id = e.item_id"
        " ORDER BY e.id"
    )
    return [(r["key"], r["event"], r["old_price"], r["new_price"]) for r in rows]


def test_migrations_are_recorded_once(store: Store) -> None:
    assert store.schema_version() == MIGRATIONS[-1][0]
    again = Store(store.path)
    assert again.schema_version() == MIGRATIONS[-1][0]
    _, rows = store.query("SELECT count(*) AS n FROM schema_migrations")
    assert rows[0]["n"] == len(MIGRATIONS)


def test_source_crud(store: Store) -> None:
    s = store.add_source("blog", "http://example.test/feed", every=timedelta(hours=1))
    assert s.every == timedelta(hours=1) and s.status == "active" and s.kind is None
    with pytest.raises(AlreadyExists, match="blog"):
        store.add_source("blog", "http://other.test/")
    assert [x.name for x in store.list_sources()] == ["blog"]
    assert store.set_source_status("blog", "paused").status == "paused"
    assert store.due_sources() == []
    assert [x.name for x in store.due_sources(["blog"], force=True)] == ["blog"]
    assert store.set_source_status("blog", "active").status == "active"
    with pytest.raises(InvalidValue):
        store.set_source_status("blog", "sleeping")
    with pytest.raises(NotFound, match="nope"):
        store.get_source("nope")
    with pytest.raises(NotFound, match="nope"):
        store.list_sources(["blog", "nope"])
    store.record_polls([ok(s.id, [post(1)])], now=NOW)
    assert store.remove_source("blog") == 1
    assert store.list_sources() == []
    _, rows = store.query("SELECT (SELECT count(*) FROM items) + (SELECT count(*) FROM fetches) AS n")
    assert rows[0]["n"] == 0


def test_baseline_raises_no_events_then_new_items_do(store: Store) -> None:
    s = store.add_source("blog", "http://example.test/feed")
    [summary] = store.record_polls([ok(s.id, [post(1), post(2)])], now=NOW)
    assert summary.baseline and summary.new == 0 and summary.items == 2
    assert events(store) == []
    assert store.get_source("blog").baseline_done
    [summary] = store.record_polls([ok(s.id, [post(3), post(1), post(2)])], now=NOW + timedelta(minutes=15))
    assert (summary.new, summary.changed, summary.baseline) == (1, 0, False)
    assert events(store) == [("post-3", "new", None, None)]


def test_backfill_marks_the_newest_as_new(store: Store) -> None:
    s = store.add_source("blog", "http://example.test/feed", backfill=2)
    # feed order is not date order: backfill picks by date
    [summary] = store.record_polls([ok(s.id, [post(1), post(5), post(3), post(4)])], now=NOW)
    assert summary.new == 2
    assert sorted(k for k, *_ in events(store)) == ["post-4", "post-5"]
    _, rows = store.query("SELECT bool_and(backfill) AS b FROM item_events")
    assert rows[0]["b"] is True


def test_changed_price_drop_and_back_in_stock(store: Store) -> None:
    s = store.add_source("shop", "http://example.test/shop.xml")
    shoe = Item(key="sku-1", title="Shoe", price=Decimal("85.00"), currency="USD", availability="in_stock")
    hat = Item(key="sku-2", title="Hat", price=Decimal("25.00"), currency="USD", availability="out_of_stock")
    store.record_polls([ok(s.id, [shoe, hat])], now=NOW)
    # unchanged: no events
    store.record_polls([ok(s.id, [shoe, hat])], now=NOW + timedelta(minutes=1))
    assert events(store) == []
    cheaper = Item(key="sku-1", title="Shoe", price=Decimal("85.00"), sale_price=Decimal("59.90"), currency="USD",
                   availability="in_stock")  # fmt: skip
    restocked = Item(
        key="sku-2", title="Hat", price=Decimal("35.00"), currency="USD", availability="in_stock"
    )
    [summary] = store.record_polls([ok(s.id, [cheaper, restocked])], now=NOW + timedelta(minutes=2))
    assert (summary.new, summary.changed) == (0, 2)
    assert sorted(events(store), key=lambda e: (e[0], e[1])) == [
        ("sku-1", "changed", Decimal("85.0000"), Decimal("59.9000")),
        ("sku-1", "price_drop", Decimal("85.0000"), Decimal("59.9000")),
        ("sku-2", "back_in_stock", Decimal("25.0000"), Decimal("35.0000")),
        ("sku-2", "changed", Decimal("25.0000"), Decimal("35.0000")),
    ]
    _, rows = store.query("SELECT key, sale_price, availability, changed_at FROM items ORDER BY key")
    assert rows[0]["sale_price"] == Decimal("59.9000")
    assert rows[1]["availability"] == "in_stock"
    assert all(r["changed_at"] is not None for r in rows)


def test_duplicate_keys_in_one_document_keep_the_first(store: Store) -> None:
    s = store.add_source("blog", "http://example.test/feed")
    [summary] = store.record_polls([ok(s.id, [post(1, title="first"), post(1, title="second")])], now=NOW)
    _, rows = store.query("SELECT title FROM items")
    assert [r["title"] for r in rows] == ["first"]
    assert summary.items == 2  # what the document held


def test_failures_back_off_and_success_resets(store: Store) -> None:
    s = store.add_source("blog", "http://example.test/feed", every=timedelta(minutes=10))
    fail = PollOutcome(source_id=s.id, url=s.url, started_at=NOW, duration=0.1, outcome="error", status=500,
                       error="HTTP 500")  # fmt: skip
    store.record_polls([fail], now=NOW)
    store.record_polls([fail], now=NOW)
    src = store.get_source("blog")
    assert src.error_count == 2 and src.last_error == "HTTP 500" and src.last_status == 500
    assert src.next_poll_at is not None
    # 10 min * 2**2, with up to 20 % jitter below
    assert timedelta(minutes=31) <= src.next_poll_at - NOW <= timedelta(minutes=40)
    store.record_polls(
        [ok(s.id, [post(1)], etag='"v1"', last_modified="Wed, 25 Nov 2026 10:00:00 GMT")], now=NOW
    )
    src = store.get_source("blog")
    assert (src.error_count, src.last_error, src.etag) == (0, None, '"v1"')
    assert src.next_poll_at == NOW + timedelta(minutes=10)
    _, rows = store.query("SELECT outcome, status, error FROM fetches ORDER BY id")
    assert [r["outcome"] for r in rows] == ["error", "error", "ok"]


def test_not_modified_keeps_validators_and_items(store: Store) -> None:
    s = store.add_source("blog", "http://example.test/feed")
    store.record_polls([ok(s.id, [post(1)], etag='"v1"')], now=NOW)
    nm = PollOutcome(source_id=s.id, url=s.url, started_at=NOW, duration=0.01, outcome="not_modified", status=304,
                     sent_etag='"v1"', etag='"v1"')  # fmt: skip
    [summary] = store.record_polls([nm], now=NOW + timedelta(minutes=15))
    assert summary.outcome == "not_modified" and summary.error is None
    src = store.get_source("blog")
    assert src.etag == '"v1"' and src.item_count == 1 and src.error_count == 0
    _, rows = store.query("SELECT sent_etag, items FROM fetches ORDER BY id DESC LIMIT 1")
    assert rows[0] == {"sent_etag": '"v1"', "items": None}


def test_gone_rate_limited_redirect_and_deadline(store: Store) -> None:
    a = store.add_source("a", "http://example.test/a")
    b = store.add_source("b", "http://example.test/b")
    c = store.add_source("c", "http://example.test/c")
    d = store.add_source("d", "http://example.test/d")
    store.record_polls(
        [
            PollOutcome(source_id=a.id, url=a.url, started_at=NOW, duration=0.1, outcome="gone", status=410,
                        error="HTTP 410 Gone"),
            PollOutcome(source_id=b.id, url=b.url, started_at=NOW, duration=0.1, outcome="rate_limited", status=429,
                        error="rate limited", retry_after=120),
            ok(c.id, [post(1)], new_url="https://example.test/c-moved"),
            PollOutcome(source_id=d.id, url=d.url, started_at=NOW, duration=0.0, outcome="deadline",
                        error="deadline"),
        ],
        now=NOW,
    )  # fmt: skip
    assert store.get_source("a").status == "gone"
    assert store.get_source("b").next_poll_at == NOW + timedelta(seconds=120)
    assert store.get_source("c").url == "https://example.test/c-moved"
    dd = store.get_source("d")
    assert dd.error_count == 0 and dd.next_poll_at == NOW
    due = {s.name for s in store.due_sources(now=NOW + timedelta(minutes=1))}
    assert "a" not in due and "d" in due


def test_query_errors_are_one_line(store: Store) -> None:
    with pytest.raises(InvalidValue, match=r"^SQL error: .*nope") as info:
        store.query("SELECT * FROM nope")
    assert "\n" not in str(info.value)


def test_sql_is_read_only(store: Store) -> None:
    store.add_source("blog", "http://example.test/feed")
    with pytest.raises(InvalidValue, match="read-only"):
        store.query("DELETE FROM sources")


HOLDER = textwrap.dedent(
    """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    con.close()
    """
)
# holds the lock until told (a line on stdin), so the order is certain, not the timing
HOLD_UNTIL_TOLD = textwrap.dedent(
    """
    import sys, duckdb
    con = duckdb.connect(sys.argv[1])
    print("locked", flush=True)
    sys.stdin.readline()
    con.close()
    print("released", flush=True)
    """
)


def test_busy_file_is_retried_until_free(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.duckdb", lock_timeout=60)
    store.add_source("blog", "http://example.test/feed")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_UNTIL_TOLD, str(store.path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert holder.stdin is not None and holder.stdout is not None
    try:
        assert holder.stdout.readline().strip() == b"locked"
        outcome: list[object] = []
        reader = threading.Thread(target=lambda: outcome.append(_names_or_error(store)))
        reader.start()
        reader.join(0.3)  # time to meet the lock (if it is slower, the test proves less, never fails)
        assert outcome == [], f"the read did not wait for the lock: {outcome}"
        holder.stdin.write(b"go\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == b"released"
        reader.join(30)
        assert outcome == [["blog"]]  # it waited for the other process, then read
    finally:
        holder.kill()
        holder.wait(timeout=10)


def _names_or_error(store: Store) -> object:
    try:
        return [s.name for s in store.list_sources()]
    except Exception as exc:
        return exc


def test_busy_file_past_the_timeout_is_one_clear_error(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.duckdb", lock_timeout=0.3)
    store.schema_version()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(store.path), "3"], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
        with pytest.raises(StoreBusy, match="busy"):
            store.list_sources()
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_every_table_and_column_is_documented(store: Store) -> None:
    """docs/schema.md is the analysts' contract: no table, view or column may be missing."""
    doc = (Path(__file__).parent.parent / "docs" / "schema.md").read_text(encoding="utf-8")
    _, rows = store.query(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'main'"
    )
    sections = {line[4:].strip().strip("`") for line in doc.splitlines() if line.startswith("## `")}
    missing_tables = sorted({r["table_name"] for r in rows} - sections)
    assert not missing_tables, f"undocumented tables or views in docs/schema.md: {missing_tables}"
    documented = set()
    for line in doc.splitlines():
        if line.startswith("| ") and not line.startswith("| column"):
            documented |= {c.strip() for c in line.split("|")[1].split(",")}
    missing = sorted(
        {f"{r['table_name']}.{r['column_name']}" for r in rows if r["column_name"] not in documented}
    )
    assert not missing, f"undocumented columns in docs/schema.md: {missing}"


def test_bulk_registration_is_all_or_nothing(store: Store) -> None:
    from feedcast.store import NewSource

    store.add_sources([NewSource(f"s{i}", f"http://example.test/{i}", "feed") for i in range(300)])
    assert len(store.list_sources()) == 300
    with pytest.raises(AlreadyExists, match="s7"):
        store.add_sources(
            [NewSource("fresh", "http://example.test/x"), NewSource("s7", "http://example.test/7")]
        )
    with pytest.raises(AlreadyExists, match="twice"):
        store.add_sources([NewSource("a", "http://example.test/a"), NewSource("a", "http://example.test/b")])
    assert len(store.list_sources()) == 300
    assert store.get_source("s7").added_url == "http://example.test/7"
