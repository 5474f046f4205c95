"""Watching sources: register, import, poll. The plain functions the CLI and the
Prefect flows both call, so every path records the same rows."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from feedcast.kernel.clock import SYSTEM, Clock
from feedcast.kernel.errors import InvalidValue
from feedcast.kernel.models import PollOutcome, Source
from feedcast.store import NewSource, PollSummary, Store
from sources.fetch import Fetcher, FetchLimits, make_client
from sources.pages import PageSelectors
from sources.poll import PollSettings, poll_many

__all__ = [
    "OpmlImport",
    "add_source",
    "import_opml",
    "poll",
    "validate_name",
    "validate_url",
]

log = logging.getLogger(__name__)

KINDS = ("auto", "feed", "page", "catalogue")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def validate_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidValue(
            f"invalid name {name!r}: use 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit"
        )
    return name


def validate_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidValue(f"invalid URL {url!r}: an http:// or https:// address is required")
    return url.strip()


def add_source(
    store: Store,
    name: str,
    url: str,
    *,
    kind: str = "auto",
    every: timedelta = timedelta(minutes=15),
    backfill: int = 0,
    selectors: dict[str, str] | None = None,
    fetch: bool = True,
    limits: FetchLimits | None = None,
) -> tuple[Source, PollSummary | None]:
    """Register a source; with ``fetch`` take its baseline now (detect kind, discover feed)."""
    validate_name(name)
    url = validate_url(url)
    if kind not in KINDS:
        raise InvalidValue(f"invalid kind {kind!r}: choose one of {', '.join(KINDS)}")
    if backfill < 0:
        raise InvalidValue("--backfill must be 0 or more")
    if selectors:
        try:
            PageSelectors.from_mapping(selectors)
        except ValueError as exc:
            raise InvalidValue(str(exc)) from None
        if kind == "auto":
            kind = "page"
    source = store.add_source(
        name, url, kind=None if kind == "auto" else kind, every=every, backfill=backfill, selectors=selectors
    )
    summary = None
    if fetch:
        summaries = poll(store, [name], force=True, limits=limits)
        summary = summaries[0] if summaries else None
        source = store.get_source(name)
    return source, summary


@dataclass(frozen=True, slots=True)
class OpmlImport:
    added: list[str]
    skipped: list[str]  # already registered (same URL) or duplicate


def import_opml(store: Store, path: Path, *, every: timedelta = timedelta(minutes=15)) -> OpmlImport:
    """Register every ``<outline xmlUrl=...>`` of an OPML file (no fetch: `poll` takes baselines)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidValue(f"cannot read {path}: {exc.strerror or exc}") from None
    if b"<!ENTITY" in raw:
        raise InvalidValue(f"{path}: entity declarations are not allowed in OPML")
    try:
        root = ET.fromstring(raw)  # noqa: S314 (no entities: checked above)
    except ET.ParseError as exc:
        raise InvalidValue(f"{path} is not valid OPML: {exc}") from None
    registered = store.list_sources()
    taken_urls = {s.url for s in registered} | {s.added_url for s in registered}
    taken_names = {s.name for s in registered}
    new: list[NewSource] = []
    skipped: list[str] = []
    for outline in root.iter("outline"):
        url = (outline.get("xmlUrl") or outline.get("xmlurl") or "").strip()
        if not url:
            continue
        if url in taken_urls:
            skipped.append(f"{url} (already registered)")
            continue
        try:
            validate_url(url)
        except InvalidValue as exc:
            skipped.append(f"{url} ({exc})")
            continue
        title = outline.get("title") or outline.get("text") or urlsplit(url).hostname or "source"
        name = base = _slug(title)
        n = 2
        while name in taken_names:
            name = f"{base}-{n}"
            n += 1
        taken_names.add(name)
        taken_urls.add(url)
        new.append(NewSource(name, url, "feed", every))
    store.add_sources(new)
    added = [s.name for s in new]
    return OpmlImport(added, skipped)


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.\-]+", "-", text).strip("-._").lower()[:48]
    return slug or "source"


ProgressCallback = Callable[[PollSummary], None]


def poll(
    store: Store,
    names: Sequence[str] | None = None,
    *,
    force: bool = False,
    deadline: float | None = None,
    limits: FetchLimits | None = None,
    settings: PollSettings | None = None,
    on_due: Callable[[int], None] | None = None,
    progress: ProgressCallback | None = None,
    batch_size: int = 200,
    clock: Clock = SYSTEM,
) -> list[PollSummary]:
    """Poll the due sources (or ``names``; ``force`` ignores schedules) and record results.

    Fetching runs concurrently; results are written in batches from a worker thread
    so the network never waits for DuckDB, and the file is held only per batch.
    ``clock`` says what is due and when the next polls are (a FakeClock in tests).
    """
    sources = store.due_sources(names, force=force, now=clock.now())
    sources = [replace(s, known=store.known_keys(s.id)) if s.format == "sitemap" else s for s in sources]
    if on_due:
        on_due(len(sources))
    if not sources:
        return []
    return asyncio.run(_poll(store, sources, deadline, limits, settings, progress, batch_size, clock))


async def _poll(
    store: Store,
    sources: list[Source],
    deadline: float | None,
    limits: FetchLimits | None,
    settings: PollSettings | None,
    progress: ProgressCallback | None,
    batch_size: int,
    clock: Clock,
) -> list[PollSummary]:
    limits = limits or FetchLimits()
    summaries: list[PollSummary] = []
    batch: list[PollOutcome] = []
    last_flush = time.monotonic()

    async def flush() -> None:
        nonlocal batch, last_flush
        written = await asyncio.to_thread(store.record_polls, batch, now=clock.now())
        batch, last_flush = [], time.monotonic()
        summaries.extend(written)
        if progress:
            for summary in written:
                progress(summary)

    async with make_client(limits) as client:
        fetcher = Fetcher(client, limits)
        async for outcome in poll_many(fetcher, sources, settings, deadline=deadline):
            batch.append(outcome)
            if len(batch) >= batch_size or time.monotonic() - last_flush > 1.0:
                await flush()
        if batch:
            await flush()
    return summaries
