"""The spool in front of the embedded store: engine-decoded OTLP and HL7 rows load exactly once,
a second load after a lost checkpoint doubles nothing, and MLLP senders keep getting AA
while the store refuses writes."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from pathlib import Path

import httpx
import pytest

from collector.http import build_app
from collector.ingest import TRACES, otlp_ingest
from collector.intake import Intake, batch_of
from collector.mllp import MllpListener
from collector.otlp import PROTOBUF
from collector.otlp_native import NATIVE_KIND
from stitchboard.components import HttpComponent
from stitchboard.spool.journal import CHECKPOINT
from stitchboard.store import OutageSink
from tests.otlp_factory import spans_request
from tests.support import InProcess, free_port, make_runtime

PB = {"content-type": "application/x-protobuf"}

OUTAGE_SECONDS = float(os.environ.get("STITCHBOARD_OUTAGE_SECONDS", "4"))


def hl7_message(control_id: str) -> bytes:
    return (
        "MSH|^~\\&|EHR_ADT|NMC01|IFENGINE|NMC01|20260314162210||ADT^A03^ADT_A03|"
        f"{control_id}|P|2.5.1\rEVN|A03|20260314162205\r"
        f"PID|1||MRN-{control_id}^^^NMC^MR||DOE^JO\rPV1|1|I|4W^412^B^NMC01||||||||||||||||V-{control_id}\r"
    ).encode()


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def counts(store, tag: str) -> dict[str, int]:
    """Rows readers see (FINAL) and distinct ids, for the events whose source has ``tag``."""
    row = store.rows(
        f"SELECT count(), uniqExact(event_id) FROM {store.table('events')} FINAL"
        " WHERE position(source, {tag:String}) > 0 OR keys['msg'] LIKE {like:String}",
        {"tag": tag, "like": f"{tag}%"},
    )[0]
    return {"final": int(row[0]), "ids": int(row[1])}


def test_engine_decoded_spans_and_hl7_load_once_even_when_loaded_twice(store, tmp_path: Path):
    runtime = make_runtime(store, spool=tmp_path)
    ingest = otlp_ingest(runtime)  # registers the engine-side decoder with the writer
    assert ingest.native is not None
    body = spans_request(40, service="SPOOLSVC", seed=11).SerializeToString()
    decoded = TRACES.decode(body, PROTOBUF, ingest.normalizer, ingest.native)
    assert NATIVE_KIND in decoded.batch.raw
    runtime.writer.write_sync(decoded.batch, timeout=10)
    intake = Intake(runtime.config, runtime.pseudonymize)
    outcomes = [intake.hl7(hl7_message(f"SPOOLSVC-{i}"), "mllp:test", "mllp") for i in range(25)]
    runtime.writer.write_sync(batch_of(outcomes), timeout=10)
    runtime.writer.start()
    wait_for(lambda: runtime.writer.pending_rows == 0)
    assert counts(store, "SPOOLSVC") == {"final": 65, "ids": 65}
    traces = store.scalar(
        f"SELECT count() FROM {store.table('otel_traces')} FINAL WHERE ServiceName = 'SPOOLSVC'"
    )
    assert traces == 40
    runtime.writer.close()

    # A crash after the load but before the checkpoint: the next start loads it all again.
    (tmp_path / CHECKPOINT).write_text(json.dumps({"segment": 1, "offset": 8}))
    again = make_runtime(store, spool=tmp_path)
    otlp_ingest(again)
    assert again.writer.pending_rows == 40 + 25
    again.writer.start()
    wait_for(lambda: again.writer.pending_rows == 0)
    assert counts(store, "SPOOLSVC") == {"final": 65, "ids": 65}
    traces = store.scalar(
        f"SELECT count() FROM {store.table('otel_traces')} FINAL WHERE ServiceName = 'SPOOLSVC'"
    )
    assert traces == 40
    again.writer.close()


async def _send(port: int, ids: list[str]) -> dict[str, int]:
    codes: dict[str, int] = {}
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for control_id in ids:
        writer.write(b"\x0b" + hl7_message(control_id) + b"\x1c\r")
        ack = await reader.readuntil(b"\x1c\r")
        code = ack.split(b"MSA|", 1)[1][:2].decode()
        codes[code] = codes.get(code, 0) + 1
    writer.close()
    await writer.wait_closed()
    return codes


def send_concurrently(port: int, ids: list[str], senders: int) -> dict[str, int]:
    async def main() -> list[dict[str, int]]:
        return await asyncio.gather(*(_send(port, ids[k::senders]) for k in range(senders)))

    total: dict[str, int] = {}
    for codes in asyncio.run(main()):
        for code, n in codes.items():
            total[code] = total.get(code, 0) + n
    return total


@pytest.mark.slow
def test_mllp_senders_get_aa_while_the_store_refuses_writes_and_all_load_after(
    store, tmp_path: Path
):
    sink = OutageSink(store)
    runtime = make_runtime(store, sink=sink, spool=tmp_path)
    listener = MllpListener(Intake(runtime.config, runtime.pseudonymize), runtime.writer.write)
    listener.port = 0
    runtime.writer.start()
    with InProcess([listener]):
        before = send_concurrently(listener.port, [f"OUTAGE-A{i}" for i in range(100)], 4)
        wait_for(lambda: runtime.writer.pending_rows == 0)
        sink.down = True
        # Senders carry on through the outage (STITCHBOARD_OUTAGE_SECONDS, 4 by default).
        during: dict[str, int] = {}
        outage_ends = time.monotonic() + OUTAGE_SECONDS
        batch = 0
        while time.monotonic() < outage_ends:
            ids = [f"OUTAGE-B{batch}-{i}" for i in range(80)]
            for code, n in send_concurrently(listener.port, ids, 8).items():
                during[code] = during.get(code, 0) + n
            batch += 1
        health = runtime.writer.health()
        assert health is not None and health["load_error"]
        assert health["unloaded_records"] == batch * 80
        assert counts(store, "OUTAGE-B") == {"final": 0, "ids": 0}
        sink.down = False
        after = send_concurrently(listener.port, [f"OUTAGE-C{i}" for i in range(100)], 4)
        wait_for(lambda: runtime.writer.pending_rows == 0)
    runtime.writer.close()
    assert before == {"AA": 100} and after == {"AA": 100}
    assert during == {"AA": batch * 80}
    print(f"outage of {OUTAGE_SECONDS:.0f}s: {batch * 80} messages acknowledged into the spool")
    assert sink.refused > 0
    assert counts(store, "OUTAGE-A") == {"final": 100, "ids": 100}
    assert counts(store, "OUTAGE-B") == {"final": batch * 80, "ids": batch * 80}
    assert counts(store, "OUTAGE-C") == {"final": 100, "ids": 100}


def _fill(client: httpx.Client, url: str, tag: str, seed: int) -> tuple[int, httpx.Response]:
    """Post 10-span requests until one is refused; how many were acknowledged, and the refusal."""
    for n in range(1000):
        request = spans_request(10, seed=seed + n, extra={"batch.tag": tag})
        body = request.SerializeToString()
        response = client.post(f"{url}/v1/traces", content=body, headers=PB)
        if response.status_code != 200:
            return n, response
    raise AssertionError("the spool never filled")


def _mllp_code(port: int, control_id: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"\x0b" + hl7_message(control_id) + b"\x1c\r")
        ack = b""
        while b"\x1c\r" not in ack:
            ack += sock.recv(4096)
    return ack.split(b"MSA|", 1)[1][:2].decode()


def _mllp_fill(port: int, prefix: str) -> int:
    """Send messages until one is answered AR; how many were answered AA before it."""
    for n in range(1000):
        code = _mllp_code(port, f"{prefix}-{n}")
        if code == "AR":
            return n
        assert code == "AA"
    raise AssertionError("the spool never filled")


def test_a_full_spool_answers_429_or_503_with_retry_after_and_ar_then_recovers(
    store, tmp_path: Path
):
    sink = OutageSink(store)
    runtime = make_runtime(store, sink=sink, spool=tmp_path, spool_max_bytes=60_000)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    otlp = HttpComponent("otlp", build_app(runtime), "127.0.0.1", port, "OTLP")
    mllp = MllpListener(Intake(runtime.config, runtime.pseudonymize), runtime.writer.write)
    mllp.port = 0
    with InProcess([otlp, mllp]), httpx.Client(timeout=10) as client:
        # The loader is not running yet: the spool fills and says so (429: retry later).
        full, refused = _fill(client, url, "full-a", 10_000)
        assert full > 0
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
        first_aa = _mllp_fill(mllp.port, "FULL-M1")
        runtime.writer.start()
        wait_for(lambda: runtime.writer.pending_rows == 0)
        assert _mllp_code(mllp.port, "FULL-AA-1") == "AA"
        # The store refuses writes: ingest goes on into the spool until it is full (503).
        sink.down = True
        # The loader learns of the outage at its next load: from then on a full spool is
        # a store problem (503), not a busy loader (429).
        first = spans_request(10, seed=19_999, extra={"batch.tag": "full-b"})
        sent = client.post(f"{url}/v1/traces", content=first.SerializeToString(), headers=PB)
        assert sent.status_code == 200
        wait_for(lambda: (runtime.writer.health() or {}).get("load_error") is not None)
        during, refused = _fill(client, url, "full-b", 20_000)
        assert during > 0
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        second_aa = _mllp_fill(mllp.port, "FULL-M2")
        sink.down = False
        wait_for(lambda: runtime.writer.pending_rows == 0)
        assert _mllp_code(mllp.port, "FULL-AA-2") == "AA"
        wait_for(lambda: runtime.writer.pending_rows == 0)
    runtime.writer.close()
    tagged = f"SELECT count() FROM {store.table('events')} FINAL WHERE attributes['batch.tag'] = "
    assert store.scalar(tagged + "'full-a'") == full * 10
    assert store.scalar(tagged + "'full-b'") == (during + 1) * 10
    assert counts(store, "FULL-AA") == {"final": 2, "ids": 2}
    # Exactly the messages answered AA are stored; the one answered AR is not.
    assert counts(store, "FULL-M1") == {"final": first_aa, "ids": first_aa}
    assert counts(store, "FULL-M2") == {"final": second_aa, "ids": second_aa}
    assert counts(store, f"FULL-M1-{first_aa}") == {"final": 0, "ids": 0}
