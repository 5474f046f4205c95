"""Click tracking: item links that go through ``feedcast web`` (``/c/TOKEN``).

How a tracked campaign is made and sent:

1. :func:`feedcast.delivery.build_campaign` renders with a :class:`LinkTracker` as the
   layout's link hook. It numbers the distinct item URLs (link 0, 1...) and puts a
   placeholder in their place: ``{public}/c/_{marker}_{n}``. The campaign id does not
   exist yet, nor does a recipient: the stored calls keep the placeholders, and the
   campaign's links are stored (``store.add_campaign_links``) once it is created.
2. Per recipient, just before the calls go to the channel, :func:`personal_calls`
   replaces each placeholder with ``{public}/c/{campaign}.{link}.{subscriber}.{mac}``,
   a token HMAC-signed with the installation's key (:mod:`feedcast.tokens`).
3. ``GET /c/TOKEN`` (:mod:`feedcast.web.pages`) verifies the token, records the click
   and redirects only to the URL stored for that campaign's link: a forged or edited
   token finds no link and gets a 404, so the endpoint is never an open redirect.

``marker`` is derived from the signing key, so a feed item cannot smuggle a placeholder
into a campaign (in its HTML) to have it turned into a valid token for another URL.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from feedcast.kernel.models import Item, ProviderCall
from feedcast.tokens import sign, verify

__all__ = [
    "DEFAULT_PUBLIC_URL",
    "LinkTracker",
    "click_token",
    "is_tracked",
    "personal_calls",
    "public_url",
    "read_click_token",
]

DEFAULT_PUBLIC_URL = "http://127.0.0.1:8080"
_PURPOSE = "click"


def public_url(environ: Mapping[str, str] | None = None) -> str:
    """The public base URL of ``feedcast web`` (``FEEDCAST_PUBLIC_URL``), without a final /."""
    env = os.environ if environ is None else environ
    return (env.get("FEEDCAST_PUBLIC_URL") or DEFAULT_PUBLIC_URL).rstrip("/")


def _marker(key: bytes) -> str:
    return hmac.new(key, b"feedcast click placeholder", hashlib.sha256).hexdigest()[:12]


def _pattern(key: bytes) -> re.Pattern[str]:
    return re.compile(r"/c/_" + _marker(key) + r"_([0-9]{1,6})(?![0-9])")


class LinkTracker:
    """A render's link hook (:data:`layouts.render.LinkHook`): each distinct item URL
    gets a number and is replaced by its placeholder; :attr:`urls` lists them in order."""

    def __init__(self, base: str, key: bytes) -> None:
        self.base = base.rstrip("/")
        self.urls: list[str] = []
        self._numbers: dict[str, int] = {}
        self._marker = _marker(key)

    def __call__(self, url: str, item: Item) -> str:
        number = self._numbers.get(url)
        if number is None:
            number = self._numbers[url] = len(self.urls)
            self.urls.append(url)
        return f"{self.base}/c/_{self._marker}_{number}"


def click_token(key: bytes, campaign_id: int, link: int, subscriber_id: int) -> str:
    return sign(key, _PURPOSE, f"{campaign_id}.{link}.{subscriber_id}")


def read_click_token(key: bytes, token: str) -> tuple[int, int, int] | None:
    """(campaign, link, subscriber) of a token made by :func:`click_token`; None otherwise."""
    value = verify(key, _PURPOSE, token)
    if value is None:
        return None
    parts = value.split(".")
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() and len(p) <= 18 for p in parts):
        return None
    campaign, link, subscriber = (int(p) for p in parts)
    return campaign, link, subscriber


def is_tracked(calls: Sequence[tuple[int, ProviderCall]], key: bytes) -> bool:
    """Whether a campaign's stored calls carry link placeholders."""
    pattern = _pattern(key)
    return any(_contains(call.body, pattern) for _message, call in calls)


def _contains(value: Any, pattern: re.Pattern[str]) -> bool:
    if isinstance(value, str):
        return pattern.search(value) is not None
    if isinstance(value, Mapping):
        return any(_contains(v, pattern) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_contains(v, pattern) for v in value)
    return False


def personal_calls(
    calls: Sequence[tuple[int, ProviderCall]], key: bytes, campaign_id: int, subscriber_id: int
) -> list[tuple[int, ProviderCall]]:
    """A campaign's calls with one recipient's own click links in place of the placeholders."""
    pattern = _pattern(key)

    def token(match: re.Match[str]) -> str:
        return "/c/" + click_token(key, campaign_id, int(match.group(1)), subscriber_id)

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return pattern.sub(token, value)
        if isinstance(value, Mapping):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [fill(v) for v in value]
        return value

    return [(message, ProviderCall(method=call.method, body=fill(call.body))) for message, call in calls]
