#!/usr/bin/env python
"""Delivery benchmark: feedcast's sending path against the Telegram emulator, and its DuckDB bookkeeping.

    .venv/bin/python bench/send.py                    # full run (about 15 minutes)
    .venv/bin/python bench/send.py --quick            # smoke test (< 1 minute)
    .venv/bin/python bench/send.py --quick --no-readme

The Telegram emulator runs in its own process (``feedcast sandbox --format json``, so it
does not share the GIL with the sender it measures), on loopback; the sandbox bot token
comes from the JSON line it prints and its chats are created on demand for any positive
chat id. Every send goes through the real engine: ``feedcast.delivery.send_automation``
builds a campaign (1 item, layout ``single``: one sendMessage per recipient) from a
DuckDB store holding N subscribers ("1".."N"), then delivers it and records every
outcome in DuckDB. Measured:

(1) paced: N subscribers (10,000; quick 300), emulator started WITH Telegram's limits
    (30 messages per sliding second per bot, 1 per second per chat), ``SendSettings()``
    (limits on). Achieved rate = deliveries sent / delivery wall time (from the moment
    the campaign is built to the end of ``deliver``), as a share of 30 msg/s (target
    >= 93 %); the emulator must see zero 429s, zero over-limit arrivals and at most 30
    requests in any sliding second.
(2) unpaced: N subscribers (10,000; quick 2,000), a second emulator with --no-limits,
    ``SendSettings(limits=False, max_in_flight=M)`` for several M: deliveries per second
    INCLUDING the DuckDB recording (target >= 1,000/s). Baselines in the same run, posting
    the same sendMessage payloads to the same emulator with the same concurrency
    (semaphore M), no feedcast and no DuckDB: (A) a bare ``httpx.AsyncClient`` with one
    pool of M connections, (B) ``channels.http.sending_client(M)``, the sharded client the
    engine itself sends with; B / feedcast is feedcast's own overhead. Diagnostic runs
    at the best M vary ``max_unrecorded``. Below the target (or with --profile-always),
    one run at the best M is profiled with cProfile (the event loop's thread, and
    separately the DuckDB calls the engine makes in worker threads).
(3) recording: 100,000 delivery rows (quick 10,000) in a child process (a fresh
    interpreter; peak RSS = its VmHWM, as ``ru_maxrss`` also counts the memory image it
    was forked from): ``Store.add_subscribers`` of 100,000 subscribers,
    ``Store.create_campaign`` queueing 100,000 pending deliveries, ``Store.record_deliveries``
    of 100,000 ``DeliveryUpdate`` rows in one call (target < 1 s); median of 3, each on a
    fresh DuckDB file.

Checks (every run, quick too; the script exits 1 when one fails, not when a target is
missed): every delivery of every campaign is ``sent`` exactly once in DuckDB (row count,
distinct subscribers, nothing pending or failed, a provider message id each), the
emulator accepted exactly N messages, one per chat; the paced run had no 429, no
over-limit arrival and no sliding second above 30; each baseline got N answers 200;
record_deliveries left N rows ``sent``.

Results: a table on stdout, everything in bench/results/send-<date>.json (gitignored;
profile reports next to it) and, unless --no-readme (implied by --quick), an entry in
the "bench/send.py" section of bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import itertools
import json
import os
import pstats
import resource
import select
import shutil
import signal
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

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ["FEEDCAST_ALLOW_PRIVATE_NETWORKS"] = "1"  # the sandbox is on loopback

import httpx  # noqa: E402
from _machine import append_readme as _append_readme  # noqa: E402
from _machine import machine, run_child  # noqa: E402

from channels.http import sending_client  # noqa: E402
from feedcast.delivery import BuildResult, SendSettings, build_campaign, send_automation  # noqa: E402
from feedcast.kernel.models import DeliveryUpdate, Item, NewSubscriber, PollOutcome, ProviderCall  # noqa: E402
from feedcast.store import Store  # noqa: E402

TELEGRAM_PER_SECOND = 30  # Telegram's (and the emulator's) messages per second per bot
TARGET_PACED_SHARE = 0.93  # achieved rate / 30
TARGET_UNPACED = 1000.0  # deliveries per second, DuckDB recording included
TARGET_RECORD_S = 1.0  # record_deliveries of 100,000 rows
README_SECTION = "## bench/send.py"
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
CHANNEL, AUTOMATION = "tg", "news"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _proc_cpu(pid: int) -> float:
    """user + system CPU seconds of a process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(key: str = "VmRSS") -> float:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


# --------------------------------------------------------------------------- the sandbox process


def _die_with_parent() -> None:
    """In the sandbox child (Linux): SIGTERM when the benchmark dies, so no emulator is left behind."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Sandbox:
    """``feedcast sandbox --format json`` in a child process, driven through the Telegram
    emulator's control API."""

    def __init__(self, *, limits: bool) -> None:
        cmd = [sys.executable, "-c", "import sys; from feedcast.cli import main; sys.exit(main())"]
        cmd += ["sandbox", "--format", "json", "--telegram-port", "0", "--messenger-port", "0"]
        cmd += ["--webhooks-port", "0", "--smtp-port", "0"] + ([] if limits else ["--no-limits"])
        self.limits = limits
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, preexec_fn=_die_with_parent
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.close()
            raise RuntimeError("the sandbox did not start (see its stderr above)")
        info = json.loads(line)
        self.url: str = info["urls"]["telegram"]
        self.env: dict[str, str] = info["env"]
        self.token = self.env["SANDBOX_TELEGRAM_TOKEN"]
        self.control = httpx.Client(base_url=self.url, trust_env=False, timeout=120)

    def stats(self, *, chats: bool = False) -> dict[str, Any]:
        response = self.control.get("/_sandbox/stats", params={"chats": "1"} if chats else None)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def received(self) -> dict[str, list[dict[str, Any]]]:
        response = self.control.get("/_sandbox/received")
        response.raise_for_status()
        result: dict[str, list[dict[str, Any]]] = response.json()["received"]
        return result

    def reset(self) -> None:
        self.control.post("/_sandbox/reset", json={}).raise_for_status()

    def cpu_seconds(self) -> float:
        return _proc_cpu(self.proc.pid)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        with contextlib.suppress(Exception):
            self.control.close()


# --------------------------------------------------------------------------- stores


def _poll(store: Store, items: tuple[Item, ...], when: datetime) -> None:
    source = store.get_source("blog")
    outcome = PollOutcome(
        source_id=source.id,
        url=source.url,
        started_at=when,
        duration=0.01,
        outcome="ok",
        status=200,
        items=items,
    )
    store.record_polls([outcome], now=when)


NEW_ITEM = Item(
    key="post-1",
    title="Spring collection: what is new this week",
    url="https://blog.example/posts/spring-collection",
    summary="<p>Twelve new pieces, two restocked classics &amp; a preview of the summer range.</p>",
    published=T0 + timedelta(hours=1),
)


