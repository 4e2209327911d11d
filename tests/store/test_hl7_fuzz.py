"""Fuzzing: random bytes and mutated messages against the intake, the MLLP listener and
POST /api/v1/messages. Nothing crashes, nothing answers 5xx, and every input is either
stored as events or dead-lettered with a reason."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector import messages_api
from collector.intake import Intake
from collector.mllp import MllpListener
from stitchboard.api import build_api
from stitchboard.components import HttpComponent
from tests.support import InProcess, free_port, make_runtime

DATA = Path(__file__).parents[1] / "data" / "hl7"
SAMPLES = [p.read_bytes() for p in sorted(DATA.glob("*.hl7"))]
JSON_LINES = [
    b'{"timestamp": "2026-03-01T10:00:00Z", "facility": "NMC01", "msg_id": "F-1", "amount": 1}',
    b'{"ts": 1772359200, "facility": "LCH", "system": "MW", "status": "failed", "mrn": "M-1"}',
    b'{"event_time": "20260301100000", "facility": {"id": "X"}, "keys": [1, 2, null]}',
]
SPECIAL = [
    b"|",
    b"^",
    b"~",
    b"\\",
    b"&",
    b"\r",
    b"\n",
    b"MSH",
    b"\xff",
    b"\x00",
    "é".encode(),
    b'""',
    b"\\X0D\\",
    b"\\F\\",
    b"FT1|",
    b"PID|1||",
    b"-0500",
    b"99999999999999",
]


def mutate(rnd: random.Random, message: bytes) -> bytes:
    data = bytearray(message)
    for _ in range(rnd.randint(1, 6)):
        op = rnd.randrange(6)
        at = rnd.randrange(len(data) + 1)
        if op == 0 and data:
            del data[at : at + rnd.randint(1, 8)]
        elif op == 1:
            data[at:at] = rnd.choice(SPECIAL)
        elif op == 2:
            data[at:at] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 6)))
        elif op == 3:
            del data[rnd.randrange(len(data) + 1) :]
        elif op == 4:
            segments = bytes(data).split(b"\r")
            rnd.shuffle(segments)
            data = bytearray(b"\r".join(segments))
        else:
            data = data.replace(b"|", rnd.choice([b"||", b"|^", b"|~"]), rnd.randint(1, 3))
    return bytes(data)


inputs = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda seed, i: mutate(random.Random(seed), SAMPLES[i]),
        st.integers(0, 2**32),
        st.integers(0, len(SAMPLES) - 1),
    ),
)


@pytest.fixture(scope="module")
def runtime(store):
    rt = make_runtime(store)
    yield rt
    rt.writer.close()


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=inputs)
def test_intake_never_raises_and_always_decides(runtime, data: bytes) -> None:
    outcome = Intake(runtime.config, runtime.pseudonymize).hl7(data, "fuzz", "mllp")
    if outcome.accepted:
        assert outcome.events
    else:
        assert outcome.reason and outcome.dead_letter is not None
        assert outcome.dead_letter.payload is not None


def test_listener_answers_every_frame_and_keeps_every_input(runtime, store):
    rnd = random.Random(20260314)
    intake = Intake(runtime.config, runtime.pseudonymize)
    listener = MllpListener(intake, runtime.writer.write, port=0)
    frames = []
    for n in range(300):
        if n % 3 == 0:
            body = bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 200)))
        else:
            body = mutate(rnd, rnd.choice(SAMPLES))
        # <VT> and <FS> are MLLP's own framing bytes and cannot occur inside a message.
        frames.append(body.replace(b"\x0b", b"").replace(b"\x1c", b""))
    stream = b"".join(
        bytes(rnd.randrange(32, 127) for _ in range(rnd.randint(0, 5))) + b"\x0b" + f + b"\x1c\r"
        for f in frames
    )
    with InProcess([listener]), socket.create_connection(("127.0.0.1", listener.port)) as sock:
        sock.settimeout(30)
        position = 0
        while position < len(stream):
            size = rnd.randint(1, 4096)
            sock.sendall(stream[position : position + size])
            position += size
        received = b""
        while received.count(b"\x1c\r") < len(frames):
            chunk = sock.recv(65536)
            assert chunk, "listener closed the connection"
            received += chunk
    acks = [a.lstrip(b"\x0b") for a in received.split(b"\x1c\r") if a.strip()]
    assert len(acks) == len(frames)
    event_ids: set[str] = set()
    letter_ids: set[str] = set()
    for body, ack in zip(frames, acks, strict=True):
        msa = ack.split(b"\r")[1].split(ack[3:4])
        assert msa[1] in (b"AA", b"AE"), ack
        expected = intake.hl7(body, "x", "mllp")
        if msa[1] == b"AA":
            assert expected.accepted
            event_ids.update(e.event_id for e in expected.events)
        else:
            assert len(msa) > 3 and msa[3], "AE without a reason"
            assert expected.dead_letter is not None
            letter_ids.add(expected.dead_letter.dead_letter_id)
    stored_events = {
        r
        for (r,) in store.rows(
            f"SELECT event_id FROM {store.table('events')} FINAL WHERE has({{ids:Array(String)}},"
            " event_id)",
            {"ids": sorted(event_ids)},
        )
    }
    stored_letters = {
        r
        for (r,) in store.rows(
            f"SELECT id FROM {store.table('dead_letters')} FINAL"
            " WHERE has({ids:Array(String)}, id)",
            {"ids": sorted(letter_ids)},
        )
    }
    assert stored_events == event_ids
    assert stored_letters == letter_ids
    assert letter_ids  # the fuzz did produce rejections


def test_http_endpoint_never_answers_5xx(runtime):
    rnd = random.Random(1789)
    port = free_port()
    app = build_api(runtime, [messages_api.router(runtime)])
    with InProcess([HttpComponent("api", app, "127.0.0.1", port, "API")]):
        url = f"http://127.0.0.1:{port}/api/v1/messages"
        for n in range(120):
            kind = rnd.choice(["x-application/hl7-v2+er7", "application/x-ndjson", "text/csv"])
            corpus = JSON_LINES if kind == "application/x-ndjson" else SAMPLES
            if n % 2:
                body = b"\n".join(mutate(rnd, rnd.choice(corpus)) for _ in range(rnd.randint(1, 4)))
            elif n % 10 == 4:
                body = b"[" * 100_000  # deeper than any JSON parser recurses
            else:
                body = bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 400)))
            headers = {"Content-Type": kind}
            if n % 17 == 0:
                headers["Content-Encoding"] = "gzip"  # and the body is not gzip
            response = httpx.post(url, content=body, headers=headers, timeout=30)
            assert response.status_code < 500, response.text
            if response.status_code == 200:
                result = response.json()
                assert result["accepted"] + result["rejected"] == result["received"]
                assert len(result["rejections"]) == result["rejected"]
                assert all(r["reason"] for r in result["rejections"])
            else:
                assert response.json()["error"]["message"]
