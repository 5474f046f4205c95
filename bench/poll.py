#!/usr/bin/env python
"""Polling benchmark: feedcast's real polling path against a bare httpx + feedparser loop.

    .venv/bin/python bench/poll.py                 # full run (several minutes)
    .venv/bin/python bench/poll.py --quick         # smoke test (< 1 minute)
    .venv/bin/python bench/poll.py --feeds 2000 --items 20 --big 10000 --repeat 3

A farm of synthetic RSS feeds (bench/farm.py) runs in its own process on 127.0.0.1,
spread over many ports so that each port is a distinct "host" for per-host limits.
Measured, each ``--repeat`` times (median reported):

(a) cold: ``feedcast.watch.poll`` of N feeds into a fresh DuckDB file (sources
    registered beforehand, not timed) vs the baseline (httpx.AsyncClient at the
    same concurrency + ``feedparser.parse(body)``, nothing stored). Target <= 1.5x.
(b) warm: after the farm changed 10 % of the feeds, ``poll(force=True)`` again
    (conditional GETs: ~90 % 304) vs the baseline, which re-fetches and re-parses
    everything. Target <= 0.3x.
(c) big: a cold poll of ``--big`` sources in a child process: peak RSS (ru_maxrss,
    VmHWM) and wall time. Target < 400 MB.

The results are checked (items stored, events = what the farm changed, share of
304s), printed as a table, written to bench/results/poll-<date>.json and, in a
full run, appended to bench/README.md. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import json
import os
import pstats
import re
import resource
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

os.environ["FEEDCAST_ALLOW_PRIVATE_NETWORKS"] = "1"  # the farm is on loopback

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import feedparser  # noqa: E402
import httpx  # noqa: E402
from _machine import machine, run_child  # noqa: E402

from feedcast.store import Store  # noqa: E402
from feedcast.watch import poll  # noqa: E402
from sources.fetch import FetchLimits  # noqa: E402
from sources.poll import PollSettings  # noqa: E402

TARGET_COLD = 1.5  # feedcast cold / baseline
TARGET_WARM = 0.3  # feedcast warm / baseline
TARGET_RSS_MB = 400.0


# --------------------------------------------------------------------------- the farm process


class Farm:
    """bench/farm.py in a child process, driven through its control port."""

    def __init__(self, feeds: int, items: int, ports: int, use_gzip: bool) -> None:
        cmd = [sys.executable, str(BENCH / "farm.py"), "--feeds", str(feeds), "--items", str(items)]
        cmd += ["--ports", str(ports)] + ([] if use_gzip else ["--no-gzip"])
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 600)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.close()
            raise RuntimeError("the farm did not start (see its stderr above)")
        self.info: dict[str, Any] = json.loads(line)
        self.ports: list[int] = self.info["ports"]
        self.control = httpx.Client(
            base_url=f"http://127.0.0.1:{self.info['control']}", trust_env=False, timeout=120
        )

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.ports[i % len(self.ports)]}/f/{i}.xml"

    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.control.request(method, path, json=payload)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def change(self, fraction: float, limit: int, seed: int) -> dict[str, Any]:
        return self._call("POST", "/change", {"fraction": fraction, "limit": limit, "seed": seed})

    def reset(self) -> None:
        self._call("POST", "/reset")

    def stats(self, *, reset: bool = False) -> dict[str, int]:
        return self._call("POST", "/stats/reset") if reset else self._call("GET", "/stats")

    def cpu_seconds(self) -> float:
        """user + system CPU of the farm process so far."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(Exception):
                self._call("POST", "/shutdown")
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                self.proc.wait(10)
        with contextlib.suppress(Exception):
            self.control.close()


# --------------------------------------------------------------------------- measured runs


@dataclass
class Run:
    wall: float
    cpu: float  # this process (all threads)
    farm_cpu: float
    extra: dict[str, Any] = field(default_factory=dict)


def measured(farm: Farm, fn: Callable[[], dict[str, Any]]) -> Run:
    gc.collect()
    farm.stats(reset=True)
    farm0, cpu0, t0 = farm.cpu_seconds(), time.process_time(), time.perf_counter()
    extra = fn()
    wall = time.perf_counter() - t0
    run = Run(wall, time.process_time() - cpu0, farm.cpu_seconds() - farm0, extra)
    run.extra["farm"] = farm.stats()
    return run


def baseline(urls: Sequence[str], concurrency: int, limits: FetchLimits) -> dict[str, Any]:
    """The floor: fetch every URL with a bare AsyncClient, feedparser.parse each body, keep nothing."""

    async def main() -> dict[str, Any]:
        semaphore = asyncio.Semaphore(concurrency)
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(limits.read_timeout, connect=limits.connect_timeout),
            limits=httpx.Limits(
                max_connections=limits.max_connections, max_keepalive_connections=limits.max_connections
            ),
            trust_env=False,
        )

        async def one(url: str) -> tuple[int, int]:
            async with semaphore:
                response = await client.get(url)
                response.raise_for_status()
                body = response.content
                return len(feedparser.parse(body).entries), len(body)

        async with client:
            results = await asyncio.gather(*(one(u) for u in urls))
        return {"entries": sum(r[0] for r in results), "bytes": sum(r[1] for r in results)}

    return asyncio.run(main())


