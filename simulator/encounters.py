"""A patient visit and what follows it: discharge → revenue, claim → cash, implant → replenishment.

One visit can open three transactions: its discharge_to_revenue, the claim_to_cash
of its final bill, and an implant_use_to_replenishment per surgical case with
implants. Shared hops (the final bill, the PERIOP charges) list every transaction
they belong to. Step, system and operation names follow slas.yaml ``workflows``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal

from simulator import catalog, hl7_messages
from simulator.estate import Site, business_hours, lognormal_ns, next_business_day, skewed
from simulator.hl7_messages import ChargeLine, Patient
from simulator.hops import Emitter
from simulator.records import DAY, HOUR, MINUTE, NS
from simulator.revenue_cycle import claim_to_cash, gl_journal

D2R = "discharge_to_revenue"
IMPLANT = "implant_use_to_replenishment"

LATE_CHARGE_RATE = 0.02  # DOMAIN: 1-3% of charges post after the final bill
A13_RATE = 0.02
REVERSAL_RATE = 0.03
MISSING_ADT_RATE = 0.003
STUCK_DNFB_RATE = 0.01  # never final-billed in time: overdue
RECODE_RATE = 0.005  # a second BAR^P05 with a new control id: duplicate_step
ACK_ERROR_RATE = 0.004
IMPLANT_CHARGE_MISSING_RATE = 0.02


@dataclass(frozen=True, slots=True)
class Opened:
    """A transaction the generator opened: its id, workflow, facility and start."""

    workflow: str
    txn: str
    facility: str
    start: int


def encounter(seed: str, site: Site, serial: str, discharge: int) -> tuple[Emitter, list[Opened]]:
    rng = random.Random(f"{seed}|enc|{site.id}|{serial}")
    em = Emitter(seed, site, rng)
    opened: list[Opened] = []
    txn = f"{D2R}:{site.id}:{serial}"
    d2r = (D2R, txn)

    surgical = not site.inpatient or rng.random() < 0.25
    inpatient = site.inpatient and (rng.random() < 0.65 and not (surgical and rng.random() < 0.5))
    pclass = "I" if inpatient else "O"
    los = lognormal_ns(rng, 2.5 * DAY, 0.5) if inpatient else int(rng.uniform(2, 9) * HOUR)
    admit = discharge - los
    patient = Patient(
        mrn=f"MRN{serial[-8:]}",
        last=rng.choice(catalog.LAST_NAMES),
        first=rng.choice(catalog.FIRST_NAMES),
        birth_date=(
            f"{rng.randrange(1940, 2010)}{rng.randrange(1, 13):02d}{rng.randrange(1, 29):02d}"
        ),
        sex=rng.choice("MF"),
        account=f"ACCT{serial}",
    )
    visit = f"VN{serial}"
    unit = rng.choice(("4W^412^B", "3E^318^A", "5N^520^A", "SDS^07^A"))
    attending = rng.choice(catalog.PHYSICIANS)
    diagnosis = rng.choice(catalog.DIAGNOSES)
    keys = {"visit": visit, "account": patient.account, "mrn": patient.mrn}

    # --- discharge (and, now and then, an erroneous discharge cancelled by A13) ---
    start = discharge
    if rng.random() < MISSING_ADT_RATE:
        em.scenario.add("missing_discharge")
    else:
        if rng.random() < A13_RATE:
            wrong = discharge - int(rng.uniform(3, 8) * HOUR)
            start = wrong
            em.scenario.add("a13_cancel")
            _discharge(
                em,
                d2r,
                site,
                "wrong",
                wrong,
                patient,
                visit,
                pclass,
                unit,
                attending,
                admit,
                diagnosis,
                keys,
            )
            cancel = wrong + int(rng.uniform(0.5, 2.5) * HOUR)
            em.emit(
                members=((D2R, txn, "!unexpected"),),
                channel="hl7",
                system="EHR_ADT",
                operation="ADT^A13",
                at=cancel,
                keys=keys,
                tag=("a13", serial),
                body=lambda t, h: hl7_messages.adt(
                    site,
                    trigger="A13",
                    control_id=em.control_id("ADT", h, t),
                    sent_ns=t,
                    event_ns=t,
                    patient=patient,
                    visit=visit,
                    patient_class=pclass,
                    unit=unit,
                    attending=attending,
                    admit_ns=admit,
                    discharge_ns=None,
                    operator=rng.choice(catalog.STAFF),
                    diagnosis=diagnosis,
                ),
            )
        _discharge(
            em,
            d2r,
            site,
            "final",
            discharge,
            patient,
            visit,
            pclass,
            unit,
            attending,
            admit,
            diagnosis,
            keys,
        )
    opened.append(Opened(D2R, txn, site.id, start))

    # --- charges: posted at and after discharge, long-tailed lag ---
    lines = _charge_lines(rng, site, serial, admit, discharge, inpatient, surgical)
    implants: list[catalog.Implant] = []
    case = ""
    if surgical and rng.random() < (0.45 if not site.inpatient else 0.3):
        implants = rng.sample(catalog.IMPLANTS, rng.randrange(1, 3))
        case = f"CASE{serial}"
    drops = _post(rng, site, serial, lines, implants, discharge)
    periop_missing = bool(implants) and rng.random() < IMPLANT_CHARGE_MISSING_RATE
    implant_txn = f"{IMPLANT}:{site.id}:{serial}"
    last_on_time = discharge
    periop_hops = []
    for n, (system, posted, drop) in enumerate(drops):
        if system == "PERIOP" and periop_missing:
            continue
        members = [(D2R, txn, "charge")]
        if system == "PERIOP" and implants:
            members.append((IMPLANT, implant_txn, "implant_charge"))
        late = posted > discharge + 5 * DAY
        if late:
            em.scenario.add("late_charge")
        else:
            last_on_time = max(last_on_time, posted)
        hop = em.emit(
            members=tuple(members),
            channel="hl7",
            system=system,
            operation="DFT^P03",
            at=posted,
            keys={**keys, "charge": drop[0].charge_id, "charge_batch": drop[0].batch_id},
            tag=("dft", serial, n),
            amount=sum((c.amount for c in drop), Decimal(0)),
            lines=tuple(
                {
                    "charge": c.charge_id,
                    "charge_batch": c.batch_id,
                    "amount": f"{c.amount:.2f}",
                    "charge.type": c.kind,  # FT1-6: CG charge, CD credit (reversal)
                }
                for c in drop
            ),
            body=lambda t, h: hl7_messages.dft(
                site,
                system=system,  # noqa: B023 - emit calls body at once, inside this iteration
                control_id=em.control_id("DFT", h, t),
                sent_ns=t,
                patient=patient,
                visit=visit,
                patient_class=pclass,
                lines=drop,  # noqa: B023
            ),
        )
        if system == "PERIOP":
            periop_hops.append(hop)
        for batch in sorted({c.batch_id for c in drop}):
            gl_journal(seed, site, batch, posted, em)

    # --- coding complete ---
    # Coders work business days and wait for the charge hold: about two days.
    coded = business_hours(site, discharge + lognormal_ns(rng, 26 * HOUR, 0.3), rng)
    _coding(em, d2r, site, serial, "first", coded, patient, visit, pclass, diagnosis, keys)
    if rng.random() < RECODE_RATE:
        em.scenario.add("recoded")
        _coding(
            em,
            d2r,
            site,
            serial,
            "again",
            coded + int(rng.uniform(2, 30) * HOUR),
            patient,
            visit,
            pclass,
            diagnosis,
            keys,
        )

    # --- final bill, then the claim ---
    if rng.random() < STUCK_DNFB_RATE:
        em.scenario.add("stuck_unbilled")
    else:
        billed = max(
            coded + lognormal_ns(rng, 5 * HOUR, 0.6), last_on_time + HOUR, discharge + 3 * DAY
        )  # the usual three-day bill hold
        claim = f"CLM{serial}"
        total = sum((c.amount for _, _, d in drops for c in d), Decimal(0))
        payer = rng.choices(catalog.PAYERS, weights=(35, 15, 20, 15, 10, 5))[0]
        c2c_txn = f"claim_to_cash:{site.id}:{serial}"
        members = [(D2R, txn, "final_bill"), ("claim_to_cash", c2c_txn, "final_bill")]
        em.emit(
            members=tuple(members),
            channel="span",
            system="PATACCT",
            operation="claim.final_bill",
            at=billed,
            keys={"account": patient.account, "claim": claim},
            tag=("bill", serial),
            amount=total,
            attributes={"payer.id": payer[0]},
        )
        opened.append(Opened("claim_to_cash", c2c_txn, site.id, billed))
        claim_to_cash(em, site, c2c_txn, claim, patient.account, payer[0], billed, total)

    if implants:
        opened.append(Opened(IMPLANT, implant_txn, site.id, 0))
        charged = min((h.time for h in periop_hops), default=discharge)
        scan = _implant_case(
            em,
            site,
            serial,
            implant_txn,
            case,
            visit,
            implants,
            admit,
            discharge,
            inpatient,
            charged,
        )
        opened[-1] = Opened(IMPLANT, implant_txn, site.id, scan)
        if periop_missing:
            em.scenario.add("implant_charge_missing")
    return em, opened


def _discharge(
    em, d2r, site, which, at, patient, visit, pclass, unit, attending, admit, diagnosis, keys
) -> None:
    rng = em.rng
    # The discharge is documented (EVN-6) minutes to hours before the ADT is sent
    # (MSH-7): a nurse charts it, the clerk completes it later (DOMAIN "When clocks start").
    sent = at + min(lognormal_ns(rng, 12 * MINUTE, 0.9), 6 * HOUR)
    control = em.control_id("ADT", em.ident("adt", visit, which), sent)
    em.emit(
        members=((*d2r, "discharge"),),
        channel="hl7",
        system="EHR_ADT",
        operation="ADT^A03",
        at=sent,
        time=at,
        keys={**keys, "msg": control},
        tag=("adt", visit, which),
        latency=int(rng.uniform(0.05, 1.5) * NS),
        body=lambda t, h: hl7_messages.adt(
            site,
            trigger="A03",
            control_id=control,
            sent_ns=skewed("EHR_ADT", sent),  # MSH-7 by the EHR's clock, like EVN-6
            event_ns=t,
            patient=patient,
            visit=visit,
            patient_class=pclass,
            unit=unit,
            attending=attending,
            admit_ns=admit,
            discharge_ns=at,
            operator=rng.choice(catalog.STAFF),
            diagnosis=diagnosis,
        ),
    )
    # The interface engine delivers the A03 to patient accounting and logs its ACK.
    if rng.random() < 0.012:
        lag = int(rng.uniform(3, 40) * MINUTE)  # engine queue backed up
        em.scenario.add("slow_engine")
    else:
        lag = lognormal_ns(rng, 4 * NS, 1.0)
    acked = sent + lag
    code, text = "AA", ""
    if rng.random() < ACK_ERROR_RATE:
        code, text = "AE", "Account not found in PATACCT"
    em.emit(
        members=((*d2r, "engine_ack"),),
        channel="hl7",
        system="IFENGINE",
        operation="ACK^A03",
        at=acked,
        keys={"msg": control},
        tag=("ack", visit, which),
        status="ok" if code == "AA" else "error",
        status_message=text,
        body=lambda t, h: hl7_messages.ack(
            site,
            system="IFENGINE",
            receiver="EHR_ADT",
            control_id=em.control_id("ACK", h, t),
            sent_ns=t,
            acked_id=control,
            trigger="A03",
            code=code,
            text=text,
        ),
    )


def _coding(em, d2r, site, serial, which, at, patient, visit, pclass, diagnosis, keys) -> None:
    rng = em.rng
    procedure = rng.choice(("99223", "99238", "47562", "29881", ""))
    em.emit(
        members=((*d2r, "coding_complete"),),
        channel="hl7",
        system="HIM_CODING",
        operation="BAR^P05",
        at=at + int(rng.uniform(1, 20) * NS),
        time=at,
        keys=keys,
        tag=("bar", serial, which),
        body=lambda t, h: hl7_messages.bar(
            site,
            control_id=em.control_id("BAR", h, t),
            sent_ns=t,
            event_ns=t,
            patient=patient,
            visit=visit,
            patient_class=pclass,
            diagnosis=diagnosis,
            procedure=procedure,
        ),
    )


def _charge_lines(rng, site, serial, admit, discharge, inpatient, surgical):
    """(department, item, service time) for the visit: tests, imaging, drugs, room, OR."""
    by_dept: dict[str, list[catalog.ChargeItem]] = {}
    for item in catalog.CHARGES:
        by_dept.setdefault(item.department, []).append(item)
    picks: list[tuple[catalog.ChargeItem, int, int]] = []

    def during() -> int:
        return admit + int(rng.random() * (discharge - admit))

    for _ in range(rng.randrange(1, 6)):
        picks.append((rng.choice(by_dept["LAB"]), during(), 1))
    for _ in range(rng.randrange(0, 3)):
        picks.append((rng.choice(by_dept["RAD"]), during(), 1))
    for _ in range(rng.randrange(1, 5)):
        picks.append((rng.choice(by_dept["PHA"]), during(), rng.randrange(1, 4)))
    if inpatient:
        room = by_dept["NUR"][0]
        picks.append((room, admit, max(1, (discharge - admit) // DAY)))
    if surgical:
        dept = rng.choice(("OR02", "OR07")) if site.inpatient else "OR02"
        for item in rng.sample(
            by_dept[dept] if dept == "OR07" else by_dept["OR02"], k=min(2, len(by_dept[dept]))
        ):
            picks.append((item, during(), 1))
    return picks


def _post(rng, site, serial, picks, implants, discharge):
    """Group charges into DFT messages: one per department drop, posted after discharge."""
    from simulator.estate import local

    drops: dict[tuple[str, int], list[ChargeLine]] = {}
    entries = list(picks)
    for implant in implants:
        entries.append((implant, None, 1))
    for n, (item, service, qty) in enumerate(entries, start=1):
        if isinstance(item, catalog.Implant):
            dept = catalog.DEPARTMENTS["OR07" if item.cpt.startswith("3") else "OR02"]
            cdm, desc, cpt, price = item.cdm, item.description, item.cpt, item.price
            service = discharge - int(rng.uniform(2, 6) * HOUR)
            lag = lognormal_ns(rng, 1.5 * HOUR, 0.7)
        else:
            dept = catalog.DEPARTMENTS[item.department]
            cdm, desc, cpt, price = item.cdm, item.description, item.cpt, item.price
            lag = lognormal_ns(rng, 3 * HOUR, 1.0)
        if rng.random() < LATE_CHARGE_RATE:
            lag = int(rng.uniform(6, 12) * DAY)  # found on audit after the final bill
        # Drops group by department and the hour they post.
        posted = discharge + lag
        slot = posted - posted % HOUR
        day = local(site, slot).strftime("%Y%m%d")
        amount = price * qty
        line = ChargeLine(
            charge_id=f"CHG-{serial}{n:02d}",
            batch_id=f"B{day}-{site.code}-{dept.code}",
            service_ns=service,
            posted_ns=posted,
            kind="CG",
            cdm=cdm,
            description=desc,
            quantity=qty,
            amount=amount,
            unit_price=price,
            cost_center=dept.cost_center,
            cost_center_name=dept.cost_center_name,
            cpt=cpt,
            order=f"ORD-{serial}{n:02d}^{dept.system}",
        )
        drops.setdefault((dept.system, slot), []).append(line)
        if rng.random() < REVERSAL_RATE and not isinstance(item, catalog.Implant):
            # A credit that does not carry the original charge id (DOMAIN: pair them
            # on account + code + service date + amount).
            rev = posted + int(rng.uniform(0.5, 4) * DAY)
            rslot = rev - rev % HOUR
            rday = local(site, rslot).strftime("%Y%m%d")
            credit = ChargeLine(
                charge_id=f"CHG-{serial}{n:02d}-R1",
                batch_id=f"B{rday}-{site.code}-{dept.code}",
                service_ns=service,
                posted_ns=rev,
                kind="CD",
                cdm=cdm,
                description=desc,
                quantity=-qty,
                amount=-amount,
                unit_price=price,
                cost_center=dept.cost_center,
                cost_center_name=dept.cost_center_name,
                cpt=cpt,
            )
            drops.setdefault((dept.system, rslot), []).append(credit)
    out = []
    for (system, _slot), group in sorted(drops.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        posted = max(c.posted_ns for c in group)
        out.append((system, posted, tuple(group)))
    return out


def _implant_case(
    em, site, serial, txn, case, visit, implants, admit, discharge, inpatient, charged
):
    rng = em.rng
    if inpatient:
        surgery = discharge - int(rng.uniform(4, 20) * HOUR)
    else:
        surgery = admit + int(rng.uniform(0.5, 1.5) * HOUR)
    surgery = max(surgery, admit + 30 * MINUTE)
    first_scan = surgery
    for n, implant in enumerate(implants):
        scan = surgery + n * int(rng.uniform(5, 25) * MINUTE)
        lot = f"L{rng.randrange(10**6):06d}"
        serial_no = f"SN{serial}{n}"
        item_keys = {"item": implant.item, "lot": lot, "serial": serial_no}
        em.emit(
            members=((IMPLANT, txn, "usage_scan"),),
            channel="span",
            system="PERIOP",
            operation="implant.usage.scan",
            at=scan,
            keys={"case": case, "visit": visit, **item_keys},
            tag=("scan", serial, n),
            attributes={"item.description": implant.description, "vendor.id": implant.vendor},
        )
        if rng.random() < 0.01:
            issue = scan + int(rng.uniform(1.5, 4) * HOUR)  # ERP interface backlog
            em.scenario.add("slow_inventory_issue")
        else:
            issue = scan + lognormal_ns(rng, 4 * MINUTE, 0.7)
        em.emit(
            members=((IMPLANT, txn, "inventory_issue"),),
            channel="span",
            system="ERP_INV",
            operation="inventory.issue",
            at=issue,
            keys={"case": case, **item_keys},
            tag=("issue", serial, n),
            amount=implant.cost,
        )
    # Bill-only PO for consigned implants: raised on a business day after the case.
    if rng.random() < 0.03:
        po_at = next_business_day(site, first_scan, rng.randrange(2, 5), 10)
        em.scenario.add("late_bill_only_po")
    else:
        # Materials management raises it once the case is closed and charged.
        po_at = max(first_scan, charged) + lognormal_ns(rng, 3 * HOUR, 0.6)
    po = f"PO-B{site.code}{serial}"
    cost = sum((i.cost for i in implants), Decimal(0))
    attrs = {"po.type": "bill_only", "vendor.id": implants[0].vendor}
    em.emit(
        members=((IMPLANT, txn, "bill_only_po"),),
        channel="span",
        system="ERP_PO",
        operation="x12.850.send",
        at=po_at,
        keys={"po": po, "case": case},
        tag=("bpo", serial),
        amount=cost,
        attributes=attrs,
    )
    acked = po_at + lognormal_ns(rng, 3 * HOUR, 1.0)
    em.emit(
        members=((IMPLANT, txn, "po_ack"),),
        channel="log",
        system="ERP_PO",
        operation="x12.855.receive",
        at=acked,
        keys={"po": po},
        tag=("bpoack", serial),
        attributes=attrs,
    )
    invoice = f"INV-{implants[0].vendor[2:]}-{serial}"
    matched = po_at + lognormal_ns(rng, 1.5 * DAY, 0.6)
    if rng.random() < 0.15:
        em.scenario.add("match_exception")
        em.emit(
            members=((IMPLANT, txn, "invoice_matched"),),
            channel="span",
            system="ERP_AP",
            operation="ap.invoice.match",
            at=matched,
            keys={"invoice": invoice, "po": po},
            tag=("bmatch", serial, 0),
            status="error",
            status_message="match exception: price variance over tolerance",
            amount=cost,
            attributes=attrs,
        )
        matched += int(rng.uniform(1, 6) * DAY)
    em.emit(
        members=((IMPLANT, txn, "invoice_matched"),),
        channel="span",
        system="ERP_AP",
        operation="ap.invoice.match",
        at=matched,
        keys={"invoice": invoice, "po": po},
        tag=("bmatch", serial, 1),
        amount=cost,
        attributes=attrs,
    )
    return first_scan
