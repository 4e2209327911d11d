"""POST /api/v1/messages over real HTTP: HL7, JSON Lines, CSV; durability and errors."""

from __future__ import annotations

import gzip
import json
import re
import threading
import time
from pathlib import Path

import httpx
import pytest

from collector import dead_letters, messages_api
from stitchboard.api import build_api
from stitchboard.components import HttpComponent
from stitchboard.store import MemorySink
from tests.support import AUTH, InProcess, free_port, make_runtime

DATA = Path(__file__).parents[1] / "data" / "hl7"
HL7 = "x-application/hl7-v2+er7"


def serve(runtime):
    port = free_port()
    routers = [messages_api.router(runtime), dead_letters.router(runtime)]
    app = build_api(runtime, routers)
    return InProcess(
        [HttpComponent("api", app, "127.0.0.1", port, "API")]
    ), f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def api(store):
    runtime = make_runtime(store, max_body_bytes=200_000)
    server, url = serve(runtime)
    with server:
        yield url
    runtime.writer.close()


def count(store, table: str, where: str) -> int:
    return store.scalar(f"SELECT count() FROM {store.table(table)} FINAL WHERE {where}")


def test_hl7_messages_are_durable_before_200_with_per_record_rejections(api, store):
    body = b"\n".join(
        [
            (DATA / "adt_a03.hl7").read_bytes(),
            (DATA / "v26_dft_p03_three_lines.hl7").read_bytes(),
            b"MSH|^~\\&|EHR|NMC01|X|Y|||ADT^A03|NO-TIME-1|P|2.5.1\rEVN|A03\rPID|1||M1",
            (DATA / "v23_adt_a01.hl7").read_bytes(),  # facility not declared: kept as sent
        ]
    )
    response = httpx.post(f"{api}/api/v1/messages", content=body, headers={"Content-Type": HL7})
    assert response.status_code == 200
    result = response.json()
    assert result["received"] == 4 and result["accepted"] == 3 and result["rejected"] == 1
    assert result["events"] == 5  # two ADTs, three charge lines
    (rejection,) = result["rejections"]
    assert rejection["index"] == 2 and rejection["control_id"] == "NO-TIME-1"
    assert "no usable event time" in rejection["reason"]
    assert count(store, "events", "keys['msg'] = 'MSG00001'") == 1
    assert count(store, "events", "facility = 'GOOD HEALTH HOSPITAL'") == 1
    assert count(store, "events", "keys['msg'] = 'LCH-DFT-000777'") == 3
    assert count(store, "dead_letters", "source = 'http.messages'") == 1
    # Sending the same body again stores nothing twice.
    again = httpx.post(f"{api}/api/v1/messages", content=body, headers={"Content-Type": HL7})
    assert again.status_code == 200
    assert count(store, "events", "keys['msg'] = 'LCH-DFT-000777'") == 3
    assert count(store, "dead_letters", "source = 'http.messages'") == 1


def test_json_lines_with_good_and_bad_records(api, store):
    lines = [
        {
            "timestamp": "2026-03-10T10:00:00Z",
            "facility": "NMC",
            "system": "ERP_GL",
            "operation": "journal.posted",
            "journal": "J-1",
            "charge_batch": "B-1",
            "amount": "12.5",
        },
        {
            "timestamp": 1773137000,
            "facility": "LCH02",
            "system": "MW",
            "status": "failed",
            "msg_id": "M-77",
            "error": "downstream timeout",
            "mrn": "MRN-JSON-1",
        },
        {"facility": "NMC01", "system": "MW", "mrn": "MRN-JSON-2"},  # no time
        "not an object",
    ]
    body = "\n".join(json.dumps(x) for x in lines) + '\n{"mrn": "MRN-JSON-3", broken\n'
    response = httpx.post(
        f"{api}/api/v1/messages", content=body, headers={"Content-Type": "application/x-ndjson"}
    )
    assert response.status_code == 200
    result = response.json()
    assert (result["accepted"], result["rejected"]) == (2, 3)
    reasons = [r["reason"] for r in result["rejections"]]
    assert "no event time" in reasons[0] and "must be an object" in reasons[1]
    assert "not valid JSON" in reasons[2]
    journal = store.dicts(
        f"SELECT facility, amount, keys, source_kind FROM {store.table('events')} FINAL"
        " WHERE keys['journal'] = 'J-1'"
    )
    assert journal[0]["facility"] == "NMC01" and str(journal[0]["amount"]) == "12.50"
    assert journal[0]["keys"]["charge_batch"] == "B-1" and journal[0]["source_kind"] == "jsonl"
    failed = store.dicts(
        f"SELECT status, status_message, keys FROM {store.table('events')} FINAL"
        " WHERE keys['msg'] = 'M-77'"
    )[0]
    assert failed["status"] == "error" and failed["status_message"] == "downstream timeout"
    assert failed["keys"]["mrn"].startswith("phi:")
    payloads = store.rows(f"SELECT payload FROM {store.table('dead_letters')} FINAL")
    text = " ".join(p for (p,) in payloads)
    for mrn in ("MRN-JSON-1", "MRN-JSON-2", "MRN-JSON-3"):
        assert mrn not in text