def feedcast_poll(store: Store, limits: FetchLimits, settings: PollSettings) -> dict[str, Any]:
    summaries = poll(store, force=True, limits=limits, settings=settings)
    outcomes: dict[str, int] = {}
    for s in summaries:
        outcomes[s.outcome] = outcomes.get(s.outcome, 0) + 1
    return {
        "sources": len(summaries),
        "outcomes": outcomes,
        "new": sum(s.new for s in summaries),
        "changed": sum(s.changed for s in summaries),
        "errors": sorted({s.error for s in summaries if s.error})[:5],
    }


def parse_costs(urls: Sequence[str], count: int = 50, rounds: int = 5) -> dict[str, float]:
    """Parse-only cost per feed (ms, best of ``rounds`` interleaved rounds) on ``count`` farm bodies.

    The baseline's ``feedparser.parse(body)`` sanitises HTML (feedparser's default); feedcast
    calls feedparser with ``sanitize_html=False``, so the two sides do not parse alike. These
    figures let the report estimate a like-for-like cold ratio.
    """
    from sources.detect import parse_document

    with httpx.Client(trust_env=False, timeout=60) as client:
        bodies = [(u, client.get(u).content) for u in urls[:count]]
    ctype = {"content-type": "application/rss+xml; charset=utf-8"}

    def flags(**kw: bool) -> Callable[[str, bytes], object]:
        return lambda url, body: feedparser.parse(
            io.BytesIO(body), response_headers={"content-location": url, **ctype}, **kw
        )

    variants: dict[str, Callable[[str, bytes], object]] = {
        "feedparser_default_ms": lambda _u, body: feedparser.parse(body),
        "feedparser_feedcast_flags_ms": flags(sanitize_html=False, resolve_relative_uris=True),
        "feedparser_no_sanitize_no_resolve_ms": flags(sanitize_html=False, resolve_relative_uris=False),
        "feedcast_parse_document_ms": lambda u, body: parse_document(body, u, ctype, kind="feed"),
    }
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(rounds):  # round robin: a busy moment does not land on one variant only
        for name, fn in variants.items():
            gc.collect()
            t0 = time.perf_counter()
            for url, body in bodies:
                fn(url, body)
            best[name] = min(best[name], time.perf_counter() - t0)
    return {"feeds": len(bodies)} | {name: t / len(bodies) * 1000 for name, t in best.items()}


# --------------------------------------------------------------------------- registration


def register_api(db: Path, urls: Sequence[str]) -> float:
    """Register with Store.add_source, one call per source (as the CLI does). Returns seconds."""
    store = Store(db)
    t0 = time.perf_counter()
    for i, url in enumerate(urls):
        store.add_source(f"feed-{i:05d}", url, kind="feed", every=timedelta(minutes=15))
    return time.perf_counter() - t0


def register_bulk(db: Path, urls: Sequence[str]) -> float:
    """Register in one transaction with Store.add_sources (or, on a Store without it, one INSERT of
    exactly the rows Store.add_source writes). Returns seconds."""
    store = Store(db)
    names = [f"feed-{i:05d}" for i in range(len(urls))]
    t0 = time.perf_counter()
    try:
        from feedcast.store import NewSource
    except ImportError:
        import pyarrow as pa

        table = pa.table({"name": names, "url": list(urls)})
        with store.transaction() as con:
            con.register("bench_sources", table)
            con.execute(
                "INSERT INTO sources (name, url, added_url, kind, every_seconds, backfill, selectors, next_poll_at)"
                " SELECT name, url, url, 'feed', 900, 0, NULL, now() FROM bench_sources"
            )
            con.unregister("bench_sources")
    else:
        every = timedelta(minutes=15)
        store.add_sources([NewSource(n, u, "feed", every) for n, u in zip(names, urls, strict=True)])
    return time.perf_counter() - t0


def fresh_copy(template: Path, dest: Path) -> Path:
    for suffix in ("", ".wal"):
        Path(str(dest) + suffix).unlink(missing_ok=True)
    assert not Path(str(template) + ".wal").exists(), "template DB was not checkpointed"
    shutil.copyfile(template, dest)
    return dest


def scalar(store: Store, sql: str) -> Any:
    _cols, rows = store.query(sql)
    return next(iter(rows[0].values()))


# --------------------------------------------------------------------------- checks


class Checks:
    def __init__(self) -> None:
        self.results: list[dict[str, Any]] = []

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.results.append({"check": name, "ok": bool(ok), "detail": detail})
        if not ok:
            print(f"  CHECK FAILED: {name}: {detail}", file=sys.stderr, flush=True)

    @property
    def ok(self) -> bool:
        return all(r["ok"] for r in self.results)


