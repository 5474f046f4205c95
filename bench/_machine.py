"""Shared by the benchmarks: facts about the machine a run was on, and writing its entry into bench/README.md."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def machine(packages: Sequence[str]) -> dict[str, Any]:
    """CPU, memory, OS, Python, the commit and the versions of ``packages``."""
    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    ram_gb = float("nan")
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gb = int(line.split()[1]) / 2**20
    os_name = platform.platform()
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = f"{line.split('=', 1)[1].strip(chr(34))} ({platform.release()})"
    commit = "unknown"
    with contextlib.suppress(Exception):
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    versions = {}
    for dist in packages:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "?"
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "ram_gb": round(ram_gb, 1),
        "python": platform.python_version(),
        "os": os_name,
        "commit": commit,
        "versions": versions,
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
    }


def append_readme(section: str, entry: str) -> Path:
    """Put ``entry`` at the end of ``section`` (a "## ..." heading) of bench/README.md,
    created at the end of the file when missing. Re-read right before writing: several
    benchmarks append to the same file."""
    readme = ROOT / "bench" / "README.md"
    text = readme.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == section), None)
    if start is None:
        with readme.open("a", encoding="utf-8") as fh:
            fh.write(("\n" if text.endswith("\n") else "\n\n") + section + "\n\n" + entry)
        return readme
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), None)
    if end is None:  # the section is the last one: a plain append
        with readme.open("a", encoding="utf-8") as fh:
            fh.write(("" if text.endswith("\n") else "\n") + "\n" + entry)
        return readme
    new = "".join(lines[:end]).rstrip("\n") + "\n\n" + entry + "\n" + "".join(lines[end:])
    readme.write_text(new, encoding="utf-8")
    return readme


def run_child(script: str, args: Sequence[str], what: str) -> dict[str, Any]:
    """Run ``script`` with ``args`` in a fresh interpreter (a clean memory figure) and
    return the JSON it printed on its ``CHILD-RESULT`` line."""
    proc = subprocess.run(
        [sys.executable, script, *args], capture_output=True, text=True, check=False, timeout=3600
    )
    for line in proc.stdout.splitlines():
        if line.startswith("CHILD-RESULT "):
            result: dict[str, Any] = json.loads(line.removeprefix("CHILD-RESULT "))
            return result
    raise RuntimeError(f"{what} child failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
