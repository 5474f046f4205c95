"""A hostile user layout cannot stall ``send`` or fill the memory (issue 13.5).

Each attack is a user layout (``FEEDCAST_LAYOUTS``) given to ``automation add``, then
``feedcast send`` run as its own process, the way a user or cron runs it: the send must
fail with one clear line naming the layout and its file, exit non-zero, send nothing,
release the automation's lease (the next send is not "being sent"), and stay within a
modest peak memory (the child's own ``ru_maxrss``, read with ``os.wait4``). Then the
automation, switched to a built-in layout, sends its queued item.

The child runs under an address-space cap, so that on code without the limits the
500 MB attack fails (MemoryError) instead of taking the shared machine's memory.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import feedcast.cli as cli_module
from feedcast.sandbox import AsgiServer, SampleServer, sample_text
from feedcast.sandbox.telegram import TelegramEmulator
from tests.test_cli import Cli

TOKEN = "424242:layout-limits-token-qwerty"
ADDRESS_SPACE_CAP = 3 * 1024**3  # bytes of virtual memory the child may map
PEAK_RSS_BOUND_MB = 400  # the child's resident peak: the interpreter and feedcast, plus the limits
_MAIN = "from feedcast.cli import main; main()"
RUN_TIMEOUT = 90.0  # a safety net so an unprotected send cannot hang the suite


@dataclass
class Run:
    code: int
    out: str
    err: str
    peak_mb: float


@pytest.fixture(scope="module")
def telegram() -> Iterator[tuple[TelegramEmulator, AsgiServer]]:
    emulator = TelegramEmulator(seed=13)
    with AsgiServer(emulator.app) as server:
        yield emulator, server


@pytest.fixture
def samples() -> Iterator[SampleServer]:
    with SampleServer() as server:
        server.put(
            "/blog.rss", sample_text("blog.rss").replace("{base}", server.base_url), "application/rss+xml"
        )
        yield server


@dataclass
class Setup:
    cli: Cli
    layouts: Path
    emulator: TelegramEmulator
    env: dict[str, str]

    def layout(self, name: str, telegram_template: str) -> None:
        folder = self.layouts / name
        folder.mkdir(parents=True)
        (folder / "layout.yaml").write_text(f"name: {name}\nper: campaign\n", encoding="utf-8")
        (folder / "telegram.j2").write_text(telegram_template, encoding="utf-8")

    def send(self, automation: str) -> Run:
        """``feedcast send AUTOMATION`` in a child process: its exit code, output and peak RSS."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            child = subprocess.Popen(
                [sys.executable, "-c", _MAIN, "--db", str(self.cli.db), "send", automation],
                stdout=out,
                stderr=err,
                env=self.env,
                preexec_fn=_cap_address_space,
            )
            deadline = time.monotonic() + RUN_TIMEOUT
            while True:
                pid, status, usage = os.wait4(child.pid, os.WNOHANG)
                if pid:
                    break
                if time.monotonic() > deadline:
                    child.kill()
                    os.wait4(child.pid, 0)
                    pytest.fail(f"feedcast send {automation} still running after {RUN_TIMEOUT:.0f} s")
                time.sleep(0.05)
            child.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            return Run(
                child.returncode,
                out.read().decode("utf-8", "replace"),
                err.read().decode("utf-8", "replace"),
                usage.ru_maxrss / 1024,
            )

    def sent_rows(self) -> int:
        rows = json.loads(self.cli("sql", "SELECT count(*) AS n FROM send_history", "--format", "json"))
        return int(rows[0]["n"])


def _cap_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_CAP, ADDRESS_SPACE_CAP))


@pytest.fixture
def setup(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    telegram: tuple[TelegramEmulator, AsgiServer],
    samples: SampleServer,
) -> Setup:
    emulator, server = telegram
    emulator.reset(everything=True)
    emulator.add_bot(TOKEN, "limits_bot")
    layouts = tmp_path / "layouts"
    layouts.mkdir()
    monkeypatch.setattr(cli_module.out, "width", 400)
    monkeypatch.setenv("TG_TOKEN", TOKEN)
    monkeypatch.setenv("FEEDCAST_ALLOW_PRIVATE_NETWORKS", "1")
    monkeypatch.setenv("FEEDCAST_LAYOUTS", str(layouts))
    monkeypatch.setenv("FEEDCAST_LAYOUT_TIME_LIMIT", "2")  # quick for the tests; 5 s by default
    monkeypatch.delenv("FEEDCAST_LAYOUT_MAX_OUTPUT", raising=False)
    cli = Cli(tmp_path / "limits.duckdb", capsys)
    cli("source", "add", "blog", samples.base_url + "/blog.rss")
    cli("channel", "add", "tg", "telegram", "--token", "env:TG_TOKEN", "--api-url", server.base_url)
    cli("subscriber", "add", "tg", "501")
    return Setup(cli, layouts, emulator, dict(os.environ))


