"""kill -9 of a real ``stitchboard serve`` during mixed MLLP + OTLP load, cycle after cycle:
every acknowledged message and span is stored exactly once, nothing that was never sent
appears, and senders that got no answer resend (as engines and SDKs do) without doubling.

``STITCHBOARD_KILL_CYCLES`` sets the number of cycles (3 by default; 20 in the stress run,
see BENCHMARKS.md).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.otlp_factory import spans_request
from tests.support import ServeProcess, sql

CYCLES = int(os.environ.get("STITCHBOARD_KILL_CYCLES", "3"))
SERVICE = "K9SVC"


def hl7_message(control_id: str) -> bytes:
    return (
        "MSH|^~\\&|EHR_ADT|NMC01|IFENGINE|NMC01|20260314162210||ADT^A03^ADT_A03|"
        f"{control_id}|P|2.5.1\rEVN|A03|20260314162205\rPID|1||MRN-{control_id}^^^NMC^MR||DOE\r"
        f"PV1|1|I|4W^412^B^NMC01||||||||||||||||V-{control_id}\r"
    ).encode()


class Ledger:
    """What the senders sent and what was acknowledged, across cycles."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent_messages: set[str] = set()
        self.acked_messages: set[str] = set()
        self.unanswered: list[str] = []  # resent first in the next cycle
        self.sent_spans: set[tuple[str, str]] = set()
        self.acked_spans: set[tuple[str, str]] = set()
        self.unanswered_requests: list[int] = []
        self.next_id = 0

    def new_id(self) -> int:
        with self.lock:
            self.next_id += 1
            return self.next_id


def mllp_sender(port: int, ledger: Ledger, stop: threading.Event) -> None:
    with ledger.lock:
        queue, ledger.unanswered = ledger.unanswered, []
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    except OSError:
        with ledger.lock:
            ledger.unanswered.extend(queue)
        return
    with sock:
        while not stop.is_set():
            control_id = queue.pop(0) if queue else f"K9-{ledger.new_id()}"
            with ledger.lock:
                ledger.sent_messages.add(control_id)
            try:
                sock.sendall(b"\x0b" + hl7_message(control_id) + b"\x1c\r")
                ack = b""
                while b"\x1c\r" not in ack:
                    chunk = sock.recv(4096)
                    if not chunk:
                        raise ConnectionError("closed")
                    ack += chunk
            except OSError:
                with ledger.lock:
                    ledger.unanswered.extend([control_id, *queue])
                return
            code = ack.split(b"MSA|", 1)[1][:2]
            with ledger.lock:
                if code == b"AA":
                    ledger.acked_messages.add(control_id)
                else:
                    ledger.unanswered.append(control_id)


def span_ids(seed: int) -> set[tuple[str, str]]:
    request = spans_request(20, service=SERVICE, seed=seed)
    return {
        (span.trace_id.hex(), span.span_id.hex())
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    }


def otlp_sender(url: str, ledger: Ledger, stop: threading.Event) -> None:
    with ledger.lock:
        queue, ledger.unanswered_requests = ledger.unanswered_requests, []
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            seed = queue.pop(0) if queue else 1_000_000 + ledger.new_id()
            ids = span_ids(seed)
            body = spans_request(20, service=SERVICE, seed=seed).SerializeToString()
            with ledger.lock:
                ledger.sent_spans |= ids
            try:
                response = client.post(
                    url, content=body, headers={"content-type": "application/x-protobuf"}
                )
            except httpx.HTTPError:
                with ledger.lock:
                    ledger.unanswered_requests.extend([seed, *queue])
                return
            with ledger.lock:
                if response.status_code == 200:
                    ledger.acked_spans |= ids
                else:
                    ledger.unanswered_requests.append(seed)


def run_load(server: ServeProcess, ledger: Ledger, stop: threading.Event) -> list[threading.Thread]:
    threads = [
        threading.Thread(target=mllp_sender, args=(server.mllp_port, ledger, stop))
        for _ in range(4)
    ]
    threads.append(
        threading.Thread(target=otlp_sender, args=(f"{server.otlp_http}/v1/traces", ledger, stop))
    )
    for thread in threads:
        thread.start()
    return threads


