"""The email channel against a real SMTP server on loopback (feedcast.sandbox.smtp)."""

from __future__ import annotations

import asyncio
import logging
import re
import smtplib
import socket
import ssl
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import pytest

from channels.base import (
    UNSUBSCRIBE_PLACEHOLDER,
    Outcome,
    Recipient,
    Result,
    Secrets,
    SendContext,
)
from channels.email import EmailChannel, build_email, classify, parse_address
from channels.ratelimit import RateGate
from feedcast.kernel.clock import FakeClock
from feedcast.kernel.errors import ChannelError, InvalidValue
from feedcast.kernel.models import Message, Module, ProviderCall
from feedcast.sandbox.smtp import SmtpSink
from layouts.formats import provider_calls
from tests.test_ratelimit import busiest_window

PASSWORD = "Sup3r-Secret-Pw!"
SECRETS = {"SMTP_PASSWORD": PASSWORD}
NOW = datetime(2026, 5, 4, 9, 30, tzinfo=UTC)
CTX = SendContext(campaign_id=7, now=NOW)


def campaign_call() -> ProviderCall:
    html = f'<p>Hello reader</p><p><a href="{UNSUBSCRIBE_PLACEHOLDER}">Unsubscribe</a></p>'
    text = f"Hello reader\n\nUnsubscribe: {UNSUBSCRIBE_PLACEHOLDER}\n"
    message = Message(
        format="email",
        modules=(Module(kind="text", text=html), Module(kind="text", text=text)),
        subject="Weekly news",
    )
    (call,) = provider_calls(message)
    return call


def recipient(n: int, address: str | None = None) -> Recipient:
    return Recipient(
        subscriber_id=n,
        address=address or f"reader{n}@example.com",
        name=f"Reader {n}",
        unsubscribe_url=f"https://news.example.com/u/token-{n}",
    )


def channel(sink: SmtpSink, **extra: str) -> EmailChannel:
    options: dict[str, str] = {
        "smtp": sink.url,
        "from_addr": "News <news@example.com>",
        "rate": "1000",
        **extra,
    }
    if sink.ca_file is not None:
        options.setdefault("ca_file", str(sink.ca_file))
    if sink.users:
        options.setdefault("user", "bot")
        options.setdefault("password", "env:SMTP_PASSWORD")
    settings = EmailChannel.validate_settings(options)
    return EmailChannel("mail", settings, secrets=Secrets(SECRETS))


async def run_campaign(
    ch: EmailChannel,
    recipients: Sequence[Recipient],
    calls: Sequence[ProviderCall],
    *,
    gate: RateGate | None = None,
    retries: int = 0,
    concurrency: int | None = None,
    opened: bool = False,
) -> dict[str, list[Result]]:
    """What the delivery engine does, in small: open, send per recipient and call, close."""
    if not opened:
        await ch.open(None)
    slots = asyncio.Semaphore(concurrency or ch.max_in_flight)
    results: dict[str, list[Result]] = {}

    async def deliver(rcpt: Recipient) -> None:
        got = results.setdefault(rcpt.address, [])
        for position, call in enumerate(calls):
            for _ in range(retries + 1):
                async with slots:
                    if gate is not None:
                        await gate.acquire(ch.rate_rules(rcpt, call))
                    result = await ch.send(rcpt, call, CTX, position)
                got.append(result)
                if result.outcome is not Outcome.TRANSIENT:
                    break
            if result.outcome is not Outcome.SENT:
                return

    try:
        await asyncio.gather(*(deliver(r) for r in recipients))
    finally:
        await ch.close()
    return results


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as server:
        yield server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --------------------------------------------------------------------------- the message


