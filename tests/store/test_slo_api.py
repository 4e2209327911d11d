"""``/api/v1/slos`` over real HTTP counts from the SLI rollup, caught up on each request.

Known transactions are placed relative to the real clock (the API judges at the
moment of the request), well away from minute and window edges; every figure is
worked out by hand, and the API's equals a scan of ``transactions`` at the same
data: before the rollup was ever built (the API scans), after the evaluation built
it, and after new versions were written that no evaluation has seen yet.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import correlator.schema  # noqa: F401 - registers the transactions table's migrations
from alerts import refresh_rollup, slo_report
from alerts.api import build_router, jsonable
from stitchboard.api import build_api
from stitchboard.components import HttpComponent
from stitchboard.store import Store
from tests.alerts_helpers import (
    HOUR,
    MINUTE,
    NS,
    config,
    insert_transactions,
    migrate_alerts,
    tx,
)
from tests.support import AUTH, InProcess, free_port, make_runtime

CONFIG = config()


def _versioned(row: tuple[object, ...]) -> tuple[object, ...]:
    """A row written now: a version above every earlier one, as the correlator writes."""
    return (*row[:-2], time.time_ns(), row[-1])


@pytest.fixture(scope="module")
def api(store: Store) -> Iterator[tuple[str, Store]]:
    migrate_alerts(store)
    for table in ("transactions", "slo_ledger", "slo_rollup", "slo_rollup_marks"):
        store.command(f"TRUNCATE TABLE {store.table(table)}")
    runtime = make_runtime(store, config=CONFIG)
    port = free_port()
    app = build_api(runtime, [build_router(runtime)])
    with InProcess([HttpComponent("api", app, "127.0.0.1", port, "API")]):
        yield f"http://127.0.0.1:{port}/api/v1", store
    runtime.writer.close()


def _get(url: str, **params: Any) -> dict[str, Any]:
    response = httpx.get(url, params=params, headers=AUTH, timeout=60)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _e2e(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {i["group"]["facility"]: i for i in body["items"] if i["slo"] == "w_e2e"}


def _scan(store: Store) -> list[dict[str, Any]]:
    report = slo_report(store, CONFIG, dt.datetime.now(dt.UTC))
    # No feed receives a backlog here: nothing is held.
    return [
        {**{k: v for k, v in jsonable(s).items() if k != "window_counts"}, "held": None}
        for s in report
    ]


def test_figures_from_the_rollup_equal_the_scan_and_follow_new_writes(
    api: tuple[str, Store],
) -> None:
    url, store = api
    # The API judges at the moment of the request: rows are placed relative to now (taken
    # here, not at import: a suite runs for minutes), half a minute into its minute.
    N = time.time_ns() // MINUTE * MINUTE + 30 * NS  # noqa: N806
    insert_transactions(
        store,
        [
            tx("a1", "F1", "complete", now=N, end=N - 2 * HOUR),  # good
            tx("a2", "F1", "late", level="breach", now=N, end=N - 3 * HOUR, amount="100.00"),
            # open past its breach deadline 40 minutes ago: overdue from that moment
            tx(
                "a3",
                "F1",
                "in_progress",
                now=N,
                last=N - HOUR,
                breach=N - 40 * MINUTE,
                amount="250.50",
            ),
            tx("a4", "F1", "in_progress", now=N, last=N - HOUR, breach=N + 2 * HOUR),  # not due
            tx("a5", "F1", "failed", now=N, last=N - 5 * HOUR),
            tx("b1", "F2", "complete", now=N, end=N - HOUR),  # good
        ],
    )

    # Before any evaluation the rollup was never built: the API scans, and says so.
    before = time.time()
    first = _get(f"{url}/slos")
    assert first["source"] == "transactions"
    assert first["correlator_pending_events"] is None  # no correlator in this server
    f1 = _e2e(first)["F1"]
    # F1: a1 good; a2 late; a3 overdue; a5 failed; a4 not yet due -> 1 of 4.
    assert (f1["good"], f1["late"], f1["overdue"], f1["failed"], f1["total"]) == (1, 1, 1, 1, 4)
    assert f1["compliance"] == pytest.approx(0.25)
    assert f1["budget_remaining"] == pytest.approx(1 - 0.75 / 0.1)  # -6.5
    assert f1["amount_at_risk"] == "350.50"
    assert f1["status"] == "breach"
    # Judged within 48 minutes: only a3 (bad); within 2h24m: a1 good, a3 bad.
    assert f1["burn_rates"]["48m"] == pytest.approx(10.0)
    assert f1["burn_rates"]["2h24m"] == pytest.approx(5.0)
    assert f1["burn_rates"]["12m"] is None
    f2, f3 = _e2e(first)["F2"], _e2e(first)["F3"]
    assert (f2["good"], f2["total"], f2["compliance"]) == (1, 1, 1.0)
    assert (f3["status"], f3["total"], f3["compliance"]) == ("no_data", 0, None)
    assert first["items"] == _scan(store)

    # The evaluation builds the rollup; from then on the API counts from it.
    assert refresh_rollup(store, list(CONFIG.slos)).rebuilt
    second = _get(f"{url}/slos")
    assert second["source"] == "rollup"
    assert dt.datetime.fromisoformat(second["as_of"]).timestamp() >= before
    assert second["items"] == first["items"]

    # New versions no evaluation has seen: a4 completes on time, a5 is deleted (merged
    # away), and F2 gets a late transaction with $40 at risk.
    insert_transactions(
        store,
        [
            _versioned(tx("a4", "F1", "complete", now=N, end=N - 20 * MINUTE)),
            _versioned(tx("a5", "F1", "failed", now=N, last=N - 5 * HOUR, deleted=1)),
            _versioned(
                tx("b2", "F2", "late", level="breach", now=N, end=N - 30 * MINUTE, amount="40.00")
            ),
        ],
    )
    written = time.time()
    third = _get(f"{url}/slos")
    assert third["source"] == "rollup"
    assert dt.datetime.fromisoformat(third["as_of"]).timestamp() >= written
    f1, f2 = _e2e(third)["F1"], _e2e(third)["F2"]
    # F1: a1, a4 good; a2 late; a3 overdue -> 2 of 4; budget 1 - 0.5 / 0.1 = -4.
    assert (f1["good"], f1["late"], f1["overdue"], f1["failed"], f1["total"]) == (2, 1, 1, 0, 4)
    assert f1["compliance"] == pytest.approx(0.5)
    assert f1["budget_remaining"] == pytest.approx(-4.0)
    assert f1["burn_rates"]["48m"] == pytest.approx(5.0)  # a3 bad, a4 good
    # F2: b1 good, b2 late ($40).
    assert (f2["good"], f2["late"], f2["total"], f2["amount_at_risk"]) == (1, 1, 2, "40.00")
    assert third["items"] == _scan(store)
    # A facility alias filters like an id; the figures are the same.
    only = _get(f"{url}/slos", facility="F2")
    assert [i["group"]["facility"] for i in only["items"]] == ["F2"]

    # The detail: the same figures, and a per-minute series with a point where a
    # transaction was judged (the minute it falls in) and None elsewhere.
    detail = _get(f"{url}/slos/w_e2e", facility="F1", hours=6, step_minutes=1)
    assert detail["source"] == "rollup"
    [item] = detail["items"]
    assert {k: v for k, v in item.items() if k != "series"} == _e2e(third)["F1"]
    points = {
        dt.datetime.fromisoformat(p["time"]): p["compliance"]
        for p in item["series"]
        if p["compliance"] is not None
    }

    def minute(ns: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(ns // MINUTE * 60, dt.UTC)

    assert points == {
        minute(N - 3 * HOUR): 0.0,  # a2 late
        minute(N - 2 * HOUR): 1.0,  # a1 good
        minute(N - 40 * MINUTE): 0.0,  # a3 overdue
        minute(N - 20 * MINUTE): 1.0,  # a4 good
    }
    assert len(item["series"]) in (360, 361)


def test_a_reader_scans_while_the_state_lock_is_held(api: tuple[str, Store]) -> None:
    """A rebuild in progress holds the lock: a reader does not wait for it, it scans."""
    from alerts import slo_snapshot
    from alerts.repository import STATE_LOCK

    _, store = api
    with STATE_LOCK, slo_snapshot(store, list(CONFIG.slos), wait_s=0.1) as counted:
        assert counted.source == "transactions"
        scanned = slo_report(store, CONFIG, counted.as_of, relation=counted.relation)
    assert scanned == slo_report(store, CONFIG, counted.as_of)
    # Free again (and the rollup built): the reader counts from the rollup, then releases
    # the lock.
    refresh_rollup(store, list(CONFIG.slos))
    with slo_snapshot(store, list(CONFIG.slos)) as counted:
        assert counted.source == "rollup"
    assert STATE_LOCK.acquire(timeout=1)
    STATE_LOCK.release()
