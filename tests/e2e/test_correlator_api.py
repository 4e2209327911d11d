"""End to end: HL7 over MLLP and OTLP/HTTP into a real ``stitchboard serve``, read back
as one transaction through /api/v1/transactions."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.support import AUTH, serve_process

DATA = Path(__file__).parents[1] / "data" / "hl7"
VISIT = "VN20250310-000917"
ACK_FROM_ENGINE = (
    b"MSH|^~\\&|IFENGINE|NMC01|EHR_ADT|NMC01|20250314161630||ACK^A03^ACK|ACK0001|P|2.5.1\r"
    b"MSA|AA|ADT20250314162210004417\r"
)


def send_mllp(port: int, *messages: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for message in messages:
            sock.sendall(b"\x0b" + message + b"\x1c\r")
            reply = b""
            while not reply.endswith(b"\x1c\r"):
                chunk = sock.recv(65536)
                assert chunk, "connection closed before the ACK"
                reply += chunk
            assert b"MSA|AA" in reply, reply


def journal_span() -> dict:
    def attr(key: str, value: str) -> dict:
        return {"key": key, "value": {"stringValue": value}}

    start = 1741996800 * 10**9  # 2025-03-15
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [attr("service.name", "ERP_GL"), attr("facility.id", "NMC01")]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "0af7651916cd43dd8448eb211c80319c",
                                "spanId": "b7ad6b7169203331",
                                "name": "gl.journal.post",
                                "kind": 1,
                                "startTimeUnixNano": str(start),
                                "endTimeUnixNano": str(start + 10**9),
                                "attributes": [
                                    attr("charge.batch_id", "B20250312-OR07"),
                                    attr("gl.journal_id", "JE-2025-0315-7010"),
                                ],
                            }
                        ]
                    }
                ],
            }
        ]
    }


def wait_for(fetch, predicate, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if predicate(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


@pytest.mark.slow
def test_hops_from_hl7_and_otlp_become_one_transaction() -> None:
    with serve_process() as server:
        api = f"{server.api}/api/v1"
        send_mllp(
            server.mllp_port,
            (DATA / "adt_a03.hl7").read_bytes(),
            ACK_FROM_ENGINE,
            (DATA / "dft_p03.hl7").read_bytes(),
        )
        response = httpx.post(
            f"{server.otlp_http}/v1/traces",
            content=json.dumps(journal_span()),
            headers={"content-type": "application/json"},
            timeout=10,
        )
        assert response.status_code == 200, response.text

        def by_visit():
            return httpx.get(
                f"{api}/transactions", params={"key": VISIT}, timeout=10, headers=AUTH
            ).json()

        def stitched(body: dict) -> bool:
            # Hops arrive in more than one batch: until the last one is correlated, the
            # first hops may still form a transaction of their own.
            found = [t for t in body["transactions"] if t["workflow"] == "discharge_to_revenue"]
            return len(found) == 1 and found[0]["event_count"] >= 4

        found = wait_for(by_visit, stitched)
        [tx] = [t for t in found["transactions"] if t["workflow"] == "discharge_to_revenue"]
        assert tx["event_count"] == 4 and tx["facility"] == "NMC01"
        # 2025 events with no coding or final bill yet: open, and past its deadlines.
        assert (tx["status"], tx["level"]) == ("overdue", "breach")
        # The sample charge was posted during the stay, before the discharge: normal.
        assert "out_of_order" not in tx["flags"]

        # PHI: the MRN is stored as a pseudonym; searching by the raw MRN still finds it.
        by_mrn = httpx.get(
            f"{api}/transactions", params={"key": "MRN00482917"}, headers=AUTH
        ).json()
        assert tx["id"] in {t["id"] for t in by_mrn["transactions"]}
        assert all("MRN00482917" not in v for vs in tx["keys"].values() for v in vs)

        detail = httpx.get(f"{api}/transactions/{tx['id']}", headers=AUTH).json()
        assert [(e["step"], e["system"]) for e in detail["events"]] == [
            ("charge", "PERIOP"),
            ("discharge", "EHR_ADT"),
            ("engine_ack", "IFENGINE"),
            ("gl_journal", "ERP_GL"),
        ]
        journal = detail["events"][-1]
        assert journal["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
        ack = next(s for s in detail["steps"] if s["name"] == "engine_ack")
        assert ack["count"] == 1 and ack["missed"] is None
        assert {m["step"] for m in detail["missed"]} >= {"coding_complete", "final_bill"}

        listing = httpx.get(
            f"{api}/transactions",
            params={"workflow": "discharge_to_revenue", "status": "overdue"},
            headers=AUTH,
        ).json()
        assert tx["id"] in {t["id"] for t in listing["transactions"]}
        names = {w["name"] for w in httpx.get(f"{api}/workflows", headers=AUTH).json()["workflows"]}
        assert "timecard_to_labor_gl" in names

        for params, words in (
            ({"workflow": "nope"}, "unknown workflow 'nope'"),
            ({"since": "yesterday"}, "bad time 'yesterday' for since"),
            ({"cursor": "%%%"}, "bad cursor"),
            ({"status": "stuck"}, "unknown status 'stuck'"),
        ):
            bad = httpx.get(f"{api}/transactions", params=params, headers=AUTH)
            assert bad.status_code == 400
            assert words in bad.json()["error"]["message"]
        missing = httpx.get(f"{api}/transactions/0123abcd", headers=AUTH)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"

        # A restart rebuilds the state from events: same transaction, same id.
        server.stop()
        server.start()
        again = wait_for(by_visit, lambda b: b["transactions"])
        assert [t["id"] for t in again["transactions"]] == [tx["id"]]
        # Health counts transactions as the listing returns them: the restart rewrote
        # each one (a second stored version until a merge), and each still counts once.
        everything = httpx.get(f"{api}/transactions", params={"limit": 1000}, headers=AUTH).json()[
            "transactions"
        ]
        assert [t["id"] for t in everything] == [tx["id"]]  # one visit, one transaction
        health = httpx.get(f"{api}/health", headers=AUTH).json()
        assert health["store"]["stages"]["correlator"] == {"transactions": 1}
