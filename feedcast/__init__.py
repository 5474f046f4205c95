"""feedcast: content sources in, messaging campaigns out, everything recorded in DuckDB."""

from feedcast.errors import FeedcastError, UserError
from feedcast.models import Item, Media, ParseResult, PollOutcome, Source, SourceKind, Variant
from feedcast.store import Store

__version__ = "0.1.0"

__all__ = [
    "FeedcastError",
    "Item",
    "Media",
    "ParseResult",
    "PollOutcome",
    "Source",
    "SourceKind",
    "Store",
    "UserError",
    "Variant",
    "__version__",
]
