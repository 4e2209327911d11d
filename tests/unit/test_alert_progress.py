"""The correlator's lag as the alerts stage reads it from the metrics registry (worked by
hand), against metrics registered under the names the correlator uses (pinned against
the real correlator in tests/store/test_alert_progress.py)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, Histogram

from alerts.progress import LAG_LIMIT_S, Correlation, RegistryProgress


def test_lag_is_the_mean_wait_since_the_last_reading_or_the_stall() -> None:
    registry = CollectorRegistry()
    progress = RegistryProgress(registry)
    assert progress.read(100.0) is None  # no correlator in this process: nothing held
    pending = Gauge("stitchboard_correlator_pending_events", "p", registry=registry)
    delay = Histogram("stitchboard_correlation_delay_seconds", "d", registry=registry)
    # Idle: nothing correlated, nothing pending.
    assert progress.read(100.0) == Correlation(0, 0.0)
    # Two batches correlated after waiting 1 s and 3 s: mean 2 s.
    delay.observe(1.0)
    delay.observe(3.0)
    assert progress.read(115.0) == Correlation(0, 2.0)
    # A backlog: 50,000 pending, batches of the next 15 s waited 12 s and 30 s: 21 s.
    pending.set(50_000)
    delay.observe(12.0)
    delay.observe(30.0)
    reading = progress.read(130.0)
    assert reading == Correlation(50_000, 21.0) and reading.catching_up
    assert reading.reason().startswith("correlator catching up: events waited 21 s")
    # Stalled: events pending, none correlated since 130 s: the lag is the stall, 25 s.
    assert progress.read(155.0) == Correlation(50_000, 25.0)
    # Drained: pending 0, the last batch waited 0.5 s.
    pending.set(0)
    delay.observe(0.5)
    caught_up = progress.read(170.0)
    assert caught_up == Correlation(0, 0.5) and not caught_up.catching_up


def test_the_limit_is_exclusive() -> None:
    assert not Correlation(1, LAG_LIMIT_S).catching_up
    assert Correlation(1, LAG_LIMIT_S + 0.1).catching_up