def test_csv_rows(api, store):
    body = (
        "event_time,facility,system,operation,po,invoice,amount\n"
        '2026-03-01 08:00:00,MSC03,ERP,invoice.matched,PO-9,INV-9,"1,250.00"\n'
        "2026-03-01 09:00:00,MSC03,ERP,invoice.matched,PO-10,INV-10,10,extra\n"
    )
    response = httpx.post(
        f"{api}/api/v1/messages", content=body, headers={"Content-Type": "text/csv"}
    )
    result = response.json()
    assert (result["accepted"], result["rejected"]) == (1, 1)
    assert "more values than the header" in result["rejections"][0]["reason"]
    row = store.dicts(
        f"SELECT amount, keys, source_kind FROM {store.table('events')} FINAL"
        " WHERE keys['po'] = 'PO-9'"
    )[0]
    assert str(row["amount"]) == "1250.00" and row["keys"]["invoice"] == "INV-9"
    assert row["source_kind"] == "csv"


def test_gzip_body(api, store):
    body = gzip.compress((DATA / "dft_p03_credit.hl7").read_bytes())
    response = httpx.post(
        f"{api}/api/v1/messages",
        content=body,
        headers={"Content-Type": HL7, "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200 and response.json()["accepted"] == 1


def test_errors_have_the_common_shape(api):
    wrong = httpx.post(
        f"{api}/api/v1/messages", content=b"x", headers={"Content-Type": "application/pdf"}
    )
    assert wrong.status_code == 415
    assert wrong.json()["error"]["code"] == "unsupported_media_type"
    big = httpx.post(
        f"{api}/api/v1/messages", content=b"M" * 300_000, headers={"Content-Type": HL7}
    )
    assert big.status_code == 413 and "limit" in big.json()["error"]["message"]
    empty = httpx.post(f"{api}/api/v1/messages", content=b"", headers={"Content-Type": HL7})
    assert empty.status_code == 200 and empty.json()["received"] == 0


def test_import_checkpoint_travels_with_the_records(api, store):
    headers = {
        "Content-Type": HL7,
        "X-Stitchboard-Source": "file:adt.hl7",
        "X-Stitchboard-Import-Id": "f" * 32,
        "X-Stitchboard-Import-Offset": "519",
        "X-Stitchboard-Import-Name": "adt.hl7",
    }
    response = httpx.post(
        f"{api}/api/v1/messages", content=(DATA / "adt_a03.hl7").read_bytes(), headers=headers
    )
    assert response.status_code == 200
    checkpoint = httpx.get(f"{api}/api/v1/messages/imports/{'f' * 32}").json()
    assert checkpoint["offset"] == 519
    assert httpx.get(f"{api}/api/v1/messages/imports/unknown").json()["offset"] == 0
    sources = store.rows(
        f"SELECT DISTINCT source FROM {store.table('events')} FINAL"
        " WHERE keys['msg'] = 'ADT20250314162210004417'"
    )
    assert ("adt.hl7",) in sources


def test_store_down_is_503_and_overload_is_429(store):
    sink = MemorySink()
    sink.down = True
    runtime = make_runtime(store, sink=sink)
    server, url = serve(runtime)
    body = (DATA / "adt_a03.hl7").read_bytes()
    try:
        with server:
            down = httpx.post(f"{url}/api/v1/messages", content=body, headers={"Content-Type": HL7})
            assert down.status_code == 503 and "Retry-After" in down.headers
    finally:
        runtime.writer.close()

    release = threading.Event()

    class SlowSink(MemorySink):
        def insert(self, table, columns, rows):
            release.wait(10)
            super().insert(table, columns, rows)

    runtime = make_runtime(store, sink=SlowSink(), queue_max_rows=1)
    server, url = serve(runtime)
    try:
        with server:
            first = threading.Thread(
                target=httpx.post,
                args=(f"{url}/api/v1/messages",),
                kwargs={"content": body, "headers": {"Content-Type": HL7}},
            )
            first.start()  # its one row fills the buffer until the sink is released
            deadline = time.monotonic() + 10
            while runtime.writer.pending_rows == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            busy = httpx.post(f"{url}/api/v1/messages", content=body, headers={"Content-Type": HL7})
            assert busy.status_code == 429 and busy.headers["Retry-After"] == "1"
            release.set()
            first.join(10)
    finally:
        release.set()
        runtime.writer.close()


def test_metrics_count_records(api):
    text = httpx.get(f"{api}/metrics", headers=AUTH).text
    received = re.search(r'stitchboard_received_records_total{signal="messages.http"} (\S+)', text)
    assert received and float(received.group(1)) > 0
    assert 'stitchboard_requests_total{outcome="ok",signal="messages.http"}' in text
