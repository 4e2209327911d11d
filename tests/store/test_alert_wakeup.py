"""The evaluation loop of ``stitchboard serve`` runs an extra cycle when a high-value
deadline passes: the page does not wait for the next regular cycle (10 minutes here).

Real scheduler, real webhook receiver, the real clock."""

from __future__ import annotations

import asyncio
import time

import pytest

from alerts import EvaluationLoop
from stitchboard.store import Store
from tests.alerts_helpers import NS, Receiver, config, insert_transactions, migrate_alerts, tx
from tests.support import make_runtime

ALERTS = """\
alerts:
  evaluation_interval: 10m
  overdue: {{amount: 1000, count: null}}
  idle_feeds: {{enabled: false}}
  error_spike: {{enabled: false}}
  unmatched: {{enabled: false}}
  route: {{group_by: [rule, facility, workflow], group_wait: 0s}}
  channels:
    - {{name: hook, type: webhook, url: "{url}", retries: 0}}
"""


@pytest.fixture
def clean(store: Store) -> Store:
    migrate_alerts(store)
    for table in ("transactions", "alert_state", "notification_log", "slo_rollup_marks"):
        store.command(f"TRUNCATE TABLE {store.table(table)}")
    return store


def _overdue_alerts(receiver: Receiver) -> list[dict[str, object]]:
    return [
        alert
        for body in receiver.bodies()
        for alert in body["alerts"]  # type: ignore[index]
        if alert["labels"]["rule"] == "overdue"
    ]


@pytest.mark.slow
def test_a_passing_deadline_gets_its_own_cycle(clean: Store) -> None:
    store = clean
    with Receiver() as receiver:
        runtime = make_runtime(store, config=config(ALERTS.format(url=receiver.url)))
        now = time.time_ns()
        deadline = now + 4 * NS
        insert_transactions(
            store,
            [
                tx("soon", "F1", "in_progress", now=now, breach=deadline, amount="5000.00"),
                tx("cheap", "F2", "in_progress", now=now, breach=now + 2 * NS, amount="10.00"),
            ],
        )
        loop = EvaluationLoop(runtime)
        event_loop = asyncio.new_event_loop()
        event_loop.run_until_complete(loop.start())  # the first cycle runs right away
        try:
            give_up = time.time() + 60
            while not _overdue_alerts(receiver) and time.time() < give_up:
                time.sleep(0.1)
        finally:
            event_loop.run_until_complete(loop.stop())
            event_loop.close()
            runtime.writer.close()
    [alert] = _overdue_alerts(receiver)
    # Paged by a cycle that started after the deadline (the regular one is 10 minutes on).
    assert alert["labels"]["facility"] == "F1"
    started = alert["startsAt"]
    assert isinstance(started, str)
    from datetime import datetime

    assert datetime.fromisoformat(started.replace("Z", "+00:00")).timestamp() * NS >= deadline
