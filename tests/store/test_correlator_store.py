"""The correlator on the embedded engine: full pass, incremental batches, retirement, queries."""

from __future__ import annotations

import pytest

from correlator.queries import BadQuery, TransactionFilter, decode_cursor, get_transaction
from correlator.queries import list_transactions as listing
from correlator.service import CorrelatorService
from stitchboard.config.model import SlasConfig
from stitchboard.events import EVENT_COLUMNS
from stitchboard.writer import Batch
from tests.correlator_helpers import DAY, HOUR, MINUTE, at, discharge_chain, ev, shipped_config

CONFIG = shipped_config()
T0 = at("2026-03-09T09:00:00-05:00")
LATER = T0 + 30 * DAY


def insert(store, events) -> None:
    store.insert("events", EVENT_COLUMNS, [e.row() for e in events])


def batch(events) -> Batch:
    b = Batch()
    b.add("events", EVENT_COLUMNS, [e.row() for e in events])
    return b


def d2r(store, now=LATER, **where) -> list[dict]:
    items, _ = listing(store, TransactionFilter(workflow="discharge_to_revenue", **where), 100, now)
    return items


@pytest.fixture
def clean(store):
    store.command(f"TRUNCATE TABLE {store.table('events')}")
    store.command(f"TRUNCATE TABLE {store.table('transactions')}")
    store.command(f"TRUNCATE TABLE {store.table('transaction_keys')}")
    return store


def test_full_pass_writes_transactions_and_details(clean) -> None:
    store = clean
    second = [e for e in discharge_chain(T0 + HOUR, 2) if e.system != "ERP_GL"]
    events = discharge_chain(T0, 1) + second  # one journal for the shared batch B1
    insert(store, events)
    service = CorrelatorService(store, CONFIG)
    assert service.full_pass() == len(events)
    items = d2r(store)
    assert [i["keys"]["visit"] for i in items] == [["V2"], ["V1"]]  # newest first
    assert all(i["status"] == "complete" for i in items)
    [by_charge] = d2r(store, key_values=("C1a",))
    assert by_charge["keys"]["visit"] == ["V1"]
    # The journal is shared by both visits: a lookup by journal id finds both.
    assert len(d2r(store, key_values=("JB1",))) == 2
    detail = get_transaction(store, by_charge["id"], LATER, CONFIG)
    assert [s["name"] for s in detail["steps"]][:4] == [
        "discharge",
        "engine_ack",
        "charge_reversal",
        "charge",
    ]
    assert {e["step"] for e in detail["events"]} >= {"discharge", "charge", "gl_journal"}
    assert len(detail["events"]) == 7
    assert detail["events"][0]["operation"] == "ADT^A03"
    # One amount format: a decimal string with two places, in the listing and the detail.
    assert (detail["amount"], by_charge["amount"]) == ("150.50", "150.50")
    assert [s["amount"] for s in detail["steps"] if s["amount"]] == ["150.50"]
    assert detail["awaiting"] is None
    # Step figures are plain arrays too, for SQL readers (dashboards, SLOs).
    [(names, counts)] = store.rows(
        f"SELECT step_names, step_counts FROM {store.table('transactions')} FINAL"
        " WHERE id = {id:String}",
        {"id": by_charge["id"]},
    )
    assert (names[3], counts[3]) == ("charge", 2)


def test_incremental_batches_merge_and_retire(clean) -> None:
    store = clean
    service = CorrelatorService(store, CONFIG)
    service.full_pass()
    ack = ev("IFENGINE", "ACK^A03", T0 + MINUTE, msg="M3")
    charge = ev("PERIOP", "DFT^P03", T0 + HOUR, visit="V3", account="A3", charge="C3")
    service.on_batch(batch([ack, charge]))
    service.step()
    assert len(d2r(store)) == 2
    adt = ev("EHR_ADT", "ADT^A03", T0, msg="M3", visit="V3", account="A3")
    service.on_batch(batch([adt]))
    service.step()
    [merged] = d2r(store)
    assert merged["event_count"] == 3
    assert merged["flags"] == []
    # The same events in one full pass give the same transaction.
    rebuilt = CorrelatorService(store, CONFIG)
    insert(store, [ack, charge, adt])
    rebuilt.full_pass()
    [again] = d2r(store)
    assert again["id"] == merged["id"]


def test_overdue_is_evaluated_at_query_time(clean) -> None:
    store = clean
    service = CorrelatorService(store, CONFIG)
    service.full_pass()
    adt = ev("EHR_ADT", "ADT^A03", T0, msg="M4", visit="V4", account="A4")
    service.correlator.add([adt])
    service._write(service.correlator.flush(now=T0))
    assert d2r(store, now=T0)[0]["status"] == "in_progress"
    warned = d2r(store, now=T0 + 3 * MINUTE)[0]
    assert (warned["status"], warned["level"]) == ("overdue", "warn")
    assert d2r(store, now=T0 + HOUR, status="overdue")[0]["level"] == "breach"
    assert d2r(store, now=T0 + MINUTE, status="overdue") == []


