"""Incremental correlation equals one batch pass: any order, duplicates, replays, batch splits."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from correlator.deadlines import clocks_for
from correlator.engine import Correlator, correlate
from correlator.stitching import WorkflowStitcher
from stitchboard.config.model import SlasConfig
from stitchboard.config.workflows import workflow_problems
from tests.correlator_helpers import HOUR, MINUTE, ev
from tests.correlator_reference import reference_summarize

KEYS = ("k1", "k2", "k3", "k4")
NOW = 1_800_000_000 * 1_000_000_000


@st.composite
def workflows(draw) -> SlasConfig:
    count = draw(st.integers(2, 5))
    steps = []
    for i in range(count):
        fan_in = i > 0 and draw(st.booleans()) and draw(st.booleans())
        step = {
            "name": f"s{i}",
            "match": {"system": "S", "operation": f"op{i}"},
            "keys": draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=2, unique=True)),
            "repeat": draw(st.booleans()),
            "optional": i > 0 and draw(st.booleans()),
            "may_precede": i > 0 and draw(st.booleans()),
        }
        if draw(st.booleans()):
            step["grace"] = draw(st.sampled_from(["30m", "3h", "1bd"]))
        if fan_in:
            step["fan_in"] = ["k4"]
        elif draw(st.booleans()):
            step["carries"] = ["k4"]
        if draw(st.booleans()):
            after = draw(st.sampled_from(["previous", "start", *[f"s{j}" for j in range(i)]]))
            step["within"] = {
                "after": after if i > 0 or after in ("previous", "start") else "start",
                "from": draw(st.sampled_from(["occurred", "sent"])),
                "warn": f"{draw(st.integers(1, 90))}m",
                "breach": draw(st.sampled_from(["2h", "1bd", "3h"])),
            }
        steps.append(step)
    steps[0]["carries"] = ["k4"]  # fan-in steps need a carrier of k4
    workflow = {
        "name": "w",
        "steps": steps,
        "within": {"warn": "4h", "breach": "2bd"},
        "clock_skew": "1m",
        "unexpected": [{"system": "S", "operation": "cancel"}],
    }
    if draw(st.booleans()):
        workflow["grace"] = draw(st.sampled_from(["1h", "2h"]))
    config = SlasConfig.model_validate(
        {
            "facilities": [{"id": "F", "timezone": "America/Chicago"}],
            "keys": {k: {"attributes": [k]} for k in KEYS},
            "workflows": [workflow],
        }
    )
    assert workflow_problems(config) == []
    return config


@st.composite
def streams(draw, config: SlasConfig):
    steps = config.workflows[0].steps
    events = []
    for n in range(draw(st.integers(1, 30))):
        i = draw(st.integers(-1, len(steps) - 1))
        names = KEYS if i < 0 else (*steps[i].keys, *steps[i].carries, *steps[i].fan_in)
        keys = {k: f"{k}-{draw(st.integers(0, 5))}" for k in names if draw(st.integers(0, 9)) < 8}
        occurred = draw(st.integers(0, 48)) * 17 * MINUTE + NOW - 30 * HOUR
        # Sent at once, or minutes to hours after the event was documented.
        sent = occurred + draw(st.sampled_from([0, 0, 7 * MINUTE, 3 * HOUR]))
        events.append(
            ev(
                "S",
                "cancel" if i < 0 else f"op{i}",
                occurred,
                sent_time=sent if sent != occurred else 0,
                facility="F",
                status=draw(st.sampled_from(["ok", "ok", "error"])),
                amount=draw(st.sampled_from([None, "10.00", "2.50"])),
                tag=str(n),
                **keys,
            )
        )
    return events


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_incremental_equals_batch(data) -> None:
    config = data.draw(workflows())
    events = data.draw(streams(config))
    expected = {t.id: t for t in correlate(config, events, NOW)}

    # Arrival: shuffled, some events sent twice (replays), split into random batches.
    replays = data.draw(st.lists(st.sampled_from(events), max_size=10))
    arrival = data.draw(st.permutations(events + replays))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(arrival)), max_size=6)))
    batches = [arrival[a:b] for a, b in zip([0, *cuts], [*cuts, len(arrival)], strict=True)]

    correlator = Correlator(config)
    table: dict = {}
    for batch in batches:
        changes = correlator.feed(batch, now=NOW)
        for gone in changes.retired:
            table.pop(gone.id, None)
        for tx in changes.upserts:
            table[tx.id] = tx
    assert table == expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fast_summary_agrees_with_the_reference(data) -> None:
    config = data.draw(workflows())
    events = data.draw(streams(config))
    now = NOW + data.draw(st.integers(-40, 60)) * 17 * MINUTE
    stitcher = WorkflowStitcher(config.workflows[0])
    for event in events:
        stitcher.add(event, int(event.operation[2:]) if event.operation != "cancel" else -1)
    clocks = clocks_for(config.facilities)
    for root in stitcher.roots():
        fast = stitcher.transaction(root, clocks, now)
        core = stitcher._members[root]
        pool = {
            h.event.event_id: h
            for hops in (*stitcher._fanin.values(), *stitcher._unexpected.values())
            for h in hops
        }
        attached = [pool[i] for i in fast.event_ids if i in pool]
        assert fast == reference_summarize(config.workflows[0], core, attached, clocks, now)
