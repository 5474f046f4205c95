"""Prefect flow ``inbox``: answer the Telegram bots for a while, then return.

A flow run long-polls ``getUpdates`` of every Telegram channel (or ``channels``) for
``duration`` seconds and processes what comes (subscribe on ``/start``, unsubscribe on
``/stop`` or a block, replies; :func:`feedcast.inbox.telegram.poll_channels`, the same
work as ``feedcast inbox``), then returns counts. Scheduled every minute with the
default 55 s and a concurrency limit of 1, one run follows the other and the bots
never go unanswered for more than a few seconds. The offset is stored after each
batch, so a run killed midway loses nothing: the next run reads on from there.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from feedcast.inbox.telegram import Handled, PollSummary, poll_channels
from feedcast.kernel.errors import FeedcastError
from feedcast.mdtext import md_text
from feedcast.store import Store

__all__ = ["inbox"]


@flow(name="inbox", log_prints=False)
def inbox(
    db: str = "feedcast.duckdb",
    channels: list[str] | None = None,
    duration: float = 55.0,
    timeout: float = 25.0,
) -> dict[str, int]:
    """Long-poll the bots for ``duration`` seconds; counts of what was handled. With no
    Telegram channel the run completes at once (a log line says so). Fails (after the
    other channels' work) when a channel cannot poll: a bad token, or a webhook set (409)."""
    logger = get_run_logger()
    store = Store(Path(db))
    if not channels and not any(c.kind == "telegram" for c in store.list_channels()):
        # nothing to poll is not a failure: the run completes and says so
        logger.info("no Telegram channel to poll: nothing to do (feedcast channel add NAME telegram ...)")
        return dict.fromkeys(
            ("channels", "updates", "duplicates", "subscribed", "unsubscribed", "replies", "errors"), 0
        )

    def show(name: str, handled: Handled) -> None:
        logger.info("%s %s", name, handled.line())

    results = asyncio.run(
        poll_channels(store, channels, timeout=timeout, duration=max(0.0, duration), on_handled=show)
    )
    summaries = [r for r in results if isinstance(r, PollSummary)]
    errors = [r for r in results if isinstance(r, FeedcastError)]
    totals = {
        "channels": len(results),
        "updates": sum(s.updates for s in summaries),
        "duplicates": sum(s.duplicates for s in summaries),
        "subscribed": sum(s.subscribed for s in summaries),
        "unsubscribed": sum(s.unsubscribed for s in summaries),
        "replies": sum(s.replies for s in summaries),
        "errors": sum(s.errors for s in summaries) + len(errors),
    }
    if totals["updates"] or errors:
        lines = [
            "| channel | updates | subscribed | unsubscribed | replies | errors | next offset |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *[
                f"| {md_text(s.channel)} | {s.updates} | {s.subscribed} | {s.unsubscribed} | {s.replies} "
                f"| {s.errors} | {s.offset if s.offset is not None else ''} |"
                for s in summaries
            ],
            *[f"\n**Could not poll:** {md_text(e, 300)}" for e in errors],
        ]
        create_markdown_artifact("\n".join(lines), key="inbox", description="Bot updates handled")
    logger.info(
        "%(updates)d updates: %(subscribed)d subscribed, %(unsubscribed)d unsubscribed, "
        "%(replies)d replies, %(errors)d errors",
        totals,
    )
    if errors:
        raise FeedcastError("; ".join(str(e) for e in errors))
    return totals