def verify_cold(checks: Checks, store: Store, feeds: int, items: int, run: Run, rep: int) -> None:
    n_items = scalar(store, "SELECT count(*) FROM items")
    checks.check(
        f"cold#{rep} items", n_items == feeds * items, f"{n_items} items in DuckDB, expected {feeds * items}"
    )
    ok = scalar(store, "SELECT count(*) FROM fetches WHERE outcome = 'ok'")
    checks.check(f"cold#{rep} fetches ok", ok == feeds, f"{ok} fetches 'ok' of {feeds}")
    events = scalar(store, "SELECT count(*) FROM item_events")
    checks.check(f"cold#{rep} no events on baseline", events == 0, f"{events} events on the first poll")
    run.extra["db_items"] = n_items


def verify_warm(
    checks: Checks, store: Store, feeds: int, items: int, run: Run, rep: int, change: dict[str, Any]
) -> None:
    _cols, rows = store.query("SELECT event, count(*) AS n FROM item_events GROUP BY event")
    events = {r["event"]: r["n"] for r in rows}
    want = {"new": change["new"], "changed": change["changed"]}
    got = {"new": events.get("new", 0), "changed": events.get("changed", 0)}
    checks.check(
        f"warm#{rep} events",
        got == want and set(events) <= {"new", "changed"},
        f"events {events}, farm changed {want}",
    )
    n_items = scalar(store, "SELECT count(*) FROM items")
    expected = feeds * items + change["new"]
    checks.check(f"warm#{rep} items", n_items == expected, f"{n_items} items, expected {expected}")
    _cols, rows = store.query(
        "SELECT outcome, count(*) AS n FROM fetches WHERE id > (SELECT min(id) + ? - 1 FROM fetches)"
        " GROUP BY outcome",
        [feeds],
    )
    warm = {r["outcome"]: r["n"] for r in rows}
    share_304 = warm.get("not_modified", 0) / feeds
    changed_feeds = change["new"] + change["changed"]
    checks.check(
        f"warm#{rep} 304 share",
        warm.get("not_modified", 0) == feeds - changed_feeds and warm.get("ok", 0) == changed_feeds,
        f"warm fetches {warm} ({share_304:.1%} not modified; farm changed {changed_feeds} feeds)",
    )
    run.extra.update(db_items=n_items, fetch_outcomes=warm, share_304=share_304, events=events)


# --------------------------------------------------------------------------- profile


