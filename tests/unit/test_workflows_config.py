"""slas.yaml workflows: the shipped file loads, and a bad file lists every problem with its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from stitchboard.config import load_config
from stitchboard.config.loader import parse_config
from stitchboard.config.workflows import Duration, Pattern
from stitchboard.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

BASE = """
keys:
  visit: {attributes: [visit.id]}
  charge: {attributes: [charge.id]}
  charge_batch: {attributes: [charge.batch_id]}
  journal: {attributes: [gl.journal_id]}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE + text)
    return caught.value.problems


def test_shipped_file_has_the_five_workflows() -> None:
    config = load_config(ROOT / "slas.yaml")
    names = {w.name for w in config.workflows}
    assert names >= {
        "discharge_to_revenue",
        "claim_to_cash",
        "implant_use_to_replenishment",
        "requisition_to_payment",
        "timecard_to_labor_gl",
    }
    d2r = next(w for w in config.workflows if w.name == "discharge_to_revenue")
    assert d2r.step("charge").repeat
    assert d2r.step("gl_journal").fan_in == ["charge_batch"]
    assert d2r.step("gl_journal").within.breach.business_days == 1


def test_durations_and_patterns_parse() -> None:
    assert Duration.model_validate("15m").nanos == 15 * 60 * 10**9
    assert Duration.model_validate("1.5h").nanos == 90 * 60 * 10**9
    assert Duration.model_validate("2bd").business_days == 2
    assert Pattern.model_validate("ADT^A03").exact == "ADT^A03"
    assert Pattern.model_validate({"prefix": "x12."}).prefix == "x12."


def test_bad_file_lists_every_problem_with_its_path() -> None:
    found = problems("""
workflows:
  - name: d2r
    steps:
      - name: discharge
        match: {system: EHR_ADT, operaton: ADT^A03}
        keys: [visit]
      - name: charge
        match: {operation: {regex: '('}}
        keys: [chrge]
        within: {warn: 24 hours}
""")
    assert "workflows[0].steps[0].match: unknown field 'operaton'" in found
    assert any(p.startswith("workflows[0].steps[1].match.operation: bad regex") for p in found)
    assert any(p.startswith("workflows[0].steps[1].within.warn: bad duration") for p in found)


def test_cross_checks_report_paths() -> None:
    found = problems("""
workflows:
  - name: d2r
    steps:
      - name: discharge
        match: {system: EHR_ADT}
        keys: [visit, chrge]
      - name: journal
        match: {system: ERP_GL}
        keys: [journal]
        fan_in: [charge_batch]
        within: {after: later_step, breach: 1bd}
      - name: journal
        match: {system: ERP_GL}
        keys: [journal]
""")
    assert "workflows[0].steps[0].keys[1]: key 'chrge' is not declared in keys" in found
    assert any(p.startswith("workflows[0].steps[1].within.after: 'later_step'") for p in found)
    assert (
        "workflows[0].steps[1].fan_in[0]: no non-fan-in step keys or carries 'charge_batch'"
        in found
    )
    assert "workflows[0].steps[2].name: step 'journal' is declared twice" in found


def test_match_needs_a_test_and_deadline_needs_a_level() -> None:
    found = problems("""
workflows:
  - name: d2r
    steps:
      - name: discharge
        match: {}
        keys: [visit]
        within: {after: start}
""")
    assert any(p.startswith("workflows[0].steps[0].match: a match needs") for p in found)
    assert any(p.startswith("workflows[0].steps[0].within: a deadline needs") for p in found)


def test_every_field_of_these_sections_is_documented() -> None:
    from stitchboard.config.model import Calendar, Facility, KeyRule, OtelMapping, SlasConfig
    from stitchboard.config.workflows import Deadline, EndToEnd, Step, StepMatch, Workflow

    doc = (ROOT / "docs" / "slas.md").read_text()
    missing = [
        f"{model.__name__}.{name}"
        for model in (
            SlasConfig,
            Facility,
            Calendar,
            KeyRule,
            OtelMapping,
            Workflow,
            Step,
            StepMatch,
            Deadline,
            EndToEnd,
            Pattern,
        )
        for field, info in model.model_fields.items()
        # A field spelled differently in slas.yaml (``from``) is documented by that name.
        for name in (info.alias or field,)
        if f"`{name}`" not in doc and f"`calendar.{name}`" not in doc
    ]
    assert missing == []
