"""The Prefect flow runs the same polling path, on a real (test harness) Prefect server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from feedcast.sandbox import SampleServer, sample_text
from feedcast.store import Store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")  # torn down after this file: its threads stay out of later tests
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    home = tmp_path_factory.mktemp("prefect-home")
    os.environ["PREFECT_HOME"] = str(home)
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with (
        prefect_test_harness(server_startup_timeout=90),
        temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
    ):
        yield


def test_watch_sources_flow_polls_and_records(prefect_server: None, tmp_path: Path) -> None:
    from flows.watch import watch_sources

    store = Store(tmp_path / "flow.duckdb")
    with SampleServer() as server:
        server.put(
            "/blog.rss", sample_text("blog.rss").replace("{base}", server.base_url), "application/rss+xml"
        )
        store.add_source("blog", server.base_url + "/blog.rss")
        totals = watch_sources(db=str(store.path))
        assert totals == {"sources": 1, "new": 0, "changed": 0, "failed": 0}
        assert store.get_source("blog").item_count == 5
        # nothing due any more: a second run polls nothing
        assert watch_sources(db=str(store.path))["sources"] == 0
        # forced, the server answers 304
        assert watch_sources(db=str(store.path), force=True)["sources"] == 1
    _, rows = store.query("SELECT outcome FROM fetches ORDER BY id")
    assert [r["outcome"] for r in rows] == ["ok", "not_modified"]


def _automation_store(tmp_path: Path, names: list[str], subscribers: int) -> Store:
    from datetime import UTC, datetime, timedelta

    from feedcast.automations import AutomationSpec, add_automation
    from feedcast.kernel.models import Item, NewSubscriber, PollOutcome

    store = Store(tmp_path / "flows.duckdb")
    source = store.add_source("shop", "https://shop.example/feed.xml")
    t0 = datetime.now(UTC) - timedelta(hours=1)
    base = Item(key="base", title="Base", url="https://shop.example/base")
    store.record_polls([PollOutcome(source.id, source.url, t0, 0.01, "ok", 200, items=(base,))], now=t0)
    for name in names:
        store.add_channel(name, "outbox", {"dir": str(tmp_path / "outbox" / name), "format": "json"})
        store.add_subscribers(name, [NewSubscriber(f"r{i}") for i in range(subscribers)])
        add_automation(
            store, name, AutomationSpec(sources=["shop"], layout="plain", channel=name, on_new=True), now=t0
        )
    fresh = Item(key="new", title="Fresh", url="https://shop.example/new")
    now = datetime.now(UTC)
    store.record_polls(
        [PollOutcome(source.id, source.url, now, 0.01, "ok", 200, items=(base, fresh))], now=now
    )
    return store


def test_run_automations_runs_each_due_automation_as_a_named_flow_run(
    prefect_server: None, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client

    from flows.automations import run_automations

    store = _automation_store(tmp_path, ["alpha", "beta"], 3)
    outcomes = run_automations(db=str(store.path))
    assert sorted(o["automation"] for o in outcomes) == ["alpha", "beta"]
    assert all(o["sent"] == 3 for o in outcomes)
    assert run_automations(db=str(store.path)) == []  # nothing due any more

    async def names_and_artifacts() -> tuple[set[str], list[str]]:
        async with get_client() as client:
            from prefect.client.schemas.filters import (
                ArtifactFilter,
                ArtifactFilterKey,
                FlowRunFilter,
                FlowRunFilterName,
            )

            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=["alpha", "beta"]))
            )
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["campaign-1", "campaign-2"]))
            )
            reports = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["feedcast-report"]))
            )
            assert reports and "alpha" in str(reports[0].data)  # the report published after the run
            return {r.name for r in runs}, [str(a.data) for a in artifacts]

    import asyncio

    names, artifacts = asyncio.run(names_and_artifacts())
    assert names == {"alpha", "beta"}
    assert len(artifacts) == 2 and all("| 3 | 3 | 0 | 0 | 0 | sent |" in a for a in artifacts)


def test_run_automations_sends_a_composed_campaign_whose_time_has_come(
    prefect_server: None, tmp_path: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    from feedcast.kernel.models import ComposedMessage, ComposedModule, NewSubscriber
    from flows.automations import run_automations

    store = Store(tmp_path / "flows.duckdb")
    store.add_channel("box", "outbox", {"dir": str(tmp_path / "outbox"), "format": "telegram"})
    store.add_subscribers("box", [NewSubscriber(f"r{i}") for i in range(3)])
    message = ComposedMessage((ComposedModule(kind="text", text="Sale **now**"),))
    soon = datetime.now(UTC) + timedelta(hours=1)
    store.add_composed("later", channels=["box"], message=message, send_at=soon, send_at_local="in an hour")
    store.add_composed(
        "due",
        channels=["box"],
        message=message,
        send_at=datetime.now(UTC) - timedelta(seconds=5),
        send_at_local="now",
    )
    outcomes = run_automations(db=str(store.path))
    assert [o["campaign"] for o in outcomes] == ["due"]
    assert store.get_composed("due").status == "sent" and store.get_composed("later").status == "scheduled"
    written = sorted((tmp_path / "outbox").rglob("*.json"))
    assert len(written) == 3 and "Sale <b>now</b>" in written[0].read_text()
    assert run_automations(db=str(store.path)) == []  # sent once


def test_flow_runs_in_separate_processes_and_an_analyst_share_one_duckdb_file(
    prefect_server: None, tmp_path: Path
) -> None:
    """Four automations sent by four flow runs in four processes at once, while an analyst
    queries the same file: nothing lost, nothing crashed."""
    import subprocess
    import sys
    import time

    from prefect.settings import PREFECT_API_URL

    names = ["a1", "a2", "a3", "a4"]
    store = _automation_store(tmp_path, names, 150)
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "FEEDCAST_LOCK_TIMEOUT": "120"}
    code = "import sys; from flows.automations import run_automation; run_automation(name=sys.argv[1], db=sys.argv[2])"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, name, str(store.path)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for name in names
    ]
    queries = 0
    while any(p.poll() is None for p in processes):
        _, rows = store.query("SELECT status, count(*) AS n FROM send_history GROUP BY ALL")
        assert all(r["status"] in ("pending", "sent") for r in rows)
        queries += 1
        time.sleep(0.05)
    for process in processes:
        output = process.communicate()[0].decode(errors="replace")
        assert process.returncode == 0, output[-3000:]
    assert queries > 3
    _, rows = store.query(
        "SELECT automation, count(*) FILTER (WHERE status = 'sent') AS sent, count(*) AS n FROM send_history GROUP BY ALL ORDER BY 1"
    )
    assert rows == [{"automation": name, "sent": 150, "n": 150} for name in names]
    for name in names:
        assert len(list((tmp_path / "outbox" / name).rglob("*.json"))) == 150


def test_inbox_flow_answers_the_bot_and_records_the_audience(
    prefect_server: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ``inbox`` deployment's flow on the Prefect harness against the Bot API
    emulator: scripted users write, one flow run (duration 0: one batch) subscribes,
    unsubscribes and replies, publishes the counts as an artifact and stores the
    offset, so the next run finds nothing new."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from channels.telegram import TelegramChannel
    from feedcast.inbox.telegram import OFFSET_KEY
    from feedcast.sandbox.telegram import TelegramEmulator
    from flows.inbox import inbox

    token = "555002:AAH-flow-SECRET-token_for-tests"
    monkeypatch.setenv("TG_TOKEN", token)
    emulator = TelegramEmulator()
    emulator.add_bot(token, "shop_bot")
    with emulator.serve() as server:
        store = Store(tmp_path / "inbox.duckdb")
        settings = TelegramChannel.validate_settings({"token": "env:TG_TOKEN", "api_url": server.base_url})
        store.add_channel("tg", "telegram", settings)
        store.set_audiences_public(["vip"])  # a deep link may only join a public audience
        emulator.user_sends(701, "/start vip", first_name="Ann")
        emulator.user_sends(702, "/start", first_name="Bo")
        emulator.user_sends(702, "/stop")
        emulator.user_sends(703, "what is new?", first_name="Cy")

        totals = inbox(db=str(store.path), duration=0, timeout=0)

        assert totals == {
            "channels": 1,
            "updates": 4,
            "duplicates": 0,
            "subscribed": 2,
            "unsubscribed": 1,
            "replies": 7,  # presentation + welcome twice, goodbye, presentation + default
            "errors": 0,
        }
        ann, bo = store.get_subscriber("tg", "701"), store.get_subscriber("tg", "702")
        assert (ann.status, ann.tags, bo.status) == ("active", ("vip",), "unsubscribed")
        assert [e["params"]["text"].split("!")[0] for e in emulator.received(701)][:1] == ["Hello Ann"]
        assert len(emulator.received(703)) == 2  # the presentation, then the default reply
        # the offset is stored: the next run confirms those four and finds nothing new
        assert store.channel_state("tg", OFFSET_KEY) == "100000005"
        assert inbox(db=str(store.path), duration=0, timeout=0)["updates"] == 0
        assert emulator.pending_updates() == []

    async def artifact() -> str:
        async with get_client() as client:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["inbox"]))
            )
            return str(found[0].data) if found else ""

    table = asyncio.run(artifact())
    assert "| tg | 4 | 2 | 1 | 7 | 0 |" in table


def test_inbox_flow_with_no_telegram_channel_completes_and_says_so(
    prefect_server: None, tmp_path: Path
) -> None:
    """Scheduled every minute under serve: nothing to poll is a completed run with a
    log line, not a failed one with a traceback."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    from flows.inbox import inbox

    store = Store(tmp_path / "inbox.duckdb")
    store.add_channel("review", "outbox", {"dir": str(tmp_path / "outbox"), "format": "json"})
    state = inbox(db=str(store.path), duration=0, return_state=True)
    assert state.is_completed(), state.message
    assert state.result()["updates"] == 0
    run_id = state.state_details.flow_run_id
    assert run_id is not None

    async def messages() -> list[str]:
        await APILogHandler.aflush()  # the run's logs reach the API in the background
        async with get_client() as client:
            logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
        return [entry.message for entry in logs]

    assert any("no Telegram channel to poll: nothing to do" in m for m in asyncio.run(messages()))
