"""HL7 v2 ingest: MLLP ACKed messages/s and file import messages/s, beside in-run references.

MLLP: a real ``stitchboard serve`` receives unique ADT messages from 1, 16 and
64 concurrent senders, each waiting for the ACK of one message before sending
the next, as interface engines do; every AA follows the spool's fdatasync, and
the spool's own counters give the messages made durable per sync. Then 64
connections offer 1,000 messages/s between them, paced, for the ACK latency.
The server receives MLLP in a process of its own (the default); the same runs
against a server with the listener on its own event loop
(``STITCHBOARD_RECEIVER_PROCESS=false``) give the in-run ratio. Reference: the
same listener in a process that parses and ACKs but stores nothing, measured
with the same clients (the rate and the paced latency).

Import: a file of realistic messages (ADT, DFT with 1–3 charge lines, ACKs)
imported into the embedded store with the same code as ``stitchboard import``:
parsed by the engine (twice, first and last), and by the Python path with one
and with several judging processes. References: the Python path in the same
run, and the same records split and turned into events without storing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.support import AUTH, ROOT, TEST_KEY, ServeProcess, free_port

# Engines send on one connection per channel, each waiting for its ACK: the rate
# grows with the number of channels, since every durable write serves all that wait.
SENDERS = [int(n) for n in os.environ.get("BENCH_MLLP_SENDERS", "1,16,64").split(",")]
MLLP_MESSAGES = int(os.environ.get("BENCH_MLLP_MESSAGES", "20000"))
# BENCH_MESSAGES_PART=import measures the file import alone.
FILE_MESSAGES = int(os.environ.get("BENCH_IMPORT_MESSAGES", "100000"))
WORKERS = min(4, os.cpu_count() or 1)  # as stitchboard import's default
DATA = ROOT / "tests" / "data" / "hl7"

CLIENT = r"""
import asyncio, json, sys, time
host, port, senders, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
template = open(sys.argv[5], "rb").read()

def unique(i):
    # A patient, account and visit per message, as a discharge feed has: one shared account
    # would chain every message into one ever-growing transaction (what is then measured is
    # the correlator recomputing it, holding the GIL, not ingest).
    return (template.replace(b"ADT20250314162210004417", b"B%d-%08d" % (port, i))
            .replace(b"VN20250310-000917", b"VN%d-%08d" % (senders, i))
            .replace(b"ACCT7730012845", b"AC%d-%08d" % (senders, i))
            .replace(b"MRN00482917", b"MRN%d-%08d" % (senders, i)))

messages = [b"\x0b" + unique(i) + b"\x1c\r" for i in range(total)]
codes = {}

async def sender(items):
    reader, writer = await asyncio.open_connection(host, port)
    for message in items:
        writer.write(message)
        ack = await reader.readuntil(b"\x1c\r")
        code = ack.split(b"MSA|", 1)[1][:2].decode()
        codes[code] = codes.get(code, 0) + 1
    writer.close()

async def main():
    await asyncio.gather(*(sender(messages[k::senders]) for k in range(senders)))

started = time.perf_counter()
asyncio.run(main())
print(json.dumps({"seconds": time.perf_counter() - started, "codes": codes}))
"""

# 64 connections, each sending every 64 ms (staggered): 1,000 messages/s offered.
PACED_CLIENT = r"""
import asyncio, json, sys, time
host, port, conns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rate, seconds = float(sys.argv[4]), float(sys.argv[5])
template = open(sys.argv[6], "rb").read()
latencies, codes = [], {}

async def connection(k, t0):
    reader, writer = await asyncio.open_connection(host, port)
    interval = conns / rate
    i = 0
    while True:
        due = t0 + k / rate + i * interval
        if due > t0 + seconds:
            break
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        control = b"P%d-%d-%06d" % (port, k, i)
        message = (template.replace(b"ADT20250314162210004417", control)
                   .replace(b"VN20250310-000917", b"V" + control)
                   .replace(b"ACCT7730012845", b"A" + control)
                   .replace(b"MRN00482917", b"M" + control))
        sent = time.perf_counter()
        writer.write(b"\x0b" + message + b"\x1c\r")
        ack = await reader.readuntil(b"\x1c\r")
        latencies.append(time.perf_counter() - sent)
        code = ack.split(b"MSA|", 1)[1][:2].decode()
        codes[code] = codes.get(code, 0) + 1
        i += 1
    writer.close()

async def main():
    t0 = time.perf_counter() + 0.5
    await asyncio.gather(*(connection(k, t0) for k in range(conns)))

asyncio.run(main())
latencies.sort()
pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
print(json.dumps({"count": len(latencies), "p50": pick(0.5), "p99": pick(0.99),
                  "max": latencies[-1], "codes": codes}))