def resend_unanswered(server: ServeProcess, ledger: Ledger) -> None:
    """What got no answer before a kill is sent again, as an engine or an SDK would."""
    with socket.create_connection(("127.0.0.1", server.mllp_port), timeout=10) as sock:
        for control_id in ledger.unanswered:
            sock.sendall(b"\x0b" + hl7_message(control_id) + b"\x1c\r")
            ack = b""
            while b"\x1c\r" not in ack:
                ack += sock.recv(4096)
            assert b"MSA|AA|" in ack
            ledger.acked_messages.add(control_id)
    ledger.unanswered = []
    with httpx.Client(timeout=30) as client:
        for seed in ledger.unanswered_requests:
            body = spans_request(20, service=SERVICE, seed=seed).SerializeToString()
            response = client.post(
                f"{server.otlp_http}/v1/traces",
                content=body,
                headers={"content-type": "application/x-protobuf"},
            )
            assert response.status_code == 200
            ledger.acked_spans |= span_ids(seed)
    ledger.unanswered_requests = []


def wait_until_loaded(server: ServeProcess, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        health = server.health()
        if health["spool"]["unloaded_records"] == 0:
            return health
        assert time.monotonic() < deadline, f"spool not loaded in {timeout}s: {health['spool']}"
        time.sleep(0.2)


@pytest.mark.slow
def test_kill_9_during_mixed_load_loses_nothing_acknowledged_and_doubles_nothing():
    workdir = Path(tempfile.mkdtemp(prefix="stitchboard-kill9-"))
    server = ServeProcess(workdir / "data")
    ledger = Ledger()
    rng = random.Random(14)
    try:
        for _ in range(CYCLES):
            server.start()
            stop = threading.Event()
            threads = run_load(server, ledger, stop)
            time.sleep(rng.uniform(0.8, 2.5))
            server.stop(signal.SIGKILL)
            stop.set()
            for thread in threads:
                thread.join(30)
        # A last run: resend what got no answer, let the spool load, stop cleanly.
        server.start()
        resend_unanswered(server, ledger)
        wait_until_loaded(server)
        assert server.stop() == 0
        clickhouse = server.clickhouse
        messages = sql(
            clickhouse,
            "SELECT keys['msg'] AS id, count() AS n FROM {db}.events FINAL"
            " WHERE startsWith(keys['msg'], 'K9-') GROUP BY id",
        )
        spans = sql(
            clickhouse,
            "SELECT trace_id, span_id, count() AS n FROM {db}.events FINAL"
            f" WHERE source = '{SERVICE}' GROUP BY trace_id, span_id",
        )
        traces = sql(
            clickhouse,
            "SELECT lower(TraceId) AS t, lower(SpanId) AS s, count() AS n"
            f" FROM {{db}}.otel_traces FINAL WHERE ServiceName = '{SERVICE}' GROUP BY t, s",
        )
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.stop(signal.SIGKILL)
        shutil.rmtree(workdir, ignore_errors=True)
    stored_messages = {row["id"] for row in messages}
    # Shown with ``pytest -s``: how much each run checked.
    print(
        f"kill -9 cycles: {CYCLES}; messages stored once: {len(stored_messages)};"
        f" spans stored once: {len(spans)}"
    )
    assert ledger.acked_messages, "no message was acknowledged: the load did not run"
    assert ledger.acked_spans, "no span was acknowledged: the load did not run"
    assert all(row["n"] == 1 for row in messages)
    # Everything sent was acknowledged in the end (the last run resent what got no answer).
    assert ledger.acked_messages == ledger.sent_messages
    assert stored_messages == ledger.sent_messages
    stored_spans = {(row["trace_id"], row["span_id"]) for row in spans}
    assert all(row["n"] == 1 for row in spans)
    assert ledger.acked_spans == ledger.sent_spans
    assert stored_spans == ledger.sent_spans
    assert {(row["t"], row["s"]) for row in traces} == stored_spans
    assert all(row["n"] == 1 for row in traces)
