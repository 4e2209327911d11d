"""The simulator's senders against a real ``stitchboard serve``: every hop lands, once."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections import Counter

import pytest

from simulator.files import read_hops
from simulator.records import DAY, NS
from simulator.send import Dispatcher, Endpoints
from simulator.traffic import EVENTS_PER_SECOND_AT_SCALE_1, estate_from_config, plan
from stitchboard.config import load_config
from tests.support import ROOT, serve_process, sql

UNTIL = "2026-03-16T00:00:00Z"
RATE = 0.15  # events/s, as `simulate --rate` takes it
UNTIL_NS = int(dt.datetime(2026, 3, 16, tzinfo=dt.UTC).timestamp()) * NS


def _due(config, seed: int, count: int):
    estate = estate_from_config(config, seed, scale=RATE / EVENTS_PER_SECOND_AT_SCALE_1)
    p = plan(estate, UNTIL_NS - 30 * DAY, UNTIL_NS, count=count)
    return estate, [h for h in p.by_sent() if h.sent <= UNTIL_NS]


def _distinct_events(hops) -> int:
    return sum(h.event_count for h in {h.hop_id: h for h in hops}.values())


def _cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stitchboard", "simulate", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        **kw,
    )


@pytest.mark.slow
def test_every_simulated_hop_is_stored_once(tmp_path) -> None:
    config = load_config(ROOT / "slas.yaml")
    estate, hops = _due(config, seed=21, count=40)
    assert {h.channel for h in hops} == {"span", "log", "hl7", "jsonl"}
    assert any(h.resend for h in hops)
    with serve_process() as server:
        endpoints = Endpoints(otlp=server.otlp_http, api=server.api, mllp_port=server.mllp_port)
        dispatcher = Dispatcher(endpoints, config, estate.sites, mllp_connections=4)
        try:
            for hop in hops:  # HL7 one message at a time over MLLP, each ACK awaited
                dispatcher.send(hop)
            dispatcher.flush()
        finally:
            dispatcher.close()
        assert dispatcher.problems() == []
        assert dispatcher.mllp.acked == sum(1 for h in hops if h.channel == "hl7")
        # The same traffic again through the CLI, HL7 in HTTP batches: nothing doubles.
        done = _cli(
            "--count",
            "40",
            "--seed",
            "21",
            "--until",
            UNTIL,
            "--port",
            str(server.port),
            "--otlp-http-port",
            str(server.otlp_http_port),
            "--mllp-port",
            str(server.mllp_port),
            "--rate",
            str(RATE),
        )
        assert done.returncode == 0, done.stderr
        assert "problems" not in done.stderr
        assert server.stop() == 0  # the data directory is free for queries now
        stored = sql(
            server.clickhouse,
            "SELECT system, operation, count() AS n"
            " FROM {db}.events FINAL GROUP BY system, operation",
        )
        letters = sql(server.clickhouse, "SELECT count() AS n FROM {db}.dead_letters")
        facilities = sql(server.clickhouse, "SELECT DISTINCT facility FROM {db}.events")
    expected = Counter()
    for hop in {h.hop_id: h for h in hops}.values():
        expected[(hop.system, hop.operation)] += hop.event_count
    assert {(r["system"], r["operation"]): int(r["n"]) for r in stored} == dict(expected)
    assert sum(expected.values()) == _distinct_events(hops)
    assert int(letters[0]["n"]) == 0
    assert {r["facility"] for r in facilities} <= {s.id for s in estate.sites}


def test_cli_writes_the_same_traffic_and_truth_for_a_seed(tmp_path) -> None:
    runs = []
    for n in range(2):
        out, truth = tmp_path / f"hops{n}.jsonl.gz", tmp_path / f"truth{n}.jsonl"
        done = _cli(
            "--count",
            "25",
            "--seed",
            "8",
            "--until",
            UNTIL,
            "--out",
            str(out),
            "--truth",
            str(truth),
        )
        assert done.returncode == 0, done.stderr
        runs.append((list(read_hops(out)), truth.read_text()))
    assert runs[0] == runs[1]
    hops, truth_text = runs[0]
    assert hops and all(h.sent <= UNTIL_NS for h in hops)
    truths = [json.loads(line) for line in truth_text.splitlines()]
    assert truths
    for t in truths:
        assert t["status"] in {"in_progress", "complete", "late", "overdue", "failed"}
        assert t["steps"] and t["facility"] in {"NMC01", "LCH02", "MSC03"}
        assert all(s["first"].endswith("Z") for s in t["steps"])
    bad = _cli("--count", "5", "--facilities", "NOWHERE", "--out", str(tmp_path / "x.jsonl"))
    assert bad.returncode == 2 and "no facility selected" in bad.stderr
