"""The events correlation reads carry exactly what was read, field by field."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from types import MappingProxyType

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


def test_a_payload_keeps_mappings_text_and_amounts_as_they_were():
    """Keys held in a read-only mapping, text outside ASCII (and JSON's line
    separators), amounts with trailing zeros or an exponent: all come back equal."""
    event = correlation_event(
        event_id="e-1",
        event_time=100,
        sent_time=100,
        facility="NMC01",
        system="EHR",
        operation="ADT^A03",
        status="ok",
        amount=Decimal("1E+2"),
        keys=MappingProxyType({"visit": 'V-\u00e9\u2028"1'}),
        attributes={"note": "Jos\u00e9"},
    )
    payload = hops_payload([event])
    assert '"1E+2"' in payload
    back = events_from_payload(payload)["e-1"]
    assert back == event and back.amount == Decimal("100")
    assert back.keys == {"visit": 'V-\u00e9\u2028"1'}


def test_a_payload_written_by_the_standard_library_encoder_still_reads():
    """``transaction_hops`` rows written before the payload encoder changed (ASCII
    escapes, amounts as strings) read back as the same events."""
    stored = json.dumps(
        [["e-2", 200, 0, "NMC01", "PA", "charge.post", "ok", "-3.10", {"mrn": "P\u00e9"}, {}]]
    )
    assert "\\u00e9" in stored
    back = events_from_payload(stored)["e-2"]
    assert back.amount == Decimal("-3.10") and back.keys == {"mrn": "P\u00e9"}
    assert back.sent_time == 0 and back.sent == 200
