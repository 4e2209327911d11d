"""New burn-rate, overdue and unmatched alerts wait while a feed they depend on receives a backlog.

Ground truth, worked by hand (NOW = 2026-03-10 12:00 UTC; ``alerts.backfill`` with
``lag`` 15m, ``window`` 2m, ``min_events`` 10, ``max_hold`` 5m). Events received in
the last two minutes, per feed (sent = the send time; lagging = sent >= 15m before
receipt):

- SYS_A at F1: 12 sent 3 days before, received at NOW-60s, and 4 live (sent a second
  before receipt): 12 of 16 lag, at least 10 and at least half: **backfilling**.
- SYS_B at F1: 3 sent 20m before, and 20 live ones whose *event* time is 5h before
  (a discharge documented long before the ADT is sent): 3 of 23 lag: not.
- SYS_A at F2: 10 lagging and 11 live: 10 of 21 is less than half: not.
- SYS_C at F2: 30 lagging, but received at NOW-3m, outside the window: not counted.
- the boundary: at F3, 10 sent exactly 15m before (lagging) and 10 sent 15m minus 1s
  before (not): 10 of 20, exactly half: backfilling.

Workflow ``w`` has steps from SYS_A and SYS_B, ``v`` only from SYS_C. At F1 and F2,
``w`` has 8 good transactions (completed 40 to 33 minutes before NOW) and 2 open ones
whose breach deadlines passed at NOW-10m and NOW-4m; ``v`` at F1 has 2 such open ones.
The SLO ``w_e2e`` (objective 0.99): 2 bad of 10 over 1h = 20x, 1 of 1 over 5m = 100x:
the 14.4x page pair fires, value 20.0. The overdue rule (count 2) fires for w at F1, w
at F2 and v at F1. Only those of ``w`` at F1 depend on a backfilling feed: they wait.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import correlator.schema  # noqa: F401 - registers the transactions table's migrations
from alerts import list_alerts
from alerts.api import build_router
from alerts.backfill import Backlog, backfilling, backlog_rows
from alerts.evaluation import evaluate_all
from alerts.notifier import ChannelNotifier
from alerts.stage import EvaluationLoop
from stitchboard.api import build_api
from stitchboard.components import HttpComponent
from stitchboard.config.model import SlasConfig
from stitchboard.store import Store
from tests.alerts_helpers import (
    DAY,
    HOUR,
    MINUTE,
    NS,
    Receiver,
    config,
    insert_transactions,
    migrate_alerts,
    tx,
    when,
)
from tests.support import AUTH, InProcess, free_port, make_runtime

NOW = int(dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC).timestamp()) * NS

# The helpers' facilities, keys and workflow w, and a second workflow fed by SYS_C.
YAML = """\
  - name: v
    within: {warn: 1h, breach: 2h}
    steps:
      - {name: c, match: {system: SYS_C}, keys: [visit]}
slos:
  - name: w_e2e
    indicator: {workflow: w}
    objective: 0.99
    window: 30d
    alerting: {min_events: 5}
alerts:
  overdue: {amount: null, count: 2}
  idle_feeds: {enabled: false}
  error_spike: {enabled: false}
  unmatched: {enabled: false}
  backfill: {lag: 15m, window: 2m, min_events: 10, max_hold: 5m}
  route: {group_wait: 0s, group_interval: 1m, repeat_interval: 4h}
  channels:
    - {name: hook, type: webhook, url_env: TEST_HOOK_URL}
