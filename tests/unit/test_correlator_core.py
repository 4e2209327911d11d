"""The correlator's pure core on the shipped workflows: stitching, deadlines, status, flags."""

from __future__ import annotations

from decimal import Decimal

from correlator.engine import Correlator, correlate
from correlator.transaction import Transaction
from tests.correlator_helpers import DAY, HOUR, MINUTE, at, discharge_chain, ev, shipped_config

CONFIG = shipped_config()
# Monday 2026-03-09 09:00 in Chicago (CDT starts 2026-03-08).
T0 = at("2026-03-09T09:00:00-05:00")


def d2r(events, now) -> list[Transaction]:
    return [t for t in correlate(CONFIG, events, now) if t.workflow == "discharge_to_revenue"]


def test_complete_discharge_chains_every_hop() -> None:
    events = discharge_chain(T0)
    [tx] = d2r(events, now=T0 + 10 * DAY)
    assert tx.status == "complete"
    assert tx.level == ""
    assert tx.flags == ()
    assert tx.facility == "NMC01"
    assert set(tx.event_ids) == {e.event_id for e in events}
    assert tx.start_time == T0
    assert tx.end_time == T0 + 4 * DAY
    assert tx.duration_ns == 4 * DAY
    assert tx.amount == Decimal("150.50")
    charge = next(s for s in tx.steps if s.name == "charge")
    assert (charge.events, charge.first_time, charge.last_time) == (2, T0 + 2 * HOUR, T0 + 3 * HOUR)
    assert ("journal", "JB1") in tx.keys and ("mrn", "p1") in tx.keys


def test_fan_in_journal_joins_both_visits_without_merging_them() -> None:
    events = discharge_chain(T0, 1) + discharge_chain(T0, 2)
    txs = d2r(events, now=T0 + 10 * DAY)
    assert len(txs) == 2
    journal = next(e for e in events if e.operation == "gl.journal.post")
    assert all(journal.event_id in t.event_ids for t in txs)
    assert all(t.status == "complete" for t in txs)


def test_open_transaction_becomes_overdue_at_the_deadline() -> None:
    adt = ev("EHR_ADT", "ADT^A03", T0, msg="M9", visit="V9", account="A9")
    [before] = d2r([adt], now=T0 + 2 * MINUTE - 1)
    assert (before.status, before.level) == ("in_progress", "")
    assert before.warn_deadline == T0 + 2 * MINUTE
    assert before.breach_deadline == T0 + 15 * MINUTE
    [warned] = d2r([adt], now=T0 + 2 * MINUTE)
    assert (warned.status, warned.level) == ("overdue", "warn")
    [breached] = d2r([adt], now=T0 + 15 * MINUTE)
    assert (breached.status, breached.level) == ("overdue", "breach")
    assert breached.missed[0].step == "engine_ack" and breached.missed[0].actual == 0


def test_complete_with_a_late_step_is_late_with_its_level_and_margin() -> None:
    events = discharge_chain(T0, late_ack=5 * MINUTE)  # ack at 6 min: past warn (2m)
    [tx] = d2r(events, now=T0 + 10 * DAY)
    assert (tx.status, tx.level) == ("late", "warn")
    [missed] = tx.missed
    assert (missed.step, missed.level, missed.by_ns) == ("engine_ack", "warn", 4 * MINUTE)


def test_gl_journal_deadline_is_the_next_business_day_in_facility_time() -> None:
    friday = at("2026-03-13T15:00:00-05:00")
    chain = discharge_chain(friday)
    charge_time = friday + 2 * HOUR
    on_monday = [e for e in chain if e.operation != "gl.journal.post"] + [
        ev(
            "ERP_GL",
            "gl.journal.post",
            at("2026-03-16T23:59:00-05:00"),
            charge_batch="B1",
            journal="JB1",
        )
    ]
    [tx] = d2r(on_monday, now=friday + 30 * DAY)
    journal = next(s for s in tx.steps if s.name == "gl_journal")
    assert journal.anchor_time == charge_time
    assert journal.breach_at == at("2026-03-17T00:00:00-05:00")
    assert journal.level == ""
    on_tuesday = [e for e in chain if e.operation != "gl.journal.post"] + [
        ev(
            "ERP_GL",
            "gl.journal.post",
            at("2026-03-17T08:00:00-05:00"),
            charge_batch="B1",
            journal="JB1",
        )
    ]
    [late] = d2r(on_tuesday, now=friday + 30 * DAY)
    assert late.level == "breach" and late.status == "late"


