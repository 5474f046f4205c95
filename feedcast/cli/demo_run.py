"""``feedcast demo``: the pipeline end to end on bundled samples served on loopback.

It starts the sandbox (sample sources, the Telegram and Messenger emulators, an SMTP
sink) and applies the bundled ``demo.yaml``: a homepage (its feed is discovered), an
Atom feed, a JSON Feed and a Google Merchant catalogue, each taking its baseline; a
Telegram bot, a Facebook Page and a newsletter with a few subscribers (one has blocked
the bot, one the page, one is outside Messenger's 24-hour window, one address bounces);
three automations. Day 1 sends the newsletter's welcome digest. Day 2 the samples
change (a new post, a new product, a price drop, a restock) and one pass of ``feedcast
run`` polls them and sends what is due; then what each channel received, the send
history and the subscribers' new statuses, from the sandbox and DuckDB.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.text import Text

from feedcast import watch
from feedcast.automations import run_due
from feedcast.config import apply_config, load_config, plan_config
from feedcast.delivery import CampaignResult, send_automation
from feedcast.sandbox import SampleServer, sample_text
from feedcast.sandbox.run import SANDBOX_ENV, Sandbox
from feedcast.store import Store
from feedcast.terminal import feedcast_command, print_table

__all__ = ["run_demo"]


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
    deals = json.loads(sample_text("deals.json").replace("{base}", base))
    deals["items"].insert(
        0,
        {
            "id": "deal-4",
            "url": f"{base}/deals/winter-camp",
            "title": "Winter camp weekend: 20% off tents",
            "content_html": "<p>This weekend only, every tent is <b>20% off</b>.</p>",
            "date_published": "2026-11-26T07:00:00+01:00",
        },
    )
    server.put("/deals.json", json.dumps(deals), "application/feed+json")


def run_demo(store: Store, console: Console, *, keep: bool = False) -> None:
    os.environ["FEEDCAST_ALLOW_PRIVATE_NETWORKS"] = "1"  # the samples are on loopback
    for key, value in SANDBOX_ENV.items():  # the sandbox's public credentials
        os.environ.setdefault(key, value)
    for suffix in ("", ".wal"):
        old = store.path.with_name(store.path.name + suffix)
        if old.exists():
            old.unlink()
    started = time.perf_counter()
    with SampleServer() as server, Sandbox() as sandbox:
        _publish_day1(server)
        _prepare(store.path.parent, server, sandbox)
        config_path = store.path.parent / "demo.yaml"
        _rule(console, "day 1: feedcast apply demo.yaml (sources take a baseline)")
        sandboxes = ", ".join(f"{kind} {url}" for kind, url in sandbox.urls.items())
        console.print(f"samples at {server.base_url}; sandbox: {sandboxes}; files in {store.path.parent}")
        plan = plan_config(store, load_config(config_path), config_path)
        notes = apply_config(store, plan)
        for line in plan.created:
            console.print(Text.assemble("  ", ("+", "green"), f" {line}"))
        for note in notes:
            console.print(f"    {note}")

        _rule(console, "day 1: feedcast send weekly-journal (the 2 newest posts, a welcome digest)")
        _table_of(console, send_automation(store, "weekly-journal"), "weekly-journal")

        _rule(console, "day 2: the sources change; feedcast run polls them and sends what is due")
        _publish_day2(server)
        summaries = watch.poll(store, force=True)
        print_table(
            console,
            ["source", "outcome", "items", "new", "changed"],
            [[s.source, s.outcome, s.items, s.new, s.changed] for s in summaries],
        )
        for result in run_due(store):
            _table_of(console, result.campaigns, result.automation, result.note)

        _rule(console, "what each channel received (the sandbox's record)")
        _received(console, sandbox, store)

        _rule(console, "send history (feedcast sql)")
        rows = store.send_history()
        columns = ["automation", "kind", "recipient", "status", "tries", "error"]
        print_table(console, columns, [[r[c] for c in columns] for r in rows])
        changed = store.inactive_subscribers()
        for r in changed:
            console.print(
                Text.assemble(
                    f"  subscriber {r['recipient']} on {r['channel']} is now ", (r["status"], "bold")
                )
            )

        _rule(console, "source health (feedcast sql)")
        health = store.fetch_stats()
        print_table(
            console,
            ["source", "fetches", "304s", "median ms", "bytes"],
            [[r["source"], r["fetches"], r["not_modified"], r["median_ms"], r["bytes"]] for r in health],
        )
        feedcast = feedcast_command()
        db = shlex.quote(str(store.path))
        console.print(
            f"done in {time.perf_counter() - started:.1f} s. Explore: {feedcast} --db {db} "
            'sql "SELECT * FROM send_history" | subscriber list | automation list | export'
        )
        console.print(
            f"On Prefect: FEEDCAST_DB={db} {feedcast} serve, then open http://127.0.0.1:4200: "
            "Deployments (watch-sources, run-automations), Flow runs named after each automation, "
            "Artifacts campaign-N with each campaign's items and results."
        )
        activate = Path(shlex.split(feedcast)[0]).with_name("activate")
        if feedcast != "feedcast" and activate.is_file():
            console.print(
                f"feedcast is not on PATH: `source {shlex.quote(str(activate))}` puts it there for this "
                "shell; `pipx install .` or `uv tool install .` from the clone, for good."
            )
        if keep:
            console.print(f"serving the samples at {server.base_url} and the sandbox until Ctrl-C")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass


def _prepare(folder: Path, server: SampleServer, sandbox: Sandbox) -> None:
    """The demo's YAML and the Messenger subscribers' CSV, with the URLs of this run."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "demo.yaml").write_text(sample_text("demo.yaml"), encoding="utf-8")
    now = datetime.now(UTC)
    (folder / "messenger-people.csv").write_text(
        "psid,name,last_inbound_at\n"
        f"2001,Dana,{(now - timedelta(hours=2)).isoformat()}\n"
        f"2002,Eli,{(now - timedelta(days=3)).isoformat()}\n"  # outside the 24-hour window
        f"2003,Flo,{(now - timedelta(hours=1)).isoformat()}\n",  # has blocked the page
        encoding="utf-8",
    )
    urls = sandbox.urls
    os.environ.update(
        DEMO_SITE=server.base_url,
        SANDBOX_TELEGRAM_URL=urls["telegram"],
        SANDBOX_MESSENGER_URL=urls["messenger"],
        SANDBOX_SMTP_URL=urls["smtp"],
    )
    sandbox.telegram.add_chat(1003, status="blocked")  # this person blocked the bot
    sandbox.messenger.add_person("2001", last_inbound=now - timedelta(hours=2))
    sandbox.messenger.add_person("2002", last_inbound=now - timedelta(days=3))
    sandbox.messenger.add_person("2003", status="blocked", last_inbound=now - timedelta(hours=1))
    sandbox.smtp.reject("old.address@example.org")  # 550 5.1.1: a hard bounce


