"""The correlator reads back only the attributes its rules test, as they were sent: a
present empty value is kept, an absent one stays absent, every other name is left out."""

from __future__ import annotations

from decimal import Decimal

from correlator.repository import (
    InsertCursor,
    read_events,
    read_events_by_id,
    read_events_page,
)
from stitchboard.events import EVENT_COLUMNS, Event

NS = 1_000_000_000
WANTED = ["charge.type", "po.type"]
SENT = {
    "r-both": {"charge.type": "implant", "po.type": "bill-only", "note": "x"},
    "r-empty": {"charge.type": "", "note": "y"},
    "r-none": {"note": "z"},
}
EXPECTED = {
    "r-both": {"charge.type": "implant", "po.type": "bill-only"},
    "r-empty": {"charge.type": ""},
    "r-none": {},
}


def _store_events(store) -> None:
    rows = [
        Event(
            event_id=event_id,
            event_time=(100 + i) * NS,
            observed_time=200 * NS,
            source_kind="span",
            system="PERIOP",
            operation="implant.used",
            amount=Decimal("12.50") if i == 0 else None,
            keys={"visit": f"V{i}"},
            attributes=attributes,
        ).row()
        for i, (event_id, attributes) in enumerate(SENT.items())
    ]
    store.insert("events", EVENT_COLUMNS, rows)


def test_every_reader_gives_the_wanted_attributes_as_sent(store) -> None:
    _store_events(store)
    scanned = {e.event_id: e for block in read_events(store, attributes=WANTED) for e in block}
    by_id = read_events_by_id(store, list(SENT), attributes=WANTED)
    paged, _ = read_events_page(store, InsertCursor(0), attributes=WANTED)
    for found in (scanned, by_id, {e.event_id: e for e in paged}):
        assert {i: found[i].attributes for i in SENT} == EXPECTED
        assert found["r-both"].amount == Decimal("12.50")
        assert found["r-none"].keys == {"visit": "V2"}
    without = {e.event_id: e for block in read_events(store) for e in block}
    assert {i: without[i].attributes for i in SENT} == {i: {} for i in SENT}
