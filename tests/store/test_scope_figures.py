"""The workflow page's one read of a scope (``queries.scope_figures``: funnel, step
latency, flags, slowest) equals the same figures worked out one transaction at a time
from the newest version of each, after rounds of rewrites (reopened, closed, retired,
moved out of the scope), merged or not, with rows of a workflow whose steps changed."""

from __future__ import annotations

import datetime as dt
import math
import random

from dashboards import queries as q

NS = 1_000_000_000
DAY = 86_400 * NS
NOW = 1_790_000_000 * NS
D2R = "discharge_to_revenue"
STEPS = ["discharge", "engine_ack", "charge", "final_bill"]
OLD_STEPS = ["discharge", "charge", "final_bill"]  # rows written before a step was added
FLAGS = ["missing_step", "out_of_order", "duplicate_step", "unexpected_step"]
COLUMNS = (
    "id", "workflow", "id_time", "facility", "status", "start_time", "duration_ns", "flags",
    "step_names", "step_counts", "step_first", "step_durations", "version", "deleted",
)  # fmt: skip
SINCE, UNTIL = NOW - 7 * DAY, NOW
QUANTILES = (0.5, 0.9, 0.99)


def when(ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ns / NS, dt.UTC)


class Tx:
    """One version of a transaction, as the test writes it and as the reference reads it."""

    def __init__(self, rng: random.Random, n: int, version: int) -> None:
        self.id = f"t{n:04d}"
        self.workflow = D2R if n % 5 else "claim_to_cash"
        # id_time is fixed for an id; some start before the scope.
        self.start = NOW - 8 * DAY + (n * 7919 % 800) * DAY // 100
        self.facility = ("NMC01", "LCH02")[n % 2]
        self.version = version
        self.status = rng.choice(("in_progress", "overdue", "complete", "late", "failed"))
        self.names = OLD_STEPS if n % 7 == 0 else STEPS
        reached = rng.randrange(0, len(self.names) + 1)
        self.counts = [int(i < reached) for i in range(len(self.names))]
        if rng.random() < 0.2 and reached > 1:
            self.counts[rng.randrange(1, reached)] = 0  # a gap: a step not seen (yet)
        self.first = [
            self.start + i * rng.randrange(1, 40) * 60 * NS if c else 0
            for i, c in enumerate(self.counts)
        ]
        # Older rows carry no durations (the latency falls back to the first times); a
        # step that may come early has a negative one (not measured).
        self.durations = (
            [] if n % 3 == 0 else [rng.randrange(-5, 3000) * NS if c else 0 for c in self.counts]
        )
        finished = self.status in ("complete", "late")
        self.duration = rng.randrange(1, 6) * 3600 * NS if finished and rng.random() < 0.9 else None
        self.flags = sorted(set(rng.sample(FLAGS, rng.randrange(0, 3))))
        self.deleted = int(rng.random() < 0.06)

    def row(self) -> tuple[object, ...]:
        return (
            self.id, self.workflow, when(self.start), self.facility, self.status,
            when(self.start), self.duration, self.flags, self.names, self.counts, self.first,
            self.durations, self.version, self.deleted,
        )  # fmt: skip


def seconds(t: Tx, step: str, anchor: str | None) -> float | None:
    """The step's latency as its deadline clock counts it, None when not measured."""
    if step not in t.names:
        return None
    i = t.names.index(step)
    if not t.first[i]:
        return None
    if t.durations:
        return t.durations[i] / NS if t.durations[i] >= 0 else None
    anchored = (
        t.start if anchor is None else (t.first[t.names.index(anchor)] if anchor in t.names else 0)
    )
    return (t.first[i] - anchored) / NS if anchored > 0 else None


def reference(newest: dict[str, Tx], step: str, anchor: str | None, bins: int = 30) -> dict:
    scoped = [
        t
        for t in newest.values()
        if not t.deleted and t.workflow == D2R and SINCE <= t.start < UNTIL
    ]
    funnel = {}
    for s in STEPS:
        reached = [t for t in scoped if s in t.names and t.counts[t.names.index(s)]]
        stopped = [
            t
            for t in scoped
            if t.status in ("in_progress", "overdue")
            and any(t.counts)
            and t.names[max(i for i, c in enumerate(t.counts) if c)] == s
        ]
        funnel[s] = (len(reached), len(stopped))
    values = sorted(v for t in scoped if (v := seconds(t, step, anchor)) is not None)
    latency: tuple = (0, None, None, None, ())
    if values:
        width = max(values[-1], 1.0) / bins
        hist: dict[float, int] = {}
        for v in values:
            key = math.floor(v / width) * width
            hist[key] = hist.get(key, 0) + 1
        # quantilesExact: the value at index floor(level × count) of the sorted values.
        p = [values[min(len(values) - 1, int(level * len(values)))] for level in QUANTILES]
        latency = (len(values), *p, tuple(sorted(hist.items())))
    flags: dict[str, int] = {}
    for t in scoped:
        for f in t.flags:
            flags[f] = flags.get(f, 0) + 1
    finished = [t for t in scoped if t.status in ("complete", "late") and t.duration is not None]
    slowest = sorted(finished, key=lambda t: (-(t.duration or 0), t.id))[:10]
    return {
        "funnel": funnel,
        "latency": latency,
        "flags": sorted(flags.items(), key=lambda kv: (-kv[1], kv[0])),
        "slowest": [(t.id, t.duration) for t in slowest],
    }


def observed(store, step: str, anchor: str | None) -> dict:
    found = q.scope_figures(store, q.Scope(SINCE, UNTIL, workflow=D2R), NOW, STEPS, step, anchor)
    lat = found.latency
    return {
        "funnel": {f.step: (f.reached, f.stopped_here) for f in found.funnel},
        "latency": (lat.count, lat.p50, lat.p90, lat.p99, lat.histogram)
        if lat.count
        else (0, None, None, None, ()),
        "flags": list(found.flags.items()),
        "slowest": [(r["id"], r["duration_ns"]) for r in found.slowest],
    }


def test_equal_to_the_newest_versions_after_every_round(store) -> None:
    store.command(f"TRUNCATE TABLE {store.table('transactions')}")
    rng = random.Random(11)
    newest: dict[str, Tx] = {}
    for version in range(1, 6):
        # New transactions and new versions of old ones, each round in a part of its own.
        written = [Tx(rng, n, version) for n in rng.sample(range(300), 120)]
        store.insert("transactions", COLUMNS, [t.row() for t in written])
        newest.update({t.id: t for t in written})
        if version == 4:
            store.command(f"OPTIMIZE TABLE {store.table('transactions')} FINAL")
        for step, anchor in (
            ("engine_ack", "discharge"),
            ("final_bill", None),
            ("charge", "engine_ack"),
        ):
            expected = reference(newest, step, anchor)
            assert expected["latency"][0] and expected["slowest"], "the check needs data"
            assert observed(store, step, anchor) == expected, f"version {version}, {step}"


def test_a_scope_with_nothing_in_it(store) -> None:
    store.command(f"TRUNCATE TABLE {store.table('transactions')}")
    found = q.scope_figures(store, q.Scope(SINCE, UNTIL, workflow=D2R), NOW, STEPS, "charge", None)
    assert [(f.reached, f.stopped_here) for f in found.funnel] == [(0, 0)] * len(STEPS)
    assert (found.latency.count, found.latency.p50, found.latency.histogram) == (0, None, ())
    assert (found.flags, found.slowest) == ({}, ())
