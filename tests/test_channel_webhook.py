"""The webhook channel against the webhook receivers emulator, over real loopback HTTP."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from channels.base import Outcome, Recipient, Result, Secrets, SendContext, is_secret_ref
from channels.ratelimit import RateGate
from channels.webhook import WebhookChannel, classify, sign, token_in_url, verify
from feedcast.kernel.clock import SYSTEM, FakeClock
from feedcast.kernel.errors import ChannelError, InvalidValue
from feedcast.kernel.models import Message, Module, ProviderCall
from feedcast.sandbox.asgi import AsgiServer
from feedcast.sandbox.webhooks import Hook, WebhookReceiver
from layouts.formats import provider_calls

T = TypeVar("T")
WEBHOOK = Recipient(subscriber_id=7, address="webhook")
CONTEXT = SendContext(campaign_id=42)
SECRET = "whsec-test-0123456789"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[WebhookReceiver, AsgiServer]]:
    receiver = WebhookReceiver(seed=1)
    with AsgiServer(receiver.app, name="webhooks") as server:
        yield receiver, server


@pytest.fixture
def receiver(served: tuple[WebhookReceiver, AsgiServer]) -> WebhookReceiver:
    rx = served[0]
    rx.clock = SYSTEM  # a test that needs exact windows sets a FakeClock
    rx.reset(hooks=True)
    rx.set_options(limits=True, fault_rate=0.0, drop_rate=0.0, seed=1, auto_hooks=True)
    return rx


@pytest.fixture
def base(served: tuple[WebhookReceiver, AsgiServer]) -> str:
    return served[1].base_url


def run(factory: Callable[[httpx.AsyncClient], Awaitable[T]]) -> T:
    async def main() -> T:
        async with httpx.AsyncClient(timeout=5.0) as client:
            return await factory(client)

    return asyncio.run(main())


def channel(url: str, fmt: str, *, environ: dict[str, str] | None = None, **options: str) -> WebhookChannel:
    environ = dict(environ or {})
    if not is_secret_ref(url) and token_in_url(url):  # a URL with a token is taken only as env:VAR
        environ["HOOK_URL_WITH_TOKEN"], url = url, "env:HOOK_URL_WITH_TOKEN"
    settings = WebhookChannel.validate_settings({"url": url, "format": fmt, **options})
    return WebhookChannel("hook", settings, secrets=Secrets(environ))


async def send_all(
    ch: WebhookChannel, client: httpx.AsyncClient, bodies: list[dict[str, Any]]
) -> list[Result]:
    await ch.open(client)
    try:
        return [await ch.send(WEBHOOK, ProviderCall("POST", b), CONTEXT, i) for i, b in enumerate(bodies)]
    finally:
        await ch.close()


def send_one(ch: WebhookChannel, body: dict[str, Any], position: int = 0) -> Result:
    async def go(client: httpx.AsyncClient) -> Result:
        await ch.open(client)
        return await ch.send(WEBHOOK, ProviderCall("POST", body), CONTEXT, position)

    return run(go)


def call_of(fmt: str) -> dict[str, Any]:
    calls = provider_calls(Message(format=fmt, modules=(Module(kind="text", text="hi"),), subject="S"))
    assert len(calls) == 1
    return dict(calls[0].body)


# --------------------------------------------------------------------------- Slack


def test_slack_success_records_the_payload(receiver: WebhookReceiver, base: str) -> None:
    hook = receiver.add_slack("T1/B1/secretslacktoken0001")
    body = call_of("slack")
    result = send_one(channel(base + hook.path, "slack"), body)
    assert result.outcome is Outcome.SENT and result.error is None
    (record,) = receiver.received(hook.name)
    assert record.body == body
    assert record.headers["content-type"] == "application/json"
    assert record.headers["user-agent"].startswith("feedcast/")


def test_slack_refusals_are_content_and_gone_is_removed(receiver: WebhookReceiver, base: str) -> None:
    hook = receiver.add_slack("T1/B1/secretslacktoken0002")
    ch = channel(base + hook.path, "slack")
    too_many = {"text": "x", "blocks": [{"type": "divider"}] * 51}
    long_section = {
        "text": "x",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "a" * 3001}}],
    }
    empty: dict[str, Any] = {"text": " "}
    results = run(lambda c: send_all(ch, c, [too_many, long_section, empty]))
    assert [r.outcome for r in results] == [Outcome.CONTENT] * 3
    assert [r.code for r in results] == ["400 invalid_payload", "400 invalid_payload", "400 no_text"]
    assert receiver.received(hook.name) == []

    receiver.add_slack(hook.key, status="archived")
    gone = send_one(channel(base + hook.path, "slack"), call_of("slack"))
    assert gone.outcome is Outcome.RECIPIENT and gone.subscriber_status == "removed"
    assert gone.code == "410 channel_is_archived"
    receiver.remove(hook.name)
    revoked = send_one(channel(base + hook.path, "slack"), call_of("slack"))
    assert (revoked.outcome, revoked.code) == (Outcome.RECIPIENT, "404 no_service")
    receiver.add_slack(hook.key, status="prohibited")
    assert send_one(channel(base + hook.path, "slack"), call_of("slack")).outcome is Outcome.FATAL


def test_slack_burst_then_429_with_retry_after_pauses(receiver: WebhookReceiver, base: str) -> None:
    receiver.clock = FakeClock()  # the 5 arrive in one instant, however slow the machine
    hook = receiver.add_slack("T1/B1/secretslacktoken0003")
    ch = channel(base + hook.path, "slack")
    results = run(lambda c: send_all(ch, c, [call_of("slack")] * 5))  # no gate: too fast
    assert [r.outcome for r in results[:3]] == [Outcome.SENT] * 3  # the burst is tolerated
    limited = results[3]
    assert limited.outcome is Outcome.TRANSIENT and limited.pause_channel
    assert limited.code == "429 rate_limited" and limited.retry_after is not None and limited.retry_after >= 1
    stats = receiver.stats(hook.name)
    assert stats["rate_limited"] == 2 and stats["accepted"] == 3
    assert stats["max_per_second"] == 5 and stats["over_limit"] == 4
    assert ch.rate_rules(WEBHOOK, ProviderCall("POST", {}))[0].limit == 1


def test_slack_without_limits_counts_what_went_over(receiver: WebhookReceiver, base: str) -> None:
    receiver.clock = FakeClock()  # the 6 arrive in one instant
    receiver.set_options(limits=False)
    hook = receiver.add_slack("T1/B1/secretslacktoken0004")
    results = run(lambda c: send_all(channel(base + hook.path, "slack"), c, [call_of("slack")] * 6))
    assert all(r.outcome is Outcome.SENT for r in results)
    stats = receiver.stats(hook.name)
    assert stats["rate_limited"] == 0 and stats["over_limit"] == 5 and stats["accepted"] == 6


# --------------------------------------------------------------------------- Discord


def test_discord_success_gives_the_message_id(receiver: WebhookReceiver, base: str) -> None:
    hook = receiver.add_discord("1000", "discordtoken-abcdefghijklmnop", name="news")
    result = send_one(channel(base + hook.path, "discord"), call_of("discord"))
    assert result.outcome is Outcome.SENT
    (record,) = receiver.received(hook.name)
    assert result.message_id is not None and result.message_id == record.message_id
    assert record.body == call_of("discord")


def test_discord_answers_carry_rate_limit_headers(receiver: WebhookReceiver, base: str) -> None:
    receiver.clock = FakeClock()  # both in one window, however slow the machine
    hook = receiver.add_discord("1001", "discordtoken-abcdefghijklmnop")
    with httpx.Client() as client:
        ok = client.post(base + hook.path, json={"content": "a"})
        bad = client.post(base + hook.path + "?wait=true", json={"content": "x" * 2001})
    assert ok.status_code == 204  # without wait=true
    assert bad.status_code == 400
    for response, remaining in ((ok, "4"), (bad, "3")):
        assert response.headers["x-ratelimit-limit"] == "5"
        assert response.headers["x-ratelimit-remaining"] == remaining
        assert 0 < float(response.headers["x-ratelimit-reset-after"]) <= 2.0
        assert response.headers["x-ratelimit-bucket"]
    assert bad.json()["code"] == 50035 and "content" in bad.json()["errors"]


def test_discord_form_errors_are_content_unknown_is_removed(receiver: WebhookReceiver, base: str) -> None:
    hook = receiver.add_discord("1002", "discordtoken-abcdefghijklmnop")
    ch = channel(base + hook.path, "discord")
    bodies: list[dict[str, Any]] = [
        {"content": "x" * 2001},
        {"embeds": [{"title": "t"}] * 11},
        {"embeds": [{"title": "t" * 257}]},
        {"embeds": [{"description": "d" * 4000}, {"description": "d" * 2001}]},
        {"content": ""},
    ]
    results = run(lambda c: send_all(ch, c, bodies))
    assert [r.outcome for r in results] == [Outcome.CONTENT] * 5
    assert [r.code for r in results] == ["400 50035"] * 4 + ["400 50006"]
    assert "Invalid Form Body" in (results[0].error or "")

    receiver.remove(hook.name)
    gone = send_one(channel(base + hook.path, "discord"), call_of("discord"))
    assert (
        gone.outcome is Outcome.RECIPIENT and gone.subscriber_status == "removed" and gone.code == "404 10015"
    )
    # a wrong token is a configuration problem: the channel cannot work
    other = receiver.add_discord("1003", "discordtoken-abcdefghijklmnop")
    wrong = send_one(
        channel(base + other.path.replace("abcdefghijklmnop", "zzzzzzzzzzzzzzzz"), "discord"),
        {"content": "a"},
    )
    assert wrong.outcome is Outcome.FATAL and wrong.code == "401 50027"


def test_discord_unknown_ids_are_404_without_auto_hooks(receiver: WebhookReceiver, base: str) -> None:
    receiver.set_options(auto_hooks=False)
    result = send_one(
        channel(base + "/api/v10/webhooks/999/discordtoken-unknown-0001", "discord"), {"content": "a"}
    )
    assert result.outcome is Outcome.RECIPIENT and result.code == "404 10015"
    assert receiver.stats()["totals"]["unknown"] == 1


def test_discord_429_uses_the_json_retry_after(receiver: WebhookReceiver, base: str) -> None:
    receiver.clock = FakeClock()  # the bucket cannot refill between the 5 and the sixth
    hook = receiver.add_discord("1004", "discordtoken-abcdefghijklmnop")
    with httpx.Client() as client:  # someone else empties the bucket
        for _ in range(5):
            assert client.post(base + hook.path, json={"content": "a"}).status_code == 204
    result = send_one(channel(base + hook.path, "discord"), {"content": "b"})
    assert result.outcome is Outcome.TRANSIENT and result.pause_channel and result.code == "429"
    assert result.retry_after is not None and 0 < result.retry_after <= 2.0
    assert (
        result.retry_after != int(result.retry_after) or result.retry_after == 2.0
    )  # the JSON float, not the header
    assert receiver.stats(hook.name)["rate_limited"] == 1


def test_discord_pacing_through_the_gate_never_hits_429(receiver: WebhookReceiver, base: str) -> None:
    hook = receiver.add_discord("1005", "discordtoken-abcdefghijklmnop")
    ch = channel(base + hook.path, "discord")
    gate = RateGate()

    async def go(client: httpx.AsyncClient) -> list[Result]:
        await ch.open(client)
        results = []
        for i in range(6):
            call = ProviderCall("POST", {"content": f"m{i}"})
            await gate.acquire(ch.rate_rules(WEBHOOK, call))
            result = await ch.send(WEBHOOK, call, CONTEXT, i)
            if result.pause_channel and result.retry_after:
                gate.pause(result.retry_after)
            results.append(result)
        return results

    results = run(go)
    assert [r.outcome for r in results] == [Outcome.SENT] * 6
    stats = receiver.stats(hook.name)  # counted from the arrivals, over sliding 2 s windows:
    assert stats["rate_limited"] == 0 and stats["over_limit"] == 0  # the sixth waited for one
    assert stats["max_per_period"] <= 5 and stats["accepted"] == 6


def test_discord_header_pacing_alone_avoids_429(receiver: WebhookReceiver, base: str) -> None:
    hook = receiver.add_discord("1006", "discordtoken-abcdefghijklmnop")
    ch = channel(base + hook.path, "discord")
    results = run(lambda c: send_all(ch, c, [{"content": f"m{i}"} for i in range(6)]))  # no gate
    assert [r.outcome for r in results] == [Outcome.SENT] * 6
    assert receiver.stats(hook.name)["rate_limited"] == 0


# --------------------------------------------------------------------------- JSON


def test_json_signed_delivery_is_verified(receiver: WebhookReceiver, base: str) -> None:
    hook = receiver.add_json("orders", secret=SECRET)
    ch = channel(base + hook.path, "json", environ={"HOOK_SECRET": SECRET}, secret="env:HOOK_SECRET")
    body = call_of("json")
    result = send_one(ch, body, position=3)
    assert result.outcome is Outcome.SENT and result.message_id == "orders-1"
    (record,) = receiver.received(hook.name)
    assert record.verified is True and record.body == body
    assert record.delivery == "c42-s7-m3" == record.headers["x-feedcast-delivery"]
    stamp, signature = record.headers["x-feedcast-timestamp"], record.headers["x-feedcast-signature"]
    assert verify(SECRET, stamp, record.raw, signature)  # what any receiver does
    assert not verify(SECRET, stamp, record.raw + b" ", signature)
    # a retry carries the same idempotency key: the receiver sees a duplicate
    assert send_one(ch, body, position=3).outcome is Outcome.SENT
    assert receiver.stats(hook.name)["duplicates"] == 1


def test_json_wrong_or_missing_secret_is_fatal(receiver: WebhookReceiver, base: str) -> None:
    hook = receiver.add_json("signed", secret=SECRET)
    wrong = channel(base + hook.path, "json", environ={"S": "not-the-secret"}, secret="env:S")
    unsigned = channel(base + hook.path, "json")
    for ch in (wrong, unsigned):
        result = send_one(ch, call_of("json"))
        assert result.outcome is Outcome.FATAL and result.code == "401"
    records = receiver.received(hook.name, include_refused=True)
    assert [(r.status, r.verified) for r in records] == [(401, False), (401, False)]
    assert receiver.received(hook.name) == []


def test_json_scripted_statuses(receiver: WebhookReceiver, base: str) -> None:
    expectations = {
        410: (Outcome.RECIPIENT, "removed"),
        404: (Outcome.RECIPIENT, "removed"),
        500: (Outcome.TRANSIENT, None),
        503: (Outcome.TRANSIENT, None),
        422: (Outcome.CONTENT, None),
        413: (Outcome.CONTENT, None),
        403: (Outcome.FATAL, None),
        202: (Outcome.SENT, None),
    }
    for status, (outcome, subscriber) in expectations.items():
        hook = receiver.add_json(f"s{status}", status=status)
        result = send_one(channel(base + hook.path, "json"), call_of("json"))
        assert (result.outcome, result.subscriber_status) == (outcome, subscriber), status
        if status == 503:
            assert result.retry_after == 1.0 and result.pause_channel


def test_json_dropped_connection_and_faults_are_transient(receiver: WebhookReceiver, base: str) -> None:
    hook = receiver.add_json("flaky")
    ch = channel(base + hook.path, "json")
    receiver.set_options(drop_rate=1.0)
    dropped = send_one(ch, call_of("json"))
    assert dropped.outcome is Outcome.TRANSIENT and dropped.code == "network"
    receiver.set_options(drop_rate=0.0, fault_rate=1.0)
    fault = send_one(ch, call_of("json"))
    assert fault.outcome is Outcome.TRANSIENT and fault.code == "500"
    receiver.set_options(fault_rate=0.0)
    assert send_one(ch, call_of("json")).outcome is Outcome.SENT
    stats = receiver.stats(hook.name)
    assert (stats["dropped"], stats["faults"], stats["accepted"], stats["requests"]) == (1, 1, 1, 3)


def test_json_rate_option_paces_and_receiver_rate_limits(receiver: WebhookReceiver, base: str) -> None:
    receiver.clock = FakeClock()  # the 3 arrive in one instant
    hook = receiver.add_json("limited", rate=2)
    ch = channel(base + hook.path, "json", rate="2")
    (rule,) = ch.rate_rules(WEBHOOK, ProviderCall("POST", {}))
    assert (rule.limit, rule.period) == (2, 1)
    assert channel(base + hook.path, "json").rate_rules(WEBHOOK, ProviderCall("POST", {})) == ()
    results = run(lambda c: send_all(ch, c, [call_of("json")] * 3))  # no gate
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT, Outcome.TRANSIENT]
    assert results[2].retry_after == 1.0 and results[2].pause_channel


# --------------------------------------------------------------------------- signing


def test_sign_and_verify() -> None:
    body = b'{"a":1}'
    now = 1_800_000_000
    signature = sign("k3y-secret", now, body)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert sign("k3y-secret", str(now), body.decode()) == signature
    assert verify("k3y-secret", str(now), body, signature, now=now + 10)
    assert not verify("k3y-secret", str(now), b'{"a":2}', signature, now=now)  # tampered body
    assert not verify("other", str(now), body, signature, now=now)  # wrong secret
    assert not verify("k3y-secret", str(now + 1), body, signature, now=now)  # timestamp swapped
    assert not verify("k3y-secret", str(now), body, signature, now=now + 301)  # stale
    assert not verify("k3y-secret", str(now), body, signature, now=now - 301)  # from the future
    assert verify("k3y-secret", str(now), body, signature, tolerance=None, now=now + 10**6)
    for stamp, sig in (
        (None, signature),
        ("", signature),
        ("12a", signature),
        (str(now), ""),
        (str(now), "sha256=é"),
    ):
        assert not verify("k3y-secret", stamp, body, sig, now=now)
    assert not verify("", str(now), body, signature, now=now)


# --------------------------------------------------------------------------- secrets


def test_the_url_token_never_leaks(
    receiver: WebhookReceiver, base: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = "leakcheck-token-9f8e7d6c5b4a"
    receiver.add_slack(f"T9/B9/{token}", status="archived")
    discord = receiver.add_discord("1007", token + "-discord")
    receiver.remove(discord.name)
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    cases = [
        channel(f"{base}/services/T9/B9/{token}", "slack"),
        channel(base + discord.path, "discord"),
        channel(f"http://127.0.0.1:{closed}/services/T9/B9/{token}", "slack"),
        channel(f"http://127.0.0.1:{closed}/api/v10/webhooks/1/{token}", "discord"),
        channel("env:HOOK_URL", "slack", environ={"HOOK_URL": f"http://127.0.0.1:{closed}/x/{token}"}),
    ]
    results = [send_one(ch, {"text": "hi", "content": "hi"}) for ch in cases]
    assert [r.outcome for r in results] == [Outcome.RECIPIENT] * 2 + [Outcome.TRANSIENT] * 3
    for result in results:
        assert result.error and token not in result.error and "/services" not in result.error
        assert "127.0.0.1" in result.error  # scheme and host say where
    with pytest.raises(ChannelError) as err:
        run(lambda c: _check(channel(base + discord.path, "discord"), c))
    assert token not in str(err.value)
    assert "HTTP Request" in caplog.text  # httpx logged its requests, scrubbed
    assert token not in caplog.text


async def _check(ch: WebhookChannel, client: httpx.AsyncClient) -> str:
    await ch.open(client)
    return await ch.check()


def test_missing_env_var_is_one_line_channel_error() -> None:
    ch = channel("env:NOPE_URL", "slack")
    with pytest.raises(ChannelError, match="NOPE_URL is not set") as err:
        run(lambda c: ch.open(c))
    assert "\n" not in str(err.value)
    bad = WebhookChannel(
        "hook", {"url": "env:U", "format": "json"}, secrets=Secrets({"U": "ftp://example.org/x"})
    )
    with pytest.raises(ChannelError, match="http or https"):
        run(lambda c: bad.open(c))


def test_validate_settings() -> None:
    ok = WebhookChannel.validate_settings({"url": "https://hooks.example.org/h", "secret": "env:S"})
    assert ok == {"url": "https://hooks.example.org/h", "secret": "env:S", "format": "json"}
    assert WebhookChannel("n", ok).format == "json"
    assert WebhookChannel.shown_settings({"url": "https://hooks.slack.com/services/T/B/X"})["url"] == "****"
    refused = [
        ({"url": "https://h.example/x", "secret": "literal-secret"}, "secret"),
        ({"url": "ftp://h.example/x"}, "http or https"),
        ({"url": "javascript:alert(1)"}, "http or https"),
        ({"url": "file:///etc/passwd"}, "http or https"),
        ({"url": "https:///nohost"}, "no host"),
        ({}, "need --url"),
        ({"url": "https://h.example/x", "format": "teams"}, "must be one of"),
        ({"url": "https://h.example/x", "format": "slack", "secret": "env:S"}, "does not take it"),
        ({"url": "https://h.example/x", "format": "discord", "rate": "3"}, "JSON webhooks"),
        ({"url": "https://h.example/x", "rate": "fast"}, "whole number"),
        ({"url": "https://h.example/x", "header": "Authorization: Bearer abc"}, "env:VAR"),
        ({"url": "https://h.example/x", "header": "no colon"}, "Name: env:VAR"),
    ]
    for settings, message in refused:
        with pytest.raises(InvalidValue, match=message) as err:
            WebhookChannel.validate_settings(settings)
        assert "literal-secret" not in str(err.value) and "\n" not in str(err.value)
    header = WebhookChannel.validate_settings({"url": "https://h.example/x", "header": " X-Auth :env:TOK "})
    assert header["header"] == "X-Auth: env:TOK"


def test_a_payload_that_is_not_json_is_content(receiver: WebhookReceiver, base: str) -> None:
    hook = receiver.add_json("strict")
    result = send_one(channel(base + hook.path, "json"), {"when": object()})
    assert result.outcome is Outcome.CONTENT and result.code == "payload"
    assert receiver.stats(hook.name)["requests"] == 0


def test_extra_header_is_resolved_and_sent(receiver: WebhookReceiver, base: str) -> None:
    hook = receiver.add_json("bearer")
    ch = channel(
        base + hook.path, "json", environ={"TOK": "Bearer t0ken-value"}, header="Authorization: env:TOK"
    )
    assert send_one(ch, call_of("json")).outcome is Outcome.SENT
    (record,) = receiver.received(hook.name)
    assert record.headers["authorization"] == "Bearer t0ken-value"


# --------------------------------------------------------------------------- check


def test_check_per_format(receiver: WebhookReceiver, base: str) -> None:
    discord = receiver.add_discord("1008", "discordtoken-abcdefghijklmnop", name="alerts")
    slack = receiver.add_slack("T1/B1/secretslacktoken0005")
    json_hook = receiver.add_json("orders")
    assert (
        run(lambda c: _check(channel(base + discord.path, "discord"), c))
        == "Discord webhook alerts (id 1008)"
    )
    line = run(lambda c: _check(channel(base + slack.path, "slack"), c))
    assert "no check without posting" in line
    line = run(lambda c: _check(channel(base + json_hook.path, "json"), c))
    assert line.startswith("JSON webhook at http://127.0.0.1") and "reachable" in line
    # nothing was posted by any check
    assert all(receiver.stats(h.name)["requests"] == 0 for h in (discord, slack, json_hook))
    receiver.remove(discord.name)
    with pytest.raises(ChannelError, match="is gone"):
        run(lambda c: _check(channel(base + discord.path, "discord"), c))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    with pytest.raises(ChannelError, match="unreachable"):
        run(lambda c: _check(channel(f"http://127.0.0.1:{closed}/hooks/x", "json"), c))


# --------------------------------------------------------------------------- classify


def test_classify_table() -> None:
    cases: list[tuple[str, int, dict[str, str], str, Outcome, str | None]] = [
        ("slack", 200, {}, "ok", Outcome.SENT, None),
        ("slack", 404, {}, "channel_not_found", Outcome.RECIPIENT, "removed"),
        ("slack", 400, {}, "team_disabled", Outcome.FATAL, None),
        ("slack", 403, {}, "invalid_token", Outcome.FATAL, None),
        ("slack", 502, {}, "", Outcome.TRANSIENT, None),
        ("discord", 404, {}, '{"code": 10015, "message": "Unknown Webhook"}', Outcome.RECIPIENT, "removed"),
        ("discord", 403, {}, '{"code": 50013, "message": "Missing Permissions"}', Outcome.FATAL, None),
        ("json", 301, {}, "", Outcome.FATAL, None),
        ("json", 408, {}, "", Outcome.TRANSIENT, None),
        ("json", 400, {}, "nope", Outcome.CONTENT, None),
        ("json", 405, {}, "", Outcome.FATAL, None),
    ]
    for fmt, status, headers, text, outcome, subscriber in cases:
        result = classify(fmt, status, headers, text, where="https://h.example")
        assert (result.outcome, result.subscriber_status) == (outcome, subscriber), (fmt, status, text)
        if outcome is not Outcome.SENT:
            assert result.error and result.error.startswith(("Slack", "Discord", "JSON"))
    limited = classify("discord", 429, {"retry-after": "2"}, '{"retry_after": 0.25, "global": true}')
    assert (limited.retry_after, limited.pause_channel) == (0.25, True)
    header_only = classify("json", 429, {"retry-after": "7"}, "")
    assert header_only.retry_after == 7.0
    assert classify("json", 200, {}, '{"id": 12}').message_id == "12"
    assert classify("json", 200, {}, "[1]").message_id is None


# --------------------------------------------------------------------------- control API


def test_control_api_over_http(receiver: WebhookReceiver, base: str) -> None:
    with httpx.Client(base_url=base) as client:
        configured = client.post(
            "/_sandbox/hooks",
            json=[
                {"kind": "json", "name": "ctl", "secret": SECRET},
                {"kind": "slack", "path": "T2/B2/secretslacktoken0006", "status": "archived"},
                {"kind": "discord", "id": "2000", "token": "discordtoken-abcdefghijklmnop", "name": "ops"},
            ],
        )
        assert configured.status_code == 200
        hooks = {h["name"]: h for h in configured.json()["hooks"]}
        assert set(hooks) == {"json:ctl", "slack:T2/B2/secretslacktoken0006", "discord:2000"}
        assert hooks["json:ctl"]["path"] == "/hooks/ctl" and hooks["json:ctl"]["signed"] is True
        assert client.post("/_sandbox/hooks", json={"kind": "teams"}).status_code == 400

        ch = channel(base + "/hooks/ctl", "json", environ={"S": SECRET}, secret="env:S")
        assert send_one(ch, {"hello": "world"}).outcome is Outcome.SENT
        assert (
            client.post("/services/T2/B2/secretslacktoken0006", json={"text": "x"}).text
            == "channel_is_archived"
        )

        received = client.get("/_sandbox/received", params={"hook": "json:ctl"}).json()
        (record,) = received["received"]
        assert record["body"] == {"hello": "world"} and record["verified"] is True
        assert verify(
            SECRET,
            record["headers"]["x-feedcast-timestamp"],
            record["raw"],
            record["headers"]["x-feedcast-signature"],
        )
        slack = client.get(
            "/_sandbox/received", params={"hook": "slack:T2/B2/secretslacktoken0006", "all": "1"}
        )
        assert [r["status"] for r in slack.json()["received"]] == [410]
        assert client.get("/_sandbox/received", params={"hook": "json:nope"}).status_code == 404

        stats = client.get("/_sandbox/stats").json()
        assert stats["totals"]["requests"] == 2 and stats["totals"]["accepted"] == 1
        assert stats["hooks"]["json:ctl"]["max_per_second"] == 1
        assert client.get("/_sandbox/stats", params={"hook": "discord:2000"}).json()["limit"] == 5

        assert client.post("/_sandbox/options", json={"fault_rate": 1.0}).json()["fault_rate"] == 1.0
        assert client.post("/hooks/ctl", json={}).status_code == 500
        assert client.post("/_sandbox/options", json={"fault_rate": 2}).status_code == 400
        assert client.post("/_sandbox/options", json={"fault_rate": 0}).status_code == 200

        assert client.post("/_sandbox/reset").json()["hooks"] == 3
        assert client.get("/_sandbox/stats").json()["totals"]["requests"] == 0
        assert client.get("/_sandbox/received", params={"hook": "json:ctl"}).json()["received"] == []
        assert client.post("/_sandbox/reset", json={"hooks": True}).json()["hooks"] == 0
        assert client.get("/_sandbox/hooks").json() == {"hooks": []}


def test_receiver_python_api_basics() -> None:
    rx = WebhookReceiver(auto_hooks=False)
    slack = rx.add_slack()
    assert (
        isinstance(slack, Hook) and slack.path.startswith("/services/T") and slack.name.startswith("slack:T")
    )
    with pytest.raises(ValueError, match="status"):
        rx.add_slack(status="sleeping")
    with pytest.raises(ValueError, match="T…/B…/X…"):
        rx.add_slack("just-one-part")
    again = rx.add_slack(slack.key, status="archived")
    assert again is slack and slack.status == "archived"  # reconfigured, not duplicated
    assert len(rx.hooks) == 1