def test_campaign_email_arrives_as_text_then_html_with_the_recipients_own_link(sink: SmtpSink) -> None:
    ch = channel(sink)
    results = asyncio.run(run_campaign(ch, [recipient(1), recipient(2)], [campaign_call()]))

    for n in (1, 2):
        (result,) = results[f"reader{n}@example.com"]
        assert result.outcome is Outcome.SENT
        (received,) = sink.messages_for(f"reader{n}@example.com")
        msg = received.message
        assert received.mail_from == "news@example.com"
        assert msg.get_content_type() == "multipart/alternative"
        plain, html = list(msg.iter_parts())
        assert plain.get_content_type() == "text/plain"
        assert html.get_content_type() == "text/html"
        link = f"https://news.example.com/u/token-{n}"
        assert f"Unsubscribe: {link}" in plain.get_content()
        assert f'<a href="{link}">Unsubscribe</a>' in html.get_content()
        assert UNSUBSCRIBE_PLACEHOLDER not in msg.as_string()
        assert msg["Subject"] == "Weekly news"
        assert msg["From"] == "News <news@example.com>"
        assert msg["To"] == f"Reader {n} <reader{n}@example.com>"
        assert msg["Date"] == "Mon, 04 May 2026 09:30:00 +0000"
        assert msg["List-Unsubscribe"] == f"<{link}>"
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert msg["Message-ID"] == f"<c7.s{n}.m0.feedcast@example.com>"
        assert result.message_id == msg["Message-ID"]
        assert msg["Reply-To"] is None


def test_message_id_is_stable_for_one_delivery_and_differs_between_deliveries() -> None:
    call = campaign_call()

    def mid(subscriber: int, position: int, campaign: int = 7) -> str:
        ctx = SendContext(campaign_id=campaign, now=NOW)
        msg = build_email(call, recipient(subscriber), ctx, position, from_addr="news@example.com")
        return str(msg["Message-ID"])

    assert mid(1, 0) == mid(1, 0) == "<c7.s1.m0.feedcast@example.com>"
    assert len({mid(1, 0), mid(2, 0), mid(1, 1), mid(1, 0, campaign=8)}) == 4


