"""The simulator's generator: deterministic, realistic, and true to slas.yaml."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal

import hl7
import pytest

from simulator.estate import local
from simulator.records import DAY, HOUR, NS, Hop
from simulator.traffic import estate_from_config, plan
from simulator.truth import evaluate, step_matches
from stitchboard.config import load_config
from tests.support import ROOT

AS_OF = int(dt.datetime(2026, 3, 16, tzinfo=dt.UTC).timestamp()) * NS
SINCE = AS_OF - 21 * DAY


@pytest.fixture(scope="module")
def config():
    return load_config(ROOT / "slas.yaml")


@pytest.fixture(scope="module")
def month(config):
    estate = estate_from_config(config, 11)
    return estate, plan(estate, SINCE, AS_OF)


@pytest.fixture(scope="module")
def truths(config, month):
    estate, p = month
    return evaluate(config, estate.sites, p.opened, p.hops, AS_OF, p.scenario)


def test_same_seed_same_traffic_and_truth(config):
    estate = estate_from_config(config, 5)
    a = plan(estate, SINCE, SINCE + 2 * DAY)
    b = plan(estate, SINCE, SINCE + 2 * DAY)
    assert [h.to_json() for h in a.by_sent()] == [h.to_json() for h in b.by_sent()]
    ta = evaluate(config, estate.sites, a.opened, a.hops, AS_OF, a.scenario)
    tb = evaluate(config, estate.sites, b.opened, b.hops, AS_OF, b.scenario)
    assert [t.to_json() for t in ta] == [t.to_json() for t in tb]
    other = plan(estate_from_config(config, 6), SINCE, SINCE + 2 * DAY)
    assert {h.hop_id for h in other.hops}.isdisjoint({h.hop_id for h in a.hops})


def test_windows_compose(config):
    """A backfill and a live run that follow each other produce the same traffic as one run."""
    estate = estate_from_config(config, 5)
    whole = plan(estate, SINCE, SINCE + DAY)
    first = plan(estate, SINCE, SINCE + 10 * HOUR + 17)
    second = plan(estate, SINCE + 10 * HOUR + 17, SINCE + DAY)
    assert sorted(o.txn for o in whole.opened) == sorted(
        o.txn for o in first.opened + second.opened
    )
    assert {h.hop_id for h in whole.hops} == {h.hop_id for h in first.hops + second.hops}


def test_every_hop_is_what_its_step_expects(config, month):
    """Systems, operations, attributes and keys per hop follow slas.yaml's workflow steps."""
    _, p = month
    workflows = {w.name: w for w in config.workflows}
    fan_in_steps = [(w, s) for w in config.workflows for s in w.steps if s.fan_in]
    for hop in p.hops:
        keys = dict(hop.keys)
        for line in hop.lines:
            keys.update(line)
        for workflow, _txn, step_name in hop.members:
            workflow_def = workflows[workflow]
            if step_name == "!unexpected":
                assert any(step_matches(m, hop) for m in workflow_def.unexpected)
                continue
            step = workflow_def.step(step_name)
            assert step is not None, (workflow, step_name)
            assert step_matches(step.match, hop), (hop.system, hop.operation, step_name)
            if not step.fan_in:
                assert set(step.keys) <= set(keys), (step_name, sorted(keys))
        if not hop.members:
            assert any(
                step_matches(s.match, hop) and set(s.fan_in) & set(keys) for _, s in fan_in_steps
            ), (hop.system, hop.operation)


def test_hops_carry_only_their_systems_keys(month):
    _, p = month
    by_operation: dict[str, set[str]] = {}
    for hop in p.hops:
        by_operation.setdefault(hop.operation, set()).update(hop.keys)
    assert by_operation["gl.journal.post"] == {"journal", "charge_batch"}  # no visit
    assert "visit" not in by_operation["x12.835.receive"]
    assert by_operation["ACK^A03"] == {"msg"}
    assert "visit" not in by_operation["inventory.issue"]


