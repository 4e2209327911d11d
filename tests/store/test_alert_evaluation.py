"""Evaluation cycles on the embedded engine with a controllable clock and a real receiver.

Ground truth, worked by hand for the SLO ``w_e2e`` (objective 0.99, so a burn rate
is error rate / 0.01), F1 with 20 good transactions judged 50 to 31 minutes before
NOW and three open ones whose breach deadlines pass at NOW+1m, +2m, +3m:

- NOW: no bad transaction: nothing fires.
- NOW+1m: 1 bad of 21 = 4.76x over 1d and 2h (>= 3: the ticket pair) but 4.76x over 1h
  (< 14.4) and 6h (< 6): a ticket.
- NOW+2m: 2 of 22 = 9.09x over 6h, and 100x over 30m (only the two bad ones): the 6x
  page pair fires; 9.09x over 1h is still below 14.4.
"""

from __future__ import annotations

import datetime as dt

import pytest

from alerts import acknowledge, list_alerts, list_silences, silence, unsilence
from alerts.evaluation import evaluate_all
from alerts.notifier import ChannelNotifier
from stitchboard.store import Store
from tests.alerts_helpers import (
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

NOW = int(dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC).timestamp()) * NS

YAML = """\
slos:
  - name: w_e2e
    indicator: {workflow: w}
    objective: 0.99
    window: 30d
    alerting: {min_events: 5}
alerts:
  overdue: {count: 1000}
  idle_feeds: {discover_min_events: 1}
  route: {group_by: [rule, facility, slo], group_wait: 0s, group_interval: 1m,
          repeat_interval: 4h}
  channels:
    - {name: log, type: log}
    - {name: hook, type: webhook, url_env: TEST_HOOK_URL}
"""


@pytest.fixture
def clean(store: Store) -> Store:
    migrate_alerts(store)
    for table in (
        "transactions",
        "events",
        "alert_state",
        "silences",
        "notification_log",
        "slo_rollup_marks",
    ):
        store.command(f"TRUNCATE TABLE {store.table(table)}")
    good = [tx(f"g{i}", "F1", "complete", now=NOW, end=NOW - (50 - i) * MINUTE) for i in range(20)]
    due = [
        tx(
            f"d{i}",
            "F1",
            "in_progress",
            now=NOW,
            last=NOW - HOUR,
            breach=NOW + (i + 1) * MINUTE,
            amount="1000.00",
        )
        for i in range(3)
    ]
    insert_transactions(store, good + due)
    return store


def _burn(store: Store) -> list:
    return [a for a in list_alerts(store) if a.rule == "slo_burn_rate"]


def test_burn_rate_fires_when_the_ground_truth_says_and_pages_once(clean, monkeypatch) -> None:
    store, cfg = clean, config(YAML)
    with Receiver() as receiver:
        monkeypatch.setenv("TEST_HOOK_URL", receiver.url)

        def cycle(at_ns: int) -> None:
            notifier = ChannelNotifier(cfg, store, sleep=lambda s: None)
            evaluate_all(store, cfg, notifier, now=when(at_ns))
            notifier.close()

        cycle(NOW)
        assert _burn(store) == [] and receiver.posts == []
        cycle(NOW + MINUTE - NS)  # one second before the first deadline: still nothing
        assert _burn(store) == []
        cycle(NOW + MINUTE)
        [alert] = _burn(store)
        assert (alert.state, alert.severity) == ("firing", "ticket")
        assert alert.labels == {
            "rule": "slo_burn_rate",
            "slo": "w_e2e",
            "workflow": "w",
            "facility": "F1",
        }
        assert alert.value == pytest.approx((1 / 21) / 0.01)
        [first] = receiver.bodies()
        assert first["status"] == "firing"
        assert first["alerts"][0]["labels"]["severity"] == "ticket"
        assert "$1,000.00 at risk" in first["alerts"][0]["annotations"]["description"]
        assert first["alerts"][0]["annotations"]["summary"] == (
            "w_e2e: w at F1 burns its error budget 4.8x over 1d"
        )

        cycle(NOW + 2 * MINUTE)
        [alert] = _burn(store)
        assert alert.severity == "page"  # the same alert, escalated
        assert alert.value == pytest.approx((2 / 22) / 0.01)
        assert len(receiver.posts) == 2
        assert receiver.bodies()[1]["alerts"][0]["labels"]["severity"] == "page"

        acknowledge(store, alert.fingerprint, "dana", now=when(NOW + 2 * MINUTE + 30 * NS))
        assert _burn(store)[0].acknowledged_by == "dana"

        # A restart (new notifier, state from ClickHouse only): no second page.
        cycle(NOW + 3 * MINUTE)
        cycle(NOW + 4 * MINUTE)
        assert len(receiver.posts) == 2

        # The three complete in time after all: the condition clears, one resolve goes out.
        fixed = [tx(f"d{i}", "F1", "complete", now=NOW, end=NOW - 20 * MINUTE) for i in range(3)]
        store.insert("transactions", _columns(), [r[:-2] + (2, 0) for r in fixed])
        cycle(NOW + 10 * MINUTE)
        [alert] = _burn(store)
        assert alert.state == "resolved"
        assert alert.ends_at == when(NOW + 10 * MINUTE)
        assert len(receiver.posts) == 3
        resolve = receiver.bodies()[2]
        assert resolve["status"] == "resolved"
        assert resolve["alerts"][0]["endsAt"] == "2026-03-10T12:10:00Z"
        # The resolve says it cleared, with the figures at resolution (23 good of 23, over
        # the page pair that fired last: 6h and 30m), not those of the page.
        cleared = resolve["alerts"][0]["annotations"]
        assert cleared["summary"] == (
            "w_e2e: w at F1 cleared: burns its error budget 0.0x over 6h and 0.0x over 30m,"
            " under 6x"
        )
        assert cleared["description"] == (
            "Burn rate 0.0x over 6h and 0.0x over 30m; compliance 100.00% against 99.00%"
            " over 30d; 0 overdue, 0 late, 0 failed; $0.00 at risk"
        )
        assert (cleared["burn_rate"], cleared["compliance"], cleared["overdue"]) == (
            "0.00",
            "1.0000",
            "0",
        )
        assert cleared["amount_at_risk"] == "0.00"
        assert _burn(store)[0].annotations == cleared  # the API shows the same
        cycle(NOW + 20 * MINUTE)
        assert len(receiver.posts) == 3


