"""What analysts read: the stable report views (migration 4) and the queries behind
``feedcast report`` and ``feedcast export-history``. A mixin of :class:`feedcast.store.Store`.

Reading never blocks the pipeline for long: every query here runs on its own short,
read-only connection (:meth:`Store.connect` retries a busy file), so a flow that wants to
write waits at most for one query, never for a whole report or export.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feedcast.kernel.errors import InvalidValue, NotFound
from feedcast.store.guard import Guard, run_error

if TYPE_CHECKING:
    import duckdb

    Connection = duckdb.DuckDBPyConnection

__all__ = ["EXPORTS", "ReportData", "ReportStore", "m004"]


def m004(con: Connection) -> None:
    """campaign_report, source_health, automation_activity (views: add columns, never rename)."""
    con.execute("""
        CREATE VIEW campaign_report AS
        WITH d AS (
            SELECT campaign_id,
                   count(*) AS recipients,
                   count(*) FILTER (WHERE status = 'sent') AS sent,
                   count(*) FILTER (WHERE status = 'failed') AS failed,
                   count(*) FILTER (WHERE status = 'skipped') AS skipped,
                   count(*) FILTER (WHERE status = 'pending') AS pending,
                   min(queued_at) AS first_queued_at,
                   max(coalesce(updated_at, sent_at)) AS last_done_at
            FROM deliveries GROUP BY campaign_id
        ), k AS (
            SELECT campaign_id, count(*) AS clicks, count(DISTINCT subscriber_id) AS unique_clickers
            FROM clicks GROUP BY campaign_id
        ), u AS (
            SELECT c.id AS campaign_id, count(DISTINCT e.subscriber_id) AS unsubscribes_7d
            FROM subscription_events e
            JOIN campaigns c ON c.channel_id = e.channel_id
                 AND e.occurred_at >= c.created_at AND e.occurred_at < c.created_at + INTERVAL 7 DAY
            JOIN deliveries dl ON dl.campaign_id = c.id AND dl.subscriber_id = e.subscriber_id
            WHERE e.event = 'unsubscribe'
            GROUP BY c.id
        )
        SELECT c.id AS campaign_id, c.automation_name AS automation, c.channel_name AS channel,
               c.channel_kind, c.created_at, c.items,
               coalesce(d.recipients, 0) AS recipients, coalesce(d.sent, 0) AS sent,
               coalesce(d.failed, 0) AS failed, coalesce(d.skipped, 0) AS skipped,
               coalesce(d.pending, 0) AS pending,
               coalesce(k.clicks, 0) AS clicks, coalesce(k.unique_clickers, 0) AS unique_clickers,
               CASE WHEN coalesce(d.sent, 0) > 0
                    THEN coalesce(k.unique_clickers, 0) / d.sent END AS click_rate,
               coalesce(u.unsubscribes_7d, 0) AS unsubscribes_7d,
               epoch(d.last_done_at - d.first_queued_at) AS duration_s,
               c.status, c.trigger, c.layout
        FROM campaigns c
        LEFT JOIN d ON d.campaign_id = c.id
        LEFT JOIN k ON k.campaign_id = c.id
        LEFT JOIN u ON u.campaign_id = c.id;

        CREATE VIEW source_health AS
        WITH f AS (
            SELECT source_id, count(*) AS fetches,
                   count(*) FILTER (WHERE outcome = 'not_modified') AS not_modified,
                   median(duration_ms) AS median_fetch_ms
            FROM fetches WHERE started_at >= now() - INTERVAL 30 DAY GROUP BY source_id
        ), e AS (
            SELECT source_id, count(*) AS new_items
            FROM item_events
            WHERE event = 'new' AND NOT backfill AND occurred_at >= now() - INTERVAL 30 DAY
            GROUP BY source_id
        )
        SELECT s.name, s.status, s.last_success_at, s.error_count AS consecutive_errors,
               coalesce(f.fetches, 0) AS fetches,
               CASE WHEN f.fetches > 0 THEN f.not_modified / f.fetches END AS ratio_304,
               coalesce(e.new_items, 0) / 30.0 AS items_per_day,
               f.median_fetch_ms, s.last_error, s.last_polled_at, s.kind, s.url
        FROM sources s
        LEFT JOIN f ON f.source_id = s.id
        LEFT JOIN e ON e.source_id = s.id;

    """)
    con.execute(f"CREATE VIEW automation_activity AS {ACTIVITY_SQL.format(relation='campaign_report')}")


# automation_activity: campaign_report rows per automation and UTC day (the view, and the
# report over its own scope of campaigns)
ACTIVITY_SQL = """
    SELECT automation, CAST(timezone('UTC', created_at) AS DATE) AS day,
           count(*) AS campaigns, sum(items)::BIGINT AS items,
           sum(recipients)::BIGINT AS recipients, sum(sent)::BIGINT AS sent,
           sum(failed)::BIGINT AS failed, sum(skipped)::BIGINT AS skipped,
           sum(clicks)::BIGINT AS clicks, sum(unique_clickers)::BIGINT AS unique_clickers,
           sum(unsubscribes_7d)::BIGINT AS unsubscribes_7d
    FROM {relation}
    GROUP BY ALL
