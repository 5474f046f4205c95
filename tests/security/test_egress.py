"""Outbound requests: what a hostile channel URL, source redirect or DNS answer can reach.

Every test runs with the guard as in production (``FEEDCAST_ALLOW_PRIVATE_NETWORKS``
unset; tests/conftest.py sets it for the rest of the suite), through the real CLI, the
real fetcher or the real sending engine. Nothing leaves loopback: 127.0.0.1 plays the
internal service (the guard refuses it), 127.0.0.2 plays a public host (named in
``FEEDCAST_ALLOWED_NETWORKS``), and host names are answered by a patched
``socket.getaddrinfo`` with loopback addresses only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import feedcast.cli as cli_module
from feedcast.kernel.errors import BlockedAddress
from feedcast.sandbox import SampleServer, sample_text
from feedcast.store import Store
from sources.fetch import Fetcher, FetchLimits, FetchResponse, make_client

ALLOW = "FEEDCAST_ALLOW_PRIVATE_NETWORKS"
PUBLIC = "127.0.0.2"  # stands for a public host: listed in FEEDCAST_ALLOWED_NETWORKS
INTERNAL = "127.0.0.1"  # stands for an internal service: refused by the guard
SECRET_BODY = "INTERNAL-ONLY-7f3a9c root:x:0:0 aws_secret_access_key=wJalrXUtnFEMI"
TOKEN = "424242:egress-test-token-qwertyuiop"
SLACK_TOKEN = "Qm9vb0hvb2tUb2tlbjEyMzQ1"
RSS = (
    '<?xml version="1.0"?><rss version="2.0"><channel><title>Public</title>'
    "<link>http://public.example/</link><description>d</description>"
    "<item><title>One</title><link>http://public.example/1</link><guid>1</guid></item>"
    "</channel></rss>"
)


# --------------------------------------------------------------------------- loopback stand-ins


class Listener:
    """A plain TCP listener answering every HTTP request with one fixed response
    (``Connection: close``), counting every connection it accepts and every byte it
    reads: "nothing reached it" is ``connections == 0``."""

    def __init__(
        self,
        host: str,
        port: int = 0,
        *,
        status: int = 400,
        body: str = SECRET_BODY,
        content_type: str = "text/plain",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status, self.body, self.content_type = status, body.encode(), content_type
        self.headers = headers or {}
        self.connections = 0
        self.received = b""
        self.requests: list[str] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(16)
        self.host, self.port = self._sock.getsockname()[:2]
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                head, _, rest = data.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip() or 0)
                while len(rest) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    rest += chunk
            except (OSError, ValueError):
                pass
            with self._lock:
                self.received += data
                self.requests.append(data.split(b"\r\n", 1)[0].decode("latin-1"))
            if not data.startswith((b"GET ", b"POST ", b"HEAD ")):
                return  # not plain HTTP (a TLS handshake): nothing to answer
            body = b"" if data.startswith(b"HEAD ") else self.body
            extra = "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
            answer = (
                f"HTTP/1.1 {self.status} Answer\r\nContent-Type: {self.content_type}\r\n"
                f"Content-Length: {len(self.body)}\r\n{extra}Connection: close\r\n\r\n"
            ).encode()
            with contextlib.suppress(OSError):
                conn.sendall(answer + body)

    def close(self) -> None:
        self._sock.close()


@pytest.fixture
def internal() -> Iterator[Listener]:
    """The internal service (an admin API, the cloud metadata service) on 127.0.0.1."""
    listener = Listener(INTERNAL)
    yield listener
    listener.close()


def beside(internal: Listener, **answer: Any) -> Listener:
    """A "public" listener on 127.0.0.2 at the internal service's port, so that one URL
    reaches either, depending only on the address its host name resolves to."""
    return Listener(PUBLIC, internal.port, **answer)


class Resolver:
    """``socket.getaddrinfo`` answering chosen names from a script (one answer per call,
    the last one repeating); other names go to the system resolver."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.calls: Counter[str] = Counter()
        real = socket.getaddrinfo

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            name = host.decode() if isinstance(host, bytes) else str(host)
            script = self.answers.get(name.rstrip(".").lower())
            if script is None:
                return real(host, port, *args, **kwargs)
            ip = script[min(self.calls[name], len(script) - 1)]
            self.calls[name] += 1
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, int(port or 0)))]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def guard(monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard as in production: private networks refused; 127.0.0.2 stands for the internet."""
    monkeypatch.delenv(ALLOW, raising=False)
    monkeypatch.setenv("FEEDCAST_ALLOWED_NETWORKS", f"{PUBLIC}/32")


class Cli:
    def __init__(self, db: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.db, self.capsys = db, capsys

    def run(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        try:
            cli_module.main(["--db", str(self.db), *args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err

    def __call__(self, *args: str, code: int = 0) -> str:
        got, out, err = self.run(*args)
        assert got == code, f"exit {got}, stdout={out!r} stderr={err!r}"
        return out if code == 0 else err

    def refused(self, *args: str, code: int = 2) -> str:
        """A refusal: the exit code and one clear line, no traceback."""
        err = self(*args, code=code)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        return err


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setattr(cli_module.out, "width", 400)
    monkeypatch.setattr(cli_module.err, "width", 400)
    monkeypatch.setenv("TG_TOKEN", TOKEN)
    monkeypatch.setenv("PAGE_TOKEN", "EAAB-egress-page-token-0123456789")
    monkeypatch.setenv("HOOK_SECRET", "whsec-egress-0123456789")
    return Cli(tmp_path / "egress.duckdb", capsys)


def an_older_feedcast_stored(db: Path, name: str, kind: str, settings: dict[str, str]) -> None:
    """A channel row as an older feedcast wrote it, before these checks existed."""
    Store(db).add_channel(name, kind, settings, fixed_recipient="webhook" if kind == "webhook" else None)


def fetch(url: str, **kw: Any) -> FetchResponse:
    async def go() -> FetchResponse:
        limits = FetchLimits(connect_timeout=5, read_timeout=5, request_deadline=15)
        async with make_client(limits) as client:
            return await Fetcher(client, limits, **kw).fetch(url)

    return asyncio.run(go())


# --------------------------------------------------------------------------- channel URLs


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/hooks/admin",
        "http://localhost:{port}/hooks/admin",
        "http://[::ffff:127.0.0.1]:{port}/hooks/admin",
        "http://2130706433:{port}/hooks/admin",  # 127.0.0.1 as one number
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[fd00::1]/hooks/admin",
    ],
)
def test_webhook_url_to_loopback_or_link_local_is_refused(
    cli: Cli, guard: None, internal: Listener, target: str
) -> None:
    url = target.format(port=internal.port)
    err = cli.refused("channel", "add", "hook", "webhook", "--url", url)
    assert "private, loopback or link-local" in err and ALLOW in err
    assert cli("channel", "list").startswith("no channels")
    assert internal.connections == 0


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("telegram", ["--token", "env:TG_TOKEN", "--api-url", "http://169.254.169.254"]),
        ("telegram", ["--token", "env:TG_TOKEN", "--api-url", "https://169.254.169.254"]),
        ("messenger", ["--page-token", "env:PAGE_TOKEN", "--api-url", "https://169.254.169.254/v25.0"]),
        ("messenger", ["--page-token", "env:PAGE_TOKEN", "--api-url", "https://[::ffff:a9fe:a9fe]/v25.0"]),
    ],
)
def test_telegram_or_messenger_api_url_to_the_metadata_address_is_refused(
    cli: Cli, guard: None, kind: str, options: list[str]
) -> None:
    err = cli.refused("channel", "add", "bot", kind, *options)
    assert "--api-url" in err and TOKEN not in err
    assert cli("channel", "list").startswith("no channels")


def test_channel_test_does_not_reach_a_name_that_resolves_inside(
    cli: Cli, guard: None, internal: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name passes `channel add` (no DNS there); the connection is refused when the
    name resolves to an internal address, before a byte is sent."""
    Resolver(monkeypatch, {"hooks.corp.test": [INTERNAL], "bot.corp.test": [INTERNAL]})
    cli("channel", "add", "hook", "webhook", "--url", f"http://hooks.corp.test:{internal.port}/hooks/x")
    cli(
        "channel",
        "add",
        "tg",
        "telegram",
        "--token",
        "env:TG_TOKEN",
        "--api-url",
        f"https://bot.corp.test:{internal.port}",
    )
    for args in (["hook"], ["hook", "--to", "webhook"], ["tg"], ["tg", "--to", "77"]):
        err = cli.refused("channel", "test", *args, code=1)
        assert "refused to connect to" in err and INTERNAL in err and TOKEN not in err
    assert internal.connections == 0 and internal.received == b""


# --------------------------------------------------------------------------- redirects and DNS


@pytest.mark.parametrize(
    "location", ["http://127.0.0.1:{port}/latest/meta-data/", "http://meta.corp.test:{port}/"]
)
def test_a_redirect_hop_to_an_internal_address_is_refused(
    guard: None, internal: Listener, monkeypatch: pytest.MonkeyPatch, location: str
) -> None:
    Resolver(monkeypatch, {"meta.corp.test": [INTERNAL]})
    public = beside(internal, status=302, body="", headers={"Location": location.format(port=internal.port)})
    try:
        with pytest.raises(BlockedAddress, match=ALLOW):
            fetch(f"http://{PUBLIC}:{internal.port}/feed")
        assert public.connections == 1  # the public hop was fetched...
        assert internal.connections == 0  # ...its redirect to the inside was not
    finally:
        public.close()


def test_dns_rebinding_between_the_guard_and_the_connection_cannot_reach_a_source_inside(
    guard: None, internal: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guard's lookup says public, the lookup when connecting says 127.0.0.1 (a
    rebinding answer): the connection is checked where it is made, so nothing is sent."""
    Resolver(monkeypatch, {"feeds.rebind.test": [INTERNAL]})

    async def guards_view(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]  # what the first answer said; never connected to

    with pytest.raises(BlockedAddress, match=ALLOW):
        fetch(f"http://feeds.rebind.test:{internal.port}/feed", resolve=guards_view)
    assert internal.connections == 0 and internal.received == b""


def test_a_rebinding_resolver_is_asked_once_and_the_source_connection_goes_to_the_checked_address(
    guard: None, internal: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """First answer public (127.0.0.2), every later one internal: one lookup, checked,
    and the connection made to the address that was checked."""
    resolver = Resolver(monkeypatch, {"feeds.rebind.test": [PUBLIC, INTERNAL]})
    public = beside(internal, status=200, body=RSS, content_type="application/rss+xml")
    try:
        response = fetch(f"http://feeds.rebind.test:{internal.port}/feed")
        assert response.status == 200 and b"<title>One</title>" in response.body
        assert resolver.calls["feeds.rebind.test"] == 1
        assert public.connections == 1 and b"Host: feeds.rebind.test" in public.received
        assert internal.connections == 0
    finally:
        public.close()


def test_dns_rebinding_between_two_connections_cannot_reach_a_webhook_inside(
    cli: Cli, guard: None, internal: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`channel test --to webhook` connects twice (the check, then the test message);
    the name answers public the first time and internal after (TTL 0): the second
    connection is checked again and refused."""
    resolver = Resolver(monkeypatch, {"hooks.rebind.test": [PUBLIC, INTERNAL]})
    public = beside(internal, status=200, body='{"ok": true}', content_type="application/json")
    try:
        cli(
            "channel",
            "add",
            "hook",
            "webhook",
            "--url",
            f"http://hooks.rebind.test:{internal.port}/hooks/ops",
        )
        err = cli.refused("channel", "test", "hook", "--to", "webhook", code=1)
        assert "refused to connect to hooks.rebind.test (127.0.0.1)" in err
        assert public.requests == ["HEAD /hooks/ops HTTP/1.1"]  # the check reached the public address
        assert resolver.calls["hooks.rebind.test"] == 2
        assert internal.connections == 0 and internal.received == b""
    finally:
        public.close()


# --------------------------------------------------------------------------- secrets in transit


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("telegram", ["--token", "env:TG_TOKEN", "--api-url", "http://bot-api.example.org"]),
        ("messenger", ["--page-token", "env:PAGE_TOKEN", "--api-url", "http://graph.example.org/v25.0"]),
        ("webhook", ["--url", "http://hooks.example.org/in", "--secret", "env:HOOK_SECRET"]),
        ("webhook", ["--url", "http://hooks.example.org/in", "--header", "Authorization: env:HOOK_SECRET"]),
    ],
)
def test_a_secret_is_never_sent_over_plain_http_to_another_host(
    cli: Cli, guard: None, kind: str, options: list[str]
) -> None:
    err = cli.refused("channel", "add", "ch", kind, *options)
    assert "https" in err and "carries a secret" in err
    assert cli("channel", "list").startswith("no channels")


