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
CORPUS = DATA / "corpus"  # the shared corpus's MIT / BSD / Apache files, with their MANIFEST rows
FIXTURES = DATA / "fixtures"  # our own files (MANIFEST.tsv), some mirroring the quirks of the others
# The full shared corpus sits beside the clone on developer and CI machines. The suite
# does not depend on it: whatever a test needs is in tests/data (the files we may not
# redistribute are mirrored by fixtures, see FIXTURES/MANIFEST.tsv, column "mirrors").
# When it is there, the tests over its own files run too; when not, they skip, on
# purpose, saying so (SHARED_CORPUS_ABSENT).
SHARED_CORPUS = Path(os.environ.get("FEEDCAST_SHARED_CORPUS", HERE.parent.parent / "shared" / "corpus"))
SHARED_CORPUS_ABSENT = (
    f"optional, on the real files: no shared corpus at {SHARED_CORPUS} (set FEEDCAST_SHARED_CORPUS); "
    "their quirks are tested from tests/data"
)

os.environ.setdefault("FEEDCAST_ALLOW_PRIVATE_NETWORKS", "1")


@dataclass(frozen=True)
class CorpusFile:
    path: Path
    name: str  # e.g. feeds/spiegel_de.xml
    kind: str  # feeds | catalogues | pages
    format: str
    license: str
    notes: str
    mirrors: str = ""  # fixtures: the shared-corpus file whose quirks this one reproduces


def load_manifest(root: Path, *, required: bool = True) -> list[CorpusFile]:
    """The files a MANIFEST.tsv lists; a missing manifest or file is an error unless the
    whole corpus is optional (``required=False``: the shared corpus beside the clone)."""
    manifest = root / "MANIFEST.tsv"
    if not manifest.exists():
        if required:
            raise FileNotFoundError(f"{manifest} is missing: the tests read their data from it")
        return []
    with manifest.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    entries = [
        CorpusFile(
            root / r["file"], r["file"], r["kind"], r["format"], r["license_of_repo"], r["notes"],
            r.get("mirrors") or "",
        )
        for r in rows
    ]  # fmt: skip
    missing = [e.name for e in entries if not e.path.is_file()]
    if missing and required:
        raise FileNotFoundError(f"{manifest} lists files that are missing: {', '.join(missing)}")
    return entries


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


def on_ci() -> bool:
    """``CI=true`` (or 1 / yes): what may skip on a laptop (no chromium) must fail here."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


# A fixed day for every test whose output names a date (month names, "today", digests):
# such a test asks for ``pinned_clock`` instead of reading the real calendar, so it gives
# the same answer on any day. The clock still ticks (timeouts and elapsed times work), it
# only starts at PINNED_NOW; monotonic clocks are untouched.
PINNED_NOW = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)


@pytest.fixture
def pinned_clock() -> Iterator[datetime]:
    with time_machine.travel(PINNED_NOW, tick=True):
        yield PINNED_NOW
