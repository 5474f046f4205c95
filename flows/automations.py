"""Prefect flows ``run_automations``, ``run_automation`` and ``run_campaign``: send what
is due.

``run_automations`` (scheduled every minute) finds the due automations (a cron or
interval tick has come, new items for on-new ones, a one-off ``send --at``) and the
composed campaigns whose time has come (``campaign create --at``) or that stopped
unfinished, and runs each as its own flow run named after it: a subflow in the same
process, or with ``fan_out`` a run of the ``run-automation`` / ``run-campaign``
deployment, which a worker on any host picks up in its own process. The work is :func:`feedcast.automations.run_automation`
(what ``feedcast run`` calls); the flow adds retries for a busy database and a Markdown
artifact per campaign: its items, recipients and sent / failed / skipped.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from feedcast import automations, compose
from feedcast.delivery import CampaignResult
from feedcast.kernel.errors import StoreBusy, StoreError
from feedcast.mdtext import md_link, md_text
from feedcast.store import Store

__all__ = ["run_automation", "run_automations", "run_campaign"]


def _artifact(store: Store, result: CampaignResult) -> None:
    c = result.campaign
    items = store.campaign_items(c.id)
    failures = store.campaign_failures(c.id)
    # item titles, URLs and provider errors come from outside: escaped (feedcast.mdtext)
    lines = [
        f"### Campaign {c.id}: {md_text(c.automation or c.composed)} → {md_text(c.channel)} "
        f"({md_text(c.channel_kind)}, layout {md_text(c.layout)})",
        "",
        "| recipients | sent | failed | skipped | pending | status | seconds | per second |",
        "|---:|---:|---:|---:|---:|---|---:|---:|",
        f"| {c.recipients} | {c.sent} | {c.failed} | {c.skipped} | {c.pending} | {md_text(c.status)} "
        f"| {result.duration:.1f} | {result.rate:.1f} |",
        "",
        "| item | event |",
        "|---|---|",
        *[f"| {md_link(r['title'], r['url'])} | {md_text(r['event'])} |" for r in items],
    ]
    if c.error:
        lines += ["", f"**Stopped:** {md_text(c.error, 500)}"]
    if failures:
        lines += ["", "| why not sent | code | deliveries |", "|---|---|---:|"]
        lines += [f"| {md_text(r['error'], 300)} | {md_text(r['error_code'])} | {r['n']} |" for r in failures]
    create_markdown_artifact(
        "\n".join(lines),
        key=f"campaign-{c.id}",
        description=f"Campaign {c.id} of {c.automation or c.composed}",
    )


def _report(store: Store, results: list[CampaignResult]) -> None:
    """Each campaign a run sent: its artifact, and a line in the run's log."""
    logger = get_run_logger()
    for result in results:
        _artifact(store, result)
        c = result.campaign
        logger.info(
            "campaign %s (%s%s): %s sent, %s failed, %s skipped, %s pending (%s)",
            c.id,
            c.channel,
            f", {c.locale}" if c.locale else "",
            c.sent,
            c.failed,
            c.skipped,
            c.pending,
            c.status,
        )


