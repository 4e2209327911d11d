"""Every setting an operator can set is described where operators look for it."""

from __future__ import annotations

from stitchboard.settings import Settings
from tests.support import ROOT


def test_every_setting_is_documented_by_its_environment_variable() -> None:
    text = (ROOT / "README.md").read_text()
    text += "".join(p.read_text() for p in sorted((ROOT / "docs").glob("*.md")))
    missing = [
        f"STITCHBOARD_{name.upper()}"
        for name in Settings.model_fields
        if f"STITCHBOARD_{name.upper()}" not in text
    ]
    assert missing == []