def test_a_bot_token_is_not_sent_over_plain_http_by_a_channel_added_before(
    cli: Cli, guard: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row from before the check (plain http to a public host): refused at send time,
    before the token leaves."""
    Resolver(monkeypatch, {"bot-api.example.test": [PUBLIC], "graph.example.test": [PUBLIC]})
    plain = Listener(PUBLIC, status=200, body='{"ok":true,"result":{"id":1,"username":"b"}}')
    try:
        api = f"http://bot-api.example.test:{plain.port}"
        an_older_feedcast_stored(cli.db, "tg", "telegram", {"token": "env:TG_TOKEN", "api_url": api})
        graph = f"http://graph.example.test:{plain.port}/v25.0"
        an_older_feedcast_stored(
            cli.db, "fb", "messenger", {"page_token": "env:PAGE_TOKEN", "api_url": graph}
        )
        for name in ("tg", "fb"):
            err = cli.refused("channel", "test", name, code=1)
            assert "must be an https URL" in err and TOKEN not in err
        assert plain.connections == 0 and TOKEN.encode() not in plain.received
    finally:
        plain.close()


# --------------------------------------------------------------------------- what gets recorded


def _campaign_to(cli: Cli, monkeypatch: pytest.MonkeyPatch, url: str, fmt: str = "json") -> None:
    """A source with one item, a webhook channel to ``url`` and an automation, set up
    while private networks are allowed (the sample source is on loopback)."""
    monkeypatch.setenv(ALLOW, "1")
    samples = SampleServer().start()
    samples.put(
        "/blog.rss", sample_text("blog.rss").replace("{base}", samples.base_url), "application/rss+xml"
    )
    try:
        cli("source", "add", "blog", samples.base_url + "/blog.rss")
    finally:
        samples.stop()
    cli("channel", "add", "hook", "webhook", "--url", url, "--format", fmt)
    cli(
        "automation",
        "add",
        "news",
        "--source",
        "blog",
        "--layout",
        "single",
        "--channel",
        "hook",
        "--backfill",
        "1",
    )


def _history_errors(cli: Cli) -> list[str]:
    rows = json.loads(cli("sql", "SELECT status, error FROM send_history", "--format", "json"))
    return [str(r["error"]) for r in rows if r["error"] is not None]


def test_an_internal_reply_is_never_stored_in_send_history(
    cli: Cli, internal: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A webhook whose name resolves to an internal service: the engine refuses the
    connection; nothing of the service reaches send_history or the terminal."""
    Resolver(monkeypatch, {"hooks.corp.test": [INTERNAL]})
    _campaign_to(cli, monkeypatch, f"http://hooks.corp.test:{internal.port}/hooks/x")
    monkeypatch.delenv(ALLOW)
    code, out, err = cli.run("send", "news")
    assert code == 1 and "refused to connect to hooks.corp.test" in err
    assert internal.connections == 0
    for text in (out, err, *_history_errors(cli)):
        assert "INTERNAL-ONLY" not in text and "aws_secret" not in text


@pytest.mark.parametrize("fmt", ["json", "slack"])
def test_a_reply_body_outside_the_provider_format_is_not_recorded(
    cli: Cli, internal: Listener, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """Even where private networks are allowed (the receiver is on loopback), an answer
    that is not the provider's error format (plain text here) is named by its status,
    never quoted."""
    _campaign_to(cli, monkeypatch, f"http://127.0.0.1:{internal.port}/hooks/x", fmt)
    _code, out, err = cli.run("send", "news")
    assert internal.connections >= 1  # reached: private networks are allowed here
    errors = _history_errors(cli)
    assert errors and all("HTTP 400" in e for e in errors)
    for text in (out, err, *errors):
        assert "INTERNAL-ONLY" not in text and "aws_secret" not in text


# --------------------------------------------------------------------------- token-bearing URLs


TOKEN_URLS = [
    f"https://hooks.slack.com/services/T0000000/B0000000/{SLACK_TOKEN}",
    f"https://discord.com/api/webhooks/123456789012345678/{SLACK_TOKEN}-discord",
    f"https://discordapp.com/api/webhooks/1/{SLACK_TOKEN}",
    f"https://hooks.example.org/in?token={SLACK_TOKEN}",
    f"https://bot:{SLACK_TOKEN}@hooks.example.org/in",
    f"https://hooks.example.org/in/{SLACK_TOKEN}",
]


def test_a_webhook_url_carrying_a_token_is_accepted_only_as_env_var(
    cli: Cli, guard: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "setup.yaml"
    for url in TOKEN_URLS:
        err = cli.refused("channel", "add", "alerts", "webhook", "--url", url, "--format", "slack")
        assert "env:VAR" in err and SLACK_TOKEN not in err, url
        config.write_text(
            f"channels:\n  - name: alerts\n    kind: webhook\n    format: slack\n    url: '{url}'\n",
            encoding="utf-8",
        )
        err = cli.refused("apply", str(config))
        assert "env:VAR" in err and SLACK_TOKEN not in err, url
    assert cli("channel", "list").startswith("no channels")
    # the same URL from the environment is fine
    monkeypatch.setenv("ALERTS_URL", TOKEN_URLS[0])
    config.write_text(
        "channels:\n  - name: alerts\n    kind: webhook\n    format: slack\n    url: env:ALERTS_URL\n",
        encoding="utf-8",
    )
    cli("apply", str(config))
    assert SLACK_TOKEN not in cli("channel", "show", "alerts") + cli("export")


def test_export_never_prints_a_token_url_stored_by_an_older_feedcast(
    cli: Cli, guard: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"https://hooks.slack.com/services/T0000000/B0000000/{SLACK_TOKEN}"
    an_older_feedcast_stored(cli.db, "alerts", "webhook", {"url": url, "format": "slack"})
    code, exported, warning = cli.run("export")
    assert code == 0 and SLACK_TOKEN not in exported + warning
    assert "url: env:FEEDCAST_ALERTS_URL" in exported and "FEEDCAST_ALERTS_URL" in warning
    assert SLACK_TOKEN not in cli("channel", "show", "alerts")
    # the row is refused at load, with what to do
    err = cli.refused("channel", "test", "alerts", "--to", "webhook", code=1)
    assert "feedcast apply" in err and "FEEDCAST_ALERTS_URL" in err and SLACK_TOKEN not in err
    # following the instructions takes the token out of the database
    (tmp_path / "exported.yaml").write_text(exported, encoding="utf-8")
    monkeypatch.setenv("FEEDCAST_ALERTS_URL", url)
    cli("apply", str(tmp_path / "exported.yaml"))
    assert Store(cli.db).get_channel("alerts").settings["url"] == "env:FEEDCAST_ALERTS_URL"
