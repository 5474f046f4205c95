"""HMAC-signed, unguessable tokens for links (one-click unsubscribe, later clicks).

The signing key comes from ``FEEDCAST_SECRET_KEY``; without it feedcast creates a random
key once in a file beside the database (``feedcast.duckdb.key``, mode 0600), never in
the database itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

__all__ = ["sign", "signing_key", "unsubscribe_url", "verify"]


def signing_key(db_path: Path, environ: Mapping[str, str] | None = None) -> bytes:
    env = os.environ if environ is None else environ
    configured = env.get("FEEDCAST_SECRET_KEY")
    if configured:
        return configured.encode("utf-8")
    keyfile = db_path.with_name(db_path.name + ".key")
    try:
        return keyfile.read_text(encoding="ascii").strip().encode("ascii")
    except FileNotFoundError:
        pass
    keyfile.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key.encode("ascii"))
    finally:
        os.close(fd)
    return key.encode("ascii")


def _mac(key: bytes, purpose: str, value: str) -> str:
    digest = hmac.new(key, f"{purpose}:{value}".encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sign(key: bytes, purpose: str, value: str) -> str:
    """``value.MAC``: the value stays readable, the MAC makes it unforgeable."""
    return f"{value}.{_mac(key, purpose, value)}"


def verify(key: bytes, purpose: str, token: str) -> str | None:
    """The signed value, or None when the token was not made with this key and purpose."""
    value, _, mac = token.rpartition(".")
    if not value or not hmac.compare_digest(mac, _mac(key, purpose, value)):
        return None
    return value


def unsubscribe_url(base: str, key: bytes, subscriber_id: int) -> str:
    return f"{base.rstrip('/')}/u/{sign(key, 'unsubscribe', str(subscriber_id))}"
