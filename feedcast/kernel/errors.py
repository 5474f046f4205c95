"""feedcast's exception tree. Everything the product raises on purpose is here.

FeedcastError                  base; ``str(err)`` is one line for a user
├── UserError                  the user asked for something wrong: the CLI prints
│   │                          the message and exits 2, no traceback
│   ├── NotFound               a named source / channel / automation does not exist
│   ├── AlreadyExists          a name is taken
│   ├── InvalidValue           a malformed option (interval, URL, selector...)
│   └── LayoutError            a layout that cannot render: syntax error (file and
│                              line), missing template for a format
├── TelegramHtmlError          (layouts.html) text Telegram would refuse to parse
├── PayloadError               a provider call breaks a rule of its format;
│                              ``rule`` names it (layouts.formats)
├── StoreError                 the DuckDB file could not be used
│   └── StoreBusy              another process held the write lock past our retries
└── FetchError                 one source could not be fetched; recorded on the
    │                          source, never stops the others
    ├── BlockedAddress         SSRF guard: private / loopback / link-local target
    ├── TooLarge               body over the size limit (or a decompression bomb)
    ├── Gone                   HTTP 410: the source is deactivated
    ├── RateLimited            HTTP 429 / 503 with Retry-After
    └── HttpStatus             any other non-success status
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "BlockedAddress",
    "FeedcastError",
    "FetchError",
    "Gone",
    "HttpStatus",
    "InvalidValue",
    "LayoutError",
    "NotFound",
    "PayloadError",
    "RateLimited",
    "StoreBusy",
    "StoreError",
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


class LayoutError(UserError):
    """A layout is broken or lacks a template; the message names the file and line."""


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
