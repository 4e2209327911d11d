"""Provenance: a message received over MLLP and later re-imported from a file keeps its
first source; every delivery is recorded with its source and time."""

from __future__ import annotations

from correlator.queries import events_by_id
from stitchboard.events import EVENT_COLUMNS, Event

NS = 1_000_000_000
T1 = 1_773_000_000 * NS


def test_the_first_source_stays_and_every_later_one_is_listed(store) -> None:
    first = Event(
        event_id="prov-1",
        event_time=T1 - 60 * NS,
        observed_time=T1,
        source_kind="hl7",
        source="mllp:10.0.0.9",
        keys={"msg": "CTL-PROV-1"},
    )
    again = Event(
        event_id="prov-1",
        event_time=T1 - 60 * NS,
        observed_time=T1 + 3600 * NS,
        source_kind="hl7",
        source="file:adt-2026-03.hl7",
        keys={"msg": "CTL-PROV-1"},
    )
    store.insert("events", EVENT_COLUMNS, [first.row()])
    store.insert("events", EVENT_COLUMNS, [again.row()])
    store.insert("events", EVENT_COLUMNS, [first.row()])  # a resend over MLLP
    [row] = events_by_id(store, ["prov-1"])
    assert (row["source_kind"], row["source"]) == ("hl7", "mllp:10.0.0.9")
    assert row["sources"] == [
        {"source_kind": "hl7", "source": "mllp:10.0.0.9", "received_time": "2026-03-08T20:00:00Z"},
        {
            "source_kind": "hl7",
            "source": "file:adt-2026-03.hl7",
            "received_time": "2026-03-08T21:00:00Z",
        },
    ]
