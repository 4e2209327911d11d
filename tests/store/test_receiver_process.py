"""The receivers in a process of their own: MLLP AA and OTLP/HTTP 200 after the child's
fdatasync, loaded once by the server's loader (OTLP spooled as sent is decoded by the
engine there); ingest tokens answered by the server's store; a killed child is restarted
on the same ports with nothing acknowledged lost; a failing store reaches the child, whose
full spool answers AR and 503 with the reason."""

from __future__ import annotations

import datetime as dt
import os
import signal
from pathlib import Path

import httpx
import pytest
from hl7.client import MLLPClient

from collector import receiver_process as receivers
from collector.ingest import otlp_ingest
from collector.receiver_process import SUBDIRECTORY, ReceiverProcess, receiver_process
from stitchboard import credentials
from stitchboard.roles import Role
from stitchboard.store import OutageSink
from tests.otlp_factory import spans_request
from tests.store.test_spool_store import counts, hl7_message, wait_for
from tests.support import InProcess, free_port, make_runtime

PB = {"content-type": "application/x-protobuf"}


def send(port: int, control_ids: list[str]) -> list[str]:
    """Each message's acknowledgement code (MSA-1)."""
    codes = []
    with MLLPClient("127.0.0.1", port) as client:
        for control_id in control_ids:
            ack = client.send_message(hl7_message(control_id))
            codes.append(ack.split(b"MSA|")[1][:2].decode())
    return codes


def metric(runtime, name: str, **labels: str) -> float:
    value = runtime.metrics.registry.get_sample_value(name, labels)
    return value or 0.0


def started(runtime) -> ReceiverProcess:
    otlp_ingest(runtime)  # as the collector stage: the engine-side decoder's inserter
    component = receiver_process(runtime)
    assert isinstance(component, ReceiverProcess)
    return component


def traces(store, service: str) -> int:
    return int(
        store.scalar(
            f"SELECT count() FROM {store.table('otel_traces')} FINAL"
            " WHERE ServiceName = {s:String}",
            {"s": service},
        )
    )


def test_the_receivers_acknowledge_and_the_server_loads_each_record_once(store, tmp_path: Path):
    runtime = make_runtime(
        store, spool=tmp_path / "spool", mllp_port=free_port(), otlp_http_port=free_port()
    )
    component = started(runtime)
    with InProcess([component]):
        runtime.writer.start()
        assert component._process is not None and component._process.pid != os.getpid()
        codes = send(component.mllp_port, [f"MPROC-{i}" for i in range(30)])
        assert codes == ["AA"] * 30
        url = f"http://127.0.0.1:{component.otlp_http_port}/v1/traces"
        for seed in (1, 2):
            body = spans_request(20, service="RPSVC", seed=seed).SerializeToString()
            assert httpx.post(url, content=body, headers=PB).status_code == 200
        wait_for(lambda: counts(store, "MPROC") == {"final": 30, "ids": 30})
        wait_for(lambda: counts(store, "RPSVC") == {"final": 40, "ids": 40})
        wait_for(lambda: traces(store, "RPSVC") == 40)  # decoded by the engine in the server
        wait_for(
            lambda: metric(runtime, "stitchboard_received_records_total", signal="hl7.mllp") == 30
        )
        assert metric(runtime, "stitchboard_accepted_records_total", signal="hl7.mllp") == 30
        assert metric(runtime, "stitchboard_requests_total", signal="hl7.mllp", outcome="ok") == 30
        wait_for(
            lambda: (
                metric(runtime, "stitchboard_requests_total", signal="traces", outcome="ok") == 2
            )
        )
        assert metric(runtime, "stitchboard_accepted_records_total", signal="traces") == 40
        assert metric(runtime, "stitchboard_batch_latency_seconds_count", signal="traces") == 2
        # One sync per message or request here (one sender at a time, each waits).
        wait_for(lambda: metric(runtime, "stitchboard_spool_synced_records_total") == 32)
        wait_for(lambda: runtime.writer.health()["unloaded_records"] == 0)  # committed
        health = runtime.writer.health()
        child = next(d for d in health["directories"] if d["directory"].endswith(SUBDIRECTORY))
        assert child["synced_records"] == 32 and child["unloaded_records"] == 0
    runtime.writer.close()
    assert counts(store, "MPROC") == {"final": 30, "ids": 30}


