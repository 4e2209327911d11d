"""The MLLP listener in a process of its own: AA after the child's fdatasync, loaded once by
the server's loader; a killed child is restarted on the same port with nothing acknowledged
lost; a failing store reaches the child, whose full spool answers AR with the reason."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from hl7.client import MLLPClient

from collector.mllp import listener
from collector.mllp_process import SUBDIRECTORY, MllpProcess
from stitchboard.store import OutageSink
from tests.store.test_spool_store import counts, hl7_message, wait_for
from tests.support import InProcess, free_port, make_runtime


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


def test_the_receiver_process_acknowledges_and_the_server_loads_each_message_once(
    store, tmp_path: Path
):
    runtime = make_runtime(store, spool=tmp_path / "spool", mllp_port=free_port())
    component = listener(runtime)
    assert isinstance(component, MllpProcess)
    with InProcess([component]):
        runtime.writer.start()
        assert component._process is not None and component._process.pid != os.getpid()
        codes = send(component.port, [f"MPROC-{i}" for i in range(30)])
        assert codes == ["AA"] * 30
        wait_for(lambda: counts(store, "MPROC") == {"final": 30, "ids": 30})
        wait_for(
            lambda: metric(runtime, "stitchboard_received_records_total", signal="hl7.mllp") == 30
        )
        assert metric(runtime, "stitchboard_accepted_records_total", signal="hl7.mllp") == 30
        assert metric(runtime, "stitchboard_requests_total", signal="hl7.mllp", outcome="ok") == 30
        # One sync per message here (one sender, each waits for its ACK).
        assert metric(runtime, "stitchboard_spool_synced_records_total") == 30
        health = runtime.writer.health()
        child = next(d for d in health["directories"] if d["directory"].endswith(SUBDIRECTORY))
        assert child["synced_records"] == 30 and child["unloaded_records"] == 0
    runtime.writer.close()
    assert counts(store, "MPROC") == {"final": 30, "ids": 30}


def test_a_killed_receiver_is_restarted_on_the_same_port_and_nothing_acked_is_lost(
    store, tmp_path: Path
):
    runtime = make_runtime(store, spool=tmp_path / "spool", mllp_port=free_port())
    component = listener(runtime)
    assert isinstance(component, MllpProcess)
    with InProcess([component]):
        runtime.writer.start()
        assert send(component.port, [f"MKILL-{i}" for i in range(10)]) == ["AA"] * 10
        first = component._process
        assert first is not None
        os.kill(first.pid, signal.SIGKILL)
        wait_for(
            lambda: (
                component._process is not first
                and metric(runtime, "stitchboard_mllp_receiver_up") == 1
            )
        )
        assert metric(runtime, "stitchboard_mllp_receiver_restarts_total") == 1
        assert send(component.port, [f"MKILL-{i}" for i in range(10, 20)]) == ["AA"] * 10
        wait_for(lambda: counts(store, "MKILL") == {"final": 20, "ids": 20})
    runtime.writer.close()
    assert metric(runtime, "stitchboard_mllp_receiver_up") == 0


def test_a_failing_store_reaches_the_receiver_whose_full_spool_answers_ar(store, tmp_path: Path):
    sink = OutageSink(store)
    sink.down = True
    runtime = make_runtime(
        store, sink=sink, spool=tmp_path / "spool", mllp_port=free_port(), spool_max_bytes=4000
    )
    component = listener(runtime)
    assert isinstance(component, MllpProcess)
    with InProcess([component]):
        runtime.writer.start()
        assert send(component.port, ["MOUT-0"]) == ["AA"]
        wait_for(lambda: runtime.writer.journal.load_error is not None)
        acked = 1
        with MLLPClient("127.0.0.1", component.port) as client:
            for i in range(1, 200):
                ack = client.send_message(hl7_message(f"MOUT-{i}"))
                if b"MSA|AA" not in ack:
                    break
                acked += 1
        assert b"MSA|AR" in ack and b"store unavailable" in ack and b"simulated outage" in ack
        assert 1 < acked < 200
        sink.down = False
        wait_for(lambda: counts(store, "MOUT") == {"final": acked, "ids": acked})
        # Room again once the child hears what was loaded.
        wait_for(lambda: send(component.port, ["MOUT-AGAIN"]) == ["AA"])
        wait_for(lambda: counts(store, "MOUT") == {"final": acked + 1, "ids": acked + 1})
        wait_for(lambda: metric(runtime, "stitchboard_spool_refused_batches_total") >= 1)
    runtime.writer.close()
