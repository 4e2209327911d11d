"""The events correlation reads carry exactly what was read, field by field."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from correlator.repository import correlation_event, events_from_payload, hops_payload
from stitchboard.events import Event


def test_correlation_events_carry_what_was_read():
    event = correlation_event(
        event_id="e1",
        event_time=100,
        sent_time=90,
        facility="NMC01",
        system="EPIC",
        operation="ADT^A03",
        status="ok",
        amount=Decimal("12.50"),
        keys={"visit": "V1"},
        attributes={"charge.type": "implant"},
    )
    assert dataclasses.asdict(event) == dataclasses.asdict(
        Event(
            event_id="e1",
            event_time=100,
            observed_time=100,
            source_kind="",
            source="",
            facility="NMC01",
            system="EPIC",
            operation="ADT^A03",
            status="ok",
            status_message="",
            duration_ns=0,
            amount=Decimal("12.50"),
            trace_id="",
            span_id="",
            keys={"visit": "V1"},
            attributes={"charge.type": "implant"},
            sent_time=90,
        )
    )
    assert event.sent == 90


def test_a_send_time_equal_to_the_event_time_is_not_kept_apart():
    event = correlation_event(
        event_id="e2",
        event_time=100,
        sent_time=100,
        facility="",
        system="S",
        operation="op",
        status="unset",
        amount=None,
        keys={},
        attributes={},
    )
    assert event.sent_time == 0 and event.sent == 100


def test_a_payload_gives_back_the_events_it_was_made_of():
    events = [
        correlation_event(
            event_id=f"e{i}",
            event_time=100 + i,
            sent_time=90 + i * 10,
            facility="NMC01",
            system="ERP",
            operation="gl.journal.post",
            status="ok",
            amount=None if i else Decimal("-3.10"),
            keys={"journal": f"J{i}"},
            attributes={},
        )
        for i in range(3)
    ]
    assert events_from_payload(hops_payload(events)) == {e.event_id: e for e in events}
