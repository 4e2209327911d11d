"""When deadline clocks start, on the shipped slas.yaml: anchors, send times, grace
periods, steps that may come early, and how a missed deadline reads."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from correlator.engine import correlate
from correlator.explanations import explain, money, span_text
from correlator.queries import awaiting
from correlator.transaction import BREACH, WARN, Missed, Transaction
from stitchboard.config import parse_config
from tests.correlator_helpers import DAY, HOUR, MINUTE, NS, at, discharge_chain, ev, shipped_config

CONFIG = shipped_config()
# Monday 2026-03-09 09:00 in Chicago = 14:00Z.
T0 = at("2026-03-09T09:00:00-05:00")


def one(workflow: str, events, now: int, config=CONFIG) -> Transaction:
    [tx] = [t for t in correlate(config, events, now) if t.workflow == workflow]
    return tx


def step(tx: Transaction, name: str):
    return next(s for s in tx.steps if s.name == name)


# -- 1. a step is not due before its anchor has happened ---------------------------------


def test_a_999_is_not_due_while_the_claim_is_not_submitted() -> None:
    bill = ev("PATACCT", "claim.final_bill", T0, account="A1", claim="CL1")
    tx = one("claim_to_cash", [bill], now=T0 + 5 * HOUR)
    # Was overdue at T0 + 4h: the 999's clock fell back to the final bill.
    assert (tx.status, tx.missed) == ("in_progress", ())
    assert step(tx, "claim_accepted_999").breach_at == 0
    assert tx.breach_deadline == T0 + 48 * HOUR  # the submission's own deadline
    tx = one("claim_to_cash", [bill], now=T0 + 48 * HOUR)
    assert [(m.step, m.level, m.deadline) for m in tx.missed] == [
        ("claim_submitted", BREACH, T0 + 48 * HOUR)
    ]
    submitted = ev("CLEARINGHOUSE", "x12.837.submit", T0 + 30 * HOUR, claim="CL1")
    accepted = ev("CLEARINGHOUSE", "x12.999.receive", T0 + 30 * HOUR + 30 * MINUTE, claim="CL1")
    tx = one("claim_to_cash", [bill, submitted, accepted], now=T0 + 31 * HOUR)
    # The 999 came 30 minutes after the submission: on time. The submission was 6h past warn.
    assert [(m.step, m.level, m.by_ns) for m in tx.missed] == [("claim_submitted", WARN, 6 * HOUR)]
    assert step(tx, "claim_accepted_999").anchor_time == T0 + 30 * HOUR


FLOW = parse_config("""\
keys: {k: {attributes: [k]}}
workflows:
  - name: flow
    steps:
      - {name: a, match: {operation: a}, keys: [k]}
      - {name: b, match: {operation: b}, keys: [k], optional: true}
      - {name: c, match: {operation: c}, keys: [k], within: {breach: 1h}}
      - {name: d, match: {operation: d}, keys: [k], within: {breach: 1h}}
