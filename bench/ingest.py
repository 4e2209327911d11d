"""OTLP/HTTP protobuf ingest into the embedded store, end to end, beside the engine's own rate.

A real ``stitchboard serve`` subprocess receives pre-built export requests of
realistic spans (a resource plus ~10 attributes, ~400 bytes each on the wire)
from several concurrent senders; the clock stops when every request has been
answered 200, i.e. is durable in the server's spool (fdatasync'd). A second
clock stops when the spool's loader has moved every span into ``otel_traces``
and ``events`` (the sustained rate). The reference is the same engine's
``INSERT … SELECT`` rate into the same tables, measured in this run. The
same load against a server with the receivers on its own event loop
(``STITCHBOARD_RECEIVER_PROCESS=false``) gives the in-run ratio of the
receivers' process.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import httpx

from tests.otlp_factory import spans_request
from tests.support import ServeProcess

SPANS_PER_REQUEST = 512
REQUESTS = int(os.environ.get("BENCH_INGEST_REQUESTS", "400"))
SENDERS = 16


def build_requests(n: int) -> list[bytes]:
    extra = {"stitchboard.operation": "charge.post", "patient.mrn": "MRN00482917"}
    return [
        spans_request(SPANS_PER_REQUEST, seed=i, extra=extra).SerializeToString() for i in range(n)
    ]


def send_all(url: str, bodies: list[bytes]) -> tuple[float, int]:
    """Send every body from SENDERS threads; retry 429/503 as an SDK would."""
    lock = threading.Lock()
    queue = list(reversed(bodies))
    retries = 0

    def worker() -> None:
        nonlocal retries
        with httpx.Client(timeout=120) as client:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                while True:
                    r = client.post(
                        url, content=body, headers={"content-type": "application/x-protobuf"}
                    )
                    if r.status_code == 200:
                        break
                    if r.status_code in (429, 503):
                        with lock:
                            retries += 1
                        time.sleep(float(r.headers.get("retry-after", "1")) / 10)
                        continue
                    raise RuntimeError(f"HTTP {r.status_code}: {r.content[:200]!r}")

    threads = [threading.Thread(target=worker) for _ in range(SENDERS)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, retries


def loaded_at(server: ServeProcess, timeout: float = 600) -> float:
    """The moment the server's spool has nothing left to load."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if server.health()["spool"]["unloaded_records"] == 0:
            return time.perf_counter()
        time.sleep(0.05)
    raise RuntimeError("the spool did not drain")


def engine_rate(rows: int = 500_000) -> dict[str, float]:
    """INSERT … SELECT rows/s into otel_traces and events with comparable maps."""
    from stitchboard.stages import open_store
    from tests.conftest import engine_url

    store = open_store(engine_url(), database="bench_engine")
    try:
        attrs = (
            "map('charge.id', toString(number), 'visit.id', toString(intDiv(number, 4)),"
            " 'charge.batch_id', toString(intDiv(number, 100)), 'account.id',"
            " toString(number % 9973), 'stitchboard.amount', '125.40', 'cdm.code',"
            " '2780001234', 'cpt.code', '33208', 'cost_center', '7010',"
            " 'messaging.system', 'hl7', 'posting.user', 'batch')"
        )
        resource = (
            "map('service.name', 'PATACCT', 'facility.id', 'NMC01',"
            " 'service.version', '4.2.0', 'host.name', 'pa-app-01')"
        )
        started = time.perf_counter()
        store.command(
            f"INSERT INTO {store.table('otel_traces')} (Timestamp, TraceId, SpanId, SpanName,"
            " SpanKind, ServiceName, ResourceAttributes, ScopeName, SpanAttributes, Duration,"
            " StatusCode) SELECT now64(9) + number, hex(MD5(toString(number))),"
            " substring(hex(MD5(toString(number))), 1, 16), 'charge.post', 'Server', 'PATACCT',"
            f" {resource}, 'bench', {attrs}, 3500000, 'Unset' FROM numbers({rows})"
        )
        traces = rows / (time.perf_counter() - started)
        started = time.perf_counter()
        store.command(
            f"INSERT INTO {store.table('events')} (event_id, event_time, observed_time,"
            " source_kind, source, facility, system, operation, status, duration_ns, amount,"
            " trace_id, span_id, keys, attributes) SELECT hex(MD5(toString(number))),"
            " now64(9) + number, now64(9), 'span', 'PATACCT', 'NMC01', 'PATACCT',"
            " 'charge.post', 'unset', 3500000, 125.40, hex(MD5(toString(number))), '',"
            " map('charge', toString(number), 'visit', toString(intDiv(number, 4)),"
            f" 'trace', hex(MD5(toString(number)))), {attrs} FROM numbers({rows})"
        )
        events = rows / (time.perf_counter() - started)
    finally:
        store.command("DROP DATABASE IF EXISTS bench_engine")
    # One span costs one row in each table, so the engine's span rate is the harmonic sum.
    return {"otel_traces": traces, "events": events, "spans": 1 / (1 / traces + 1 / events)}


