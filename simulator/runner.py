"""Drive a simulation: a backfill at full speed, then live traffic as the clock moves.

The plan is pure (``traffic``); this module is the thin edge that decides what
is due, hands it to a sender and writes the truth file.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from simulator.records import HOUR, NS, Hop, dumps
from simulator.traffic import Estate, Plan, hour_units
from simulator.truth import evaluate
from stitchboard.config.model import SlasConfig

# A unit is drawn at its nominal start (a discharge) but some of its hops come
# earlier (the surgery's implant scans, a discharge later cancelled by A13): up to
# 20 hours. Generating a day ahead puts them on the wire at their own time.
LOOKAHEAD = 24 * HOUR


class HopSink(Protocol):
    def send(self, hop: Hop) -> None: ...
    def flush(self) -> None: ...


@dataclass
class Simulation:
    """Transactions generated so far, hops still to send, and the truth of both."""

    config: SlasConfig
    estate: Estate
    plan: Plan = field(default_factory=Plan)
    pending: list[tuple[int, str, int, Hop]] = field(default_factory=list)
    generated_until: int = 0
    sent_until: int = 0
    _n: int = 0

    def generate(self, since: int, until: int, count: int | None = None) -> int:
        """Add the units starting in [since, until); returns how many were added."""
        added = 0
        hour = max(since, self.generated_until) if self.generated_until else since
        hour -= hour % HOUR
        while hour < until and (count is None or added < count):
            for site in self.estate.sites:
                for unit in hour_units(self.estate, site, hour):
                    if not since <= unit.start < until or (count is not None and added >= count):
                        continue
                    for hop in self.plan.add(unit):
                        self._n += 1
                        heapq.heappush(self.pending, (hop.sent, hop.hop_id, self._n, hop))
                    added += 1
            hour += HOUR
        self.generated_until = max(self.generated_until, min(hour, until))
        if not self.plan.keep and len(self.plan._seen) > 200_000:
            self.plan.forget_before(self.generated_until - 2 * LOOKAHEAD)
        return added

    def due(self, now: int) -> list[Hop]:
        """Hops whose send time has come, in send order."""
        out = []
        while self.pending and self.pending[0][0] <= now:
            out.append(heapq.heappop(self.pending)[3])
        self.sent_until = max(self.sent_until, now)
        return out

    def truth_lines(self, as_of: int) -> list[str]:
        truths = evaluate(
            self.config,
            self.estate.sites,
            self.plan.opened,
            self.plan.hops,
            as_of,
            self.plan.scenario,
        )
        return [dumps(t) for t in truths]


def write_truth(sim: Simulation, path: Path, as_of: int) -> int:
    lines = sim.truth_lines(as_of)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    tmp.replace(path)
    return len(lines)


def send_due(sim: Simulation, sink: HopSink, now: int) -> int:
    hops = sim.due(now)
    for hop in hops:
        sink.send(hop)
    return len(hops)


def live(
    sim: Simulation,
    sink: HopSink,
    stop: threading.Event,
    *,
    clock: Callable[[], float] = time.time,
    tick: float = 1.0,
    report: Callable[[int], None] | None = None,
) -> None:
    """Send hops as their time comes until ``stop`` is set, generating a day ahead."""
    while not stop.is_set():
        now = int(clock() * NS)
        if sim.generated_until < now + LOOKAHEAD - HOUR:
            # An hour of traffic per loop, so sending never waits for a whole day's plan.
            sim.generate(sim.generated_until, min(sim.generated_until + HOUR, now + LOOKAHEAD))
        sent = send_due(sim, sink, now)
        if sent:
            sink.flush()
        if report is not None:
            report(sent)
        stop.wait(tick)
