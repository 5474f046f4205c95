"""What analysts read: the stable report views (:mod:`feedcast.store.migrations`, step
4) and the queries behind ``feedcast report`` and ``feedcast export-history`` (a
repository of :class:`feedcast.store.Store`).

Reading never blocks the pipeline for long: every query here runs on its own short,
read-only connection (:meth:`Database.connect` retries a busy file), so a flow that
wants to write waits at most for one query, never for a whole report or export.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from feedcast.kernel.errors import InvalidValue, NotFound
from feedcast.store.database import Connection, Database
from feedcast.store.guard import Guard, run_error
from feedcast.store.migrations import ACTIVITY_SQL

__all__ = ["EXPORTS", "ReportData", "ReportRepository"]

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
    try:
        yield
    except duckdb.Error as exc:
        raise InvalidValue(f"cannot read the report views: {run_error(exc)}") from None


@dataclass(slots=True)
class _Scope:
    """The campaigns a report covers: a predicate over ``campaigns c``, the same over
    ``campaign_report``, and their parameters."""

    campaigns: list[str] = field(default_factory=lambda: ["true"])
    report: list[str] = field(default_factory=lambda: ["true"])
    params: list[Any] = field(default_factory=list)

    @classmethod
    def of(cls, since: datetime | None, automation: str | None) -> _Scope:
        scope = cls()
        if since is not None:
            scope.campaigns.append("c.created_at >= ?")
            scope.report.append("created_at >= ?")
            scope.params.append(since)
        if automation is not None:
            scope.campaigns.append("c.automation_name = ?")
            scope.report.append("automation = ?")
            scope.params.append(automation)
        return scope

    @property
    def where(self) -> str:
        return " AND ".join(self.campaigns)


_TOTALS = """
    SELECT count(*) AS campaigns, coalesce(sum(recipients), 0) AS deliveries,
           coalesce(sum(sent), 0) AS sent, coalesce(sum(failed), 0) AS failed,
           coalesce(sum(skipped), 0) AS skipped, coalesce(sum(pending), 0) AS pending,
           coalesce(sum(clicks), 0) AS clicks, coalesce(sum(unique_clickers), 0) AS unique_clickers,
           coalesce(sum(unsubscribes_7d), 0) AS unsubscribes_7d,
           min(created_at) AS first_campaign_at, max(created_at) AS last_campaign_at
    FROM scope_report