def measure(bodies: list[bytes], env: dict[str, str]) -> dict[str, float]:
    """Acknowledged and sustained spans/s of one server, its retries and requests per sync."""
    workdir = Path(tempfile.mkdtemp(prefix="stitchboard-bench-"))
    server = ServeProcess(workdir / "data", env=env)
    server.mllp_port = 0
    server.otlp_grpc_port = 0
    try:
        server.start()
        send_all(f"{server.otlp_http}/v1/traces", bodies[:10])  # warm-up
        loaded_at(server)
        started = time.perf_counter()
        elapsed, retries = send_all(f"{server.otlp_http}/v1/traces", bodies[10:])
        loaded = loaded_at(server) - started
        spans = (len(bodies) - 10) * SPANS_PER_REQUEST
        spool = server.health()["spool"]
        server.stop()
    finally:
        if server.proc and server.proc.poll() is None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "ingest": spans / elapsed,
        "sustained": spans / loaded,
        "loaded": loaded,
        "retries": retries,
        "per_sync": spool["synced_records"] / spool["syncs"],
    }


def run() -> list[str]:
    bodies = build_requests(REQUESTS)
    wire = sum(len(b) for b in bodies) / (REQUESTS * SPANS_PER_REQUEST)
    # The receivers in their own process (the default), then on the server's event loop.
    shipped = measure(bodies, {})
    in_loop = measure(bodies, {"STITCHBOARD_RECEIVER_PROCESS": "false"})
    engine = engine_rate()
    ingest, sustained = shipped["ingest"], shipped["sustained"]
    return [
        f"spans on the wire: {wire:.0f} bytes each, {SPANS_PER_REQUEST} per request,"
        f" {SENDERS} concurrent senders, {REQUESTS - 10} requests",
        f"OTLP/HTTP protobuf, acknowledged after the spool's fdatasync: {ingest:,.0f} spans/s"
        f" ({shipped['retries']:.0f} retries after 429/503; {shipped['per_sync']:.1f}"
        " requests per sync over the run)   target >= 100,000",
        f"sustained: every span loaded into otel_traces and events {shipped['loaded']:.1f}s"
        f" after the first request: {sustained:,.0f} spans/s",
        f"the receivers on the server's loop (STITCHBOARD_RECEIVER_PROCESS=false):"
        f" acknowledged {in_loop['ingest']:,.0f} spans/s ({ingest / in_loop['ingest']:.2f}x),"
        f" sustained {in_loop['sustained']:,.0f} spans/s"
        f" ({sustained / in_loop['sustained']:.2f}x) (reference)",
        f"engine INSERT ... SELECT: otel_traces {engine['otel_traces']:,.0f} rows/s,"
        f" events {engine['events']:,.0f} rows/s, both tables {engine['spans']:,.0f} spans/s",
        f"ratio sustained load / engine: {sustained / engine['spans']:.1%}   target >= 70%",
    ]