def test_latest_error_fails_and_a_later_success_clears_it() -> None:
    base = [
        ev("ERP_PO", "requisition.approve", T0, requisition="R1"),
        ev(
            "ERP_PO",
            "x12.850.send",
            T0 + HOUR,
            requisition="R1",
            po="P1",
            attributes={"po.type": "standard"},
            status="error",
        ),
    ]
    [tx] = [t for t in correlate(CONFIG, base, T0 + 2 * HOUR) if t.workflow.startswith("req")]
    assert tx.status == "failed" and tx.error_count == 1
    retry = ev(
        "ERP_PO",
        "x12.850.send",
        T0 + 2 * HOUR,
        requisition="R1",
        po="P1",
        attributes={"po.type": "standard"},
        tag="retry",
    )
    [tx] = [
        t for t in correlate(CONFIG, [*base, retry], T0 + 3 * HOUR) if t.workflow.startswith("req")
    ]
    assert tx.status == "in_progress"
    assert "duplicate_step" in tx.flags


def test_attribute_match_keeps_bill_only_pos_out_of_requisitions() -> None:
    po = ev("ERP_PO", "x12.850.send", T0, po="P7", case="K7", attributes={"po.type": "bill_only"})
    txs = correlate(CONFIG, [po], T0)
    assert [t.workflow for t in txs] == ["implant_use_to_replenishment"]


def test_conformance_flags() -> None:
    # A charge with no discharge is a visit in progress until the 3d grace passes.
    charge_only = [ev("PERIOP", "DFT^P03", T0, visit="V5", account="A5", charge="C5")]
    [tx] = d2r(charge_only, now=T0)
    assert (tx.status, tx.flags) == ("in_progress", ())
    [tx] = d2r(charge_only, now=T0 + 3 * DAY)
    assert (tx.status, tx.flags) == ("overdue", ("missing_step",))
    # The ACK stamped 10 minutes before the discharge (more than the 5m clock skew).
    early_ack = discharge_chain(T0)
    early_ack[1] = ev("IFENGINE", "ACK", T0 - 10 * MINUTE, msg="M1")
    [tx] = d2r(early_ack, now=T0 + 10 * DAY)
    assert "out_of_order" in tx.flags
    redischarge = [
        *discharge_chain(T0),
        ev("EHR_ADT", "ADT^A13", T0 + HOUR, msg="M1x", visit="V1", account="A1"),
        ev("EHR_ADT", "ADT^A03", T0 + 2 * HOUR, msg="M1y", visit="V1", account="A1"),
    ]
    [tx] = d2r(redischarge, now=T0 + 10 * DAY)
    assert set(tx.flags) == {"duplicate_step", "unexpected_step"}
    assert any(s.name == "unexpected" and s.events == 1 for s in tx.steps)


def test_a_linking_event_merges_two_transactions_and_retires_one_id() -> None:
    adt = ev("EHR_ADT", "ADT^A03", T0, msg="M3", visit="V3", account="A3")
    ack = ev("IFENGINE", "ACK^A03", T0 + MINUTE, msg="M3")
    charge = ev("PERIOP", "DFT^P03", T0 + HOUR, visit="V3x", account="A3x", charge="C3")
    link = ev("PATACCT", "DFT^P03", T0 + 2 * HOUR, visit="V3", account="A3x", charge="C3b")
    correlator = Correlator(CONFIG)
    first = correlator.feed([ack, charge], now=T0 + 2 * HOUR)
    ids = {t.id for t in first.upserts}
    assert len(ids) == 2
    second = correlator.feed([adt, link], now=T0 + 2 * HOUR)
    [merged] = [t for t in second.upserts if t.workflow == "discharge_to_revenue"]
    # The discharge is now the earliest core event, so the merged id is new.
    assert merged.id not in ids
    assert {r.id for r in second.retired} == ids
    [batch] = d2r([adt, ack, charge, link], now=T0 + 2 * HOUR)
    assert batch == merged


def test_events_without_the_steps_keys_are_counted_not_stitched() -> None:
    correlator = Correlator(CONFIG)
    changes = correlator.feed([ev("EHR_ADT", "ADT^A03", T0)], now=T0)
    assert changes.upserts == ()
    assert correlator.stitchers[0].unstitchable == 1


def test_sweep_finds_transactions_when_their_deadline_passes() -> None:
    correlator = Correlator(CONFIG)
    adt = ev("EHR_ADT", "ADT^A03", T0, msg="M4", visit="V4", account="A4")
    [tx] = correlator.feed([adt], now=T0).upserts
    assert tx.status == "in_progress"
    assert correlator.sweep(now=T0 + MINUTE).upserts == ()
    [warned] = correlator.sweep(now=T0 + 2 * MINUTE).upserts
    assert (warned.id, warned.status, warned.level) == (tx.id, "overdue", "warn")
    [breached] = correlator.sweep(now=T0 + 15 * MINUTE).upserts
    assert breached.level == "breach"
