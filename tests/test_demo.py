"""The README's first command: the demo runs end to end and shows what it promises."""

from __future__ import annotations

from pathlib import Path

import pytest

import feedcast.cli as cli_module
from feedcast.store import Store
from tests.test_cli import Cli


@pytest.mark.slow
def test_the_demo_runs_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_module.out, "width", 200)
    for var in (
        "DEMO_SITE",
        "SANDBOX_TELEGRAM_URL",
        "SANDBOX_MESSENGER_URL",
        "SANDBOX_SMTP_URL",
        "FEEDCAST_ALLOW_PRIVATE_NETWORKS",
    ):
        monkeypatch.delenv(var, raising=False)
    db = tmp_path / "demo" / "demo.duckdb"
    out = Cli(tmp_path / "unused.duckdb", capsys)("demo", "--demo-db", str(db))
    for expected in (
        "+ automation weekly-journal",
        "weekly-journal: campaign 1",
        "deals-on-telegram: campaign 2",
        "news-on-messenger: campaign 3",
        "Winter camp weekend",
        "(nothing: blocked the bot)",
        "(bounced)",
        "feedcast serve",
    ):
        assert expected in out, expected
    store = Store(db)
    _, rows = store.query(
        "SELECT automation, status, count(*) AS n FROM send_history GROUP BY ALL ORDER BY ALL"
    )
    assert {(r["automation"], r["status"]): r["n"] for r in rows} == {
        ("deals-on-telegram", "failed"): 1,
        ("deals-on-telegram", "sent"): 2,
        ("news-on-messenger", "failed"): 1,
        ("news-on-messenger", "sent"): 1,
        ("news-on-messenger", "skipped"): 1,
        ("weekly-journal", "failed"): 1,
        ("weekly-journal", "sent"): 1,
    }
    assert (db.parent / "demo.yaml").is_file()
