"""The correlator thread outlives store errors: it backs off, logs once per streak, counts
every failure, and ends with the same transactions as if nothing had failed."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError
from prometheus_client import CollectorRegistry

from correlator.queries import TransactionFilter, list_transactions
from correlator.service import CorrelatorService
from stitchboard.errors import StoreUnavailable
from stitchboard.events import EVENT_COLUMNS
from stitchboard.store import Store
from stitchboard.writer import Batch
from tests.conftest import engine_url
from tests.correlator_helpers import DAY, discharge_chain, shipped_config

CONFIG = shipped_config()
T0 = 1_773_064_800 * 1_000_000_000  # 2026-03-09T14:00:00Z
LATER = T0 + 30 * DAY


class FailingStore(Store):
    """The same database, with failures scheduled on demand (then it recovers).

    ``stream_failures`` streams stop with an engine error after their first block;
    ``insert_failures`` inserts raise ``StoreUnavailable`` before writing anything;
    ``command_failures`` statements naming ``command_match`` fail with an engine error.
    """

    def __init__(self, database: str):
        super().__init__(engine_url(), database=database)
        self.stream_failures = 0
        self.insert_failures = 0
        self.command_failures = 0
        self.command_match = ""
        self._lock = threading.Lock()

    def _take(self, attribute: str) -> bool:
        with self._lock:
            left = getattr(self, attribute)
            if left:
                setattr(self, attribute, left - 1)
            return bool(left)

    def stream_rows(
        self,
        sql: str,
        parameters: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
    ) -> Iterator[Sequence[Sequence[Any]]]:
        failing = self._take("stream_failures")
        for block in super().stream_rows(sql, parameters, settings):
            yield block
            if failing:
                raise DatabaseError("simulated: the engine failed mid-stream")

    def command(self, sql: str, parameters: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        if self.command_match in sql and self._take("command_failures"):
            raise DatabaseError("simulated: the engine failed mid-statement")
        return super().command(sql, parameters, **kwargs)

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[object]],
        settings: dict[str, Any] | None = None,
    ) -> None:
        if rows and self._take("insert_failures"):
            raise StoreUnavailable("simulated: the store went away")
        super().insert(table, columns, rows, settings)


@pytest.fixture
def failing(store: Store) -> Iterator[FailingStore]:
    for table in ("events", "transactions", "transaction_keys"):
        store.command(f"TRUNCATE TABLE {store.table(table)}")
    flaky = FailingStore(store.database)
    yield flaky
    flaky.close()


def visits(store: Store) -> list[tuple[str, str]]:
    items, _ = list_transactions(
        store, TransactionFilter(workflow="discharge_to_revenue"), 100, LATER
    )
    return sorted((item["keys"]["visit"][0], item["status"]) for item in items)


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def failure_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "correlator.service" and r.levelno >= logging.WARNING
    ]


def test_a_store_failing_mid_pass_and_mid_step_is_survived(
    failing: FailingStore, caplog: pytest.LogCaptureFixture
) -> None:
    first = discharge_chain(T0, 1, batch="B1")
    failing.insert("events", EVENT_COLUMNS, [e.row() for e in first])
    # The startup pass (the SQL batch pass) fails first at its first write, then twice
    # after writing its first workflow's transactions, at the hand-over of lookup_hops.
    failing.insert_failures = 1
    failing.command_failures = 2
    failing.command_match = "lookup_hops"
    registry = CollectorRegistry()
    service = CorrelatorService(
        failing, CONFIG, registry, interval=0.01, retry_initial=0.01, retry_max=0.05
    )
    caplog.set_level(logging.INFO, logger="correlator.service")
    service.start()
    try:
        assert service.ready.wait(30), "the startup pass never completed"
        assert visits(failing) == [("V1", "complete")]
        assert registry.get_sample_value("stitchboard_correlator_failures_total") == 3
        # Three failures in a row are one streak: one warning, one recovery line.
        [warning] = failure_warnings(caplog)
        assert warning.startswith("correlator startup pass failed, retrying with backoff")
        assert "recovered after 3 failed attempts" in caplog.text

        # Live path: the write of a new batch fails once, then goes through.
        second = discharge_chain(T0 + DAY, 2, batch="B2")
        failing.insert("events", EVENT_COLUMNS, [e.row() for e in second])
        batch = Batch()
        batch.add("events", EVENT_COLUMNS, [e.row() for e in second])
        failing.insert_failures = 1
        service.on_batch(batch)
        assert wait_for(lambda: len(visits(failing)) == 2)
        assert visits(failing) == [("V1", "complete"), ("V2", "complete")]
        assert registry.get_sample_value("stitchboard_correlator_failures_total") == 4
        assert len(failure_warnings(caplog)) == 2  # a second streak logs again
    finally:
        service.stop()
    assert not service._thread or not service._thread.is_alive()
