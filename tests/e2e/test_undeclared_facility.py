"""End to end: records naming a facility slas.yaml does not declare are stored (OTLP in
otel_traces and events, HL7 answered AA) and listed with their counts in health."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.e2e.test_correlator_api import send_mllp
from tests.support import serve_process

ADT_ELSEWHERE = (
    b"MSH|^~\\&|EHR_ADT|NOWHERE|IFENGINE|NOWHERE|20260314162210||ADT^A03^ADT_A03|UF-1|P|2.5.1\r"
    b"EVN|A03|20260314162205\rPID|1||MRN-UF-1^^^X^MR||DOE^JO\r"
    b"PV1|1|I|4W^412^B^NOWHERE||||||||||||||||VN-UF-1\r"
)


def span(n: int) -> dict:
    def attr(key: str, value: str) -> dict:
        return {"key": key, "value": {"stringValue": value}}

    return {
        "traceId": f"{n:032x}",
        "spanId": f"{n:016x}",
        "name": "charge.post",
        "startTimeUnixNano": "1767225600000000000",
        "endTimeUnixNano": "1767225601000000000",
        "attributes": [attr("facility.id", "ATLANTIS"), attr("charge.id", f"CHG-UF-{n}")],
    }


@pytest.mark.slow
def test_undeclared_facilities_are_stored_and_listed_in_health() -> None:
    with serve_process() as server:
        body = {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": "PATACCT"}}]
                    },
                    "scopeSpans": [{"spans": [span(1), span(2)]}],
                }
            ]
        }
        response = httpx.post(
            f"{server.otlp_http}/v1/traces",
            content=json.dumps(body),
            headers={"content-type": "application/json"},
            timeout=10,
        )
        assert response.status_code == 200 and "partialSuccess" not in response.json()
        send_mllp(server.mllp_port, ADT_ELSEWHERE)  # asserts MSA|AA
        deadline = time.monotonic() + 30
        while True:
            listed = server.health()["store"]["undeclared_facilities"]
            if len(listed) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert listed == [{"name": "ATLANTIS", "events": 2}, {"name": "NOWHERE", "events": 1}]
        assert server.health()["store"]["tables"]["otel_traces"] == 2
        assert server.health()["store"]["tables"].get("dead_letters", 0) == 0
