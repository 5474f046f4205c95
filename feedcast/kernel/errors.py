"""feedcast's exception tree. Every exception class the product raises on purpose is here.

FeedcastError                  base; ``str(err)`` is one line for a user
├── UserError                  the user asked for something wrong: the CLI prints
│   │                          the message and exits 2, no traceback
│   ├── NotFound               a named source / channel / automation does not exist
│   ├── AlreadyExists          a name is taken
│   ├── InvalidValue           a malformed option (interval, URL, selector...)
│   │   └── MessageFileError   a composed campaign's message file that cannot be
│   │                          sent as written: file, module position, field
│   └── LayoutError            a layout that cannot render: syntax error (file and
│                              line), missing template for a format, a broken limit
├── TelegramHtmlError          text Telegram would refuse to parse (also a ValueError);
│                              ``str(err)`` is the Bot API's 400 description
├── PayloadError               a provider call breaks a rule of its format;
│                              ``rule`` names it (layouts.formats)
├── ChannelError               a channel cannot work as configured (missing secret,
│                              bad token, unreachable relay or API)
├── AutomationBusy             another process is sending this automation right now
├── StoreError                 the DuckDB file could not be used
│   └── StoreBusy              another process held the write lock past our retries
└── FetchError                 one source could not be fetched; recorded on the
    │                          source, never stops the others
    ├── BlockedAddress         SSRF guard: private / loopback / link-local target
    ├── TooLarge               body over the size limit (or a decompression bomb)
    ├── Gone                   HTTP 410: the source is deactivated
    ├── RateLimited            HTTP 429 / 503 with Retry-After
    └── HttpStatus             any other non-success status

LimitExceeded                  (an Exception, not a FeedcastError) a layout render broke
                               one of its limits (layouts.limits); never reaches a
                               user: the renderer turns it into a LayoutError
TemplateMisuse                 (an Exception, not a FeedcastError) a template called a
                               module function wrongly (layouts.modules); never reaches
                               a user: the renderer turns it into a LayoutError
ControlError                   (feedcast.sandbox.base) a bad ``/_sandbox`` request to a
                               provider emulator: answered 400 (or 404) with its message
Dropped                        (feedcast.sandbox.base) a signal: the emulator drops the
                               request's connection without a byte of answer

Private signals that never leave their module are not part of the tree:
``_SessionError`` (channels.email: an SMTP session could not be set up; carries its
Result), ``_Unreachable`` (feedcast.compose: a media URL that does not answer),
``_TooLarge`` (feedcast.web.app: a request body over the limit; answered 413),
and the emulators' provider errors in feedcast.sandbox (``_ApiError``, ``_GraphError``).
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "AutomationBusy",
    "BlockedAddress",
    "ChannelError",
    "FeedcastError",
    "FetchError",
    "Gone",
    "HttpStatus",
    "InvalidValue",
    "LayoutError",
    "LimitExceeded",
    "MessageFileError",
    "NotFound",
    "PayloadError",
    "RateLimited",
    "StoreBusy",
    "StoreError",
    "TelegramHtmlError",
    "TemplateMisuse",
    "TooLarge",
    "UserError",
]


class FeedcastError(Exception):
    """Base of every error feedcast raises on purpose."""


class UserError(FeedcastError):
    """A mistake in what the user asked; shown as one line, exit status 2."""


class NotFound(UserError):
    pass


class AlreadyExists(UserError):
    pass


class InvalidValue(UserError):
    pass


class MessageFileError(InvalidValue):
    """A message file that cannot be sent as written (one line: file, module, field)."""


class LayoutError(UserError):
    """A layout is broken or lacks a template; the message names the file and line."""


class TelegramHtmlError(FeedcastError, ValueError):
    """Text Telegram would refuse; ``str(err)`` is the Bot API's 400 description.

    ``offset`` is the UTF-8 byte offset the description names, when it names one.
    """

    def __init__(self, description: str, offset: int | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.offset = offset


class ChannelError(FeedcastError):
    """A channel cannot work as configured (missing secret, bad token, unreachable)."""


class AutomationBusy(FeedcastError):
    """Another process is sending this automation right now."""


class PayloadError(FeedcastError):
    """A provider call breaks a provider rule; ``rule`` names it (``telegram.text.length``)."""

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(f"{rule}: {detail}")
        self.rule = rule
        self.detail = detail


class StoreError(FeedcastError):
    pass


class StoreBusy(StoreError):
    pass


class FetchError(FeedcastError):
    """A source could not be fetched. ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class BlockedAddress(FetchError):
    pass


class TooLarge(FetchError):
    pass


class Gone(FetchError):
    pass


class RateLimited(FetchError):
    def __init__(self, message: str, *, status: int | None = 429, retry_after: float | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class HttpStatus(FetchError):
    pass


class LimitExceeded(Exception):
    """A render broke one of its limits; ``reason`` completes "layout NAME ..."."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TemplateMisuse(Exception):
    """A template called a module function wrongly; becomes a LayoutError with file:line."""
