"""Health lists the facility names events were sent with that slas.yaml does not declare."""

from __future__ import annotations

from stitchboard.api import undeclared_facilities
from stitchboard.events import EVENT_COLUMNS, Event
from tests.support import make_runtime


def test_health_lists_undeclared_facility_names_with_counts(store) -> None:
    runtime = make_runtime(store)
    try:
        rows = [
            Event(
                event_id=f"u{n}",
                event_time=n + 1,
                observed_time=n + 1,
                source_kind="span",
                facility=name,
            ).row()
            for n, name in enumerate(["NMC01", "NMC", "ATLANTIS", "ATLANTIS", "ELSEWHERE", ""])
        ]
        store.insert("events", EVENT_COLUMNS, rows)
        # Declared ids and aliases are not listed; events with no facility neither.
        assert undeclared_facilities(runtime) == [
            {"name": "ATLANTIS", "events": 2},
            {"name": "ELSEWHERE", "events": 1},
        ]
    finally:
        runtime.writer.close()
