"""feedcast: content sources in, messaging campaigns out, everything recorded.

Importing the package loads nothing: ``feedcast.Store`` and the kernel's names are
looked up on first use (PEP 562), so ``import channels.telegram`` (which imports
``feedcast.kernel``) never loads DuckDB, the store or the CLI. The layers and what may
import what: ``docs/architecture.md``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from feedcast.kernel import __version__

if TYPE_CHECKING:
    from feedcast.kernel.errors import FeedcastError, UserError
    from feedcast.kernel.models import Item, Media, ParseResult, PollOutcome, Source, SourceKind, Variant
    from feedcast.store import Store

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

_LAZY = {
    "FeedcastError": "feedcast.kernel.errors",
    "UserError": "feedcast.kernel.errors",
    "Item": "feedcast.kernel.models",
    "Media": "feedcast.kernel.models",
    "ParseResult": "feedcast.kernel.models",
    "PollOutcome": "feedcast.kernel.models",
    "Source": "feedcast.kernel.models",
    "SourceKind": "feedcast.kernel.models",
    "Variant": "feedcast.kernel.models",
    "Store": "feedcast.store",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'feedcast' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
