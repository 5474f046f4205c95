"""The JSON webhook signature, checked the way a stranger's receiver would: the HMAC is
recomputed here with ``hmac`` and ``hashlib`` on the raw body the receiver got, as the
README documents it (``sha256=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>``), never
with feedcast's own ``sign`` / ``verify``."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from channels import channel_class
from feedcast.delivery import SendSettings, send_automation
from feedcast.kernel.models import Item, PollOutcome
from feedcast.sandbox import AsgiServer
from feedcast.sandbox.webhooks import WebhookReceiver
from feedcast.store import Store

SECRET = "whsec-independent-0123456789"
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def _expected(secret: str, timestamp: str, raw: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + raw, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def test_a_campaign_to_a_json_webhook_carries_the_documented_signature(tmp_path: Path) -> None:
    receiver = WebhookReceiver(seed=1)
    receiver.add_json("orders", secret=SECRET)
    with AsgiServer(receiver.app) as server:
        env = {"HOOK_SECRET": SECRET, "FEEDCAST_ALLOW_PRIVATE_NETWORKS": "1"}
        store = Store(tmp_path / "feedcast.duckdb")
        source = store.add_source("blog", "https://blog.example/feed.xml")
        old = Item(key="old", title="Old", url="https://blog.example/old", published=T0 - timedelta(days=1))
        store.record_polls([PollOutcome(source.id, source.url, T0, 0.01, "ok", 200, items=(old,))], now=T0)
        cls = channel_class("webhook")
        settings = {"url": server.base_url + "/hooks/orders", "format": "json", "secret": "env:HOOK_SECRET"}
        store.add_channel(
            "hook", "webhook", cls.validate_settings(settings), fixed_recipient=cls.fixed_recipient
        )
        store.add_automation(
            "auto", channel="hook", layout="single", sources=["blog"], since=T0 + timedelta(minutes=1)
        )
        later = T0 + timedelta(hours=1)
        item = Item(key="a", title="Crème brûlée — 5 €", url="https://blog.example/a", published=later)
        store.record_polls(
            [PollOutcome(source.id, source.url, later, 0.01, "ok", 200, items=(item, old))], now=later
        )
        before = int(time.time())
        [result] = send_automation(store, "auto", settings=SendSettings(), environ=env)
        after = int(time.time())
    assert result.campaign.sent == 1
    [record] = receiver.received("json:orders")
    raw, headers = record.raw, record.headers
    stamp, signature = headers["x-feedcast-timestamp"], headers["x-feedcast-signature"]
    assert stamp.isdigit() and before - 1 <= int(stamp) <= after + 1  # Unix seconds, now
    assert hmac.compare_digest(signature, _expected(SECRET, stamp, raw))
    assert "Crème brûlée" in json.dumps(json.loads(raw), ensure_ascii=False)  # the item, signed as sent
    # what the signature binds: the secret, the timestamp and every byte of the body
    assert signature != _expected("another-secret", stamp, raw)
    assert signature != _expected(SECRET, str(int(stamp) + 1), raw)
    assert signature != _expected(SECRET, stamp, raw.replace(b"Cr", b"cr", 1))


def test_the_receiver_accepts_a_request_signed_by_hand_and_refuses_a_tampered_one() -> None:
    receiver = WebhookReceiver(seed=1)
    receiver.add_json("orders", secret=SECRET)
    body = '{"event": "new", "title": "Crème"}'.encode()
    stamp = str(int(time.time()))
    with AsgiServer(receiver.app) as server, httpx.Client(base_url=server.base_url) as http:

        def post(raw: bytes, signature: str) -> int:
            headers = {
                "Content-Type": "application/json",
                "X-Feedcast-Timestamp": stamp,
                "X-Feedcast-Signature": signature,
            }
            return http.post("/hooks/orders", content=raw, headers=headers).status_code

        assert post(body, _expected(SECRET, stamp, body)) == 200
        assert post(body + b" ", _expected(SECRET, stamp, body)) == 401
        assert post(body, _expected("another-secret", stamp, body)) == 401
    records = receiver.received("json:orders", include_refused=True)
    assert [(r.status, r.verified) for r in records] == [(200, True), (401, False), (401, False)]
