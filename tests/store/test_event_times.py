"""The events table keeps a hop's send time beside its event time (migration 2), and the
correlator reads both back."""

from __future__ import annotations

from correlator.repository import read_events
from stitchboard.events import EVENT_COLUMNS, Event

NS = 1_000_000_000


def test_send_time_is_stored_read_back_and_defaults_to_the_event_time(store) -> None:
    sent = Event(
        event_id="t-sent",
        event_time=100 * NS,
        observed_time=200 * NS,
        source_kind="hl7",
        keys={"visit": "V1"},
        sent_time=130 * NS,
    )
    store.insert("events", EVENT_COLUMNS, [sent.row()])
    # A row written before the column existed (or by a writer that does not know it).
    older = sent.row()[: EVENT_COLUMNS.index("sent_time")]
    store.insert("events", EVENT_COLUMNS[:-1], [("t-old", *older[1:])])
    stored = dict(
        store.rows(
            f"SELECT event_id, toUnixTimestamp64Nano(sent_time) FROM {store.table('events')}"
            " WHERE event_id IN ('t-sent', 't-old')"
        )
    )
    assert stored == {"t-sent": 130 * NS, "t-old": 100 * NS}
    events = {e.event_id: e for block in read_events(store) for e in block}
    assert (events["t-sent"].sent_time, events["t-old"].sent_time) == (130 * NS, 0)
    assert events["t-old"].sent == 100 * NS