def test_reply_to_mailto_and_a_recipient_without_a_link() -> None:
    bare = Recipient(subscriber_id=3, address="solo@example.org", unsubscribe_mailto="unsub@example.com")
    msg = build_email(
        campaign_call(),
        bare,
        CTX,
        0,
        from_addr="news@example.com",
        reply_to="Desk <desk@example.com>",
    )
    assert msg["Reply-To"] == "Desk <desk@example.com>"
    assert msg["To"] == "solo@example.org"
    assert msg["List-Unsubscribe"] == "<mailto:unsub@example.com>"
    assert msg["List-Unsubscribe-Post"] is None  # one-click needs an https link
    assert UNSUBSCRIBE_PLACEHOLDER not in msg.as_string()

    linked = build_email(
        campaign_call(),
        recipient(4),
        CTX,
        0,
        from_addr="news@example.com",
        unsubscribe_mailto="unsub@example.com",
    )
    assert linked["List-Unsubscribe"] == "<https://news.example.com/u/token-4>, <mailto:unsub@example.com>"
    assert linked["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_subject_and_names_are_one_line_and_encoded() -> None:
    call = ProviderCall("smtp", {"subject": "Prix\nspéciaux", "html": "<p>x</p>", "text": "x"})
    who = Recipient(subscriber_id=1, address="a@example.com", name="Zoë\r\nBcc: evil@example.com")
    raw = build_email(call, who, CTX, 0, from_addr="news@example.com").as_bytes()
    assert b"\nBcc:" not in raw
    assert raw.isascii()
    msg = build_email(call, who, CTX, 0, from_addr="news@example.com")
    assert msg["Subject"] == "Prix spéciaux"


# --------------------------------------------------------------------------- TLS and AUTH


def test_starttls_with_auth_trusting_the_generated_ca() -> None:
    with SmtpSink(tls="starttls", users={"bot": PASSWORD}) as sink:
        ch = channel(sink)
        assert ch.settings["smtp"] == f"smtp+starttls://127.0.0.1:{sink.port}"
        description = asyncio.run(ch.check())
        assert description == f"SMTP relay 127.0.0.1:{sink.port} (STARTTLS, authenticated as bot)"
        results = asyncio.run(run_campaign(ch, [recipient(1)], [campaign_call()]))
        assert results["reader1@example.com"][0].outcome is Outcome.SENT
        (received,) = sink.messages_for("reader1@example.com")
        assert received.tls is True
        assert received.authenticated_as == "bot"


def test_implicit_tls_with_auth() -> None:
    with SmtpSink(tls="ssl", users={"bot": PASSWORD}) as sink:
        ch = channel(sink)
        assert ch.settings["smtp"].startswith("smtps://")
        assert asyncio.run(ch.check()).endswith("(implicit TLS, authenticated as bot)")
        results = asyncio.run(run_campaign(ch, [recipient(1)], [campaign_call()]))
        assert results["reader1@example.com"][0].outcome is Outcome.SENT
        assert sink.messages_for("reader1@example.com")[0].tls is True


def test_untrusted_certificate_is_fatal() -> None:
    with SmtpSink(tls="starttls") as sink:
        settings = EmailChannel.validate_settings({"smtp": sink.url, "from_addr": "news@example.com"})
        ch = EmailChannel("mail", settings)  # no --ca-file: the sandbox CA is not trusted
        with pytest.raises(ChannelError, match=re.escape("TLS with 127.0.0.1")):
            asyncio.run(ch.check())
        result = asyncio.run(ch.send(recipient(1), campaign_call(), CTX, 0))
        assert result.outcome is Outcome.FATAL
        assert result.code == "tls"
        assert sink.messages == []


def test_wrong_password_is_fatal_and_never_shows_the_password(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with SmtpSink(tls="starttls", users={"bot": "another-password"}) as sink:
        ch = channel(sink)
        with pytest.raises(ChannelError) as opened:
            asyncio.run(ch.open(None))
        assert "refused the credentials of bot" in str(opened.value)
        assert "535" in str(opened.value)
        assert "\n" not in str(opened.value)

        result = asyncio.run(ch.send(recipient(1), campaign_call(), CTX, 0))  # lazily, without open()
        assert result.outcome is Outcome.FATAL
        assert result.code is not None and result.code.startswith("535")

        with pytest.raises(ChannelError) as checked:
            asyncio.run(ch.check())
        for text in (str(opened.value), result.error or "", str(checked.value), caplog.text):
            assert PASSWORD not in text
        assert sink.messages == []


def test_a_missing_password_variable_is_a_channel_error() -> None:
    with SmtpSink(users={"bot": PASSWORD}) as sink:
        ch = channel(sink)
        ch.secrets = Secrets({})
        with pytest.raises(ChannelError, match="SMTP_PASSWORD is not set"):
            asyncio.run(ch.open(None))


# --------------------------------------------------------------------------- replies


def test_hard_bounce_is_per_recipient_and_the_others_still_get_theirs(sink: SmtpSink) -> None:
    sink.reject("gone@example.com")
    people = [recipient(1), recipient(2, "gone@example.com"), recipient(3)]
    results = asyncio.run(run_campaign(ch := channel(sink), people, [campaign_call(), campaign_call()]))
    (bounce,) = results["gone@example.com"]
    assert bounce.outcome is Outcome.RECIPIENT
    assert bounce.subscriber_status == "bounced"
    assert bounce.code == "550 5.1.1"
    assert bounce.error == "550 5.1.1 No such user (RCPT TO gone@example.com)"
    for n in (1, 3):
        assert [r.outcome for r in results[f"reader{n}@example.com"]] == [Outcome.SENT, Outcome.SENT]
        ids = [m.message["Message-ID"] for m in sink.messages_for(f"reader{n}@example.com")]
        assert sorted(ids) == [f"<c7.s{n}.m0.feedcast@example.com>", f"<c7.s{n}.m1.feedcast@example.com>"]
    assert sink.messages_for("gone@example.com") == []
    assert ch.max_in_flight >= 1


def test_temporary_refusal_is_transient_then_the_retry_is_delivered_once(sink: SmtpSink) -> None:
    sink.defer("later@example.com", times=1)
    results = asyncio.run(
        run_campaign(channel(sink), [recipient(5, "later@example.com")], [campaign_call()], retries=2)
    )
    first, second = results["later@example.com"]
    assert first.outcome is Outcome.TRANSIENT
    assert first.code == "451 4.7.1"
    assert second.outcome is Outcome.SENT
    (received,) = sink.messages_for("later@example.com")
    assert received.message["Message-ID"] == second.message_id == "<c7.s5.m0.feedcast@example.com>"


def test_content_refused_at_data(sink: SmtpSink) -> None:
    sink.refuse_content("Weekly news")
    results = asyncio.run(run_campaign(channel(sink), [recipient(1)], [campaign_call()]))
    (result,) = results["reader1@example.com"]
    assert result.outcome is Outcome.CONTENT
    assert result.code == "554 5.6.0"


@pytest.mark.parametrize(
    ("code", "text", "stage", "outcome", "status"),
    [
        (550, "5.1.1 No such user", "rcpt", Outcome.RECIPIENT, "bounced"),
        (553, "5.1.3 Bad destination address syntax", "rcpt", Outcome.RECIPIENT, "bounced"),
        (551, "User not local", "data", Outcome.RECIPIENT, "bounced"),
        (550, "5.1.1 Unknown user", "data", Outcome.RECIPIENT, "bounced"),
        (452, "4.2.2 Mailbox full", "rcpt", Outcome.TRANSIENT, None),
        (421, "4.3.2 Service not available", "mail", Outcome.TRANSIENT, None),
        (451, "4.3.0 Try later", "data", Outcome.TRANSIENT, None),
        (552, "5.3.4 Message too big", "data", Outcome.CONTENT, None),
        (554, "5.7.1 Spam detected", "data", Outcome.CONTENT, None),
        (552, "5.3.4 Message size exceeds fixed limit", "mail", Outcome.CONTENT, None),
        (530, "5.7.0 Authentication required", "mail", Outcome.FATAL, None),
        (554, "5.7.1 Relay access denied", "rcpt", Outcome.FATAL, None),
        (553, "5.7.1 Sender address rejected", "mail", Outcome.FATAL, None),
        (535, "5.7.8 Authentication credentials invalid", "session", Outcome.FATAL, None),
    ],
)
def test_classify(code: int, text: str, stage: str, outcome: Outcome, status: str | None) -> None:
    result = classify(code, text.encode(), stage, address="x@example.com")  # type: ignore[arg-type]
    assert result.outcome is outcome
    assert result.subscriber_status == status
    assert result.error is not None and f"{code} {text}" in result.error


def test_relay_gone_mid_campaign_is_transient_and_reconnects() -> None:
    sink = SmtpSink().start()
    port = sink.port
    ch = channel(sink)

    async def scenario() -> tuple[Result, Result, Result]:
        await ch.open(None)
        first = await ch.send(recipient(1), campaign_call(), CTX, 0)
        sink.stop()  # the relay goes away: the pooled session is dead, nothing listens
        gone = await ch.send(recipient(2), campaign_call(), CTX, 0)
        back.start()
        again = await ch.send(recipient(2), campaign_call(), CTX, 0)
        await ch.close()
        return first, gone, again

    back = SmtpSink(port=port)
    try:
        first, gone, again = asyncio.run(scenario())
    finally:
        back.stop()
    assert first.outcome is Outcome.SENT
    assert gone.outcome is Outcome.TRANSIENT
    assert gone.code == "network"
    assert again.outcome is Outcome.SENT
    assert len(back.messages_for("reader2@example.com")) == 1


def test_faulty_relay_answers_421_and_451_and_the_channel_recovers() -> None:
    with SmtpSink(fault_rate=0.5, seed=3) as sink:
        people = [recipient(n) for n in range(12)]
        results = asyncio.run(run_campaign(channel(sink), people, [campaign_call()], retries=30))
        assert all(r[-1].outcome is Outcome.SENT for r in results.values())
        transient = [r for rs in results.values() for r in rs if r.outcome is Outcome.TRANSIENT]
        assert transient and {r.code for r in transient} <= {"421 4.3.2", "451 4.3.0"}
        assert sink.stats().accepted == 12
        assert sink.stats().deferred == len(transient)


# --------------------------------------------------------------------------- pool and pace


def test_twenty_messages_reuse_the_pooled_connections(sink: SmtpSink) -> None:
    people = [recipient(n) for n in range(20)]
    results = asyncio.run(run_campaign(channel(sink, connections="2"), people, [campaign_call()]))
    assert all(r[0].outcome is Outcome.SENT for r in results.values())
    stats = sink.stats()
    assert stats.accepted == 20
    assert 1 <= stats.connections <= 2


def test_rate_rules_with_the_gate_keep_the_relay_under_its_rate() -> None:
    with SmtpSink() as paced, SmtpSink(clock=FakeClock()) as burst:
        ch = channel(paced, rate="5", connections="2")
        assert list(ch.rate_rules(recipient(1), campaign_call())) == [
            ch.rate_rules(recipient(1), campaign_call())[0]
        ]
        (rule,) = ch.rate_rules(recipient(1), campaign_call())
        assert (rule.key, rule.limit, rule.period) == ("smtp:127.0.0.1", 5, 1)
        people = [recipient(n) for n in range(12)]
        results = asyncio.run(run_campaign(ch, people, [campaign_call()], gate=RateGate()))
        assert all(r[0].outcome is Outcome.SENT for r in results.values())
        assert paced.stats().accepted == 12
        # (arrivals on the wall clock bunch when a busy machine delays a window's sends
        # into the next: the pace is checked exactly below, on a fake clock)

        # the pace itself, exact: 5 + 5 + 2 messages, two full windows waited
        clock = FakeClock()
        gate = RateGate(clock=clock)
        start = clock.monotonic()
        times = []
        for person in people:
            asyncio.run(gate.acquire(ch.rate_rules(person, campaign_call())))
            times.append(clock.monotonic())
        assert busiest_window(times, 1.0) == 5
        assert times[-1] - start >= 2.0

        # the measure is real: a client that does not pace is seen bursting
        conn = smtplib.SMTP(burst.host, burst.port, local_hostname="test")
        for n in range(12):
            conn.sendmail("a@example.com", [f"b{n}@example.com"], b"Subject: x\r\n\r\nx\r\n")
        conn.quit()
        assert burst.stats().max_per_second == 12


def test_fractional_rate_becomes_a_longer_window() -> None:
    settings = EmailChannel.validate_settings(
        {"smtp": "smtp+starttls://relay.example.com", "from_addr": "a@example.com", "rate": "0.5"}
    )
    (rule,) = EmailChannel("m", settings).rate_rules(recipient(1), campaign_call())
    assert (rule.key, rule.limit, rule.period) == ("smtp:relay.example.com", 1, 2)


def test_sink_max_rate_refuses_a_burst_with_451() -> None:
    clock = FakeClock()  # the 5 arrive in one instant, however slow the machine
    with SmtpSink(max_rate=3, clock=clock) as sink:
        conn = smtplib.SMTP(sink.host, sink.port, local_hostname="test")
        refused = []
        for n in range(5):
            try:
                conn.sendmail("a@example.com", [f"b{n}@example.com"], b"Subject: x\r\n\r\nx\r\n")
            except smtplib.SMTPSenderRefused as exc:
                refused.append(exc.smtp_code)
        conn.quit()
        stats = sink.stats()
        assert stats.accepted == 3
        assert refused == [451, 451]
        assert stats.rate_limited == 2
        assert stats.connections == 1
        clock.advance(1.0)  # a second later the window has room again
        with smtplib.SMTP(sink.host, sink.port, local_hostname="test") as conn:
            conn.sendmail("a@example.com", ["c@example.com"], b"Subject: x\r\n\r\nx\r\n")
        assert sink.stats().accepted == 4


# --------------------------------------------------------------------------- configuration


def test_settings_are_normalised() -> None:
    settings = EmailChannel.validate_settings(
        {
            "smtp": "SMTPS://Mail.Example.com",
            "from_addr": "News Desk <news@Example.COM>",
            "user": "bot",
            "password": "env:SMTP_PASSWORD",
            "unsubscribe_mailto": "mailto:unsub@example.com",
        }
    )
    assert settings["smtp"] == "smtps://mail.example.com:465"
    assert settings["from_addr"] == "News Desk <news@example.com>"
    assert settings["unsubscribe_mailto"] == "unsub@example.com"
    assert settings["rate"] == "10"
    assert settings["connections"] == "2"
    assert EmailChannel.shown_settings(settings)["password"] == "env:SMTP_PASSWORD"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"password": PASSWORD, "user": "bot"}, "--password is a secret"),
        ({"smtp": f"smtp+starttls://bot:{PASSWORD}@mail.example.com:587"}, "must not carry credentials"),
        ({"smtp": "smtp+starttls://bot@mail.example.com"}, "must not carry credentials"),
        ({"smtp": "https://mail.example.com"}, "must start with smtp://"),
        ({"smtp": "smtp://mail.example.com/path"}, "only a scheme, a host and a port"),
        ({"smtp": "smtp://mail.example.com:99999"}, "not a valid URL"),
        ({"smtp": "smtp://mail.example.com", "user": "bot"}, "in clear"),
        ({"from_addr": "not an address"}, "not a valid --from-addr"),
        ({"reply_to": "a@"}, "not a valid --reply-to"),
        ({"rate": "0"}, "--rate must be more than 0"),
        ({"rate": "fast"}, "--rate must be a number"),
        ({"connections": "0"}, "--connections must be"),
        ({"ca_file": "/nonexistent/ca.pem"}, "is not a file"),
        ({"password": "env:SMTP_PASSWORD"}, "--password needs --user"),
    ],
)
def test_invalid_settings_are_refused_in_one_line(options: dict[str, str], message: str) -> None:
    base = {"smtp": "smtp+starttls://mail.example.com", "from_addr": "news@example.com"}
    with pytest.raises(InvalidValue, match=re.escape(message)) as err:
        EmailChannel.validate_settings({**base, **options})
    assert PASSWORD not in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "address",
    ["", "garbage", "a@", "@example.com", "a b@example.com", "a@b", "a@-b.example.com", "a@b..com",
     "x@example.com, y@example.com", "x@example.com\nBcc: y@example.com", "Ann <ann@example.com>"],
)  # fmt: skip
def test_validate_recipient_refuses_garbage(address: str) -> None:
    ch = EmailChannel("m", {"smtp": "smtp://localhost", "from_addr": "a@example.com"})
    with pytest.raises(InvalidValue) as err:
        ch.validate_recipient(address)
    assert "\n" not in str(err.value)


