"""Provider formats: one module per format, one registry.

A layout renders items for a *format* (:mod:`layouts.render`); each format is one module
here holding all that is particular to it:

=============  ===========================================================================
module         format
=============  ===========================================================================
``telegram``   Bot API calls, Telegram's HTML subset
``messenger``  Send API calls, plain text
``email``      one ``smtp`` call: subject, HTML part, plain-text part
``slack``      incoming-webhook calls of Block Kit blocks, mrkdwn
``discord``    webhook calls of content and embeds, Discord markdown
``jsonhook``   the ``json`` format: the generic webhook's ``feedcast.v1`` document
=============  ===========================================================================

Each module has the same parts: its limits (module constants), ``build_calls`` (a
Message -> the exact request bodies, credentials and recipient left out), ``validate``
(one call against the provider's rules), ``preview_call`` / ``preview_window`` (how the
provider shows a message, for ``feedcast preview --html``, from the safe pieces of
:mod:`layouts.preview_html`; its style is ``<name>.css`` beside it), and a
:class:`Format` record,
``FORMAT``, that names them for the rest of feedcast (with the template a layout has for
the format, and the few things some formats do their own way: email's plain-text
template and unsubscribe link, telegram's escaping, json's check of rendered modules).
Shared machinery lives in ``_build`` (payload helpers), ``_check`` (validation
helpers), :mod:`layouts.html` and :mod:`layouts.text` (markup).

:data:`FORMATS` names the formats, in order; :func:`get_format` gives a format's
:class:`Format`; :func:`provider_calls` and :func:`validate_call` dispatch a Message or
a call to it. A new format is a module here declaring its ``FORMAT``, added to the
registry below.

Conventions of the builders:

* ``Module.text`` is in the format's markup (Telegram HTML, Messenger plain text, email
  HTML, Slack mrkdwn, Discord Markdown, anything for json). ``Button.title``,
  ``Card.title`` and ``Card.subtitle`` are **plain text** in every format: they map to
  structured fields (Messenger titles, Slack plain_text, Discord embed titles) and are
  escaped where they land in markup.
* Nothing is dropped silently: a module too long for one message is cut at a word
  boundary with :data:`ELLIPSIS` (the only loss); consecutive text modules are packed
  into as few messages as fit, never cut between two modules' characters; media a
  provider cannot fetch (too large by ``media_sizes[url]``, a type it refuses by URL,
  not http(s)) becomes a link.
* Buttons need a text to hang on: a module with buttons and no text carries
  :data:`BUTTONS_TEXT` where the provider wants one.

The validators are strict: unknown methods, unknown keys and wrong types are errors too,
not only the documented limits (the rules of ``../shared/docs/channels.md``); tests and
the provider emulators use them to prove payloads valid. A broken rule raises
:class:`~feedcast.kernel.errors.PayloadError` naming it (``err.rule``, e.g.
``"telegram.text.length"``). Counting: Telegram counts UTF-16 code units after entity
parsing; the other providers say "characters" without defining them, and we count UTF-16
code units (:func:`layouts.text.utf16_len`), never less than the code points, so a
payload we accept is accepted whichever way a provider counts. Email subjects count code
points. Sizes are decimal megabytes (:data:`MB`).

Plain Python: no Prefect, no DuckDB, no network.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from feedcast.kernel.errors import PayloadError
from feedcast.kernel.models import Message, ProviderCall
from layouts import i18n
from layouts.formats import discord, email, jsonhook, messenger, slack, telegram
from layouts.formats._build import BUTTONS_TEXT
from layouts.formats._check import MB
from layouts.formats._fit import ELLIPSIS
from layouts.formats._spec import Format

__all__ = [
    "BUTTONS_TEXT",
    "ELLIPSIS",
    "FORMATS",
    "MB",
    "Format",
    "checked_calls",
    "get_format",
    "provider_calls",
    "validate_call",
]


_REGISTRY: Final[Mapping[str, Format]] = {
    module.FORMAT.name: module.FORMAT for module in (telegram, messenger, email, slack, discord, jsonhook)
}
FORMATS: Final = tuple(_REGISTRY)  # telegram, messenger, email, slack, discord, json


def get_format(name: str) -> Format:
    """The :class:`Format` named ``name``; PayloadError (rule ``format``) for an unknown one."""
    fmt = _REGISTRY.get(name)
    if fmt is None:
        raise PayloadError("format", f"unknown format {name!r} (known: {', '.join(FORMATS)})")
    return fmt


def provider_calls(
    message: Message, *, media_sizes: Mapping[str, int] | None = None, locale: str | None = None
) -> list[ProviderCall]:
    """The provider calls that deliver ``message``, in order (empty for an empty message).

    ``media_sizes`` maps media URLs to their size in bytes when known (HEAD requests,
    enclosure lengths): media over a provider's fetch-by-URL limit becomes a link.
    ``locale``: the language of the few words a builder adds itself (Messenger's "Open"
    button on a bare card), the render's (``RenderContext.locale``); None: the current
    translations (:mod:`layouts.i18n`, English outside a render).
    Raises :class:`~feedcast.kernel.errors.PayloadError` for an unknown format or a
    message that breaks the format's convention (email with more than two text modules).
    """
    spec = get_format(message.format)
    if locale is None:
        return spec.build_calls(message, media_sizes or {})
    with i18n.using(locale):
        return spec.build_calls(message, media_sizes or {})


def validate_call(fmt: str, call: ProviderCall) -> None:
    """Raise :class:`~feedcast.kernel.errors.PayloadError` unless ``call`` is a valid
    request for format ``fmt``."""
    spec = get_format(fmt)
    if not isinstance(call.body, Mapping):
        raise PayloadError(f"{fmt}.body", "the body must be a JSON object")
    spec.validate(call)


def checked_calls(
    message: Message, *, media_sizes: Mapping[str, int] | None = None, locale: str | None = None
) -> list[tuple[ProviderCall, str | None]]:
    """The calls of :func:`provider_calls`, each with what :func:`validate_call` said of
    it (None: valid). PayloadError when the calls cannot be built at all."""
    checked: list[tuple[ProviderCall, str | None]] = []
    for call in provider_calls(message, media_sizes=media_sizes, locale=locale):
        try:
            validate_call(message.format, call)
        except PayloadError as exc:
            checked.append((call, str(exc)))
        else:
            checked.append((call, None))
    return checked
