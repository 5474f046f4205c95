"""The sending side of the command line: channel, subscriber, automation, send, preview
AUTOMATION, against sample sources and the Telegram emulator on loopback."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import time_machine

import feedcast.cli as cli_module
from feedcast.sandbox import AsgiServer, SampleServer, sample_text
from feedcast.sandbox.telegram import TelegramEmulator
from tests.conftest import PINNED_NOW
from tests.test_cli import Cli

TOKEN = "424242:CLI-test-token-qwertyuiop"


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setattr(cli_module.out, "width", 400)
    monkeypatch.setenv("TG_TOKEN", TOKEN)
    monkeypatch.setenv("FEEDCAST_ALLOW_PRIVATE_NETWORKS", "1")
    return Cli(tmp_path / "cli.duckdb", capsys)


@pytest.fixture(scope="module")
def telegram() -> Iterator[tuple[TelegramEmulator, AsgiServer]]:
    emulator = TelegramEmulator(seed=2)
    with AsgiServer(emulator.app) as server:
        yield emulator, server


@pytest.fixture
def tg(telegram: tuple[TelegramEmulator, AsgiServer]) -> tuple[TelegramEmulator, str]:
    emulator, server = telegram
    emulator.reset(everything=True)
    emulator.add_bot(TOKEN, "cli_bot")
    return emulator, server.base_url


@pytest.fixture
def samples() -> Iterator[SampleServer]:
    with SampleServer() as server:
        server.put(
            "/blog.rss", sample_text("blog.rss").replace("{base}", server.base_url), "application/rss+xml"
        )
        yield server


def test_channel_add_list_show_and_remove_never_show_a_secret(
    cli: Cli, tg: tuple[TelegramEmulator, str]
) -> None:
    _emulator, url = tg
    out = cli("channel", "add", "tg", "telegram", "--token", "env:TG_TOKEN", "--api-url", url)
    assert "added telegram channel tg" in out
    [channel] = cli.json("channel", "list")  # type: ignore[misc]
    assert channel["settings"]["token"] == "env:TG_TOKEN" and channel["kind"] == "telegram"
    shown = cli("channel", "show", "tg")
    assert "env:TG_TOKEN" in shown and TOKEN not in shown
    assert "bot @cli_bot" in cli("channel", "test", "tg")
    assert "test message sent to 77" in cli("channel", "test", "tg", "--to", "77")
    assert len(_emulator.received(77)) == 1
    assert "removed channel tg" in cli("channel", "remove", "tg")
    assert cli.json("channel", "list") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["channel", "add", "tg", "telegram", "--token", TOKEN], "give it as env:VAR"),
        (["channel", "add", "tg", "telegram"], "need --token"),
        (["channel", "add", "tg", "pigeon"], "unknown channel kind 'pigeon'"),
        (["channel", "add", "tg", "telegram", "--token", "env:T", "--colour", "red"], "take no --colour"),
        (["channel", "add", "tg", "telegram", "--token"], "--token needs a value"),
        (["channel", "add", "bad name", "telegram", "--token", "env:T"], "invalid name"),
        (["channel", "add", "m", "email", "--smtp", "smtp://u:pw@host", "--from", "a@b.example"], "password"),
        (["channel", "show", "nope"], "no channel named 'nope'"),
        (["subscriber", "add", "nope", "1"], "no channel named 'nope'"),
    ],
)
def test_channel_mistakes_are_one_line(cli: Cli, args: list[str], message: str) -> None:
    err = cli(*args, code=2)
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_bad_token_is_reported_by_channel_test(
    cli: Cli, tg: tuple[TelegramEmulator, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _emulator, url = tg
    monkeypatch.setenv("TG_TOKEN", "1:not-the-right-token-at-all")
    cli("channel", "add", "tg", "telegram", "--token", "env:TG_TOKEN", "--api-url", url)
    err = cli("channel", "test", "tg", code=1)
    assert "refused" in err and "not-the-right" not in err


def test_subscriber_import_reports_bad_rows_and_keeps_the_good_ones(
    cli: Cli, tg: tuple[TelegramEmulator, str], tmp_path: Path
) -> None:
    _emulator, url = tg
    cli("channel", "add", "tg", "telegram", "--token", "env:TG_TOKEN", "--api-url", url)
    csv_file = tmp_path / "people.csv"
    csv_file.write_text(
        "chat_id,name,tags\n101,Ann,vip;fr\nnot-a-chat,Bob,\n102,Cy,\n101,Ann again,\n-100123,Group,\n",
        encoding="utf-8",
    )
    cli.capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        cli_module.main(
            ["--db", str(cli.db), "subscriber", "import", "tg", str(csv_file), "--tag", "import1"]
        )
    assert exited.value.code in (0, None)
    result = cli.capsys.readouterr()
    assert "3 added, 0 updated, 0 unchanged, 2 skipped" in result.out
    assert "line 3: a Telegram recipient is a chat id" in result.err
    assert "line 5: '101' is already on line 2" in result.err
    subs = cli.json("subscriber", "list", "--channel", "tg")
    assert isinstance(subs, list)
    assert {s["recipient"]: s["tags"] for s in subs} == {
        "101": ["fr", "import1", "vip"],
        "102": ["import1"],
        "-100123": ["import1"],
    }
    # importing again: tags merge, statuses stay
    csv_file.write_text("chat_id,tags\n101,new\n", encoding="utf-8")
    assert "0 added, 1 updated, 0 unchanged, 0 skipped" in cli("subscriber", "import", "tg", str(csv_file))
    assert cli.json("subscriber", "list", "--tag", "vip", "--channel", "tg")[0]["tags"] == [
        "fr",
        "import1",
        "new",
        "vip",
    ]  # type: ignore[index]
    cli("subscriber", "remove", "tg", "102")
    assert len(cli.json("subscriber", "list")) == 2  # type: ignore[arg-type]
    assert "already a subscriber" in cli("subscriber", "add", "tg", "101", code=2)
    assert "a Telegram recipient is a chat id" in cli("subscriber", "add", "tg", "bob smith", code=2)


def test_automation_add_refuses_what_could_never_send(
    cli: Cli, tg: tuple[TelegramEmulator, str], samples: SampleServer
) -> None:
    _emulator, url = tg
    cli("source", "add", "blog", samples.base_url + "/blog.rss")
    cli("channel", "add", "tg", "telegram", "--token", "env:TG_TOKEN", "--api-url", url)
    base = ["automation", "add", "news", "--source", "blog", "--channel", "tg"]
    assert "unknown layout 'nope'" in cli(*base, "--layout", "nope", code=2)
    assert "--message-tag is for Messenger" in cli(
        *base, "--layout", "single", "--message-tag", "ACCOUNT_UPDATE", code=2
    )
    assert "--events" in cli(*base, "--layout", "single", "--events", "new,gossip", code=2)
    assert "unknown" in cli(*base, "--layout", "single", "--timezone", "Mars/Olympus", code=2).lower()
    assert "no source named 'other'" in cli(
        "automation", "add", "n2", "--source", "other", "--layout", "single", "--channel", "tg", code=2
    )


def test_send_delivers_and_records_then_preview_uses_the_automation(
    cli: Cli, tg: tuple[TelegramEmulator, str], samples: SampleServer
) -> None:
    emulator, url = tg
    cli("source", "add", "blog", samples.base_url + "/blog.rss")
    cli("channel", "add", "tg", "telegram", "--token", "env:TG_TOKEN", "--api-url", url)
    cli("subscriber", "add", "tg", "501", "--tag", "vip")
    cli("subscriber", "add", "tg", "502")
    out = cli(
        "automation",
        "add",
        "news",
        "--source",
        "blog",
        "--layout",
        "digest",
        "--channel",
        "tg",
        "--audience",
        "vip",
        "--backfill",
        "2",
    )
    assert "added automation news: blog → digest → tg" in out
    shown = cli.json("automation", "show", "news")
    assert isinstance(shown, dict) and shown["queued_items"] == 2 and shown["audience_size"] == 1

    preview = cli.json("preview", "news")
    assert isinstance(preview, list) and preview and preview[0]["method"] == "sendMessage"

    sent = json.loads(cli("send", "news", "--format", "json"))
    [campaign] = sent["campaigns"]
    assert (campaign["status"], campaign["items"], campaign["recipients"], campaign["sent"]) == (
        "sent",
        2,
        1,
        1,
    )
    assert len(emulator.received(501)) >= 1 and emulator.received(502) == []
    history = json.loads(
        cli("sql", "SELECT automation, channel, recipient, status FROM send_history", "--format", "json")
    )
    assert history == [{"automation": "news", "channel": "tg", "recipient": "501", "status": "sent"}]
    assert "no new items since the last campaign" in cli("send", "news")

    cli("automation", "pause", "news")
    assert cli.json("automation", "list")[0]["status"] == "paused"  # type: ignore[index]
    cli("automation", "resume", "news")
    assert "used by automation 'news'" in cli("channel", "remove", "tg", code=2)
    cli("automation", "remove", "news")
    assert cli.json("automation", "list") == []
    # the history outlives the automation
    assert len(json.loads(cli("sql", "SELECT * FROM send_history", "--format", "json"))) == 1


def test_send_exits_1_with_one_line_when_the_channel_is_broken(
    cli: Cli, tg: tuple[TelegramEmulator, str], samples: SampleServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _emulator, url = tg
    cli("source", "add", "blog", samples.base_url + "/blog.rss")
    cli("channel", "add", "tg", "telegram", "--token", "env:TG_TOKEN", "--api-url", url)
    cli("subscriber", "add", "tg", "601")
    cli(
        "automation",
        "add",
        "news",
        "--source",
        "blog",
        "--layout",
        "single",
        "--channel",
        "tg",
        "--backfill",
        "1",
    )
    monkeypatch.setenv("TG_TOKEN", "7:revoked-token-xxxxxxxx")
    err = cli("send", "news", code=1)
    assert "stopped" in err and "pending" in err and "revoked" not in err
    monkeypatch.setenv("TG_TOKEN", TOKEN)
    out = cli("send", "news")
    assert "(resumed)" in out and "sent" in out


def test_sending_with_nobody_subscribed_keeps_the_items_queued(
    cli: Cli, tg: tuple[TelegramEmulator, str], samples: SampleServer
) -> None:
    _emulator, url = tg
    cli("source", "add", "blog", samples.base_url + "/blog.rss")
    cli("channel", "add", "tg", "telegram", "--token", "env:TG_TOKEN", "--api-url", url)
    cli(
        "automation",
        "add",
        "news",
        "--source",
        "blog",
        "--layout",
        "single",
        "--channel",
        "tg",
        "--backfill",
        "1",
    )
    assert "no active subscriber" in cli("send", "news")
    assert cli.json("automation", "show", "news")["queued_items"] == 1  # type: ignore[index]


def test_webhook_and_outbox_channels_subscribe_their_recipient(cli: Cli, tmp_path: Path) -> None:
    cli("channel", "add", "hook", "webhook", "--url", "https://hooks.example/x", "--format", "json")
    cli("channel", "add", "review", "outbox", "--dir", str(tmp_path / "outbox"))
    subs = cli.json("subscriber", "list")
    assert isinstance(subs, list)
    assert sorted((s["channel"], s["recipient"]) for s in subs) == [("hook", "webhook"), ("review", "review")]
    kinds = cli.json("channel", "kinds")
    assert isinstance(kinds, list) and {"telegram", "messenger", "email", "webhook", "outbox"} <= {
        k["kind"] for k in kinds
    }


def _many_subscribers(cli: Cli, tmp_path: Path, n: int) -> list[int]:
    chats = [7000 + i for i in range(n)]
    people = tmp_path / "people.csv"
    people.write_text("chat_id\n" + "".join(f"{c}\n" for c in chats), encoding="utf-8")
    assert f"{n} added" in cli("subscriber", "import", "tg", str(people))
    return chats


def test_send_deadline_stops_starting_deliveries_and_a_rerun_finishes(
    cli: Cli, tg: tuple[TelegramEmulator, str], samples: SampleServer, tmp_path: Path
) -> None:
    emulator, url = tg
    emulator.configure(limits=True)
    cli("source", "add", "blog", samples.base_url + "/blog.rss")
    cli("channel", "add", "tg", "telegram", "--token", "env:TG_TOKEN", "--api-url", url)
    chats = _many_subscribers(cli, tmp_path, 150)  # at Telegram's 29/s, at least 5 s of sending
    cli(
        "automation",
        "add",
        "news",
        "--source",
        "blog",
        "--layout",
        "single",
        "--channel",
        "tg",
        "--backfill",
        "1",
    )

    [stopped] = json.loads(cli("send", "news", "--deadline", "3", "--format", "json"))["campaigns"]

    # deliveries queued in the engine before the deadline but not begun stay pending:
    # 3 s at 29/s leaves at least 60 of the 150 for later, however fast or slow the machine
    assert stopped["status"] == "sending" and stopped["pending"] > 0
    assert stopped["sent"] + stopped["pending"] == 150
    assert sum(len(emulator.received(c)) for c in chats) == stopped["sent"]
    waiting = cli.json(
        "sql",
        "SELECT count(*) AS n, sum(unconfirmed_attempts) AS doubt, sum(attempts) AS tries"
        " FROM send_history WHERE status = 'pending'",
    )
    # nothing of the pending ones went out: none in doubt, no try counted
    assert waiting == [{"n": stopped["pending"], "doubt": 0, "tries": 0}]

    [resumed] = json.loads(cli("send", "news", "--format", "json"))["campaigns"]
    assert resumed["resumed"] and (resumed["status"], resumed["sent"], resumed["pending"]) == ("sent", 150, 0)
    assert all(len(emulator.received(c)) == 1 for c in chats)
    assert "--deadline" in cli("send", "news", "--deadline", "soon", code=2)


def test_send_at_schedules_a_campaign_that_run_sends_when_due(
    cli: Cli, tg: tuple[TelegramEmulator, str], samples: SampleServer
) -> None:
    emulator, url = tg
    cli("source", "add", "blog", samples.base_url + "/blog.rss")
    cli("channel", "add", "tg", "telegram", "--token", "env:TG_TOKEN", "--api-url", url)
    cli("subscriber", "add", "tg", "8801")
    cli(
        "automation", "add", "news", "--source", "blog", "--layout", "single", "--channel", "tg",
        "--backfill", "1", "--timezone", "Asia/Dubai",
    )  # fmt: skip
    with time_machine.travel(PINNED_NOW, tick=True) as clock:  # 2026-11-26 09:30 UTC, 13:30 in Dubai
        out = cli("send", "news", "--at", "2026-11-26T15:00")  # the automation's time zone
        assert "2026-11-26T15:00:00+04:00 (2026-11-26T11:00:00+00:00 UTC)" in out
        assert "11:00" in cli("send", "news", "--at", "2026-11-26T11:00+00:00")  # the same time, given in UTC
        [pending, again] = cli.json("sql", "SELECT status, run_at FROM scheduled_sends ORDER BY id")  # type: ignore[misc]
        assert pending["status"] == again["status"] == "pending"
        assert "in the past" in cli("send", "news", "--at", "2026-11-26T13:00", code=2)  # 09:00 UTC
        assert "not an ISO date-time" in cli("send", "news", "--at", "tomorrow", code=2)

        assert "no automation due" in cli("run", "--no-poll")  # 09:30: not yet
        assert emulator.received(8801) == []

        clock.shift(timedelta(hours=1, minutes=31))  # 11:01 UTC
        [due] = cli.json("run", "--no-poll")["automations"]  # type: ignore[index]
        assert (due["automation"], due["trigger"]) == ("news", "at")
        assert [c["sent"] for c in due["campaigns"]] == [1]
        assert len(emulator.received(8801)) == 1
        history = cli.json("sql", "SELECT trigger, status FROM send_history")
        assert history == [{"trigger": "at", "status": "sent"}]
        # the second send --at for the same minute finds nothing new: nothing goes out twice
        cli("run", "--no-poll")
        assert len(emulator.received(8801)) == 1
        assert cli.json("sql", "SELECT count(*) AS n FROM scheduled_sends WHERE status = 'pending'") == [
            {"n": 0}
        ]


def _sandbox_output(*args: str) -> str:
    """``feedcast sandbox`` in a child process (it serves until stopped): what it prints
    before it waits, then SIGTERM."""
    cmd = [sys.executable, "-m", "feedcast.cli", "sandbox", "--telegram-port", "0", "--messenger-port", "0"]
    cmd += ["--webhooks-port", "0", "--smtp-port", "0", *args]
    env = {k: v for k, v in os.environ.items() if k != "FEEDCAST_ALLOW_PRIVATE_NETWORKS"}
    # unbuffered: select() sees what the child wrote, not what a reader's buffer already took
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0, env=env)
    assert proc.stdout is not None
    printed = b""
    try:
        while b"Ctrl-C stops" not in printed and not printed.lstrip().startswith(b"{"):
            ready, _, _ = select.select([proc.stdout], [], [], 60)
            chunk = proc.stdout.read(65536) if ready else b""
            if not chunk:
                break
            printed += chunk
        if printed.lstrip().startswith(b"{"):  # one JSON line
            while not printed.endswith(b"\n"):
                ready, _, _ = select.select([proc.stdout], [], [], 60)
                chunk = proc.stdout.read(65536) if ready else b""
                if not chunk:
                    break
                printed += chunk
    finally:
        proc.send_signal(signal.SIGTERM)
        _, errors = proc.communicate(timeout=30)
    assert proc.returncode == 0, errors.decode()
    return printed.decode()


@pytest.mark.slow  # two child processes
def test_sandbox_says_how_to_poll_local_sources() -> None:
    """Sources served on loopback are refused unless FEEDCAST_ALLOW_PRIVATE_NETWORKS is
    set: the sandbox, which is all on loopback, prints the line to export."""
    printed = _sandbox_output()
    assert "\n  export FEEDCAST_ALLOW_PRIVATE_NETWORKS=1 " in printed, printed
    assert "export SANDBOX_TELEGRAM_TOKEN=" in printed
    info = json.loads(_sandbox_output("--format", "json"))
    assert info["env"]["FEEDCAST_ALLOW_PRIVATE_NETWORKS"] == "1"
    assert info["env"]["SANDBOX_TELEGRAM_TOKEN"]


def test_send_at_names_the_time_zone_it_reads_the_time_in(
    cli: Cli, tg: tuple[TelegramEmulator, str], samples: SampleServer, pinned_clock: datetime
) -> None:
    _emulator, url = tg
    cli("source", "add", "blog", samples.base_url + "/blog.rss")
    cli("channel", "add", "tg", "telegram", "--token", "env:TG_TOKEN", "--api-url", url)
    cli("automation", "add", "news", "--source", "blog", "--layout", "digest", "--channel", "tg")
    cli("automation", "edit", "news", "--timezone", "Asia/Dubai")
    # the pinned clock: 2026-11-26 09:30 UTC, 13:30 in Dubai (UTC+4)
    err = cli("send", "news", "--at", "2026-11-20T09:00", code=2)
    assert re.fullmatch(
        r"error: --at 2026-11-20 09:00 \(Asia/Dubai\) is in the past; it is now 2026-11-26 13:3\d there\n",
        err,
    ), err
    err = cli("send", "news", "--at", "2026-11-26T10:00+01:00", code=2)  # 09:00 UTC: half an hour ago
    assert re.fullmatch(
        r"error: --at 2026-11-26 10:00 \(UTC\+01:00\) is in the past; it is now 2026-11-26 10:3\d there\n",
        err,
    ), err
    err = cli("send", "news", "--at", "next tuesday", code=2)
    assert "is not an ISO date-time, read in Asia/Dubai unless it has an offset" in err
    out = cli("send", "news", "--at", "2026-12-01T09:00")
    assert "news will be sent at 2026-12-01T09:00:00+04:00 (2026-12-01T05:00:00+00:00 UTC)" in out


def test_send_at_refuses_a_time_the_clocks_skip(
    cli: Cli, tg: tuple[TelegramEmulator, str], samples: SampleServer, pinned_clock: datetime
) -> None:
    _emulator, url = tg
    cli("source", "add", "blog", samples.base_url + "/blog.rss")
    cli("channel", "add", "tg", "telegram", "--token", "env:TG_TOKEN", "--api-url", url)
    cli("automation", "add", "news", "--source", "blog", "--layout", "digest", "--channel", "tg")
    cli("automation", "edit", "news", "--timezone", "Europe/Paris")
    err = cli("send", "news", "--at", "2027-03-28T02:30", code=2)  # 02:00 -> 03:00 that night
    assert err == (
        "error: --at 2027-03-28 02:30 does not exist in Europe/Paris: the clocks go forward then"
        " (choose a time outside the gap, or give an offset)\n"
    )
    assert "2027-03-28T03:30:00+02:00" in cli("send", "news", "--at", "2027-03-28T03:30")
