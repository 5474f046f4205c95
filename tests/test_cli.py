"""The command line, end to end against sample sources served on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import feedcast.cli as cli_module
from feedcast.cli import main
from feedcast.sandbox import SampleServer, sample_text


@pytest.fixture
def samples() -> Iterator[SampleServer]:
    with SampleServer() as server:
        base = server.base_url
        server.put("/", sample_text("index.html"), "text/html; charset=utf-8")
        server.put("/blog.rss", sample_text("blog.rss").replace("{base}", base), "application/rss+xml")
        server.put("/news.atom", sample_text("news.atom").replace("{base}", base), "application/atom+xml")
        server.put("/deals.json", sample_text("deals.json").replace("{base}", base), "application/feed+json")
        server.put("/shop.xml", sample_text("shop.xml").replace("{base}", base), "application/xml")
        yield server


class Cli:
    def __init__(self, db: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.db = db
        self.capsys = capsys

    def __call__(self, *args: str, code: int = 0) -> str:
        self.capsys.readouterr()
        try:
            main(["--db", str(self.db), *args])
            status = 0
        except SystemExit as exc:
            status = int(exc.code or 0)
        captured = self.capsys.readouterr()
        assert status == code, f"exit {status}, stdout={captured.out!r} stderr={captured.err!r}"
        return captured.out if code == 0 else captured.err

    def json(self, *args: str) -> object:
        return json.loads(self(*args, "--format", "json"))

    def outputs(self, *args: str, code: int = 0) -> tuple[str, str]:
        """stdout and stderr of one command."""
        self.capsys.readouterr()
        try:
            main(["--db", str(self.db), *args])
            status = 0
        except SystemExit as exc:
            status = int(exc.code or 0)
        captured = self.capsys.readouterr()
        assert status == code, f"exit {status}, stdout={captured.out!r} stderr={captured.err!r}"
        return captured.out, captured.err


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setattr(cli_module.out, "width", 400)  # tables unfolded, as on a wide terminal
    return Cli(tmp_path / "cli.duckdb", capsys)


def test_add_feed_takes_a_baseline(cli: Cli, samples: SampleServer) -> None:
    out = cli("source", "add", "blog", samples.base_url + "/blog.rss", "--every", "30m")
    assert "added blog: feed (rss20), 5 items in baseline" in out
    [source] = cli.json("source", "list")  # type: ignore[misc]
    assert source["name"] == "blog" and source["kind"] == "feed" and source["every"] == "30m"
    assert source["baseline_done"] is True and source["item_count"] == 5 and source["etag"]
    shown = cli.json("source", "show", "blog")
    assert isinstance(shown, dict) and shown["format"] == "rss20"


def test_add_page_discovers_its_feed(cli: Cli, samples: SampleServer) -> None:
    out = cli("source", "add", "site", samples.base_url + "/")
    assert "feed discovered on" in out
    shown = cli.json("source", "show", "site")
    assert isinstance(shown, dict)
    assert shown["url"] == samples.base_url + "/blog.rss"
    assert shown["site_url"] == samples.base_url + "/"
    assert shown["kind"] == "feed" and shown["item_count"] == 5


def test_backfill_and_poll_finds_new_items(cli: Cli, samples: SampleServer) -> None:
    out = cli("source", "add", "blog", samples.base_url + "/blog.rss", "--backfill", "2")
    assert "2 counted as new" in out
    cli("source", "add", "shop", samples.base_url + "/shop.xml")
    # nothing changed: 304s
    result = cli.json("poll", "--force")
    assert isinstance(result, list)
    assert sorted((r["source"], r["outcome"]) for r in result) == [
        ("blog", "not_modified"),
        ("shop", "not_modified"),
    ]
    base = samples.base_url
    blog = sample_text("blog.rss").replace("{base}", base)
    blog = blog.replace("  <item>", sample_text("blog-v2-item.xml").replace("{base}", base) + "  <item>", 1)
    samples.put("/blog.rss", blog, "application/rss+xml")
    samples.put("/shop.xml", sample_text("shop-v2.xml").replace("{base}", base), "application/xml")
    out = cli("poll", "--force")
    assert "2 polled, 2 new, 2 changed, 0 failed" in out
    events = cli.json("sql", "SELECT event, count(*) AS n FROM item_events GROUP BY event ORDER BY event")
    assert events == [
        {"event": "back_in_stock", "n": 1},
        {"event": "changed", "n": 2},
        {"event": "new", "n": 4},  # 2 backfilled + 1 post + 1 product
        {"event": "price_drop", "n": 1},
    ]
    items = cli.json("items", "--source", "blog", "--limit", "1")
    assert isinstance(items, list) and items[0]["title"].startswith("New: the Northwind repair café")
    assert "nothing due" in cli("poll")


def test_items_and_sql_formats(cli: Cli, samples: SampleServer) -> None:
    cli("source", "add", "shop", samples.base_url + "/shop.xml")
    out = cli("items", "--limit", "3")
    assert "Ridge Shell Jacket" in out or "Summit Down Vest" in out
    csv_out = cli("sql", "SELECT key, price, currency FROM items ORDER BY key LIMIT 2", "--format", "csv")
    assert csv_out.splitlines() == ["key,price,currency", "NW-1001,249.0000,USD", "NW-1002,179.0000,USD"]
    table = cli("sql", "SELECT count(*) AS n FROM items")
    assert "5" in table


def test_pause_resume_remove(cli: Cli, samples: SampleServer) -> None:
    cli("source", "add", "news", samples.base_url + "/news.atom", "--no-fetch")
    assert "paused news" in cli("source", "pause", "news")
    assert "nothing due" in cli("poll")
    cli("source", "resume", "news")
    out = cli("poll")
    assert "news" in out and "baseline" in out
    assert "removed news (3 items)" in cli("source", "remove", "news")
    assert cli.json("source", "list") == []


def test_import_opml(cli: Cli, samples: SampleServer, tmp_path: Path) -> None:
    opml = tmp_path / "subs.opml"
    opml.write_text(
        f"""<?xml version="1.0"?><opml version="2.0"><body>
        <outline text="Feeds"><outline text="Northwind Journal" type="rss" xmlUrl="{samples.base_url}/blog.rss"/>
        <outline title="Company news" type="rss" xmlUrl="{samples.base_url}/news.atom"/></outline>
        </body></opml>""",
        encoding="utf-8",
    )
    out = cli("source", "import-opml", str(opml))
    assert "imported 2 sources" in out
    again = cli.json("source", "import-opml", str(opml))
    assert isinstance(again, dict) and again["added"] == [] and len(again["skipped"]) == 2
    cli("poll")
    names = {s["name"]: s["item_count"] for s in cli.json("source", "list")}  # type: ignore[union-attr]
    assert names == {"northwind-journal": 5, "company-news": 3}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["source", "add", "x", "ftp://example.com/feed"], "invalid URL"),
        (["source", "add", "bad name", "http://example.com/"], "invalid name"),
        (["source", "add", "x", "http://example.com/", "--every", "soon"], "invalid duration"),
        (["source", "add", "x", "http://example.com/", "--every", "5s"], "too short"),
        (["source", "add", "x", "http://example.com/", "--kind", "video"], "invalid kind"),
        (["source", "add", "x", "http://example.com/", "--selector", "item"], "invalid --selector"),
        (["source", "show", "nope"], "no source named 'nope'"),
        (["source", "remove", "nope"], "no source named 'nope'"),
        (["poll", "nope"], "no source named 'nope'"),
        (["items", "--limit", "0"], "--limit must be at least 1"),
        (["sql", "SELEC 1"], "SQL error"),
        (["sql", "DROP TABLE sources"], "SQL error"),
        (["source", "import-opml", "/nonexistent.opml"], "cannot read"),
    ],
)
def test_user_mistakes_are_one_line(cli: Cli, args: list[str], message: str) -> None:
    err = cli(*args, code=2)
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_duplicate_source_is_refused(cli: Cli, samples: SampleServer) -> None:
    cli("source", "add", "blog", samples.base_url + "/blog.rss", "--no-fetch")
    assert "already exists" in cli("source", "add", "blog", samples.base_url + "/news.atom", code=2)


def test_failing_source_is_reported_not_fatal(cli: Cli, samples: SampleServer) -> None:
    out = cli("source", "add", "missing", samples.base_url + "/missing.xml")
    assert "added missing" in out
    cli("source", "add", "blog", samples.base_url + "/blog.rss")
    result = cli.json("poll", "--force")
    assert isinstance(result, list)
    by_name = {r["source"]: r for r in result}
    assert by_name["missing"]["outcome"] == "error" and by_name["missing"]["error"] == "HTTP 404"
    assert by_name["blog"]["outcome"] == "not_modified"
    [missing] = [s for s in cli.json("source", "list") if s["name"] == "missing"]  # type: ignore[union-attr]
    assert missing["error_count"] == 2 and missing["last_error"] == "HTTP 404"


def test_private_addresses_are_refused_by_default(
    cli: Cli, samples: SampleServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEEDCAST_ALLOW_PRIVATE_NETWORKS", "0")
    cli("source", "add", "blog", samples.base_url + "/blog.rss")
    [source] = cli.json("source", "list")  # type: ignore[misc]
    assert "FEEDCAST_ALLOW_PRIVATE_NETWORKS" in source["last_error"]
    assert samples.requests == 0


def test_naming_a_source_polls_it_now_whatever_its_backoff(
    cli: Cli, samples: SampleServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first hour: a local source is refused, the user allows private networks as
    the warning says, then polls the source by name: it is polled now, although its
    backoff put its next poll minutes away. `poll` alone still takes the due ones only."""
    monkeypatch.setenv("FEEDCAST_ALLOW_PRIVATE_NETWORKS", "0")
    cli("source", "add", "blog", samples.base_url + "/blog.rss")
    [source] = cli.json("source", "list")  # type: ignore[misc]
    assert source["error_count"] == 1 and source["next_poll_at"]  # backed off
    monkeypatch.setenv("FEEDCAST_ALLOW_PRIVATE_NETWORKS", "1")
    assert "nothing due" in cli("poll")  # not due yet: poll without names waits for it
    out = cli("poll", "blog")
    assert "nothing due" not in out and "1 polled, 0 new, 0 changed, 0 failed" in out
    [source] = cli.json("source", "list")  # type: ignore[misc]
    assert source["baseline_done"] is True and source["item_count"] == 5 and source["error_count"] == 0
    assert "nothing due" in cli("poll")


