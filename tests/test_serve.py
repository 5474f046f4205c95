"""``feedcast serve`` for real: it starts a Prefect server, serves the deployments, a due
automation runs as a flow run named after it with a campaign artifact, and Ctrl-C stops
everything."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from feedcast.automations import AutomationSpec, add_automation
from feedcast.kernel.models import Item, NewSubscriber, PollOutcome
from feedcast.store import Store

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# its own waits (up to 150 s for the campaign, 15 s for the artifact, 60 s to stop) each end
# in a failure that says what did not happen; the suite's 120 s timeout would cut them short
@pytest.mark.timeout(300)
def test_serve_runs_due_automations_on_prefect_and_stops_cleanly(tmp_path: Path) -> None:
    db = tmp_path / "feedcast.duckdb"
    store = Store(db)
    source = store.add_source("shop", "https://shop.example/feed.xml")
    t0 = datetime.now(UTC) - timedelta(hours=1)
    base = Item(key="base", title="Base", url="https://shop.example/base")
    store.record_polls([PollOutcome(source.id, source.url, t0, 0.01, "ok", 200, items=(base,))], now=t0)
    store.add_channel("review", "outbox", {"dir": str(tmp_path / "outbox"), "format": "json"})
    store.add_subscribers("review", [NewSubscriber("team")])
    add_automation(
        store,
        "instant",
        AutomationSpec(sources=["shop"], layout="single", channel="review", on_new=True),
        now=t0,
    )
    fresh = Item(key="new", title="Fresh", url="https://shop.example/new")
    now = datetime.now(UTC)
    store.record_polls(
        [PollOutcome(source.id, source.url, now, 0.01, "ok", 200, items=(base, fresh))], now=now
    )

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(FEEDCAST_DB=str(db), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    feedcast = Path(sys.executable).with_name("feedcast")
    process = subprocess.Popen(
        [
            str(feedcast),
            "serve",
            "--every",
            "5",
            "--port",
            str(port),
            "--prefect-home",
            str(tmp_path / "prefect"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 150
        rows: list[dict[str, object]] = []
        while time.monotonic() < deadline and process.poll() is None:
            rows = store.query("SELECT automation, status FROM send_history")[1]
            if rows and all(r["status"] != "pending" for r in rows):
                break
            time.sleep(1)
        assert rows == [{"automation": "instant", "status": "sent"}], "no campaign was sent under serve"
        runs = httpx.post(
            api + "/flow_runs/filter", json={"flow_runs": {"name": {"any_": ["instant"]}}}, timeout=10
        ).json()
        assert runs, "no flow run named after the automation"
        for _ in range(30):
            artifacts = httpx.post(
                api + "/artifacts/filter", json={"artifacts": {"key": {"any_": ["campaign-1"]}}}, timeout=10
            ).json()
            if artifacts:
                break
            time.sleep(0.5)
        assert artifacts and "Campaign 1: instant" in artifacts[0]["data"]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
            pytest.fail("serve did not stop within 60 s of Ctrl-C")
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-3000:]
    assert "stopped" in text
    with pytest.raises(httpx.ConnectError):
        httpx.get(api + "/health", timeout=2)  # the Prefect server is gone too
    assert len(list((tmp_path / "outbox").rglob("*.json"))) == 1


def _processes() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, process group) of every process on the machine."""
    found: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":  # a zombie is gone, only not reaped yet
            found[int(entry.name)] = (int(fields[1]), int(fields[2]))
    return found


def _descendants(root: int) -> set[int]:
    table = _processes()
    family, grew = {root}, True
    while grew:
        more = {pid for pid, (parent, _) in table.items() if parent in family} - family
        family |= more
        grew = bool(more)
    return family


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_stops_on_a_signal_and_leaves_no_process(tmp_path: Path, signum: signal.Signals) -> None:
    """What systemd and containers send (SIGTERM) and Ctrl-C (SIGINT) both stop serve,
    the Prefect server and every flow run it started, within a bound."""
    db = tmp_path / "feedcast.duckdb"
    Store(db).schema_version()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(FEEDCAST_DB=str(db), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    feedcast = Path(sys.executable).with_name("feedcast")
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(feedcast),
                "serve",
                "--every",
                "5",
                "--port",
                str(_free_port()),
                "--prefect-home",
                str(tmp_path / "prefect"),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            start_new_session=True,  # the test's own group: what is left is findable
        )
    try:
        deadline = time.monotonic() + 150
        family: set[int] = set()
        while time.monotonic() < deadline and process.poll() is None:
            family |= _descendants(process.pid)
            # serve, the Prefect server and the serving process at least; flow runs come and go
            if "serving" in log.read_text(errors="replace") and len(family) >= 3:
                break
            time.sleep(0.5)
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        time.sleep(6)  # a scheduled pass starts its flow runs
        family |= _descendants(process.pid)
        groups = {_processes()[pid][1] for pid in family if pid in _processes()}
        process.send_signal(signum)
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            pytest.fail(f"serve still running 90 s after {signum.name}")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    text = log.read_text(errors="replace")
    assert process.returncode == 0, text[-3000:]
    assert "stopped" in text
    left = {pid: pg for pid, (_, pg) in _processes().items() if pid in family or pg in groups}
    assert left == {}, f"still running after {signum.name}: {left}"
