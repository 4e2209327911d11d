"""Building events and configs for the correlator tests."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

from stitchboard.config import load_config
from stitchboard.config.model import SlasConfig
from stitchboard.events import Event, event_id

ROOT = Path(__file__).resolve().parent.parent
NS = 1_000_000_000
MINUTE = 60 * NS
HOUR = 60 * MINUTE
DAY = 24 * HOUR


def shipped_config() -> SlasConfig:
    return load_config(ROOT / "slas.yaml")


def at(text: str) -> int:
    """An ISO instant (with offset) as int nanoseconds."""
    return int(dt.datetime.fromisoformat(text).timestamp()) * NS


def ev(
    system: str,
    operation: str,
    time: int,
    *,
    facility: str = "NMC01",
    status: str = "ok",
    amount: str | None = None,
    attributes: dict[str, str] | None = None,
    tag: str = "",
    sent_time: int = 0,
    **keys: str,
) -> Event:
    return Event(
        event_id=event_id(system, operation, time, tag, sorted(keys.items())),
        event_time=time,
        observed_time=time,
        source_kind="span",
        source=system,
        facility=facility,
        system=system,
        operation=operation,
        status=status,
        amount=Decimal(amount) if amount is not None else None,
        keys=keys,
        attributes=attributes or {},
        sent_time=sent_time,
    )


def discharge_chain(t0: int, n: int = 1, batch: str = "B1", late_ack: int = 0) -> list[Event]:
    """A complete discharge_to_revenue transaction for visit V<n>."""
    v, a, m = f"V{n}", f"A{n}", f"M{n}"
    return [
        ev("EHR_ADT", "ADT^A03", t0, msg=m, visit=v, account=a, mrn=f"p{n}"),
        ev("IFENGINE", "ACK^A03", t0 + MINUTE + late_ack, msg=m),
        ev(
            "PERIOP",
            "DFT^P03",
            t0 + 2 * HOUR,
            amount="100.00",
            visit=v,
            account=a,
            charge=f"C{n}a",
            charge_batch=batch,
        ),
        ev(
            "LAB",
            "DFT^P03",
            t0 + 3 * HOUR,
            amount="50.50",
            visit=v,
            account=a,
            charge=f"C{n}b",
            charge_batch=batch,
        ),
        ev("ERP_GL", "gl.journal.post", t0 + 20 * HOUR, charge_batch=batch, journal=f"J{batch}"),
        ev("CODING", "BAR^P05", t0 + 2 * DAY, visit=v, account=a),
        ev("PATACCT", "claim.final_bill", t0 + 4 * DAY, account=a, claim=f"CL{n}"),
    ]
