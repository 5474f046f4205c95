#!/usr/bin/env python
"""Send-history benchmark: the analysts' views, the report and the Parquet export on
10 million synthetic deliveries.

    .venv/bin/python bench/history.py                 # full run: 10 M deliveries (a few minutes)
    .venv/bin/python bench/history.py --quick         # smoke test: 200 k deliveries (< 1 min)
    .venv/bin/python bench/history.py --no-readme     # full run, bench/README.md untouched

A fresh DuckDB file gets feedcast's schema (``Store``'s migrations), then synthetic rows
made by DuckDB SQL ``range()`` inserts: 4 channels, ``--campaigns`` campaigns of 8
automations spread over 60 days, each to every subscriber of its channel (deliveries /
campaigns recipients each): deliveries 92 % sent, 4 % failed (4 provider codes), 3 %
skipped, 1 % pending; clicks on 3 % of the sent ones (a few a second time); 0.5 % of the
subscribers unsubscribing; 3 items per campaign; 50 sources with 100,000 fetches and
30,000 item events.

Timed, each through the public API on fresh read-only connections as ``feedcast`` does
(median of ``--repeat``):

(1) ``Store.campaign_report(id)``: the ``campaign_report`` view for one campaign;
(2) ``Store.campaign_report()``: the view for every campaign;
(3) ``feedcast report --html``: ``build_report`` (every section's query) + ``report_html``;
(4) ``feedcast export-history``: ``Store.export_history`` (5 Parquet files, zstd).

Baselines in the same run, on the same file: (1) a bare ``count(*) FROM deliveries WHERE
campaign_id = ?``; (2) the bare per-campaign status counts (``GROUP BY campaign_id``,
no clicks, no unsubscribes, no joins); (4) a bare ``COPY deliveries TO ... (FORMAT
parquet)``. The ratio is feedcast's time over the baseline's. Targets: (1) and (2) under
1 s each on 10 M deliveries.

Writes bench/results/history-<date>.json (gitignored) and, in a full run without
``--no-readme``, appends an entry to the "bench/history.py" section of bench/README.md.
Exits 1 when a check fails (row counts of the views and of the export).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402
from _machine import append_readme as _append_readme  # noqa: E402
from _machine import machine  # noqa: E402

from feedcast.report import build_report, report_html  # noqa: E402
from feedcast.store import Store  # noqa: E402

README_SECTION = "## bench/history.py"
TARGET_S = 1.0
START = "2026-09-01 00:00:00+00"


# --------------------------------------------------------------------------- data


def generate(path: Path, deliveries: int, campaigns: int) -> dict[str, Any]:
    """A fresh file with feedcast's schema and ``deliveries`` synthetic deliveries."""
    Store(path).schema_version()  # creates the file and runs the migrations
    per = deliveries // campaigns  # recipients per campaign = subscribers per channel
    n = per * campaigns
    started = time.perf_counter()
    con = duckdb.connect(str(path))
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("CREATE TEMP MACRO hb(x) AS CAST(hash(x) >> 1 AS BIGINT)")  # a signed hash
        con.execute(f"""
            INSERT INTO channels (id, name, kind, settings)
            SELECT i + 1, k || '-channel', k, '{{}}'
            FROM (SELECT unnest(['telegram', 'messenger', 'email', 'webhook']) AS k,
                         generate_subscripts(['telegram', 'messenger', 'email', 'webhook'], 1) - 1 AS i);
            INSERT INTO subscribers (id, channel_id, recipient, created_at, updated_at)
            SELECT i + 1, i // {per} + 1, 'r' || i, TIMESTAMPTZ '{START}', TIMESTAMPTZ '{START}'
            FROM range({4 * per}) t(i);
            INSERT INTO campaigns (id, automation_id, automation_name, channel_id, channel_name, channel_kind,
                                   layout, format, status, items, messages, calls, recipients, created_at,
                                   started_at)
            SELECT c + 1, c % 8 + 1, 'automation-' || (c % 8), c % 4 + 1, ch.name, ch.kind, 'digest', ch.kind,
                   'sent', 3, 1, 1, {per},
                   TIMESTAMPTZ '{START}' + (c * (60 * 86400 // {campaigns})) * INTERVAL 1 SECOND,
                   TIMESTAMPTZ '{START}' + (c * (60 * 86400 // {campaigns})) * INTERVAL 1 SECOND
            FROM range({campaigns}) t(c) JOIN channels ch ON ch.id = c % 4 + 1;
            INSERT INTO deliveries (id, campaign_id, subscriber_id, recipient, status, attempts, calls_sent,
                                    error, error_code, provider_message_id, queued_at, sent_at, updated_at)
            WITH d AS (
                SELECT n, n // {per} AS c, n % {per} AS r, hb(n) % 100 AS h FROM range({n}) t(n)
            )
            SELECT n + 1, c + 1, (c % 4) * {per} + r + 1, 'r' || ((c % 4) * {per} + r),
                   CASE WHEN h < 92 THEN 'sent' WHEN h < 96 THEN 'failed' WHEN h < 99 THEN 'skipped'
                        ELSE 'pending' END,
                   CASE WHEN h < 99 THEN 1 ELSE 0 END, CASE WHEN h < 92 THEN 1 ELSE 0 END,
                   CASE WHEN h >= 92 AND h < 96 THEN ['Forbidden: bot was blocked by the user',
                        'Bad Request: chat not found', '550 5.1.1 No such user', 'network error'][h - 91]
                        WHEN h >= 96 AND h < 99 THEN 'outside the 24-hour messaging window' END,
                   CASE WHEN h >= 92 AND h < 96 THEN ['403', '400', '550', 'network'][h - 91]
                        WHEN h >= 96 AND h < 99 THEN 'skipped' END,
                   CASE WHEN h < 92 THEN CAST(n AS VARCHAR) END,
                   cp.created_at,
                   CASE WHEN h < 92 THEN cp.created_at + r * INTERVAL 30 MILLISECOND END,
                   CASE WHEN h < 99 THEN cp.created_at + r * INTERVAL 30 MILLISECOND END
            FROM d JOIN campaigns cp ON cp.id = d.c + 1
            ORDER BY n;
            INSERT INTO items (id, source_id, key, title, url, content_hash, first_seen_at, last_seen_at)
            SELECT i + 1, i % 50 + 1, 'k' || i, 'Item ' || i, 'https://shop.example/item/' || i, 'h',
                   TIMESTAMPTZ '{START}', TIMESTAMPTZ '{START}'
            FROM range({3 * campaigns}) t(i);
            INSERT INTO campaign_items (campaign_id, automation_id, item_id, event, event_at, position)
            SELECT c + 1, c % 8 + 1, c * 3 + p + 1, 'new', TIMESTAMPTZ '{START}', p
            FROM range({campaigns}) t(c), range(3) u(p);
            INSERT INTO campaign_links (campaign_id, link, url)
            SELECT c + 1, p, 'https://shop.example/item/' || (c * 3 + p) FROM range({campaigns}) t(c), range(3) u(p);
            INSERT INTO clicks (id, campaign_id, subscriber_id, delivery_id, link, url, clicked_at)
            SELECT row_number() OVER (), d.campaign_id, d.subscriber_id, d.id, hb(d.id) % 3 AS link,
                   'https://shop.example/item/' || ((d.campaign_id - 1) * 3 + hb(d.id) % 3),
                   d.sent_at + (hb(d.id) % 86400) * INTERVAL 1 SECOND
            FROM deliveries d, range(2) again(k)
            WHERE d.status = 'sent' AND hb(d.id * 7) % 100 < 3 AND (k = 0 OR hb(d.id * 11) % 4 = 0);
            INSERT INTO subscription_events (subscriber_id, channel_id, event, source, occurred_at)
            SELECT id, channel_id, 'unsubscribe', 'provider',
                   TIMESTAMPTZ '{START}' + (hb(id) % (60 * 86400)) * INTERVAL 1 SECOND
            FROM subscribers WHERE hb(id * 13) % 200 = 0;
            INSERT INTO sources (id, name, url, added_url, error_count, last_success_at, last_error)
            SELECT i + 1, 'source-' || i, 'https://s' || i || '.example/feed', 'https://s' || i || '.example/feed',
                   CASE WHEN i % 10 = 0 THEN 3 ELSE 0 END, now() - INTERVAL 1 HOUR,
                   CASE WHEN i % 10 = 0 THEN 'HTTP 500' END
            FROM range(50) t(i);
            INSERT INTO fetches (id, source_id, url, started_at, duration_ms, outcome)
            SELECT i + 1, i % 50 + 1, 'u', now() - (i % (40 * 24)) * INTERVAL 1 HOUR, 5 + hb(i) % 400,
                   CASE WHEN hb(i) % 10 < 7 THEN 'not_modified' WHEN hb(i) % 10 < 9 THEN 'ok'
                        ELSE 'error' END
            FROM range(100000) t(i);
            INSERT INTO item_events (item_id, source_id, event, occurred_at)
            SELECT i % {3 * campaigns} + 1, i % 50 + 1, 'new', now() - (i % (40 * 24)) * INTERVAL 1 HOUR
            FROM range(30000) t(i);
            CHECKPOINT;
        """)
        counts = {
            table: int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]
            for table in ("deliveries", "campaigns", "subscribers", "clicks", "subscription_events")
        }
    finally:
        con.close()
    return {
        "seconds": time.perf_counter() - started,
        "rows": counts,
        "recipients_per_campaign": per,
        "file_mb": path.stat().st_size / 2**20,
    }


