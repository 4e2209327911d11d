"""Supply chain and payroll: requisition → payment, and a facility's pay period → labor GL."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

from simulator import catalog
from simulator.estate import Site, local, lognormal_ns, next_business_day, to_ns
from simulator.hops import Emitter
from simulator.records import DAY, HOUR, MINUTE, NS

R2P = "requisition_to_payment"
T2L = "timecard_to_labor_gl"
MATCH_EXCEPTION_RATE = 0.15  # DOMAIN: 10-20% of invoices fail the 3-way match first


def requisition(seed: str, site: Site, serial: str, approved: int) -> Emitter:
    rng = random.Random(f"{seed}|req|{site.id}|{serial}")
    em = Emitter(seed, site, rng)
    txn = f"{R2P}:{site.id}:{serial}"
    req = f"REQ{serial}"
    po = f"PO-{site.code}{serial}"
    supply = rng.choice(catalog.SUPPLIES)
    qty = rng.randrange(2, 40)
    amount = supply.unit_cost * qty
    std = {"po.type": "standard", "vendor.id": supply.vendor}

    def step(name, system, operation, at, tag, keys, channel="span", **kw):
        em.emit(
            members=((R2P, txn, name),),
            channel=channel,
            system=system,
            operation=operation,
            at=at,
            keys=keys,
            tag=(tag, serial),
            **kw,
        )

    step(
        "requisition_approved",
        "ERP_PO",
        "requisition.approve",
        approved,
        "req",
        {"requisition": req},
        amount=amount,
        attributes={"item.description": supply.description},
    )
    sent = approved + lognormal_ns(rng, 3 * HOUR, 1.0)
    step(
        "po_sent",
        "ERP_PO",
        "x12.850.send",
        sent,
        "850",
        {"requisition": req, "po": po},
        channel="log",
        amount=amount,
        attributes=std,
    )
    step(
        "po_ack",
        "ERP_PO",
        "x12.855.receive",
        sent + lognormal_ns(rng, 4 * HOUR, 1.0),
        "855",
        {"po": po},
        channel="log",
        attributes=std,
    )
    received = sent + lognormal_ns(rng, 4 * DAY, 0.5)
    if rng.random() < 0.7:
        step(
            "asn",
            "ERP_PO",
            "x12.856.receive",
            received - int(rng.uniform(6, 30) * HOUR),
            "856",
            {"po": po},
            channel="log",
            attributes=std,
        )
    step(
        "goods_receipt",
        "ERP_INV",
        "receipt.post",
        received,
        "gr",
        {"receipt": f"GR-{serial}-1", "po": po},
        attributes=std,
    )
    if rng.random() < 0.1:  # back-ordered remainder arrives later
        em.scenario.add("partial_receipt")
        step(
            "goods_receipt",
            "ERP_INV",
            "receipt.post",
            received + int(rng.uniform(2, 6) * DAY),
            "gr2",
            {"receipt": f"GR-{serial}-2", "po": po},
            attributes=std,
        )
    # Vendors invoice at shipment: mostly after the receipt, sometimes before it.
    if rng.random() < 0.08:
        invoiced = received - int(rng.uniform(0.2, 1.5) * DAY)
        em.scenario.add("invoice_before_receipt")
    else:
        invoiced = received + int(rng.uniform(0.1, 3) * DAY)
    invoice = f"INV-{supply.vendor[2:]}-{serial}"
    step(
        "invoice_received",
        "ERP_AP",
        "x12.810.receive",
        invoiced,
        "810",
        {"invoice": invoice, "po": po},
        channel="log",
        amount=amount,
        attributes=std,
    )
    matched = max(invoiced, received) + lognormal_ns(rng, 4 * HOUR, 1.0)
    if rng.random() < MATCH_EXCEPTION_RATE:
        em.scenario.add("match_exception")
        step(
            "three_way_match",
            "ERP_AP",
            "ap.invoice.match",
            matched,
            "match0",
            {"invoice": invoice},
            status="error",
            status_message=rng.choice(
                (
                    "quantity received below invoiced quantity",
                    "unit price variance over 2% tolerance",
                )
            ),
            attributes=std,
        )
        matched += int(rng.uniform(1, 5) * DAY)
    step(
        "three_way_match",
        "ERP_AP",
        "ap.invoice.match",
        matched,
        "match1",
        {"invoice": invoice},
        attributes=std,
    )
    # Net-30 terms, paid in the weekly Thursday payment run.
    due = matched + int(rng.uniform(18, 28) * DAY)
    run = _weekday_on_or_after(site, due, 3)
    step(
        "payment",
        "ERP_AP",
        "ap.payment.issue",
        run + int(rng.uniform(0, 2) * HOUR),
        "pay",
        {"invoice": invoice, "payment": f"PAY-{site.code}-{local(site, run):%Y%m%d}"},
        amount=amount,
        attributes=std,
    )
    return em


def _weekday_on_or_after(site: Site, ns: int, weekday: int) -> int:
    day = local(site, ns).date()
    while day.weekday() != weekday or not site.calendar.is_business_day(day):
        day += dt.timedelta(days=1)
    return to_ns(dt.datetime.combine(day, dt.time(14), tzinfo=site.zone))


# Biweekly pay periods end on a Saturday; this one anchors the count.
PERIOD_ANCHOR = dt.date(2026, 1, 3)


def period_ends(site: Site, since: int, until: int) -> list[tuple[str, int]]:
    """(pay period id, close instant) of periods that close in [since, until)."""
    first = local(site, since).date() - dt.timedelta(days=14)
    n = (first - PERIOD_ANCHOR).days // 14
    out: list[tuple[str, int]] = []
    while True:
        end = PERIOD_ANCHOR + dt.timedelta(days=14 * n)
        close = to_ns(
            dt.datetime.combine(end + dt.timedelta(days=1), dt.time(0, 5), tzinfo=site.zone)
        )
        if close >= until:
            return out
        if close >= since:
            number = (end - dt.date(end.year, 1, 1)).days // 14 + 1
            out.append((f"{site.id}-{end.year}-PP{number:02d}", close))
        n += 1


def history_with_a_pay_period_close(backfill_ns: int, now_ns: int) -> int:
    """At least ``backfill_ns``, and long enough to hold the latest pay-period close (plus a
    day for every time zone): a short demo history then has a payroll transaction too."""
    today = dt.datetime.fromtimestamp(now_ns / NS, dt.UTC).date()
    since_anchor = (today - (PERIOD_ANCHOR + dt.timedelta(days=1))).days % 14
    needed = (since_anchor + 2) * DAY
    return max(backfill_ns, needed)


def pay_period(seed: str, site: Site, period: str, closed: int) -> Emitter:
    rng = random.Random(f"{seed}|pay|{period}")
    em = Emitter(seed, site, rng)
    txn = f"{T2L}:{site.id}:{period}"

    def step(name, system, operation, at, tag, keys, **kw):
        em.emit(
            members=((T2L, txn, name),),
            channel="span",
            system=system,
            operation=operation,
            at=at,
            keys=keys,
            tag=(tag, period),
            **kw,
        )

    step("period_closed", "WFM", "payperiod.close", closed, "close", {"pay_period": period})
    departments = max(3, int(12 * site.size))
    late_dept = rng.randrange(departments) if rng.random() < 0.15 else -1
    for d in range(departments):
        if d == late_dept:
            when = next_business_day(site, closed, 2, 10)  # a manager on leave: breach
            em.scenario.add("late_timecards")
        else:
            when = next_business_day(site, closed, 1, 8) + int(rng.uniform(0, 6) * HOUR)
        em.emit(
            members=((T2L, txn, "timecard_approved"),),
            channel="log",
            system="WFM",
            operation="timecard.approve",
            at=when,
            keys={"timecard": f"TC-{period}-D{d:02d}", "pay_period": period},
            tag=("tc", period, d),
            attributes={"department.id": f"D{d:02d}"},
        )
    run = f"PR-{period}"
    approved = closed + lognormal_ns(rng, 3 * DAY, 0.12)
    payroll_total = Decimal(int(850_000 * site.size * rng.uniform(0.95, 1.05)))
    step(
        "payroll_approved",
        "PAYROLL",
        "payroll.approve",
        approved,
        "approve",
        {"payroll_run": run, "pay_period": period},
        amount=payroll_total,
    )
    paid = next_business_day(site, approved, rng.choice((1, 1, 1, 2)), 9)
    if rng.random() < 0.05:
        step(
            "payroll_paid",
            "PAYROLL",
            "payroll.pay",
            paid - 30 * MINUTE,
            "pay-fail",
            {"payroll_run": run},
            status="error",
            status_message="ACH file rejected by bank: batch header hash mismatch",
        )
    step(
        "payroll_paid",
        "PAYROLL",
        "payroll.pay",
        paid,
        "pay",
        {"payroll_run": run},
        amount=payroll_total,
    )
    step(
        "labor_journal",
        "ERP_GL",
        "gl.labor.post",
        next_business_day(site, paid, 1, 7),
        "jl",
        {"journal": f"JL-{period}", "payroll_run": run},
        amount=payroll_total,
    )
    return em
