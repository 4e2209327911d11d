"""A real ``stitchboard serve`` killed and restarted: the correlator resumes from its
watermark (no transaction rewritten), correlates what was acknowledged but never
correlated, and keeps stitching onto transactions stored before the kill."""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_alerts_restart import _span
from tests.support import AUTH, ServeProcess, sql

pytestmark = pytest.mark.slow

CONFIG = """\
facilities: [{id: F1}]
keys: {visit: {attributes: [visit.id]}}
otel: {facility_attributes: [facility.id], amount_attributes: [stitchboard.amount]}
workflows:
  - name: w
    steps:
      - {name: a, match: {system: SYS_A}, keys: [visit]}
      - {name: b, match: {system: SYS_B}, keys: [visit], within: {breach: 30d}}
alerts:
  idle_feeds: {enabled: false}
  error_spike: {enabled: false}
"""


def _until(check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def _visits(server: ServeProcess) -> dict[str, str]:
    body = httpx.get(
        f"{server.api}/api/v1/transactions?workflow=w&limit=50", timeout=10, headers=AUTH
    ).json()
    return {item["keys"]["visit"][0]: item["status"] for item in body["transactions"]}


def _versions(data: Path) -> dict[str, int]:
    rows = sql(
        f"chdb://{data}",
        "SELECT key_values[indexOf(key_names, 'visit')] AS visit, max(version) AS v"
        " FROM transactions WHERE deleted = 0 GROUP BY visit",
    )
    return {r["visit"]: int(r["v"]) for r in rows}


def test_kill_and_restart_resumes_without_rewriting_or_losing() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="stitchboard-correlator-restart-"))
    config = workdir / "slas.yaml"
    config.write_text(CONFIG)
    data = workdir / "data"
    try:
        server = ServeProcess(data, config=config).start()
        try:
            _span(server, "SYS_A", "V1")
            _span(server, "SYS_A", "V2")
            _until(lambda: _visits(server) == {"V1": "in_progress", "V2": "in_progress"})
            _span(server, "SYS_A", "V3")  # acknowledged; killed before or after it is stitched
        finally:
            server.stop(signal.SIGKILL)
        before = _versions(data)
        assert {"V1", "V2"} <= set(before)

        server = ServeProcess(data, config=config).start()
        try:
            _until(lambda: "V3" in _visits(server))  # nothing acknowledged is lost
            _span(server, "SYS_B", "V1")
            _until(lambda: _visits(server).get("V1") == "complete")
            assert _visits(server) == {"V1": "complete", "V2": "in_progress", "V3": "in_progress"}
        finally:
            server.stop()
        after = _versions(data)
        assert after["V2"] == before["V2"]  # resumed: the untouched one was not rewritten
        assert after["V1"] > before["V1"]
        if "V3" in before:
            assert after["V3"] == before["V3"]
        state = {
            r["name"]: int(r["number"])
            for r in sql(f"chdb://{data}", "SELECT name, number FROM correlator_state FINAL")
        }
        assert state["watermark"] > 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
