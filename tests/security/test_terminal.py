"""Hostile text on the terminal: a source, a subscriber list or a provider puts Rich
markup, emoji codes, ANSI escapes and other control characters into the data; every
list, show and sql view shows it literally (issue 13.6).

One database is filled through the real CLI from a hostile JSON Feed served on loopback,
a CSV import and a send to the Telegram emulator; then every terminal view runs once
(the sweep) and each attack is checked on all of them."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.text import Text

import feedcast.cli as cli_module
from feedcast.cli import main
from feedcast.sandbox import AsgiServer, SampleServer
from feedcast.sandbox.telegram import TelegramEmulator
from feedcast.terminal import console

TOKEN = "424242:terminal-test-token-qwertyuiop"
# markup that does not balance (MarkupError), markup that would style, emoji codes, SGR
# colours, an OSC title change ended by BEL, a clear-screen, an 8-bit CSI, a bidi override
EVIL = (
    "Deal [/bold] [red]red[/red] root:x:0:0 :thumbs_up: \x1b[31mRED\x1b[0m "
    "\x1b]0;pwned\x07 \x1b[2J \x9b31m \u202eevil\u202c end"
)
RAW = ["\x1b", "\x07", "\x9b", "\u202e", "\u202c"]  # none of these may reach the terminal
EMOJI = ["❌", "👍"]  # what :x: and :thumbs_up: become when emoji codes are replaced

# every terminal view of the data, and whether it shows EVIL whole (at 400 columns); the
# records view (too many columns for the width) at 100 columns
NARROW = {"sql records": 100}
VIEWS: dict[str, tuple[list[str], bool]] = {
    "source list": (["source", "list"], False),
    "source show": (["source", "show", "evil"], True),
    "items": (["items"], True),
    "sql": (["sql", "SELECT title, url, summary FROM items ORDER BY id"], True),
    "sql records": (["sql", "SELECT * FROM items ORDER BY id"], False),
    # the title without its markup: emoji codes and controls alone
    "sql no markup": (["sql", "SELECT translate(title, '[]', '()') AS title FROM items"], False),
    "sql header": (["sql", 'SELECT 1 AS "[/bold] :x: \x1b[2J"'], False),
    "send_history": (["sql", "SELECT automation, recipient, status FROM send_history"], False),
    "channel list": (["channel", "list"], False),
    "channel show": (["channel", "show", "tg"], False),
    "subscriber list": (["subscriber", "list"], True),
    "automation list": (["automation", "list"], False),
    "automation show": (["automation", "show", "news"], True),
    "preview": (["preview", "--source", "evil", "--layout", "single", "--channel-kind", "telegram"], True),
    "preview email": (["preview", "--source", "evil", "--layout", "single", "--channel-kind", "email"], True),
    "poll": (["poll", "--force"], False),
    "report": (["report"], False),
    "run": (["run", "--no-poll"], False),
}


@dataclass
class Shown:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def _run(db: Path, *args: str) -> Shown:
    stdout, stderr = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            main(["--db", str(db), *args])
        except SystemExit as exc:
            code = int(exc.code or 0)
        except Exception as exc:  # what the old code did: a MarkupError out of rich
            code = -1
            stderr.write(f"crashed: {type(exc).__name__}: {exc}")
    return Shown(code, stdout.getvalue(), stderr.getvalue())


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Shown]]]:
    folder = tmp_path_factory.mktemp("terminal")
    db = folder / "hostile.duckdb"
    feed = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": EVIL,
        "items": [
            {"id": "evil-1", "url": "https://shop.example/x?[bold]=:x:", "title": EVIL, "content_text": EVIL}
        ],
    }
    where = ["--where", f"title <> '{EVIL} (not this one)'", "--backfill", "1"]
    people = folder / "people.csv"
    people.write_text(f"chat_id,name\n701,{EVIL}\n", encoding="utf-8")
    emulator = TelegramEmulator(seed=3)
    emulator.add_bot(TOKEN, "terminal_bot")
    with (
        pytest.MonkeyPatch.context() as mp,
        SampleServer() as samples,
        AsgiServer(emulator.app) as telegram,
    ):
        mp.setenv("TG_TOKEN", TOKEN)
        mp.setenv("FEEDCAST_ALLOW_PRIVATE_NETWORKS", "1")
        mp.setattr(cli_module.out, "width", 400)  # nothing cut: EVIL is shown whole
        samples.put("/evil.json", json.dumps(feed), "application/feed+json")
        for args in (
            ["source", "add", "evil", samples.base_url + "/evil.json", "--backfill", "1"],
            ["channel", "add", "tg", "telegram", "--token", "env:TG_TOKEN", "--api-url", telegram.base_url],
            ["subscriber", "import", "tg", str(people)],
            [
                "automation",
                "add",
                "news",
                "--source",
                "evil",
                "--layout",
                "single",
                "--channel",
                "tg",
                *where,
            ],
            ["send", "news"],
        ):
            setup = _run(db, *args)
            assert setup.code == 0, (args, setup.text)
        views = {}
        for name, (args, _whole) in VIEWS.items():
            mp.setattr(cli_module.out, "width", NARROW.get(name, 400))
            views[name] = _run(db, *args)
        yield db, views


@pytest.fixture
def shown(hostile: tuple[Path, dict[str, Shown]]) -> dict[str, Shown]:
    return hostile[1]


def test_rich_markup_in_data_is_shown_as_text(shown: dict[str, Shown]) -> None:
    crashed = {name: s.text[-200:] for name, s in shown.items() if s.code != 0}
    assert crashed == {}
    for name, (_args, whole) in VIEWS.items():
        if whole:
            assert "Deal [/bold] [red]red[/red]" in shown[name].text, name
    assert "[/bold] :x:" in shown["sql header"].text


def test_emoji_codes_in_data_are_not_replaced(shown: dict[str, Shown]) -> None:
    replaced = {name: e for name, s in shown.items() for e in EMOJI if e in s.text}
    assert replaced == {}
    assert "root:x:0:0 :thumbs_up:" in shown["sql no markup"].text
    for name, (_args, whole) in VIEWS.items():
        if whole:
            assert "root:x:0:0 :thumbs_up:" in shown[name].text, name


def test_control_characters_and_escapes_are_made_visible(shown: dict[str, Shown]) -> None:
    assert "     title Deal [/bold]" in shown["sql records"].out  # one field a line, as DuckDB's
    raw = {name: [repr(c) for c in RAW if c in s.text] for name, s in shown.items()}
    assert {name: found for name, found in raw.items() if found} == {}
    for name, (_args, whole) in VIEWS.items():
        if whole:
            text = shown[name].text
            assert "\\x1b[31mRED\\x1b[0m" in text and "\\x1b]0;pwned\\x07" in text, name
            assert "\\x9b31m" in text and "\\u202eevil\\u202c" in text, name


def test_json_output_keeps_the_data_and_escapes_what_a_terminal_acts_on(
    hostile: tuple[Path, dict[str, Shown]],
) -> None:
    db, _shown = hostile
    for args in (["items"], ["sql", "SELECT title FROM items"], ["subscriber", "list"]):
        result = _run(db, *args, "--format", "json")
        assert result.code == 0, result.text
        assert [repr(c) for c in RAW if c in result.out] == [], args
        values = [v for row in json.loads(result.out) for v in row.values()]
        assert EVIL in values, args  # the same data, only escaped in the JSON text


def test_a_slip_past_the_helpers_is_still_caught_by_the_console() -> None:
    buffer = io.StringIO()
    terminal = console(file=buffer, width=100, force_terminal=True, color_system="truecolor")
    terminal.print(f"error: {EVIL}")  # a raw f-string, as a careless command would print it
    terminal.print(Text(EVIL))  # a Text built straight from data, bypassing literal()
    text = buffer.getvalue()
    assert [repr(c) for c in RAW if c in text] == []
    assert text.count("\\x1b[31mRED") == 2 and text.count("[/bold] [red]red[/red]") == 2
    assert "❌" not in text and "👍" not in text
