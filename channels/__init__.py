"""Channels: one module per provider, one registry.

``channel_class("telegram")`` gives the :class:`~channels.base.Channel` subclass of a
kind; ``KINDS`` lists them. Every channel maps its provider's answers to
:class:`~channels.base.Result` in one place (see :mod:`channels.base`).
"""

from __future__ import annotations

import importlib

from channels.base import Channel, Outcome, Recipient, Result, SendContext
from feedcast.kernel.errors import InvalidValue

__all__ = [
    "KINDS",
    "Channel",
    "Outcome",
    "Recipient",
    "Result",
    "SendContext",
    "channel_class",
]

# kind -> "module:Class"
_REGISTRY = {
    "telegram": "channels.telegram:TelegramChannel",
    "messenger": "channels.messenger:MessengerChannel",
    "email": "channels.email:EmailChannel",
    "webhook": "channels.webhook:WebhookChannel",
    "outbox": "channels.outbox:OutboxChannel",
}
KINDS = tuple(_REGISTRY)


def channel_class(kind: str) -> type[Channel]:
    target = _REGISTRY.get(kind)
    if target is None:
        raise InvalidValue(f"unknown channel kind {kind!r}; kinds: {', '.join(KINDS)}")
    module_name, _, class_name = target.partition(":")
    cls: type[Channel] = getattr(importlib.import_module(module_name), class_name)
    return cls
