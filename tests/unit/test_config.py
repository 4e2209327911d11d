"""slas.yaml loading: every problem listed with its path; the shipped file is valid."""

from __future__ import annotations

import pytest

from stitchboard.config import load_config, parse_config
from stitchboard.errors import ConfigError
from stitchboard.settings import load_settings
from tests.support import ROOT


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return info.value.problems


def test_shipped_slas_yaml_is_valid():
    config = load_config(ROOT / "slas.yaml")
    assert {f.id for f in config.facilities} >= {"NMC01", "LCH02", "MSC03"}
    assert config.keys["mrn"].phi is True
    assert "visit" in config.keys


def test_missing_field_is_reported_with_its_path():
    assert problems("keys:\n  visit: {phi: false}\n") == ["keys.visit.attributes: field required"]


def test_every_problem_is_listed_at_once():
    text = """
facilities:
  - id: A
    timezone: Mars/Olympus
  - name: no id
    calendar: {weekend: [caturday]}
keys:
  visit: {attributes: [visit.id], sytem: x}
"""
    found = problems(text)
    assert "facilities[0].timezone: unknown time zone 'Mars/Olympus'" in found
    assert "facilities[1].id: field required" in found
    assert any(
        p.startswith("facilities[1].calendar.weekend: unknown weekday 'caturday'") for p in found
    )
    assert "keys.visit: unknown field 'sytem'" in found
    assert len(found) == 4


def test_error_text_names_the_file():
    with pytest.raises(ConfigError) as info:
        parse_config("keys:\n  visit: {}\n")
    assert str(info.value) == "slas.yaml: keys.visit.attributes: field required"


def test_yaml_syntax_error_gives_line_and_column():
    found = problems("keys:\n  visit: {attributes: [a\n")
    assert len(found) == 1 and found[0].startswith("line ") and "not valid YAML" in found[0]


def test_duplicate_facility_alias_is_rejected():
    text = "facilities:\n  - {id: A, aliases: [X]}\n  - {id: B, aliases: [X]}\n"
    assert problems(text) == ["facility id or alias 'X' is declared twice"]


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")


def test_facility_index_resolves_aliases():
    config = parse_config("facilities:\n  - {id: NMC01, aliases: [NMC]}\n")
    assert config.facility_index() == {"NMC01": "NMC01", "NMC": "NMC01"}


def test_settings_from_environment_and_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("STITCHBOARD_CLICKHOUSE", "http://u:p@db:8123/sb")
    monkeypatch.setenv("STITCHBOARD_SETTINGS", str(tmp_path / "none.toml"))
    settings = load_settings(port=9000, config=None)
    assert settings.clickhouse == "http://u:p@db:8123/sb"
    assert settings.port == 9000
    assert settings.otlp_http_port == 4318


def test_settings_file_is_read(monkeypatch, tmp_path):
    path = tmp_path / "stitchboard.toml"
    path.write_text('mllp_port = 0\ndatabase = "hospital"\n')
    monkeypatch.setenv("STITCHBOARD_SETTINGS", str(path))
    monkeypatch.delenv("STITCHBOARD_CLICKHOUSE", raising=False)
    settings = load_settings()
    assert settings.mllp_port == 0
    assert settings.database == "hospital"
    assert settings.clickhouse == "chdb://./data"
