"""A fan-in event no transaction carries is an unmatched event of its own until a
carrier arrives; its state changes are reported once per change."""

from __future__ import annotations

from correlator.engine import Correlator
from tests.correlator_helpers import DAY, HOUR, at, ev, shipped_config

CONFIG = shipped_config()
T0 = at("2026-03-09T09:00:00-05:00")


def test_a_journal_waits_unmatched_and_attaches_when_its_batch_arrives() -> None:
    correlator = Correlator(CONFIG)
    journal = ev("ERP_GL", "gl.journal.post", T0, charge_batch="B9", journal="J9")
    changes = correlator.feed([journal], now=T0 + HOUR)
    assert changes.upserts == ()  # no transaction: nothing carries B9
    [state] = changes.fan_in
    assert (state.workflow, state.step, state.matched) == (
        "discharge_to_revenue",
        "gl_journal",
        False,
    )
    assert state.lookup == (("charge_batch", "B9"),)
    assert correlator.unmatched()["discharge_to_revenue"] == (1, T0)
    # Nothing changed: nothing reported again.
    assert correlator.feed([], now=T0 + 2 * HOUR).fan_in == ()

    charge = ev(
        "LAB", "DFT^P03", T0 - HOUR, visit="V9", account="A9", charge="C9", charge_batch="B9"
    )
    changes = correlator.feed([charge], now=T0 + DAY)
    [state] = changes.fan_in
    assert (state.event.event_id, state.matched) == (journal.event_id, True)
    [tx] = [t for t in changes.upserts if t.workflow == "discharge_to_revenue"]
    assert journal.event_id in tx.event_ids
    assert correlator.unmatched()["discharge_to_revenue"] == (0, 0)
