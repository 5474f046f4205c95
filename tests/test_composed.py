"""Composed campaigns through the real CLI: a message file of content modules, checked
before anything is stored, sent to every channel kind's emulator, previewed exactly as
sent, scheduled at a local time (DST included, on a fake clock), cancelled."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine

import feedcast.cli as cli_module
from feedcast.compose import plan_composed
from feedcast.kernel.models import DeliveryUpdate, NewSubscriber
from feedcast.sandbox import AsgiServer, SampleServer
from feedcast.sandbox.messenger import MessengerEmulator
from feedcast.sandbox.smtp import SmtpSink
from feedcast.sandbox.telegram import TelegramEmulator
from feedcast.sandbox.webhooks import WebhookReceiver
from feedcast.store import Store
from tests.test_cli import Cli

TG_TOKEN = "4242:composed-test-token-abcdefghij"
FB_TOKEN = "EAAGcomposedpagetoken0123456789"

MESSAGE = """\
subject: Winter sale
modules:
  - text: "Winter sale starts **today**"
  - image: {base}/banner.jpg
    caption: "Up to _40 %_ off"
    alt: "Coats on a rail"
  - text: "Pick yours before Sunday, [see the rules](https://shop.example/rules)"
    buttons:
      - {{label: "Shop now", url: "https://shop.example/sale"}}
      - {{label: "Not interested", reply: "NO_SALE"}}
  - video: {base}/sale.mp4
    caption: "The collection"
  - audio: {base}/jingle.mp3
  - file: {base}/catalogue.pdf
    name: "Winter catalogue.pdf"
