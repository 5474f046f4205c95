"""Shared fixtures: the corpus, and a guard that refuses any network beyond loopback."""

from __future__ import annotations

import csv
import ipaddress
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine

HERE = Path(__file__).parent
DATA = HERE / "data"
CORPUS = DATA / "corpus"
# The full shared corpus sits beside the clone on developer and CI machines; files under
# licences we may not redistribute are tested from there (and mirrored by our own fixtures).
SHARED_CORPUS = Path(os.environ.get("FEEDCAST_SHARED_CORPUS", HERE.parent.parent / "shared" / "corpus"))

os.environ.setdefault("FEEDCAST_ALLOW_PRIVATE_NETWORKS", "1")


@dataclass(frozen=True)
class CorpusFile:
    path: Path
    name: str  # e.g. feeds/spiegel_de.xml
    kind: str  # feeds | catalogues | pages
    format: str
    license: str
    notes: str


def load_manifest(root: Path) -> list[CorpusFile]:
    manifest = root / "MANIFEST.tsv"
    if not manifest.exists():
        return []
    with manifest.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return [
        CorpusFile(root / r["file"], r["file"], r["kind"], r["format"], r["license_of_repo"], r["notes"])
        for r in rows
    ]


def _is_loopback(address: object) -> bool:
    if isinstance(address, str | bytes):
        return True  # AF_UNIX path
    if not (isinstance(address, tuple) and address):
        return False
    host = address[0]
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return bool(host == "localhost")


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests talk to loopback only: emulators and local servers, never the internet."""

    def guarded_connect(self: socket.socket, address: object) -> None:
        if not _is_loopback(address):
            raise RuntimeError(f"test tried to reach the network: {address!r}")
        _real_connect(self, address)  # type: ignore[arg-type]

    def guarded_connect_ex(self: socket.socket, address: object) -> int:
        if not _is_loopback(address):
            raise RuntimeError(f"test tried to reach the network: {address!r}")
        return _real_connect_ex(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)


# A fixed day for every test whose output names a date (month names, "today", digests):
# such a test asks for ``pinned_clock`` instead of reading the real calendar, so it gives
# the same answer on any day. The clock still ticks (timeouts and elapsed times work), it
# only starts at PINNED_NOW; monotonic clocks are untouched.
PINNED_NOW = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)


@pytest.fixture
def pinned_clock() -> Iterator[datetime]:
    with time_machine.travel(PINNED_NOW, tick=True):
        yield PINNED_NOW
