"""``feedcast serve``: everything on one machine, with schedules firing.

Schedules need a real Prefect server (a temporary one creates no scheduled runs), so
unless ``PREFECT_API_URL`` names one, this starts ``prefect server start`` (SQLite under
a project-local ``PREFECT_HOME``, the UI on localhost) and then serves the deployments
in a child process (``python -m flows.serve``): ``watch-sources``, ``run-automations``
and ``inbox`` (the Telegram bots' long polling) every ``every`` seconds, and
``run-automation``, which ``run-automations`` triggers once per due automation so that
each runs in its own process.

:func:`supervise` is what ``feedcast serve`` runs: it only starts and stops processes.
The Prefect server and the serving process each lead a process group of their own (the
flow runs are children of the serving one); SIGINT (Ctrl-C) and SIGTERM (systemd,
``docker stop``) are handled alike: SIGTERM to the serving group, then to the server's,
each given :data:`GRACE` seconds to finish (Prefect marks interrupted runs) before the
whole group gets SIGKILL. It returns once no process of either group is left.
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

__all__ = ["GRACE", "prefect_server", "serve", "stop_group", "supervise"]

GRACE = 15.0  # seconds a process group has between SIGTERM and SIGKILL


@contextlib.contextmanager
def prefect_server(
    home: Path,
    port: int,
    *,
    log: Callable[[str], None],
    timeout: float = 120.0,
    stopping: list[int] | None = None,
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
            if stopping:  # a signal while it starts: stop it at once
                break
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
        if not stopping:
            log(f"Prefect server on http://127.0.0.1:{port} (UI), home {home}")
        yield api
    finally:
        stop_group(process, GRACE)
        logfile.close()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of the group is another user's: still there
        return True
    return True


def _reap() -> None:
    """As PID 1 (a container) orphans are ours to reap, or they linger as zombies."""
    if os.getpid() != 1:
        return
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def stop_group(process: subprocess.Popen[bytes], grace: float = GRACE) -> None:
    """Stop ``process`` and every process of its group (it leads one): SIGTERM, up to
    ``grace`` seconds, then SIGKILL; returns once the group is empty."""
    pgid = process.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    for sig, wait in ((None, grace), (signal.SIGKILL, 10.0)):
        if sig is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            process.poll()  # reap the leader, or the group never looks empty
            _reap()
            if not _group_alive(pgid):
                return
            time.sleep(0.1)
    process.poll()


def supervise(
    db: Path,
    *,
    every: int = 60,
    limit: int = 8,
    port: int = 4200,
    home: Path | None = None,
    log: Callable[[str], None] = print,
    grace: float = GRACE,
) -> int:
    """``feedcast serve``: a Prefect server (unless ``PREFECT_API_URL`` names one) and the
    serving process, until SIGINT or SIGTERM or until the serving process ends; the
    exit status (0 after a signal)."""
    stopping: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        stopping.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if os.environ.get("PREFECT_API_URL"):
            log(f"using the Prefect server at {os.environ['PREFECT_API_URL']}")
            return _run_serving(db, every, limit, os.environ["PREFECT_API_URL"], None, stopping, log, grace)
        folder = (home or db.parent / ".feedcast" / "prefect").resolve()
        with prefect_server(folder, port, log=log, stopping=stopping) as api:
            if stopping:
                return 0
            return _run_serving(db, every, limit, api, folder, stopping, log, grace)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run_serving(
    db: Path,
    every: int,
    limit: int,
    api: str,
    home: Path | None,
    stopping: list[int],
    log: Callable[[str], None],
    grace: float,
) -> int:
    env = {**os.environ, "PREFECT_API_URL": api, "FEEDCAST_DB": str(db)}
    if home is not None:
        env.setdefault("PREFECT_HOME", str(home))
    child = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-m", "flows.serve", str(db), str(every), str(limit)],
        env=env,
        start_new_session=True,  # its group holds the flow runs: stopped as one
    )
    try:
        while not stopping and child.poll() is None:
            time.sleep(0.2)
    finally:
        stop_group(child, grace)
    if stopping:
        return 0
    log(f"the serving process exited with status {child.returncode}")
    return child.returncode or 1


def serve(db: Path, *, every: int = 60, limit: int = 8, log: Callable[[str], None] = print) -> None:
    """Serve feedcast's deployments against the configured Prefect API until interrupted."""
    from prefect import serve as prefect_serve
    from prefect.deployments.runner import RunnerDeployment

    from flows.automations import run_automation, run_automations, run_campaign
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
            run_campaign.to_deployment(name="run-campaign", parameters={"db": path}),
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


if __name__ == "__main__":  # the serving process of supervise(): DB EVERY LIMIT
    serve(
        Path(sys.argv[1]),
        every=int(sys.argv[2]),
        limit=int(sys.argv[3]),
        log=lambda line: print(line, flush=True),
    )