def make_template(path: Path, api_url: str, subscribers: int) -> dict[str, float]:
    """A store ready to send: a source whose one new item waits for the automation ``news``
    (layout single, 1 item), a telegram channel on the emulator and ``subscribers``
    private chats "1".."N". Returns timings of the setup (not part of any figure)."""
    store = Store(path)
    store.add_source("blog", "https://blog.example/feed.xml")
    _poll(store, (Item(key="old", title="Old post", url="https://blog.example/old"),), T0)
    store.add_channel(CHANNEL, "telegram", {"token": "env:SANDBOX_TELEGRAM_TOKEN", "api_url": api_url})
    people = [NewSubscriber(str(i)) for i in range(1, subscribers + 1)]
    t0 = time.perf_counter()
    store.add_subscribers(CHANNEL, people)
    add_s = time.perf_counter() - t0
    store.add_automation(
        AUTOMATION,
        channel=CHANNEL,
        sources=["blog"],
        layout="single",
        max_items=1,
        since=T0 + timedelta(minutes=1),
    )
    _poll(store, (NEW_ITEM,), T0 + timedelta(hours=1))
    return {"add_subscribers_s": add_s}


def fresh_copy(template: Path, dest: Path) -> Path:
    for suffix in ("", ".wal"):
        Path(str(dest) + suffix).unlink(missing_ok=True)
    assert not Path(str(template) + ".wal").exists(), "template DB was not checkpointed"
    shutil.copyfile(template, dest)
    return dest


def campaign_payload(template: Path, workdir: Path, environ: dict[str, str]) -> dict[str, Any]:
    """The sendMessage body feedcast builds for the item (for the baseline), from a scratch copy."""
    store = Store(fresh_copy(template, workdir / "payload.duckdb"))
    built = build_campaign(store, store.get_automation(AUTOMATION), environ=environ)
    assert built.campaign_id is not None, built.reason
    calls = store.campaign_calls(built.campaign_id)
    assert len(calls) == 1 and calls[0][1].method == "sendMessage", calls
    return {"method": calls[0][1].method, "body": dict(calls[0][1].body)}


# --------------------------------------------------------------------------- checks


class Checks:
    """Correctness checks always decide the exit status; the pacing targets (no 429, no
    over-limit second) do in a full run, and are only reported by --quick, a smoke test
    on machines of unknown noise (the test suite checks pacing on its own)."""

    def __init__(self, *, strict_targets: bool = True) -> None:
        self.results: list[dict[str, Any]] = []
        self.strict_targets = strict_targets

    def check(self, name: str, ok: bool, detail: str, *, target: bool = False) -> bool:
        self.results.append({"check": name, "ok": bool(ok), "detail": detail, "target": target})
        if not ok:
            kind = "TARGET MISSED" if target and not self.strict_targets else "CHECK FAILED"
            print(f"  {kind}: {name}: {detail}", file=sys.stderr, flush=True)
        return bool(ok)

    @property
    def ok(self) -> bool:
        return all(r["ok"] for r in self.results if self.strict_targets or not r["target"])


def check_db(checks: Checks, store: Store, campaign_id: int, n: int, label: str) -> dict[str, int]:
    """Every delivery of the campaign sent exactly once, according to DuckDB."""
    with store.connect(read_only=True) as con:
        row = con.execute(
            "SELECT count(*), count(DISTINCT subscriber_id), count(*) FILTER (WHERE status = 'sent'),"
            " count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'failed'),"
            " count(*) FILTER (WHERE status = 'skipped'),"
            " count(*) FILTER (WHERE status = 'sent' AND provider_message_id IS NOT NULL AND sent_at IS NOT NULL"
            "  AND calls_sent = 1),"
            " (SELECT count(*) FROM subscribers)"
            " FROM deliveries WHERE campaign_id = ?",
            [campaign_id],
        ).fetchone()
    assert row is not None
    got = dict(
        zip(
            ("rows", "subscribers", "sent", "pending", "failed", "skipped", "complete", "all_subscribers"),
            (int(v) for v in row),
            strict=True,
        )
    )
    checks.check(
        f"{label}: DuckDB every delivery sent once",
        got["rows"] == n
        and got["subscribers"] == n
        and got["sent"] == n
        and got["complete"] == n
        and got["all_subscribers"] == n,
        f"{got} (expected {n} rows, {n} distinct subscribers, all sent with a message id)",
    )
    return got


def check_emulator(checks: Checks, sandbox: Sandbox, n: int, label: str) -> dict[str, Any]:
    """The emulator accepted exactly n messages, exactly one in each chat 1..n."""
    stats = sandbox.stats(chats=True)
    chats = stats.get("chats", {})
    wanted = {str(i) for i in range(1, n + 1)}
    one = {c for c, s in chats.items() if s["accepted"] == 1}
    extra = {c: s["accepted"] for c, s in chats.items() if s["accepted"] != 1 and s["accepted"]}
    checks.check(
        f"{label}: emulator accepted exactly N, one per chat",
        stats["accepted"] == n and one == wanted and not extra,
        f"accepted {stats['accepted']} of {n}; chats with exactly one message {len(one & wanted)} of {n}; "
        f"chats with another count {dict(list(extra.items())[:5])}; missing {sorted(wanted - one)[:5]}",
    )
    return {k: v for k, v in stats.items() if k not in ("chats", "bots")}


# --------------------------------------------------------------------------- feedcast runs


@dataclass
class SendRun:
    label: str
    n: int
    max_in_flight: int
    max_unrecorded: int
    flush_interval: float
    limits: bool
    build_s: float = 0.0
    deliver_s: float = 0.0  # from the built campaign to the end of deliver()
    engine_s: float = 0.0  # CampaignResult.duration (the engine's event loop)
    cpu_s: float = 0.0  # this process, all threads, during the delivery
    emulator_cpu_s: float = 0.0
    sent: int = 0
    engine_rate: float = 0.0
    waited_s: float = 0.0
    pauses: int = 0
    db: dict[str, int] = field(default_factory=dict)
    emulator: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.sent / self.deliver_s if self.deliver_s else 0.0