def _rule(console: Console, title: str) -> None:
    console.rule(Text(title, style="bold"))


def _table_of(console: Console, results: list[CampaignResult], name: str, note: str | None = None) -> None:
    if not results:
        console.print(f"  {name}: {note or 'nothing to send'}")
    for result in results:
        c = result.campaign
        console.print(
            Text.assemble(
                f"  {name}: campaign {c.id}, {c.items} item(s) to {c.recipients} recipient(s): ",
                (f"{c.sent} sent", "green"),
                f", {c.failed} failed, {c.skipped} skipped in {result.duration:.1f} s",
            )
        )


def _received(console: Console, sandbox: Sandbox, store: Store) -> None:
    rows: list[list[str]] = []  # one line per message received
    for chat in ("1001", "1002", "1003"):
        texts = [
            _first_line(m["params"].get("text") or m["params"].get("caption") or m["method"])
            for m in sandbox.telegram.received(chat)
        ]
        rows.extend(["telegram", chat, text] for text in texts or ["(nothing: blocked the bot)"])
    for psid in ("2001", "2002", "2003"):
        got = [_messenger_line(m["message"]) for m in sandbox.messenger.received(psid)]
        rows.extend(["messenger", psid, text] for text in got or ["(nothing)"])
    for address in ("reader@example.org", "old.address@example.org"):
        subjects = [str(m.message["Subject"]) for m in sandbox.smtp.messages_for(address)]
        rows.extend(["email", address, text] for text in subjects or ["(bounced)"])
    print_table(console, ["channel", "recipient", "received"], rows)


def _first_line(text: str) -> str:
    import re

    lines = [line.strip() for line in re.sub(r"<[^>]+>", "", text).splitlines() if line.strip()]
    line = " · ".join(lines[:2])
    return line if len(line) <= 70 else line[:69] + "…"


def _messenger_line(message: dict[str, object]) -> str:
    if "text" in message:
        return _first_line(str(message["text"]))
    attachment = message.get("attachment")
    if isinstance(attachment, dict):
        payload = attachment.get("payload")
        if isinstance(payload, dict) and payload.get("text"):
            return _first_line(str(payload["text"]))
        return f"[{attachment.get('type')}]"
    return "[message]"
