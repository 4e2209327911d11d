"""slas.yaml slos: and alerts: — validation with paths, and every field documented."""

from __future__ import annotations

import pytest

from stitchboard.config import parse_config
from stitchboard.errors import ConfigError
from tests.alerts_helpers import BASE_YAML
from tests.support import ROOT


def problems(extra: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE_YAML + extra)
    return caught.value.problems


def test_the_shipped_file_has_an_slo_for_every_workflow() -> None:
    from stitchboard.config import load_config

    config = load_config(ROOT / "slas.yaml")
    assert {s.indicator.workflow for s in config.slos} == {w.name for w in config.workflows}
    assert [c.type for c in config.alerts.channels] == ["log"]


def test_bad_slos_are_refused_with_their_paths_all_at_once() -> None:
    found = problems("""
slos:
  - {name: a, indicator: {workflow: nope}, objective: 0.9}
  - {name: b, indicator: {workflow: w, step: zz}, objective: 0.9}
  - {name: c, indicator: {workflow: w}, objective: 0.9, facilities: [XX]}
  - {name: d, indicator: {workflow: w}, objective: 0.9, window: 1h}
  - {name: d, indicator: {workflow: w}, objective: 0.9, grouping: [facility, payer]}
""")
    assert found == [
        "slos[0].indicator.workflow: unknown workflow 'nope'",
        "slos[1].indicator.step: workflow 'w' has no step 'zz'",
        "slos[2].facilities[0]: unknown facility 'XX'",
        "slos[3].window: 1h is shorter than the deadline it judges",
        "slos[4].name: SLO 'd' is declared twice",
        "slos[4].grouping[1]: 'payer' is neither facility nor a declared key",
    ]


def test_objective_and_fields_are_checked_field_by_field() -> None:
    found = problems("""
slos:
  - {name: a, indicator: {workflow: w}, objective: 1.0}
  - {name: b, indicator: {workflow: w, threshold: late}, objective: 0, windw: 3d}
alerts:
  channels:
    - {name: pd, type: pagerduty}
""")
    assert any(
        p.startswith("slos[0].objective: objective 1.0 must be between 0 and 1") for p in found
    )
    assert any(p.startswith("slos[1].objective: objective 0") for p in found)
    assert any(p.startswith("slos[1].indicator.threshold:") for p in found)
    assert "slos[1]: unknown field 'windw'" in found
    assert "alerts.channels[0]: a pagerduty channel needs routing_key_env" in found


def test_routes_name_known_channels() -> None:
    found = problems("""
alerts:
  route: {channels: [pager], by_severity: {page: [sms]}}
""")
    assert found == [
        "alerts.route.channels[0]: unknown channel 'pager'",
        "alerts.route.by_severity.page[0]: unknown channel 'sms'",
    ]


def test_every_slo_and_alerts_field_is_documented() -> None:
    from stitchboard.config import slos

    doc = (ROOT / "docs" / "alerts.md").read_text()
    models = (
        slos.Slo,
        slos.Indicator,
        slos.BurnRatePolicy,
        slos.BurnRateWindow,
        slos.AlertsConfig,
        slos.OverdueRule,
        slos.IdleFeedRule,
        slos.ErrorSpikeRule,
        slos.UnmatchedRule,
        slos.BusinessHours,
        slos.Feed,
        slos.Route,
        slos.Channel,
        slos.BackfillHold,
    )
    missing = [
        f"{model.__name__}.{info.alias or name}"
        for model in models
        for name, info in model.model_fields.items()
        if f"`{info.alias or name}`" not in doc
    ]
    assert missing == []