def _two_feed_page(samples: SampleServer, first: str = "/feeds/main", second: str = "/feeds/alt.rss") -> None:
    samples.put(
        "/site/",
        "<!doctype html><html><head><title>Site</title>"
        f'<link rel="alternate" type="application/rss+xml" title="Main" href="{first}">'
        f'<link rel="alternate" type="application/atom+xml" title="Other" href="{second}">'
        "</head><body><p>Welcome</p></body></html>",
        "text/html; charset=utf-8",
    )


def test_a_discovered_feed_that_fails_gives_way_to_the_next_link(cli: Cli, samples: SampleServer) -> None:
    _two_feed_page(samples, second="/blog.rss")  # /feeds/main is not served: 404
    out = cli("source", "add", "site", samples.base_url + "/site/")
    assert "5 items in baseline" in out
    assert f"feed discovered on {samples.base_url}/site/: {samples.base_url}/blog.rss" in out
    shown = cli.json("source", "show", "site")
    assert isinstance(shown, dict) and shown["url"] == samples.base_url + "/blog.rss"
    assert shown["kind"] == "feed" and shown["item_count"] == 5 and shown["error_count"] == 0


def test_a_discovered_feed_that_fails_is_named(cli: Cli, samples: SampleServer) -> None:
    samples.put(
        "/site/",
        '<html><head><link rel="alternate" type="application/rss+xml" href="/feeds/main"></head></html>',
        "text/html",
    )
    _out, err = cli.outputs("source", "add", "site", samples.base_url + "/site/")
    assert err.strip() == (
        f"warning: first fetch failed: discovered feed {samples.base_url}/feeds/main: HTTP 404 (will retry)"
    )
    [source] = cli.json("source", "list")  # type: ignore[misc]
    assert source["last_error"] == f"discovered feed {samples.base_url}/feeds/main: HTTP 404"
    assert source["status"] == "active"  # the page answered: its feed's 404 is retried