class ProfiledStore(Store):
    """Store whose record_polls (run in a worker thread by poll) is timed and profiled separately."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.db_profile = cProfile.Profile()
        self.db_seconds = 0.0
        self.db_calls = 0

    def record_polls(self, outcomes, *, now=None):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        self.db_profile.enable()
        try:
            return super().record_polls(outcomes, now=now)
        finally:
            self.db_profile.disable()
            self.db_seconds += time.perf_counter() - t0
            self.db_calls += 1


# (label, path suffix, function): cumulative time of these entry points splits a poll into phases.
# For coroutines cProfile counts each resumption as a call, so cumtime is time spent running them
# (CPU), not time spent suspended in an await.
_PHASES = (
    ("parse: sources.detect.parse_document", "sources/detect.py", "parse_document"),
    ("  of which feedparser.parse", "feedparser/api.py", "parse"),
    ("  of which feedcast entry -> Item (_entry_to_item)", "sources/feeds.py", "_entry_to_item"),
    ("fetch: sources.fetch.Fetcher.fetch (httpx, httpcore, h11)", "sources/fetch.py", "fetch"),
    (
        "  of which httpcore pool bookkeeping (_assign_requests_to_connections)",
        "httpcore/_async/connection_pool.py",
        "_assign_requests_to_connections",
    ),
    ("body digest (blake2b of each body)", "sources/poll.py", "body_digest"),
    ("due_sources (read the sources before polling)", "feedcast/store.py", "due_sources"),
)
_DB_PHASES = (
    ("record_polls (whole batch write)", "feedcast/store.py", "record_polls"),
    ("  _stage_items (Python rows -> Arrow, content_hash, JSON)", "feedcast/store.py", "_stage_items"),
    ("    of which Item.content_hash", "feedcast/kernel/models.py", "content_hash"),
    ("  _merge_items (SQL diff + inserts)", "feedcast/store.py", "_merge_items"),
    ("  _write_fetches", "feedcast/store.py", "_write_fetches"),
    ("  _update_sources", "feedcast/store.py", "_update_sources"),
    ("  connect/transaction (open, SET, migrate check, COMMIT, close)", "feedcast/store.py", "transaction"),
)


def profile_summary(
    stats: pstats.Stats, phases: Sequence[tuple[str, str, str]], top: int = 10
) -> dict[str, Any]:
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())

    def label(k: tuple[str, int, str]) -> str:
        path, line, name = k
        short = path.replace(str(ROOT) + "/", "")
        short = re.sub(r"^.*/(site-packages|lib/python3\.\d+)/", "", short)
        return f"{short}:{line}({name})" if line else name

    def rows(index: int) -> list[dict[str, Any]]:
        ordered = sorted(raw.items(), key=lambda kv: kv[1][index], reverse=True)[:top]
        return [
            {"function": label(k), "ncalls": v[1], "tottime": round(v[2], 3), "cumtime": round(v[3], 3)}
            for k, v in ordered
        ]

    found: dict[str, float] = {}
    for name, suffix, function in phases:
        found[name] = round(
            max(
                (v[3] for (path, _l, fn), v in raw.items() if path.endswith(suffix) and fn == function),
                default=0.0,
            ),
            3,
        )
    return {"total_s": round(total, 3), "phases": found, "top_cumulative": rows(3), "top_tottime": rows(2)}


def run_profile(
    template: Path,
    workdir: Path,
    farm: Farm,
    limits: FetchLimits,
    settings: PollSettings,
    out: Path,
    change: float,
    feeds: int,
) -> dict[str, Any]:
    """Profile one cold poll and the warm poll after it; returns the summaries, writes the reports."""
    farm.reset()
    db = fresh_copy(template, workdir / "profile.duckdb")
    out.parent.mkdir(parents=True, exist_ok=True)
    text = io.StringIO()
    result: dict[str, Any] = {"files": []}
    for phase in ("cold", "warm"):
        if phase == "warm":
            farm.change(change, feeds, seed=99)
        store = ProfiledStore(db)
        profiler = cProfile.Profile()
        gc.collect()
        t0 = time.perf_counter()
        profiler.enable()
        poll(store, force=True, limits=limits, settings=settings)
        profiler.disable()
        wall = time.perf_counter() - t0
        base = out.parent / f"{out.name}-{phase}"
        profiler.dump_stats(f"{base}.main.prof")
        store.db_profile.dump_stats(f"{base}.db.prof")
        result["files"] += [f"{base}.main.prof", f"{base}.db.prof"]
        text.write(f"\n\n######## {phase} poll: main thread ########\n")
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(40)
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(40)
        text.write(f"\n\n######## {phase} poll: worker thread (Store.record_polls) ########\n")
        pstats.Stats(store.db_profile, stream=text).sort_stats("cumulative").print_stats(30)
        result[phase] = {
            "wall_s_profiled": round(wall, 3),
            "record_polls_s": round(store.db_seconds, 3),
            "record_polls_calls": store.db_calls,
            "main_thread": profile_summary(pstats.Stats(profiler), _PHASES),
            "db_thread": profile_summary(pstats.Stats(store.db_profile), _DB_PHASES),
        }
    report = out.parent / f"{out.name}.txt"
    report.write_text(text.getvalue())
    result["files"].insert(0, str(report))
    return result


# --------------------------------------------------------------------------- memory (child process)


def _proc_status(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024  # kB -> MB
    return float("nan")


class _PhaseStore(Store):
    """Marks when Store.record_polls runs, so the RSS sampler can tell DB writes from the rest."""

    phase = "poll"
    batches = 0

    def record_polls(self, outcomes, *, now=None):  # type: ignore[no-untyped-def]
        type(self).phase = f"record_polls#{type(self).batches}"
        try:
            return super().record_polls(outcomes, now=now)
        finally:
            type(self).batches += 1
            type(self).phase = "poll"


def child_memory(db: str, concurrency: int) -> None:
    """Runs in a fresh interpreter: cold poll of every source in ``db``; prints JSON.

    A thread samples VmRSS every 20 ms and keeps the peak inside Store.record_polls (the
    DuckDB writes, run in poll's worker thread) apart from the peak elsewhere.
    """
    import threading

    rss_before = _proc_status("VmRSS")
    store = _PhaseStore(db)
    sources = scalar(store, "SELECT count(*) FROM sources")
    peaks: dict[str, tuple[float, str, float]] = {}
    done = threading.Event()

    def sample() -> None:
        t_start = time.perf_counter()
        while not done.is_set():
            rss, phase = _proc_status("VmRSS"), _PhaseStore.phase
            kind = "record_polls" if phase.startswith("record_polls") else "elsewhere"
            if rss > peaks.get(kind, (0.0, "", 0.0))[0]:
                peaks[kind] = (rss, phase, time.perf_counter() - t_start)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    sampler.start()
    summaries = poll(store, force=True, settings=PollSettings(concurrency=concurrency))
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    done.set()
    sampler.join()
    maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB
    result = {
        "sources": sources,
        "polled": len(summaries),
        "ok": sum(s.outcome == "ok" for s in summaries),
        "items": scalar(store, "SELECT count(*) FROM items"),
        "wall_s": wall,
        "cpu_s": cpu,
        "rss_after_imports_mb": rss_before,
        "rss_end_mb": _proc_status("VmRSS"),
        "ru_maxrss_mb": maxrss_mb,
        "vmhwm_mb": _proc_status("VmHWM"),
        "record_polls_batches": _PhaseStore.batches,
        "sampled_peak_in_record_polls_mb": peaks.get("record_polls", (0.0, "", 0.0))[0],
        "sampled_peak_in_record_polls_at": peaks.get("record_polls", (0.0, "", 0.0))[1:],
        "sampled_peak_elsewhere_mb": peaks.get("elsewhere", (0.0, "", 0.0))[0],
        "db_mb": Path(db).stat().st_size / 2**20,
    }
    print("CHILD-RESULT " + json.dumps(result), flush=True)


def run_memory(db: Path, concurrency: int) -> dict[str, Any]:
    return run_child(
        str(Path(__file__).resolve()),
        ["--child-memory", str(db), "--concurrency", str(concurrency)],
        "memory",
    )


# --------------------------------------------------------------------------- reporting


def median(runs: Sequence[Run]) -> float:
    return statistics.median(r.wall for r in runs)


def fmt_runs(runs: Sequence[Run]) -> str:
    return " / ".join(f"{r.wall:.2f}" for r in runs)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def table(res: dict[str, Any]) -> str:
    cold, warm, big = res["cold"], res["warm"], res.get("big")
    n = res["config"]["feeds"]
    lines = [
        "| measurement | median s | runs (s) | client CPU s | farm CPU s | ratio | target | verdict |",
        "|---|---:|---|---:|---:|---:|---:|---|",
        f"| (a) cold baseline: httpx + feedparser, {n} feeds | {cold['baseline_s']:.2f} | {cold['baseline_runs']} "
        f"| {cold['baseline_cpu_s']:.1f} | {cold['baseline_farm_cpu_s']:.2f} | | | |",
        f"| (a) cold feedcast poll, {n} feeds, fresh DB | {cold['feedcast_s']:.2f} | {cold['feedcast_runs']} "
        f"| {cold['feedcast_cpu_s']:.1f} | {cold['feedcast_farm_cpu_s']:.2f} | **{cold['ratio']:.2f}x** "
        f"| <= {TARGET_COLD}x | {verdict(cold['ratio'] <= TARGET_COLD)} |",
        f"| (a) ... vs a baseline parsing like feedcast (sanitize_html=False), estimated "
        f"| {cold['like_for_like_baseline_s']:.2f} | | | | {cold['like_for_like_ratio']:.2f}x | | |",
        f"| (b) warm baseline (re-fetch + re-parse all) | {warm['baseline_s']:.2f} | {warm['baseline_runs']} "
        f"| {warm['baseline_cpu_s']:.1f} | {warm['baseline_farm_cpu_s']:.2f} | | | |",
        f"| (b) warm feedcast poll, {warm['changed_feeds']} feeds changed ({warm['share_304']:.0%} 304) "
        f"| {warm['feedcast_s']:.2f} | {warm['feedcast_runs']} | {warm['feedcast_cpu_s']:.1f} "
        f"| {warm['feedcast_farm_cpu_s']:.2f} | **{warm['ratio']:.2f}x** | <= {TARGET_WARM}x "
        f"| {verdict(warm['ratio'] <= TARGET_WARM)} |",
    ]
    if big:
        base = f" (baseline {big['baseline_s']:.1f} s)" if big.get("baseline_s") else ""
        lines += [
            f"| (c) cold poll of {big['sources']} sources, child process: peak RSS | "
            f"**{big['peak_rss_mb']:.0f} MB** | | | | | < {TARGET_RSS_MB:.0f} MB "
            f"| {verdict(big['peak_rss_mb'] < TARGET_RSS_MB)} |",
            f"| (c) ... RSS after imports / sampled peak inside Store.record_polls / elsewhere / at the end "
            f"| | {big['rss_after_imports_mb']:.0f} / {big['sampled_peak_in_record_polls_mb']:.0f} "
            f"({big['sampled_peak_in_record_polls_at'][0]} of {big['record_polls_batches']}) / "
            f"{big['sampled_peak_elsewhere_mb']:.0f} / {big['rss_end_mb']:.0f} MB | | | | | |",
            f"| (c) ... its wall time{base} | {big['wall_s']:.2f} | | {big['cpu_s']:.1f} | | "
            + (f"{big['wall_s'] / big['baseline_s']:.2f}x" if big.get("baseline_s") else "")
            + " | | |",
        ]
    return "\n".join(lines)


def profile_lines(prof: dict[str, Any]) -> list[str]:
    """Markdown: phase split of the profiled cold and warm polls, and the cold poll's top functions."""
    out = [
        "Profile (cProfile, one extra cold poll and the warm poll after it; times are inflated by the",
        "profiler, compare them with each other). Phases = cumulative time of these entry points:",
        "",
        "| phase | cold s | warm s |",
        "|---|---:|---:|",
    ]
    for thread, title in (("main_thread", "main thread"), ("db_thread", "worker thread")):
        cold, warm = prof["cold"][thread], prof["warm"][thread]
        out.append(
            f"| **{title}: total self time** | **{cold['total_s']:.2f}** | **{warm['total_s']:.2f}** |"
        )
        out += [f"| {k} | {v:.2f} | {warm['phases'].get(k, 0.0):.2f} |" for k, v in cold["phases"].items()]
    out.append(
        f"| wall time of the profiled poll | {prof['cold']['wall_s_profiled']:.2f} "
        f"| {prof['warm']['wall_s_profiled']:.2f} |"
    )
    main = prof["cold"]["main_thread"]
    for title, key in (("cumulative", "top_cumulative"), ("self time", "top_tottime")):
        out += [
            "",
            f"Top 10 {title}, cold poll, main thread:",
            "",
            "| cumtime s | tottime s | calls | function |",
            "|---:|---:|---:|---|",
        ]
        out += [
            f"| {r['cumtime']:.2f} | {r['tottime']:.2f} | {r['ncalls']} | `{r['function']}` |"
            for r in main[key]
        ]
    db = prof["cold"]["db_thread"]
    out += [
        "",
        "Top 10 cumulative, cold poll, worker thread (Store.record_polls):",
        "",
        "| cumtime s | tottime s | calls | function |",
        "|---:|---:|---:|---|",
    ]
    out += [
        f"| {r['cumtime']:.2f} | {r['tottime']:.2f} | {r['ncalls']} | `{r['function']}` |"
        for r in db["top_cumulative"]
    ]
    out.append("")
    return out


def readme_section(res: dict[str, Any]) -> str:
    m, cfg = res["machine"], res["config"]
    out = [
        f"### {res['date']} — {m['cpu_model']}, {m['nproc']} CPU",
        "",
        f"- machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['ram_gb']} GB RAM, Python {m['python']}, {m['os']}",
        f"- code: commit {m['commit']} (+ working tree); duckdb {m['versions']['duckdb']}, "
        f"httpx {m['versions']['httpx']}, feedparser {m['versions']['feedparser']}",
        f"- command: `{res['command']}`",
        f"- farm: {cfg['feeds']} feeds x {cfg['items']} items ({res['farm']['mean_body_bytes']:,} B per feed, "
        f"{res['farm']['mean_gzip_bytes']:,} B gzipped), {cfg['ports']} ports on 127.0.0.1, "
        f"concurrency {cfg['concurrency']}, FetchLimits defaults (per_host {cfg['per_host']}, "
        f"max_connections {cfg['max_connections']}); {cfg['repeat']} repetition(s), median",
        "- registration (not timed in the figures): "
        + (
            f"Store.add_source {res['registration']['api_ms_per_source']:.1f} ms per source"
            if res["registration"]["method"] == "api"
            else f"Store.add_sources, {res['registration']['seconds']:.1f} s for {res['registration']['sources']}"
        ),
        f"- checks: {'all passed' if res['checks_ok'] else 'SOME FAILED'} "
        f"({sum(c['ok'] for c in res['checks'])}/{len(res['checks'])})",
        "",
        table(res),
        "",
    ]
    if res.get("profile"):
        out += profile_lines(res["profile"])
    return "\n".join(out)


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--feeds", type=int, default=None, help="feeds for the cold/warm runs (default 2000; quick 200)"
    )
    p.add_argument("--items", type=int, default=20, help="items per feed (default 20)")
    p.add_argument(
        "--big",
        type=int,
        default=None,
        help="sources for the memory run (default 10000; quick 1000; 0 skips)",
    )
    p.add_argument("--repeat", type=int, default=None, help="repetitions of each timing (default 3; quick 1)")
    p.add_argument(
        "--change", type=float, default=0.1, help="share of feeds the farm changes before the warm poll"
    )
    p.add_argument(
        "--ports", type=int, default=250, help="loopback ports the farm listens on (distinct 'hosts')"
    )
    p.add_argument(
        "--concurrency", type=int, default=PollSettings().concurrency, help="sources polled at once"
    )
    p.add_argument("--no-gzip", action="store_true", help="farm never compresses")
    p.add_argument(
        "--register",
        choices=("api", "bulk"),
        default="api",
        help="how the cold/warm sources are registered: Store.add_source (api, default) or Store.add_sources",
    )
    p.add_argument(
        "--quick", action="store_true", help="smoke test: 200 feeds, 1 repetition, 1,000 for memory"
    )
    p.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="profile one cold poll (default: on, off with --quick)",
    )
    p.add_argument(
        "--big-baseline",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also time the baseline on the --big feeds (default: on, off with --quick)",
    )
    p.add_argument(
        "--readme",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="append the summary to bench/README.md (default: on, off with --quick)",
    )
    p.add_argument("--out", type=Path, default=BENCH / "results", help="where the JSON goes")
    p.add_argument("--child-memory", metavar="DB", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    full = not args.quick
    args.feeds = args.feeds if args.feeds is not None else (2000 if full else 200)
    args.big = args.big if args.big is not None else (10000 if full else 1000)
    args.repeat = args.repeat if args.repeat is not None else (3 if full else 1)
    for name in ("profile", "big_baseline", "readme"):
        if getattr(args, name) is None:
            setattr(args, name, full)
    return args


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child_memory:
        child_memory(args.child_memory, args.concurrency)
        return 0
    started = time.perf_counter()
    date = datetime.now(UTC)
    stamp = date.strftime("%Y-%m-%dT%H%M%SZ")
    limits = FetchLimits()
    settings = PollSettings(concurrency=args.concurrency)
    checks = Checks()
    n, items = args.feeds, args.items
    workdir = Path(tempfile.mkdtemp(prefix="feedcast-bench-"))
    log(f"starting the farm: {max(n, args.big)} feeds x {items} items on {args.ports} loopback ports")
    farm = Farm(max(n, args.big), items, args.ports, not args.no_gzip)
    try:
        log("farm ready: " + ", ".join(f"{k}={v}" for k, v in farm.info.items() if k != "ports"))
        urls = [farm.url(i) for i in range(n)]

        template = workdir / "template.duckdb"
        log(
            f"registering {n} sources ({'Store.add_source' if args.register == 'api' else 'Store.add_sources'}, not timed)"
        )
        reg_s = (register_api if args.register == "api" else register_bulk)(template, urls)
        registration = {
            "method": args.register,
            "sources": n,
            "seconds": round(reg_s, 2),
            "api_ms_per_source": reg_s / n * 1000 if args.register == "api" else float("nan"),
        }
        log(f"registered in {reg_s:.1f} s ({reg_s / n * 1000:.1f} ms per source)")

        # warm-up: imports, regexes, first connections
        baseline(urls[:50], args.concurrency, limits)
        costs = parse_costs(urls, 20, 3) if args.quick else parse_costs(urls)
        log(
            "parse cost per feed (ms): feedparser.parse(body) {feedparser_default_ms:.2f}, with feedcast's flags "
            "{feedparser_feedcast_flags_ms:.2f}, without URI resolution {feedparser_no_sanitize_no_resolve_ms:.2f}, "
            "feedcast parse_document {feedcast_parse_document_ms:.2f}".format(**costs)
        )

        cold_base: list[Run] = []
        cold_fc: list[Run] = []
        warm_base: list[Run] = []
        warm_fc: list[Run] = []
        changes: list[dict[str, Any]] = []
        for rep in range(args.repeat):
            farm.reset()
            store = Store(fresh_copy(template, workdir / f"cold-{rep}.duckdb"))

            def do_base(runs: list[Run], label: str) -> None:
                run = measured(farm, lambda: baseline(urls, args.concurrency, limits))
                checks.check(
                    f"{label} baseline entries",
                    run.extra["entries"] == n * items,
                    f"{run.extra['entries']} entries parsed, expected {n * items}",
                )
                runs.append(run)
                log(
                    f"{label} baseline  {run.wall:7.2f} s  (cpu {run.cpu:.2f} s, farm cpu {run.farm_cpu:.2f} s)"
                )

            def do_fc(runs: list[Run], label: str, store: Store = store) -> Run:
                run = measured(farm, lambda: feedcast_poll(store, limits, settings))
                runs.append(run)
                log(
                    f"{label} feedcast  {run.wall:7.2f} s  (cpu {run.cpu:.2f} s, farm cpu {run.farm_cpu:.2f} s) "
                    f"{run.extra['outcomes']}"
                )
                return run

            # alternate the order so drift (thermal, page cache) does not favour one side
            if rep % 2 == 0:
                do_base(cold_base, f"cold#{rep}")
                run = do_fc(cold_fc, f"cold#{rep}")
            else:
                run = do_fc(cold_fc, f"cold#{rep}")
                do_base(cold_base, f"cold#{rep}")
            verify_cold(checks, store, n, items, run, rep)

            change = farm.change(args.change, n, seed=rep + 1)
            changes.append({k: change[k] for k in ("new", "changed")})
            log(
                f"farm changed {change['new'] + change['changed']} feeds: {change['new']} new items, "
                f"{change['changed']} edited items"
            )
            if rep % 2 == 0:
                do_base(warm_base, f"warm#{rep}")
                run = do_fc(warm_fc, f"warm#{rep}")
            else:
                run = do_fc(warm_fc, f"warm#{rep}")
                do_base(warm_base, f"warm#{rep}")
            checks.check(
                f"warm#{rep} summaries",
                (run.extra["new"], run.extra["changed"]) == (change["new"], change["changed"]),
                f"poll summaries new={run.extra['new']} changed={run.extra['changed']}",
            )
            checks.check(
                f"warm#{rep} farm 304s",
                run.extra["farm"]["304"] == n - change["new"] - change["changed"],
                f"farm answered {run.extra['farm']}",
            )
            verify_warm(checks, store, n, items, run, rep, change)

        res: dict[str, Any] = {
            "date": date.strftime("%Y-%m-%d %H:%M UTC"),
            "command": "bench/poll.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "machine": machine(("duckdb", "httpx", "feedparser")),
            "config": {
                "feeds": n,
                "items": items,
                "big": args.big,
                "repeat": args.repeat,
                "change": args.change,
                "ports": args.ports,
                "concurrency": args.concurrency,
                "per_host": limits.per_host,
                "max_connections": limits.max_connections,
                "gzip": not args.no_gzip,
                "quick": args.quick,
            },
            "farm": farm.info | {"ports": len(farm.ports)},
            "registration": registration,
        }

        def side(runs: list[Run]) -> dict[str, Any]:
            return {
                "s": median(runs),
                "runs": fmt_runs(runs),
                "cpu_s": statistics.median(r.cpu for r in runs),
                "farm_cpu_s": statistics.median(r.farm_cpu for r in runs),
            }

        for key, base, fc in (("cold", cold_base, cold_fc), ("warm", warm_base, warm_fc)):
            b, f = side(base), side(fc)
            res[key] = {
                "baseline_s": b["s"],
                "baseline_runs": b["runs"],
                "baseline_cpu_s": b["cpu_s"],
                "baseline_farm_cpu_s": b["farm_cpu_s"],
                "feedcast_s": f["s"],
                "feedcast_runs": f["runs"],
                "feedcast_cpu_s": f["cpu_s"],
                "feedcast_farm_cpu_s": f["farm_cpu_s"],
                "ratio": f["s"] / b["s"],
                "target": TARGET_COLD if key == "cold" else TARGET_WARM,
                "raw": {"baseline": [r.__dict__ for r in base], "feedcast": [r.__dict__ for r in fc]},
            }
        res["warm"]["changed_feeds"] = changes[0]["new"] + changes[0]["changed"]
        res["warm"]["changes"] = changes
        res["warm"]["share_304"] = statistics.median(r.extra["share_304"] for r in warm_fc)
        res["parse_costs"] = costs
        saved = n * (costs["feedparser_default_ms"] - costs["feedparser_feedcast_flags_ms"]) / 1000
        res["cold"]["like_for_like_baseline_s"] = res["cold"]["baseline_s"] - saved
        res["cold"]["like_for_like_ratio"] = (
            res["cold"]["feedcast_s"] / res["cold"]["like_for_like_baseline_s"]
        )
        res["cold"]["met"] = res["cold"]["ratio"] <= TARGET_COLD
        res["warm"]["met"] = res["warm"]["ratio"] <= TARGET_WARM

        if args.profile:
            log("profiling one cold and one warm poll (cProfile; main thread + Store.record_polls thread)")
            res["profile"] = run_profile(
                template, workdir, farm, limits, settings, args.out / f"poll-{stamp}-profile", args.change, n
            )
            log(f"profile written to {res['profile']['files'][0]}")

        if args.big:
            farm.reset()
            big_db = workdir / "big.duckdb"
            big_urls = [farm.url(i) for i in range(args.big)]
            bulk_s = register_bulk(big_db, big_urls)
            log(
                f"registered {args.big} sources for the memory run (Store.add_sources, {bulk_s:.1f} s); "
                "cold poll in a child process"
            )
            mem = run_memory(big_db, args.concurrency)
            peak = max(mem["ru_maxrss_mb"], mem["vmhwm_mb"])
            log(
                f"big: {mem['polled']} sources, {mem['items']} items in {mem['wall_s']:.1f} s, "
                f"peak RSS {peak:.0f} MB (after imports {mem['rss_after_imports_mb']:.0f} MB; sampled peak "
                f"inside Store.record_polls {mem['sampled_peak_in_record_polls_mb']:.0f} MB "
                f"({mem['sampled_peak_in_record_polls_at'][0]} of {mem['record_polls_batches']}), "
                f"elsewhere {mem['sampled_peak_elsewhere_mb']:.0f} MB; at the end {mem['rss_end_mb']:.0f} MB)"
            )
            checks.check(
                "big items",
                mem["items"] == args.big * items,
                f"{mem['items']} items in DuckDB, expected {args.big * items}",
            )
            checks.check("big polled ok", mem["ok"] == args.big, f"{mem['ok']} ok of {args.big}")
            res["big"] = mem | {
                "peak_rss_mb": peak,
                "target_mb": TARGET_RSS_MB,
                "met": peak < TARGET_RSS_MB,
                "registration_s": bulk_s,
            }
            if args.big_baseline:
                run = measured(farm, lambda: baseline(big_urls, args.concurrency, limits))
                res["big"]["baseline_s"] = run.wall
                log(f"big baseline {run.wall:.1f} s")

        res["checks"] = checks.results
        res["checks_ok"] = checks.ok
        res["elapsed_s"] = round(time.perf_counter() - started, 1)
        args.out.mkdir(parents=True, exist_ok=True)
        out = args.out / f"poll-{stamp}.json"
        out.write_text(json.dumps(res, indent=2, default=str))

        print()
        print(table(res))
        print()
        if "profile" in res:
            print("\n".join(profile_lines(res["profile"])))
        print(
            f"checks: {sum(c['ok'] for c in checks.results)}/{len(checks.results)} passed; "
            f"results in {out}; {res['elapsed_s']:.0f} s in all"
        )
        if args.readme:
            readme = BENCH / "README.md"
            text = readme.read_text(encoding="utf-8")
            # the entry goes at the end of the poll results, before the next benchmark's section
            start = text.index("## Recorded results")
            end = text.find("\n## ", start + 1)
            end = len(text) if end < 0 else end + 1
            text = text[:end].rstrip("\n") + "\n\n" + readme_section(res).rstrip("\n") + "\n\n" + text[end:]
            readme.write_text(text.rstrip("\n") + "\n", encoding="utf-8")
            log(f"summary added to {readme}")
        return 0 if checks.ok else 1
    finally:
        farm.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
