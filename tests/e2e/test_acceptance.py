"""Acceptance: simulated traffic through a real ``stitchboard serve``, every transaction the
API returns compared with the simulator's ground truth (status, flags, steps, deadlines).

A mismatch is a bug in the correlator or in the simulator's truth; the assertion
message lists each difference per transaction with its scenario (the hard case
it exercises) so the note can say which.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from simulator.records import DAY, NS, Truth
from simulator.runner import Simulation
from simulator.send import Dispatcher, Endpoints
from simulator.traffic import estate_from_config
from simulator.truth import evaluate
from stitchboard.config import load_config
from tests.support import AUTH, ROOT, serve_process

# The key that names a transaction of each workflow in both worlds.
NAMING_KEY = {
    "discharge_to_revenue": "visit",
    "claim_to_cash": "claim",
    "implant_use_to_replenishment": "case",
    "requisition_to_payment": "requisition",
    "timecard_to_labor_gl": "pay_period",
}
# About 2,400 hops in 300 transactions. This seed at this scale yields every workflow,
# status and flag whatever the hour the test starts (the traffic follows the clock):
# checked for 18 start times spread over two weeks with the simulator alone (seed 4,
# used before charges could precede the discharge and grace periods, no longer showed a
# missing step).
WINDOW = 30 * DAY
SCALE = 0.02
SEED = 2


def _all_transactions(api: str) -> list[dict]:
    items, cursor = [], None
    while True:
        params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        body = httpx.get(
            f"{api}/api/v1/transactions", params=params, timeout=60, headers=AUTH
        ).json()
        items += body["transactions"]
        cursor = body.get("next_cursor")
        if not cursor:
            return items


def _settled(api: str, timeout: float = 240) -> list[dict]:
    """Wait until the correlator has placed every event: the listing stays the same
    over three polls (the correlator follows the writer within seconds)."""
    deadline = time.monotonic() + timeout
    shapes: list[list[tuple[str, int]]] = []
    while time.monotonic() < deadline:
        items = _all_transactions(api)
        shapes.append(sorted((t["id"], t["event_count"]) for t in items))
        if len(shapes) >= 3 and shapes[-1] == shapes[-2] == shapes[-3]:
            return items
        time.sleep(2)
    raise AssertionError("the transactions did not settle")


def _expected(truth: Truth) -> dict:
    return {
        "status": truth.status,
        "flags": sorted(truth.flags),
        "steps": {s.step: (_iso(s.first), _iso(s.last), s.count) for s in truth.steps},
        "missed": sorted((m.step, m.level, _iso(m.deadline)) for m in truth.missed),
    }


def _actual(detail: dict) -> dict:
    return {
        "status": detail["status"],
        "flags": sorted(detail["flags"]),
        "steps": {
            s["name"]: (s["first_time"], s["last_time"], s["count"])
            for s in detail["steps"]
            if s["count"] and s["name"] != "unexpected"
        },
        "missed": sorted((m["step"], m["level"], m["deadline"]) for m in detail["missed"]),
    }


def _iso(ns: int) -> str:
    from simulator.records import _iso as iso

    return iso(ns)


@pytest.mark.slow
def test_every_transaction_matches_the_ground_truth() -> None:
    config = load_config(ROOT / "slas.yaml")
    estate = estate_from_config(config, SEED, scale=SCALE)
    sim = Simulation(config, estate)
    until = int(time.time()) * NS
    sim.generate(until - WINDOW, until)
    due = sim.due(until)
    with serve_process() as server:
        dispatcher = Dispatcher(
            Endpoints(otlp=server.otlp_http, api=server.api, mllp_port=server.mllp_port),
            config,
            estate.sites,
        )
        dispatcher.hl7_batches = True
        try:
            for hop in due:
                dispatcher.send(hop)
            dispatcher.flush()
        finally:
            dispatcher.close()
        assert dispatcher.problems() == []
        listed = _settled(server.api)
        by_name: dict[tuple[str, str], list[dict]] = {}
        for tx in listed:
            for value in tx["keys"].get(NAMING_KEY[tx["workflow"]], []):
                by_name.setdefault((tx["workflow"], value), []).append(tx)
        as_of = int(time.time()) * NS
        truths = evaluate(
            config,
            estate.sites,
            sim.plan.opened,
            sim.plan.hops,
            as_of,
            sim.plan.scenario,
            sent_by=until,
        )
        problems: list[str] = []
        pairs = []
        for truth in truths:
            name = truth.keys[NAMING_KEY[truth.workflow]][0]
            found = by_name.get((truth.workflow, name), [])
            if len(found) != 1:
                problems.append(
                    f"{truth.txn} {truth.scenario}: {len(found)} transactions"
                    f" carry {NAMING_KEY[truth.workflow]}={name}"
                )
                continue
            pairs.append((truth, found[0]["id"]))
        with (
            httpx.Client(base_url=server.api, timeout=30, headers=AUTH) as client,
            ThreadPoolExecutor(8) as pool,
        ):
            details = list(
                pool.map(lambda pair: client.get(f"/api/v1/transactions/{pair[1]}").json(), pairs)
            )
        matched = {tx_id for _, tx_id in pairs}
        covered = Counter()
        for (truth, _), detail in zip(pairs, details, strict=True):
            want, got = _expected(truth), _actual(detail)
            for field in want:
                if want[field] != got[field]:
                    problems.append(
                        f"{truth.txn} {truth.scenario} {field}:"
                        f" truth {want[field]} api {got[field]}"
                    )
            covered[(truth.workflow, truth.status)] += 1
            covered.update(truth.flags)
        extra = [t for t in listed if t["id"] not in matched]
        problems += [
            f"api transaction {t['id']} {t['workflow']} {t['keys']} has no truth"
            for t in extra[:20]
        ]
        assert not problems, f"{len(problems)} mismatches:\n" + "\n".join(problems[:60])
    # The comparison covered every workflow, status and flag.
    assert {w for w, _ in (k for k in covered if isinstance(k, tuple))} == set(NAMING_KEY)
    assert {"missing_step", "out_of_order", "duplicate_step", "unexpected_step"} <= set(covered)
    assert {s for k in covered if isinstance(k, tuple) for s in k[1:]} >= {
        "complete",
        "late",
        "overdue",
        "in_progress",
        "failed",
    }