# --------------------------------------------------------------------------- timing


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, list[float], Any]:
    runs, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs), runs, result


def bare(path: Path, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    """A baseline query on a fresh read-only connection (as the Store opens them)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="feedcast-history-"))
    db = work / "history.duckdb"
    results: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["bench/history.py", *sys.argv[1:]]),
        "machine": machine(["duckdb", "pyarrow"]),
        "config": {"deliveries": args.deliveries, "campaigns": args.campaigns, "repeat": args.repeat},
    }
    checks: list[tuple[str, bool]] = []
    try:
        print(f"generating {args.deliveries:,} deliveries in {args.campaigns:,} campaigns ...", flush=True)
        results["data"] = data = generate(db, args.deliveries, args.campaigns)
        print(f"  {data['seconds']:.1f} s, {data['file_mb']:.0f} MB: {data['rows']}", flush=True)
        store = Store(db)
        store.schema_version()
        one = args.campaigns // 2 + 1
        rows: dict[str, Any] = {}

        def measure(name: str, fn: Callable[[], Any], baseline: Callable[[], Any] | None = None) -> Any:
            median, runs, result = timed(fn, args.repeat)
            entry: dict[str, Any] = {"median_s": median, "runs_s": runs}
            if baseline is not None:
                base, base_runs, _ = timed(baseline, args.repeat)
                entry |= {"baseline_median_s": base, "baseline_runs_s": base_runs,
                          "ratio": median / base if base else None}  # fmt: skip
            rows[name] = entry
            extra = (
                f" (baseline {entry['baseline_median_s']:.3f} s, {entry['ratio']:.1f}x)" if baseline else ""
            )
            print(f"  {name}: {median:.3f} s{extra}", flush=True)
            return result

        single = measure(
            "campaign_report, one campaign",
            lambda: store.campaign_report(one),
            lambda: bare(db, "SELECT count(*) FROM deliveries WHERE campaign_id = ?", [one]),
        )
        every = measure(
            "campaign_report, all campaigns",
            lambda: store.campaign_report(),
            lambda: bare(
                db,
                "SELECT campaign_id, count(*) FILTER (WHERE status = 'sent'), count(*) FILTER (WHERE status ="
                " 'failed'), count(*) FILTER (WHERE status = 'skipped'), count(*) FILTER (WHERE status ="
                " 'pending') FROM deliveries GROUP BY campaign_id",
            ),
        )
        report = measure("report data (build_report)", lambda: build_report(store))
        page = measure("report HTML (report_html)", lambda: report_html(report))
        rows["report, total (data + HTML)"] = {
            "median_s": rows["report data (build_report)"]["median_s"]
            + rows["report HTML (report_html)"]["median_s"]
        }
        out = work / "export"
        copy_target = str(work / "bare.parquet")
        counts = measure(
            "export-history (5 Parquet files)",
            lambda: store.export_history(out),
            lambda: bare(db, f"COPY deliveries TO '{copy_target}' (FORMAT parquet, COMPRESSION zstd)"),
        )
        results["timings"] = rows
        results["export"] = {
            "rows": counts,
            "mb": {p.name: round(p.stat().st_size / 2**20, 1) for p in sorted(out.iterdir())},
        }
        results["report_html_mb"] = len(page.encode()) / 2**20
        n = data["rows"]["deliveries"]
        checks += [
            ("one campaign's row", len(single) == 1 and single[0]["campaign_id"] == one),
            ("every campaign", len(every) == args.campaigns),
            ("recipients add up to the deliveries", sum(r["recipients"] for r in every) == n),
            ("sent + failed + skipped + pending = recipients",
             all(r["sent"] + r["failed"] + r["skipped"] + r["pending"] == r["recipients"] for r in every)),
            ("clicks add up", sum(r["clicks"] for r in every) == data["rows"]["clicks"]),
            ("report totals", report.totals["deliveries"] == n and report.campaigns_total == args.campaigns),
            ("export: send_history rows", counts["send_history"] == n),
            ("export: campaigns rows", counts["campaigns"] == counts["campaign_report"] == args.campaigns),
            ("export: clicks rows", counts["clicks"] == data["rows"]["clicks"]),
        ]  # fmt: skip
        for name in ("campaign_report, one campaign", "campaign_report, all campaigns"):
            rows[name]["target_s"] = TARGET_S
            rows[name]["verdict"] = "PASS" if rows[name]["median_s"] < TARGET_S else "MISS"
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    results["checks"] = [{"check": name, "ok": ok} for name, ok in checks]
    results["ok"] = all(ok for _, ok in checks)
    return results


# --------------------------------------------------------------------------- README


def readme_entry(res: dict[str, Any]) -> str:
    m, d = res["machine"], res["data"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    rows = d["rows"]
    lines = [
        f"### history — {res['date']}",
        "",
        f"- machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['ram_gb']} GB RAM, Python {m['python']}, "
        f"{m['os']}; load average before the run {' / '.join(map(str, m['loadavg_before']))}",
        f"- code: commit {m['commit']} (+ working tree); {versions}",
        f"- command: `{res['command']}`; {res['config']['repeat']} repetitions, median",
        f"- data: {rows['deliveries']:,} deliveries in {rows['campaigns']:,} campaigns of "
        f"{d['recipients_per_campaign']:,} recipients, {rows['subscribers']:,} subscribers, {rows['clicks']:,} "
        f"clicks, {rows['subscription_events']:,} unsubscribes; generated in {d['seconds']:.0f} s, "
        f"file {d['file_mb']:.0f} MB",
        f"- checks: {'all passed' if res['ok'] else 'FAILED'} ({sum(c['ok'] for c in res['checks'])}/"
        f"{len(res['checks'])})",
        "",
        "| measurement | median s | runs (s) | baseline | baseline s | ratio | target | verdict |",
        "|---|---:|---|---|---:|---:|---:|---|",
    ]
    baselines = {
        "campaign_report, one campaign": "`count(*) ... WHERE campaign_id = ?`",
        "campaign_report, all campaigns": "status counts `GROUP BY campaign_id`",
        "export-history (5 Parquet files)": "`COPY deliveries TO` Parquet",
    }
    for name, t in res["timings"].items():
        runs = " / ".join(f"{r:.3f}" for r in t.get("runs_s", []))
        lines.append(
            f"| {name} | {t['median_s']:.3f} | {runs} | {baselines.get(name, '')} | "
            + (f"{t['baseline_median_s']:.3f} | {t['ratio']:.1f}x" if "ratio" in t else " | ")
            + f" | {'< 1 s' if 'target_s' in t else ''} | {t.get('verdict', '')} |"
        )
    export = res["export"]
    lines += [
        "",
        "Export: " + ", ".join(f"{k} {v:,} rows" for k, v in export["rows"].items())
        + "; sizes " + ", ".join(f"{k} {v} MB" for k, v in export["mb"].items())
        + f". The report page is {res['report_html_mb']:.1f} MB (no chart library: HTML and CSS charts).",
        "",
    ]  # fmt: skip
    return "\n".join(lines)


def append_readme(entry: str) -> Path:
    return _append_readme(README_SECTION, entry)


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="200,000 deliveries, 1 repetition; README untouched")
    p.add_argument("--deliveries", type=int, default=None, help="synthetic deliveries (default 10,000,000)")
    p.add_argument("--campaigns", type=int, default=None, help="campaigns (default deliveries / 10,000)")
    p.add_argument("--repeat", type=int, default=None, help="repetitions (default 5; quick 1)")
    p.add_argument("--no-readme", action="store_true", help="do not append the results to bench/README.md")
    p.add_argument("--keep", action="store_true", help="keep the generated database and export")
    p.add_argument("--out", type=Path, default=BENCH / "results", help="where the JSON goes")
    args = p.parse_args(argv)
    args.deliveries = args.deliveries or (200_000 if args.quick else 10_000_000)
    args.campaigns = args.campaigns or max(1, args.deliveries // (1_000 if args.quick else 10_000))
    args.repeat = args.repeat or (1 if args.quick else 5)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    res = run(args)
    res["elapsed_s"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"history-{datetime.now(UTC).strftime('%Y-%m-%dT%H%M%SZ')}.json"
    target.write_text(json.dumps(res, indent=2, default=str), encoding="utf-8")
    print(f"results: {target} ({res['elapsed_s']:.0f} s)")
    for check in res["checks"]:
        if not check["ok"]:
            print(f"CHECK FAILED: {check['check']}")
    if not args.quick and not args.no_readme:
        print(f"appended to {append_readme(readme_entry(res))}")
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