def test_config_change_and_rebuild_retire_stale_transactions(clean) -> None:
    store = clean
    insert(store, discharge_chain(T0, 5))
    CorrelatorService(store, CONFIG).full_pass()
    assert len(d2r(store)) == 1
    fewer = SlasConfig.model_validate(
        {
            **CONFIG.model_dump(mode="json"),
            "workflows": [w.model_dump(mode="json") for w in CONFIG.workflows[1:]],
        }
    )
    CorrelatorService(store, fewer).full_pass()
    assert d2r(store) == []


def test_pagination_is_newest_first_and_complete(clean) -> None:
    store = clean
    events = [
        ev("EHR_ADT", "ADT^A03", T0 + i * MINUTE, msg=f"P{i}", visit=f"PV{i}", account=f"PA{i}")
        for i in range(7)
    ]
    insert(store, events)
    CorrelatorService(store, CONFIG).full_pass()
    seen, cursor = [], None
    while True:
        where = TransactionFilter(after=decode_cursor(cursor) if cursor else None)
        page, cursor = listing(store, where, 3, LATER)
        seen += [p["start_time"] for p in page]
        if cursor is None:
            break
    assert len(seen) == 7 and seen == sorted(seen, reverse=True)
    with pytest.raises(BadQuery, match="bad cursor"):
        decode_cursor("not-a-cursor")


def test_rows_the_engine_inserted_are_read_back_by_their_stamp(clean) -> None:
    from types import SimpleNamespace

    store = clean
    service = CorrelatorService(store, CONFIG)
    service.full_pass()
    stamp = 1_780_000_000_123_456  # inserted_at, microseconds
    adt = ev("EHR_ADT", "ADT^A03", T0, msg="M8", visit="V8", account="A8")
    other = ev("EHR_ADT", "ADT^A03", T0, msg="M9", visit="V9", account="A9")
    store.insert("events", (*EVENT_COLUMNS, "inserted_at"), [(*adt.row(), stamp)])
    store.insert("events", (*EVENT_COLUMNS, "inserted_at"), [(*other.row(), stamp + 7)])
    service.on_batch(SimpleNamespace(tables={}, stamps={"events": [stamp]}))
    service.step()
    assert [t["keys"]["visit"] for t in d2r(store)] == [["V8"]]


def test_attribute_matches_work_on_stored_and_streamed_events(clean) -> None:
    store = clean
    bill_only = ev(
        "ERP_PO",
        "x12.850.send",
        T0,
        po="P1",
        case="K1",
        attributes={"po.type": "bill_only", "vendor": "ACME"},
    )
    insert(store, [bill_only])
    service = CorrelatorService(store, CONFIG)
    service.full_pass()
    standard = ev(
        "ERP_PO",
        "x12.850.send",
        T0 + HOUR,
        po="P2",
        requisition="R2",
        attributes={"po.type": "standard", "vendor": "ACME"},
    )
    service.on_batch(batch([standard]))
    service.step()
    items, _ = listing(store, TransactionFilter(), 10, LATER)
    assert sorted((i["workflow"], i["keys"]["po"][0]) for i in items) == [
        ("implant_use_to_replenishment", "P1"),
        ("requisition_to_payment", "P2"),
    ]


def test_a_second_full_pass_keeps_every_transaction(clean) -> None:
    store = clean
    insert(store, discharge_chain(T0, 6))
    service = CorrelatorService(store, CONFIG)
    service.full_pass()
    service.full_pass()  # same state, nothing new: everything is rewritten, nothing retired
    assert len(d2r(store)) == 1


def test_step_durations_are_stored_from_each_steps_anchor(clean) -> None:
    """The interface is measured from the send: a discharge documented 22 minutes before
    its ADT was sent, acknowledged 2 s after the send, took 2 s at the engine."""
    import dataclasses

    adt = dataclasses.replace(
        ev("EHR_ADT", "ADT^A03", T0 - 22 * MINUTE, msg="MD", visit="VD", account="AD"),
        sent_time=T0,
    )
    ack = ev("IFENGINE", "ACK^A03", T0 + 2 * 1_000_000_000, msg="MD")
    insert(clean, [adt, ack])
    CorrelatorService(clean, CONFIG).full_pass()
    [(names, durations)] = clean.rows(
        f"SELECT step_names, step_durations FROM {clean.table('transactions')} FINAL"
        " WHERE deleted = 0 AND has(key_values, 'VD')"
    )
    by_step = dict(zip(names, durations, strict=True))
    assert by_step["engine_ack"] == 2 * 1_000_000_000
    assert by_step["discharge"] == -1 and by_step["charge"] == -1  # not measured