"""


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setattr(cli_module.out, "width", 400)
    monkeypatch.setenv("TG_TOKEN", TG_TOKEN)
    monkeypatch.setenv("FB_TOKEN", FB_TOKEN)
    monkeypatch.setenv("FEEDCAST_ALLOW_PRIVATE_NETWORKS", "1")
    monkeypatch.setenv("FEEDCAST_SECRET_KEY", "k" * 32)
    return Cli(tmp_path / "cli.duckdb", capsys)


@pytest.fixture
def media() -> Iterator[SampleServer]:
    """The media URLs of the message file: each answers (HEAD and GET) with its size."""
    with SampleServer() as server:
        for path, kind in [
            ("/banner.jpg", "image/jpeg"),
            ("/sale.mp4", "video/mp4"),
            ("/jingle.mp3", "audio/mpeg"),
            ("/catalogue.pdf", "application/pdf"),
        ]:
            server.put(path, b"x" * 2048, kind)
        yield server


class Rig:
    """Every channel kind on its emulator, registered through the CLI, two subscribers each."""

    def __init__(self, cli: Cli, stack: ExitStack, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tg = TelegramEmulator(seed=3)
        self.tg.add_bot(TG_TOKEN, "composed_bot")
        tg_server = stack.enter_context(AsgiServer(self.tg.app))
        self.fb = MessengerEmulator(seed=3)
        self.fb.add_page(FB_TOKEN, page_id="99", name="Shop")
        fb_server = stack.enter_context(AsgiServer(self.fb.app))
        self.sink = stack.enter_context(SmtpSink())
        self.hooks = WebhookReceiver(seed=3)
        self.slack = self.hooks.add_slack()
        self.discord = self.hooks.add_discord()
        self.json = self.hooks.add_json("crm")
        hooks_server = stack.enter_context(AsgiServer(self.hooks.app))
        base = hooks_server.base_url
        cli("channel", "add", "tg", "telegram", "--token", "env:TG_TOKEN", "--api-url", tg_server.base_url)
        cli(
            "channel", "add", "fb", "messenger", "--page-token", "env:FB_TOKEN",
            "--api-url", fb_server.base_url + "/v25.0",
        )  # fmt: skip
        cli("channel", "add", "mail", "email", "--smtp", self.sink.url, "--from", "news@shop.example")
        monkeypatch.setenv("SLACK_URL", f"{base}/services/{self.slack.key}")
        monkeypatch.setenv("DISCORD_URL", f"{base}/api/v10/webhooks/{self.discord.key}/{self.discord.token}")
        cli("channel", "add", "slack", "webhook", "--url", "env:SLACK_URL", "--format", "slack")
        cli("channel", "add", "discord", "webhook", "--url", "env:DISCORD_URL", "--format", "discord")
        cli("channel", "add", "crm", "webhook", "--url", f"{base}/hooks/crm", "--format", "json")
        for chat in ("101", "102"):
            cli("subscriber", "add", "tg", chat)
        for address in ("ann@example.org", "bob@example.org"):
            cli("subscriber", "add", "mail", address)
        now = datetime.now(UTC)
        Store(cli.db).add_subscribers(
            "fb", [NewSubscriber(psid, last_inbound_at=now) for psid in ("9001", "9002")]
        )

    CHANNELS = ("tg", "fb", "mail", "slack", "discord", "crm")


@pytest.fixture
def rig(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    with ExitStack() as stack:
        yield Rig(cli, stack, monkeypatch)


@pytest.fixture(scope="module")
def telegram() -> Iterator[tuple[TelegramEmulator, str]]:
    emulator = TelegramEmulator(seed=4)
    emulator.add_bot(TG_TOKEN, "composed_bot")
    with AsgiServer(emulator.app) as server:
        yield emulator, server.base_url


def _message(tmp_path: Path, media: SampleServer, text: str = MESSAGE) -> Path:
    path = tmp_path / "winter.yaml"
    path.write_text(text.format(base=media.base_url), encoding="utf-8")
    return path


def _channels(*names: str) -> list[str]:
    return [arg for name in names for arg in ("--channel", name)]


def test_every_module_reaches_every_channel_kind(
    cli: Cli, rig: Rig, media: SampleServer, tmp_path: Path
) -> None:
    file = _message(tmp_path, media)
    out, err = cli.outputs("campaign", "create", "winter", *_channels(*Rig.CHANNELS), "--file", str(file))
    assert "campaign winter: 6 module(s) for tg, fb, mail, slack, discord, crm" in out
    # the reply button cannot go by email, Slack or Discord: said, not dropped silently
    assert err.count("is a reply button") == 3 and "Email takes no replies" in err
    preview = cli.json("campaign", "preview", "winter")
    assert "would send 9 message(s)" in preview["verdict"]  # type: ignore[index]
    sent = cli.json("campaign", "send", "winter")
    assert {c["channel"]: c["sent"] for c in sent["campaigns"]} == {  # type: ignore[index]
        "tg": 2, "fb": 2, "mail": 2, "slack": 1, "discord": 1, "crm": 1,
    }  # fmt: skip

    # Telegram: one call per module, the caption in its HTML, the reply as callback data
    calls = rig.tg.received(101)
    assert [c["method"] for c in calls] == [
        "sendMessage", "sendPhoto", "sendMessage", "sendVideo", "sendAudio", "sendDocument",
    ]  # fmt: skip
    assert calls[0]["params"]["text"] == "Winter sale starts <b>today</b>"
    assert calls[1]["params"]["caption"] == "Up to <i>40 %</i> off"
    keyboard = calls[2]["params"]["reply_markup"]["inline_keyboard"]
    assert keyboard == [
        [{"text": "Shop now", "url": "https://shop.example/sale"}],
        [{"text": "Not interested", "callback_data": "NO_SALE"}],
    ]
    assert '<a href="https://shop.example/rules">see the rules</a>' in calls[2]["params"]["text"]
    assert rig.tg.received(102) and len(rig.tg.received(102)) == 6

    # Messenger: attachments by type, the buttons as a button template with a postback
    messages = [m["message"] for m in rig.fb.received("9001")]
    kinds = [m.get("attachment", {}).get("type", "text") for m in messages]
    assert kinds.count("image") == 1 and kinds.count("video") == 1 and kinds.count("audio") == 1
    assert kinds.count("file") == 1
    template = next(
        m["attachment"]["payload"] for m in messages if m.get("attachment", {}).get("type") == "template"
    )
    assert template["buttons"][1] == {"type": "postback", "title": "Not interested", "payload": "NO_SALE"}
    assert "see the rules (https://shop.example/rules)" in template["text"]

    # email: one message, HTML and text, the image inline by URL, the files as links
    [mail] = rig.sink.messages_for("ann@example.org")
    assert mail.message["Subject"] == "Winter sale"
    html = mail.message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = mail.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert f'src="{media.base_url}/banner.jpg"' in html and 'alt="Coats on a rail"' in html
    assert "<strong>today</strong>" in html and "Shop now" in html and "Not interested" not in html
    assert f"Winter catalogue.pdf: {media.base_url}/catalogue.pdf" in text
    assert "Unsubscribe" in text

    # webhooks: Slack blocks, Discord embeds, the JSON document with the reply button
    [slack] = rig.hooks.received(rig.slack.name)
    assert "*today*" in json.dumps(slack.body)
    discord = json.dumps([d.body for d in rig.hooks.received(rig.discord.name)])
    assert "**today**" in discord and "[Shop now](<https://shop.example/sale>)" in discord
    [crm] = rig.hooks.received(rig.json.name)
    modules = crm.body["modules"]
    assert [m["kind"] for m in modules] == ["text", "image", "text", "video", "audio", "file"]
    assert {"title": "Not interested", "reply": "NO_SALE"} in modules[2]["buttons"]

    # the history says which kind of campaign each delivery belongs to
    rows = cli.json("sql", "SELECT DISTINCT campaign_kind, campaign_name, locale FROM send_history")
    assert rows == [{"campaign_kind": "composed", "campaign_name": "winter", "locale": "en"}]
    shown = cli.json("campaign", "show", "winter")
    assert shown["status"] == "sent" and len(shown["campaigns"]) == 6  # type: ignore[index,arg-type]
    again = cli("campaign", "send", "winter", code=2)
    assert "is sent: nothing to send" in again


def test_preview_shows_exactly_the_calls_send_makes(
    cli: Cli, rig: Rig, media: SampleServer, tmp_path: Path
) -> None:
    file = _message(tmp_path, media)
    cli("campaign", "create", "winter", *_channels(*Rig.CHANNELS), "--file", str(file))
    preview = cli.json("campaign", "preview", "winter")
    cli("campaign", "send", "winter")
    store = Store(cli.db)
    for part in preview["parts"]:  # type: ignore[index]
        [campaign_id] = [
            cid
            for cid in store.composed_campaign_ids(store.get_composed("winter").id)
            if store.campaign(cid).channel == part["channel"]
        ]
        stored = [{"method": c.method, "body": c.body} for _m, c in store.campaign_calls(campaign_id)]
        assert stored == [{"method": c["method"], "body": c["body"]} for c in part["calls"]], part["channel"]
        assert all(c["error"] is None for c in part["calls"])
    html = tmp_path / "preview.html"
    cli("campaign", "preview", "winter", "--html", str(html), "--format", "json")
    page = html.read_text(encoding="utf-8")
    assert "Content-Security-Policy" in page and "<script" not in page
    assert "campaign winter" in page.lower() and "Not interested" in page


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("modules:\n  - poster: x.jpg\n", "module 1: unknown module 'poster'"),
        ("modules:\n  - text: hi\n    colour: red\n", "module 1 (text): unknown field 'colour'"),
        ("modules:\n  - image: ./missing.jpg\n", "module 1 (image): image: no file './missing.jpg'"),
        ("modules:\n  - text: hi\n    buttons: [{url: 'https://a.example'}]\n", "button 1: label is missing"),
        (
            "modules:\n  - text: hi\n    buttons: [{label: a, url: 'https://a.example', reply: X}]\n",
            "button 1: give either url or reply",
        ),
        (
            "modules:\n  - text: hi\n    buttons:\n" + "      - {label: a, reply: A}\n" * 4,
            "module 1 (text): buttons: 4 buttons, at most 3",
        ),
        (
            "modules:\n  - image: {base}/missing.jpg\n",
            "module 1 (image): image: {base}/missing.jpg answers 404",
        ),
        (
            "modules:\n  - image: {base}/banner.jpg\n    caption: '" + "x" * 1100 + "'\n",
            "module 1 (image): caption is 1100 characters; Telegram takes at most 1024",
        ),
        ("modules: [\n", "not valid YAML at line"),
        ("modules: []\n", "modules must be a list of at least one module"),
        ("modules:\n  - text: ''\n", "module 1 (text): text is empty"),
    ],
)
def test_a_wrong_message_file_is_refused_in_one_line_before_anything_is_stored(
    cli: Cli,
    telegram: tuple[TelegramEmulator, str],
    media: SampleServer,
    tmp_path: Path,
    text: str,
    message: str,
) -> None:
    cli("channel", "add", "tg", "telegram", "--token", "env:TG_TOKEN", "--api-url", telegram[1])
    file = tmp_path / "bad.yaml"
    file.write_text(text.replace("{base}", media.base_url), encoding="utf-8")
    err = cli("campaign", "create", "bad", "--channel", "tg", "--file", str(file), code=2)
    assert message.replace("{base}", media.base_url) in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert cli.json("campaign", "list") == []


def test_a_campaign_at_a_local_time_goes_out_at_that_instant_across_dst(
    cli: Cli, rig: Rig, media: SampleServer, tmp_path: Path
) -> None:
    file = _message(tmp_path, media, "modules:\n  - text: 'Spring is here'\n")
    start = datetime(2027, 3, 27, 12, 0, tzinfo=UTC)  # the day before Rome moves to summer time
    with time_machine.travel(start, tick=False) as clock:
        # 02:30 on 28 March does not exist in Rome: the clocks go from 02:00 to 03:00
        gap = cli("campaign", "create", "spring", "--channel", "tg", "--file", str(file),
                  "--at", "2027-03-28T02:30", "--timezone", "Europe/Rome", code=2)  # fmt: skip
        assert "does not exist in Europe/Rome" in gap
        out = cli("campaign", "create", "spring", "--channel", "tg", "--file", str(file),
                  "--at", "2027-03-28T09:30", "--timezone", "Europe/Rome")  # fmt: skip
        assert "scheduled for 2027-03-28 09:30 CEST (Europe/Rome)" in out
        # 09:30 CEST is 07:30 UTC (the offset before the change was +01:00: 08:30 UTC)
        clock.move_to(datetime(2027, 3, 28, 7, 29, tzinfo=UTC))
        cli("run", "--no-poll")
        assert rig.tg.received(101) == []
        early = cli("campaign", "send", "spring", code=2)
        assert "scheduled for 2027-03-28 09:30 CEST" in early and "--now" in early
        clock.move_to(datetime(2027, 3, 28, 7, 30, 5, tzinfo=UTC))
        ran = cli.json("run", "--no-poll")
        assert [c["campaign"] for c in ran["campaigns"]] == ["spring"]  # type: ignore[index]
        assert [c["params"]["text"] for c in rig.tg.received(101)] == ["Spring is here"]
        cli("run", "--no-poll")
        assert len(rig.tg.received(101)) == 1  # once
    [row] = cli.json("sql", "SELECT trigger, kind, campaign_name FROM campaign_report")  # type: ignore[misc]
    assert row == {"trigger": "at", "kind": "composed", "campaign_name": "spring"}


def test_a_time_that_happens_twice_is_the_first_of_the_two(
    cli: Cli, rig: Rig, media: SampleServer, tmp_path: Path
) -> None:
    file = _message(tmp_path, media, "modules:\n  - text: 'Autumn'\n")
    with time_machine.travel(datetime(2027, 10, 30, 12, 0, tzinfo=UTC), tick=False):
        out = cli("campaign", "create", "autumn", "--channel", "tg", "--file", str(file),
                  "--at", "2027-10-31T02:30", "--timezone", "Europe/Rome")  # fmt: skip
    assert "the first of the two 02:30s" in out and "CEST" in out
    composed = Store(cli.db).get_composed("autumn")
    assert composed.send_at == datetime(2027, 10, 31, 0, 30, tzinfo=UTC)  # 02:30 CEST, not CET


def test_cancel_before_and_during_a_send(cli: Cli, rig: Rig, media: SampleServer, tmp_path: Path) -> None:
    file = _message(tmp_path, media, "modules:\n  - text: 'Hello'\n")
    cli("campaign", "create", "one", "--channel", "tg", "--file", str(file))
    assert "cancelled before it started" in cli("campaign", "cancel", "one")
    assert "is cancelled" in cli("campaign", "send", "one", code=2)
    assert rig.tg.received(101) == []
    # a started campaign: what was sent stays, the rest is never sent
    Store(cli.db).add_subscribers("tg", [NewSubscriber(str(chat)) for chat in range(200, 230)])
    cli("campaign", "create", "two", "--channel", "tg", "--file", str(file))
    store = Store(cli.db)
    composed = store.get_composed("two")
    plan = plan_composed(store, composed)
    [campaign_id] = store.start_composed(
        composed, plan.store_parts(), trigger="manual"
    )  # started, nothing sent
    store.record_deliveries(
        [
            DeliveryUpdate(id=p.id, status="sent", attempts=1)
            for p in store.pending_deliveries(campaign_id, limit=2)
        ]
    )
    out = cli("campaign", "cancel", "two")
    assert "30 delivery(ies) will not be made" in out
    shown: Any = cli.json("campaign", "show", "two")
    assert shown["status"] == "cancelled"
    assert (shown["campaigns"][0]["sent"], shown["campaigns"][0]["skipped"]) == (2, 30)
    assert "is cancelled" in cli("campaign", "send", "two", code=2)
    assert rig.tg.received(101) == []


def test_a_stopped_channel_leaves_the_rest_pending_and_a_rerun_finishes(
    cli: Cli, rig: Rig, media: SampleServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = _message(tmp_path, media, "modules:\n  - text: 'Hello'\n")
    cli("campaign", "create", "c", *_channels("tg", "mail"), "--file", str(file))
    monkeypatch.setenv("TG_TOKEN", "1:wrong-token-for-this-bot-xyz")
    err = cli("campaign", "send", "c", code=1)
    assert "the rest stays pending" in err
    assert len(rig.sink.messages_for("ann@example.org")) == 1  # one broken channel never stops the others
    monkeypatch.setenv("TG_TOKEN", TG_TOKEN)
    cli("campaign", "send", "c")
    assert len(rig.tg.received(101)) == 1 and len(rig.sink.messages_for("ann@example.org")) == 1
    assert cli.json("campaign", "show", "c")["status"] == "sent"  # type: ignore[index]


def test_parse_at_reads_offsets_and_refuses_the_past() -> None:
    from feedcast.compose import parse_at
    from feedcast.kernel.errors import InvalidValue

    now = datetime(2027, 1, 1, tzinfo=UTC)
    instant, reading = parse_at("2027-01-15T09:30+05:30", "Asia/Kolkata", now=now)
    assert instant == datetime(2027, 1, 15, 4, 0, tzinfo=UTC) and "IST" in reading
    with pytest.raises(InvalidValue, match="in the past"):
        parse_at("2026-12-31T23:00", "UTC", now=now)
    with pytest.raises(InvalidValue, match="not a date and time"):
        parse_at("tomorrow", "UTC", now=now)
    assert parse_at("2027-01-02 08:00", "UTC", now=now)[0] == now + timedelta(days=1, hours=8)


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
UPLOADED = """\
modules:
  - text: "New **arrivals**"
  - image: ./banner.png
    caption: "The banner"
    alt: "A banner"
  - image: ./second.png
  - file: ./catalogue.pdf
    name: "Winter catalogue.pdf"
  - video: ./clip.mp4
    caption: "A clip"
