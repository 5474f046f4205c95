"""Schedule semantics with an injected clock: cron and intervals in a time zone across
DST, catch-up after downtime, min-items, on-new, one-off sends, --where filters, edits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from feedcast.automations import (
    AutomationSpec,
    Due,
    add_automation,
    due_automations,
    edit_automation,
    next_runs,
    run_automation,
    run_due,
)
from feedcast.delivery import SendSettings
from feedcast.kernel.errors import InvalidValue
from feedcast.kernel.models import Item, NewSubscriber, PollOutcome
from feedcast.schedule import next_run, parse_schedule
from feedcast.store import Store

T0 = datetime(2026, 3, 20, 8, 0, tzinfo=UTC)
FAST = SendSettings(flush_interval=0.02)
PARIS = "Europe/Paris"


# --------------------------------------------------------------------------- pure schedule


def test_cron_in_a_time_zone_across_spring_forward_and_fall_back() -> None:
    daily = parse_schedule(cron="30 2 * * *", timezone=PARIS)
    # 29 March 2026: 02:00 -> 03:00 in Paris; the 02:30 run happens at 03:00 local
    assert next_run(daily, datetime(2026, 3, 28, 12, tzinfo=UTC)) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert next_run(daily, datetime(2026, 3, 29, 12, tzinfo=UTC)) == datetime(2026, 3, 30, 0, 30, tzinfo=UTC)
    # 25 October 2026: 03:00 -> 02:00; 02:30 happens twice locally, the run once
    first = next_run(daily, datetime(2026, 10, 24, 12, tzinfo=UTC))
    assert first is not None and first.astimezone(UTC).date() == datetime(2026, 10, 25).date()
    second = next_run(daily, first)
    assert second is not None and second.date() == datetime(2026, 10, 26).date()
    weekdays = parse_schedule(cron="0 9 * * 1-5", timezone="America/New_York")
    friday_evening = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)
    assert next_run(weekdays, friday_evening) == datetime(2026, 11, 30, 14, 0, tzinfo=UTC)  # Monday 09:00 EST


def test_daily_intervals_keep_the_local_time_and_hourly_ones_are_exact() -> None:
    anchor = datetime(2026, 3, 27, 8, 0, tzinfo=UTC)  # 09:00 in Paris (CET)
    daily = parse_schedule(every=timedelta(days=1), timezone=PARIS, anchor=anchor)
    after_dst = next_run(daily, datetime(2026, 3, 29, 9, tzinfo=UTC))
    assert after_dst == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)  # still 09:00 local (CEST)
    hourly = parse_schedule(every=timedelta(hours=1), timezone=PARIS, anchor=anchor)
    assert next_run(hourly, datetime(2026, 3, 29, 0, 59, tzinfo=UTC)) == datetime(
        2026, 3, 29, 1, 0, tzinfo=UTC
    )
    assert next_run(parse_schedule(on_new=True), anchor) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cron": "61 * * * *"}, "invalid --schedule"),
        ({"cron": "* * *"}, "invalid --schedule"),
        ({"every": timedelta(seconds=10)}, "at least 1m"),
        ({"cron": "0 9 * * *", "on_new": True}, "choose one of"),
        ({"timezone": "Mars/Base"}, "unknown time zone"),
    ],
)
def test_bad_schedules_are_one_line_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        parse_schedule(**kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- with a store


def _item(key: str, price: str | None = None, title: str | None = None) -> Item:
    return Item(
        key=key,
        title=title or f"Item {key}",
        url=f"https://shop.example/{key}",
        price=Decimal(price) if price else None,
        currency="EUR" if price else None,
    )


def _poll(store: Store, items: tuple[Item, ...], when: datetime) -> None:
    source = store.get_source("shop")
    store.record_polls([PollOutcome(source.id, source.url, when, 0.01, "ok", 200, items=items)], now=when)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "feedcast.duckdb")
    store.add_source("shop", "https://shop.example/feed.xml")
    _poll(store, (_item("base"),), T0 - timedelta(days=1))
    store.add_channel("review", "outbox", {"dir": str(tmp_path / "outbox"), "format": "json"})
    store.add_subscribers("review", [NewSubscriber("team")])
    return store


def _spec(**changes: object) -> AutomationSpec:
    spec = AutomationSpec(sources=["shop"], layout="digest", channel="review")
    for key, value in changes.items():
        setattr(spec, key, value)
    return spec


def _campaign_items(store: Store) -> list[list[str]]:
    _, rows = store.query(
        "SELECT ci.campaign_id, list(i.key ORDER BY ci.position) AS keys FROM campaign_items ci"
        " JOIN items i ON i.id = ci.item_id GROUP BY 1 ORDER BY 1"
    )
    return [list(r["keys"]) for r in rows]


def test_missed_ticks_after_downtime_give_one_campaign(store: Store) -> None:
    automation = add_automation(store, "hourly", _spec(every="1h"), now=T0)
    assert automation.next_run_at == T0 + timedelta(hours=1)
    _poll(store, (_item("base"), _item("a"), _item("b")), T0 + timedelta(minutes=30))
    down_until = T0 + timedelta(hours=5, minutes=10)  # five ticks missed
    [result] = run_due(store, now=down_until, settings=FAST)
    assert result.trigger == "schedule" and len(result.campaigns) == 1
    assert _campaign_items(store) == [["a", "b"]]
    assert store.get_automation("hourly").next_run_at == T0 + timedelta(hours=6)  # the next tick, once
    assert run_due(store, now=down_until + timedelta(minutes=1), settings=FAST) == []


def test_a_due_run_with_nothing_new_sends_nothing_and_moves_on(store: Store) -> None:
    add_automation(store, "daily", _spec(schedule="0 9 * * *", timezone=PARIS), now=T0)
    due_at = store.get_automation("daily").next_run_at
    assert due_at == datetime(2026, 3, 21, 8, 0, tzinfo=UTC)  # 09:00 Paris
    [result] = run_due(store, now=due_at, settings=FAST)
    assert result.campaigns == [] and result.note == "no new items since the last campaign"
    assert store.get_automation("daily").next_run_at == datetime(2026, 3, 22, 8, 0, tzinfo=UTC)


def test_min_items_waits_until_enough_are_queued(store: Store) -> None:
    add_automation(store, "batch", _spec(on_new=True, min_items=3), now=T0)
    _poll(store, (_item("base"), _item("a"), _item("b")), T0 + timedelta(minutes=5))
    assert due_automations(store, T0 + timedelta(minutes=6)) == []
    _poll(store, (_item("base"), _item("a"), _item("b"), _item("c")), T0 + timedelta(minutes=10))
    assert due_automations(store, T0 + timedelta(minutes=11)) == [Due("batch", "on-new")]
    [result] = run_due(store, now=T0 + timedelta(minutes=11), settings=FAST)
    assert result.campaigns and _campaign_items(store) == [["a", "b", "c"]]
    assert due_automations(store, T0 + timedelta(minutes=12)) == []


def test_on_new_sends_each_new_item_once(store: Store) -> None:
    add_automation(store, "instant", _spec(on_new=True), now=T0)
    assert due_automations(store, T0) == []
    _poll(store, (_item("base"), _item("a")), T0 + timedelta(minutes=1))
    run_due(store, now=T0 + timedelta(minutes=2), settings=FAST)
    _poll(store, (_item("base"), _item("a"), _item("b")), T0 + timedelta(minutes=3))
    run_due(store, now=T0 + timedelta(minutes=4), settings=FAST)
    run_due(store, now=T0 + timedelta(minutes=5), settings=FAST)
    assert _campaign_items(store) == [["a"], ["b"]]


def test_a_one_off_send_at_a_set_time(store: Store) -> None:
    add_automation(store, "launch", _spec(), now=T0)  # manual: only send / send --at
    _poll(store, (_item("base"), _item("a")), T0 + timedelta(minutes=1))
    store.add_scheduled_send("launch", T0 + timedelta(hours=2))
    assert due_automations(store, T0 + timedelta(hours=1)) == []
    [due] = due_automations(store, T0 + timedelta(hours=2))
    assert due.trigger == "at" and due.send_id is not None
    result = run_automation(store, due, now=T0 + timedelta(hours=2), settings=FAST)
    assert len(result.campaigns) == 1 and result.campaigns[0].campaign.trigger == "at"
    [done] = store.query("SELECT status, campaign_id FROM scheduled_sends")[1]
    assert done["status"] == "done" and done["campaign_id"] == result.campaigns[0].campaign.id
    assert due_automations(store, T0 + timedelta(hours=3)) == []


def test_where_filters_items_with_duckdb(store: Store) -> None:
    add_automation(store, "cheap-shoes", _spec(where="effective_price < 50 AND title ILIKE '%shoe%'"), now=T0)
    items = (
        _item("base"),
        _item("s1", "40", "Trail shoe"),
        _item("s2", "80", "Road shoe"),
        _item("h", "20", "Hat"),
    )
    _poll(store, items, T0 + timedelta(minutes=1))
    [result] = [
        run_automation(store, Due("cheap-shoes", "schedule"), now=T0 + timedelta(minutes=2), settings=FAST)
    ]
    assert result.campaigns and _campaign_items(store) == [["s1"]]


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("price", "not a boolean expression"),
        ("colour = 'red'", "not found"),
        ("count(*) > 2", "aggregates"),
        ("true; DELETE FROM items", "syntax error"),
        ("price < (SELECT max(price) FROM items)", "does not exist"),
    ],
)
def test_where_refuses_anything_but_one_boolean_expression(store: Store, where: str, message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        add_automation(store, "bad", _spec(where=where), now=T0)


def test_paused_automations_are_never_due_and_edits_keep_the_cursor(store: Store) -> None:
    add_automation(store, "news", _spec(every="1h"), now=T0)
    _poll(store, (_item("base"), _item("a")), T0 + timedelta(minutes=1))
    run_due(store, now=T0 + timedelta(hours=1), settings=FAST)
    automation, changed = edit_automation(store, "news", {"status": "paused"}, now=T0 + timedelta(hours=1))
    assert changed == ["status"] and next_runs(automation)["next_run_utc"] is None
    assert due_automations(store, T0 + timedelta(hours=9)) == []
    automation, changed = edit_automation(
        store,
        "news",
        {"status": "active", "schedule": "0 * * * *", "timezone": PARIS},
        now=T0 + timedelta(hours=9, minutes=5),
    )
    assert set(changed) == {"status", "schedule", "every", "timezone"}
    assert automation.schedule == "cron" and automation.next_run_at == T0 + timedelta(hours=10)
    local = next_runs(automation)["next_run_local"]
    assert local is not None and local.endswith("+01:00")
    run_due(store, now=T0 + timedelta(hours=10), settings=FAST)
    assert _campaign_items(store) == [["a"]]  # "a" was not sent again


def test_one_process_at_a_time_sends_an_automation(store: Store) -> None:
    import socket

    from feedcast.delivery import send_automation
    from feedcast.kernel.errors import AutomationBusy

    automation = add_automation(store, "news", _spec(), now=T0)
    _poll(store, (_item("base"), _item("a")), T0 + timedelta(minutes=1))
    assert store.claim_automation(automation.id, "other-host:4242:1", 60) is None
    with pytest.raises(AutomationBusy, match="being sent by other-host:4242:1"):
        send_automation(store, "news", settings=FAST)
    store.release_automation(automation.id, "other-host:4242:1")
    # a holder that crashed on this machine (its pid is gone) is taken over at once
    assert store.claim_automation(automation.id, f"{socket.gethostname()}:999999999:1", 60) is None
    [result] = send_automation(store, "news", settings=FAST)
    assert result.campaign.sent == 1
    assert store.query("SELECT lease_owner FROM automations")[1] == [{"lease_owner": None}]


def test_every_prefect_yaml_deployment_points_at_a_flow() -> None:
    import importlib

    import yaml
    from prefect import Flow

    config = yaml.safe_load((Path(__file__).parent.parent / "prefect.yaml").read_text(encoding="utf-8"))
    names = []
    for deployment in config["deployments"]:
        path, _, function = deployment["entrypoint"].partition(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        flow = getattr(module, function)
        assert isinstance(flow, Flow)
        assert set(deployment.get("parameters", {})) <= set(flow.parameters.properties)
        names.append(f"{flow.name}/{deployment['name']}")
    # run_automations fans out to this deployment by name
    assert "run_automation/run-automation" in names
