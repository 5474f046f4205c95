"""The outbox channel: one file per recipient and call, JSON or .eml."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from channels.base import UNSUBSCRIBE_PLACEHOLDER, Outcome, Recipient, SendContext
from channels.outbox import OutboxChannel, safe_name
from feedcast.kernel.errors import ChannelError, InvalidValue
from feedcast.kernel.models import Button, Message, Module, ProviderCall
from layouts.formats import provider_calls

CTX = SendContext(campaign_id=12, now=datetime(2026, 5, 4, 9, 30, tzinfo=UTC))


def outbox(directory: Path, **extra: str) -> OutboxChannel:
    return OutboxChannel("review", OutboxChannel.validate_settings({"dir": str(directory), **extra}))


def send_all(ch: OutboxChannel, recipients: list[Recipient], calls: list[ProviderCall]) -> list[list[str]]:
    async def run() -> list[list[str]]:
        await ch.open(None)
        out: list[list[str]] = []
        for rcpt in recipients:
            ids = []
            for position, call in enumerate(calls):
                result = await ch.send(rcpt, call, CTX, position)
                assert result.outcome is Outcome.SENT, result
                assert result.message_id is not None
                ids.append(result.message_id)
            out.append(ids)
        await ch.close()
        return out

    return asyncio.run(run())


def test_settings_and_format(tmp_path: Path) -> None:
    ch = outbox(tmp_path / "out", format="telegram")
    assert ch.format == "telegram"
    assert ch.settings["dir"] == str(tmp_path / "out")
    assert ch.settings["from_addr"] == "feedcast@localhost"
    assert outbox(tmp_path).format == "json"
    assert OutboxChannel.fixed_recipient == "review"  # registering an outbox subscribes it
    with pytest.raises(InvalidValue, match="--format must be one of"):
        OutboxChannel.validate_settings({"dir": str(tmp_path), "format": "fax"})
    with pytest.raises(InvalidValue, match="outbox channels need --dir"):
        OutboxChannel.validate_settings({})


def test_json_files_per_recipient_and_position(tmp_path: Path) -> None:
    message = Message(format="json", modules=(Module(kind="text", text="Hello"),), subject="News")
    calls = provider_calls(message) * 2
    people = [Recipient(1, "review", name="Reviewer"), Recipient(2, "hooks/one")]
    ids = send_all(outbox(tmp_path), people, calls)

    assert ids[0] == ["campaign-12/review/000-POST.json", "campaign-12/review/001-POST.json"]
    second = safe_name("hooks/one")
    assert second.startswith("hooks_one-") and "/" not in second
    assert ids[1] == [f"campaign-12/{second}/000-POST.json", f"campaign-12/{second}/001-POST.json"]
    record = json.loads((tmp_path / ids[0][1]).read_text(encoding="utf-8"))
    assert record["method"] == "POST"
    assert record["body"] == calls[1].body
    assert record["recipient"] == {"subscriber_id": 1, "address": "review", "name": "Reviewer"}
    assert record["campaign_id"] == 12
    assert record["position"] == 1
    # nothing half-written is left behind
    assert not list(tmp_path.rglob(".tmp-*"))


def test_telegram_calls_keep_their_method_and_body(tmp_path: Path) -> None:
    message = Message(
        format="telegram",
        modules=(
            Module(kind="image", url="https://shop.example.com/a.jpg", text="<b>Shoes</b>"),
            Module(
                kind="text", text="Now <i>20% off</i>", buttons=(Button("Buy", "https://shop.example.com/a"),)
            ),
        ),
    )
    calls = provider_calls(message)
    ch = outbox(tmp_path, format="telegram")
    (ids,) = send_all(ch, [Recipient(3, "-1001234567890")], calls)
    assert [Path(i).name for i in ids] == [f"{n:03d}-{c.method}.json" for n, c in enumerate(calls)]
    assert calls[0].method == "sendPhoto"
    for message_id, call in zip(ids, calls, strict=True):
        record = json.loads((tmp_path / message_id).read_text(encoding="utf-8"))
        assert record["method"] == call.method
        assert record["body"] == json.loads(json.dumps(call.body))
        assert record["recipient"]["address"] == "-1001234567890"


def test_email_format_writes_a_parseable_eml(tmp_path: Path) -> None:
    html = f'<p>Hello</p><p><a href="{UNSUBSCRIBE_PLACEHOLDER}">Unsubscribe</a></p>'
    message = Message(
        format="email",
        modules=(
            Module(kind="text", text=html),
            Module(kind="text", text=f"Hello\n{UNSUBSCRIBE_PLACEHOLDER}"),
        ),
        subject="Digest",
    )
    calls = provider_calls(message)
    ch = outbox(tmp_path, format="email", from_addr="News <news@example.com>")
    who = Recipient(4, "reader@example.com", name="Reader", unsubscribe_url="https://n.example.com/u/abc")
    (ids,) = send_all(ch, [who], calls)
    assert ids == ["campaign-12/reader@example.com/000-smtp.eml"]
    parsed = email.message_from_bytes((tmp_path / ids[0]).read_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Subject"] == "Digest"
    assert parsed["From"] == "News <news@example.com>"
    assert parsed["To"] == "Reader <reader@example.com>"
    assert parsed["Message-ID"] == "<c12.s4.m0.feedcast@example.com>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    plain, rich = list(parsed.iter_parts())
    assert plain.get_content_type() == "text/plain"
    assert "https://n.example.com/u/abc" in plain.get_content()
    assert 'href="https://n.example.com/u/abc"' in rich.get_content()

    # the review recipient is not an address: the .eml is still written
    (ids,) = send_all(ch, [Recipient(5, "review")], calls)
    parsed = email.message_from_bytes((tmp_path / ids[0]).read_bytes(), policy=email.policy.default)
    assert parsed["To"] == "review"
    assert UNSUBSCRIBE_PLACEHOLDER not in parsed.as_string()


def test_a_retry_overwrites_its_own_file(tmp_path: Path) -> None:
    ch = outbox(tmp_path)
    first = ProviderCall("POST", {"text": "one"})
    again = ProviderCall("POST", {"text": "two"})
    (a,) = send_all(ch, [Recipient(1, "review")], [first])
    (b,) = send_all(ch, [Recipient(1, "review")], [again])
    assert a == b
    assert json.loads((tmp_path / a[0]).read_text(encoding="utf-8"))["body"] == {"text": "two"}
    assert len(list(tmp_path.rglob("*.json"))) == 1


def test_unwritable_directory_is_fatal_with_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory", encoding="utf-8")
    ch = outbox(blocker / "out")  # works as root too: nothing can be created under a file
    result = asyncio.run(ch.send(Recipient(1, "review"), ProviderCall("POST", {"x": 1}), CTX, 0))
    assert result.outcome is Outcome.FATAL
    assert result.error is not None
    assert f"cannot write to the outbox directory {blocker / 'out'}" in result.error
    assert "\n" not in result.error
    with pytest.raises(ChannelError, match="cannot write to the outbox directory"):
        asyncio.run(ch.check())


def test_check_creates_the_directory(tmp_path: Path) -> None:
    target = tmp_path / "new" / "outbox"
    description = asyncio.run(outbox(target, format="email").check())
    assert description == f"outbox {target} is writable (email messages)"
    assert target.is_dir()
    assert list(target.iterdir()) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [("reader@example.com", "reader@example.com"), ("review", "review"), ("-100123", "-100123")],
)
def test_safe_names_keep_plain_recipients_as_they_are(text: str, expected: str) -> None:
    assert safe_name(text) == expected


def test_safe_names_never_escape_the_directory() -> None:
    for text in ("../../etc", "/abs/path", "..", "a\\b", "x" * 300):
        name = safe_name(text)
        assert "/" not in name and "\\" not in name
        assert name not in ("", ".", "..")
        assert len(name) <= 90
    assert safe_name("a/b") != safe_name("a_b")
