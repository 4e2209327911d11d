"""A facility slas.yaml does not declare is kept as sent; declaring it later (as an alias)
applies to the events already stored, without a re-send."""

from __future__ import annotations

from correlator.engine import correlate
from stitchboard.config import parse_config
from tests.correlator_helpers import HOUR, MINUTE, ROOT, at, ev

T0 = at("2026-03-09T09:00:00-05:00")


def config(extra_alias: str = ""):
    text = (ROOT / "slas.yaml").read_text()
    if extra_alias:
        text = text.replace("aliases: [NMC]", f"aliases: [NMC, {extra_alias}]", 1)
    return parse_config(text)


def test_declaring_a_facility_later_applies_to_past_events() -> None:
    events = [
        ev("EHR_ADT", "ADT^A03", T0, facility="NORTHSIDE-2", msg="M1", visit="V1", account="A1"),
        ev("IFENGINE", "ACK^A03", T0 + MINUTE, facility="NORTHSIDE-2", msg="M1"),
    ]
    [before] = [t for t in correlate(config(), events, T0 + HOUR) if t.workflow.startswith("dis")]
    assert before.facility == "NORTHSIDE-2"
    [after] = [
        t
        for t in correlate(config("NORTHSIDE-2"), events, T0 + HOUR)
        if t.workflow.startswith("dis")
    ]
    assert after.facility == "NMC01"
    assert (after.id, after.status) == (before.id, before.status)
