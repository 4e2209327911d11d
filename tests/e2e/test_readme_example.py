"""End to end: the README's curl example gives something a user can then find."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from tests.support import AUTH, ROOT, serve_process


def readme_span_body() -> str:
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"curl -s http://127\.0\.0\.1:4318/v1/traces .*? -d '(.*?)'\n", readme, re.S)
    assert found, "the README's OTLP curl example"
    return found.group(1)


@pytest.mark.slow
def test_the_readme_curl_example_is_listed_as_an_unmatched_journal() -> None:
    with serve_process() as server:
        response = httpx.post(
            f"{server.otlp_http}/v1/traces",
            content=readme_span_body(),
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        assert response.status_code == 200
        deadline = time.monotonic() + 30
        while True:
            listed = httpx.get(
                f"{server.api}/api/v1/unmatched-events",
                params={"key": "JE-CURL-1"},
                timeout=10,
                headers=AUTH,
            ).json()["unmatched_events"]
            if listed or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        [journal] = listed
        assert (journal["workflow"], journal["step"]) == ("discharge_to_revenue", "gl_journal")
        assert journal["waiting_for"] == {"charge_batch": "B-CURL-1"}
        assert journal["time"] == "2026-01-01T00:00:01Z" and journal["age_seconds"] > 0
        bad = httpx.get(
            f"{server.api}/api/v1/unmatched-events", params={"older_than": "soon"}, headers=AUTH
        )
        assert bad.status_code == 400 and "older_than" in bad.text
        # The gauge follows the write of the journal's state (within a second).
        gauge = 'stitchboard_unmatched_events{workflow="discharge_to_revenue"} 1.0'
        deadline = time.monotonic() + 10
        while True:
            metrics = httpx.get(f"{server.api}/metrics", headers=AUTH).text
            if gauge in metrics or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert gauge in metrics