def send_once(
    store: Store, sandbox: Sandbox, settings: SendSettings, label: str, n: int
) -> tuple[SendRun, int | None]:
    """send_automation on a fresh copy of the template: build the campaign, deliver it."""
    run = SendRun(
        label,
        n,
        settings.max_in_flight or 0,
        settings.max_unrecorded,
        settings.flush_interval,
        settings.limits,
    )
    marks: dict[str, float] = {}

    def built(result: BuildResult) -> None:
        marks["built"] = time.perf_counter()
        marks["cpu"] = time.process_time()
        marks["emu"] = sandbox.cpu_seconds()
        if result.campaign_id is None:
            log(f"{label}: no campaign: {result.reason}")

    gc.collect()
    t0 = time.perf_counter()
    try:
        results = send_automation(store, AUTOMATION, settings=settings, environ=sandbox.env, on_build=built)
    except Exception as exc:  # recorded as a failed check; the benchmark goes on
        run.extra["error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        run.extra["error_after_s"] = time.perf_counter() - marks.get("built", t0)
        log(f"{label}: send_automation raised after {run.extra['error_after_s']:.1f} s: {run.extra['error']}")
        return run, None
    end, cpu_end, emu_end = time.perf_counter(), time.process_time(), sandbox.cpu_seconds()
    if not results:
        return run, None
    result = results[-1]
    run.build_s = marks["built"] - t0
    run.deliver_s = end - marks["built"]
    run.engine_s = result.duration
    run.cpu_s = cpu_end - marks["cpu"]
    run.emulator_cpu_s = emu_end - marks["emu"]
    run.sent = result.campaign.sent
    run.engine_rate = result.rate
    run.waited_s = result.waited
    run.pauses = result.pauses
    run.extra["campaign_status"] = result.campaign.status
    run.extra["loadavg_1min_after"] = round(os.getloadavg()[0], 2)
    return run, result.campaign.id


def feedcast_run(
    checks: Checks,
    template: Path,
    workdir: Path,
    sandbox: Sandbox,
    settings: SendSettings,
    label: str,
    n: int,
    store_cls: type[Store] = Store,
) -> SendRun:
    sandbox.reset()
    db = fresh_copy(template, workdir / f"{label.replace(' ', '_').replace('=', '')}.duckdb")
    store = store_cls(db)
    run, campaign_id = send_once(store, sandbox, settings, label, n)
    if "error" in run.extra:
        # what the failure left behind: outcomes written vs messages the provider accepted
        with store.connect(read_only=True) as con:
            rows = dict(con.execute("SELECT status, count(*) FROM deliveries GROUP BY status").fetchall())
        accepted = sandbox.stats()["accepted"]
        run.extra["left"] = {"deliveries": rows, "emulator_accepted": accepted}
        checks.check(
            f"{label}: send_automation completed",
            False,
            f"raised after {run.extra['error_after_s']:.1f} s: {run.extra['error']}; DuckDB deliveries {rows}, "
            f"emulator accepted {accepted} (accepted but not recorded as sent: "
            f"{accepted - rows.get('sent', 0)}, which a resume would send again)",
        )
        return run
    if campaign_id is None:
        checks.check(f"{label}: a campaign was sent", False, "send_automation built no campaign")
        return run
    checks.check(
        f"{label}: campaign status",
        run.extra["campaign_status"] == "sent",
        f"campaign {campaign_id} is {run.extra['campaign_status']!r}",
    )
    run.db = check_db(checks, store, campaign_id, n, label)
    run.emulator = check_emulator(checks, sandbox, n, label)
    with contextlib.suppress(OSError):
        db.unlink()
    return run


# --------------------------------------------------------------------------- the baseline


@dataclass
class BaseRun:
    concurrency: int
    n: int
    client: str  # "bare" (one httpx pool) or "sharded" (feedcast's sending client)
    wall_s: float = 0.0
    cpu_s: float = 0.0
    emulator_cpu_s: float = 0.0
    ok: int = 0
    loadavg_1min_after: float = 0.0
    emulator: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.n / self.wall_s if self.wall_s else 0.0


def baseline(
    sandbox: Sandbox, payload: dict[str, Any], n: int, concurrency: int, client_kind: str = "bare"
) -> BaseRun:
    """Post the same sendMessage body to chats 1..n, ``concurrency`` at a time (a semaphore),
    nothing recorded. ``bare``: one ``httpx.AsyncClient`` with a pool of as many connections;
    ``sharded``: ``channels.http.sending_client``, the client feedcast's engine sends with
    (small pools; httpcore's pool slows down with many connections)."""
    url = f"{sandbox.url}/bot{sandbox.token}/{payload['method']}"
    body = payload["body"]

    async def main() -> int:
        semaphore = asyncio.Semaphore(concurrency)
        size = max(concurrency, 4)
        if client_kind == "sharded":
            client = sending_client(size, timeout=30.0)
        else:
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(30.0, connect=10.0),
                limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
                trust_env=False,
            )

        async def one(chat: int) -> int:
            async with semaphore:
                response = await client.post(url, json={**body, "chat_id": chat})
                return response.status_code

        async with client:
            codes = await asyncio.gather(*(one(i) for i in range(1, n + 1)))
        return sum(code == 200 for code in codes)

    run = BaseRun(concurrency, n, client_kind)
    sandbox.reset()
    gc.collect()
    emu0, cpu0, t0 = sandbox.cpu_seconds(), time.process_time(), time.perf_counter()
    run.ok = asyncio.run(main())
    run.wall_s = time.perf_counter() - t0
    run.cpu_s = time.process_time() - cpu0
    run.emulator_cpu_s = sandbox.cpu_seconds() - emu0
    run.loadavg_1min_after = round(os.getloadavg()[0], 2)
    return run


def baseline_run(
    checks: Checks,
    sandbox: Sandbox,
    payload: dict[str, Any],
    n: int,
    concurrency: int,
    client_kind: str = "bare",
) -> BaseRun:
    run = baseline(sandbox, payload, n, concurrency, client_kind)
    label = f"baseline ({client_kind}) c={concurrency}"
    checks.check(f"{label}: answers 200", run.ok == n, f"{run.ok} of {n} answered 200")
    run.emulator = check_emulator(checks, sandbox, n, label)
    return run


# --------------------------------------------------------------------------- paced extras


def window_max(times: Sequence[float], period: float = 1.0) -> int:
    """Most timestamps in any sliding window of ``period`` seconds."""
    ordered = sorted(times)
    best = start = 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= period:
            start += 1
        best = max(best, end - start + 1)
    return best


def paced_extras(sandbox: Sandbox) -> dict[str, Any]:
    """What the emulator saw: the span from the first to the last accepted message."""
    times = [m["time"] for msgs in sandbox.received().values() for m in msgs]
    if len(times) < 2:
        return {"accepted_times": len(times)}
    times.sort()
    span = times[-1] - times[0]
    limit = TELEGRAM_PER_SECOND
    spans = [times[i + limit] - times[i] for i in range(len(times) - limit)]
    return {
        "accepted_times": len(times),
        "span_s": span,
        "rate_seen": (len(times) - 1) / span if span > 0 else float("nan"),
        "max_accepted_in_1s": window_max(times),
        # 31 accepted messages closer than 1 s apart would be over Telegram's limit
        f"min_span_of_{limit + 1}_accepted_s": min(spans) if spans else float("nan"),
        "min_gap_ms": 1000 * min(b - a for a, b in itertools.pairwise(times)),
    }


# --------------------------------------------------------------------------- profile


