"""What a bot says by itself: the presentation (first contact), welcome (subscribed),
goodbye (unsubscribed) and default (anything else) replies of a channel.

Each is a Jinja template (sandboxed, autoescaped for HTML formats) with the variables
``name`` (the person's first name when the provider gives it), ``channel`` and
``audience`` (the tag a deep link subscribed them to), set per channel with
``feedcast channel replies`` (or turned off); absent, the built-in text is used. A reply
becomes provider calls through the same payload builders as campaigns.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from jinja2 import Template, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from feedcast.kernel.errors import InvalidValue
from feedcast.kernel.models import Message, ProviderCall
from feedcast.store import Store
from layouts.formats import get_format, provider_calls

__all__ = ["BUILTIN", "check_template", "reply_calls", "reply_text"]

BUILTIN: Mapping[str, str] = {
    "presentation": (
        "Hello{% if name %} {{ name }}{% endif %}! This is {{ channel }}: new posts, products and deals, "
        "sent to you as they come. Send /start to subscribe, /stop to leave at any time."
    ),
    "welcome": (
        "You are subscribed{% if audience %} to {{ audience }}{% endif %}. "
        "You will get the next updates here. Send /stop to unsubscribe."
    ),
    "goodbye": "You are unsubscribed and will get no more messages. Send /start to come back.",
    "default": "Send /start to subscribe or /stop to unsubscribe.",
}

_ENV = ImmutableSandboxedEnvironment(autoescape=False, trim_blocks=True, lstrip_blocks=True)


def check_template(template: str) -> str:
    """A reply template that compiles, or InvalidValue naming the problem."""
    try:
        _ENV.from_string(template)
    except TemplateError as exc:
        raise InvalidValue(f"the reply template does not compile: {exc}") from None
    return template


@functools.lru_cache(maxsize=256)
def _compiled(template: str) -> Template:
    """A reply template compiled once (every inbound event renders one)."""
    return _ENV.from_string(template)


def reply_text(
    store: Store, channel: str, kind: str, *, name: str | None = None, audience: str | None = None
) -> str | None:
    """The text of a reply, or None when the channel turned it off."""
    template, enabled = store.bot_replies(channel)[kind]
    if not enabled:
        return None
    text = _compiled(template or BUILTIN[kind]).render(name=name, channel=channel, audience=audience)
    return text.strip() or None


def reply_calls(text: str, fmt: str) -> list[ProviderCall]:
    """The provider calls that send ``text`` on a channel of format ``fmt``."""
    modules = get_format(fmt).plain_modules(text)
    return provider_calls(Message(format=fmt, modules=modules, subject=text[:80]))
