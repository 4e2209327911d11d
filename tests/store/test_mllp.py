"""The MLLP listener over real TCP: the hl7 package's clients and raw sockets."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from pathlib import Path

import hl7
import pytest
from hl7.client import MLLPClient
from hl7.mllp import open_hl7_connection

from collector.intake import Intake
from collector.mllp import MllpListener
from stitchboard.store import MemorySink
from tests.support import InProcess, make_runtime

DATA = Path(__file__).parents[1] / "data" / "hl7"
ADT = (DATA / "adt_a03.hl7").read_bytes()
DFT = (DATA / "v26_dft_p03_three_lines.hl7").read_bytes()


def message(control_id: str, visit: str = "VN-T") -> bytes:
    return (
        f"MSH|^~\\&|EHR_ADT|NMC01|IFENGINE|NMC01|20260314162210||ADT^A03^ADT_A03|{control_id}|P|2.5.1\r"
        f"EVN|A03|20260314162205\rPID|1||MRN-{control_id}^^^NMC^MR||DOE^JO\r"
        f"PV1|1|I|4W^412^B^NMC01||||||||||||||||{visit}\r"
    ).encode()


def frame(data: bytes) -> bytes:
    return b"\x0b" + data + b"\x1c\r"


def read_acks(sock: socket.socket, count: int, timeout: float = 10) -> list[hl7.Message]:
    sock.settimeout(timeout)
    buffer = b""
    acks = []
    while len(acks) < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buffer += chunk
        while b"\x1c\r" in buffer:
            raw, buffer = buffer.split(b"\x1c\r", 1)
            acks.append(hl7.parse(raw.lstrip(b"\x0b").decode()))
    return acks


@pytest.fixture(scope="module")
def runtime(store):
    rt = make_runtime(store)
    yield rt
    rt.writer.close()


@pytest.fixture(scope="module")
def listener(runtime):
    mllp = MllpListener(
        Intake(runtime.config, runtime.pseudonymize), runtime.writer.write, port=0, idle_timeout=30
    )
    with InProcess([mllp]):
        yield mllp


def connect(listener: MllpListener) -> socket.socket:
    return socket.create_connection(("127.0.0.1", listener.port), timeout=10)


def events_with(store, key: str, value: str) -> int:
    return store.scalar(
        f"SELECT count() FROM {store.table('events')} FINAL"
        " WHERE keys[{k:String}] = {v:String}",
        {"k": key, "v": value},
    )


def test_library_client_gets_aa_after_the_event_is_stored(listener, store):
    with MLLPClient("127.0.0.1", listener.port) as client:
        reply = client.send_message(ADT)
    ack = hl7.parse(reply.strip(b"\x0b\x1c\r").decode())
    assert str(ack["MSA.F1"]) == "AA"
    assert str(ack["MSA.F2"]) == "ADT20250314162210004417"
    # AA means durable: the event is readable the moment the ACK arrives.
    assert events_with(store, "msg", "ADT20250314162210004417") == 1


def test_two_messages_in_one_write_get_two_acks_in_order(listener, store):
    with connect(listener) as sock:
        sock.sendall(frame(message("PAIR-1")) + frame(message("PAIR-2")))
        acks = read_acks(sock, 2)
    assert [str(a["MSA.F2"]) for a in acks] == ["PAIR-1", "PAIR-2"]
    assert all(str(a["MSA.F1"]) == "AA" for a in acks)
    assert events_with(store, "msg", "PAIR-2") == 1


def test_partial_frames_byte_by_byte_and_garbage_between_frames(listener, store):
    stream = (
        b"GARBAGE\r\n" + frame(message("BYTE-1")) + b"\x00\xff junk " + frame(message("BYTE-2"))
    )
    with connect(listener) as sock:
        for i in range(len(stream)):
            sock.send(stream[i : i + 1])
        acks = read_acks(sock, 2)
    assert [str(a["MSA.F2"]) for a in acks] == ["BYTE-1", "BYTE-2"]
    assert events_with(store, "msg", "BYTE-1") == 1


def test_client_disconnecting_mid_message_stores_nothing_and_others_carry_on(listener, store):
    with connect(listener) as sock:
        sock.sendall(b"\x0b" + message("HALF-1")[:60])
    with connect(listener) as sock:
        sock.sendall(frame(message("AFTER-HALF")))
        (ack,) = read_acks(sock, 1)
    assert str(ack["MSA.F1"]) == "AA"
    assert events_with(store, "msg", "HALF-1") == 0


def test_a_stuck_client_never_blocks_the_others(listener):
    stuck = connect(listener)
    try:
        stuck.sendall(b"\x0b" + message("STUCK")[:30])  # and never finishes
        started = time.monotonic()
        for i in range(5):
            with MLLPClient("127.0.0.1", listener.port) as client:
                reply = client.send_message(message(f"FREE-{i}"))
            assert b"MSA|AA|FREE-" in reply
        assert time.monotonic() - started < 20
    finally:
        stuck.close()


def test_unusable_message_gets_ae_with_reason_and_err_and_is_dead_lettered(listener, store):
    # No usable event time: EVN-6, EVN-2 and MSH-7 all unreadable.
    bad = message("BAD-TIME").replace(b"|20260314162210|", b"|2026-03-14|")
    bad = bad.replace(b"EVN|A03|20260314162205", b"EVN|A03")
    # A facility slas.yaml does not declare is a configuration gap: AA, stored as sent.
    elsewhere = message("ELSEWHERE-1").replace(b"|NMC01|IFENGINE|", b"|NOWHERE|IFENGINE|")
    elsewhere = elsewhere.replace(b"4W^412^B^NMC01", b"4W^412^B^NOWHERE")
    with connect(listener) as sock:
        sock.sendall(frame(bad) + frame(b"this is not hl7") + frame(elsewhere))
        acks = read_acks(sock, 3)
    first, second, third = acks
    assert str(first["MSA.F1"]) == "AE" and str(first["MSA.F2"]) == "BAD-TIME"
    assert "no usable event time" in first.unescape(str(first.segment("MSA")(3)))
    assert str(first["ERR.F3.R1.C1"]) == "102"
    assert str(second["MSA.F1"]) == "AE" and "MSH" in str(second.segment("MSA")(3))
    assert str(third["MSA.F1"]) == "AA" and str(third["MSA.F2"]) == "ELSEWHERE-1"
    assert events_with(store, "msg", "ELSEWHERE-1") == 1
    rows = store.dicts(
        f"SELECT source, content_type, reason, payload FROM {store.table('dead_letters')} FINAL"
        " WHERE positionUTF8(payload, 'BAD-TIME') > 0"
    )
    assert len(rows) == 1
    assert rows[0]["source"] == "mllp" and rows[0]["content_type"] == "x-application/hl7-v2+er7"
    assert "no usable event time" in rows[0]["reason"]
    assert "MRN-BAD-TIME" not in rows[0]["payload"]  # PHI masked in the dead letter too


def test_many_concurrent_library_clients(listener, store):
    async def sender(n: int) -> list[str]:
        reader, writer = await open_hl7_connection("127.0.0.1", listener.port)
        codes = []
        for i in range(10):
            writer.writemessage(hl7.parse(message(f"C{n}-{i}").decode()))
            await writer.drain()
            ack = await asyncio.wait_for(reader.readmessage(), 10)
            codes.append(f"{ack['MSA.F1']}:{ack['MSA.F2']}")
        writer.close()
        await writer.wait_closed()
        return codes

    async def main() -> list[list[str]]:
        return await asyncio.gather(*(sender(n) for n in range(20)))

    results = asyncio.run(main())
    for n, codes in enumerate(results):
        assert codes == [f"AA:C{n}-{i}" for i in range(10)]
    assert (
        store.scalar(
            f"SELECT count() FROM {store.table('events')} FINAL WHERE startsWith(keys['msg'], 'C')"
            " AND match(keys['msg'], '^C[0-9]+-[0-9]$')"
        )
        == 200
    )


def test_store_down_answers_ar_and_nothing_is_acknowledged(store):
    sink = MemorySink()
    sink.down = True
    runtime = make_runtime(store, sink=sink)
    mllp = MllpListener(Intake(runtime.config, runtime.pseudonymize), runtime.writer.write, port=0)
    try:
        with InProcess([mllp]), socket.create_connection(("127.0.0.1", mllp.port)) as sock:
            sock.sendall(frame(message("DOWN-1")) + frame(b"not hl7 either"))
            acks = read_acks(sock, 2)
            assert [str(a["MSA.F1"]) for a in acks] == ["AR", "AR"]
            assert "store unavailable" in str(acks[0].segment("MSA")(3))
            sink.down = False
            sock.sendall(frame(message("DOWN-1")))
            (ack,) = read_acks(sock, 1)
            assert str(ack["MSA.F1"]) == "AA"
    finally:
        runtime.writer.close()
    assert [r["keys"]["msg"] for r in sink.tables["events"]] == ["DOWN-1"]


def test_overload_answers_ar(store):
    release = threading.Event()

    class SlowSink(MemorySink):
        def insert(self, table, columns, rows):
            release.wait(10)
            super().insert(table, columns, rows)

    sink = SlowSink()
    runtime = make_runtime(store, sink=sink, queue_max_rows=1)
    mllp = MllpListener(Intake(runtime.config, runtime.pseudonymize), runtime.writer.write, port=0)
    try:
        with InProcess([mllp]):
            first = connect(mllp)
            first.sendall(frame(message("SLOW-1")))  # holds the only slot
            time.sleep(0.3)
            with connect(mllp) as sock:
                sock.sendall(frame(message("SLOW-2")))
                (ack,) = read_acks(sock, 1)
            assert str(ack["MSA.F1"]) == "AR"
            assert "overloaded" in str(ack.segment("MSA")(3))
            release.set()
            (ack1,) = read_acks(first, 1)
            assert str(ack1["MSA.F1"]) == "AA"
            first.close()
    finally:
        release.set()
        runtime.writer.close()


def test_metrics_count_messages(listener):
    text = listener.metrics.render().decode()
    received = re.search(r'stitchboard_received_records_total{signal="hl7.mllp"} (\S+)', text)
    assert received and float(received.group(1)) > 0
    assert 'stitchboard_rejected_records_total{signal="hl7.mllp"}' in text
    assert 'stitchboard_requests_total{outcome="ok",signal="hl7.mllp"}' in text


def test_shutdown_still_acks_messages_being_stored_and_closes_idle_connections(store):
    release = threading.Event()

    class SlowSink(MemorySink):
        def insert(self, table, columns, rows):
            release.wait(10)
            super().insert(table, columns, rows)

    runtime = make_runtime(store, sink=SlowSink())
    mllp = MllpListener(Intake(runtime.config, runtime.pseudonymize), runtime.writer.write, port=0)
    try:
        with InProcess([mllp]) as running:
            idle = connect(mllp)
            busy = connect(mllp)
            busy.sendall(frame(message("SHUTDOWN-1")))
            deadline = time.monotonic() + 10
            while runtime.writer.pending_rows == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            stopping = asyncio.run_coroutine_threadsafe(mllp.stop(), running.loop)
            idle.settimeout(10)
            assert idle.recv(100) == b""  # the idle connection is closed at once
            assert not stopping.done()  # while the busy one is still being stored
            release.set()
            (ack,) = read_acks(busy, 1)
            assert str(ack["MSA.F1"]) == "AA" and str(ack["MSA.F2"]) == "SHUTDOWN-1"
            stopping.result(10)
            idle.close()
            busy.close()
    finally:
        release.set()
        runtime.writer.close()