def test_validate_recipient_normalises() -> None:
    ch = EmailChannel("m", {"smtp": "smtp://localhost", "from_addr": "a@example.com"})
    assert ch.validate_recipient("  Reader@Example.COM ") == "Reader@example.com"
    assert ch.validate_recipient("jörg@bücher.de".replace("jörg", "joerg")) == "joerg@xn--bcher-kva.de"
    assert parse_address("Desk <desk@example.com>").display_name == "Desk"


# --------------------------------------------------------------------------- check


def test_check_ok_plain(sink: SmtpSink) -> None:
    assert (
        asyncio.run(channel(sink).check()) == f"SMTP relay 127.0.0.1:{sink.port} (plain, no authentication)"
    )
    assert sink.messages == []
    assert sink.stats().connections == 1


def test_check_nothing_listening() -> None:
    port = free_port()
    settings = EmailChannel.validate_settings(
        {"smtp": f"smtp://127.0.0.1:{port}", "from_addr": "a@example.com"}
    )
    ch = EmailChannel("mail", settings)
    with pytest.raises(ChannelError, match=re.escape(f"cannot reach SMTP relay 127.0.0.1:{port}")):
        asyncio.run(ch.check())
    with pytest.raises(ChannelError, match="cannot reach"):
        asyncio.run(ch.open(None))


