#!/usr/bin/env python
"""Inbound benchmark: how many signed Messenger webhook events a second ``feedcast web``
accepts, how fast it answers each, and how soon they are processed.

    .venv/bin/python bench/inbound.py                 # full run: 5,000 events, 64 connections (~3-5 min)
    .venv/bin/python bench/inbound.py --quick         # smoke test: 600 events, no baseline (< 1 min)
    .venv/bin/python bench/inbound.py --no-readme     # full run, bench/README.md untouched
    .venv/bin/python bench/inbound.py --help          # --events, --concurrency, --baseline, --settle, ...

Three processes on loopback, so that none shares the GIL with another: the Messenger
emulator (``feedcast sandbox --format json --no-limits``, which receives the page's
replies), ``feedcast web`` on a fresh DuckDB file with one Messenger channel, and this
script, the load: ``--concurrency`` keep-alive HTTP/1.1 connections (a minimal asyncio
client, so the load generator is not the bottleneck) posting ``--events`` distinct
signed events (``X-Hub-Signature-256``, one event per POST, a distinct PSID and ``mid``
each, text "hello": the default reply) as fast as they are answered.

Measured: accepted events per second (answers 200 / wall time of the load), the latency
of each answer (p50, p99, max: request written to status line read), then the time
until every event is processed (``inbound`` rows with their action set; read-only
queries every half second) and the processing rate. Target: >= 500 events/s accepted,
answers in milliseconds.

Baseline in the same run (``--baseline REF``, default the commit before the spool,
0696d38; ``--no-baseline`` skips it): that commit's ``feedcast web`` (``git archive``
into a temporary folder, run with this interpreter), same load. It answered before
keeping anything and processed in background tasks; its processing is given
``--settle`` seconds, and what it processed by then is reported.

Checks (every run; the script exits 1 when one fails, not when a target is missed):
every POST of the current design answered 200; after processing, ``inbound`` holds
exactly ``--events`` rows, one per ``mid``, none pending or failed; the spool has
nothing waiting.

Results: a table on stdout, everything in bench/results/inbound-<date>.json (gitignored)
and, unless --no-readme (implied by --quick), an entry in the "bench/inbound.py"
section of bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402
import httpx  # noqa: E402
from _machine import append_readme as _append_readme  # noqa: E402
from _machine import machine  # noqa: E402

README_SECTION = "## bench/inbound.py"
TARGET_RATE = 500.0
BASELINE_REF = "0696d38"  # the last commit before the inbound spool
APP_SECRET = "bench-inbound-app-secret"  # a value made up for this run
PAGE_ID = "100200300"  # the sandbox page


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def shown(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(ROOT))
    return str(path)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- processes


_ANY_PORTS = ("--telegram-port", "0", "--messenger-port", "0", "--webhooks-port", "0", "--smtp-port", "0")


class Sandbox:
    """``feedcast sandbox`` in its own process: the Messenger Send API for the replies."""

    def __init__(self) -> None:
        feedcast = Path(sys.executable).with_name("feedcast")
        command = [str(feedcast)] if feedcast.exists() else [sys.executable, "-m", "feedcast.cli"]
        self.process = subprocess.Popen(
            [*command, "sandbox", "--format", "json", "--no-limits", *_ANY_PORTS],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("feedcast sandbox did not start")
        info = json.loads(line)
        self.messenger: str = info["urls"]["messenger"]
        self.env: dict[str, str] = info["env"]
        httpx.post(self.messenger + "/_sandbox/config", json={"auto_people": True, "auto_window_open": True})

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


class Web:
    """``feedcast web`` from ``code`` (None: this checkout) on ``db``."""

    def __init__(self, db: Path, env: dict[str, str], code: Path | None) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full = {**os.environ, **env, "FEEDCAST_DB": str(db), "FEEDCAST_ALLOW_PRIVATE_NETWORKS": "1"}
        if code is not None:
            full["PYTHONPATH"] = str(code)
        self.log = db.with_name(f"web-{self.port}.log")
        self._out = self.log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from feedcast.cli import main; main()", "web", "--port", str(self.port)],
            env=full,
            cwd=code or ROOT,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    break
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("feedcast web did not start:\n" + self.log.read_text()[-2000:])
            time.sleep(0.1)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._out.close()


def prepare(folder: Path, sandbox: Sandbox, code: Path | None) -> Path:
    """A fresh DuckDB file with the Messenger channel ``fb`` (made by ``code``'s CLI)."""
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "bench.duckdb"
    env = {
        **os.environ,
        **sandbox.env,
        "FEEDCAST_DB": str(db),
        "FEEDCAST_ALLOW_PRIVATE_NETWORKS": "1",
        "BENCH_APP_SECRET": APP_SECRET,
    }
    if code is not None:
        env["PYTHONPATH"] = str(code)
    subprocess.run(
        [
            *(
                sys.executable,
                "-c",
                "from feedcast.cli import main; main()",
                "channel",
                "add",
                "fb",
                "messenger",
            ),
            *("--page-token", "env:SANDBOX_PAGE_TOKEN", "--app-secret", "env:BENCH_APP_SECRET"),
            *("--api-url", sandbox.messenger + "/v25.0"),
        ],
        env=env,
        cwd=code or ROOT,
        check=True,
        capture_output=True,
    )
    return db


def baseline_code(ref: str, folder: Path) -> Path | None:
    """The code of commit ``ref`` in ``folder`` (None when git cannot give it)."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref], capture_output=True, check=False
    )
    if archive.returncode != 0:
        log(f"baseline skipped: git archive {ref} failed: {archive.stderr.decode(errors='replace').strip()}")
        return None
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


# --------------------------------------------------------------------------- the load


def requests(events: int, host: str) -> list[bytes]:
    """One signed POST per event, ready to write."""
    out: list[bytes] = []
    stamp = int(time.time() * 1000)
    for i in range(events):
        event = {
            "sender": {"id": f"39{i:014d}"},
            "recipient": {"id": PAGE_ID},
            "timestamp": stamp + i,
            "message": {"mid": f"m_bench_{i}", "text": "hello"},
        }
        body = json.dumps({"object": "page", "entry": [{"id": PAGE_ID, "time": stamp, "messaging": [event]}]})
        raw = body.encode()
        signature = hmac.new(APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()
        head = (
            f"POST /messenger/fb HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"X-Hub-Signature-256: sha256={signature}\r\nContent-Length: {len(raw)}\r\n\r\n"
        )
        out.append(head.encode() + raw)
    return out


async def _connection(
    port: int, queue: list[bytes], latencies: list[float], statuses: dict[int, int], deadline: float
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while queue and time.perf_counter() < deadline:
            request = queue.pop()
            started = time.perf_counter()
            writer.write(request)
            await writer.drain()
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value.strip())
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            status = int(status_line.split()[1]) if status_line else 0
            statuses[status] = statuses.get(status, 0) + 1
            if not status_line:
                return
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def load(port: int, events: int, concurrency: int, limit: float) -> dict[str, Any]:
    """Post ``events`` events over ``concurrency`` connections, ``limit`` seconds at most."""
    queue = requests(events, f"127.0.0.1:{port}")
    queue.reverse()  # pop() from the end: events go in order
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def run() -> float:
        started = time.perf_counter()
        deadline = started + limit
        await asyncio.gather(
            *(_connection(port, queue, latencies, statuses, deadline) for _ in range(concurrency)),
            return_exceptions=True,
        )
        return time.perf_counter() - started

    wall = asyncio.run(run())
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else float("nan")

    answered = len(latencies)
    return {
        "events": events,
        "concurrency": concurrency,
        "answered": answered,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "ok": statuses.get(200, 0),
        "wall_s": round(wall, 3),
        "accepted_per_s": round(statuses.get(200, 0) / wall, 1) if wall else 0.0,
        "p50_ms": round(pct(0.50), 2),
        "p99_ms": round(pct(0.99), 2),
        "max_ms": round(ordered[-1] * 1000, 2) if ordered else float("nan"),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2) if ordered else float("nan"),
    }


def counts(db: Path) -> dict[str, int] | None:
    """``inbound`` as the analyst sees it (None while the file is busy)."""
    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.Error:
        return None
    try:
        row = con.execute(
            "SELECT count(*), count(DISTINCT provider_id), count(*) FILTER (WHERE action IS NOT NULL"
            " AND action <> 'pending'), count(*) FILTER (WHERE action = 'pending'),"
            " count(*) FILTER (WHERE action LIKE 'failed%') FROM inbound"
        ).fetchone()
    finally:
        con.close()
    assert row is not None
    return {"rows": row[0], "distinct": row[1], "processed": row[2], "pending": row[3], "failed": row[4]}


def settle(db: Path, events: int, started: float, limit: float) -> dict[str, Any]:
    """Wait until every event is processed, ``limit`` seconds at most after ``started``."""
    last: dict[str, int] | None = None
    while True:
        now = time.perf_counter()
        found = counts(db)
        if found is not None:
            last = found
            if found["processed"] >= events:
                break
        if now - started > limit:
            break
        time.sleep(0.5)
    elapsed = time.perf_counter() - started
    processed = last["processed"] if last else 0
    return {
        "inbound": last,
        "processed": processed,
        "all_processed": processed >= events,
        "processed_after_s": round(elapsed, 1),
        "processed_per_s": round(processed / elapsed, 1) if elapsed else 0.0,
    }


def run_design(
    name: str, folder: Path, sandbox: Sandbox, code: Path | None, args: argparse.Namespace
) -> dict[str, Any]:
    db = prepare(folder, sandbox, code)
    web = Web(db, {**sandbox.env, "BENCH_APP_SECRET": APP_SECRET}, code)
    try:
        log(f"{name}: {args.events} events over {args.concurrency} connections to {web.url}")
        started = time.perf_counter()
        result = load(web.port, args.events, args.concurrency, args.limit)
        log(
            f"{name}: {result['accepted_per_s']:.0f} events/s accepted, p50 {result['p50_ms']:.1f} ms, "
            f"p99 {result['p99_ms']:.1f} ms ({result['statuses']})"
        )
        limit = args.settle if code is not None else args.process_limit
        result["processing"] = settle(db, result["ok"], started, limit)
        log(
            f"{name}: {result['processing']['processed']} processed after "
            f"{result['processing']['processed_after_s']:.0f} s"
        )
    finally:
        web.close()
    spool = db.with_name(db.name + ".spool")
    if spool.exists():
        con = sqlite3.connect(spool)
        try:
            result["spool_waiting"] = con.execute(
                "SELECT count(*) FROM events WHERE drained_at IS NULL"
            ).fetchone()[0]
        finally:
            con.close()
    result["final_inbound"] = counts(db)
    return result


# --------------------------------------------------------------------------- report


def table(res: dict[str, Any]) -> str:
    lines = [
        "| design | events | connections | accepted/s | p50 ms | p99 ms | max ms | processed | processed/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, label in (
        ("current", "spool (this commit)"),
        ("baseline", f"baseline {res['config']['baseline']}"),
    ):
        r = res.get(key)
        if not r:
            continue
        p = r["processing"]
        done = f"{p['processed']} in {p['processed_after_s']:.0f} s"
        lines.append(
            f"| {label} | {r['events']} | {r['concurrency']} | {r['accepted_per_s']:.0f} | {r['p50_ms']:.1f} "
            f"| {r['p99_ms']:.1f} | {r['max_ms']:.0f} | {done} | {p['processed_per_s']:.0f} |"
        )
    return "\n".join(lines)


def readme_entry(res: dict[str, Any]) -> str:
    m = res["machine"]
    out = [
        f"### {res['date']}: `{res['command']}`",
        "",
        f"Machine: {m['cpu_model']}, {m['nproc']} cores ({m['cpus_usable']} usable), {m['ram_gb']} GB, "
        f"{m['os']}, Python {m['python']}, commit {m['commit']}; load average before "
        f"{', '.join(map(str, m['loadavg_before']))}, after {', '.join(map(str, m['loadavg_after']))}.",
        "",
        table(res),
        "",
    ]
    current = res["current"]
    verdict = "met" if current["accepted_per_s"] >= TARGET_RATE else "missed"
    out.append(
        f"Target >= {TARGET_RATE:.0f} events/s accepted: {verdict} ({current['accepted_per_s']:.0f}/s, p99 "
        f"{current['p99_ms']:.1f} ms). Checks: {sum(c['ok'] for c in res['checks'])}/{len(res['checks'])} passed."
    )
    out += ["", f"Everything measured: `{res['json']}`.", ""]
    return "\n".join(out)


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke test: 600 events, 16 connections, no baseline")
    p.add_argument("--events", type=int, default=None, help="events posted (5000; quick 600)")
    p.add_argument("--concurrency", type=int, default=None, help="connections at once (64; quick 16)")
    p.add_argument("--limit", type=float, default=120.0, help="seconds the load may take at most")
    p.add_argument(
        "--process-limit", type=float, default=None, help="seconds to wait for processing (600; quick 120)"
    )
    p.add_argument("--baseline", default=BASELINE_REF, help="the commit of the previous design")
    p.add_argument("--no-baseline", action="store_true", help="measure this commit only")
    p.add_argument("--settle", type=float, default=60.0, help="seconds the baseline is given to process")
    p.add_argument("--readme", action=argparse.BooleanOptionalAction, default=None, help="append to README")
    p.add_argument("--out", type=Path, default=BENCH / "results", help="where the JSON goes")
    args = p.parse_args(argv)
    args.events = args.events or (600 if args.quick else 5000)
    args.concurrency = args.concurrency or (16 if args.quick else 64)
    args.process_limit = args.process_limit or (120.0 if args.quick else 600.0)
    if args.quick:
        args.no_baseline = True
    if args.readme is None:
        args.readme = not args.quick
    if args.events < 1 or args.concurrency < 1:
        p.error("--events and --concurrency must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    date = datetime.now(UTC)
    stamp = date.strftime("%Y-%m-%dT%H%M%SZ")
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"inbound-{stamp}.json"
    res: dict[str, Any] = {
        "date": date.strftime("%Y-%m-%d %H:%M UTC"),
        "command": "bench/inbound.py" + "".join(f" {a}" for a in (sys.argv[1:] if argv is None else argv)),
        "machine": machine(("duckdb", "uvicorn", "starlette", "httptools", "uvloop")),
        "config": {
            "events": args.events,
            "concurrency": args.concurrency,
            "baseline": None if args.no_baseline else args.baseline,
            "settle_s": args.settle,
        },
        "json": shown(out),
    }
    checks: list[dict[str, Any]] = []

    def check(name: str, ok: bool, detail: str) -> None:
        checks.append({"check": name, "ok": bool(ok), "detail": detail})
        if not ok:
            log(f"CHECK FAILED: {name}: {detail}")

    workdir = Path(tempfile.mkdtemp(prefix="feedcast-bench-inbound-"))
    sandbox = Sandbox()
    try:
        current = res["current"] = run_design("spool", workdir / "current", sandbox, None, args)
        check("every POST answered 200", current["ok"] == args.events, f"statuses {current['statuses']}")
        final = current["final_inbound"] or {}
        check(
            "every event processed once",
            final.get("rows") == args.events
            and final.get("distinct") == args.events
            and final.get("processed") == args.events
            and final.get("pending") == 0
            and final.get("failed") == 0,
            f"inbound {final}",
        )
        check(
            "nothing left in the spool", current.get("spool_waiting") == 0, f"{current.get('spool_waiting')}"
        )
        if not args.no_baseline:
            code = baseline_code(args.baseline, workdir / "baseline-code")
            if code is not None:
                httpx.post(sandbox.messenger + "/_sandbox/reset", json={})
                res["baseline"] = run_design(
                    f"baseline {args.baseline}", workdir / "baseline", sandbox, code, args
                )
    finally:
        sandbox.close()
        shutil.rmtree(workdir, ignore_errors=True)
    res["checks"] = checks
    res["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    res["elapsed_s"] = round(time.perf_counter() - started, 1)
    out.write_text(json.dumps(res, indent=2, default=str) + "\n", encoding="utf-8")
    print(table(res))
    print(
        f"checks: {sum(c['ok'] for c in checks)}/{len(checks)} passed; results in {res['json']}; "
        f"{res['elapsed_s']:.0f} s in all"
    )
    if args.readme:
        log(f"entry appended to {shown(_append_readme(README_SECTION, readme_entry(res)))}")
    return 0 if all(c["ok"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
