"""Retention on the embedded store: old rows go, open, failed and held transactions stay.

Stored: two discharges at Northside on 2026-03-09 (13 hops: V1 has 7, V2 6 and
shares V1's GL journal), two old hops no workflow uses, one hop from yesterday.
Both discharges are complete; each final bill also opens a claim_to_cash
transaction that is still open, so the two final-bill hops are protected.
"""

from __future__ import annotations

import datetime as dt

import pytest

from correlator.service import CorrelatorService
from retention.holds import list_holds, release_hold, set_hold
from retention.plan import plan, prune
from stitchboard.errors import ConfigError
from stitchboard.events import EVENT_COLUMNS
from tests.correlator_helpers import HOUR, at, discharge_chain, ev, shipped_config

CONFIG = shipped_config()
T0 = at("2026-03-09T09:00:00-05:00")
NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
RECENT = int((NOW - dt.timedelta(days=1)).timestamp()) * 1_000_000_000
POLICY = {"events": 30}


@pytest.fixture(scope="module")
def stored(store):
    second = [e for e in discharge_chain(T0 + HOUR, 2) if e.system != "ERP_GL"]
    loose = [
        ev("XSYS", "PING", T0, tag="u1", ping="1"),
        ev("XSYS", "PING", T0, tag="u2", ping="2"),
        ev("XSYS", "PING", RECENT, tag="u3", ping="3"),
    ]
    events = discharge_chain(T0, 1) + second + loose
    store.insert("events", EVENT_COLUMNS, [e.row() for e in events])
    CorrelatorService(store, CONFIG).full_pass()
    statuses = store.rows(
        f"SELECT workflow, status FROM {store.table('transactions')} FINAL"
        " WHERE deleted = 0 ORDER BY workflow, status"
    )
    assert [w for w, _ in statuses] == ["claim_to_cash"] * 2 + ["discharge_to_revenue"] * 2
    assert all(s in ("in_progress", "overdue") for w, s in statuses if w == "claim_to_cash")
    assert all(s == "complete" for w, s in statuses if w == "discharge_to_revenue")
    return store


def v1_transaction(store) -> str:
    return store.scalar(
        f"SELECT transaction_id FROM {store.table('transaction_keys')}"
        " WHERE value = 'V1' AND workflow = 'discharge_to_revenue'"
    )


def test_plan_and_prune_keep_open_and_held_transactions(stored):
    store = stored
    [before] = plan(store, POLICY, NOW)
    assert (before.table, before.older, before.kept, before.to_delete) == ("events", 15, 2, 13)
    assert before.cutoff == dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    assert store.scalar(f"SELECT count() FROM {store.table('events')} FINAL") == 16  # unchanged
    held = v1_transaction(store)
    set_hold(store, held, "records request 2026-114", "auditor-ana")
    assert [h.transaction_id for h in list_holds(store)] == [held]
    [with_hold] = plan(store, POLICY, NOW)
    # V1's 7 hops (its final bill among them) plus V2's final bill.
    assert (with_hold.older, with_hold.kept, with_hold.to_delete) == (15, 8, 7)
    prune(store, POLICY, NOW)
    assert store.scalar(f"SELECT count() FROM {store.table('events')} FINAL") == 9
    [after] = plan(store, POLICY, NOW)
    assert (after.older, after.kept, after.to_delete) == (8, 8, 0)
    release_hold(store, held)
    assert list_holds(store) == []


def test_unknown_tables_and_bad_days_are_refused(stored):
    with pytest.raises(ConfigError) as info:
        plan(stored, {"audit_log": 30, "events": 0}, NOW)
    assert "retention_days.audit_log: unknown table" in str(info.value)
    assert "retention_days.events: must be at least 1 day" in str(info.value)
