"""The command line on a real terminal (issue 12.5, 12.7, 12.8, 12.9): tables that fit
80 and 150 columns, a send progress bar that counts, read-only commands that create
nothing, a demo that keeps its files in one ignored folder and names a command that
runs, an editable install without setuptools warnings."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.cells import cell_len

import feedcast.cli as cli_module
import feedcast.cli.send as cli_send
from feedcast.delivery import SendSettings, send_automation
from feedcast.sandbox import AsgiServer, SampleServer, sample_text
from feedcast.sandbox.telegram import TelegramEmulator
from feedcast.store import Store
from feedcast.terminal import console
from tests.test_cli import Cli

REPO = Path(__file__).resolve().parent.parent
TOKEN = "424242:terminal-cli-token-qwertyuiop"


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("TG_TOKEN", TOKEN)
    monkeypatch.setenv("FEEDCAST_ALLOW_PRIVATE_NETWORKS", "1")
    return Cli(tmp_path / "cli.duckdb", capsys)


@pytest.fixture(scope="module")
def telegram() -> Iterator[tuple[TelegramEmulator, AsgiServer]]:
    emulator = TelegramEmulator(seed=5)
    with AsgiServer(emulator.app) as server:
        yield emulator, server


@pytest.fixture
def tg(telegram: tuple[TelegramEmulator, AsgiServer]) -> tuple[TelegramEmulator, str]:
    emulator, server = telegram
    emulator.reset(everything=True)
    emulator.add_bot(TOKEN, "terminal_bot")
    return emulator, server.base_url


@pytest.fixture
def samples() -> Iterator[SampleServer]:
    with SampleServer() as server:
        server.put(
            "/blog.rss", sample_text("blog.rss").replace("{base}", server.base_url), "application/rss+xml"
        )
        yield server


def _campaign(cli: Cli, tg: tuple[TelegramEmulator, str], samples: SampleServer, people: int) -> None:
    """A blog, a Telegram channel with ``people`` subscribers, an automation with one item."""
    _emulator, url = tg
    cli("source", "add", "blog", samples.base_url + "/blog.rss")
    cli("channel", "add", "tg", "telegram", "--token", "env:TG_TOKEN", "--api-url", url)
    csv_file = cli.db.with_name("people.csv")
    csv_file.write_text("chat_id\n" + "".join(f"{9000 + i}\n" for i in range(people)), encoding="utf-8")
    cli("subscriber", "import", "tg", str(csv_file))
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


def _width(monkeypatch: pytest.MonkeyPatch, columns: int) -> None:
    monkeypatch.setattr(cli_module.out, "width", columns)  # a terminal COLUMNS wide


# --------------------------------------------------------------------------- tables (12.7)


@pytest.mark.parametrize("columns", [80, 150])
def test_source_list_is_one_line_per_source_and_fits_the_terminal(
    cli: Cli, samples: SampleServer, monkeypatch: pytest.MonkeyPatch, columns: int
) -> None:
    cli("source", "add", "blog", samples.base_url + "/blog.rss")
    cli("source", "add", "missing", samples.base_url + "/missing.xml")
    monkeypatch.setenv("FEEDCAST_ALLOW_PRIVATE_NETWORKS", "0")  # a long error message
    cli("source", "add", "refused", samples.base_url + "/blog.rss?page=2")
    _width(monkeypatch, columns)
    lines = cli("source", "list").splitlines()
    assert max(cell_len(line) for line in lines) <= columns
    assert len(lines) == 3 + 4  # top border, header, rule, a line per source, bottom border
    for name in ("blog", "missing", "refused"):
        assert len([line for line in lines if f"│ {name} " in line]) == 1
    [refused] = [line for line in lines if "│ refused " in line]
    assert "refused to fetch" in refused and "…" in refused  # the error, cut to fit
    full = cli.json("source", "list")
    assert isinstance(full, list) and "FEEDCAST_ALLOW_PRIVATE_NETWORKS" in full[2]["last_error"]


def test_sql_with_many_columns_shows_one_record_after_the_other(
    cli: Cli, tg: tuple[TelegramEmulator, str], samples: SampleServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _campaign(cli, tg, samples, people=2)
    cli("send", "news")
    columns = cli.json("sql", "SELECT column_name FROM (DESCRIBE send_history)")
    assert isinstance(columns, list) and len(columns) >= 15
    names = [c["column_name"] for c in columns]
    _width(monkeypatch, 150)
    out = cli("sql", "SELECT * FROM send_history ORDER BY delivery_id")
    lines = out.splitlines()
    assert max(cell_len(line) for line in lines) <= 150
    records = out.strip("\n").split("\n\n")
    assert len(records) == 2  # as DuckDB's .mode line: a blank line between records
    label = max(len(n) for n in names)  # the field names, right-aligned; wrapped values under theirs
    for record in records:
        assert [line[:label].strip() for line in record.splitlines() if line[:label].strip()] == names


@pytest.mark.parametrize("columns", [80, 150])
def test_every_list_fits_the_terminal_one_line_per_row(
    cli: Cli,
    tg: tuple[TelegramEmulator, str],
    samples: SampleServer,
    monkeypatch: pytest.MonkeyPatch,
    columns: int,
) -> None:
    _campaign(cli, tg, samples, people=3)
    cli("send", "news")
    _width(monkeypatch, columns)
    for args, rows in (
        (["items"], 5),
        (["subscriber", "list"], 3),
        (["automation", "list"], 1),
        (["channel", "list"], 1),
        (["sql", "SELECT automation, recipient, status, error FROM send_history"], 3),
    ):
        lines = cli(*args).splitlines()
        assert max(cell_len(line) for line in lines) <= columns, args
        assert len(lines) == rows + 4, (args, lines)


# --------------------------------------------------------------------------- send progress (12.8)


def test_send_progress_counts_recorded_deliveries_of_a_known_total(
    cli: Cli, tg: tuple[TelegramEmulator, str], samples: SampleServer
) -> None:
    emulator, _url = tg
    _campaign(cli, tg, samples, people=40)
    seen: list[tuple[int, int]] = []
    # at most 10 deliveries unrecorded: the outcomes are recorded in 4 batches or more
    settings = SendSettings(limits=False, max_in_flight=4, max_unrecorded=10)
    [result] = send_automation(
        Store(cli.db), "news", settings=settings, progress=lambda d, t: seen.append((d, t))
    )
    assert result.campaign.sent == 40 and sum(len(emulator.received(9000 + i)) for i in range(40)) == 40
    assert seen[0] == (0, 40)  # the total up front
    assert {total for _done, total in seen} == {40}
    done = [d for d, _total in seen]
    assert done == sorted(set(done)) and done[-1] == 40  # increasing, to the end
    assert len(done) >= 5


def test_the_send_bar_shows_done_of_total_and_the_rate(
    cli: Cli, tg: tuple[TelegramEmulator, str], samples: SampleServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _campaign(cli, tg, samples, people=30)
    screen = io.StringIO()  # stderr on a terminal: the bar is drawn
    monkeypatch.setattr(cli_send, "err", console(stderr=True, file=screen, force_terminal=True, width=120))
    cli("send", "news")
    assert cli.json("sql", "SELECT count(*) AS n FROM send_history WHERE status = 'sent'") == [{"n": 30}]
    frames = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "\n", screen.getvalue())
    assert "0/30" in frames  # before the first delivery: the total is known
    assert "30/30" in frames
    assert re.search(r"[0-9.,]+/s", frames)  # the rate
    assert "/?" not in frames


# --------------------------------------------------------------------------- a missing database (12.9)


@pytest.mark.parametrize(
    "args",
    [
        ["source", "list"],
        ["source", "list", "--format", "json"],
        ["items"],
        ["sql", "SELECT count(*) AS n FROM sources"],
        ["channel", "list"],
        ["subscriber", "list"],
        ["automation", "list"],
        ["report"],
        ["export"],
        ["poll"],
        ["run", "--no-poll"],
    ],
)
def test_read_only_commands_on_a_missing_database_create_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    db = tmp_path / "new" / "feedcast.duckdb"
    with pytest.raises(SystemExit) as exited:
        cli_module.main(["--db", str(db), *args])
    assert exited.value.code in (0, None)
    captured = capsys.readouterr()
    assert f"no database at {db} yet" in captured.err
    assert not db.parent.exists() or list(db.parent.iterdir()) == []
    if "json" in args:
        assert captured.out.strip() == "[]"


def test_a_name_on_a_missing_database_says_there_is_none_yet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "feedcast.duckdb"
    err = Cli(db, capsys)("source", "show", "blog", code=2)
    assert err.count("\n") == 1 and "no source named 'blog'" in err and f"no database at {db} yet" in err
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- the demo (12.5, 12.9)


@pytest.mark.slow
def test_the_demo_keeps_its_files_in_one_ignored_folder_and_names_a_command_that_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("DEMO_SITE", "SANDBOX_TELEGRAM_URL", "SANDBOX_MESSENGER_URL", "SANDBOX_SMTP_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)  # a fresh clone's folder
    _width(monkeypatch, 80)
    out = Cli(tmp_path / "unused.duckdb", capsys)("demo")
    assert os.listdir(tmp_path) == [".feedcast"]
    folder = tmp_path / ".feedcast" / "demo"
    assert {"demo.yaml", "messenger-people.csv", "feedcast-demo.duckdb", "feedcast-demo.duckdb.key"} <= set(
        os.listdir(folder)
    )
    assert "{'" not in out and re.search(r"sandbox: telegram http://127\.0\.0\.1:\d+", out)
    assert max(cell_len(line) for line in out.splitlines() if line.startswith(("┃", "│"))) <= 80
    # the hint names a command that runs from here, with the demo's database
    explore = re.search(r"Explore: (.+?) --db (\S+) sql", out.replace("\n", " "))
    assert explore is not None
    command = shlex.split(explore.group(1))
    assert Path(explore.group(2)) == Path(".feedcast/demo/feedcast-demo.duckdb")
    ran = subprocess.run(
        [
            *command,
            "--db",
            explore.group(2),
            "sql",
            "SELECT count(*) AS n FROM send_history",
            "--format",
            "csv",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0 and ran.stdout.splitlines()[1] == "8", ran.stderr
    if command != ["feedcast"]:
        assert "source " in out and "activate" in out and "pipx install ." in out
    # none of what the demo wrote would be committed from a clone
    for path in (".feedcast/demo/demo.yaml", "feedcast-demo.duckdb.key", "feedcast.duckdb", "x/y.duckdb.wal"):
        ignored = subprocess.run(
            ["git", "-C", str(REPO), "check-ignore", "-q", "--no-index", path], check=False, timeout=30
        )
        assert ignored.returncode == 0, path


def test_the_readme_says_how_to_run_feedcast_after_the_demo() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert ".venv/bin/feedcast --db .feedcast/demo/feedcast-demo.duckdb" in readme
    assert "source .venv/bin/activate" in readme
    assert "pipx install ." in readme and "uv tool install ." in readme


# --------------------------------------------------------------------------- the install (12.9)


@pytest.mark.slow
def test_an_editable_install_builds_without_setuptools_warnings(tmp_path: Path) -> None:
    project = tmp_path / "clone"
    project.mkdir()
    for name in ("feedcast", "sources", "layouts", "channels", "flows"):
        shutil.copytree(REPO / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, project / name)
    (project / "tests").mkdir()  # folders that are no packages of feedcast's
    (project / "bench").mkdir()
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    # what pip runs to install -e: setuptools' PEP 660 hook, every warning it gives recorded
    script = (
        "import json, warnings\n"
        "with warnings.catch_warnings(record=True) as seen:\n"
        "    warnings.simplefilter('always')\n"
        "    from setuptools import build_meta\n"
        f"    build_meta.build_editable({str(wheels)!r})\n"
        "print(json.dumps([f'{w.category.__name__}: {w.message}' for w in seen]))\n"
    )
    build = subprocess.run(
        [sys.executable, "-c", script], cwd=project, capture_output=True, text=True, timeout=300, check=False
    )
    assert build.returncode == 0, build.stderr
    assert json.loads(build.stdout.splitlines()[-1]) == []
    [wheel] = wheels.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        [pth] = [n for n in archive.namelist() if n.endswith(".pth")]
        assert archive.read(pth).decode().strip() == str(project)  # all five packages, from the clone