def _attack(setup: Setup, template: str, *expected: str) -> Run:
    """The hostile layout ``hog`` sends nothing, says why in one line, and leaves the
    automation free: a second send fails the same way (not "being sent"), and the
    automation sends its queued item once it uses a built-in layout."""
    setup.layout("hog", template)
    setup.cli(
        "automation",
        "add",
        "news",
        "--source",
        "blog",
        "--layout",
        "hog",
        "--channel",
        "tg",
        "--backfill",
        "1",
    )
    run = setup.send("news")
    lines = run.err.strip().splitlines()
    assert run.code != 0, run
    assert len(lines) == 1 and "Traceback" not in run.err, run.err
    line = lines[0]
    assert "layout 'hog'" in line and str(setup.layouts / "hog" / "telegram.j2") in line, line
    for text in expected:
        assert text in line, line
    assert setup.sent_rows() == 0 and setup.emulator.received(501) == []
    assert run.peak_mb < PEAK_RSS_BOUND_MB, f"peak RSS {run.peak_mb:.0f} MB"

    again = setup.cli("send", "news", code=2)  # the lease was released: not "being sent"
    assert "layout 'hog'" in again and "being sent" not in again

    setup.cli("automation", "edit", "news", "--layout", "single")
    assert "sent" in setup.cli("send", "news")
    assert setup.sent_rows() >= 1 and setup.emulator.received(501)
    return run


@pytest.mark.slow
def test_nested_loops_stop_at_the_time_limit(setup: Setup) -> None:
    """``range(100000)`` inside ``range(100000)``: 10^10 empty iterations."""
    _attack(
        setup,
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}{{ text('x') }}",
        "took more than 2 s to render",
        "FEEDCAST_LAYOUT_TIME_LIMIT",
    )


@pytest.mark.slow
def test_a_500_mb_message_stops_at_the_output_limit(setup: Setup) -> None:
    """5000 times 100,000 characters: 500 MB written (1.6 GB of memory before)."""
    _attack(
        setup,
        '{% for i in range(5000) %}{{ "x" * 100000 }}{% endfor %}',
        "renders more than 2 MB for one message (the output limit, FEEDCAST_LAYOUT_MAX_OUTPUT",
    )


@pytest.mark.slow
def test_a_500_mb_call_block_stops_at_the_work_limit(setup: Setup) -> None:
    """The same 500 MB inside ``{% call text() %}``, built in memory before it becomes a
    module: stopped once the render has built 32 times the output limit."""
    _attack(
        setup,
        '{% call text() %}{% for i in range(5000) %}{{ "x" * 100000 }}{% endfor %}{% endcall %}',
        "more than the 64 MB a render may build",
        "FEEDCAST_LAYOUT_MAX_OUTPUT",
    )


@pytest.mark.slow
def test_a_huge_format_width_is_refused_before_it_is_built(setup: Setup) -> None:
    """``"{:>999999999}".format("x")``: a 1 GB string from one call."""
    _attack(setup, '{{ text("{:>999999999}".format("x")) }}', "format width of 1 GB")


def test_the_other_automations_go_on(setup: Setup) -> None:
    """``feedcast run`` with a hostile automation and a sound one: the sound one sends,
    the hostile one is reported, and its lease is not left behind."""
    setup.layout("hog", "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}")
    for name, layout in (("a-hog", "hog"), ("b-news", "single")):
        setup.cli(
            "automation",
            "add",
            name,
            "--source",
            "blog",
            "--layout",
            layout,
            "--channel",
            "tg",
            "--on-new",
            "--backfill",
            "1",
        )
    err = setup.cli("run", code=1)
    assert "a-hog" in err and "layout 'hog'" in err and "took more than 2 s" in err, err
    history = json.loads(setup.cli("sql", "SELECT DISTINCT automation FROM send_history", "--format", "json"))
    assert history == [{"automation": "b-news"}] and setup.emulator.received(501)
    again = setup.cli("send", "a-hog", code=2)
    assert "layout 'hog'" in again and "being sent" not in again


