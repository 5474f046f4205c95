"""The secret-absence check itself (tests/leaks.py) finds a secret wherever a write put it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from feedcast.store import Store
from tests.leaks import assert_secret_absent, wal_of

SECRET = "wal-only-S3CRET-0123456789abcdef"


def test_a_secret_still_in_the_wal_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDCAST_CHECKPOINT", "off")
    db = tmp_path / "feedcast.duckdb"
    store = Store(db)
    store.add_channel("leaky", "webhook", {"url": f"https://hooks.example/{SECRET}"})
    assert SECRET.encode() not in db.read_bytes()  # what the old check read: it passed
    assert SECRET.encode() in wal_of(db).read_bytes()
    with pytest.raises(AssertionError, match=r"feedcast\.duckdb\.wal"):
        assert_secret_absent(SECRET, db)


def test_a_checkpointed_secret_is_found_in_the_tables(tmp_path: Path) -> None:
    db = tmp_path / "feedcast.duckdb"
    Store(db).add_channel("leaky", "webhook", {"url": f"https://hooks.example/{SECRET}"})
    assert not wal_of(db).exists()
    with pytest.raises(AssertionError, match=r"no feedcast\.duckdb\.wal"):
        assert_secret_absent(SECRET, db)  # nothing proves what the WAL held
    with pytest.raises(AssertionError, match=r"channels\.settings|feedcast\.duckdb"):
        assert_secret_absent(SECRET, db, wal=False)


def test_files_beside_the_database_and_captured_text_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("FEEDCAST_CHECKPOINT", "off")
    db = tmp_path / "feedcast.duckdb"
    Store(db).add_channel("clean", "webhook", {"url": "https://hooks.example/x"})
    assert_secret_absent(SECRET, db)
    (tmp_path / "spool").mkdir()
    (tmp_path / "spool" / "000001.json").write_text(f'{{"token": "{SECRET}"}}', encoding="utf-8")
    with pytest.raises(AssertionError, match=r"000001\.json"):
        assert_secret_absent(SECRET, db)
    (tmp_path / "spool" / "000001.json").unlink()
    logging.getLogger("feedcast").warning("token %s", SECRET)
    with pytest.raises(AssertionError, match="captured text #1"):
        assert_secret_absent(SECRET, db, caplog.text)
