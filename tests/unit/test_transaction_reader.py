"""``MemoryTransactions``: the in-memory ``TransactionReader`` other stages test against.

(tests/store/test_transaction_reader.py pins it to the ClickHouse reader.)
"""

from __future__ import annotations

from correlator import Flag, MemoryTransactions, Status, TransactionFilter, TransactionReader
from correlator.queries import decode_cursor
from tests.correlator_helpers import DAY, HOUR, MINUTE, at, discharge_chain, ev, shipped_config

CONFIG = shipped_config()
T0 = at("2026-03-09T09:00:00-05:00")
NOW = T0 + 60 * DAY  # past every deadline of these transactions

EVENTS = [
    *discharge_chain(T0, 1, batch="B1"),  # complete, every step on time
    # The engine ACK 21 min after the discharge: past its 15m breach -> late, breach.
    *discharge_chain(T0 + HOUR, 2, batch="B2", late_ack=20 * MINUTE),
    # V3: discharged and acknowledged, then nothing: overdue.
    ev("EHR_ADT", "ADT^A03", T0 + 2 * HOUR, msg="M3", visit="V3", account="A3", mrn="p3"),
    ev("IFENGINE", "ACK^A03", T0 + 2 * HOUR + MINUTE, msg="M3"),
    # V4: coding without an ACK or a charge before it: missing_step, and overdue.
    ev("EHR_ADT", "ADT^A03", T0 + 3 * HOUR, msg="M4", visit="V4", account="A4", mrn="p4"),
    ev("CODING", "BAR^P05", T0 + 3 * HOUR + DAY, visit="V4", account="A4"),
]


def visits(reader: TransactionReader, **where: object) -> list[tuple[str, str]]:
    items, _ = reader.list_transactions(
        TransactionFilter(workflow="discharge_to_revenue", **where),  # type: ignore[arg-type]
        100,
        NOW,
    )
    return [(item["keys"]["visit"][0], item["status"]) for item in items]


def test_statuses_flags_and_keys() -> None:
    reader = MemoryTransactions(CONFIG, EVENTS)
    # Newest first (by the earliest event).
    assert visits(reader) == [
        ("V4", "overdue"),
        ("V3", "overdue"),
        ("V2", "late"),
        ("V1", "complete"),
    ]
    assert visits(reader, status=Status.OVERDUE) == [("V4", "overdue"), ("V3", "overdue")]
    assert visits(reader, flag=Flag.MISSING_STEP) == [("V4", "overdue")]
    assert visits(reader, key_values=("C2a",)) == [("V2", "late")]
    assert visits(reader, since=T0 + HOUR, until=T0 + 3 * HOUR) == [
        ("V3", "overdue"),
        ("V2", "late"),
    ]
    [late] = reader.list_transactions(TransactionFilter(status="late"), 10, NOW)[0]
    assert (late["level"], late["amount"], late["event_count"]) == ("breach", "150.50", 7)


def test_pages_follow_the_cursor() -> None:
    reader = MemoryTransactions(CONFIG, EVENTS)
    where = TransactionFilter(workflow="discharge_to_revenue")
    first, cursor = reader.list_transactions(where, 3, NOW)
    assert [i["keys"]["visit"] for i in first] == [["V4"], ["V3"], ["V2"]]
    assert cursor is not None
    after = TransactionFilter(workflow="discharge_to_revenue", after=decode_cursor(cursor))
    rest, end = reader.list_transactions(after, 3, NOW)
    assert [i["keys"]["visit"] for i in rest] == [["V1"]]
    assert end is None


def test_detail_lists_steps_missed_deadlines_and_events() -> None:
    reader = MemoryTransactions(CONFIG, EVENTS)
    [late] = reader.list_transactions(TransactionFilter(key_values=("V2",)), 10, NOW)[0]
    detail = reader.get_transaction(late["id"], NOW)
    assert detail is not None
    assert [m["step"] for m in detail["missed"]] == ["engine_ack"]
    [ack] = [s for s in detail["steps"] if s["name"] == "engine_ack"]
    assert (ack["missed"], ack["late_by_seconds"]) == ("breach", 6 * 60.0)  # 21m - 15m
    assert [e["step"] for e in detail["events"]][:2] == ["discharge", "engine_ack"]
    assert reader.get_transaction("0" * 32, NOW) is None
