"""Back-office hops shared by many transactions: revenue journals, claims, remittances, cash.

A GL journal summarizes a charge batch and a cash posting summarizes an EFT
trace: many transactions share them (slas.yaml ``fan_in``). Their hops are
seeded by the batch or trace alone, so every transaction that touches one
produces the identical hop, which the traffic merge keeps once.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from decimal import Decimal

from simulator.estate import Site, local, lognormal_ns, next_business_day
from simulator.hops import Emitter
from simulator.records import DAY, HOUR, MINUTE, NS, Hop

C2C = "claim_to_cash"
PAYER_SPLIT_RATE = 0.05
REJECT_999_RATE = 0.01


def _shared(seed: str, site: Site, name: str, em: Emitter) -> Emitter:
    """An emitter whose random choices depend only on the shared thing's name."""
    shared = Emitter(seed, site, random.Random(f"{seed}|shared|{site.id}|{name}"))
    shared.hops = em.hops
    return shared


# Shared hops already built: many transactions touch the same batch or trace, and
# building the hop once per transaction was a third of the generator's time.
_BUILT: dict[tuple[str, str, str], tuple[tuple[Hop, ...], frozenset[str]]] = {}


def _once(key: tuple[str, str, str], em: Emitter, build: Callable[[Emitter], None]) -> None:
    built = _BUILT.get(key)
    if built is None:
        scratch = Emitter(em.seed, em.site, em.rng)
        build(scratch)
        if len(_BUILT) > 100_000:
            _BUILT.clear()
        built = _BUILT[key] = (tuple(scratch.hops), frozenset(scratch.scenario))
    em.hops.extend(built[0])
    em.scenario.update(built[1])


def gl_journal(seed: str, site: Site, batch: str, posted: int, em: Emitter) -> None:
    """The ERP posts one revenue journal line per charge batch, the next business day."""
    _once((seed, site.id, f"gl|{batch}"), em, lambda out: _journal(seed, site, batch, posted, out))


def _journal(seed: str, site: Site, batch: str, posted: int, em: Emitter) -> None:
    day = local(site, posted).date()
    shared = _shared(seed, site, f"gl|{day}", em)
    if shared.rng.random() < 0.02:  # month-end crunch, interface down: posted late
        when = next_business_day(site, posted, shared.rng.randrange(2, 4), 7)
        em.scenario.add("late_journal")
    else:
        when = next_business_day(site, posted, 1, 6) + int(shared.rng.uniform(0, 90) * MINUTE)
    dept = batch.rsplit("-", 1)[-1]
    journal = f"JE{day:%Y%m%d}-{site.code}-{dept}"
    _shared(seed, site, f"gl|{batch}", em).emit(
        members=(),
        channel="span",
        system="ERP_GL",
        operation="gl.journal.post",
        at=when,
        keys={"journal": journal, "charge_batch": batch},
        tag=("gl", batch),
        attributes={"gl.ledger": "REVENUE"},
    )


def claim_to_cash(
    em: Emitter,
    site: Site,
    txn: str,
    claim: str,
    account: str,
    payer: str,
    billed: int,
    total: Decimal,
) -> None:
    rng = em.rng

    def step(name: str, operation: str, at: int, tag: str, **kw) -> None:
        em.emit(
            members=((C2C, txn, name),),
            channel="jsonl",
            system="CLEARINGHOUSE",
            operation=operation,
            at=at,
            keys={"claim": claim, **kw.pop("keys", {})},
            tag=(tag, claim),
            **kw,
        )

    submitted = billed + lognormal_ns(rng, 3 * HOUR, 1.0)
    step(
        "claim_submitted",
        "x12.837.submit",
        submitted,
        "837",
        amount=total,
        attributes={"payer.id": payer},
    )
    acked = submitted + lognormal_ns(rng, 8 * MINUTE, 1.0)
    if rng.random() < REJECT_999_RATE:
        step(
            "claim_accepted_999",
            "x12.999.receive",
            acked,
            "999",
            status="error",
            status_message="999 R: IK5*R, CLM05-3 frequency code invalid",
        )
        return
    step("claim_accepted_999", "x12.999.receive", acked, "999")
    step(
        "claim_status_277ca",
        "x12.277ca.receive",
        submitted + lognormal_ns(rng, 20 * HOUR, 0.5),
        "277",
    )
    remits = [submitted + 14 * DAY + lognormal_ns(rng, 4 * DAY, 0.8)]
    if rng.random() < PAYER_SPLIT_RATE:
        em.scenario.add("payer_split")
        remits.append(remits[0] + int(rng.uniform(3, 10) * DAY))
    share = (total * Decimal(rng.uniform(0.35, 0.65))).quantize(Decimal("0.01"))
    for n, raw in enumerate(remits):
        # 835 files arrive early in the morning, one EFT trace per payer per day.
        at = next_business_day(site, raw - DAY, 1, 5) + (hash_minutes(payer) * MINUTE)
        day = local(site, at).date()
        trace = f"EFT{payer}{day:%Y%m%d}{site.code}"
        paid = share if len(remits) == 1 else (share / 2).quantize(Decimal("0.01"))
        step("remit", "x12.835.receive", at, f"835-{n}", amount=paid, keys={"remit_trace": trace})
        _once(
            (em.seed, site.id, f"cash|{trace}"),
            em,
            lambda out: _cash(em.seed, site, trace, at, out),  # noqa: B023 - built at once
        )


def hash_minutes(payer: str) -> int:
    return sum(map(ord, payer)) % 50


def _cash(seed: str, site: Site, trace: str, remitted: int, em: Emitter) -> None:
    shared = _shared(seed, site, f"cash|{trace}", em)
    if shared.rng.random() < 0.03:
        reassociated = next_business_day(site, remitted, 3, 11)  # a deposit not matched
        em.scenario.add("late_cash_reassociation")
    else:
        reassociated = next_business_day(site, remitted, 1, 10) + int(
            shared.rng.uniform(0, 4) * HOUR
        )
    shared.emit(
        members=(),
        channel="log",
        system="TREASURY",
        operation="cash.reassociate",
        at=reassociated,
        keys={"payment": f"PMT-{trace}", "remit_trace": trace},
        tag=("reassoc", trace),
    )
    posted = next_business_day(site, reassociated, 1, 7) + int(shared.rng.uniform(0, 60) * NS)
    shared.emit(
        members=(),
        channel="span",
        system="ERP_GL",
        operation="gl.cash.post",
        at=posted,
        keys={"journal": f"JC-{trace}", "remit_trace": trace},
        tag=("cashgl", trace),
        attributes={"gl.ledger": "CASH"},
    )
