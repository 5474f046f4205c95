"""Poll one source: fetch (conditionally), detect, parse, follow pagination,
discover feeds on pages, enrich sitemap catalogues with their product pages.

:func:`poll_source` never raises for a source's own problems: everything ends in a
:class:`~feedcast.kernel.models.PollOutcome` (``ok``, ``not_modified``, ``unchanged``,
``error``, ``gone``, ``rate_limited``, ``blocked``), so one bad source never stops
the others. :func:`poll_many` runs many with bounded concurrency and a deadline.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from feedcast.kernel.errors import BlockedAddress, FetchError, Gone, RateLimited
from feedcast.kernel.models import Item, ParseResult, PollOutcome, Source, SourceKind
from sources import catalogues
from sources.detect import parse_document
from sources.fetch import Fetcher, FetchResponse
from sources.pages import is_comments_feed

__all__ = ["MAX_DISCOVERED", "PollSettings", "poll_many", "poll_source"]

log = logging.getLogger(__name__)

MAX_DISCOVERED = 5  # feeds of a page tried in turn when the first cannot be fetched

# formats whose first document does not tell whether the rest changed
_MULTI_DOCUMENT = {"shopify-json", "woocommerce-json", "sitemap"}


@dataclass(frozen=True, slots=True)
class PollSettings:
    max_documents: int = 50  # pages of pagination / child sitemaps per poll
    max_product_pages: int = 100  # sitemap product pages fetched per poll
    concurrency: int = 64  # sources polled at once


def body_digest(body: bytes) -> str:
    return hashlib.blake2b(body, digest_size=16).hexdigest()


async def poll_source(fetcher: Fetcher, source: Source, settings: PollSettings | None = None) -> PollOutcome:
    """Poll one source; never raises except on cancellation."""
    settings = settings or PollSettings()
    started_at = datetime.now(UTC)
    t0 = time.perf_counter()
    state = _Poll(fetcher, source, settings)
    try:
        return await state.run(started_at, t0)
    except FetchError as exc:
        outcome, retry_after = "error", None
        if isinstance(exc, Gone):
            outcome = "gone"
        elif isinstance(exc, RateLimited):
            outcome, retry_after = "rate_limited", exc.retry_after
        elif isinstance(exc, BlockedAddress):
            outcome = "blocked"
        log.info("poll source=%s outcome=%s error=%s", source.name, outcome, exc)
        return PollOutcome(
            source_id=source.id,
            url=source.url,
            started_at=started_at,
            duration=time.perf_counter() - t0,
            outcome=outcome,
            status=exc.status,
            error=str(exc),
            bytes=state.bytes,
            documents=state.documents,
            sent_etag=source.etag,
            sent_last_modified=source.last_modified,
            retry_after=retry_after,
        )
    except Exception as exc:  # a parser bug must not take the other sources down
        log.exception("poll source=%s failed unexpectedly", source.name)
        return PollOutcome(
            source_id=source.id,
            url=source.url,
            started_at=started_at,
            duration=time.perf_counter() - t0,
            outcome="error",
            error=f"internal error while polling: {type(exc).__name__}: {exc}",
            bytes=state.bytes,
            documents=state.documents,
        )


class _Poll:
    def __init__(self, fetcher: Fetcher, source: Source, settings: PollSettings) -> None:
        self.fetcher = fetcher
        self.source = source
        self.settings = settings
        self.bytes = 0
        self.documents = 0

    async def _get(
        self, url: str, etag: str | None = None, last_modified: str | None = None
    ) -> FetchResponse:
        self.documents += 1
        response = await self.fetcher.fetch(url, etag=etag, last_modified=last_modified)
        self.bytes += len(response.body)
        return response

    async def run(self, started_at: datetime, t0: float) -> PollOutcome:
        src = self.source
        # a paginated catalogue or a sitemap index can be unchanged while a later page
        # changed: those are fetched in full (the diff still raises only real changes)
        conditional = src.format not in _MULTI_DOCUMENT
        first = await self._get(
            src.url, src.etag if conditional else None, src.last_modified if conditional else None
        )
        common: dict[str, Any] = {
            "source_id": src.id,
            "url": src.url,
            "started_at": started_at,
            "status": first.status,
            "sent_etag": first.sent_etag,
            "sent_last_modified": first.sent_last_modified,
            "etag": first.etag,
            "last_modified": first.last_modified,
            "new_url": first.permanent_url,
        }
        if first.not_modified:
            common.update(etag=first.etag or src.etag, last_modified=first.last_modified or src.last_modified)
            return self._outcome(common, t0, "not_modified")
        digest = body_digest(first.body)
        if src.kind and src.body_hash == digest and src.format not in _MULTI_DOCUMENT:
            return self._outcome(common, t0, "unchanged", bytes=self.bytes, body_hash=digest)
        result = parse_document(
            first.body,
            first.final_url,
            first.headers,
            kind=src.kind,
            format=src.format,
            selectors=src.selectors,
        )
        return await self._changed(result, digest, common, t0)

    def _outcome(self, common: dict[str, Any], t0: float, outcome: str, **fields: Any) -> PollOutcome:
        return PollOutcome(
            **common, duration=time.perf_counter() - t0, outcome=outcome, documents=self.documents, **fields
        )

    async def _changed(
        self, result: ParseResult, digest: str, common: dict[str, Any], t0: float
    ) -> PollOutcome:
        """The ``ok`` outcome of a document that changed: its items, those of a feed the
        page advertises (``--kind auto``), of its further pages and its product pages."""
        src = self.source
        warnings = list(result.warnings)
        site_url = None
        # a page registered with --kind auto that advertises a feed: follow the feed from now on
        if src.kind is None and result.kind == SourceKind.PAGE and result.feeds:
            found = await self._discovered_feed(result, warnings)
            if found is not None:
                feed_url, feed, result = found
                site_url = src.url
                common.update(
                    new_url=feed.permanent_url or feed_url,
                    etag=feed.etag,
                    last_modified=feed.last_modified,
                    status=feed.status,
                )
                digest = body_digest(feed.body)
                warnings = [f"feed discovered on the page: {feed_url}", *warnings, *result.warnings]
        items = list(result.items)
        backlog = 0
        if result.next_urls:
            items += await self._follow(result, warnings)
        if result.kind == SourceKind.CATALOGUE and result.format == "sitemap":
            items, backlog = await self._enrich_sitemap(items, warnings)
        outcome = self._outcome(
            common,
            t0,
            "ok",
            items=tuple(items),
            kind=result.kind.value,
            format=result.format,
            title=result.title,
            link=result.link,
            warnings=tuple(warnings[:20]),
            bytes=self.bytes,
            body_hash=digest,
            site_url=site_url,
            backlog=backlog,
        )
        log.info(
            "poll source=%s outcome=ok status=%s items=%d bytes=%d documents=%d",
            src.name,
            outcome.status,
            len(items),
            self.bytes,
            self.documents,
        )
        return outcome

    async def _discovered_feed(
        self, page: ParseResult, warnings: list[str]
    ) -> tuple[str, FetchResponse, ParseResult] | None:
        """The feed to follow from a page with ``--kind auto``: the first of its
        advertised feeds (comment feeds only when it has no other) that can be fetched
        and has items, tried in the page's order (at most ``MAX_DISCOVERED``); else
        the first that could be fetched, or None (keep the page) when the page has
        items of its own. Raises a FetchError naming each URL tried when none could be
        fetched."""
        links = [f for f in page.feeds if not is_comments_feed(f)] or list(page.feeds)
        failures: list[tuple[str, FetchError]] = []
        empty: tuple[str, FetchResponse, ParseResult] | None = None
        for link in links[:MAX_DISCOVERED]:
            try:
                response = await self._get(link.url)
            except FetchError as exc:
                failures.append((link.url, exc))
                warnings.append(f"discovered feed {link.url} failed: {exc}")
                continue
            parsed = parse_document(
                response.body, response.final_url, response.headers, kind=SourceKind.FEED.value
            )
            if parsed.items:
                return link.url, response, parsed
            if empty is None:
                empty = (link.url, response, parsed)
        if empty is not None:
            return None if page.items else empty
        # none could be fetched: an error (retried with backoff), not a switch to the
        # page's own items, which would stick (a page source stops looking for feeds)
        if len(failures) == 1:
            message = f"discovered feed {failures[0][0]}: {failures[0][1]}"
        else:
            message = "no discovered feed could be fetched: " + "; ".join(f"{u}: {e}" for u, e in failures)
        # the page itself answered: a 410 or 429 of one of its feeds neither removes nor
        # pauses the source, it is an error like any other
        if all(isinstance(e, BlockedAddress) for _u, e in failures):
            raise BlockedAddress(message, status=failures[-1][1].status)
        raise FetchError(message, status=failures[-1][1].status)

    async def _follow(self, first: ParseResult, warnings: list[str]) -> list[Item]:
        """Pagination and child sitemaps, breadth first, bounded, never twice the same URL."""
        seen = {self.source.url}
        queue = list(first.next_urls)
        items: list[Item] = []
        while queue:
            batch = []
            for url in queue:
                if url not in seen and len(seen) <= self.settings.max_documents:
                    seen.add(url)
                    batch.append(url)
            if len(seen) > self.settings.max_documents and len(batch) < len(queue):
                warnings.append(f"stopped after {self.settings.max_documents} documents")
            queue = []
            responses = await asyncio.gather(*(self._get(u) for u in batch), return_exceptions=True)
            for url, response in zip(batch, responses, strict=True):
                if isinstance(response, BaseException):
                    if not isinstance(response, Exception):
                        raise response
                    warnings.append(f"{url}: {response}")
                    continue
                page = parse_document(
                    response.body,
                    response.final_url,
                    response.headers,
                    kind=first.kind.value,
                    format=first.format,
                )
                items.extend(page.items)
                warnings.extend(page.warnings[:3])
                queue.extend(page.next_urls)
        return items

    async def _enrich_sitemap(self, entries: list[Item], warnings: list[str]) -> tuple[list[Item], int]:
        """Turn sitemap URLs into products by fetching the pages that are new or changed."""
        known = self.source.known
        candidates = [
            e for e in entries if e.key not in known or (e.updated is not None and known[e.key] != e.updated)
        ]
        todo = candidates[: self.settings.max_product_pages]
        backlog = len(candidates) - len(todo)
        if backlog:
            warnings.append(f"{backlog} product pages left for the next polls")

        async def one(entry: Item) -> Item:
            assert entry.url is not None
            try:
                response = await self._get(entry.url)
            except FetchError as exc:
                warnings.append(f"{entry.url}: {exc}")
                raise
            page = catalogues.parse_catalogue(
                response.body, response.final_url, response.headers, "product-html"
            )
            if not page.items:
                return entry
            product = page.items[0]
            return replace(
                product,
                key=entry.key,
                url=product.url or entry.url,
                title=product.title or entry.title,
                updated=entry.updated or product.updated,
            )

        results = await asyncio.gather(*(one(e) for e in todo if e.url), return_exceptions=True)
        enriched = [r for r in results if isinstance(r, Item)]
        backlog += len(results) - len(enriched)  # failed pages are tried again next time
        return enriched, backlog


async def poll_many(
    fetcher: Fetcher,
    sources: Iterable[Source],
    settings: PollSettings | None = None,
    *,
    deadline: float | None = None,
) -> AsyncIterator[PollOutcome]:
    """Poll sources with ``settings.concurrency`` workers, yielding outcomes as they finish.

    Memory stays bounded by the workers in flight plus what the caller has not consumed
    yet, whatever the number of sources. When ``deadline`` (seconds) passes, running
    polls are cancelled and every source not done yields an outcome ``deadline`` (it
    stays due; no error is counted against it).
    """
    settings = settings or PollSettings()
    todo = deque(sources)
    expected = len(todo)
    if not expected:
        return
    results: asyncio.Queue[PollOutcome] = asyncio.Queue()
    in_flight: dict[int, Source] = {}

    async def worker() -> None:
        while todo:
            source = todo.popleft()
            in_flight[source.id] = source
            outcome = await poll_source(fetcher, source, settings)
            del in_flight[source.id]
            results.put_nowait(outcome)

    loop = asyncio.get_running_loop()
    stop_at = loop.time() + deadline if deadline is not None else None
    workers = [asyncio.create_task(worker()) for _ in range(min(settings.concurrency, expected))]
    try:
        for _ in range(expected):
            timeout = None if stop_at is None else max(0.0, stop_at - loop.time())
            try:
                outcome = await asyncio.wait_for(results.get(), timeout)
            except TimeoutError:
                break
            yield outcome
        else:
            return
        # deadline: nothing finished in time; whatever is running or waiting stays due
        unfinished = [*in_flight.values(), *todo]
        todo.clear()
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        for outcome in _deadline_outcomes(unfinished, deadline):
            yield outcome
    finally:
        for task in workers:
            task.cancel()


def _deadline_outcomes(unfinished: list[Source], deadline: float | None) -> Iterator[PollOutcome]:
    """An outcome ``deadline`` for each source not done when the deadline passed."""
    now = datetime.now(UTC)
    for source in unfinished:
        yield PollOutcome(
            source_id=source.id,
            url=source.url,
            started_at=now,
            duration=0.0,
            outcome="deadline",
            error=f"poll deadline of {deadline:g} s reached before this source finished",
        )