# Other ways to make a render build too much in one step, or in a few statements, each
# through ``feedcast preview`` (the same renderer as send): one line naming the layout.
_DOUBLE = "{% set s = s ~ s %}"
_NEST = "{% set a = [a, a, a, a, a, a, a, a] %}"
ATTACKS = {
    "percent-width": ('{{ text("%999999999s" % "x") }}', "format width of 1 GB"),
    "nested-format-width": ('{{ text("{:>{w}}".format("x", w=999999999)) }}', "format width of 1 GB"),
    "float-precision": ('{{ text("{:.999999999f}".format(1.5)) }}', "format width of 1 GB"),
    "format-filter": ('{{ text("%999999999d"|format(1)) }}', "format width of 1 GB"),
    "center-filter": ('{{ text("x"|center(999999999)) }}', "center width of 1 GB"),
    "rjust-method": ('{{ text("x".rjust(999999999)) }}', "rjust() width of 1 GB"),
    "replace-growth": ('{% set s = "a" * 100000 %}{{ text(s|replace("a", s)) }}', "replaced text of 10 GB"),
    "join-growth": ('{% set s = "a" * 100000 %}{{ text(s.join([s] * 500)) }}', "joined text of"),
    "indent-growth": ('{% set s = "\\n" * 100000 %}{{ text(s|indent("x" * 100000)) }}', "indented text of"),
    "doubling-concat": ('{% set s = "a" * 100000 %}' + _DOUBLE * 12 + "{{ text(s) }}", "joined text of"),
    "shared-references": ('{% set a = ["x" * 1000] %}' + _NEST * 9 + "{{ text(a) }}", "would write out to"),
    "shared-references-json": (
        '{% set a = ["x" * 1000] %}' + _NEST * 9 + "{{ payload(a) }}",
        "would write out",
    ),
    "namespace-hoard": (
        '{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = ns.l + ["y" * 50000 ~ i] %}'
        "{% endfor %}{{ text(ns.l|length) }}",
        "a render may build",
    ),
    "literal-loop-in-macro": (
        "{% macro m() %}{% for i in range(100000) %}"
        + "x" * 65536
        + "{% endfor %}{% endmacro %}{% set x = m() %}{{ text('ok') }}",
        "a render may build",
    ),
    "integer-squaring": ("{% set n = 10 ** 60 %}" + "{% set n = n * n %}" * 16 + "{{ text(n) }}", "integers"),
    "lipsum": ("{{ text(lipsum(100000)) }}", "lipsum()"),
    "batch-fill": ('{{ text(["x"]|batch(999999999, "y")|list) }}', "batch of"),
    "json-indent": ("{{ text([[[1]]]|tojson(indent=999999999)) }}", "JSON indent"),
    "list-sum": ("{{ text(([[1]] * 100000)|sum(start=[])) }}", "sums something other than numbers"),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_one_step_growth_is_refused(setup: Setup, attack: str) -> None:
    template, expected = ATTACKS[attack]
    setup.layout("hog", template)
    err = setup.cli(
        "preview", "--source", "blog", "--layout", "hog", "--channel-kind", "telegram", "--limit", "1", code=2
    )
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "layout 'hog'" in lines[0] and expected in lines[0], err
    assert "telegram.j2" in lines[0]


def test_the_limits_are_set_by_environment_variables(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    setup.layout("wordy", '{% for i in range(30) %}{{ "word " * 20 }}{% endfor %}')  # 3 kB
    preview = (
        "preview",
        "--source",
        "blog",
        "--layout",
        "wordy",
        "--channel-kind",
        "telegram",
        "--limit",
        "1",
    )
    assert "word word" in setup.cli(*preview)
    monkeypatch.setenv("FEEDCAST_LAYOUT_MAX_OUTPUT", "2kB")
    err = setup.cli(*preview, code=2)
    assert "layout 'wordy' renders more than 2 kB for one message" in err
    monkeypatch.setenv("FEEDCAST_LAYOUT_MAX_OUTPUT", "lots")
    assert "FEEDCAST_LAYOUT_MAX_OUTPUT must be a size such as 2MB" in setup.cli(*preview, code=2)
    monkeypatch.delenv("FEEDCAST_LAYOUT_MAX_OUTPUT")
    monkeypatch.setenv("FEEDCAST_LAYOUT_TIME_LIMIT", "0")
    assert "FEEDCAST_LAYOUT_TIME_LIMIT must be a number of seconds above 0" in setup.cli(*preview, code=2)
