"""slas.yaml reloads without a restart (admin API and SIGHUP): a fixed alias reaches live
ingest and stored events; a bad file is refused with every problem and the running
configuration stays."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_correlator_api import send_mllp
from tests.support import AUTH, ROOT, serve_process


def adt(control_id: str, visit: str) -> bytes:
    return (
        f"MSH|^~\\&|EHR_ADT|NEWPLACE|IFENGINE|NMC01|20260314162210||ADT^A03^ADT_A03|{control_id}"
        f"|P|2.5.1\rEVN|A03|20260314162205\rPID|1||MRN-{visit}^^^X^MR||DOE^JO\r"
        f"PV1|1|I|4W^412^B^NEWPLACE||||||||||||||||{visit}\r"
    ).encode()


def wait_for(fetch, done, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.3)


@pytest.mark.slow
def test_reload_applies_a_new_alias_and_refuses_a_bad_file(tmp_path: Path) -> None:
    config = tmp_path / "slas.yaml"
    shipped = (ROOT / "slas.yaml").read_text()
    config.write_text(shipped)
    with serve_process(config=config) as server:
        api = f"{server.api}/api/v1"

        def facility_of(visit: str):
            def fetch():
                found = httpx.get(f"{api}/transactions", params={"key": visit}, headers=AUTH).json()
                return [t["facility"] for t in found["transactions"]]

            return fetch

        send_mllp(server.mllp_port, adt("RL-1", "VN-RL-1"))  # AA: undeclared, kept as sent
        assert wait_for(facility_of("VN-RL-1"), bool) == ["NEWPLACE"]

        # A bad file is refused with every problem; the running configuration stays.
        config.write_text(shipped.replace("timezone: America/Chicago", "timezone: Mars/Base"))
        refused = httpx.post(f"{api}/admin/reload-config", timeout=30, headers=AUTH)
        assert refused.status_code == 422
        assert refused.json()["error"]["problems"] == [
            "slas.yaml: facilities[0].timezone: unknown time zone 'Mars/Base'"
        ]
        server.proc.send_signal(signal.SIGHUP)  # refused the same way, logged
        assert server.health()["status"] == "ok"

        # Declare NEWPLACE as an alias of NMC01: live ingest and the stored event follow.
        config.write_text(shipped.replace("aliases: [NMC]", "aliases: [NMC, NEWPLACE]", 1))
        server.proc.send_signal(signal.SIGHUP)
        assert wait_for(facility_of("VN-RL-1"), lambda f: f == ["NMC01"]) == ["NMC01"]
        send_mllp(server.mllp_port, adt("RL-2", "VN-RL-2"))
        assert wait_for(facility_of("VN-RL-2"), bool) == ["NMC01"]
        # Stored under the facility's id at ingest (the first one stays as it was sent).
        stored = {
            key: httpx.get(f"{api}/events", params={"key": key}, headers=AUTH).json()["events"][0][
                "facility"
            ]
            for key in ("VN-RL-1", "VN-RL-2")
        }
        assert stored == {"VN-RL-1": "NEWPLACE", "VN-RL-2": "NMC01"}
        assert server.health()["store"]["undeclared_facilities"] == []
        reloaded = httpx.post(f"{api}/admin/reload-config", timeout=30, headers=AUTH)
        assert reloaded.json() == {"reloaded": True, "facilities": 3, "keys": 23, "workflows": 5}
        assert server.stop() == 0
        assert "slas.yaml not reloaded, the running configuration stays" in server.output
