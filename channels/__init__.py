"""Channels: one module per provider, one registry.

``KINDS`` lists the channel kinds; the channel of kind K is the
:class:`~channels.base.Channel` subclass of ``channels/K.py`` whose ``kind`` is K, and
``channel_class(K)`` imports that module on first use and finds the class by its
``kind`` (no second map of kinds to classes). Every channel maps its provider's answers
to :class:`~channels.base.Result` in one place (see :mod:`channels.base`).
"""

from __future__ import annotations

import functools
import importlib
from typing import Final

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

# the provider modules, in order: channels.<kind> holds the Channel subclass of that kind
KINDS: Final = ("telegram", "messenger", "email", "webhook", "outbox")


def channel_class(kind: str) -> type[Channel]:
    if kind not in KINDS:
        raise InvalidValue(f"unknown channel kind {kind!r}; kinds: {', '.join(KINDS)}")
    return _provider_class(kind)


@functools.cache
def _provider_class(kind: str) -> type[Channel]:
    """The class of ``channels.<kind>`` whose ``kind`` is ``kind`` (imported on first use,
    so a command that needs one channel loads only its module)."""
    module = importlib.import_module(f"{__name__}.{kind}")
    (cls,) = (
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, Channel)
        and value.__module__ == module.__name__
        and getattr(value, "kind", None) == kind
    )
    return cls
