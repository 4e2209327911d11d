"""A real ``stitchboard serve`` restarted while an alert fires: no second page, and the
resolve still goes out when the condition clears after the restart."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.alerts_helpers import Receiver
from tests.support import AUTH, ServeProcess

pytestmark = pytest.mark.slow

CONFIG = """\
facilities: [{id: F1}]
keys: {visit: {attributes: [visit.id]}}
otel: {facility_attributes: [facility.id], amount_attributes: [stitchboard.amount]}
workflows:
  - name: w
    steps:
      - {name: a, match: {system: SYS_A}, keys: [visit]}
      - {name: b, match: {system: SYS_B}, keys: [visit], within: {breach: 3s}}
alerts:
  evaluation_interval: 1s
  overdue: {amount: 1000, count: null}
  idle_feeds: {enabled: false}
  error_spike: {enabled: false}
  route: {group_wait: 0s, group_interval: 1s, repeat_interval: 4h}
  channels: [{name: hook, type: webhook, url_env: TEST_HOOK_URL}]
"""


def _span(server: ServeProcess, system: str, visit: str) -> None:
    now = time.time_ns()
    body = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [
                        {"key": "service.name", "value": {"stringValue": system}},
                        {"key": "facility.id", "value": {"stringValue": "F1"}},
                    ]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": f"{now:032x}",
                                "spanId": f"{now % 2**64:016x}",
                                "name": system.lower(),
                                "startTimeUnixNano": str(now),
                                "endTimeUnixNano": str(now + 1000),
                                "attributes": [
                                    {"key": "visit.id", "value": {"stringValue": visit}},
                                    {
                                        "key": "stitchboard.amount",
                                        "value": {"stringValue": "50000"},
                                    },
                                ],
                            }
                        ]
                    }
                ],
            }
        ]
    }
    answer = httpx.post(f"{server.otlp_http}/v1/traces", json=body, timeout=30)
    assert answer.status_code == 200, answer.text


def _until(check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_restart_while_firing_neither_pages_twice_nor_forgets() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="stitchboard-alerts-restart-"))
    config = workdir / "slas.yaml"
    config.write_text(CONFIG)
    with Receiver() as receiver:
        env = {"TEST_HOOK_URL": receiver.url}
        server = ServeProcess(workdir / "data", config=config, env=env).start()
        try:
            _span(server, "SYS_A", "V1")  # step b is due 3 s later
            _until(lambda: len(receiver.posts) >= 1)
            [page] = receiver.bodies()
            assert page["status"] == "firing"
            assert page["alerts"][0]["labels"]["rule"] == "overdue"
            fingerprint = page["alerts"][0]["fingerprint"]
        finally:
            server.stop()
        server = ServeProcess(workdir / "data", config=config, env=env).start()
        try:
            firing = httpx.get(
                f"{server.api}/api/v1/alerts?state=firing", timeout=10, headers=AUTH
            ).json()
            assert [a["fingerprint"] for a in firing["items"]] == [fingerprint]
            time.sleep(5)  # five evaluation cycles after the restart
            assert len(receiver.posts) == 1
            _span(server, "SYS_B", "V1")  # the transaction completes: the condition clears
            _until(lambda: len(receiver.posts) >= 2)
            resolve = receiver.bodies()[1]
            assert resolve["status"] == "resolved"
            assert resolve["alerts"][0]["fingerprint"] == fingerprint
            time.sleep(3)
            assert len(receiver.posts) == 2
        finally:
            server.stop()
            shutil.rmtree(workdir, ignore_errors=True)
