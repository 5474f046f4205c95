"""Routes of ``feedcast web`` (filled in by the audience work)."""

from __future__ import annotations

from starlette.routing import BaseRoute

from feedcast.store import Store

__all__ = ["routes"]


def routes(store: Store) -> list[BaseRoute]:
    return []