"""

# from the first campaign to the last outcome of a delivery: the timeline's span
_SPAN = (
    "SELECT epoch(max(created_at + to_seconds(coalesce(duration_s, 0))) - min(created_at)) AS s"
    " FROM scope_report"
)

# (integer arithmetic: 4x faster than date_trunc over timezone() on 10 M rows)
_TIMELINE = """
    SELECT make_timestamp((epoch_us(coalesce(d.updated_at, d.sent_at, d.queued_at)) - {offset})
                          // {step} * {step} + {offset}) AS bucket,
           c.channel_name AS channel, d.status, count(*) AS deliveries
    FROM deliveries d JOIN campaigns c ON c.id = d.campaign_id
    WHERE {where}
    GROUP BY ALL ORDER BY bucket, channel, status
"""

_TOP_ITEMS = """
    WITH titles AS (SELECT url, any_value(title) AS title FROM items GROUP BY url)
    SELECT coalesce(t.title, k.url) AS item, k.url, count(*) AS clicks,
           count(DISTINCT k.subscriber_id) AS unique_clickers,
           count(DISTINCT k.campaign_id) AS campaigns
    FROM clicks k JOIN campaigns c ON c.id = k.campaign_id
    LEFT JOIN titles t ON t.url = k.url
    WHERE {where}
    GROUP BY ALL ORDER BY clicks DESC, unique_clickers DESC, k.url LIMIT ?
"""

_FAILURES = """
    SELECT d.status, c.channel_kind, coalesce(d.error_code, '') AS error_code,
           any_value(d.error) AS error, count(*) AS deliveries
    FROM deliveries d JOIN campaigns c ON c.id = d.campaign_id
    WHERE d.status IN ('failed', 'skipped') AND {where}
    GROUP BY d.status, c.channel_kind, coalesce(d.error_code, '')
    ORDER BY deliveries DESC, error_code LIMIT 20
"""


def _plain_totals(totals: dict[str, Any]) -> dict[str, Any]:
    for key in ("deliveries", "sent", "failed", "skipped", "pending", "clicks", "unique_clickers",
                "unsubscribes_7d"):  # fmt: skip
        totals[key] = int(totals[key])  # sums are HUGEINT: plain ints for JSON
    sent = totals["sent"]
    totals["click_rate"] = totals["unique_clickers"] / sent if sent else None
    return totals


class ReportRepository(Database):
    """The report views' queries, each on a short read-only connection."""

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
            self._require_automation(automation)
        scope = _Scope.of(since, automation)
        totals, campaigns, activity, span = self._scope_figures(scope, campaigns_limit)
        bucket, step, offset = _bucket(span)
        return ReportData(
            since=since,
            automation=automation,
            generated_at=now,
            totals=totals,
            campaigns=campaigns,
            timeline=self._rows(_TIMELINE.format(offset=offset, step=step, where=scope.where), scope.params),
            bucket=bucket,
            top_items=self._rows(_TOP_ITEMS.format(where=scope.where), [*scope.params, top_items]),
            failures=self._rows(_FAILURES.format(where=scope.where), scope.params),
            sources=self._rows("SELECT * FROM source_health ORDER BY consecutive_errors DESC, name"),
            activity=activity,
            campaigns_total=int(totals["campaigns"]),
        )

    def _require_automation(self, automation: str) -> None:
        """NotFound for an automation that never existed (neither now nor in a campaign)."""
        known = self._rows(
            "SELECT 1 FROM automations WHERE name = ? UNION ALL"
            " SELECT 1 FROM campaigns WHERE automation_name = ? LIMIT 1",
            [automation, automation],
        )
        if not known:
            raise NotFound(f"no automation named {automation!r} (see `feedcast automation list`)")

    def _scope_figures(self, scope: _Scope, campaigns_limit: int) -> tuple[dict[str, Any], Rows, Rows, Any]:
        """Totals, the newest campaigns, the activity per day and the timeline's span (s).

        campaign_report is computed once (the costly part: every delivery is read), into a
        temporary table of this read-only connection; totals, campaigns and activity read it."""
        with self.guarded() as con, _report_errors():
            con.execute(
                f"CREATE TEMP TABLE scope_report AS SELECT * FROM campaign_report WHERE {' AND '.join(scope.report)}",
                scope.params,
            )
            totals = _fetch(con, _TOTALS)[0]
            campaigns = _fetch(
                con,
                "SELECT * FROM scope_report ORDER BY created_at DESC, campaign_id DESC LIMIT ?",
                [campaigns_limit],
            )
            activity = _fetch(
                con,
                f"SELECT * FROM ({ACTIVITY_SQL.format(relation='scope_report')}) ORDER BY day DESC, automation LIMIT 60",
            )
            span = _fetch(con, _SPAN)[0]["s"]
        return _plain_totals(totals), campaigns, activity, span

    # ----------------------------------------------------------------- history

    def send_history(self) -> Rows:
        """Every delivery in the order it was queued, from ``send_history``: ``automation``,
        ``kind`` (the channel's), ``recipient``, ``status``, ``tries``, ``error``."""
        return self.query(
            "SELECT automation, channel_kind AS kind, recipient, status, attempts AS tries, error"
            " FROM send_history ORDER BY delivery_id"
        )[1]

    def fetch_stats(self) -> Rows:
        """Every fetch so far per source, by name: ``source``, ``fetches``, ``not_modified``
        (304s), ``median_ms``, ``bytes``."""
        return self.query(
            """
            SELECT s.name AS source, count(*) AS fetches,
                   count(*) FILTER (WHERE f.outcome = 'not_modified') AS not_modified,
                   round(median(f.duration_ms), 1) AS median_ms, sum(f.bytes) AS bytes
            FROM fetches f JOIN sources s ON s.id = f.source_id GROUP BY s.name ORDER BY s.name
            """
        )[1]

    def export_history(self, directory: Path, *, since: datetime | None = None) -> dict[str, int]:
        """Write :data:`EXPORTS` as Parquet files into ``directory`` with DuckDB's COPY, each
        to a temporary name first and renamed into place (a reader never sees half a file).
        Each file is its own short read-only connection. Returns rows written per file."""
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
