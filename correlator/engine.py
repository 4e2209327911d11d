"""The correlator's pure core across all workflows: route, stitch, summarize."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import replace

from correlator.deadlines import clocks_for
from correlator.matching import UNEXPECTED, Router
from correlator.stitching import Changes, FanInState, Retired, WorkflowStitcher
from correlator.transaction import Hop, Plan, Transaction, summarize
from stitchboard.config.model import SlasConfig
from stitchboard.events import Event


class Correlator:
    """Feed it events in any order, any number of times; flush to get what changed."""

    def __init__(self, config: SlasConfig):
        self.config = config
        self.router = Router(config.workflows)
        self.stitchers = [WorkflowStitcher(w) for w in config.workflows]
        self.clocks = clocks_for(config.facilities)
        self.renamed = renamed_facilities(config)
        self.events_seen = 0

    def add(self, events: Iterable[Event]) -> None:
        route = self.router.route
        stitchers = self.stitchers
        renamed = self.renamed
        for event in events:
            self.events_seen += 1
            if event.facility in renamed:
                event = replace(event, facility=renamed[event.facility])
            for wi, si in route(event.system, event.operation, event.attributes):
                stitchers[wi].add(event, si)

    def flush(self, now: int | None = None) -> Changes:
        now = time.time_ns() if now is None else now
        upserts: list[Transaction] = []
        retired: list[Retired] = []
        fan_in: list[FanInState] = []
        for stitcher in self.stitchers:
            changes = stitcher.flush(self.clocks, now)
            upserts.extend(changes.upserts)
            retired.extend(changes.retired)
            fan_in.extend(changes.fan_in)
        return Changes(tuple(upserts), tuple(retired), tuple(fan_in), now)

    def touch_all(self) -> None:
        """Recompute every transaction on the next flush."""
        for stitcher in self.stitchers:
            stitcher.touch_all()

    def redo(self) -> None:
        """The last flush (or sweep) could not be stored: repeat it on the next flush."""
        for stitcher in self.stitchers:
            stitcher.redo()

    def sweep(self, now: int | None = None) -> Changes:
        """Transactions that became overdue (or moved from warn to breach) by ``now``."""
        now = time.time_ns() if now is None else now
        upserts: list[Transaction] = []
        retired: list[Retired] = []
        fan_in: list[FanInState] = []
        for stitcher in self.stitchers:
            changes = stitcher.sweep(self.clocks, now)
            upserts.extend(changes.upserts)
            retired.extend(changes.retired)
            fan_in.extend(changes.fan_in)
        return Changes(tuple(upserts), tuple(retired), tuple(fan_in), now)

    def feed(self, events: Iterable[Event], now: int | None = None) -> Changes:
        self.add(events)
        return self.flush(now)

    def transactions(self, now: int | None = None) -> list[Transaction]:
        """Every current transaction, recomputed (for a rebuild or a comparison)."""
        now = time.time_ns() if now is None else now
        return [
            stitcher.transaction(root, self.clocks, now)
            for stitcher in self.stitchers
            for root in stitcher.roots()
        ]

    @property
    def transaction_count(self) -> int:
        return sum(len(s) for s in self.stitchers)

    def unmatched(self) -> dict[str, tuple[int, int]]:
        """Per workflow: how many fan-in events no transaction carries, and the time of
        the oldest (0 when none)."""
        return {
            s.workflow.name: (len(s.unmatched), min(s.unmatched.values(), default=0))
            for s in self.stitchers
        }


def renamed_facilities(config: SlasConfig) -> dict[str, str]:
    """Facility names stored on events that now stand for a declared facility's id: its
    aliases. An event stored under a name slas.yaml did not declare then (kept as sent)
    takes the facility's id once that name is declared, without a re-send."""
    return {name: fid for name, fid in config.facility_index().items() if name != fid}


def correlate(config: SlasConfig, events: Iterable[Event], now: int) -> list[Transaction]:
    """One batch pass over all events: the reference the incremental path must equal."""
    correlator = Correlator(config)
    correlator.add(events)
    return correlator.transactions(now)


def resummarize(
    config: SlasConfig, workflow: str, events: list[tuple[Event, str]], now: int
) -> Transaction | None:
    """A stored transaction recomputed from its events and their step names (for detail views).

    Gives what the correlator computed, evaluated at ``now``; None when the
    workflow is no longer configured.
    """
    found = next((w for w in config.workflows if w.name == workflow), None)
    if found is None or not events:
        return None
    plan = Plan(found)
    index = {name: i for i, name in enumerate(plan.names)}
    renamed = renamed_facilities(config)
    core, attached = [], []
    for event, step_name in events:
        if event.facility in renamed:
            event = replace(event, facility=renamed[event.facility])
        step = index.get(step_name, UNEXPECTED)
        hop = Hop(event, step)
        if step == UNEXPECTED or found.steps[step].fan_in:
            attached.append(hop)
        else:
            core.append(hop)
    if not core:
        return None
    return summarize(plan, core, attached, clocks_for(config.facilities), now)
