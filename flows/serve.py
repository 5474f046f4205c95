"""``feedcast serve``: everything on one machine, with schedules firing.

Schedules need a real Prefect server (a temporary one creates no scheduled runs), so
unless ``PREFECT_API_URL`` names one, this starts ``prefect server start`` (SQLite under
a project-local ``PREFECT_HOME``, the UI on localhost) and then serves the deployments
in this process: ``watch-sources``, ``run-automations`` and ``inbox`` (the Telegram
bots' long polling) every ``every`` seconds, and ``run-automation``, which
``run-automations`` triggers once per due automation so that each runs in its own
process. Ctrl-C (or SIGTERM) stops both cleanly.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import httpx

__all__ = ["prefect_server", "serve"]


@contextlib.contextmanager
def prefect_server(
    home: Path, port: int, *, log: Callable[[str], None], timeout: float = 120.0
) -> Iterator[str]:
    """Start ``prefect server start`` on 127.0.0.1:``port`` with ``home`` as
    PREFECT_HOME; yield its API URL once healthy; stop it on exit."""
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
    }
    env.pop("PREFECT_API_URL", None)
    logfile = (home / "server.log").open("ab")
    prefect = Path(sys.executable).with_name("prefect")
    command = [str(prefect)] if prefect.exists() else [sys.executable, "-m", "prefect"]
    process = subprocess.Popen(  # noqa: S603 - our own interpreter's prefect, fixed arguments
        [*command, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=logfile,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches us, and we stop it in order
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the Prefect server exited at start (see {home / 'server.log'})")
            try:
                if httpx.get(api + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the Prefect server did not answer within {timeout:g} s (see {home / 'server.log'})"
                )
            time.sleep(0.5)
        log(f"Prefect server on http://127.0.0.1:{port} (UI), home {home}")
        yield api
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        logfile.close()


def serve(db: Path, *, every: int = 60, limit: int = 8, log: Callable[[str], None] = print) -> None:
    """Serve feedcast's deployments against the configured Prefect API until interrupted."""
    from prefect import serve as prefect_serve
    from prefect.deployments.runner import RunnerDeployment

    from flows.automations import run_automation, run_automations
    from flows.inbox import inbox
    from flows.watch import watch_sources

    path = str(db.resolve())
    deployments: list[RunnerDeployment] = [
        cast(RunnerDeployment, d)
        for d in (
            watch_sources.to_deployment(
                name="watch-sources", interval=every, parameters={"db": path}, concurrency_limit=1
            ),
            run_automations.to_deployment(
                name="run-automations",
                interval=every,
                parameters={"db": path, "fan_out": True},
                concurrency_limit=1,  # overlapping passes would only find the same work
            ),
            run_automation.to_deployment(name="run-automation", parameters={"db": path}),
            inbox.to_deployment(
                name="inbox",
                interval=every,
                parameters={"db": path, "duration": max(5, every - 5)},
                concurrency_limit=1,
            ),
        )
    ]
    log(
        f"serving watch-sources and run-automations every {every} s (up to {limit} runs at once); Ctrl-C stops"
    )
    prefect_serve(*deployments, limit=limit, print_starting_message=False)