def test_hl7_messages_parse_with_keys_where_extraction_reads_them(month):
    _, p = month
    seen = Counter()
    hl7_hops = [h for h in p.hops if h.channel == "hl7"]
    # Every rare kind, and a sample of the common ones (parsing is slow).
    sample = [h for n, h in enumerate(hl7_hops) if n % 25 == 0 or h.operation == "ADT^A13"]
    for hop in sample:
        message = hl7.parse(hop.body)
        kind = str(message["MSH.F9.R1.C1"]) + "^" + str(message["MSH.F9.R1.C2"])
        assert kind == hop.operation
        assert str(message["MSH.F3"]) == hop.system
        assert str(message["MSH.F4"]) == hop.facility
        seen[kind] += 1
        if kind == "ACK^A03":
            assert str(message.segment("MSA")[2]) == hop.keys["msg"]
            continue
        assert str(message["PID.F18.R1.C1"]) == hop.keys["account"]
        assert str(message["PV1.F19.R1.C1"]) == hop.keys["visit"]
        if kind == "ADT^A03":
            assert str(message["MSH.F10"]) == hop.keys["msg"]
            event_time = hl7.parse_datetime(str(message["EVN.F6"]))
            assert int(event_time.timestamp()) * NS == hop.time
            assert str(message["PV1.F45"]) == str(message["EVN.F6"])
        if kind == "DFT^P03":
            lines = message.segments("FT1")
            assert [str(s[2]) for s in lines] == [line["charge"] for line in hop.lines]
            assert [str(s[3]) for s in lines] == [line["charge_batch"] for line in hop.lines]
            assert sum(Decimal(str(s[11])) for s in lines) == hop.amount
            for s in lines:
                assert str(s[6]) in ("CG", "CD")
                assert (Decimal(str(s[11])) < 0) == (str(s[6]) == "CD")
            assert int(hl7.parse_datetime(str(message["EVN.F2"])).timestamp()) * NS == hop.time
    assert set(seen) == {"ADT^A03", "ADT^A13", "ACK^A03", "DFT^P03", "BAR^P05"}
    dft_lines = [h.event_count for h in p.hops if h.operation == "DFT^P03"]
    assert max(dft_lines) >= 3


def test_hard_cases_all_occur(month):
    _, p = month
    scenarios = Counter(s for tags in p.scenario.values() for s in tags)
    for case in (
        "late_charge",
        "a13_cancel",
        "duplicate_send",
        "silent_feed",
        "late_arrival",
        "error_hop",
        "payer_split",
        "match_exception",
        "missing_discharge",
        "stuck_unbilled",
        "recoded",
        "slow_engine",
    ):
        assert scenarios[case] > 0, case
    assert any(h.resend for h in p.hops)
    credits = [h for h in p.hops if h.amount is not None and h.amount < 0]
    assert credits, "reversal lines (CD) are generated"


def test_volume_follows_day_and_week(month):
    estate, p = month
    site = estate.sites[0]
    by_hour = Counter()
    by_weekday = Counter()
    for o in p.opened:
        if o.workflow == "discharge_to_revenue" and o.facility == site.id:
            moment = local(site, o.start)
            by_hour[moment.hour] += 1
            by_weekday[moment.weekday() < 5] += 1
    assert sum(by_hour[h] for h in range(11, 15)) > 4 * sum(by_hour[h] for h in range(1, 5))
    assert by_weekday[True] / 5 > 1.4 * by_weekday[False] / 2


def test_clocks_disagree_by_a_few_minutes(month):
    """The clearinghouse's clock runs ahead: its 837 sometimes looks earlier than sent."""
    _, p = month
    skews = {h.time - h.sent for h in p.hops if h.system == "CLEARINGHOUSE" and not h.resend}
    assert max(skews) > 0  # stamped after it was handed over: only a skewed clock does that


def test_truth_covers_every_status_and_flag(truths):
    statuses = Counter((t.workflow, t.status) for t in truths)
    for workflow in (
        "discharge_to_revenue",
        "claim_to_cash",
        "implant_use_to_replenishment",
        "requisition_to_payment",
        "timecard_to_labor_gl",
    ):
        assert any(w == workflow for w, _ in statuses), workflow
    assert {s for _, s in statuses} == {"in_progress", "complete", "late", "overdue", "failed"}
    flags = Counter(f for t in truths for f in t.flags)
    assert set(flags) == {"missing_step", "out_of_order", "duplicate_step", "unexpected_step"}
    assert any(m.level == "warn" for t in truths for m in t.missed)


def test_truth_of_a_cancelled_discharge(truths):
    cancelled = [
        t for t in truths if "a13_cancel" in t.scenario and t.workflow == "discharge_to_revenue"
    ]
    assert cancelled
    for t in cancelled:
        assert "unexpected_step" in t.flags and "duplicate_step" in t.flags
        assert next(s for s in t.steps if s.step == "discharge").count == 2


