"""Unmatched fan-in events in the store: listed with their age, found by key and age,
gone from the listing once a carrier arrives, and rebuilt by a full pass."""

from __future__ import annotations

from correlator.service import CorrelatorService
from correlator.unmatched import UnmatchedFilter, list_unmatched
from stitchboard.events import EVENT_COLUMNS
from stitchboard.writer import Batch
from tests.correlator_helpers import DAY, HOUR, at, ev, shipped_config

CONFIG = shipped_config()
T0 = at("2026-03-09T09:00:00-05:00")
NOW = T0 + 2 * DAY


def insert(store, events) -> None:
    store.insert("events", EVENT_COLUMNS, [e.row() for e in events])


def test_unmatched_journals_are_listed_aged_found_and_cleared(store) -> None:
    old = ev("ERP_GL", "gl.journal.post", T0, charge_batch="B-OLD", journal="J-OLD")
    new = ev("ERP_GL", "gl.journal.post", T0 + DAY, charge_batch="B-NEW", journal="J-NEW")
    insert(store, [old, new])
    service = CorrelatorService(store, CONFIG)
    service.full_pass()
    listed = list_unmatched(store, UnmatchedFilter(), NOW)
    assert [(u["event_id"], u["age_seconds"]) for u in listed] == [
        (old.event_id, 2 * DAY / 1e9),
        (new.event_id, DAY / 1e9),
    ]
    assert listed[0]["waiting_for"] == {"charge_batch": "B-OLD"}
    assert listed[0]["step"] == "gl_journal" and listed[0]["time"] == "2026-03-09T14:00:00Z"
    by_key = list_unmatched(store, UnmatchedFilter(key_values=("J-NEW",)), NOW)
    assert [u["event_id"] for u in by_key] == [new.event_id]
    older = list_unmatched(store, UnmatchedFilter(older_than_ns=36 * HOUR), NOW)
    assert [u["event_id"] for u in older] == [old.event_id]
    assert service.metrics.unmatched.labels("discharge_to_revenue")._value.get() == 2

    # The charge batch arrives: the journal joins its transaction and leaves the listing.
    charge = ev(
        "LAB", "DFT^P03", T0 - HOUR, visit="V1", account="A1", charge="C1", charge_batch="B-OLD"
    )
    insert(store, [charge])  # durable, as the writer reports it: the live path correlates it
    batch = Batch()
    batch.add("events", EVENT_COLUMNS, [charge.row()])
    service.on_batch(batch)
    service.step(NOW)
    assert [u["event_id"] for u in list_unmatched(store, UnmatchedFilter(), NOW)] == [new.event_id]

    # A fresh process rebuilds the same listing from the stored events.
    again = CorrelatorService(store, CONFIG)
    again.full_pass()
    assert [u["event_id"] for u in list_unmatched(store, UnmatchedFilter(), NOW)] == [new.event_id]
