"""The Prefect flow runs the same polling path, on a real (test harness) Prefect server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from feedcast.sandbox import SampleServer, sample_text
from feedcast.store import Store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
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