def test_one_visit_many_charges_one_journal(truths):
    d2r = [t for t in truths if t.workflow == "discharge_to_revenue" and t.status == "complete"]
    charges = [next(s.count for s in t.steps if s.step == "charge") for t in d2r]
    assert sum(charges) / len(charges) > 5
    journals = Counter(j for t in d2r for j in t.keys.get("journal", ()))
    assert max(journals.values()) > 3  # many visits' charges in one journal


def test_truth_is_judged_as_of_a_moment(config, month):
    """Before a hop was sent it is not in the truth: what is overdue depends on when you look."""
    estate, p = month
    early = evaluate(config, estate.sites, p.opened, p.hops, SINCE + 5 * DAY, p.scenario)
    late = {t.txn: t for t in evaluate(config, estate.sites, p.opened, p.hops, AS_OF, p.scenario)}
    changed = [t for t in early if t.status != late[t.txn].status]
    assert changed
    assert all(s.last <= SINCE + 5 * DAY + 10 * 60 * NS for t in early for s in t.steps)


def test_hops_round_trip_through_json(month):
    _, p = month
    for hop in p.hops[:2000]:
        assert Hop.from_json(hop.to_json()) == hop


class ListSink:
    """An in-memory HopSink: what a sender would have put on the wire."""

    def __init__(self) -> None:
        self.hops: list[Hop] = []
        self.flushes = 0

    def send(self, hop: Hop) -> None:
        self.hops.append(hop)

    def flush(self) -> None:
        self.flushes += 1


def test_live_sends_each_hop_when_its_time_comes(config):
    import threading

    from simulator.runner import Simulation, live, send_due

    estate = estate_from_config(config, 4, scale=0.5)
    sim = Simulation(config, estate)
    sim.generate(SINCE, SINCE + 2 * DAY)
    sink = ListSink()
    history = send_due(sim, sink, SINCE + 2 * DAY)
    assert history == len(sink.hops) > 0
    clock = [(SINCE + 2 * DAY) / NS]
    stop = threading.Event()
    first_loop: list[int] = []

    def tick(_: int) -> None:  # a fake clock: ten simulated minutes per loop
        first_loop.append(len(sink.hops))
        clock[0] += 600
        if clock[0] >= (SINCE + 4 * DAY) / NS:
            stop.set()

    live(sim, sink, stop, clock=lambda: clock[0], tick=0, report=tick)
    sent = [h.sent for h in sink.hops]
    # Live hops go out in send order (the first loop catches up on the lookahead's
    # early hops of transactions drawn just after the history window).
    assert sent[first_loop[0] :] == sorted(sent[first_loop[0] :])
    assert max(sent[history:]) <= SINCE + 4 * DAY
    assert len({(h.hop_id, h.resend) for h in sink.hops}) == len(sink.hops)  # none twice
    # Transactions started during the live period were generated on the way.
    assert any(SINCE + 2 * DAY < o.start < SINCE + 4 * DAY for o in sim.plan.opened)
    whole = plan(estate, SINCE, sim.generated_until)
    expected = {(h.hop_id, h.resend) for h in whole.hops if h.sent <= SINCE + 4 * DAY - 600 * NS}
    assert expected <= {(h.hop_id, h.resend) for h in sink.hops}


def test_long_runs_keep_only_what_is_still_to_send(config):
    """Without a truth to write, the plan forgets sent hops yet never sends one twice."""
    from simulator.runner import LOOKAHEAD, Simulation, send_due

    estate = estate_from_config(config, 9, scale=0.3)
    sim = Simulation(config, estate)
    sim.plan.keep = False
    sink = ListSink()
    day = SINCE
    while day < SINCE + 6 * DAY:
        sim.generate(day, day + DAY)
        day += DAY
        sim.plan.forget_before(sim.generated_until - 2 * LOOKAHEAD)
        send_due(sim, sink, day - LOOKAHEAD)
    send_due(sim, sink, day)
    assert not sim.plan.hops and not sim.plan.opened
    whole = plan(estate, SINCE, SINCE + 6 * DAY)
    sent = [(h.hop_id, h.resend) for h in sink.hops]
    assert len(sent) == len(set(sent))
    assert set(sent) == {(h.hop_id, h.resend) for h in whole.hops if h.sent <= day}
