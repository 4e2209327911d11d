"""Two times per hop: when the business event occurred and when its message was sent,
kept on the event by every decoder through the one row builder."""

from __future__ import annotations

from collector.hl7.extract import Hl7Extractor
from stitchboard.config import load_config
from stitchboard.events import EVENT_COLUMNS, Event, event_row
from stitchboard.phi import Pseudonymizer
from tests.correlator_helpers import MINUTE, ROOT, at

CONFIG = load_config(ROOT / "slas.yaml")
EXTRACT = Hl7Extractor(CONFIG, Pseudonymizer(b"test-key-0123456789abcdef"))


def adt(msh7: str) -> str:
    # Discharge documented at 08:38 (EVN-6), the ADT sent at 09:00 (MSH-7), Chicago time.
    return "\r".join(
        (
            f"MSH|^~\\&|EHR_ADT|NMC|IFENGINE|NMC|{msh7}||ADT^A03^ADT_A03|CTL1|P|2.5.1",
            "EVN|A03|20260309090000|||NURSE|20260309083800",
            "PID|1||MRN1^^^NMC^MR||DOE^JANE||19700101|F|||||||||ACCT1",
            "PV1|1|I|4W^412^B^NMC|||||||||||||||||VN1",
        )
    )


def test_an_hl7_message_keeps_the_event_and_the_send_time() -> None:
    result = EXTRACT.extract(adt("20260309090000"), "mllp", 0)
    [event] = result.events
    assert (event.event_time, event.sent_time) == (
        at("2026-03-09T08:38:00-05:00"),
        at("2026-03-09T09:00:00-05:00"),
    )
    assert event.sent - event.event_time == 22 * MINUTE


def test_an_unreadable_send_time_is_the_event_time_not_a_refusal() -> None:
    result = EXTRACT.extract(adt("2026-03-09"), "mllp", 0)
    [event] = result.events
    assert not result.rejected
    assert (event.sent_time, event.sent) == (0, at("2026-03-09T08:38:00-05:00"))


def test_one_row_builder_in_column_order() -> None:
    row = event_row(event_id="e1", event_time=5, observed_time=9, source_kind="span")
    assert len(row) == len(EVENT_COLUMNS)
    values = dict(zip(EVENT_COLUMNS, row, strict=True))
    # No separate send time: the event time.
    assert (values["event_time"], values["sent_time"], values["keys"]) == (5, 5, {})
    event = Event(event_id="e1", event_time=5, observed_time=9, source_kind="hl7", sent_time=7)
    assert dict(zip(EVENT_COLUMNS, event.row(), strict=True))["sent_time"] == 7
