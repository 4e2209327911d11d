"""The correlator's metrics the alerts stage reads its lag from, as the real correlator
registers and moves them (the names are the ``/metrics`` contract between them)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from alerts.progress import Correlation, RegistryProgress
from correlator import CorrelatorService
from stitchboard.store import Store
from tests.alerts_helpers import config


def test_the_real_correlator_registers_what_the_reading_needs(store: Store) -> None:
    registry = CollectorRegistry()
    service = CorrelatorService(store, config(""), registry)
    progress = RegistryProgress(registry)
    assert progress.read(10.0) == Correlation(0, 0.0)
    # What a step records: the queue left, and each batch's wait.
    service.metrics.pending.set(1200)
    service.metrics.freshness.observe(14.0)
    reading = progress.read(25.0)
    assert reading == Correlation(1200, 14.0) and reading.catching_up