"""


def _files(tmp_path: Path) -> Path:
    (tmp_path / "banner.png").write_bytes(PNG + b"banner")
    (tmp_path / "second.png").write_bytes(PNG + b"second")
    (tmp_path / "catalogue.pdf").write_bytes(b"%PDF-1.7\n" + b"p" * 3000)
    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"v" * 5000)
    file = tmp_path / "arrivals.yaml"
    file.write_text(UPLOADED, encoding="utf-8")
    return file


def _digests(tmp_path: Path) -> dict[str, str]:
    names = ("banner.png", "second.png", "catalogue.pdf", "clip.mp4")
    return {name: hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() for name in names}


def test_local_files_are_uploaded_once_per_channel_and_reused(cli: Cli, rig: Rig, tmp_path: Path) -> None:
    file = _files(tmp_path)
    out, err = cli.outputs(
        "campaign", "create", "arrivals", *_channels("tg", "fb", "mail", "crm"), "--file", str(file)
    )
    assert "4 file(s) kept" in out
    assert err.count("JSON webhook takes no uploads: sent as a link to http://127.0.0.1:8080/f/") == 4
    cli("campaign", "send", "arrivals")
    store = Store(cli.db)
    digests = _digests(tmp_path)

    # Telegram: the two images as one album; each file uploaded by one delivery, then sent by file_id
    calls = {chat: rig.tg.received(chat) for chat in (101, 102)}
    for chat_calls in calls.values():
        assert [c["method"] for c in chat_calls] == [
            "sendMessage",
            "sendMediaGroup",
            "sendDocument",
            "sendVideo",
        ]
    uploads = [u for chat_calls in calls.values() for c in chat_calls for u in c.get("uploads", {}).values()]
    assert sorted(u["sha256"] for u in uploads) == sorted(digests.values())  # each once
    document = next(u for u in uploads if u["sha256"] == digests["catalogue.pdf"])
    assert document["filename"] == "Winter catalogue.pdf"
    albums = [
        c["params"]["media"]
        for chat_calls in calls.values()
        for c in chat_calls
        if c["method"] == "sendMediaGroup"
    ]
    media = [json.loads(m) if isinstance(m, str) else m for m in albums]
    assert [m[0].get("caption") for m in media] == ["The banner", "The banner"]
    assert any(not str(m[0]["media"]).startswith("attach://") for m in media)  # the second went by file_id
    ids = store.provider_upload_ids(store.get_channel("tg").id)
    assert {sha for sha, _kind in ids} == set(digests.values())

    # Messenger: the Attachment Upload API once per file, the attachment_id to both people
    uploaded = rig.fb.uploads()
    assert sorted(u["sha256"] for u in uploaded) == sorted(digests.values())
    assert all(u["is_reusable"] for u in uploaded) and {u["type"] for u in uploaded} == {
        "image",
        "file",
        "video",
    }
    for psid in ("9001", "9002"):
        sent_ids = [
            m["message"]["attachment"]["payload"].get("attachment_id")
            for m in rig.fb.received(psid)
            if m["message"].get("attachment", {}).get("type") in ("image", "file", "video")
        ]
        assert sorted(sent_ids) == sorted(u["attachment_id"] for u in uploaded)

    # email: the images inline (cid:), the PDF and the clip attached
    [mail] = rig.sink.messages_for("ann@example.org")
    html = mail.message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    parts = list(mail.message.walk())
    inline = {str(p["Content-ID"]).strip("<>") for p in parts if p["Content-ID"]}
    assert len(inline) == 2 and all(f"cid:{cid}" in html for cid in inline)
    attached = {
        p.get_filename(): p.get_content() for p in parts if p.get_content_disposition() == "attachment"
    }
    assert set(attached) == {"Winter catalogue.pdf", "clip.mp4"}
    assert attached["Winter catalogue.pdf"] == (tmp_path / "catalogue.pdf").read_bytes()

    # the JSON webhook: links to feedcast web, which serves the bytes
    [crm] = rig.hooks.received(rig.json.name)
    urls = [m["url"] for m in crm.body["modules"] if m["kind"] != "text"]
    assert urls[0] == f"http://127.0.0.1:8080/f/{digests['banner.png']}/banner.png"

    # a second campaign with the same files uploads nothing again
    cli("campaign", "create", "again", *_channels("tg", "fb"), "--file", str(file))
    cli("campaign", "send", "again")
    assert len(rig.fb.uploads()) == 4
    again = [c for chat in (101, 102) for c in rig.tg.received(chat)[4:]]
    assert len(again) == 8 and not any("uploads" in c for c in again)


def test_feedcast_web_serves_the_uploaded_files_safely(cli: Cli, rig: Rig, tmp_path: Path) -> None:
    import httpx

    from feedcast.web.app import create_app

    file = _files(tmp_path)
    cli("campaign", "create", "arrivals", "--channel", "crm", "--file", str(file))
    digests = _digests(tmp_path)
    with AsgiServer(create_app(Store(cli.db), public_url="http://127.0.0.1:8080")) as web:
        got = httpx.get(f"{web.base_url}/f/{digests['catalogue.pdf']}/x.pdf")
        assert got.status_code == 200 and got.content == (tmp_path / "catalogue.pdf").read_bytes()
        assert got.headers["content-disposition"].startswith("attachment")
        assert got.headers["content-type"] == "application/octet-stream"
        assert "sandbox" in got.headers["content-security-policy"]
        image = httpx.get(f"{web.base_url}/f/{digests['banner.png']}/banner.png")
        assert image.headers["content-type"] == "image/png"
        assert image.headers["content-disposition"].startswith("inline")
        assert httpx.get(f"{web.base_url}/f/{'0' * 64}/nothing").status_code == 404
        assert httpx.get(f"{web.base_url}/f/..%2f..%2fetc/passwd").status_code == 404


def test_a_file_over_a_providers_limit_goes_as_a_link_said_in_the_preview(
    cli: Cli, rig: Rig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEEDCAST_MAX_UPLOAD_MB", "60")
    monkeypatch.setenv("FEEDCAST_PUBLIC_URL", "https://news.shop.example")
    big = tmp_path / "big.zip"
    with big.open("wb") as out:  # over Telegram's 50 MB for uploads (and its 20 MB by URL)
        out.truncate(50_000_100)
    file = tmp_path / "big.yaml"
    file.write_text("modules:\n  - file: ./big.zip\n    name: Everything.zip\n", encoding="utf-8")
    cli("campaign", "create", "big", *_channels("tg", "fb"), "--file", str(file))
    preview: Any = cli.json("campaign", "preview", "big")
    parts = {p["channel"]: p for p in preview["parts"]}
    [warning] = parts["tg"]["warnings"]
    assert (
        "Everything.zip (50.0 MB): over the 50 MB Telegram takes: sent as a link to https://news.shop.example/f/"
        in warning
    )
    [call] = parts["tg"]["calls"]
    assert call["method"] == "sendMessage" and "https://news.shop.example/f/" in call["body"]["text"]
    assert "Everything.zip" in call["body"]["text"]
    [fb_call] = parts["fb"]["calls"]  # over Messenger's 25 MB too: the link as text
    assert "https://news.shop.example/f/" in fb_call["body"]["message"]["text"]


def test_the_emulators_check_uploads_as_the_providers_do(rig: Rig) -> None:
    import httpx

    from feedcast.sandbox.base import is_image

    assert is_image(PNG) and not is_image(b"%PDF-1.7")
    # Telegram refuses a photo that is not an image, and an unknown file_id
    with AsgiServer(rig.tg.app) as server:
        url = f"{server.base_url}/bot{TG_TOKEN}/sendPhoto"
        bad = httpx.post(url, data={"chat_id": "101"}, files={"photo": ("x.png", b"not an image")})
        assert bad.status_code == 400 and "IMAGE_PROCESS_FAILED" in bad.json()["description"]
        good = httpx.post(url, data={"chat_id": "101"}, files={"photo": ("x.png", PNG)})
        file_id = good.json()["result"]["photo"][-1]["file_id"]
        assert httpx.post(url, json={"chat_id": 101, "photo": file_id}).json()["ok"] is True
        assert httpx.post(url, json={"chat_id": 101, "photo": "made-up"}).status_code == 400
    # Messenger refuses an attachment_id it never issued, and a "photo" that is not an image
    with AsgiServer(rig.fb.app) as server:
        auth = {"Authorization": f"Bearer {FB_TOKEN}"}
        body = {"recipient": {"id": "9001"}, "messaging_type": "UPDATE",
                "message": {"attachment": {"type": "image", "payload": {"attachment_id": "123"}}}}  # fmt: skip
        answer = httpx.post(f"{server.base_url}/v25.0/me/messages", json=body, headers=auth)
        assert answer.status_code == 400 and answer.json()["error"]["error_subcode"] == 2018047
        upload = httpx.post(
            f"{server.base_url}/v25.0/me/message_attachments",
            data={"message": json.dumps({"attachment": {"type": "image", "payload": {"is_reusable": True}}})},
            files={"filedata": ("x.pdf", b"%PDF-1.7")},
            headers=auth,
        )
        assert upload.status_code == 400 and upload.json()["error"]["error_subcode"] == 2018047


@pytest.mark.slow
def test_a_composed_campaign_killed_midway_loses_nobody(
    cli: Cli, telegram: tuple[TelegramEmulator, str], tmp_path: Path
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    emulator, url = telegram
    emulator.reset()
    n = 120
    cli("channel", "add", "tg", "telegram", "--token", "env:TG_TOKEN", "--api-url", url)
    Store(cli.db).add_subscribers("tg", [NewSubscriber(str(50_000 + i)) for i in range(n)])
    file = tmp_path / "m.yaml"
    file.write_text(
        "modules:\n  - text: 'Flash sale: **now**'\n    buttons: [{label: Shop, url: 'https://shop.example'}]\n"
    )
    cli("campaign", "create", "flash", "--channel", "tg", "--file", str(file))
    env = {**os.environ, "FEEDCAST_DB": str(cli.db)}
    process = subprocess.Popen(
        [sys.executable, "-m", "feedcast.cli", "campaign", "send", "flash"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while emulator.stats()["accepted"] < n // 5 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate()
    assert process.returncode == -signal.SIGKILL, stderr.decode()
    assert emulator.stats()["accepted"] < n, "the kill came too late to test a resume"
    assert Store(cli.db).get_composed("flash").status == "sending"

    cli("campaign", "send", "flash")  # the rerun takes over the dead process's lease and resumes

    counts = [len(emulator.received(50_000 + i)) for i in range(n)]
    assert min(counts) == 1, "a subscriber was lost"
    assert sum(counts) - n <= 16  # at most what was in flight or unrecorded at the kill
    shown: Any = cli.json("campaign", "show", "flash")
    assert shown["status"] == "sent" and shown["campaigns"][0]["sent"] == n
    [row] = cli.json("sql", "SELECT count(*) FILTER (WHERE possibly_duplicated) AS flagged FROM send_history")  # type: ignore[misc]
    assert row["flagged"] >= sum(c - 1 for c in counts)  # every duplicate shows


def test_a_mixed_audience_gets_one_rendering_per_language(
    cli: Cli, rig: Rig, media: SampleServer, tmp_path: Path
) -> None:
    from layouts import i18n

    store = Store(cli.db)
    store.add_subscribers(
        "mail",
        [NewSubscriber("chiara@example.org", locale="it"), NewSubscriber("amal@example.org", locale="ar")],
    )
    file = _message(tmp_path, media, "subject: Saldi\nmodules:\n  - text: 'Saldi **oggi**'\n")
    cli("campaign", "create", "saldi", "--channel", "mail", "--file", str(file), "--locale", "fr")
    preview: Any = cli.json("campaign", "preview", "saldi")
    assert sorted((p["locale"], p["recipients"]) for p in preview["parts"]) == [
        ("ar", 1),
        ("fr", 2),
        ("it", 1),
    ]
    cli("campaign", "send", "saldi")
    rows = cli.json("sql", "SELECT recipient, locale FROM send_history ORDER BY recipient")
    assert rows == [
        {"recipient": "amal@example.org", "locale": "ar"},
        {"recipient": "ann@example.org", "locale": "fr"},
        {"recipient": "bob@example.org", "locale": "fr"},
        {"recipient": "chiara@example.org", "locale": "it"},
    ]
    for address, locale in [
        ("chiara@example.org", "it"),
        ("amal@example.org", "ar"),
        ("ann@example.org", "fr"),
    ]:
        [mail] = rig.sink.messages_for(address)
        html = mail.message.get_body(("html",)).get_content()  # type: ignore[union-attr]
        text = mail.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        with i18n.using(locale):
            assert i18n.gettext("Unsubscribe") in html
            assert i18n.gettext("You receive this email because you subscribed to these updates.") in text
        assert ('dir="rtl"' in html) == (locale == "ar")
        assert f'lang="{locale}"' in html


def test_subscribers_languages_from_the_cli_and_a_csv(
    cli: Cli, telegram: tuple[TelegramEmulator, str], tmp_path: Path
) -> None:
    cli("channel", "add", "tg", "telegram", "--token", "env:TG_TOKEN", "--api-url", telegram[1])
    cli("subscriber", "add", "tg", "11", "--locale", "pt-BR")
    err = cli("subscriber", "add", "tg", "12", "--locale", "klingon", code=2)
    assert "unknown language 'klingon'" in err and len(err.strip().splitlines()) == 1
    people = tmp_path / "people.csv"
    people.write_text(
        "chat_id,name,locale\n21,Anna,de\n22,Ali,ar\n23,Bad,zz-not\n24,Nobody,\n", encoding="utf-8"
    )
    out, err = cli.outputs("subscriber", "import", "tg", str(people))
    assert "3 added" in out and "line 4: unknown language 'zz-not'" in err
    listed: Any = cli.json("subscriber", "list", "--channel", "tg")
    assert {s["recipient"]: s["locale"] for s in listed} == {
        "11": "pt_BR",
        "21": "de",
        "22": "ar",
        "24": None,
    }
    assert "language" in cli("subscriber", "list")


def test_a_campaign_due_with_nobody_to_send_to_stops_once_and_can_be_sent_later(
    cli: Cli, telegram: tuple[TelegramEmulator, str], tmp_path: Path
) -> None:
    emulator, url = telegram
    emulator.reset()
    cli("channel", "add", "tg", "telegram", "--token", "env:TG_TOKEN", "--api-url", url)
    file = tmp_path / "m.yaml"
    file.write_text("modules:\n  - text: 'Hello'\n", encoding="utf-8")
    with time_machine.travel(datetime(2027, 5, 1, 8, 0, tzinfo=UTC), tick=False) as clock:
        cli("campaign", "create", "hello", "--channel", "tg", "--file", str(file), "--at", "2027-05-01T09:00")
        clock.move_to(datetime(2027, 5, 1, 9, 0, 30, tzinfo=UTC))
        ran: Any = cli.json("run", "--no-poll")
        assert "no active subscriber" in ran["campaigns"][0]["note"]
        assert Store(cli.db).get_composed("hello").status == "stopped"
        assert cli.json("run", "--no-poll")["campaigns"] == []  # type: ignore[index]  # said once
        cli("subscriber", "add", "tg", "77")
        cli("campaign", "send", "hello")
    assert [c["params"]["text"] for c in emulator.received(77)] == ["Hello"]
    assert Store(cli.db).get_composed("hello").status == "sent"
