"""The simulator's ground truth judges a GL journal from the charges it follows (pure).

The same hand-worked stay as tests/unit/test_deadline_clocks.py, in the simulator's
own terms (hops and their transaction membership), so truth and correlator are
checked against the same numbers independently.
"""

from __future__ import annotations

from simulator.encounters import Opened
from simulator.estate import site_of
from simulator.records import Hop, Missed
from simulator.truth import evaluate
from tests.correlator_helpers import MINUTE, at, shipped_config

CONFIG = shipped_config()
SITES = [site_of(f) for f in CONFIG.facilities]
WF = "discharge_to_revenue"
DISCHARGE = at("2026-02-03T08:00:00-06:00")  # Tuesday, Central Standard Time
SUN_CHARGE = at("2026-02-01T14:05:00-06:00")
TUE_CHARGE = at("2026-02-03T10:00:00-06:00")
MON_JOURNAL = at("2026-02-02T05:01:00-06:00")


def _hop(hop_id: str, step: str | None, system: str, operation: str, time: int, **keys: str):
    members = ((WF, "T1", step),) if step else ()
    return Hop(hop_id, members, "otlp", "NMC01", system, operation, time, time, keys=keys)


def _stay(last_journal: int) -> list[Hop]:
    stay = {"visit": "V1", "account": "A1"}
    return [
        _hop("d", "discharge", "EHR_ADT", "ADT^A03", DISCHARGE, msg="M1", **stay),
        _hop("a", "engine_ack", "IFENGINE", "ACK^A03", DISCHARGE + MINUTE, msg="M1"),
        _hop("c1", "charge", "LAB", "DFT^P03", SUN_CHARGE, charge="C1", charge_batch="B1", **stay),
        _hop("c2", "charge", "RAD", "DFT^P03", TUE_CHARGE, charge="C2", charge_batch="B2", **stay),
        _hop("j1", None, "ERP_GL", "gl.journal.post", MON_JOURNAL, charge_batch="B1", journal="J1"),
        _hop(
            "j2", None, "ERP_GL", "gl.journal.post", last_journal, charge_batch="B2", journal="J2"
        ),
    ]


def _truth(last_journal: int, as_of: int):
    opened = [Opened(WF, "T1", "NMC01", SUN_CHARGE)]
    [truth] = evaluate(CONFIG, SITES, opened, _stay(last_journal), as_of)
    return truth


def test_a_journal_the_business_day_after_its_charges_is_on_time() -> None:
    # Wednesday's journal counts from Tuesday's charge: due by Thursday 00:00 CST.
    truth = _truth(at("2026-02-04T05:01:00-06:00"), as_of=at("2026-02-04T06:00:00-06:00"))
    assert (truth.status, truth.missed) == ("in_progress", ())


def test_a_journal_two_business_days_after_its_charges_is_late() -> None:
    truth = _truth(at("2026-02-05T05:01:00-06:00"), as_of=at("2026-02-05T06:00:00-06:00"))
    assert (truth.status, truth.missed) == (
        "overdue",
        (Missed("gl_journal", "breach", at("2026-02-05T00:00:00-06:00")),),
    )
