"""Synthetic hop events with realistic key chaining, for the correlator benchmark.

Discharges (ADT, engine ACK, 1-3 charge lines, a GL journal per charge batch of
~40 visits, coding, final bill) and claims (final bill, 837, 999, 277CA, 835
remit, one EFT reassociation and cash journal per ~25 claims): ~5 events per
transaction, keys chained visit → charge → batch → journal and claim → trace.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from decimal import Decimal

from stitchboard.events import Event

NS = 1_000_000_000
MIN = 60 * NS
HOUR = 60 * MIN
T0 = 1_767_225_600 * NS  # 2026-01-01T00:00:00Z
FACILITIES = ("NMC01", "LCH02", "MSC03")


def _event(
    n: str,
    t: int,
    facility: str,
    system: str,
    operation: str,
    keys: dict,
    amount: Decimal | None = None,
    attributes: dict | None = None,
) -> Event:
    return Event(
        n,
        t,
        t,
        "span",
        system,
        facility,
        system,
        operation,
        "ok",
        "",
        0,
        amount,
        "",
        "",
        keys,
        attributes or {},
    )


def transactions(
    count: int, seed: int = 7, spread_ns: int = 60 * 24 * HOUR, prefix: str = ""
) -> Iterator[Event]:
    """Events of ``count`` transactions (80% discharges, 20% claims).

    ``prefix`` makes every id and key value distinct from another run's."""
    rng = random.Random(seed)
    n = 0
    batch_size, remit_size = 40, 25
    for i in range(count):
        facility = FACILITIES[i % 3]
        i_text = f"{prefix}{i}"
        t = T0 + rng.randrange(spread_ns)
        if i % 5:
            v, a, m = f"V{i_text}", f"A{i_text}", f"M{i_text}"
            batch = f"B{prefix}{i // batch_size}"
            events = [
                (
                    "EHR_ADT",
                    "ADT^A03",
                    t,
                    {"msg": m, "visit": v, "account": a, "mrn": f"p{i_text}"},
                ),
                ("IFENGINE", "ACK^A03", t + MIN, {"msg": m}),
            ]
            for c in range(1 + i % 3):
                events.append(
                    (
                        "PERIOP",
                        "DFT^P03",
                        t + (2 + c) * HOUR,
                        {
                            "visit": v,
                            "account": a,
                            "charge": f"C{i_text}-{c}",
                            "charge_batch": batch,
                        },
                    )
                )
            if i % batch_size == 0:
                events.append(
                    (
                        "ERP_GL",
                        "gl.journal.post",
                        t + 20 * HOUR,
                        {"charge_batch": batch, "journal": f"J{batch}"},
                    )
                )
            events.append(("CODING", "BAR^P05", t + 50 * HOUR, {"visit": v, "account": a}))
        else:
            cl, a = f"CL{i_text}", f"A{i_text}"
            trace = f"T{prefix}{i // remit_size}"
            events = [
                ("PATACCT", "claim.final_bill", t, {"claim": cl, "account": a}),
                ("CLEARINGHOUSE", "x12.837.submit", t + 5 * HOUR, {"claim": cl}),
                ("CLEARINGHOUSE", "x12.999.receive", t + 6 * HOUR, {"claim": cl}),
                ("CLEARINGHOUSE", "x12.277ca.receive", t + 30 * HOUR, {"claim": cl}),
                (
                    "CLEARINGHOUSE",
                    "x12.835.receive",
                    t + 300 * HOUR,
                    {"claim": cl, "remit_trace": trace},
                ),
            ]
            if i % remit_size == 0:
                events.append(
                    (
                        "TREASURY",
                        "cash.reassociate",
                        t + 320 * HOUR,
                        {"remit_trace": trace, "payment": f"P{trace}"},
                    )
                )
        for system, operation, time, keys in events:
            n += 1
            amount = Decimal("125.00") if operation == "DFT^P03" else None
            yield _event(f"{prefix}{n:031x}", time, facility, system, operation, keys, amount)


def late_charges(stored_events: int, seed: int = 11) -> Iterator[Event]:
    """A late charge line for each of a series of stored discharges, never the same twice.

    The discharges are those of ``transactions(n)`` cut at ``stored_events`` events (what
    ``bench.correlator_batch.store_traffic`` stores). Each event carries a new charge
    key, listed first, so a query for it finds the transaction only once the event is
    correlated; its visit, account and batch tie it to the stored transaction.
    """
    # Transactions average about 5 events; stay clear of the last, possibly cut, one.
    span = max(1, stored_events // 6)
    step = 2_654_435_761  # prime: k * step mod span visits every index once per cycle
    offset = random.Random(seed).randrange(span)
    t = T0 + 61 * 24 * HOUR  # after the whole history
    for k in itertools.count():
        i = (offset + k * step) % span
        if i % 5 == 0:  # a claim: take the discharge beside it
            i += 1
        keys = {
            "charge": f"C{i}-L{k}",
            "visit": f"V{i}",
            "account": f"A{i}",
            "charge_batch": f"B{i // 40}",
        }
        yield _event(
            f"L{k:031x}", t + k, FACILITIES[i % 3], "PERIOP", "DFT^P03", keys, Decimal("80.00")
        )


def mixed(stored_events: int, new_per_late: int = 5, seed: int = 99) -> Iterator[Event]:
    """New transactions hop by hop, with a late charge for a stored discharge after every
    ``new_per_late`` of their events: about one stored transaction reloaded for each new one.
    """
    fresh = transactions(10**9, seed=seed, prefix="f")
    late = late_charges(stored_events)
    while True:
        yield from itertools.islice(fresh, new_per_late)
        yield next(late)
