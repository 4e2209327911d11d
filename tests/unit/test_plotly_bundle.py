"""The console's plotly.js bundle matches the plotly package the figures are built with."""

from __future__ import annotations

import re

from plotly.offline import get_plotlyjs_version

from dashboards.plotly_bundle import BUNDLE


def test_the_bundle_is_the_plotly_packages_plotly_js_version() -> None:
    # Figures are built by the plotly package for its own plotly.js: a plotly upgrade that
    # moves plotly.js must bring the cartesian bundle of the same version along.
    header = BUNDLE.read_text(encoding="utf-8")[:200]
    found = re.search(r"plotly\.js \(cartesian - minified\) v(\S+)", header)
    assert found is not None, header
    assert found.group(1) == get_plotlyjs_version()