def _columns() -> tuple[str, ...]:
    from tests.alerts_helpers import TX_COLUMNS

    return TX_COLUMNS


def test_an_idle_feed_fires_and_inhibits_the_burn_rate_alert_it_causes(clean) -> None:
    store, cfg = clean, config(YAML)
    # SYS_B (step b of w) at F1 last spoke 2 hours ago; SYS_A a minute ago.
    store.insert(
        "events",
        (
            "event_id",
            "event_time",
            "observed_time",
            "source_kind",
            "source",
            "facility",
            "system",
            "operation",
            "status",
        ),
        [
            (
                "e1",
                when(NOW - 2 * HOUR),
                when(NOW - 2 * HOUR),
                "otlp",
                "t",
                "F1",
                "SYS_B",
                "x",
                "ok",
            ),
            ("e2", when(NOW - MINUTE), when(NOW - MINUTE), "otlp", "t", "F1", "SYS_A", "x", "ok"),
        ],
    )
    result = evaluate_all(store, cfg, now=when(NOW + 2 * MINUTE))
    by_rule = {a.rule: a for a in list_alerts(store, ["firing"])}
    assert set(by_rule) == {"idle_feed", "slo_burn_rate"}
    idle = by_rule["idle_feed"]
    assert idle.labels == {"rule": "idle_feed", "system": "SYS_B", "facility": "F1"}
    assert idle.value == pytest.approx(2 * 3600 + 120)
    assert by_rule["slo_burn_rate"].inhibited and not idle.inhibited
    notified = [a.labels["rule"] for n in result.step.notices for a in n.alerts]
    assert notified == ["idle_feed"]


def test_silences_round_trip(clean) -> None:
    store = clean
    start = when(NOW)
    sid = silence(
        store,
        {"facility": "F1"},
        start,
        start + dt.timedelta(hours=2),
        "dana",
        "planned downtime",
        now=start,
    )
    [listed] = list_silences(store)
    assert (listed["id"], listed["matchers"], listed["author"]) == (sid, {"facility": "F1"}, "dana")
    assert listed["expired_by"] is None
    unsilence(store, sid, "lee", now=start + dt.timedelta(minutes=30))
    [expired] = list_silences(store)
    assert expired["expired_by"] == "lee"
    assert expired["ends_at"] == start + dt.timedelta(minutes=30)


def test_burn_rate_pages_wait_while_the_correlator_catches_up(clean, monkeypatch) -> None:
    """NOW+1m fires the ticket (module docstring) unless the correlator lags: then the
    alert is pending, says why, and nothing is sent; caught up, it fires and pages."""
    from alerts.progress import Correlation

    store, cfg = clean, config(YAML)
    behind, caught_up = Correlation(48_000, 40.0), Correlation(0, 0.4)
    with Receiver() as receiver:
        monkeypatch.setenv("TEST_HOOK_URL", receiver.url)

        def cycle(at_ns: int, correlation: Correlation) -> None:
            notifier = ChannelNotifier(cfg, store, sleep=lambda s: None)
            evaluate_all(store, cfg, notifier, now=when(at_ns), correlation=correlation)
            notifier.close()

        cycle(NOW + MINUTE, behind)
        [alert] = _burn(store)
        assert alert.state == "pending"
        assert alert.annotations["held"] == (
            "correlator catching up: events waited 40 s to be correlated, 48,000 still pending;"
            " burn-rate pages wait while that exceeds 10 s (at most 10 minutes)"
        )
        assert receiver.posts == []
        cycle(NOW + MINUTE + 15 * NS, caught_up)
        [alert] = _burn(store)
        assert (alert.state, alert.severity) == ("firing", "ticket")
        assert "held" not in alert.annotations
        [page] = receiver.bodies()
        assert page["alerts"][0]["startsAt"] == "2026-03-10T12:01:15Z"
