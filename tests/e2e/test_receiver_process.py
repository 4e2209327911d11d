"""The receivers' process under a real ``stitchboard serve``: killed during mixed MLLP and
OTLP/HTTP load it is restarted on the same ports and nothing it acknowledged is lost or
doubled; killed with the server (``kill -9``), it does not outlive it, and the next start
loads what it had synced."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_spool_crash import (
    SERVICE,
    Ledger,
    resend_unanswered,
    run_load,
    wait_until_loaded,
)
from tests.store.test_spool_store import wait_for
from tests.support import AUTH, ServeProcess, sql


def receiver_pid(server: ServeProcess) -> int:
    assert server.proc is not None
    out = subprocess.run(
        ["pgrep", "-P", str(server.proc.pid), "-f", "collector.receiver_process"],
        capture_output=True,
        text=True,
    )
    pids = [int(pid) for pid in out.stdout.split()]
    assert len(pids) == 1, f"expected one receivers process under the server, found {pids}"
    return pids[0]


def alive(pid: int) -> bool:
    """Running (a zombie nobody reaped yet is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def metric(server: ServeProcess, name: str) -> float:
    text = httpx.get(f"{server.api}/metrics", headers=AUTH, timeout=10).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def send_for(server: ServeProcess, ledger: Ledger, seconds: float, kill: int | None = None) -> None:
    """Four MLLP senders and one OTLP/HTTP sender for ``seconds``; ``kill``: that process
    is killed half-way."""
    stop = threading.Event()
    threads = run_load(server, ledger, stop)
    time.sleep(seconds / 2)
    if kill is not None:
        os.kill(kill, signal.SIGKILL)
    time.sleep(seconds / 2)
    stop.set()
    for thread in threads:
        thread.join(30)


@pytest.mark.slow
def test_the_receiver_is_restarted_after_a_kill_and_dies_with_the_server():
    workdir = Path(tempfile.mkdtemp(prefix="stitchboard-receiver-"))
    server = ServeProcess(workdir / "data")
    ledger = Ledger()
    try:
        server.start()
        first = receiver_pid(server)
        send_for(server, ledger, 2.0, kill=first)
        wait_for(lambda: metric(server, "stitchboard_receiver_restarts_total") == 1)
        wait_for(lambda: metric(server, "stitchboard_receiver_up") == 1)
        second = receiver_pid(server)
        assert second != first
        send_for(server, ledger, 1.0)  # the restarted receiver, on the same port
        resend_unanswered(server, ledger)
        acked_before_kill = len(ledger.acked_messages)
        # kill -9 of the server: the receiver goes with it (its lock is free for the next).
        server.stop(signal.SIGKILL)
        wait_for(lambda: not alive(second), timeout=10)
        server.start()
        wait_until_loaded(server)
        assert server.stop() == 0
        messages = sql(
            server.clickhouse,
            "SELECT keys['msg'] AS id, count() AS n FROM {db}.events FINAL"
            " WHERE startsWith(keys['msg'], 'K9-') GROUP BY id",
        )
        spans = sql(
            server.clickhouse,
            "SELECT trace_id, span_id, count() AS n FROM {db}.events FINAL"
            f" WHERE source = '{SERVICE}' GROUP BY trace_id, span_id",
        )
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.stop(signal.SIGKILL)
        shutil.rmtree(workdir, ignore_errors=True)
    assert acked_before_kill > 20, "the load did not run"
    assert ledger.acked_spans, "no span was acknowledged: the load did not run"
    assert ledger.acked_messages == ledger.sent_messages
    assert {row["id"] for row in messages} == ledger.acked_messages
    assert all(row["n"] == 1 for row in messages)
    assert ledger.acked_spans == ledger.sent_spans
    assert {(row["trace_id"], row["span_id"]) for row in spans} == ledger.acked_spans
    assert all(row["n"] == 1 for row in spans)