"""

ACK_ONLY_SERVER = r"""
import asyncio, sys
from collector import Intake, MllpListener
from stitchboard.config import load_config
from stitchboard.phi import Pseudonymizer

async def nothing(batch):
    return None

async def main():
    intake = Intake(load_config(sys.argv[2]), Pseudonymizer(b"bench-key-0123456789abcdef"))
    listener = MllpListener(intake, nothing, "127.0.0.1", int(sys.argv[1]))
    await listener.start()
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def _client(port: int, total: int, senders: int) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            CLIENT,
            "127.0.0.1",
            str(port),
            str(senders),
            str(total),
            str(DATA / "adt_a03.hl7"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout)


def _spool_counters(server: ServeProcess) -> tuple[float, float]:
    """(syncs, records synced) from the server's /metrics."""
    text = httpx.get(f"{server.api}/metrics", headers=AUTH, timeout=10).text
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("stitchboard_spool_syncs_total", "stitchboard_spool_synced_records_total"):
            values[name] = float(value)
    return values["stitchboard_spool_syncs_total"], values["stitchboard_spool_synced_records_total"]


def _paced(port: int, connections: int = 64, rate: float = 1000.0, seconds: float = 10.0) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            PACED_CLIENT,
            "127.0.0.1",
            str(port),
            str(connections),
            str(rate),
            str(seconds),
            str(DATA / "adt_a03.hl7"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout)


def stored_rates(env: dict[str, str]) -> tuple[dict[int, dict], dict]:
    """Messages/s and rows per sync at each sender count, then the paced ACK latency."""
    workdir = Path(tempfile.mkdtemp(prefix="stitchboard-bench-mllp-"))
    server = ServeProcess(workdir / "data", env=env)
    server.otlp_http_port = 0
    server.otlp_grpc_port = 0
    stored: dict[int, dict] = {}
    try:
        server.start()
        _client(server.mllp_port, 500, SENDERS[-1])  # warm-up
        for n in SENDERS:
            syncs, records = _spool_counters(server)
            # One connection waits for each ACK: fewer messages keep its run short.
            total = MLLP_MESSAGES if n > 1 else MLLP_MESSAGES // 4
            result = _client(server.mllp_port, total, n)
            after_syncs, after_records = _spool_counters(server)
            result["messages"] = total
            result["per_sync"] = (after_records - records) / max(after_syncs - syncs, 1)
            stored[n] = result
        paced = _paced(server.mllp_port)
    finally:
        if server.proc is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return stored, paced


def mllp_rates() -> tuple[dict[int, dict], dict, dict, dict[int, dict], dict]:
    # The listener in its own process (the default), then on the server's event loop.
    stored, paced = stored_rates({})
    in_loop, in_loop_paced = stored_rates({"STITCHBOARD_RECEIVER_PROCESS": "false"})
    port = free_port()
    reference = subprocess.Popen(
        [sys.executable, "-c", ACK_ONLY_SERVER, str(port), str(ROOT / "slas.yaml")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "STITCHBOARD_PSEUDONYM_KEY": TEST_KEY},
    )
    try:
        assert reference.stdout is not None
        reference.stdout.readline()
        _client(port, 500, SENDERS[0])
        ack_only = _client(port, MLLP_MESSAGES, SENDERS[-1])
        ack_only["paced"] = _paced(port)
    finally:
        reference.terminate()
        reference.wait(30)
    return stored, ack_only, paced, in_loop, in_loop_paced


