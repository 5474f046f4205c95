"""``feedcast apply`` and ``feedcast export``: idempotent, dry-run, prune, round trip, and
errors that name the file, the entry and the field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import feedcast.cli as cli_module
from feedcast.sandbox import SampleServer, sample_text
from tests.test_cli import Cli

CONFIG = """
sources:
  - name: blog
    url: ${BLOG_URL}
    every: 30m
channels:
  - name: review
    kind: outbox
    dir: {outbox}
  - name: hook
    kind: webhook
    url: https://hooks.example/crm
    format: json
    secret: env:HOOK_SECRET
subscribers:
  - channel: review
    file: people.csv
    tags: [staff]
  - channel: review
    recipients: [boss]
automations:
  - name: digest
    sources: [blog]
    layout: digest
    channel: review
    schedule: "0 9 * * 1-5"
    timezone: Europe/Paris
    where: "title ILIKE '%trail%' OR true"
  - name: crm
    sources: [blog]
    layout: single
    channel: hook
    on_new: true
"""


@pytest.fixture
def samples() -> Iterator[SampleServer]:
    with SampleServer() as server:
        server.put(
            "/blog.rss", sample_text("blog.rss").replace("{base}", server.base_url), "application/rss+xml"
        )
        yield server


@pytest.fixture
def cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, samples: SampleServer
) -> Cli:
    monkeypatch.setattr(cli_module.out, "width", 400)
    monkeypatch.setenv("FEEDCAST_ALLOW_PRIVATE_NETWORKS", "1")
    monkeypatch.setenv("BLOG_URL", samples.base_url + "/blog.rss")
    return Cli(tmp_path / "cli.duckdb", capsys)


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "people.csv").write_text("email,name\nann\nbob,Bob\n", encoding="utf-8")
    path = tmp_path / "feedcast.yaml"
    path.write_text(text.replace("{outbox}", str(tmp_path / "outbox")), encoding="utf-8")
    return path


def test_apply_creates_then_is_idempotent_then_changes_and_prunes(cli: Cli, tmp_path: Path) -> None:
    path = _write(tmp_path, CONFIG)
    dry = cli("apply", str(path), "--dry-run")
    assert "would be created: source blog" in dry and "dry run: nothing was changed" in dry
    assert cli.json("source", "list") == []

    out = cli("apply", str(path))
    for line in ("created: source blog", "created: channel review (outbox)", "created: channel hook (webhook)",
                 "created: automation digest", "created: automation crm"):  # fmt: skip
        assert line in out
    assert "source blog: baseline ok, 5 items" in out
    assert "subscribers of review: 2 added" in out and "subscribers of review: 1 added" in out
    subs = cli.json("subscriber", "list", "--channel", "review")
    assert isinstance(subs, list) and sorted(s["recipient"] for s in subs) == ["ann", "bob", "boss", "review"]
    digest = cli.json("automation", "show", "digest")
    assert (
        isinstance(digest, dict)
        and digest["schedule"] == "cron"
        and digest["next_run_local"].endswith(("+01:00", "+02:00"))
    )

    again = cli("apply", str(path))
    assert "nothing to change" in again and "created" not in again

    changed = CONFIG.replace('schedule: "0 9 * * 1-5"', "every: 1h").replace("every: 30m", "every: 1h")
    out = cli("apply", str(_write(tmp_path, changed)))
    assert "changed: source blog (every)" in out
    assert "changed: automation digest (schedule, every)" in out
    assert cli.json("automation", "show", "digest")["schedule"] == "every"  # type: ignore[index]

    smaller = changed[: changed.index("  - name: crm")]
    out = cli("apply", str(_write(tmp_path, smaller)))
    assert "kept (not in the file; --prune removes it): automation crm" in out
    out = cli("apply", str(_write(tmp_path, smaller)), "--prune")
    assert "removed: automation crm" in out
    assert [a["name"] for a in cli.json("automation", "list")] == ["digest"]  # type: ignore[union-attr]


def test_export_round_trips(cli: Cli, tmp_path: Path) -> None:
    cli("apply", str(_write(tmp_path, CONFIG)))
    exported = cli("export")
    assert "env:HOOK_SECRET" in exported and "subscribers" not in exported.split("\n", 1)[1]
    (tmp_path / "exported.yaml").write_text(exported, encoding="utf-8")
    plan = json.loads(cli("apply", str(tmp_path / "exported.yaml"), "--dry-run", "--format", "json"))
    assert plan["created"] == [] and plan["changed"] == [] and plan["removed"] == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "sources:\n  - name: blog\n    url: https://x.example/\n    colour: red\n",
            "sources[0] (blog): field 'colour': unknown field",
        ),
        (
            "automations:\n  - name: a\n    sources: [blog]\n    channel: c\n",
            "automations[0] (a): field 'layout': Field required",
        ),
        ("sources: [\n", "line 2"),
        (
            "channels:\n  - name: t\n    kind: telegram\n    token: 123:abc\n",
            "channels[0] (t): --token is a secret",
        ),
        ("channels:\n  - name: t\n    kind: pigeon\n", "channels[0] (t): unknown channel kind 'pigeon'"),
        (
            "automations:\n  - name: a\n    sources: [nope]\n    layout: single\n    channel: c\n",
            "automations[0] (a): field 'sources': no source named 'nope'",
        ),
        ("sources:\n  - name: s\n    url: ${NOT_SET_ANYWHERE}\n", "${NOT_SET_ANYWHERE} is not set"),
        (
            "sources:\n  - name: s\n    url: https://a.example/\n  - name: s\n    url: https://b.example/\n",
            "sources[1] (s): the name is used twice",
        ),
        (CONFIG.replace('"0 9 * * 1-5"', '"0 25 * * *"'), "automations[0] (digest): invalid --schedule"),
        (CONFIG.replace("title ILIKE '%trail%' OR true", "colour = 1"), "automations[0] (digest): --where"),
    ],
)
def test_errors_name_the_file_entry_and_field(cli: Cli, tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    err = cli("apply", str(path), code=2)
    assert message in err and str(path) in err and len(err.strip().splitlines()) == 1
    assert cli.json("source", "list") == []  # nothing half-applied


def test_the_readme_example_is_a_valid_file() -> None:
    import yaml

    from feedcast.config import ConfigFile

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    block = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = ConfigFile.model_validate(yaml.safe_load(block))
    assert [a.name for a in config.automations] == ["deals"] and config.channels[0].options() == {
        "token": "env:TG_TOKEN"
    }


def test_public_audiences_apply_export_and_the_audience_commands(cli: Cli, tmp_path: Path) -> None:
    text = "public_audiences: [deals, news]\n"
    out = cli("apply", str(_write(tmp_path, text)))
    assert "public audience deals" in out and "public audience news" in out
    assert "public_audiences:\n- deals\n- news" in cli("export")
    listed = cli.json("audience", "list")
    assert listed == [
        {"tag": "deals", "public": True, "subscribers": 0},
        {"tag": "news", "public": True, "subscribers": 0},
    ]
    assert "audience news: now private (/s/news answers 404)" in cli("audience", "private", "news")
    assert "audience vip: now public" in cli("audience", "public", "vip")
    assert "already public" in cli("audience", "public", "vip")
    # without --prune a tag the file does not list stays public; with it, it closes
    plan = json.loads(cli("apply", str(_write(tmp_path, text)), "--prune", "--dry-run", "--format", "json"))
    assert "public audience vip" in plan["removed"] and "public audience news" in plan["created"]
    assert "is not an audience tag" in cli("audience", "public", "no spaces!", code=2)
    assert "public_audiences[0]" in cli("apply", str(_write(tmp_path, "public_audiences: ['a b']\n")), code=2)