class ProfiledStore(Store):
    """A Store whose calls from the engine's worker threads (asyncio.to_thread) are profiled
    and timed apart: cProfile only sees the thread that enabled it. The engine holds a lock
    around them, so one profiler object is never enabled twice at once."""

    db_profile: cProfile.Profile
    db_seconds: dict[str, float]
    db_calls: dict[str, int]

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.db_profile = cProfile.Profile()
        self.db_seconds = {}
        self.db_calls = {}

    def _timed(self, name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        self.db_profile.enable()
        try:
            return fn()
        finally:
            self.db_profile.disable()
            self.db_seconds[name] = self.db_seconds.get(name, 0.0) + time.perf_counter() - t0
            self.db_calls[name] = self.db_calls.get(name, 0) + 1

    def record_deliveries(self, updates, *, now=None):  # type: ignore[no-untyped-def]
        return self._timed(
            "record_deliveries", lambda: super(ProfiledStore, self).record_deliveries(updates, now=now)
        )

    def pending_deliveries(self, campaign_id, *, after_id=0, limit=1000):  # type: ignore[no-untyped-def]
        return self._timed(
            "pending_deliveries",
            lambda: super(ProfiledStore, self).pending_deliveries(
                campaign_id, after_id=after_id, limit=limit
            ),
        )

    def campaign_calls(self, campaign_id):  # type: ignore[no-untyped-def]
        return self._timed("campaign_calls", lambda: super(ProfiledStore, self).campaign_calls(campaign_id))


# (label, path suffix, function): cumulative time of these entry points splits the run. For
# coroutines cProfile counts each resumption as a call, so their cumtime is time spent
# running them (CPU), not time spent suspended in an await.
_PHASES = (
    ("build_campaign (render, payloads, create_campaign)", "feedcast/delivery.py", "build_campaign"),
    ("event loop waiting in epoll (idle: nothing ready)", "~", "<method 'poll' of 'select.epoll' objects>"),
    ("_attempt (per delivery: gate, send, outcome)", "feedcast/delivery.py", "_attempt"),
    ("  RateGate.acquire (limits off: a pause check)", "channels/ratelimit.py", "acquire"),
    ("  TelegramChannel.send (httpx post + classify)", "channels/telegram.py", "send"),
    ("    httpx AsyncClient.post", "httpx/_client.py", "post"),
    (
        "      ShardedTransport.handle_async_request (one of the small pools)",
        "channels/http.py",
        "handle_async_request",
    ),
    (
        "      httpcore pool bookkeeping (_assign_requests_to_connections)",
        "httpcore/_async/connection_pool.py",
        "_assign_requests_to_connections",
    ),
    (
        "        of which connection has_expired (socket readable? per idle conn)",
        "httpcore/_async/connection.py",
        "has_expired",
    ),
    (
        "      HTTP/1.1 request (h11, socket writes and reads)",
        "httpcore/_async/http11.py",
        "handle_async_request",
    ),
    ("    response.json + classify (_classify)", "channels/telegram.py", "_classify"),
    ("  _recipient (Recipient per delivery)", "feedcast/delivery.py", "_recipient"),
    ("_finish + _flush on the loop (buffer, slot release)", "feedcast/delivery.py", "_flush"),
    ("asyncio.to_thread hand-offs (DB calls, waiting excluded)", "asyncio/threads.py", "to_thread"),
)
_DB_PHASES = (
    ("record_deliveries (outcomes -> DuckDB)", "feedcast/store/campaigns.py", "record_deliveries"),
    ("  connect / transaction (open, SET, COMMIT, close)", "feedcast/store/database.py", "transaction"),
    ("pending_deliveries (chunks of 2,000)", "feedcast/store/campaigns.py", "pending_deliveries"),
    ("campaign_calls", "feedcast/store/campaigns.py", "campaign_calls"),
)


def _label(key: tuple[str, int, str]) -> str:
    filename, line, func = key
    if filename == "~":
        return func
    for prefix in (str(ROOT) + "/", *(p + "/" for p in sorted(sys.path, key=len, reverse=True) if p)):
        if filename.startswith(prefix):
            filename = filename[len(prefix) :]
            break
    filename = filename.replace(".venv/lib/python3.11/site-packages/", "")
    return f"{filename}:{line}({func})"


def profile_summary(
    stats: pstats.Stats, phases: Sequence[tuple[str, str, str]], top: int = 12
) -> dict[str, Any]:
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())

    def rows(index: int) -> list[dict[str, Any]]:
        picked = []
        for key, v in sorted(raw.items(), key=lambda kv: kv[1][index], reverse=True):
            if key[0] == __file__ or "_lsprof" in key[0] or "disable' of '_lsprof" in key[2]:
                continue
            if key[2] in ("<built-in method builtins.exec>", "<built-in method _asyncio._enter_task>"):
                continue
            calls = str(v[1]) if v[0] == v[1] else f"{v[1]}/{v[0]}"
            picked.append(
                {
                    "function": _label(key),
                    "ncalls": calls,
                    "tottime": round(v[2], 3),
                    "cumtime": round(v[3], 3),
                }
            )
            if len(picked) == top:
                break
        return picked

    found: dict[str, float] = {}
    for name, suffix, function in phases:
        if suffix == "~":
            value = sum(v[2] for (path, _l, fn), v in raw.items() if path == "~" and fn == function)
        else:
            value = max(
                (v[3] for (path, _l, fn), v in raw.items() if path.endswith(suffix) and fn == function),
                default=0.0,
            )
        found[name] = round(value, 3)
    return {"total_s": round(total, 3), "phases": found, "top_cumulative": rows(3), "top_tottime": rows(2)}


def run_profile(
    checks: Checks,
    template: Path,
    workdir: Path,
    sandbox: Sandbox,
    settings: SendSettings,
    n: int,
    out: Path,
) -> dict[str, Any]:
    """One more unpaced send at ``settings`` under cProfile (main thread + DB worker calls)."""
    sandbox.reset()
    store = ProfiledStore(fresh_copy(template, workdir / "profile.duckdb"))
    profiler = cProfile.Profile()
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    profiler.enable()
    results = send_automation(store, AUTOMATION, settings=settings, environ=sandbox.env)
    profiler.disable()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    sent = results[-1].campaign.sent if results else 0
    if results:
        check_db(checks, store, results[-1].campaign.id, n, "profiled run")
    out.parent.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(f"{out}.main.prof")
    store.db_profile.dump_stats(f"{out}.db.prof")
    text = io.StringIO()
    text.write(f"######## profiled unpaced send: {n} deliveries, max_in_flight {settings.max_in_flight}\n")
    text.write("######## main thread (event loop) ########\n")
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(50)
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(40)
    text.write("\n\n######## DuckDB calls made in worker threads ########\n")
    pstats.Stats(store.db_profile, stream=text).sort_stats("cumulative").print_stats(30)
    Path(f"{out}.txt").write_text(text.getvalue(), encoding="utf-8")
    return {
        "max_in_flight": settings.max_in_flight,
        "flush_interval": settings.flush_interval,
        "max_unrecorded": settings.max_unrecorded,
        "n": n,
        "sent": sent,
        "wall_s_profiled": round(wall, 3),
        "cpu_s_profiled": round(cpu, 3),
        "db_seconds": {k: round(v, 3) for k, v in store.db_seconds.items()},
        "db_calls": store.db_calls,
        "main_thread": profile_summary(pstats.Stats(profiler), _PHASES),
        "db_thread": profile_summary(pstats.Stats(store.db_profile), _DB_PHASES, top=8),
        "files": [shown(Path(f"{out}.txt")), shown(Path(f"{out}.main.prof")), shown(Path(f"{out}.db.prof"))],
    }


# --------------------------------------------------------------------------- recording (child process)


