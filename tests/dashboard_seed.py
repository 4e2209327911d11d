"""Known traffic for the console's tests: five discharge_to_revenue transactions.

T0 is Monday 2026-03-09 09:00 in Chicago (CDT, UTC-5). NOW = T0 + 10 days.

- VISIT0001 NMC01 complete on time: discharge, ack +1 min, charges $100.00 and $50.50,
  journal +20 h, coding +2 d, final bill +4 d; an ADT^A13 cancel (unexpected_step).
- VISIT0002 NMC01 discharge at T0+1 h, ack +1 min, one charge $100.00 at +2 h; nothing
  after: overdue (its journal was due by the end of the next business day).
- VISIT0003 LCH02 at T0+2 h, complete but final bill at +6 d (warn 5 d): late, $150.50.
- VISIT0004 NMC01 at T0+3 h: discharge, ack +5 min (warn 2 min), nothing after: overdue.
- VISIT0005 MSC03 at T0+4 h: complete on time, a charge line reported an error: failed,
  $75.00.
"""

from __future__ import annotations

from stitchboard.events import Event
from tests.correlator_helpers import DAY, HOUR, MINUTE, at, ev

T0 = at("2026-03-09T09:00:00-05:00")
NOW = T0 + 10 * DAY


def chain(
    t0: int,
    n: int,
    facility: str,
    *,
    bill_after: int | None = 4 * DAY,
    ack_after: int = MINUTE,
    charges: tuple[str, ...] = ("100.00", "50.50"),
    journal: bool = True,
    coding: bool = True,
    charge_status: str = "ok",
) -> list[Event]:
    visit, account, msg, batch = f"VISIT000{n}", f"ACCT000{n}", f"MSG000{n}", f"BATCH000{n}"
    f = facility
    events = [
        ev("EHR_ADT", "ADT^A03", t0, facility=f, msg=msg, visit=visit, account=account),
        ev("IFENGINE", "ACK^A03", t0 + ack_after, facility=f, msg=msg),
    ]
    for i, amount in enumerate(charges):
        events.append(
            ev(
                "PERIOP" if i == 0 else "LAB",
                "DFT^P03",
                t0 + (2 + i) * HOUR,
                facility=f,
                amount=amount,
                status=charge_status if i == 0 else "ok",
                visit=visit,
                account=account,
                charge=f"CHG000{n}{i}",
                charge_batch=batch,
            )
        )
    if journal:
        events.append(
            ev(
                "ERP_GL",
                "gl.journal.post",
                t0 + 20 * HOUR,
                facility=f,
                charge_batch=batch,
                journal=f"JRNL000{n}",
            )
        )
    if coding:
        events.append(
            ev("CODING", "BAR^P05", t0 + 2 * DAY, facility=f, visit=visit, account=account)
        )
    if bill_after is not None:
        events.append(
            ev(
                "PATACCT",
                "claim.final_bill",
                t0 + bill_after,
                facility=f,
                account=account,
                claim=f"CLAIM000{n}",
            )
        )
    return events


def seed_events() -> list[Event]:
    cancel = ev(
        "EHR_ADT",
        "ADT^A13",
        T0 + 30 * MINUTE,
        msg="MSG0001X",
        visit="VISIT0001",
        account="ACCT0001",
    )
    return [
        *chain(T0, 1, "NMC01"),
        cancel,
        *chain(
            T0 + HOUR, 2, "NMC01", bill_after=None, charges=("100.00",), journal=False, coding=False
        ),
        *chain(T0 + 2 * HOUR, 3, "LCH02", bill_after=6 * DAY),
        *chain(
            T0 + 3 * HOUR,
            4,
            "NMC01",
            bill_after=None,
            ack_after=5 * MINUTE,
            charges=(),
            journal=False,
            coding=False,
        ),
        *chain(T0 + 4 * HOUR, 5, "MSC03", charges=("75.00",), charge_status="error"),
    ]


# slas.yaml `keys:` → the OpenTelemetry attribute a sender puts them in.
_KEY_ATTRIBUTES = {
    "msg": "messaging.message.id",
    "visit": "visit.id",
    "account": "account.id",
    "charge": "charge.id",
    "charge_batch": "charge.batch_id",
    "journal": "gl.journal_id",
    "claim": "claim.id",
}


def otlp_json(events: list[Event], shift: int = 0) -> dict:
    """The events as one OTLP/JSON trace export (one span per hop), ``shift`` ns later."""

    def attr(key: str, value: str) -> dict:
        return {"key": key, "value": {"stringValue": value}}

    resources = []
    for n, e in enumerate(events):
        start = e.event_time + shift
        attributes = [attr("stitchboard.operation", e.operation)]
        attributes += [attr(_KEY_ATTRIBUTES[k], v) for k, v in e.keys.items()]
        if e.amount is not None:
            attributes.append(attr("stitchboard.amount", str(e.amount)))
        span = {
            "traceId": f"{n + 1:032x}",
            "spanId": f"{n + 1:016x}",
            "name": e.operation,
            "kind": 1,
            "startTimeUnixNano": str(start),
            "endTimeUnixNano": str(start + 1_000_000),
            "attributes": attributes,
            "status": {"code": 2, "message": "charge rejected"} if e.status == "error" else {},
        }
        resource = [attr("service.name", e.system), attr("facility.id", e.facility)]
        resources.append({"resource": {"attributes": resource}, "scopeSpans": [{"spans": [span]}]})
    return {"resourceSpans": resources}
