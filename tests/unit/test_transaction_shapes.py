"""The correlator's named shapes: the stored and served strings of statuses, levels and
flags never change, and a compiled step plan reads by field name."""

from __future__ import annotations

from correlator.transaction import (
    FLAGS,
    LEVELS,
    STATUSES,
    Anchor,
    Flag,
    Level,
    Plan,
    Status,
    StepPlan,
)
from tests.correlator_helpers import shipped_config

NS = 1_000_000_000


def test_statuses_levels_and_flags_keep_their_stored_strings() -> None:
    assert [str(s) for s in STATUSES] == ["in_progress", "complete", "late", "overdue", "failed"]
    assert [str(level) for level in LEVELS] == ["", "warn", "breach"]
    assert [str(f) for f in FLAGS] == [
        "missing_step",
        "out_of_order",
        "duplicate_step",
        "unexpected_step",
    ]
    # A row read back from ClickHouse (a plain str) equals and finds the member.
    assert Status("late") is Status.LATE and Status.LATE == "late"
    assert {Flag.OUT_OF_ORDER: 1}["out_of_order"] == 1
    assert not Level.NONE  # "no deadline missed" stays falsy


def test_a_plan_names_each_steps_anchor_and_deadlines() -> None:
    [workflow] = [w for w in shipped_config().workflows if w.name == "discharge_to_revenue"]
    steps = Plan(workflow).steps
    assert all(isinstance(s, StepPlan) for s in steps)
    by_name = {s.name: s for s in steps}
    # slas.yaml: discharge has no deadline; engine_ack is 2m/15m after the previous step;
    # charge repeats, 24h/72h after start; gl_journal breaches 1 business day after charge.
    assert by_name["discharge"].anchor is Anchor.NONE
    assert by_name["discharge"].warn is None and by_name["discharge"].breach is None
    ack = by_name["engine_ack"]
    assert (ack.anchor, ack.anchor_step) == (Anchor.PREVIOUS, -1)
    assert ack.warn is not None and ack.warn.nanos == 120 * NS
    assert ack.breach is not None and ack.breach.nanos == 900 * NS
    charge = by_name["charge"]
    assert (charge.anchor, charge.repeat, charge.optional) == (Anchor.START, True, False)
    # The interface is judged from the send; charges may post during the stay.
    assert (ack.from_sent, charge.from_sent, charge.may_precede) == (True, False, True)
    journal = by_name["gl_journal"]
    assert (journal.anchor, journal.anchor_step) == (Anchor.STEP, 3)  # index of "charge"
    assert journal.warn is None
    assert journal.breach is not None and journal.breach.business_days == 1