def _busy_only(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a send only when the database file was busy: a stopped campaign (bad
    token) would only stop again, and the engine already retried transient answers."""
    return isinstance(getattr(state, "data", None), StoreBusy)


@task(name="send", retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=_busy_only)
def send(db: str, due: automations.Due) -> automations.RunResult:
    return automations.run_automation(Store(Path(db)), due, now=datetime.now(UTC))


@flow(name="run_automation", flow_run_name="{name}")
def run_automation(
    name: str, db: str = "feedcast.duckdb", trigger: str = "schedule", send_id: int | None = None
) -> dict[str, Any]:
    """Send one automation now: finish its unfinished campaigns, then one new campaign."""
    logger = get_run_logger()
    store = Store(Path(db))
    result = automations.run_automation(store, automations.Due(name, trigger, send_id), now=datetime.now(UTC))
    _report(store, result.campaigns)
    if result.note:
        logger.info("%s: %s", name, result.note)
    stopped = [c.campaign for c in result.campaigns if c.campaign.status == "stopped"]
    if result.error or stopped:
        # a failed flow run is what the UI and notifications show; the store keeps the rest
        raise RuntimeError(result.error or f"campaign {stopped[-1].id} stopped: {stopped[-1].error}")
    return {
        "automation": name,
        "campaigns": [c.campaign.id for c in result.campaigns],
        "sent": sum(c.campaign.sent for c in result.campaigns),
        "note": result.note,
    }


@flow(name="run_campaign", flow_run_name="campaign {name}")
def run_campaign(name: str, db: str = "feedcast.duckdb", trigger: str = "at") -> dict[str, Any]:
    """Send one composed campaign that is due (or resume one that stopped unfinished)."""
    logger = get_run_logger()
    store = Store(Path(db))
    run = compose.send_composed(store, name, trigger=trigger, now=datetime.now(UTC))
    _report(store, run.campaigns)
    if run.note:
        logger.info("%s: %s", name, run.note)
    if run.error:
        raise RuntimeError(run.error)
    return {"campaign": name, "campaigns": [c.campaign.id for c in run.campaigns], "note": run.note}


def _campaigns(store: Store, db: str, fan_out: bool) -> list[dict[str, Any]]:
    """The composed campaigns due now, each in a flow run of its own."""
    outcomes: list[dict[str, Any]] = []
    for composed in store.due_composed(datetime.now(UTC)):
        trigger = "at" if composed.status == "scheduled" else "resume"
        parameters = {"name": composed.name, "db": db, "trigger": trigger}
        if fan_out:
            from prefect.deployments import run_deployment

            run = run_deployment(
                "run_campaign/run-campaign",
                parameters=parameters,
                timeout=0,
                flow_run_name=f"campaign {composed.name}",
            )
            outcomes.append({"campaign": composed.name, "flow_run": str(getattr(run, "id", ""))})
            continue
        state = run_campaign(**parameters, return_state=True)
        outcomes.append(
            state.result() if state.is_completed() else {"campaign": composed.name, "error": state.message}
        )
    return outcomes


@flow(name="run_automations")
def run_automations(db: str = "feedcast.duckdb", fan_out: bool = False) -> list[dict[str, Any]]:
    """Run every due automation and composed campaign, each in its own flow run named after it."""
    logger = get_run_logger()
    store = Store(Path(db))
    due = automations.due_automations(store, datetime.now(UTC))
    logger.info("%d automation(s) due", len(due))
    outcomes: list[dict[str, Any]] = []
    for item in due:
        parameters = {"name": item.automation, "db": db, "trigger": item.trigger, "send_id": item.send_id}
        if fan_out:
            from prefect.deployments import run_deployment

            run = run_deployment(
                "run_automation/run-automation",
                parameters=parameters,
                timeout=0,
                flow_run_name=item.automation,
            )
            outcomes.append({"automation": item.automation, "flow_run": str(getattr(run, "id", ""))})
            continue
        state = run_automation(**parameters, return_state=True)  # one failure never stops the others
        if state.is_completed():
            outcomes.append(state.result())
        else:
            outcomes.append({"automation": item.automation, "error": state.message})
    outcomes.extend(_campaigns(store, db, fan_out))
    if outcomes:  # the analysts' report of the last 7 days (feedcast report), one key, latest version
        from feedcast.report import build_report, report_markdown

        since = datetime.now(UTC) - timedelta(days=7)
        try:
            create_markdown_artifact(report_markdown(build_report(store, since=since)), key="feedcast-report")
        except StoreError as exc:  # a busy file must not fail a run that sent its campaigns
            logger.warning("no report artifact this time: %s", exc)
    return outcomes