def child_recording(rows: int, repeat: int) -> None:
    """Runs in a fresh interpreter: add_subscribers, create_campaign and record_deliveries
    of ``rows`` rows, ``repeat`` times on fresh DuckDB files; prints one JSON line."""
    rss_start = _rss_mb()
    runs: list[dict[str, Any]] = []
    workdir = Path(tempfile.mkdtemp(prefix="feedcast-bench-send-rec-"))
    try:
        for rep in range(repeat):
            db = workdir / f"rec-{rep}.duckdb"
            store = Store(db)
            store.add_source("blog", "https://blog.example/feed.xml")
            _poll(store, (Item(key="old", title="Old post", url="https://blog.example/old"),), T0)
            store.add_channel(
                CHANNEL, "telegram", {"token": "env:SANDBOX_TELEGRAM_TOKEN", "api_url": "http://127.0.0.1:9"}
            )
            store.add_automation(
                AUTOMATION,
                channel=CHANNEL,
                sources=["blog"],
                layout="single",
                max_items=1,
                since=T0 + timedelta(minutes=1),
            )
            _poll(store, (NEW_ITEM,), T0 + timedelta(hours=1))
            automation = store.get_automation(AUTOMATION)
            channel = store.get_channel(CHANNEL)
            queued, _waiting = store.queued_items(automation, 1)
            calls = [
                (
                    0,
                    ProviderCall(
                        method="sendMessage",
                        body={"text": f"<b>{NEW_ITEM.title}</b>\n{NEW_ITEM.url}", "parse_mode": "HTML"},
                    ),
                )
            ]
            people = [NewSubscriber(str(i)) for i in range(1, rows + 1)]
            run: dict[str, Any] = {}
            gc.collect()
            t0 = time.perf_counter()
            added = store.add_subscribers(CHANNEL, people)
            run["add_subscribers_s"] = time.perf_counter() - t0
            run["rss_after_add_subscribers_mb"] = _rss_mb()
            del people
            gc.collect()
            t0 = time.perf_counter()
            campaign_id = store.create_campaign(
                automation=automation,
                channel=channel,
                layout="single",
                fmt="telegram",
                items=queued,
                calls=calls,
                messages=1,
            )
            run["create_campaign_s"] = time.perf_counter() - t0
            run["rss_after_create_campaign_mb"] = _rss_mb()
            assert campaign_id is not None
            with store.connect(read_only=True) as con:
                ids = con.execute(
                    "SELECT id, subscriber_id FROM deliveries WHERE campaign_id = ? AND status = 'pending'",
                    [campaign_id],
                ).fetchall()
            now = datetime.now(UTC)
            t0 = time.perf_counter()
            updates = [
                DeliveryUpdate(
                    id=did,
                    status="sent",
                    attempts=1,
                    provider_message_id=str(i + 1),
                    sent_at=now,
                    calls_sent=1,
                    subscriber_id=sid,
                )
                for i, (did, sid) in enumerate(ids)
            ]
            run["build_updates_s"] = time.perf_counter() - t0
            gc.collect()
            t0 = time.perf_counter()
            store.record_deliveries(updates)
            run["record_deliveries_s"] = time.perf_counter() - t0
            run["rss_after_record_deliveries_mb"] = _rss_mb()
            with store.connect(read_only=True) as con:
                row = con.execute(
                    "SELECT count(*) FILTER (WHERE status = 'sent'), count(*) FILTER (WHERE status = 'pending'),"
                    " count(DISTINCT subscriber_id) FROM deliveries WHERE campaign_id = ?",
                    [campaign_id],
                ).fetchone()
            assert row is not None
            run.update(
                added=added["added"],
                pending_created=len(ids),
                sent_after=int(row[0]),
                pending_after=int(row[1]),
                distinct_subscribers=int(row[2]),
                db_mb=db.stat().st_size / 2**20,
            )
            runs.append(run)
            del updates, ids
            for suffix in ("", ".wal"):
                Path(str(db) + suffix).unlink(missing_ok=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = {
        "rows": rows,
        "repeat": repeat,
        "runs": runs,
        "rss_after_imports_mb": rss_start,
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "vmhwm_mb": _rss_mb("VmHWM"),
    }
    print("CHILD-RESULT " + json.dumps(result), flush=True)


def run_recording(rows: int, repeat: int) -> dict[str, Any]:
    return run_child(
        str(Path(__file__).resolve()), ["--child-recording", str(rows), "--repeat", str(repeat)], "recording"
    )


# --------------------------------------------------------------------------- reporting


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def shown(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _failure_rows(p: dict[str, Any]) -> list[str]:
    return [
        f"| **{f['label']}: send_automation raised after {f['extra']['error_after_s']:.0f} s** "
        f"| `{f['extra']['error'][:160]}`; left in DuckDB {f['extra'].get('left', {}).get('deliveries')}, "
        f"emulator accepted {f['extra'].get('left', {}).get('emulator_accepted')} | completes | FAIL |"
        for f in p.get("failed_runs", [])
    ]


def paced_table(p: dict[str, Any]) -> str:
    if "rate" not in p:
        head = ["| (1) paced, limits on | figure | target | verdict |", "|---|---|---|---|"]
        return "\n".join(head + _failure_rows(p))
    emu, extra = p["emulator"], p["extra"]
    share = p["rate"] / TELEGRAM_PER_SECOND
    clean = (
        emu["rate_limited"] == 0 and emu["over_limit"] == 0 and emu["max_per_second"] <= TELEGRAM_PER_SECOND
    )
    db = p["db"]
    lines = [
        "| (1) paced, limits on | figure | target | verdict |",
        "|---|---|---|---|",
        f"| campaign | {p['n']:,} subscribers, 1 sendMessage each; built in {p['build_s']:.2f} s, "
        f"delivered in {p['deliver_s']:.1f} s | | |",
        f"| **achieved rate** (sent / delivery wall time) | **{p['rate']:.2f}/s = {share:.1%} of "
        f"{TELEGRAM_PER_SECOND}/s** | >= {TARGET_PACED_SHARE:.0%} | {verdict(share >= TARGET_PACED_SHARE)} |",
        f"| ... the engine's own figure (CampaignResult.rate, event loop time {p['engine_s']:.1f} s) "
        f"| {p['engine_rate']:.2f}/s = {p['engine_rate'] / TELEGRAM_PER_SECOND:.1%} | | |",
        f"| ... as the emulator saw it (first to last accepted message, {extra.get('span_s', 0):.1f} s) "
        f"| {extra.get('rate_seen', 0):.2f}/s = {extra.get('rate_seen', 0) / TELEGRAM_PER_SECOND:.1%} | | |",
        f"| emulator: 429s / over-limit arrivals / most requests in a sliding second "
        f"(accepted only, from the received log) | {emu['rate_limited']} / {emu['over_limit']} / "
        f"{emu['max_per_second']} ({extra.get('max_accepted_in_1s', '?')}) | 0 / 0 / <= {TELEGRAM_PER_SECOND} "
        f"| {verdict(clean)} |",
        f"| exactly once: DuckDB rows / sent / distinct subscribers / pending / failed; emulator accepted "
        f"| {db.get('rows', 0):,} / {db.get('sent', 0):,} / {db.get('subscribers', 0):,} / "
        f"{db.get('pending', 0)} / {db.get('failed', 0)}; {emu['accepted']:,} | all {p['n']:,}, 0 / 0 "
        f"| {verdict(p['exactly_once'])} |",
        f"| arrivals at the emulator: shortest span of {TELEGRAM_PER_SECOND + 1} consecutive accepted messages "
        f"(< 1 s would be over the limit) / shortest gap | "
        f"{extra.get(f'min_span_of_{TELEGRAM_PER_SECOND + 1}_accepted_s', float('nan')):.3f} s / "
        f"{extra.get('min_gap_ms', float('nan')):.1f} ms | | |",
        f"| time spent waiting in the rate gate, summed over every waiting delivery / channel pauses (429s) | {p['waited_s']:.0f} s / "
        f"{p['pauses']} | | |",
        f"| client CPU during the delivery / emulator CPU | {p['cpu_s']:.1f} s / {p['emulator_cpu_s']:.1f} s | | |",
        *_failure_rows(p),
    ]
    return "\n".join(lines)


def unpaced_table(u: dict[str, Any]) -> str:
    lines = [
        "| (2) unpaced, limits off | max_in_flight | feedcast deliveries/s (DuckDB included) | baseline A: bare "
        "httpx, one pool, req/s | baseline B: feedcast's sending client alone, req/s | B / feedcast (overhead) "
        "| A / feedcast | feedcast: delivery s (build s) / client CPU s | A / B: s, client CPU s "
        "| emulator CPU s (feedcast / A / B) | target >= 1,000/s |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|---|---|",
    ]

    def ratio(base: dict[str, Any], f: dict[str, Any]) -> str:
        return f"{base['rate'] / f['rate']:.2f}x" if f["rate"] else "inf"

    for row in u["rows"]:
        f, a, b = row["feedcast"], row["baseline"], row["sharded"]
        lines.append(
            f"| feedcast vs baselines | {row['max_in_flight']} | **{f['rate']:,.0f}** | {a['rate']:,.0f} | "
            f"{b['rate']:,.0f} | {ratio(b, f)} | {ratio(a, f)} | {f['deliver_s']:.1f} ({f['build_s']:.2f}) / "
            f"{f['cpu_s']:.1f} | {a['wall_s']:.1f}, {a['cpu_s']:.1f} / {b['wall_s']:.1f}, {b['cpu_s']:.1f} | "
            f"{f['emulator_cpu_s']:.1f} / {a['emulator_cpu_s']:.1f} / {b['emulator_cpu_s']:.1f} "
            f"| {verdict(f['rate'] >= TARGET_UNPACED)} |"
        )
    for d in u.get("diagnostics", []):
        lines.append(
            f"| diagnostic: max_unrecorded {d['max_unrecorded']} (default {SendSettings().max_unrecorded}) "
            f"| {d['max_in_flight']} | {d['rate']:,.0f} | | | | | {d['deliver_s']:.1f} ({d['build_s']:.2f}) / "
            f"{d['cpu_s']:.1f} | | {d['emulator_cpu_s']:.1f} / / | |"
        )
    for sc in u.get("scale", []):
        lines.append(
            f"| for scale: baseline A alone | {sc['concurrency']} | | {sc['rate']:,.0f} | | | | | "
            f"{sc['wall_s']:.1f}, {sc['cpu_s']:.1f} / | / {sc['emulator_cpu_s']:.1f} / | |"
        )
    best = u["best"]
    lines.append(
        f"| **best feedcast setting** | **{best['max_in_flight']}** | **{best['rate']:,.0f}** | | | | | | | | "
        f"**{verdict(best['rate'] >= TARGET_UNPACED)}** |"
    )
    return "\n".join(lines)


def recording_table(r: dict[str, Any]) -> str:
    runs = r["runs"]
    n = r["rows"]

    def cell(key: str) -> tuple[float, str]:
        values = [x[key] for x in runs]
        return statistics.median(values), " / ".join(f"{v:.3f}" for v in values)

    lines = [
        f"| (3) recording, {n:,} rows, fresh DuckDB file each time | median s | runs (s) | rows/s | target "
        "| verdict |",
        "|---|---:|---|---:|---|---|",
    ]
    for key, what, target in (
        ("add_subscribers_s", f"`Store.add_subscribers` of {n:,} new subscribers (one call)", None),
        ("create_campaign_s", f"`Store.create_campaign`: campaign + {n:,} pending deliveries", None),
        ("build_updates_s", f"(not in the target) building {n:,} `DeliveryUpdate` objects in Python", None),
        (
            "record_deliveries_s",
            f"`Store.record_deliveries` of {n:,} `DeliveryUpdate` rows (one call)",
            TARGET_RECORD_S,
        ),
    ):
        med, all_runs = cell(key)
        target_cell = f"< {target:g} s" if target is not None else ""
        judged = verdict(med < target) if target is not None else ""
        bold = "**" if target is not None else ""
        lines.append(
            f"| {what} | {bold}{med:.3f}{bold} | {all_runs} | {n / med:,.0f} | {target_cell} | {judged} |"
        )
    last = runs[-1]
    lines.append(
        f"| peak RSS of the child process (VmHWM; getrusage ru_maxrss {r['ru_maxrss_mb']:.0f} MB also counts the "
        f"parent it was forked from) | {r['vmhwm_mb']:.0f} MB "
        f"| after imports {r['rss_after_imports_mb']:.0f} MB; last run after add / create / record "
        f"{last['rss_after_add_subscribers_mb']:.0f} / {last['rss_after_create_campaign_mb']:.0f} / "
        f"{last['rss_after_record_deliveries_mb']:.0f} MB; DB file {last['db_mb']:.0f} MB | | | |"
    )
    return "\n".join(lines)


def profile_lines(prof: dict[str, Any]) -> list[str]:
    main, db = prof["main_thread"], prof["db_thread"]
    out = [
        f"Profile (cProfile) of one more unpaced send at max_in_flight {prof['max_in_flight']}: "
        f"{prof['sent']:,} deliveries in {prof['wall_s_profiled']:.1f} s profiled wall time, "
        f"{prof['cpu_s_profiled']:.1f} s CPU; the profiler inflates Python-heavy code, compare the figures "
        "with each other. Cumulative time of these entry points (coroutines: time running, not suspended):",
        "",
        "| phase | s | share of main-thread time |",
        "|---|---:|---:|",
        f"| **main thread (event loop): total** | **{main['total_s']:.2f}** | 100 % |",
    ]
    total = main["total_s"] or 1.0
    out += [
        f"| {k.replace('  ', '&nbsp;&nbsp;')} | {v:.2f} | {v / total:.0%} |"
        for k, v in main["phases"].items()
    ]
    out.append(f"| **DuckDB calls in worker threads: total** | **{db['total_s']:.2f}** | |")
    out += [f"| {k.replace('  ', '&nbsp;&nbsp;')} | {v:.2f} | |" for k, v in db["phases"].items()]
    calls = ", ".join(
        f"{k} {prof['db_calls'][k]} calls, {v:.2f} s ({1000 * v / prof['db_calls'][k]:.1f} ms per call)"
        for k, v in prof["db_seconds"].items()
    )
    out += ["", f"DuckDB calls, wall time in the worker threads: {calls}.", ""]
    for title, key in (("cumulative", "top_cumulative"), ("self time", "top_tottime")):
        out += [
            f"Top {len(main[key])} {title}, main thread:",
            "",
            "| cumtime s | tottime s | calls | function |",
            "|---:|---:|---:|---|",
        ]
        out += [
            f"| {r['cumtime']:.2f} | {r['tottime']:.2f} | {r['ncalls']} | `{r['function']}` |"
            for r in main[key]
        ]
        out.append("")
    out += ["Reports: " + ", ".join(f"`{f}`" for f in prof["files"]), ""]
    return out


def readme_entry(res: dict[str, Any]) -> str:
    m, cfg = res["machine"], res["config"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    out = [
        f"### send — {res['date']}",
        "",
        f"- machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['ram_gb']} GB RAM, Python {m['python']}, "
        f"{m['os']}; load average before the run {' / '.join(map(str, m['loadavg_before']))}",
        f"- code: commit {m['commit']} (+ working tree); {versions}",
        f"- command: `{res['command']}`; {res['elapsed_s']:.0f} s in all",
        f"- paced: {cfg['paced']:,} subscribers; unpaced: {cfg['unpaced']:,} subscribers, max_in_flight "
        f"{', '.join(map(str, cfg['in_flight']))}, one run each; recording: {cfg['record_rows']:,} rows, "
        f"median of {cfg['record_repeat']}",
        f"- checks: {'all passed' if res['checks_ok'] else 'SOME FAILED'} "
        f"({sum(c['ok'] for c in res['checks'])}/{len(res['checks'])})",
        "",
    ]
    if "paced" in res:
        out += [paced_table(res["paced"]), ""]
    if "unpaced" in res:
        out += [unpaced_table(res["unpaced"]), ""]
    if "recording" in res:
        out += [recording_table(res["recording"]), ""]
    if res.get("profile"):
        out += profile_lines(res["profile"])
    out.append(f"Everything measured: `{res['json']}`.")
    out.append("")
    return "\n".join(out)


def append_readme(entry: str) -> Path:
    return _append_readme(README_SECTION, entry)


# --------------------------------------------------------------------------- main


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke test: 300 paced, 2,000 unpaced, 10,000 rows")
    p.add_argument(
        "--paced", type=int, default=None, help="subscribers of the paced run (10000; quick 300; 0 skips)"
    )
    p.add_argument(
        "--unpaced",
        type=int,
        default=None,
        help="subscribers of the unpaced runs (10000; quick 2000; 0 skips)",
    )
    p.add_argument(
        "--in-flight",
        type=_ints,
        default=None,
        help="max_in_flight values of the unpaced runs, comma-separated (16,32,64,128; quick 16,64)",
    )
    p.add_argument(
        "--scale",
        type=_ints,
        default=None,
        help="extra baseline-only concurrencies, for scale (4,8; quick none)",
    )
    p.add_argument(
        "--unrecorded",
        type=_ints,
        default=None,
        help="also run feedcast at the best max_in_flight with these max_unrecorded windows "
        "(128,2048; quick: none)",
    )
    p.add_argument(
        "--record-rows", type=int, default=None, help="rows of the recording part (100000; quick 10000)"
    )
    p.add_argument("--repeat", type=int, default=3, help="repetitions of the recording part (median)")
    p.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="profile one unpaced run when below the target (default: on, off with --quick)",
    )
    p.add_argument(
        "--profile-always", action="store_true", help="profile one unpaced run even when the target is met"
    )
    p.add_argument(
        "--readme",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="append the results to bench/README.md (default: on, off with --quick)",
    )
    p.add_argument("--out", type=Path, default=BENCH / "results", help="where the JSON goes")
    p.add_argument("--child-recording", type=int, metavar="ROWS", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    full = not args.quick
    defaults = {
        "paced": (10000, 300),
        "unpaced": (10000, 2000),
        "in_flight": ([16, 32, 64, 128], [16, 64]),
        "scale": ([4, 8], []),
        "unrecorded": ([128, 2048], []),
        "record_rows": (100000, 10000),
        "profile": (True, False),
        "readme": (True, False),
    }
    for name, (long, short) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, long if full else short)
    return args


def run_paced(checks: Checks, workdir: Path, n: int) -> dict[str, Any]:
    log(f"(1) paced: starting the sandbox WITH limits; {n} subscribers")
    sandbox = Sandbox(limits=True)
    try:
        template = workdir / "paced-template.duckdb"
        setup = make_template(template, sandbox.url, n)
        log(
            f"store ready ({n} subscribers added in {setup['add_subscribers_s']:.2f} s); sending with SendSettings()"
        )
        run = feedcast_run(checks, template, workdir, sandbox, SendSettings(), "paced", n)
        failed = None
        if "error" in run.extra:  # measured again once; the failure stays a failed check
            failed = run.__dict__.copy()
            log("paced: the send failed; measuring the rate again on a fresh copy")
            run = feedcast_run(checks, template, workdir, sandbox, SendSettings(), "paced (second try)", n)
            if "error" in run.extra:
                return {"failed_runs": [failed, run.__dict__]}
        extra = paced_extras(sandbox)
        stats = run.emulator
        checks.check(
            "paced: no 429 and no over-limit arrival",
            stats.get("rate_limited") == 0 and stats.get("over_limit") == 0,
            f"rate_limited {stats.get('rate_limited')}, over_limit {stats.get('over_limit')}",
            target=True,
        )
        checks.check(
            f"paced: at most {TELEGRAM_PER_SECOND} requests in any sliding second",
            0 < stats.get("max_per_second", 0) <= TELEGRAM_PER_SECOND,
            f"max_per_second {stats.get('max_per_second')}",
            target=True,
        )
        result = run.__dict__ | {"rate": run.rate, "extra": run.extra | extra}
        if failed is not None:
            result["failed_runs"] = [failed]
        result["exactly_once"] = all(
            c["ok"]
            for c in checks.results
            if c["check"].startswith(run.label + ":")
            and ("DuckDB" in c["check"] or "emulator accepted" in c["check"])
        )
        log(
            f"paced: {run.sent} sent in {run.deliver_s:.1f} s = {run.rate:.2f}/s "
            f"({run.rate / TELEGRAM_PER_SECOND:.1%} of {TELEGRAM_PER_SECOND}/s); emulator 429s "
            f"{stats.get('rate_limited')}, over-limit {stats.get('over_limit')}, max/s {stats.get('max_per_second')}"
        )
        return result
    finally:
        sandbox.close()


def run_unpaced(
    checks: Checks, workdir: Path, args: argparse.Namespace, stamp: str
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    n = args.unpaced
    log(f"(2) unpaced: starting the sandbox with --no-limits; {n} subscribers")
    sandbox = Sandbox(limits=False)
    try:
        template = workdir / "unpaced-template.duckdb"
        make_template(template, sandbox.url, n)
        payload = campaign_payload(template, workdir, sandbox.env)
        # warm-up: imports, first connections (campaign_payload already rendered the layout)
        baseline(sandbox, payload, min(n, 300), 16)
        rows = []
        for i, mif in enumerate(args.in_flight):
            settings = SendSettings(limits=False, max_in_flight=mif)

            def fc(mif: int = mif, settings: SendSettings = settings) -> SendRun:
                run = feedcast_run(
                    checks, template, workdir, sandbox, settings, f"unpaced max_in_flight={mif}", n
                )
                log(
                    f"  feedcast max_in_flight {mif:4d}: {run.rate:7.0f}/s  ({run.deliver_s:.1f} s, build "
                    f"{run.build_s:.2f} s, cpu {run.cpu_s:.1f} s, emulator cpu {run.emulator_cpu_s:.1f} s)"
                )
                return run

            def base(kind: str, mif: int = mif) -> BaseRun:
                run = baseline_run(checks, sandbox, payload, n, mif, kind)
                log(
                    f"  baseline {kind:7s} concurrency {mif:4d}: {run.rate:7.0f}/s  ({run.wall_s:.1f} s, "
                    f"cpu {run.cpu_s:.1f} s, emulator cpu {run.emulator_cpu_s:.1f} s)"
                )
                return run

            # alternate the order so drift does not favour one side
            if i % 2 == 0:
                a, b, f = base("bare"), base("sharded"), fc()
            else:
                f, b, a = fc(), base("sharded"), base("bare")
            rows.append(
                {
                    "max_in_flight": mif,
                    "feedcast": f.__dict__ | {"rate": f.rate},
                    "baseline": a.__dict__ | {"rate": a.rate},
                    "sharded": b.__dict__ | {"rate": b.rate},
                }
            )
        best = max(rows, key=lambda r: r["feedcast"]["rate"])
        result: dict[str, Any] = {
            "n": n,
            "rows": rows,
            "best": {"max_in_flight": best["max_in_flight"], "rate": best["feedcast"]["rate"]},
            "payload": payload,
            "diagnostics": [],
            "scale": [],
        }
        for window in args.unrecorded:
            mif = best["max_in_flight"]
            settings = SendSettings(limits=False, max_in_flight=mif, max_unrecorded=window)
            run = feedcast_run(
                checks, template, workdir, sandbox, settings, f"diagnostic max_unrecorded={window}", n
            )
            log(
                f"  diagnostic: max_in_flight {mif}, max_unrecorded {window}: {run.rate:.0f}/s "
                f"({run.deliver_s:.1f} s, cpu {run.cpu_s:.1f} s)"
            )
            result["diagnostics"].append(run.__dict__ | {"rate": run.rate})
        for c in args.scale:
            run_b = baseline_run(checks, sandbox, payload, n, c)
            log(f"  for scale: baseline concurrency {c}: {run_b.rate:.0f}/s ({run_b.wall_s:.1f} s)")
            result["scale"].append(run_b.__dict__ | {"rate": run_b.rate})
        prof = None
        if args.profile and (args.profile_always or best["feedcast"]["rate"] < TARGET_UNPACED):
            why = "as asked" if args.profile_always else f"below {TARGET_UNPACED:,.0f}/s"
            log(f"  {why}: profiling one run at max_in_flight {best['max_in_flight']}")
            prof = run_profile(
                checks,
                template,
                workdir,
                sandbox,
                SendSettings(limits=False, max_in_flight=best["max_in_flight"]),
                n,
                args.out / f"send-{stamp}-profile",
            )
            log(f"  profile: {prof['files'][0]}")
        return result, prof
    finally:
        sandbox.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child_recording:
        child_recording(args.child_recording, args.repeat)
        return 0
    started = time.perf_counter()
    date = datetime.now(UTC)
    stamp = date.strftime("%Y-%m-%dT%H%M%SZ")
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"send-{stamp}.json"
    checks = Checks(strict_targets=not args.quick)
    res: dict[str, Any] = {
        "date": date.strftime("%Y-%m-%d %H:%M UTC"),
        "command": "bench/send.py" + "".join(f" {a}" for a in (sys.argv[1:] if argv is None else argv)),
        "machine": machine(("duckdb", "httpx", "httpcore", "uvicorn", "starlette", "limits")),
        "config": {
            "quick": args.quick,
            "paced": args.paced,
            "unpaced": args.unpaced,
            "in_flight": args.in_flight,
            "scale": args.scale,
            "unrecorded": args.unrecorded,
            "record_rows": args.record_rows,
            "record_repeat": args.repeat,
            "send_settings_defaults": {
                k: getattr(SendSettings(), k)
                for k in ("max_in_flight", "max_unrecorded", "flush_interval", "timeout")
            },
            "telegram_channel_max_in_flight": 32,
        },
        "json": shown(out),
    }
    workdir = Path(tempfile.mkdtemp(prefix="feedcast-bench-send-"))
    try:
        if args.paced:
            res["paced"] = run_paced(checks, workdir, args.paced)
        if args.unpaced and args.in_flight:
            res["unpaced"], prof = run_unpaced(checks, workdir, args, stamp)
            if prof is not None:
                res["profile"] = prof
        if args.record_rows:
            log(f"(3) recording: {args.record_rows} rows, {args.repeat} runs, in a child process")
            rec = run_recording(args.record_rows, args.repeat)
            for i, r in enumerate(rec["runs"]):
                n = args.record_rows
                checks.check(
                    f"recording#{i}: rows",
                    r["added"] == n
                    and r["pending_created"] == n
                    and r["sent_after"] == n
                    and r["pending_after"] == 0
                    and r["distinct_subscribers"] == n,
                    f"added {r['added']}, pending created {r['pending_created']}, sent after {r['sent_after']}, "
                    f"pending after {r['pending_after']}, distinct subscribers {r['distinct_subscribers']}",
                )
            res["recording"] = rec
            med = statistics.median(r["record_deliveries_s"] for r in rec["runs"])
            log(
                f"recording: add_subscribers {statistics.median(r['add_subscribers_s'] for r in rec['runs']):.3f} s, "
                f"create_campaign {statistics.median(r['create_campaign_s'] for r in rec['runs']):.3f} s, "
                f"record_deliveries {med:.3f} s (median), peak RSS {rec['vmhwm_mb']:.0f} MB"
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    res["checks"] = checks.results
    res["checks_ok"] = checks.ok
    res["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    res["elapsed_s"] = time.perf_counter() - started
    out.write_text(json.dumps(res, indent=2, default=str) + "\n", encoding="utf-8")

    print()
    if "paced" in res:
        print(paced_table(res["paced"]), end="\n\n")
    if "unpaced" in res:
        print(unpaced_table(res["unpaced"]), end="\n\n")
    if "recording" in res:
        print(recording_table(res["recording"]), end="\n\n")
    if res.get("profile"):
        print("\n".join(profile_lines(res["profile"])))
    print(
        f"checks: {sum(c['ok'] for c in checks.results)}/{len(checks.results)} passed; "
        f"results in {res['json']}; {res['elapsed_s']:.0f} s in all"
    )
    if args.readme:
        readme = append_readme(readme_entry(res))
        log(f"entry appended to {shown(readme)}")
    return 0 if checks.ok else 1


if __name__ == "__main__":
    sys.exit(main())