"""

# what `feedcast export-history` writes: file stem -> (relation, the column --since filters)
EXPORTS: dict[str, tuple[str, str]] = {
    "send_history": ("send_history", "campaign_created_at"),
    "campaigns": ("campaigns", "created_at"),
    "campaign_report": ("campaign_report", "created_at"),
    "clicks": ("clicks", "clicked_at"),
    "subscription_events": ("subscription_events", "occurred_at"),
}

Rows = list[dict[str, Any]]


@dataclass(slots=True)
class ReportData:
    """Everything ``feedcast report`` shows, as plain rows (see :mod:`feedcast.report`)."""

    since: datetime | None
    automation: str | None
    generated_at: datetime
    totals: dict[str, Any]
    campaigns: Rows  # campaign_report rows, newest first
    timeline: Rows  # bucket, channel, status, deliveries
    bucket: str  # the timeline's buckets: 'minute', 'hour', 'day' or 'week' (see _bucket)
    top_items: Rows  # item, url, clicks, unique_clickers, campaigns
    failures: Rows  # status, channel_kind, error_code, error, deliveries
    sources: Rows  # source_health rows
    activity: Rows  # automation_activity rows, newest day first
    campaigns_total: int = 0  # campaigns in the window (``campaigns`` holds at most the limit)


_MINUTE_US, _HOUR_US, _DAY_US = 60_000_000, 3_600_000_000, 86_400_000_000
_MONDAY_US = 4 * _DAY_US  # 1970-01-05, a Monday: weeks start on Mondays


def _bucket(span_seconds: float | None) -> tuple[str, int, int]:
    """The timeline's bucket for a span of activity, so that a chart has a readable number
    of columns (at most about 180): minutes up to 3 hours, hours up to 7 days, days up to
    26 weeks, weeks beyond. ``(name, size, offset)`` in microseconds (UTC)."""
    span = span_seconds or 0.0
    if span <= 3 * 3600:
        return "minute", _MINUTE_US, 0
    if span <= 7 * 86400:
        return "hour", _HOUR_US, 0
    if span <= 182 * 86400:
        return "day", _DAY_US, 0
    return "week", 7 * _DAY_US, _MONDAY_US


def _fetch(con: Connection, sql: str, params: Sequence[Any] = ()) -> Rows:
    cursor = con.execute(sql, list(params))
    columns = [d[0] for d in cursor.description or []]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


@contextmanager
def _report_errors() -> Iterator[None]:
    """A report query that fails (the views are the store file's: a copied or restored
    file may hold others) is one line, without DuckDB's message (it can quote data)."""
    import duckdb

    try:
        yield
    except duckdb.Error as exc:
        raise InvalidValue(f"cannot read the report views: {run_error(exc)}") from None


