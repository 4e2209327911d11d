"""No raw PHI reaches ClickHouse: ingest known identifiers through every door, scan every table.

Doors: MLLP (stored and dead-lettered messages), POST /api/v1/messages (HL7, JSON
Lines including broken JSON, CSV), file import, and dead-letter replay. Then every
row of every table in the database is read back as raw bytes and searched.
"""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from collector import dead_letters, messages_api
from collector.dead_letters import Filter, replay
from collector.importer import DirectTarget, import_file
from collector.intake import Intake
from collector.mllp import MllpListener
from stitchboard.api import build_api
from stitchboard.components import HttpComponent
from tests.support import InProcess, free_port, make_runtime

MRN = "MRN9F3K2Q7"
SURNAME, GIVEN = "ZEBRAFINCH", "QUENTIN"
BIRTH = "19451103"
STREET = "742 EVERGREEN TERRACE"
PHONE = "(217)555-0142"
SSN = "987-65-4321"
MOTHER = "WHITLOCKE"
NEEDLES = [MRN, SURNAME, GIVEN, BIRTH, STREET, PHONE, SSN, MOTHER]


def hl7_message(control: str, facility: str = "NMC01") -> bytes:
    return (
        f"MSH|^~\\&|EHR_ADT|{facility}|IFENGINE|NMC01|20260314162210||ADT^A03^ADT_A03|{control}"
        "|P|2.5.1\r"
        "EVN|A03|20260314162205\r"
        f"PID|1||{MRN}^^^NMC^MR~{SSN}^^^SSA^SS||{SURNAME}^{GIVEN}^Q|{MOTHER}|{BIRTH}|M|||"
        f"{STREET}^^SPRINGFIELD^IL^62701||{PHONE}|||||ACCT-PHI-1|{SSN}\r"
        f"PV1|1|I|4W^412^B^{facility}||||||||||||||||VN-PHI-1\r"
    ).encode()


def frame(data: bytes) -> bytes:
    return b"\x0b" + data + b"\x1c\r"


@pytest.fixture(scope="module")
def runtime(store):
    rt = make_runtime(store)
    yield rt
    rt.writer.close()


def read_acks(sock: socket.socket, count: int) -> bytes:
    sock.settimeout(10)
    data = b""
    while data.count(b"\x1c\r") < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_no_raw_phi_in_any_table(runtime, store, tmp_path):
    intake = Intake(runtime.config, runtime.pseudonymize)
    mllp = MllpListener(intake, runtime.writer.write, port=0)
    port = free_port()
    app = build_api(runtime, [messages_api.router(runtime), dead_letters.router(runtime)])
    with InProcess([mllp, HttpComponent("api", app, "127.0.0.1", port, "API")]):
        with socket.create_connection(("127.0.0.1", mllp.port)) as sock:
            sock.sendall(
                frame(hl7_message("PHI-MLLP-1"))
                + frame(hl7_message("PHI-MLLP-2", facility="UNDECLARED"))
                + frame(hl7_message("PHI-MLLP-3").replace(b"EVN|", b"EVN-BROKEN|"))
            )
            acks = read_acks(sock, 3)
        # An undeclared facility is kept (AA); an unreadable message is not (AE).
        assert acks.count(b"MSA|AA|") == 2 and acks.count(b"MSA|AE|") == 1
        api = f"http://127.0.0.1:{port}/api/v1/messages"
        hl7_body = hl7_message("PHI-HTTP-1") + b"\n" + hl7_message("PHI-HTTP-2", "NOPE")
        assert (
            httpx.post(
                api, content=hl7_body, headers={"Content-Type": "x-application/hl7-v2+er7"}
            ).status_code
            == 200
        )
        lines = [
            json.dumps(
                {
                    "time": "2026-03-01T10:00:00Z",
                    "facility": "NMC01",
                    "msg_id": "PHI-J-1",
                    "mrn": MRN,
                    "patient_name": f"{SURNAME} {GIVEN}",
                    "ssn": SSN,
                }
            ),
            json.dumps({"facility": "NMC01", "mrn": MRN, "dob": BIRTH}),  # no time
            '{"mrn": "' + MRN + '", "phone": "' + PHONE + '", broken',
        ]
        assert (
            httpx.post(
                api, content="\n".join(lines), headers={"Content-Type": "application/x-ndjson"}
            ).status_code
            == 200
        )
        csv_body = (
            f"timestamp,facility,msg_id,mrn,address\n"
            f'2026-03-01T10:00:00,NMC01,PHI-C-1,{MRN},"{STREET}"\n'
            f'2026-03-01T10:00:00,ELSEWHERE,PHI-C-2,{MRN},"{STREET}"\n'
        )
        assert (
            httpx.post(api, content=csv_body, headers={"Content-Type": "text/csv"}).status_code
            == 200
        )

    path = tmp_path / "phi.hl7"
    path.write_bytes(hl7_message("PHI-FILE-1") + b"\n" + hl7_message("PHI-FILE-2", "NOPE") + b"\n")
    import_file(DirectTarget(runtime), path, "auto", restart=False, chunk_size=10)
    replay(runtime, Filter(), runtime.writer.write_sync)

    # Everything went somewhere: stored events and masked dead letters.
    assert (
        store.scalar(
            f"SELECT count() FROM {store.table('events')} FINAL"
            " WHERE startsWith(keys['msg'], 'PHI-')"
        )
        == 9  # every well-formed record, undeclared facilities included
    )
    assert store.scalar(f"SELECT count() FROM {store.table('dead_letters')} FINAL") == 3

    tables = [
        name
        for (name,) in store.rows(
            "SELECT name FROM system.tables WHERE database = {db:String}", {"db": store.database}
        )
    ]
    assert {"events", "dead_letters", "otel_traces", "otel_logs", "message_imports"} <= set(tables)
    client = store.client()
    dumps = {t: client.raw_query(f"SELECT * FROM {store.table(t)}", fmt="TSVRaw") for t in tables}
    # The scan sees the data: identifiers that are not PHI are there in the clear.
    assert b"ACCT-PHI-1" in dumps["events"] and b"VN-PHI-1" in dumps["events"]
    assert b"PHI-MLLP-3" in dumps["dead_letters"] and b"ELSEWHERE" in dumps["events"]
    for table, dump in dumps.items():
        for needle in NEEDLES:
            assert needle.encode() not in dump, f"raw PHI {needle!r} found in {table}"

    # Looking a patient up by MRN works by pseudonymizing the query.
    found = store.scalar(
        f"SELECT count() FROM {store.table('events')} FINAL WHERE keys['mrn'] = {{p:String}}",
        {"p": runtime.pseudonymize(MRN)},
    )
    assert found == 9