def test_check_bad_auth_and_starttls_not_offered() -> None:
    with SmtpSink(tls="ssl", users={"bot": "other-password"}) as sink:
        with pytest.raises(ChannelError, match="refused the credentials of bot") as err:
            asyncio.run(channel(sink).check())
        assert PASSWORD not in str(err.value)
    with SmtpSink() as plain:
        settings = EmailChannel.validate_settings(
            {"smtp": f"smtp+starttls://127.0.0.1:{plain.port}", "from_addr": "a@example.com"}
        )
        with pytest.raises(ChannelError, match="does not offer STARTTLS"):
            asyncio.run(EmailChannel("mail", settings).check())


def test_sink_certificate_verifies_for_loopback() -> None:
    with SmtpSink(tls="ssl") as sink:
        assert sink.ca_file is not None and sink.ca_file.exists()
        context = ssl.create_default_context(cafile=str(sink.ca_file))
        conn = smtplib.SMTP_SSL(sink.host, sink.port, local_hostname="test", context=context)
        assert conn.noop()[0] == 250
        conn.quit()
        ca_file = sink.ca_file
    assert not ca_file.exists()  # the throwaway CA goes with the sink


def test_a_stored_address_that_is_not_one_and_a_call_that_is_not_email(sink: SmtpSink) -> None:
    ch = channel(sink)

    async def scenario() -> tuple[Result, Result]:
        await ch.open(None)
        bad = await ch.send(Recipient(9, "not-an-address"), campaign_call(), CTX, 0)
        wrong = await ch.send(recipient(1), ProviderCall("sendMessage", {"text": "hi"}), CTX, 0)
        await ch.close()
        return bad, wrong

    bad, wrong = asyncio.run(scenario())
    assert bad.outcome is Outcome.RECIPIENT
    assert bad.subscriber_status == "unreachable"
    assert wrong.outcome is Outcome.CONTENT
    assert sink.messages == []
