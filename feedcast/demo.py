"""``feedcast demo``: the pipeline end to end on bundled samples served on loopback.

Day 1 registers a homepage (its feed is discovered), an Atom feed, a JSON Feed and a
Google Merchant catalogue, each taking its baseline, and, on the sandbox's provider
emulators, a Telegram bot and an email relay with a few subscribers (one has blocked the
bot, one address bounces) and two automations. Day 2 the samples change (a new post, a
new product, a price drop, a restock), one poll finds exactly that, and `send` delivers
the two campaigns; the send history and the subscribers' new statuses come from DuckDB.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

from rich.console import Console
from rich.table import Table

from feedcast import watch
from feedcast.delivery import SendSettings, send_automation
from feedcast.models import NewSubscriber
from feedcast.sandbox import SampleServer, sample_text
from feedcast.sandbox.run import SANDBOX_ENV, Sandbox
from feedcast.store import Store

__all__ = ["run_demo"]

SOURCES = [
    # name, path, kind, backfill
    ("journal", "/", "auto", 2),
    ("news", "/news.atom", "auto", 0),
    ("deals", "/deals.json", "auto", 0),
    ("shop", "/shop.xml", "auto", 0),
]


def _publish_day1(server: SampleServer) -> None:
    base = server.base_url
    server.put("/", sample_text("index.html"), "text/html; charset=utf-8")
    server.put(
        "/blog.rss", sample_text("blog.rss").replace("{base}", base), "application/rss+xml; charset=utf-8"
    )
    server.put("/news.atom", sample_text("news.atom").replace("{base}", base), "application/atom+xml")
    server.put("/deals.json", sample_text("deals.json").replace("{base}", base), "application/feed+json")
    server.put("/shop.xml", sample_text("shop.xml").replace("{base}", base), "application/xml")


def _publish_day2(server: SampleServer) -> None:
    base = server.base_url
    blog = sample_text("blog.rss").replace("{base}", base)
    new_post = sample_text("blog-v2-item.xml").replace("{base}", base)
    blog = blog.replace("  <item>", new_post + "  <item>", 1)
    server.put("/blog.rss", blog, "application/rss+xml; charset=utf-8")
    server.put("/shop.xml", sample_text("shop-v2.xml").replace("{base}", base), "application/xml")


def _register_audience(store: Store, sandbox: Sandbox, console: Console) -> None:
    urls = sandbox.urls
    store.add_channel(
        "shop-bot", "telegram", {"token": "env:SANDBOX_TELEGRAM_TOKEN", "api_url": urls["telegram"]}
    )
    store.add_channel(
        "newsletter",
        "email",
        {
            "smtp": urls["smtp"],
            "from_addr": "Northwind Outfitters <news@northwind.example>",
            "rate": "20",
            "connections": "2",
            "unsubscribe_mailto": "unsubscribe@northwind.example",
        },
    )
    sandbox.telegram.add_chat(1003, status="blocked")  # this person blocked the bot
    store.add_subscribers(
        "shop-bot",
        [
            NewSubscriber("1001", ("deals",), "Ada"),
            NewSubscriber("1002", ("deals",), "Bo"),
            NewSubscriber("1003", ("deals",), "Cy"),
        ],
    )
    sandbox.smtp.reject("old.address@example.org")  # 550 5.1.1: a hard bounce
    store.add_subscribers(
        "newsletter",
        [NewSubscriber("reader@example.org", name="Reader"), NewSubscriber("old.address@example.org")],
    )
    store.add_automation(
        "deals-on-telegram",
        channel="shop-bot",
        layout="product",
        sources=["shop"],
        audience="deals",
        events=("new", "price_drop", "back_in_stock"),
    )
    store.add_automation(
        "journal-by-email", channel="newsletter", layout="digest", sources=["journal", "news"]
    )
    console.print(
        f"  [green]+[/] channels shop-bot (telegram, sandbox at {urls['telegram']}) and newsletter "
        f"(email, sandbox at {urls['smtp']}); 3 + 2 subscribers; automations deals-on-telegram, journal-by-email"
    )


def _send_all(store: Store, console: Console) -> None:
    table = Table("automation", "campaign", "items", "recipients", "sent", "failed", "skipped", "seconds")
    for name in ("deals-on-telegram", "journal-by-email"):
        for result in send_automation(store, name, settings=SendSettings()):
            c = result.campaign
            table.add_row(
                name,
                str(c.id),
                str(c.items),
                str(c.recipients),
                str(c.sent),
                str(c.failed),
                str(c.skipped),
                f"{result.duration:.1f}",
            )
    console.print(table)
    console.rule("[bold]send history (feedcast sql)")
    _, rows = store.query(
        "SELECT automation, channel, recipient, status, attempts, coalesce(error, '') AS error"
        " FROM send_history ORDER BY delivery_id"
    )
    history = Table("automation", "channel", "recipient", "status", "attempts", "error")
    for r in rows:
        history.add_row(
            r["automation"], r["channel"], r["recipient"], r["status"], str(r["attempts"]), r["error"]
        )
    console.print(history)
    _, changed = store.query(
        "SELECT c.name AS channel, s.recipient, s.status FROM subscribers s JOIN channels c ON c.id = s.channel_id"
        " WHERE s.status <> 'active' ORDER BY 1, 2"
    )
    for r in changed:
        console.print(f"  subscriber {r['recipient']} on {r['channel']} is now [bold]{r['status']}[/]")


def run_demo(store: Store, console: Console, *, keep: bool = False) -> None:
    os.environ["FEEDCAST_ALLOW_PRIVATE_NETWORKS"] = "1"  # the samples are on loopback
    for key, value in SANDBOX_ENV.items():  # the sandbox's public credentials
        os.environ.setdefault(key, value)
    if store.path.exists():
        for suffix in ("", ".wal"):
            old = store.path.with_name(store.path.name + suffix)
            if old.exists():
                old.unlink()
    started = time.perf_counter()
    with SampleServer() as server, Sandbox() as sandbox:
        _publish_day1(server)
        console.rule("[bold]day 1: register sources (each takes a baseline)")
        console.print(f"sample sources served at {server.base_url} ; database {store.path}")
        for name, path, kind, backfill in SOURCES:
            source, summary = watch.add_source(
                store, name, server.base_url + path, kind=kind, backfill=backfill, every=timedelta(minutes=15)
            )
            assert summary is not None
            detail = f"{source.kind} ({source.format})"
            note = f", discovered on {source.site_url}" if source.site_url else ""
            extra = f", newest {summary.new} counted as new (--backfill {backfill})" if summary.new else ""
            console.print(f"  [green]+[/] {name}: {detail}, {summary.items} items{note}{extra}")
        _register_audience(store, sandbox, console)

        console.rule("[bold]day 2: the sources change; one poll finds what is new")
        _publish_day2(server)
        summaries = watch.poll(store, force=True)
        table = Table("source", "outcome", "items", "new", "changed")
        for s in summaries:
            table.add_row(
                s.source, s.outcome, "" if s.items is None else str(s.items), str(s.new), str(s.changed)
            )
        console.print(table)

        console.rule("[bold]events (feedcast sql)")
        _, rows = store.query(
            """
            SELECT s.name AS source, e.event, i.title, e.old_price, e.new_price, e.new_availability
            FROM item_events e JOIN items i ON i.id = e.item_id JOIN sources s ON s.id = e.source_id
            ORDER BY e.id
            """
        )
        events = Table("source", "event", "title", "old price", "new price", "availability")
        for r in rows:
            events.add_row(
                r["source"],
                r["event"],
                r["title"],
                "" if r["old_price"] is None else f"{r['old_price']:.2f}",
                "" if r["new_price"] is None else f"{r['new_price']:.2f}",
                r["new_availability"] or "",
            )
        console.print(events)

        console.rule("[bold]day 2: send (feedcast send): campaigns to the sandbox's Telegram and SMTP")
        _send_all(store, console)

        console.rule("[bold]source health (feedcast sql)")
        _, health = store.query(
            """
            SELECT s.name AS source, count(*) AS fetches,
                   count(*) FILTER (WHERE f.outcome = 'not_modified') AS not_modified,
                   round(median(f.duration_ms), 1) AS median_ms, sum(f.bytes) AS bytes
            FROM fetches f JOIN sources s ON s.id = f.source_id GROUP BY s.name ORDER BY s.name
            """
        )
        health_table = Table("source", "fetches", "304s", "median ms", "bytes")
        for r in health:
            health_table.add_row(
                r["source"], str(r["fetches"]), str(r["not_modified"]), str(r["median_ms"]), str(r["bytes"])
            )
        console.print(health_table)
        console.print(
            f"done in {time.perf_counter() - started:.1f} s. Explore: "
            f'feedcast --db {store.path} items | subscriber list | sql "SELECT * FROM send_history"'
        )
        if keep:
            console.print(f"serving the samples at {server.base_url} until Ctrl-C")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