def test_every_discovered_feed_that_fails_is_named(cli: Cli, samples: SampleServer) -> None:
    _two_feed_page(samples)
    samples.put("/feeds/alt.rss", "oops", "text/plain", status=500)
    _out, err = cli.outputs("source", "add", "site", samples.base_url + "/site/")
    assert err.strip() == (
        f"warning: first fetch failed: no discovered feed could be fetched: {samples.base_url}/feeds/main: "
        f"HTTP 404; {samples.base_url}/feeds/alt.rss: HTTP 500 (will retry)"
    )
    samples.put(
        "/feeds/alt.rss", sample_text("blog.rss").replace("{base}", samples.base_url), "application/rss+xml"
    )
    assert "1 polled, 0 new" in cli("poll", "site")  # the next poll finds the one that works
    shown = cli.json("source", "show", "site")
    assert isinstance(shown, dict) and shown["url"] == samples.base_url + "/feeds/alt.rss"


def _feedcast(db: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "FEEDCAST_ALLOW_PRIVATE_NETWORKS": "1", "FEEDCAST_DB": str(db)}
    return subprocess.Popen(
        [sys.executable, "-m", "feedcast.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.timeout(300)  # 12 processes on one file: its own waits (up to 120 s each) say which hung
def test_concurrent_cli_processes_share_one_database(tmp_path: Path, samples: SampleServer) -> None:
    """Pollers and analysts at the same time on one file: all succeed, nothing is lost."""
    db = tmp_path / "shared.duckdb"
    names = []
    for i in range(6):
        path = f"/feed{i}.rss"
        body = (
            sample_text("blog.rss")
            .replace("{base}", samples.base_url)
            .replace("northwind-journal-", f"f{i}-")
        )
        samples.put(path, body, "application/rss+xml")
        names.append(f"feed{i}")
        assert _feedcast(db, "source", "add", names[-1], samples.base_url + path, "--no-fetch").wait(60) == 0
    procs = [_feedcast(db, "poll", name) for name in names]
    procs += [_feedcast(db, "sql", "SELECT count(*) FROM items", "--format", "json") for _ in range(4)]
    procs += [_feedcast(db, "source", "list", "--format", "json") for _ in range(2)]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    reader = _feedcast(db, "sql", "SELECT count(*) AS items, count(DISTINCT source_id) AS sources FROM items",
                       "--format", "json")  # fmt: skip
    out, err = reader.communicate(timeout=60)
    assert json.loads(out) == [{"items": 30, "sources": 6}], err


def test_every_command_is_documented_in_the_readme() -> None:
    """Like datasette's docs test: a command nobody wrote down is a command nobody finds."""
    import typer.main

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    root = typer.main.get_command(cli_module.app)
    commands = getattr(root, "commands", {})  # typer vendors click: duck-type the groups
    assert commands, "the CLI has no commands?"
    missing = []
    leaves = []
    for name, command in commands.items():
        if hasattr(command, "commands"):
            for sub, subcommand in command.commands.items():
                leaves.append((f"{name} {sub}", subcommand))
                if not any(f"feedcast {name} {sub}" in line or (f"feedcast {name} " in line and sub in line)
                           for line in readme.splitlines()):  # fmt: skip
                    missing.append(f"{name} {sub}")
        else:
            leaves.append((name, command))
            if f"feedcast {name}" not in readme:
                missing.append(name)
    for label, command in leaves:
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--") and opt != "--help" and opt not in readme:
                    missing.append(f"{label} {opt}")
    assert not missing, f"commands or options missing from README.md: {missing}"
