"""The estate's traffic over time: when transactions start, and every hop in send order.

Starts follow a non-homogeneous Poisson process per facility and kind of work
(discharges, purchasing) shaped by the local day/night and weekday curves.
Each facility-hour is seeded on its own, so any window of time can be generated
independently and always gives the same transactions: a backfill and a live run
that overlap agree.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from simulator.encounters import Opened, encounter
from simulator.estate import Site, site_of, volume
from simulator.records import HOUR, MINUTE, Hop
from simulator.supply import R2P, T2L, pay_period, period_ends, requisition
from stitchboard.config.model import SlasConfig

# Starts per hour at a large hospital on a weekday at scale 1.0.
ENCOUNTERS_PER_HOUR = 6.0
REQUISITIONS_PER_HOUR = 2.5
# Approximate hop events per second across the three sample facilities at scale 1.0,
# used to turn ``--rate`` (events/s) into a scale. Measured with bench/simulator.py.
EVENTS_PER_SECOND_AT_SCALE_1 = 0.046

# Furthest a transaction's hops reach after its start (claims are paid in 30-45 days).
HORIZON = 75 * 24 * HOUR


@dataclass(frozen=True, slots=True)
class Generated:
    """One unit of generation: the transactions it opened and the hops they emit."""

    start: int  # when the unit was drawn (a discharge, an approval, a period close)
    opened: tuple[Opened, ...]
    hops: tuple[Hop, ...]
    scenario: frozenset[str]


@dataclass(frozen=True)
class Estate:
    seed: str
    sites: tuple[Site, ...]
    scale: float = 1.0
    workflows: frozenset[str] | None = None  # None: all five

    def wants(self, workflow: str) -> bool:
        return self.workflows is None or workflow in self.workflows


def estate_from_config(
    config: SlasConfig,
    seed: int | str,
    *,
    scale: float = 1.0,
    facilities: Sequence[str] | None = None,
    workflows: Iterable[str] | None = None,
) -> Estate:
    chosen = [
        f
        for f in config.facilities
        if not facilities or f.id in facilities or set(f.aliases) & set(facilities)
    ]
    if not chosen:
        raise ValueError("no facility selected: name facility ids or aliases from slas.yaml")
    return Estate(
        str(seed),
        tuple(site_of(f) for f in chosen),
        scale,
        frozenset(workflows) if workflows else None,
    )


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 40:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def hour_units(estate: Estate, site: Site, hour: int) -> Iterator[Generated]:
    """Everything that starts at ``site`` in the hour beginning at ``hour`` (ns, UTC)."""
    index = hour // HOUR
    rng = random.Random(f"{estate.seed}|hour|{site.id}|{index}")
    mid = hour + 30 * MINUTE
    kinds = []
    if (
        estate.wants("discharge_to_revenue")
        or estate.wants("claim_to_cash")
        or estate.wants("implant_use_to_replenishment")
    ):
        lam = ENCOUNTERS_PER_HOUR * site.size * estate.scale * volume(site, "discharge", mid)
        kinds += [("enc", hour + int(rng.random() * HOUR)) for _ in range(_poisson(rng, lam))]
    if estate.wants(R2P):
        lam = REQUISITIONS_PER_HOUR * site.size * estate.scale * volume(site, "office", mid)
        kinds += [("req", hour + int(rng.random() * HOUR)) for _ in range(_poisson(rng, lam))]
    kinds.sort(key=lambda k: k[1])
    for n, (kind, start) in enumerate(kinds):
        serial = f"{site.code}{index:06d}{n:03d}"
        if kind == "enc":
            em, opened = encounter(estate.seed, site, serial, start)
            opened = [o for o in opened if estate.wants(o.workflow)]
            if not opened:
                continue
        else:
            em = requisition(estate.seed, site, serial, start)
            opened = [Opened(R2P, f"{R2P}:{site.id}:{serial}", site.id, start)]
        yield Generated(start, tuple(opened), _only(em.hops, estate), frozenset(em.scenario))
    if estate.wants(T2L):
        for period, closed in period_ends(site, hour, hour + HOUR):
            em = pay_period(estate.seed, site, period, closed)
            yield Generated(
                closed,
                (Opened(T2L, f"{T2L}:{site.id}:{period}", site.id, closed),),
                tuple(em.hops),
                frozenset(em.scenario),
            )


def _only(hops: Sequence[Hop], estate: Estate) -> tuple[Hop, ...]:
    if estate.workflows is None:
        return tuple(hops)
    return tuple(h for h in hops if not h.members or any(estate.wants(m[0]) for m in h.members))


def units(estate: Estate, since: int, until: int) -> Iterator[Generated]:
    """Every unit that starts in [since, until), hour by hour, facilities in order."""
    hour = since - since % HOUR
    while hour < until:
        for site in estate.sites:
            for unit in hour_units(estate, site, hour):
                if since <= unit.start < until:
                    yield unit
        hour += HOUR


@dataclass
class Plan:
    """Transactions and their hops, de-duplicated (a shared journal is one hop)."""

    opened: list[Opened] = field(default_factory=list)
    hops: list[Hop] = field(default_factory=list)
    scenario: dict[str, frozenset[str]] = field(default_factory=dict)
    # False: keep nothing for a truth, only what de-duplication needs (long runs).
    keep: bool = True
    _seen: dict[tuple[str, bool], int] = field(default_factory=dict)

    def add(self, unit: Generated) -> list[Hop]:
        """Add a unit; returns its hops not seen before."""
        if self.keep:
            self.opened.extend(unit.opened)
            for o in unit.opened:
                self.scenario[o.txn] = unit.scenario
        new = []
        for hop in unit.hops:
            ident = (hop.hop_id, hop.resend)
            if ident not in self._seen:
                self._seen[ident] = hop.time
                new.append(hop)
        if self.keep:
            self.hops.extend(new)
        return new

    def forget_before(self, ns: int) -> None:
        """Drop de-duplication entries of hops before ``ns``: a shared hop (a journal, a
        cash posting) comes after the starts of the units that share it, so once units
        start a day later than it, none will emit it again."""
        self._seen = {k: t for k, t in self._seen.items() if t >= ns}

    def by_sent(self) -> list[Hop]:
        return sorted(self.hops, key=lambda h: (h.sent, h.hop_id))


def plan(estate: Estate, since: int, until: int, count: int | None = None) -> Plan:
    """The transactions starting in [since, until) (at most ``count`` units) and their hops."""
    result = Plan()
    for n, unit in enumerate(units(estate, since, until)):
        if count is not None and n >= count:
            break
        result.add(unit)
    return result
