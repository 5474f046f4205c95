"""``feedcast preview``: every built-in layout x every channel kind on the demo shop and
blog served on loopback, the terminal / JSON / HTML views, the mistakes, and a headless
Chromium screenshot of the HTML page."""

from __future__ import annotations

import colorsys
import html
import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from html.parser import HTMLParser
from ipaddress import ip_address
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import feedcast.cli as cli_module
import feedcast.preview as preview_module
from feedcast.cli import main
from feedcast.kernel.errors import NotFound
from feedcast.kernel.models import Item, Media, PollOutcome, ProviderCall, Variant
from feedcast.preview import CHANNEL_KINDS
from feedcast.sandbox import SampleServer, sample_text
from feedcast.store import Store
from layouts.formats import validate_call
from layouts.formats.discord import markdown_to_html
from layouts.formats.slack import mrkdwn_to_html
from layouts.formats.telegram import telegram_to_html
from layouts.render import builtin_layouts
from tests.conftest import on_ci
from tests.test_cli import Cli

LAYOUTS = builtin_layouts()
CHROMIUM = Path("/usr/bin/chromium")
SHOT_SIZE = (1280, 2000)


# --------------------------------------------------------------------------- fixtures


def _png(width: int, height: int, hue: float) -> bytes:
    """A small landscape (sky gradient, two peaks) as a PNG, with the stdlib only."""
    rows = []
    for y in range(height):
        row = bytearray(b"\x00")
        for x in range(width):
            ridge = height * 0.55 + abs((x % (width // 2)) - width // 4) * 0.9
            if y > ridge:
                rgb = colorsys.hsv_to_rgb(hue, 0.45, 0.35 + 0.2 * y / height)
            else:
                rgb = colorsys.hsv_to_rgb(hue, 0.35 + 0.4 * y / height, 0.95)
            row += bytes(int(c * 255) for c in rgb)
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def shop_and_blog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SampleServer, Path]]:
    """The demo shop and blog on loopback, with their images, in a database after two
    polls: the second finds a new post, a new product, a price drop and a restock."""
    db = tmp_path_factory.mktemp("preview") / "preview.duckdb"
    with SampleServer() as server:
        base = server.base_url
        server.put("/blog.rss", sample_text("blog.rss").replace("{base}", base), "application/rss+xml")
        server.put("/shop.xml", sample_text("shop.xml").replace("{base}", base), "application/xml")
        texts = "".join(sample_text(n) for n in ("blog.rss", "blog-v2-item.xml", "shop.xml", "shop-v2.xml"))
        images = sorted(set(re.findall(r"\{base\}/img/([\w-]+\.jpg)", texts)))
        for index, name in enumerate(images):
            server.put(f"/img/{name}", _png(240, 160, index / len(images)), "image/png")
        for name, path in (("shop", "/shop.xml"), ("blog", "/blog.rss")):
            assert _run(db, "source", "add", name, base + path) == 0
        blog = sample_text("blog.rss").replace("{base}", base)
        blog = blog.replace(
            "  <item>", sample_text("blog-v2-item.xml").replace("{base}", base) + "  <item>", 1
        )
        server.put("/blog.rss", blog, "application/rss+xml")
        server.put("/shop.xml", sample_text("shop-v2.xml").replace("{base}", base), "application/xml")
        assert _run(db, "poll", "--force") == 0
        yield server, db


def _run(db: Path, *args: str) -> int:
    """``feedcast --db DB ARGS``, in process; its exit status."""
    try:
        main(["--db", str(db), *args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.fixture
def cli(
    shop_and_blog: tuple[SampleServer, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Cli:
    monkeypatch.setattr(cli_module.out, "width", 400)
    monkeypatch.delenv("FEEDCAST_LAYOUTS", raising=False)
    return Cli(shop_and_blog[1], capsys)


def _preview(*args: str) -> list[str]:
    return ["preview", "--source", "shop", "--source", "blog", *args]


# --------------------------------------------------------------------------- every layout x kind


@pytest.mark.parametrize("kind", CHANNEL_KINDS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_builtin_layout_and_channel_kind(cli: Cli, layout: str, kind: str, tmp_path: Path) -> None:
    payloads = cli.json(*_preview("--layout", layout, "--channel-kind", kind))
    assert isinstance(payloads, list) and payloads
    numbers = [p["message"] for p in payloads]
    assert numbers[0] == 1 and numbers == sorted(numbers)
    assert set(numbers) == set(range(1, numbers[-1] + 1))  # every message has calls
    for payload in payloads:
        assert set(payload) == {"message", "method", "body"}
        validate_call(kind, ProviderCall(payload["method"], payload["body"]))

    view = cli(*_preview("--layout", layout, "--channel-kind", kind))
    assert view.splitlines()[0].startswith(f"preview {layout} (per ")
    assert "all valid" in view.splitlines()[0]
    assert f"message 1/{numbers[-1]}" in view

    page = tmp_path / "preview.html"
    out = cli(*_preview("--layout", layout, "--channel-kind", kind, "--html", str(page)))
    assert out.startswith(f"wrote {page}: {layout} → {kind}, ") and out.count("\n") == 1
    html = page.read_text(encoding="utf-8")
    assert html.count('class="message"') == numbers[-1]
    _assert_safe_page(html)


def test_default_limits_follow_the_layout(cli: Cli) -> None:
    per_item = cli.json(*_preview("--layout", "single", "--channel-kind", "telegram"))
    assert isinstance(per_item, list) and {p["message"] for p in per_item} == {1, 2, 3}
    digest = cli.json(*_preview("--layout", "digest", "--channel-kind", "json"))
    assert isinstance(digest, list) and len(digest[0]["body"]["items"]) == 10  # digest's max_items
    two = cli.json(*_preview("--layout", "digest", "--channel-kind", "json", "--limit", "2"))
    assert isinstance(two, list) and len(two[0]["body"]["items"]) == 2


# --------------------------------------------------------------------------- Store.recent_items


def _outcome(source_id: int, items: list[Item], at: datetime) -> PollOutcome:
    return PollOutcome(source_id=source_id, url="http://example.test/feed", started_at=at, duration=0.01,
                       outcome="ok", status=200, items=tuple(items), kind="feed", format="rss20")  # fmt: skip


def test_recent_items_round_trip_and_standing_events(tmp_path: Path) -> None:
    store = Store(tmp_path / "items.duckdb", lock_timeout=5)
    day = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    shop = store.add_source("shop", "http://example.test/shop")
    blog = store.add_source("blog", "http://example.test/blog")
    boots = Item(
        key="boots",
        title="Boots",
        url="http://example.test/boots",
        media=(Media("http://example.test/b.jpg", width=1200, height=800, title="side"),
               Media("http://example.test/b.mp4", medium="video", type="video/mp4", length=12345)),
        tags=("shoes", "winter"),
        price=Decimal("120.00"),
        currency="EUR",
        availability="in_stock",
        variants=(Variant("b-42", title="42", price=Decimal("120.00"), sale_price=Decimal("99.50"),
                          availability="in_stock", options={"size": "42"}),),
        extra={"condition": "new", "rating": {"value": 4.5}},
    )  # fmt: skip
    post = Item(key="p1", title="Post", published=datetime(2026, 11, 20, tzinfo=UTC), summary="<p>Hi</p>")
    store.record_polls([_outcome(shop.id, [boots], day), _outcome(blog.id, [post], day)], now=day)

    [got_boots, got_post] = store.recent_items(["shop", "blog"], 10)  # unpublished: first seen (today)
    assert got_boots == boots and got_post == post  # every field decoded back, Decimals included
    assert got_post.published is not None and got_post.published.tzinfo is not None
    assert store.recent_items(["blog"], 10) == [post] and store.recent_items([], 1) == [boots]
    assert store.recent_items(["shop"], 0) == []
    with pytest.raises(NotFound, match="no source named 'nope'"):
        store.recent_items(["shop", "nope"], 3)

    cheaper = replace(boots, price=Decimal("100.00"))
    store.record_polls([_outcome(shop.id, [cheaper], day)], now=day + timedelta(days=1))
    [(item, event)] = store.recent_items(["shop"], 5, with_events=True)
    assert item.price == Decimal("100.00")
    assert event == ("price_drop", Decimal("120.00"), Decimal("100.00"))
    back_up = replace(boots, price=Decimal("130.00"))  # a later change: the drop is stale
    store.record_polls([_outcome(shop.id, [back_up], day)], now=day + timedelta(days=2))
    assert store.recent_items(["shop"], 5, with_events=True) == [(back_up, None)]


# --------------------------------------------------------------------------- terminal view


def test_terminal_view_per_kind(cli: Cli) -> None:
    shop = ["preview", "--source", "shop", "--layout", "product", "--limit", "6"]
    telegram = cli(*shop, "--channel-kind", "telegram")
    assert "[photo: http://127.0.0.1:" in telegram and "/img/nw-1001.jpg]" in telegram
    assert "[button: Buy → http://127.0.0.1:" in telegram
    # the standing events of the second poll: the old price, and the restock
    assert "Price drop" in telegram and "$249.00 $199.00 (−20%)" in telegram
    assert "Back in stock" in telegram
    assert "<b>" not in telegram  # Telegram HTML shown as text with styles, not as tags

    messenger = cli(*shop, "--channel-kind", "messenger")
    assert "[carousel: 1 card]" in messenger and "$199.00 (was $249.00) · In stock" in messenger

    email = cli(*shop, "--channel-kind", "email", "--limit", "1")
    assert "Subject: " in email and "<html" not in email  # the subject and the plain part

    slack = cli(*_preview("--layout", "digest", "--channel-kind", "slack", "--limit", "2"))
    assert "*<http://127.0.0.1:" in slack  # mrkdwn as sent
    discord = cli(*_preview("--layout", "single", "--channel-kind", "discord", "--limit", "1"))
    assert "▌ " in discord and "[image: http://127.0.0.1:" in discord
    webhook = cli(*_preview("--layout", "plain", "--channel-kind", "json", "--limit", "1"))
    assert "POST feedcast.v1 · subject: " in webhook and "- text: {" in webhook


@pytest.mark.usefixtures("pinned_clock")  # the digest's header names today's month
def test_time_zone_and_locale(cli: Cli) -> None:
    out = cli(
        "preview", "--source", "shop", "--layout", "product", "--channel-kind", "telegram",
        "--limit", "6", "--locale", "fr_FR", "--timezone", "Europe/Paris",
    )  # fmt: skip
    assert "199,00" in out and "249,00" in out
    digest = cli.json(*_preview("--layout", "digest", "--channel-kind", "telegram", "--locale", "fr"))
    assert isinstance(digest, list) and "novembre" in digest[0]["body"]["text"]


# --------------------------------------------------------------------------- mistakes


def _write_layout(root: Path, name: str, **files: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "layout.yaml").write_text("per: item\n", encoding="utf-8")
    for filename, text in files.items():
        (folder / filename).write_text(text, encoding="utf-8")
    return folder


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            _preview("--layout", "nope", "--channel-kind", "telegram"),
            "unknown layout 'nope'; available: carousel, digest, plain, product, single",
        ),
        (
            ["preview", "--source", "nope", "--layout", "single", "--channel-kind", "telegram"],
            "no source named 'nope'",
        ),
        (
            _preview("--layout", "single", "--channel-kind", "sms"),
            "unknown channel kind 'sms'; kinds: telegram, messenger, email, slack, discord, json",
        ),
        (["preview", "--layout", "single"], "--source, --channel-kind required"),
        (_preview("--layout", "single", "--channel-kind", "email", "--limit", "0"), "--limit must be"),
        (
            _preview("--layout", "single", "--channel-kind", "email", "--timezone", "Mars/Olympus"),
            "Mars/Olympus",
        ),
        (
            _preview("--layout", "single", "--channel-kind", "email", "--html", "/nonexistent/dir/p.html"),
            "cannot write /nonexistent/dir/p.html",
        ),
    ],
)
def test_mistakes_are_one_line(cli: Cli, args: list[str], message: str) -> None:
    err = cli(*args, code=2)
    assert err.startswith("error: ") and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_user_layout_with_a_syntax_error_names_file_and_line(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _write_layout(
        tmp_path, "broken", **{"telegram.j2": "{% call text() %}\n{{ item.title }\n{% endcall %}\n"}
    )
    monkeypatch.setenv("FEEDCAST_LAYOUTS", str(tmp_path))
    err = cli(*_preview("--layout", "broken", "--channel-kind", "telegram"), code=2)
    assert err.startswith(f"error: {folder}/telegram.j2:2: ") and err.count("\n") == 1, err


def test_user_layout_without_the_format(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_layout(tmp_path, "chat-only", **{"telegram.j2": "{{ text(item.title) }}"})
    monkeypatch.setenv("FEEDCAST_LAYOUTS", str(tmp_path))
    err = cli(*_preview("--layout", "chat-only", "--channel-kind", "email"), code=2)
    assert err == "error: layout 'chat-only' has no template for email (email.html.j2)\n"
    out = cli(*_preview("--layout", "chat-only", "--channel-kind", "telegram"))  # the user layout works
    assert "all valid" in out


def test_a_source_without_items_yet(cli: Cli, shop_and_blog: tuple[SampleServer, Path]) -> None:
    server, _db = shop_and_blog
    cli("source", "add", "later", server.base_url + "/blog.rss", "--no-fetch")
    try:
        err = cli("preview", "--source", "later", "--layout", "single", "--channel-kind", "telegram", code=2)
        assert "no items yet in later: poll first" in err and err.count("\n") == 1
    finally:
        cli("source", "remove", "later")


def test_payloads_a_provider_refuses_are_error_lines(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a layout emitting a tag Telegram does not know: the payloads cannot be built
    marquee = "{% call text() %}{{ '<marquee>'|safe }}{{ item.title }}{{ '</marquee>'|safe }}{% endcall %}"
    _write_layout(tmp_path, "marquee", **{"telegram.j2": marquee})
    monkeypatch.setenv("FEEDCAST_LAYOUTS", str(tmp_path))
    args = _preview("--layout", "marquee", "--channel-kind", "telegram", "--limit", "2")
    err = cli(*args, code=1)
    lines = err.splitlines()
    assert len(lines) == 2 and all(line.startswith("error: message ") for line in lines), err
    assert "telegram.text.html" in lines[0] and "marquee" in lines[0]

    # a call the validator refuses is shown in its panel, in the JSON and in the page
    real = preview_module.provider_calls

    def with_a_bad_call(message: Any, **kwargs: Any) -> list[ProviderCall]:
        return [*real(message, **kwargs), ProviderCall("sendMessage", {"text": "x" * 5000})]

    monkeypatch.setattr(preview_module, "provider_calls", with_a_bad_call)
    page = tmp_path / "bad.html"
    args = _preview("--layout", "single", "--channel-kind", "telegram", "--limit", "1")
    cli.capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["--db", str(cli.db), *args])
    captured = cli.capsys.readouterr()
    assert exit_info.value.code == 1
    assert "✗ invalid: telegram.text.length: 5000 characters" in captured.out
    assert captured.err == (
        "error: message 1, call 2 (sendMessage): telegram.text.length: 5000 characters after entity"
        " parsing, over the limit of 4096\n"
    )
    with pytest.raises(SystemExit):
        main(["--db", str(cli.db), *args, "--html", str(page), "--format", "json"])
    captured = cli.capsys.readouterr()
    assert [p["method"] for p in json.loads(captured.out)][-1] == "sendMessage"  # JSON still printed
    assert "1 invalid payload" in page.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- HTML page


class _Tags(HTMLParser):
    """Every start tag with its attributes, srcdoc documents parsed too."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        self.tags.append((tag, values))
        if tag == "iframe" and "srcdoc" in values:
            inner = _Tags()
            inner.feed(values["srcdoc"])
            self.tags.extend(inner.tags)


def _tags(html: str) -> list[tuple[str, dict[str, str]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


def _assert_safe_page(html: str) -> None:
    """No script can run: no script element, no event handler, no script URL, a
    Content-Security-Policy without script-src, every frame sandboxed."""
    tags = _tags(html)
    assert not [t for t, _a in tags if t in ("script", "object", "embed", "base", "form")]
    for tag, attrs in tags:
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
        for key in ("href", "src", "action", "formaction", "xlink:href"):
            value = attrs.get(key, "").strip().lower()
            assert not value.startswith(("javascript:", "data:text", "vbscript:")), (tag, attrs)
        if tag == "iframe":
            assert attrs.get("sandbox") == "", attrs
    [csp] = [
        a["content"] for t, a in tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"
    ]
    assert csp.startswith("default-src 'none'; img-src http: https: data:; style-src 'unsafe-inline'")
    assert "script" not in csp


def _page(cli: Cli, tmp_path: Path, *args: str) -> str:
    page = tmp_path / "page.html"
    cli(*args, "--html", str(page))
    return page.read_text(encoding="utf-8")


def test_html_page_per_kind(cli: Cli, tmp_path: Path) -> None:
    shop = ["preview", "--source", "shop", "--limit", "6"]
    telegram = _page(cli, tmp_path, *shop, "--layout", "product", "--channel-kind", "telegram")
    assert "<title>Preview: product → Telegram · shop · 6 items</title>" in telegram
    assert telegram.count('class="tg-bubble"') == 6 and telegram.count('class="tg-keyboard"') == 6
    assert '<div class="tg-media"><img class="tg-photo" src="http://127.0.0.1:' in telegram
    assert "<s>$249.00</s> <b>$199.00</b>" in telegram  # Telegram HTML rendered, not escaped
    assert "✓ 6 payloads, all valid" in telegram

    album = _page(cli, tmp_path, *shop, "--layout", "carousel", "--channel-kind", "telegram")
    assert 'class="tg-album"' in album and album.count('class="tg-cell"') == 6

    messenger = _page(cli, tmp_path, *shop, "--layout", "carousel", "--channel-kind", "messenger")
    assert 'class="fb-carousel"' in messenger and messenger.count('class="fb-el"') == 6
    assert messenger.count('class="fb-btn"') == 6
    buttons = _page(cli, tmp_path, "preview", "--source", "blog", "--layout", "single",
                    "--channel-kind", "messenger", "--limit", "5")  # fmt: skip
    assert "fb-buttons" in buttons  # a post without image: text with a button template

    email = _page(cli, tmp_path, *shop, "--layout", "digest", "--channel-kind", "email")
    [frame] = [a for t, a in _tags(email) if t == "iframe"]
    assert frame["sandbox"] == "" and "Ridge Shell Jacket" in frame["srcdoc"]
    assert 'class="mail-subject"' in email and "Plain-text part" in email

    slack = _page(cli, tmp_path, *shop, "--layout", "carousel", "--channel-kind", "slack")
    assert 'class="sl-msg"' in slack and 'class="sl-thumb"' in slack and 'class="sl-btn"' in slack
    discord = _page(cli, tmp_path, *shop, "--layout", "single", "--channel-kind", "discord")
    assert discord.count('class="dc-embed"') == 6 and 'class="dc-image"' in discord
    webhook = _page(cli, tmp_path, *shop, "--layout", "product", "--channel-kind", "json")
    assert webhook.count('class="json-call"') == 6 and '<span class="jk">&quot;format&quot;</span>' in webhook


def test_html_with_json_output_prints_only_the_payloads(cli: Cli, tmp_path: Path) -> None:
    page = tmp_path / "p.html"
    payloads = cli.json(*_preview("--layout", "plain", "--channel-kind", "slack", "--html", str(page)))
    assert isinstance(payloads, list) and payloads[0]["method"] == "POST"
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


HOSTILE_FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel>
<title>Evil &lt;script&gt;alert("t")&lt;/script&gt;</title><link>{base}/</link>
<item><guid>evil-1</guid><title>&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt; [bold]*x*</title>
<link>javascript:alert(3)</link>
<description><![CDATA[<p onclick="alert(4)">Hi <script>alert(5)</script><a href="javascript:alert(6)">x</a>
<iframe src="http://127.0.0.1/"></iframe> <b>**md** _it_ <u>u</u></b></p>]]></description>
<media:content url="javascript:alert(7)" medium="image"/></item>
<item><guid>evil-2</guid><title>"quotes' &amp; &lt;/textarea&gt;&lt;/iframe&gt;&lt;svg onload=alert(8)&gt;</title>
<link>{base}/ok</link><description>&lt;/title&gt;&lt;/style&gt;&lt;script&gt;alert(9)&lt;/script&gt;</description>
<media:content url="{base}/img/x.jpg&quot; onerror=&quot;alert(10)" medium="image"/></item>
</channel></rss>"""


class InvalidPayloads(AssertionError):
    """Payloads of hostile items a provider (or our validator) would refuse."""


@pytest.mark.parametrize("kind", CHANNEL_KINDS)
def test_hostile_items_cannot_script_the_page(
    cli: Cli, shop_and_blog: tuple[SampleServer, Path], tmp_path: Path, kind: str
) -> None:
    server, db = shop_and_blog
    server.put("/evil.rss", HOSTILE_FEED.replace("{base}", server.base_url), "application/rss+xml")
    name = f"evil-{kind}"
    cli("source", "add", name, server.base_url + "/evil.rss")
    invalid = []
    try:
        for layout in LAYOUTS:
            page = tmp_path / f"{layout}.html"
            status = _run(db, "preview", "--source", name, "--layout", layout, "--channel-kind", kind,
                          "--html", str(page))  # fmt: skip
            captured = cli.capsys.readouterr()
            assert status in (0, 1), captured.err  # 1: an invalid payload, shown in the page
            html = page.read_text(encoding="utf-8")
            _assert_safe_page(html)
            assert "<script" not in html.lower()  # item text is escaped wherever it lands
            if status:
                invalid.append(f"{layout}: {captured.err.strip()}")
    finally:
        cli("source", "remove", name)
    if invalid:
        raise InvalidPayloads("\n".join(invalid))


def test_markup_converters_escape_everything() -> None:
    assert telegram_to_html('<b>a <a href="javascript:x">j</a></b><script>s</script><i>open') == (
        '<b>a <span class="tg-link">j</span></b>s<i>open</i>'
    )
    assert telegram_to_html('<a href="https://x.y/?a=1&amp;b=&quot;2">l</a>') == (
        '<a href="https://x.y/?a=1&amp;b=&quot;2" target="_blank" rel="noopener noreferrer nofollow">l</a>'
    )
    assert mrkdwn_to_html("*<https://x.y|T &lt;b&gt;>* <javascript:x|j> `<i>`") == (
        '<b><a href="https://x.y" target="_blank" rel="noopener noreferrer nofollow">T &lt;b&gt;</a></b>'
        " j <code>&lt;i&gt;</code>"
    )
    assert markdown_to_html("**[a\\*](<https://x.y>)** <img src=x onerror=y> \\*no\\*") == (
        '<b><a href="https://x.y" target="_blank" rel="noopener noreferrer nofollow">a*</a></b>'
        " &lt;img src=x onerror=y&gt; *no*"
    )
    assert markdown_to_html("\ue0007\ue001 *i*") == "\ufffd7\ufffd <i>i</i>"  # no stash forgery


_ALLOWED_TAGS = {"a", "b", "i", "u", "s", "code", "pre", "span", "blockquote"}
_MARKUP = st.lists(
    st.sampled_from([*"<>&\"'/=*_~`[]()|#\\\n ab:", "javascript:", "https://x.y", "<a href=", "\ue000"]),
    max_size=60,
).map("".join)


@given(text=_MARKUP)
@settings(max_examples=300, deadline=None)
def test_markup_converters_only_emit_whitelisted_markup(text: str) -> None:
    for convert in (telegram_to_html, mrkdwn_to_html, markdown_to_html):
        for tag, attrs in _tags(convert(text)):
            assert tag in _ALLOWED_TAGS, (convert.__name__, text, tag)
            assert set(attrs) <= {"href", "class", "target", "rel"}, (convert.__name__, text, attrs)
            if "href" in attrs:
                assert attrs["href"].startswith(("http://", "https://", "mailto:")), (text, attrs)


# --------------------------------------------------------------------------- headless Chromium


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _png_sample_rows(data: bytes, *, run: int = 6) -> list[bytes]:
    """Decoded pixel rows of a PNG (8-bit RGB or RGBA), stdlib only: the rows a decoder
    can start from (filter None or Sub, and the first row) and the few rows after each."""
    _png_size(data)
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour in (2, 6), f"unexpected PNG format: depth {depth}, colour type {colour}"
    bpp = 3 if colour == 2 else 4
    stride = width * bpp
    raw = zlib.decompress(idat)
    assert len(raw) == height * (stride + 1)
    rows: list[bytes] = []
    prev: bytearray | None = bytearray(stride)  # the row above the first is zeros
    left = run
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]
        if kind in (0, 1):
            left = run
        elif prev is None or left == 0:
            prev = None
            continue
        up = prev if prev is not None else bytearray(stride)
        out = bytearray(line)
        for i in range(stride):
            a = out[i - bpp] if i >= bpp else 0
            b = up[i]
            if kind == 1:
                out[i] = (out[i] + a) & 0xFF
            elif kind == 2:
                out[i] = (out[i] + b) & 0xFF
            elif kind == 3:
                out[i] = (out[i] + ((a + b) >> 1)) & 0xFF
            elif kind == 4:
                c = up[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                out[i] = (out[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(out))
        prev = out
        left -= 1
    return rows


def _loopback_only(html: str) -> None:
    """The page may make the browser fetch loopback URLs only (xmlns names are no fetch)."""
    text = re.sub(r"&(quot|#x27|#39|amp);", lambda m: {"quot": '"', "amp": "&"}.get(m.group(1), "'"), html)
    for match in re.finditer(r"(xmlns(?::\w+)?=[\"'])?(https?://[^\s\"'<>()]+)", text):
        if match.group(1):
            continue
        host = urlsplit(match.group(2)).hostname or ""
        assert host == "localhost" or ip_address(host).is_loopback, match.group(2)


def _chromium() -> Path:
    if CHROMIUM.exists() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    if on_ci():
        pytest.fail(f"{CHROMIUM} is missing on CI: .ci/run installs it (apt-get install chromium)")
    pytest.skip(f"{CHROMIUM} not found: install it to run the screenshot test (apt-get install chromium)")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("layout", "kind", "source"),
    [("product", "telegram", "shop"), ("carousel", "messenger", "shop"), ("digest", "email", "blog")],
)
def test_headless_chromium_screenshot(cli: Cli, tmp_path: Path, layout: str, kind: str, source: str) -> None:
    chromium = _chromium()
    page = tmp_path / f"{layout}-{kind}.html"
    cli("preview", "--source", source, "--layout", layout, "--channel-kind", kind, "--limit", "4",
        "--html", str(page))  # fmt: skip
    _loopback_only(page.read_text(encoding="utf-8"))
    shot = tmp_path / "shot.png"
    width, height = SHOT_SIZE
    command = [
        str(chromium), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={width},{height}",
        "--virtual-time-budget=10000",  # the loads (images, the email frame) finish before the shot
        "--hide-scrollbars", f"--screenshot={shot}", page.as_uri(),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    if keep := os.environ.get("FEEDCAST_KEEP_SCREENSHOTS"):
        shutil.copy(shot, Path(keep) / f"{layout}-{kind}.png")
    data = shot.read_bytes()
    assert _png_size(data) == SHOT_SIZE
    rows = _png_sample_rows(data)
    assert len(rows) >= 10
    bpp = len(rows[0]) // width
    colours = {row[i : i + 3] for row in rows for i in range(0, len(row), bpp * 4)}
    assert len(colours) > 50, f"a blank screenshot? {len(colours)} colours in {len(rows)} rows"
    assert len(set(rows)) > 5


# --------------------------------------------------------------------------- right to left

ARABIC_FEED = Path(__file__).parent / "data" / "corpus" / "feeds" / "bbc_arabic.xml"  # Apache-2.0
FSI, PDI, RLM = "\u2068", "\u2069", "\u200f"


@pytest.fixture(scope="module")
def arabic_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """BBC Arabic (tests/data/corpus, Apache-2.0) as a source, served on loopback."""
    db = tmp_path_factory.mktemp("arabic") / "arabic.duckdb"
    with SampleServer() as server:
        server.put("/ar.xml", ARABIC_FEED.read_text(encoding="utf-8"), "application/atom+xml")
        assert _run(db, "source", "add", "bbc", server.base_url + "/ar.xml") == 0
        yield db


def _arabic_page(db: Path, tmp_path: Path, kind: str, locale: str = "ar") -> str:
    page = tmp_path / f"ar-{kind}.html"
    assert _run(db, "preview", "--source", "bbc", "--layout", "digest", "--channel-kind", kind,
                "--locale", locale, "--limit", "3", "--html", str(page)) == 0  # fmt: skip
    return page.read_text(encoding="utf-8")


def test_a_right_to_left_preview_is_marked_up_as_such(arabic_db: Path, tmp_path: Path) -> None:
    page = _arabic_page(arabic_db, tmp_path, "telegram")
    assert '<html lang="ar">' in page and '<header class="top" lang="en">' in page
    assert '<div class="body" dir="rtl">' in page  # the message, though it starts with "BBCArabic.com"
    assert "<div class='item-title' dir='auto'>" in page and "<bdi>2015-09-11</bdi>" in page
    # the layout's dates are isolated (FSI ... PDI), so they keep their order next to Latin text
    assert f"{FSI}11{RLM}/09{RLM}/2015{PDI}" in page
    email = _arabic_page(arabic_db, tmp_path, "email")
    assert 'dir="rtl"' in html.unescape(email)  # the email document itself (in the frame's srcdoc)
    english = _arabic_page(arabic_db, tmp_path, "email", locale="en")  # Arabic items, English dates
    assert 'lang="en" dir="rtl"' in html.unescape(english) and FSI not in english


# the Telegram text of the first message: its computed direction, and where its first
# date's day and year are drawn (an Arabic date reads right to left: the day on the right)
_DATE_JS = """(() => {
  const body = d.querySelector('.message .tg-text');
  const walker = d.createTreeWalker(body, NodeFilter.SHOW_TEXT);
  let node, at = -1;
  while ((node = walker.nextNode())) {  // the first date of an item (2015), not the header's
    at = node.data.indexOf('\\u2068');
    if (at >= 0 && node.data.indexOf('2015', at) > at) break;
  }
  const x = (from, n) => { const r = d.createRange(); r.setStart(node, from); r.setEnd(node, from + n);
                           return r.getBoundingClientRect().left; };
  const year = node.data.indexOf('2015', at);
  return {lang: d.documentElement.lang, direction: w.getComputedStyle(body).direction,
          day_x: x(at + 1, 2), year_x: x(year, 4)};
})()"""


@pytest.mark.slow
@pytest.mark.parametrize("width", [390, 1200])
def test_a_right_to_left_preview_reads_right_in_chromium(arabic_db: Path, tmp_path: Path, width: int) -> None:
    from tests.chromium import open_in_chromium, probe

    page = tmp_path / "ar.html"
    page.write_text(_arabic_page(arabic_db, tmp_path, "telegram"), encoding="utf-8")
    found = probe(page, tmp_path, width, _DATE_JS)
    assert found["inner"] == width and found["scroll"] <= width and found["wide"] == [], found
    assert found["lang"] == "ar" and found["direction"] == "rtl"
    assert found["day_x"] > found["year_x"], found  # 11/09/2015 read from the right, not "112015/09/"
    if keep := os.environ.get("FEEDCAST_KEEP_SCREENSHOTS"):
        open_in_chromium(tmp_path / f"probe-{width}.html", tmp_path, f"--window-size={max(width, 500)},1400",
                         "--hide-scrollbars", f"--screenshot={Path(keep) / f'preview-arabic-{width}.png'}")  # fmt: skip
