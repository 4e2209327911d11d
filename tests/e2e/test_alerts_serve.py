"""The alerts stage inside a real ``stitchboard serve``: API shapes, errors, silences."""

from __future__ import annotations

import httpx
import pytest

from tests.support import AUTH, serve_process

pytestmark = pytest.mark.slow


def test_slos_alerts_and_silences_over_http() -> None:
    with serve_process() as server, httpx.Client(headers=AUTH) as client:
        api = f"{server.api}/api/v1"
        # Writes are recorded under the caller's identity, whatever author a body names.
        me = client.get(f"{api}/whoami", timeout=10).json()["name"]
        slos = client.get(f"{api}/slos", timeout=30).json()["items"]
        # Seven shipped SLOs x three facilities, and an empty store: all no_data, never 100 %.
        assert len(slos) == 21
        assert {s["status"] for s in slos} == {"no_data"}
        assert all(s["compliance"] is None for s in slos)
        lakeside = client.get(f"{api}/slos", params={"facility": "LCH"}, timeout=30).json()
        assert {s["group"]["facility"] for s in lakeside["items"]} == {"LCH02"}
        # The server's correlator has nothing to correlate: none pending.
        assert lakeside["correlator_pending_events"] == 0
        # Nothing received, so no feed is receiving a backlog and nothing is held for one.
        assert lakeside["backfilling"] == []
        assert [s["held"] for s in lakeside["items"]] == [None] * 7
        detail = client.get(
            f"{api}/slos/discharge_charges_posted",
            params={"facility": "LCH02", "hours": 3},
            timeout=30,
        ).json()
        [item] = detail["items"]
        assert detail["objective"] == 0.97 and detail["window"] == "30d"
        # Buckets start on the hour: three hours back spans four of them (three on the hour).
        assert len(item["series"]) in (3, 4) and all(
            p["compliance"] is None for p in item["series"]
        )
        assert item["burn_rates"] == {
            "5m": None,
            "30m": None,
            "1h": None,
            "2h": None,
            "6h": None,
            "1d": None,
            "3d": None,
        }
        assert client.get(f"{api}/slos/nope", timeout=10).status_code == 404
        assert client.get(f"{api}/slos", params={"facility": "XX"}, timeout=10).status_code == 400

        assert client.get(f"{api}/alerts", timeout=10).json() == {"items": []}
        bad = client.get(f"{api}/alerts", params={"state": "on fire"}, timeout=10)
        assert bad.status_code == 400 and "bad state" in bad.json()["error"]["message"]
        created = client.post(
            f"{api}/alerts/silences",
            json={
                "matchers": {"facility": "LCH02"},
                "duration": "2h",
                "author": "dana",
                "comment": "EHR upgrade",
            },
            timeout=10,
        )
        assert created.status_code == 201
        sid = created.json()["id"]
        [listed] = client.get(f"{api}/alerts/silences", timeout=10).json()["items"]
        assert (listed["id"], listed["author"]) == (sid, me)
        refused = client.post(
            f"{api}/alerts/silences",
            json={"matchers": {}, "duration": "1h", "author": "x"},
            timeout=10,
        )
        assert refused.status_code in (400, 422)
        expired = client.post(
            f"{api}/alerts/silences/{sid}/expire", json={"author": "lee"}, timeout=10
        )
        assert expired.json() == {"id": sid, "expired_by": me}
        missing = client.post(f"{api}/alerts/ffff/ack", json={"author": "dana"}, timeout=10)
        assert missing.status_code == 404
        assert client.get(f"{api}/alerts/notifications", timeout=10).json() == {"items": []}
        # Without credentials nothing is answered; the audit log names both silence attempts,
        # newest first: the refused one, then the created one.
        assert httpx.get(f"{api}/alerts", timeout=10).status_code == 401
        audit = client.get(f"{api}/audit", params={"action": "alert.silence"}, timeout=10).json()
        assert [(row["actor"], row["outcome"]) for row in audit["audit"]] == [
            (me, "failed 400"),
            (me, "ok"),
        ]
    assert "7 SLOs every 15s; channels: log" in server.output  # the startup banner