"""
CONFIG = config(YAML)
COLUMNS = (
    "event_id",
    "event_time",
    "observed_time",
    "sent_time",
    "source_kind",
    "source",
    "facility",
    "system",
    "operation",
    "status",
)
W_F1 = (
    "backlog arriving from SYS_A at F1 (12 of 16 events received in the last 2m were sent"
    " 15m or more before, the oldest 3d ago); new burn-rate, overdue and unmatched alerts"
    " of w at F1 wait until it is in (at most 5m)"
)


def events(
    prefix: str,
    n: int,
    system: str,
    facility: str,
    received: int,
    sent_before: int,
    event_before: int | None = None,
) -> list[tuple[object, ...]]:
    """``n`` events received at ``received``, sent ``sent_before`` earlier (their event
    time ``event_before`` earlier, else the send time)."""
    sent = received - sent_before
    happened = received - (event_before if event_before is not None else sent_before)
    return [
        (f"{prefix}{i}", when(happened), when(received), when(sent), "log", "test", facility)
        + (system, "op", "ok")
        for i in range(n)
    ]


def truncate(store: Store) -> None:
    for table in ("transactions", "events", "alert_state", "notification_log"):
        store.command(f"TRUNCATE TABLE {store.table(table)}")
    for table in ("slo_rollup_marks", "slo_ledger", "slo_rollup", "open_deadlines"):
        store.command(f"TRUNCATE TABLE IF EXISTS {store.table(table)}")


def receipts(store: Store, at: int) -> None:
    store.insert(
        "events",
        COLUMNS,
        [
            *events("a1-old", 12, "SYS_A", "F1", at - 60 * NS, 3 * DAY),
            *events("a1-live", 4, "SYS_A", "F1", at - 60 * NS, NS),
            *events("b1-old", 3, "SYS_B", "F1", at - 60 * NS, 20 * MINUTE),
            *events("b1-live", 20, "SYS_B", "F1", at - 60 * NS, NS, event_before=5 * HOUR),
            *events("a2-old", 10, "SYS_A", "F2", at - 60 * NS, HOUR),
            *events("a2-live", 11, "SYS_A", "F2", at - 60 * NS, NS),
            *events("c2-old", 30, "SYS_C", "F2", at - 3 * MINUTE, DAY),
            *events("x3-at", 10, "SYS_X", "F3", at - 60 * NS, 15 * MINUTE),
            *events("x3-under", 10, "SYS_X", "F3", at - 60 * NS, 15 * MINUTE - NS),
        ],
    )


def transactions(facility: str, workflow: str, good: int, now: int) -> list[tuple[object, ...]]:
    rows = [
        tx(
            f"{workflow}{facility}g{i}",
            facility,
            "complete",
            now=now,
            end=now - (40 - i) * MINUTE,
            workflow=workflow,
        )
        for i in range(good)
    ]
    rows += [
        tx(
            f"{workflow}{facility}d{i}",
            facility,
            "in_progress",
            now=now,
            last=now - HOUR,
            breach=now - due * MINUTE,
            workflow=workflow,
        )
        for i, due in enumerate((10, 4))
    ]
    return rows


@pytest.fixture
def clean(store: Store) -> Store:
    migrate_alerts(store)
    truncate(store)
    return store


def test_which_feeds_receive_a_backlog(clean: Store) -> None:
    receipts(clean, NOW)
    rule = CONFIG.alerts.backfill
    rows = backlog_rows(clean, rule, NOW)
    assert rows == [
        Backlog("SYS_A", "F1", 16, 12, NOW - 60 * NS - 3 * DAY),
        Backlog("SYS_A", "F2", 21, 10, NOW - 60 * NS - HOUR),
        Backlog("SYS_B", "F1", 23, 3, NOW - 60 * NS - 20 * MINUTE),
        Backlog("SYS_X", "F3", 20, 10, NOW - 60 * NS - 15 * MINUTE),
    ]
    assert [(f.system, f.facility) for f in backfilling(rule, rows)] == [
        ("SYS_A", "F1"),
        ("SYS_X", "F3"),
    ]
    # Two minutes later the backlog received at NOW-60s is out of the window.
    assert backlog_rows(clean, rule, NOW + 61 * NS) == []


def _alerts(store: Store) -> dict[tuple[str, str, str], Any]:
    return {(a.rule, a.labels["workflow"], a.labels["facility"]): a for a in list_alerts(store)}


def test_pages_of_the_workflows_a_backlog_feeds_wait_for_it(clean: Store, monkeypatch) -> None:
    store = clean
    receipts(store, NOW)
    insert_transactions(
        store,
        transactions("F1", "w", 8, NOW)
        + transactions("F2", "w", 8, NOW)
        # v at F1: only its 2 overdue ones (its feed SYS_C is not backfilling at F1).
        + transactions("F1", "v", 0, NOW),
    )
    with Receiver() as receiver:
        monkeypatch.setenv("TEST_HOOK_URL", receiver.url)

        def cycle(at: int) -> None:
            notifier = ChannelNotifier(CONFIG, store, sleep=lambda s: None)
            evaluate_all(store, CONFIG, notifier, now=when(at))
            notifier.close()

        cycle(NOW)
        alerts = _alerts(store)
        for rule in ("slo_burn_rate", "overdue"):
            held = alerts[(rule, "w", "F1")]
            assert (held.state, held.annotations["held"]) == ("pending", W_F1)
            assert alerts[(rule, "w", "F2")].state == "firing"
            assert "held" not in alerts[(rule, "w", "F2")].annotations
        assert alerts[("slo_burn_rate", "w", "F2")].value == pytest.approx(20.0)
        assert alerts[("overdue", "v", "F1")].state == "firing"
        assert alerts[("overdue", "w", "F1")].annotations["overdue"] == "2"
        paged = sorted(
            (a["labels"]["rule"], a["labels"]["workflow"], a["labels"]["facility"])
            for body in receiver.bodies()
            for a in body["alerts"]  # type: ignore[attr-defined]
        )
        assert paged == [
            ("overdue", "v", "F1"),
            ("overdue", "w", "F2"),
            ("slo_burn_rate", "w", "F2"),
        ]

        # 61 s later the backlog left the 2-minute window: the held alerts fire now.
        cycle(NOW + 61 * NS)
        alerts = _alerts(store)
        for rule in ("slo_burn_rate", "overdue"):
            fired = alerts[(rule, "w", "F1")]
            assert (fired.state, fired.starts_at) == ("firing", when(NOW + 61 * NS))
            assert "held" not in fired.annotations
        assert alerts[("slo_burn_rate", "w", "F1")].value == pytest.approx(20.0)
        assert len(receiver.posts) == 5
        assert {
            (a["labels"]["rule"], a["labels"]["facility"])
            for body in receiver.bodies()[3:]
            for a in body["alerts"]  # type: ignore[attr-defined]
        } == {("slo_burn_rate", "F1"), ("overdue", "F1")}

        # A backlog now reaches SYS_A at F2, whose alerts already fire: they carry on.
        store.insert("events", COLUMNS, events("a2-more", 12, "SYS_A", "F2", NOW + 90 * NS, DAY))
        cycle(NOW + 2 * MINUTE)
        alerts = _alerts(store)
        for rule in ("slo_burn_rate", "overdue"):
            carried = alerts[(rule, "w", "F2")]
            assert carried.state == "firing" and "held" not in carried.annotations
        assert len(receiver.posts) == 5


def test_a_hold_ends_after_max_hold_while_the_backlog_goes_on(clean: Store, monkeypatch) -> None:
    store = clean
    insert_transactions(store, transactions("F2", "v", 0, NOW))
    with Receiver() as receiver:
        monkeypatch.setenv("TEST_HOOK_URL", receiver.url)

        def cycle(at: int) -> str:
            # SYS_C at F2 keeps receiving a day-old backlog, 10 events a cycle.
            store.insert("events", COLUMNS, events(f"c{at}-", 10, "SYS_C", "F2", at, DAY))
            notifier = ChannelNotifier(CONFIG, store, sleep=lambda s: None)
            evaluate_all(store, CONFIG, notifier, now=when(at))
            notifier.close()
            [alert] = list_alerts(store)
            return str(alert.state)

        assert cycle(NOW) == "pending"
        assert cycle(NOW + 5 * MINUTE - NS) == "pending"
        assert receiver.posts == []
        assert cycle(NOW + 5 * MINUTE) == "firing"  # max_hold 5m since it became pending
        [page] = receiver.bodies()
        assert page["alerts"][0]["labels"]["facility"] == "F2"  # type: ignore[index]


def _live_config() -> SlasConfig:
    """The same, judged by the real clock, with a 10-second window (receipts age out
    within the test)."""
    return config(
        YAML.replace("window: 2m, min_events: 10", "window: 10s, min_events: 10").replace(
            "{name: hook, type: webhook, url_env: TEST_HOOK_URL}", "{name: log, type: log}"
        )
    )


@pytest.fixture
def live(clean: Store) -> Iterator[tuple[Store, SlasConfig, str]]:
    """Transactions judged by the real clock, and the API in process."""
    store, now = clean, time.time_ns()
    insert_transactions(store, transactions("F1", "w", 8, now) + transactions("F2", "w", 8, now))
    cfg = _live_config()
    runtime = make_runtime(store, config=cfg)
    port = free_port()
    app = build_api(runtime, [build_router(runtime)])
    with InProcess([HttpComponent("api", app, "127.0.0.1", port, "API")]):
        yield store, cfg, f"http://127.0.0.1:{port}/api/v1"
    runtime.writer.close()


def backlog_now(store: Store) -> None:
    """12 events of a 3-day-old backlog from SYS_A at F1, 12 live ones from SYS_A at F2,
    received now (real clock)."""
    now = time.time_ns()
    store.insert(
        "events",
        COLUMNS,
        [
            *events("a1-old", 12, "SYS_A", "F1", now, 3 * DAY),
            *events("a2-live", 12, "SYS_A", "F2", now, NS),
        ],
    )


LIVE_F1 = (
    "SYS_A at F1 (12 of 12 events received in the last 10s were"
    " sent 15m or more before, the oldest 3d ago)"
)


def test_the_slos_api_says_what_is_held(live) -> None:
    store, _, api = live
    backlog_now(store)
    body = httpx.get(f"{api}/slos", headers=AUTH, timeout=60).json()
    [feed] = body["backfilling"]
    assert (feed["system"], feed["facility"], feed["received"], feed["lagging"]) == (
        "SYS_A",
        "F1",
        12,
        12,
    )
    held = {i["group"]["facility"]: i["held"] for i in body["items"]}
    assert held["F1"] == (
        f"backlog arriving from {LIVE_F1}; new burn-rate, overdue and unmatched alerts of w"
        " at F1 wait until it is in (at most 5m)"
    )
    assert held["F2"] is None and held["F3"] is None  # F3: no data, nothing to hold
    detail = httpx.get(f"{api}/slos/w_e2e", headers=AUTH, timeout=60).json()
    assert [f["facility"] for f in detail["backfilling"]] == ["F1"]
    assert {i["group"]["facility"]: i["held"] for i in detail["items"]} == held


def test_the_server_log_says_when_holding_starts_and_stops(live, caplog) -> None:
    store, cfg, _ = live
    loop = EvaluationLoop(make_runtime(store, config=cfg))
    backlog_now(store)
    with caplog.at_level(logging.INFO, logger="stitchboard.alerts"):
        loop.run_once()
        started = [r.getMessage() for r in caplog.records if "backlog" in r.getMessage()]
        assert started == [
            "new burn-rate, overdue and unmatched alerts of the workflows these feeds serve"
            f" held (at most 5m): backlog arriving from {LIVE_F1}"
        ]
        held = [a for a in list_alerts(store) if a.labels["facility"] == "F1"]
        assert {(a.rule, a.state) for a in held} == {
            ("slo_burn_rate", "pending"),
            ("overdue", "pending"),
        }
        # The feed stops receiving its backlog (its receipts gone from the window, as
        # they would be once the window passed them).
        store.command(f"TRUNCATE TABLE {store.table('events')}")
        assert backlog_rows(store, cfg.alerts.backfill, time.time_ns()) == []
        loop.run_once()
        loop.run_once()  # still none: logged once
    stopped = [r.getMessage() for r in caplog.records if "no longer held" in r.getMessage()]
    assert len(stopped) == 1 and stopped[0].startswith(
        "alerts no longer held for a backlog: no feed is receiving one"
    )
    fired = [a for a in list_alerts(store) if a.labels["facility"] == "F1"]
    assert {(a.rule, a.state) for a in fired} == {
        ("slo_burn_rate", "firing"),
        ("overdue", "firing"),
    }
    loop.notifier.close()