class ReportStore:
    """The report views' queries, each on a short read-only connection."""

    if TYPE_CHECKING:

        def connect(self, *, read_only: bool = False) -> AbstractContextManager[Connection]: ...
        def guarded(self, guard: Guard | None = None) -> AbstractContextManager[Connection]: ...

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        with self.guarded() as con, _report_errors():
            return _fetch(con, sql, params)

    def campaign_report(self, campaign_id: int | None = None) -> Rows:
        """Rows of the ``campaign_report`` view: one campaign, or all of them newest first."""
        if campaign_id is not None:
            return self._rows("SELECT * FROM campaign_report WHERE campaign_id = ?", [campaign_id])
        return self._rows("SELECT * FROM campaign_report ORDER BY campaign_id DESC")

    def report_data(
        self,
        *,
        since: datetime | None = None,
        automation: str | None = None,
        campaigns_limit: int = 50,
        top_items: int = 15,
        now: datetime,
    ) -> ReportData:
        """The figures of a report over the campaigns created since ``since`` (all when
        None) of ``automation`` (all when None; NotFound when it never existed)."""
        if automation is not None:
            known = self._rows(
                "SELECT 1 FROM automations WHERE name = ? UNION ALL"
                " SELECT 1 FROM campaigns WHERE automation_name = ? LIMIT 1",
                [automation, automation],
            )
            if not known:
                raise NotFound(f"no automation named {automation!r} (see `feedcast automation list`)")
        # the campaigns in scope, as a predicate over campaigns `c` and its parameters
        where, report_where = ["true"], ["true"]
        scope: list[Any] = []
        if since is not None:
            where.append("c.created_at >= ?")
            report_where.append("created_at >= ?")
            scope.append(since)
        if automation is not None:
            where.append("c.automation_name = ?")
            report_where.append("automation = ?")
            scope.append(automation)
        # campaign_report is computed once (the costly part: every delivery is read), into a
        # temporary table of this read-only connection; totals, campaigns and activity read it
        with self.guarded() as con, _report_errors():
            con.execute(
                "CREATE TEMP TABLE scope_report AS SELECT * FROM campaign_report"
                f" WHERE {' AND '.join(report_where)}",
                scope,
            )

            def rows(sql: str, params: Sequence[Any] = ()) -> Rows:
                return _fetch(con, sql, params)

            totals = rows("""
                SELECT count(*) AS campaigns, coalesce(sum(recipients), 0) AS deliveries,
                       coalesce(sum(sent), 0) AS sent, coalesce(sum(failed), 0) AS failed,
                       coalesce(sum(skipped), 0) AS skipped, coalesce(sum(pending), 0) AS pending,
                       coalesce(sum(clicks), 0) AS clicks, coalesce(sum(unique_clickers), 0) AS unique_clickers,
                       coalesce(sum(unsubscribes_7d), 0) AS unsubscribes_7d,
                       min(created_at) AS first_campaign_at, max(created_at) AS last_campaign_at
                FROM scope_report
            """)[0]
            campaigns = rows(
                "SELECT * FROM scope_report ORDER BY created_at DESC, campaign_id DESC LIMIT ?",
                [campaigns_limit],
            )
            activity = rows(
                f"SELECT * FROM ({ACTIVITY_SQL.format(relation='scope_report')})"
                " ORDER BY day DESC, automation LIMIT 60"
            )
            # from the first campaign to the last outcome of a delivery: the timeline's span
            span = rows(
                "SELECT epoch(max(created_at + to_seconds(coalesce(duration_s, 0))) - min(created_at)) AS s"
                " FROM scope_report"
            )[0]["s"]
        for key in ("deliveries", "sent", "failed", "skipped", "pending", "clicks", "unique_clickers",
                    "unsubscribes_7d"):  # fmt: skip
            totals[key] = int(totals[key])  # sums are HUGEINT: plain ints for JSON
        sent = totals["sent"]
        totals["click_rate"] = totals["unique_clickers"] / sent if sent else None
        bucket, step, offset = _bucket(span)
        # (integer arithmetic: 4x faster than date_trunc over timezone() on 10 M rows)
        timeline = self._rows(
            f"""
            SELECT make_timestamp((epoch_us(coalesce(d.updated_at, d.sent_at, d.queued_at)) - {offset})
                                  // {step} * {step} + {offset}) AS bucket,
                   c.channel_name AS channel, d.status, count(*) AS deliveries
            FROM deliveries d JOIN campaigns c ON c.id = d.campaign_id
            WHERE {" AND ".join(where)}
            GROUP BY ALL ORDER BY bucket, channel, status
            """,
            scope,
        )
        items = self._rows(
            f"""
            WITH titles AS (SELECT url, any_value(title) AS title FROM items GROUP BY url)
            SELECT coalesce(t.title, k.url) AS item, k.url, count(*) AS clicks,
                   count(DISTINCT k.subscriber_id) AS unique_clickers,
                   count(DISTINCT k.campaign_id) AS campaigns
            FROM clicks k JOIN campaigns c ON c.id = k.campaign_id
            LEFT JOIN titles t ON t.url = k.url
            WHERE {" AND ".join(where)}
            GROUP BY ALL ORDER BY clicks DESC, unique_clickers DESC, k.url LIMIT ?
            """,
            [*scope, top_items],
        )
        failures = self._rows(
            f"""
            SELECT d.status, c.channel_kind, coalesce(d.error_code, '') AS error_code,
                   any_value(d.error) AS error, count(*) AS deliveries
            FROM deliveries d JOIN campaigns c ON c.id = d.campaign_id
            WHERE d.status IN ('failed', 'skipped') AND {" AND ".join(where)}
            GROUP BY d.status, c.channel_kind, coalesce(d.error_code, '')
            ORDER BY deliveries DESC, error_code LIMIT 20
            """,
            scope,
        )
        sources = self._rows("SELECT * FROM source_health ORDER BY consecutive_errors DESC, name")
        return ReportData(
            since=since,
            automation=automation,
            generated_at=now,
            totals=totals,
            campaigns=campaigns,
            timeline=timeline,
            bucket=bucket,
            top_items=items,
            failures=failures,
            sources=sources,
            activity=activity,
            campaigns_total=int(totals["campaigns"]),
        )

    def export_history(self, directory: Path, *, since: datetime | None = None) -> dict[str, int]:
        """Write :data:`EXPORTS` as Parquet files into ``directory`` with DuckDB's COPY, each
        to a temporary name first and renamed into place (a reader never sees half a file).
        Each file is its own short read-only connection. Returns rows written per file."""
        import duckdb

        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidValue(f"cannot create {directory}: {exc.strerror or exc}") from None
        if not directory.is_dir() or not os.access(directory, os.W_OK | os.X_OK):
            raise InvalidValue(f"cannot write into {directory}: not a writable folder")
        # the connection may write into this one folder (guarded: no other file, no URL,
        # no extension, configuration locked), resolved as DuckDB compares paths
        folder = directory.resolve()
        counts: dict[str, int] = {}
        for stem, (relation, column) in EXPORTS.items():
            final = directory / f"{stem}.parquet"
            temp = folder / f".{stem}.parquet.{uuid.uuid4().hex[:8]}.tmp"
            where = f"WHERE {column} >= ?::TIMESTAMPTZ" if since is not None else ""
            target = str(temp).replace("'", "''")
            try:
                with self.guarded(Guard(write_dir=folder)) as con:
                    row = con.execute(
                        f"COPY (SELECT * FROM {relation} {where}) TO '{target}' (FORMAT parquet, COMPRESSION zstd)",
                        [since] if since is not None else [],
                    ).fetchone()
                os.replace(temp, final)
            except (OSError, duckdb.IOException) as exc:
                with suppress(OSError):
                    temp.unlink()
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                raise InvalidValue(f"cannot write {final}: {' '.join(reason.split())}") from None
            except duckdb.Error as exc:  # e.g. a view of the file that reads elsewhere
                with suppress(OSError):
                    temp.unlink()
                raise InvalidValue(f"cannot export {stem}: {run_error(exc)}") from None
            except BaseException:
                with suppress(OSError):
                    temp.unlink()
                raise
            counts[stem] = int(row[0]) if row else 0
        return counts