""")


def test_only_a_skipped_optional_anchor_hands_the_clock_back() -> None:
    a = ev("S", "a", T0, k="1")
    # b may still come: c's clock has not started.
    tx = one("flow", [a], now=T0 + 2 * HOUR, config=FLOW)
    assert (tx.status, step(tx, "c").breach_at) == ("in_progress", 0)
    # c happened without b: b was skipped, so c counts from a and was 1h late.
    c = ev("S", "c", T0 + 2 * HOUR, k="1")
    tx = one("flow", [a, c], now=T0 + 2 * HOUR, config=FLOW)
    assert [(m.step, m.deadline, m.by_ns) for m in tx.missed] == [("c", T0 + HOUR, HOUR)]
    assert step(tx, "d").breach_at == T0 + 3 * HOUR
    # With b, c counts from b.
    b = ev("S", "b", T0 + 90 * MINUTE, k="1")
    tx = one("flow", [a, b, c], now=T0 + 2 * HOUR, config=FLOW)
    assert (tx.missed, step(tx, "c").anchor_time) == ((), T0 + 90 * MINUTE)


# -- 2. first steps that never arrived ----------------------------------------------------


def test_charges_without_a_discharge_wait_for_the_grace_period() -> None:
    charge = ev("LAB", "DFT^P03", T0, visit="V5", account="A5", charge="C5", charge_batch="B5")
    journal = ev("ERP_GL", "gl.journal.post", T0 + 2 * HOUR, charge_batch="B5", journal="J5")
    tx = one("discharge_to_revenue", [charge, journal], now=T0 + DAY)
    # Was overdue 15 minutes after the charge: the ACK's clock ran from it.
    assert (tx.status, tx.flags, tx.missed) == ("in_progress", (), ())
    assert (tx.warn_deadline, tx.breach_deadline) == (0, T0 + 3 * DAY)
    # The ACK waits on the discharge; the journal (on time) counted from the charge.
    assert [(s.name, s.breach_at) for s in tx.steps if s.breach_at] == [
        ("discharge", T0 + 3 * DAY),
        ("gl_journal", at("2026-03-11T00:00:00-05:00")),
    ]
    assert awaiting(CONFIG, tx) == "discharge"
    tx = one("discharge_to_revenue", [charge, journal], now=T0 + 3 * DAY + HOUR)
    assert (tx.status, tx.flags) == ("overdue", ("missing_step",))
    assert tx.missed == (
        Missed("discharge", BREACH, T0 + 3 * DAY, 0, HOUR, "3d", "charge", T0, True),
    )
    assert explain(tx.missed[0]) == (
        "breach: no discharge within 3d of charge at 2026-03-09T14:00Z, missed by 1h"
    )


def test_a_final_bill_without_a_discharge_runs_no_clock() -> None:
    bill = ev("PATACCT", "claim.final_bill", T0, account="A6", claim="CL6")
    tx = one("discharge_to_revenue", [bill], now=T0 + 2 * DAY)
    assert (tx.status, tx.missed, tx.breach_deadline) == ("in_progress", (), T0 + 3 * DAY)
    assert all(s.breach_at >= tx.start_time for s in tx.steps if s.breach_at)


# -- 3. two times per hop ------------------------------------------------------------------


def test_the_interface_is_judged_from_the_send() -> None:
    # The discharge was documented 22 minutes before the ADT was sent; acknowledged in 2s.
    adt = dataclasses.replace(
        ev("EHR_ADT", "ADT^A03", T0 - 22 * MINUTE, msg="M1", visit="V1", account="A1"),
        sent_time=T0,
    )
    ack = ev("IFENGINE", "ACK^A03", T0 + 2 * NS, msg="M1")
    tx = one("discharge_to_revenue", [adt, ack], now=T0 + HOUR)
    engine = step(tx, "engine_ack")
    assert (engine.anchor_time, engine.breach_at, engine.duration_ns) == (
        T0,
        T0 + 15 * MINUTE,
        2 * NS,
    )
    assert engine.level == "" and tx.missed == ()
    # The revenue cycle still counts from the discharge itself.
    assert step(tx, "charge").breach_at == T0 - 22 * MINUTE + 72 * HOUR


# -- 4. steps that may come earlier --------------------------------------------------------


def test_charges_during_the_stay_and_reversals_are_not_late_or_out_of_order() -> None:
    chain = discharge_chain(T0)
    in_stay = ev("LAB", "DFT^P03", T0 - 3 * HOUR, visit="V1", account="A1", charge="C1s")
    credit = ev(
        "LAB",
        "DFT^P03",
        T0 + 4 * DAY,
        amount="-50.50",
        attributes={"charge.type": "CD"},
        visit="V1",
        account="A1",
        charge="C1b-R1",
    )
    tx = one("discharge_to_revenue", [*chain, in_stay, credit], now=T0 + 10 * DAY)
    assert (tx.status, tx.flags, tx.missed) == ("complete", (), ())
    assert step(tx, "charge_reversal").events == 1
    charge = step(tx, "charge")
    assert (charge.first_time, charge.duration_ns) == (T0 - 3 * HOUR, 0)  # never negative
    # A charge posted 4 days after the discharge is a late charge.
    late = ev("RAD", "DFT^P03", T0 + 4 * DAY, visit="V1", account="A1", charge="C1x")
    tx = one("discharge_to_revenue", [*chain, late], now=T0 + 10 * DAY)
    assert tx.status == "late"
    assert [(m.step, m.level, m.deadline, m.by_ns) for m in tx.missed] == [
        ("charge", BREACH, T0 + 72 * HOUR, DAY)
    ]
    assert explain(tx.missed[0]) == "breach 72h after discharge at 2026-03-09T14:00Z, missed by 1d"


# -- 6. how the numbers read ---------------------------------------------------------------


def test_amounts_have_two_places_and_spans_read_in_two_units() -> None:
    assert [money(Decimal("12.5")), money("100"), money(Decimal("-3.456")), money(None)] == [
        "12.50",
        "100.00",
        "-3.46",
        None,
    ]
    assert [span_text(n) for n in (4 * HOUR + 12 * MINUTE + 5 * NS, 45 * NS, DAY + 59 * NS)] == [
        "4h 12m",
        "45s",
        "1d",
    ]
    missed = Missed("end_to_end", WARN, T0 + 5 * DAY, 0, 90 * MINUTE, "5d", "discharge", T0)
    assert explain(missed) == (
        "end to end: warn 5d after discharge at 2026-03-09T14:00Z, missed by 1h 30m"
    )
