"""Prefect flow ``watch_sources``: poll the due sources and record what changed.

Thin on purpose: the work is :func:`feedcast.watch.poll` (the same function the
``feedcast poll`` command runs), split into batches so that each batch is one task
run (one retry unit, one line in the UI), never one task per item or per source.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from feedcast import watch
from feedcast.mdtext import md_text
from feedcast.store import PollSummary, Store

__all__ = ["poll_batch", "watch_sources"]


@task(name="poll-batch", retries=2, retry_delay_seconds=[5, 30])
def poll_batch(db: str, names: list[str], force: bool, deadline: float | None) -> list[PollSummary]:
    return watch.poll(Store(db), names, force=force, deadline=deadline)


@flow(name="watch_sources", log_prints=False)
def watch_sources(
    db: str = "feedcast.duckdb",
    names: list[str] | None = None,
    force: bool = False,
    batch_size: int = 500,
    deadline: float | None = 600.0,
) -> dict[str, int]:
    """Poll due sources (or ``names``) in batches; returns counts for the run."""
    logger = get_run_logger()
    store = Store(Path(db))
    due = [s.name for s in store.due_sources(names, force=force)]
    logger.info("%d sources due", len(due))
    summaries: list[PollSummary] = []
    for start in range(0, len(due), batch_size):
        # due sources only: a batch must not poll sources another run just polled
        summaries += poll_batch(db, due[start : start + batch_size], True, deadline)
    totals = {
        "sources": len(summaries),
        "new": sum(s.new for s in summaries),
        "changed": sum(s.changed for s in summaries),
        "failed": sum(1 for s in summaries if s.error),
    }
    failed = [s for s in summaries if s.error]
    lines = [
        f"**{totals['sources']}** sources polled, **{totals['new']}** new, "
        f"**{totals['changed']}** changed, **{totals['failed']}** failed",
    ]
    if failed:
        lines += ["", "| source | outcome | error |", "|---|---|---|"]
        lines += [
            f"| {md_text(s.source)} | {md_text(s.outcome)} | {md_text(s.error, 300)} |" for s in failed[:50]
        ]
    create_markdown_artifact("\n".join(lines), key="watch-sources", description="Poll results")
    logger.info("polled %(sources)d sources: %(new)d new, %(changed)d changed, %(failed)d failed", totals)
    return totals