def write_file(path: Path, count: int) -> None:
    adt = (DATA / "adt_a03.hl7").read_bytes()
    dft = (DATA / "v26_dft_p03_three_lines.hl7").read_bytes()
    ack = (DATA / "ack.hl7").read_bytes()
    with path.open("wb") as out:
        for i in range(count):
            kind = i % 4
            if kind in (0, 1):
                message = adt.replace(b"ADT20250314162210004417", b"F-ADT-%09d" % i)
                message = message.replace(b"VN20250310-000917", b"VN-%09d" % (i // 4))
            elif kind == 2:
                message = dft.replace(b"LCH-DFT-000777", b"F-DFT-%09d" % i)
                message = message.replace(b"CHG-L-100", b"CHG-%09d-" % i)
            else:
                message = ack.replace(b"DFT20250312110545000188", b"F-DFT-%09d" % (i - 1))
                message = message.replace(b"ACK20250312110546000911", b"F-ACK-%09d" % i)
            # A patient per visit: each recurs in about four messages, as across ADT and charges.
            message = message.replace(b"MRN00482917", b"MRN%08d" % (i // 4))
            message = message.replace(b"MRN777001", b"MRN%08d" % (i // 4))
            out.write(message.replace(b"\r", b"\n") + b"\n")


def import_rates() -> tuple[dict[tuple[str, int], list[float]], float, int]:
    from collector import DirectTarget, Intake, import_file, judge_record, read_records
    from stitchboard.runtime import build_runtime
    from stitchboard.settings import Settings
    from tests.conftest import engine_url

    workdir = Path(tempfile.mkdtemp(prefix="stitchboard-bench-import-"))
    path = workdir / "messages.hl7"
    write_file(path, FILE_MESSAGES)
    settings = Settings(
        clickhouse=engine_url(),
        database="bench_messages",
        config=ROOT / "slas.yaml",
        pseudonym_key=TEST_KEY,
    )
    runtime = build_runtime(settings)
    try:
        intake = Intake(runtime.config, runtime.pseudonymize)
        started = time.perf_counter()
        with path.open("rb") as stream:
            parsed = sum(
                len(judge_record(intake, r, "f", "file:f").events)
                for r in read_records(stream, "hl7")
            )
        parse_rate = FILE_MESSAGES / (time.perf_counter() - started)
        rates: dict[tuple[str, int], list[float]] = {}
        for label, workers, engine in (
            ("engine", 1, True),
            ("python", 1, False),
            ("python", WORKERS, False),
            ("engine", 1, True),
        ):
            target = DirectTarget(runtime, workers, engine=engine)
            started = time.perf_counter()
            report = import_file(target, path, "hl7", restart=True, chunk_size=20_000)
            rate = report.records / (time.perf_counter() - started)
            target.pool.close()
            if target.native is not None:
                target.native.close()
            assert report.rejected == 0 and report.events == parsed
            assert report.engine == (FILE_MESSAGES if engine else 0), report.engine
            rates.setdefault((label, workers), []).append(rate)
    finally:
        runtime.store.command("DROP DATABASE IF EXISTS bench_messages")
        runtime.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return rates, parse_rate, parsed


TARGETS = {1: "500", 16: "5,000", 64: "8,000"}


def run() -> list[str]:
    part = os.environ.get("BENCH_MESSAGES_PART")
    if part == "import":  # file import alone
        return import_lines()
    if part == "mllp":  # the listener alone
        return mllp_lines()
    return mllp_lines() + import_lines()


def mllp_lines() -> list[str]:
    stored, ack_only, paced, in_loop, in_loop_paced = mllp_rates()
    reference = MLLP_MESSAGES / ack_only["seconds"]
    lines = []
    for senders, result in stored.items():
        rate = result["messages"] / result["seconds"]
        loop_rate = in_loop[senders]["messages"] / in_loop[senders]["seconds"]
        lines.append(
            f"MLLP, {senders} senders, ACK awaited per message: {rate:,.0f} messages/s"
            f" ACKed AA after fdatasync ({result['codes']}); {result['per_sync']:.1f} messages"
            f" per spool sync; ratio to ACK-only {rate / reference:.0%};"
            f" {rate / loop_rate:.2f}x the listener on the server's loop ({loop_rate:,.0f})"
            f"   target >= {TARGETS.get(senders, '-')}"
        )
    lines.append(
        f"MLLP ACK latency at 1,000 messages/s offered over 64 connections ({paced['count']:,}"
        f" messages, {paced['codes']}): p50 {paced['p50'] * 1000:.1f} ms,"
        f" p99 {paced['p99'] * 1000:.1f} ms, max {paced['max'] * 1000:.1f} ms   target p99 <= 20 ms"
    )
    lines.append(
        f"same paced load, listener on the server's loop (STITCHBOARD_RECEIVER_PROCESS=false):"
        f" p50 {in_loop_paced['p50'] * 1000:.1f} ms, p99 {in_loop_paced['p99'] * 1000:.1f} ms"
        " (reference)"
    )
    bare = ack_only["paced"]
    lines.append(
        f"same paced load, listener answering without storing: p50 {bare['p50'] * 1000:.1f} ms,"
        f" p99 {bare['p99'] * 1000:.1f} ms (reference)"
    )
    lines.append(
        f"same listener, ACK without storing ({SENDERS[-1]} senders): {reference:,.0f} messages/s"
    )
    return lines


def import_lines() -> list[str]:
    imported, parsed, events = import_rates()
    lines = []
    for (label, workers), rates in imported.items():
        figures = " and ".join(f"{rate:,.0f}" for rate in rates)
        if label == "engine":
            lines.append(
                f"file import, {FILE_MESSAGES:,} messages ({events:,} events), parsed by the"
                f" engine (INSERT … SELECT): {figures} messages/s durable (synced)"
                "   target >= 50,000"
            )
        else:
            lines.append(
                f"file import, the same file, Python path, {workers} judging process(es):"
                f" {figures} messages/s durable (synced)   target >= 12,000"
            )
    engine = max(imported[("engine", 1)])
    lines.append(
        f"split + extract only, one process (no store): {parsed:,.0f} messages/s;"
        f" engine import / Python import (1 process) {engine / max(imported[('python', 1)]):.1f}x"
    )
    return lines