def test_ingest_tokens_are_answered_by_the_server_s_store(store, tmp_path: Path):
    day = dt.timedelta(days=1)
    ingest = credentials.create_token(store, "rp-ingest", Role.INGEST, "test", day)[1]
    viewer = credentials.create_token(store, "rp-viewer", Role.VIEWER, "test", day)[1]
    runtime = make_runtime(
        store, spool=tmp_path / "spool", otlp_http_port=free_port(), mllp_port=0, ingest_auth=True
    )
    component = started(runtime)
    with InProcess([component]):
        runtime.writer.start()
        url = f"http://127.0.0.1:{component.otlp_http_port}/v1/traces"
        body = spans_request(2, service="RPAUTH", seed=5).SerializeToString()
        for secret in (None, "sbt_x_y", viewer):
            headers = PB if secret is None else {**PB, "Authorization": f"Bearer {secret}"}
            assert httpx.post(url, content=body, headers=headers).status_code == 401
        allowed = {**PB, "Authorization": f"Bearer {ingest}"}
        assert httpx.post(url, content=body, headers=allowed).status_code == 200
        wait_for(lambda: counts(store, "RPAUTH") == {"final": 2, "ids": 2})
        wait_for(
            lambda: (
                metric(
                    runtime,
                    "stitchboard_requests_total",
                    signal="traces",
                    outcome="unauthenticated",
                )
                == 3
            )
        )
    runtime.writer.close()


def test_a_failing_store_reaches_the_receivers_whose_full_spool_answers_ar_and_503(
    store, tmp_path: Path
):
    sink = OutageSink(store)
    sink.down = True
    runtime = make_runtime(
        store,
        sink=sink,
        spool=tmp_path / "spool",
        mllp_port=free_port(),
        otlp_http_port=free_port(),
        spool_max_bytes=4000,
    )
    component = started(runtime)
    with InProcess([component]):
        runtime.writer.start()
        assert send(component.mllp_port, ["MOUT-0"]) == ["AA"]
        wait_for(lambda: runtime.writer.journal.load_error is not None)
        acked = 1
        with MLLPClient("127.0.0.1", component.mllp_port) as client:
            for i in range(1, 200):
                ack = client.send_message(hl7_message(f"MOUT-{i}"))
                if b"MSA|AA" not in ack:
                    break
                acked += 1
        assert b"MSA|AR" in ack and b"store unavailable" in ack and b"simulated outage" in ack
        assert 1 < acked < 200
        url = f"http://127.0.0.1:{component.otlp_http_port}/v1/traces"
        body = spans_request(2, service="RPOUT", seed=3).SerializeToString()
        refused = httpx.post(url, content=body, headers=PB)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        sink.down = False
        wait_for(lambda: counts(store, "MOUT") == {"final": acked, "ids": acked})
        # Room again once the child hears what was loaded.
        wait_for(lambda: send(component.mllp_port, ["MOUT-AGAIN"]) == ["AA"])
        wait_for(lambda: counts(store, "MOUT") == {"final": acked + 1, "ids": acked + 1})
        wait_for(lambda: metric(runtime, "stitchboard_spool_refused_batches_total") >= 2)
    runtime.writer.close()


@pytest.mark.parametrize(
    ("how", "hangs"),
    [(signal.SIGKILL, 0), (signal.SIGSTOP, 1)],  # exited / alive but silent past the timeout
    ids=["killed", "silent"],
)
def test_a_lost_receiver_is_replaced_on_the_same_port_and_nothing_acked_is_lost(
    store, tmp_path: Path, monkeypatch, how: signal.Signals, hangs: int
):
    monkeypatch.setattr(receivers, "HANG_TIMEOUT", 1.5)
    runtime = make_runtime(store, spool=tmp_path / "spool", mllp_port=free_port(), otlp_http_port=0)
    component = started(runtime)
    tag = f"MLOST{hangs}-"
    with InProcess([component]):
        runtime.writer.start()
        assert send(component.mllp_port, [f"{tag}{i}" for i in range(10)]) == ["AA"] * 10
        first = component._process
        assert first is not None
        os.kill(first.pid, how)
        wait_for(lambda: component._process is not first, timeout=30)
        wait_for(lambda: metric(runtime, "stitchboard_receiver_up") == 1)
        assert metric(runtime, "stitchboard_receiver_restarts_total") == 1
        assert metric(runtime, "stitchboard_receiver_hangs_total") == hangs
        assert first.wait(10) == -signal.SIGKILL
        assert send(component.mllp_port, [f"{tag}{i}" for i in range(10, 20)]) == ["AA"] * 10
        wait_for(lambda: counts(store, tag) == {"final": 20, "ids": 20})
    runtime.writer.close()
    assert metric(runtime, "stitchboard_receiver_up") == 0
