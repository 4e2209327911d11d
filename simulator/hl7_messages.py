"""HL7 v2.5.1 messages as the estate's systems send them (pure text building, no I/O).

Segments are joined by carriage returns. Times are the facility's local time, as
interface engines send them; identifiers follow ../shared/hl7 samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from simulator.estate import Site, hl7_time


@dataclass(frozen=True, slots=True)
class Patient:
    mrn: str
    last: str
    first: str
    birth_date: str  # YYYYMMDD
    sex: str
    account: str


@dataclass(frozen=True, slots=True)
class ChargeLine:
    charge_id: str
    batch_id: str
    service_ns: int
    posted_ns: int
    kind: str  # CG charge, CD credit (reversal)
    cdm: str
    description: str
    quantity: int
    amount: Decimal  # extended amount (FT1-11)
    unit_price: Decimal  # FT1-12
    cost_center: str
    cost_center_name: str
    cpt: str
    order: str = ""


def _msh(site: Site, system: str, receiver: str, ns: int, kind: str, control_id: str) -> str:
    return (
        f"MSH|^~\\&|{system}|{site.id}|{receiver}|{site.id}|{hl7_time(site, ns)}||{kind}"
        f"|{control_id}|P|2.5.1|||AL|NE"
    )


def _pid(site: Site, p: Patient, full: bool = True) -> str:
    name = f"{p.last}^{p.first}"
    born = p.birth_date if full else ""
    sex = p.sex if full else ""
    return (
        f"PID|1||{p.mrn}^^^{site.code}^MR||{name}||{born}|{sex}||||||||||"
        f"{p.account}^^^{site.code}^AN"
    )


def adt(
    site: Site,
    *,
    trigger: str,  # A03 discharge, A13 cancel discharge
    control_id: str,
    sent_ns: int,
    event_ns: int,
    patient: Patient,
    visit: str,
    patient_class: str,
    unit: str,
    attending: str,
    admit_ns: int,
    discharge_ns: int | None,
    operator: str,
    diagnosis: str,
) -> str:
    discharged = hl7_time(site, discharge_ns) if discharge_ns is not None else ""
    structure = "ADT_A03" if trigger == "A03" else "ADT_A01"  # A13 reuses the A01 structure
    pv1 = (
        f"PV1|1|{patient_class}|{unit}^{site.id}||||{attending}|||MED||||7||||{patient_class}"
        f"|{visit}^^^{site.code}^VN|MCR||||||||||||||||01|||{site.id}|||||"
        f"{hl7_time(site, admit_ns)}|{discharged}"
    )
    return "\r".join(
        (
            _msh(site, "EHR_ADT", "IFENGINE", sent_ns, f"ADT^{trigger}^{structure}", control_id),
            f"EVN|{trigger}|{hl7_time(site, sent_ns)}|||{operator}|{hl7_time(site, event_ns)}",
            _pid(site, patient),
            pv1,
            f"DG1|1||{diagnosis}|||A",
        )
    )


def dft(
    site: Site,
    *,
    system: str,
    control_id: str,
    sent_ns: int,
    patient: Patient,
    visit: str,
    patient_class: str,
    lines: Sequence[ChargeLine],
) -> str:
    segments = [
        _msh(site, system, "PATACCT", sent_ns, "DFT^P03^DFT_P03", control_id),
        f"EVN|P03|{hl7_time(site, sent_ns)}",
        _pid(site, patient),
        f"PV1|1|{patient_class}|||||||||||||||||{visit}^^^{site.code}^VN",
    ]
    for n, line in enumerate(lines, start=1):
        segments.append(
            f"FT1|{n}|{line.charge_id}|{line.batch_id}|{hl7_time(site, line.service_ns)}"
            f"|{hl7_time(site, line.posted_ns)}|{line.kind}"
            f"|{line.cdm}^{line.description}^CDM|||{line.quantity}|{line.amount:.2f}"
            f"|{line.unit_price:.2f}|{line.cost_center}^{line.cost_center_name}^L"
            f"||||{patient_class}||||||{line.order}||{line.cpt}^^C4"
        )
    return "\r".join(segments)


def bar(
    site: Site,
    *,
    control_id: str,
    sent_ns: int,
    event_ns: int,
    patient: Patient,
    visit: str,
    patient_class: str,
    diagnosis: str,
    procedure: str,
) -> str:
    """BAR^P05: coding complete, diagnoses and procedures on the account."""
    segments = [
        _msh(site, "HIM_CODING", "PATACCT", sent_ns, "BAR^P05^BAR_P05", control_id),
        f"EVN|P05|{hl7_time(site, sent_ns)}||||{hl7_time(site, event_ns)}",
        _pid(site, patient),
        f"PV1|1|{patient_class}|||||||||||||||||{visit}^^^{site.code}^VN",
        f"DG1|1||{diagnosis}|||F",
    ]
    if procedure:
        segments.append(f"PR1|1||{procedure}^^C4||{hl7_time(site, event_ns)}")
    return "\r".join(segments)


def ack(
    site: Site,
    *,
    system: str,
    receiver: str,
    control_id: str,
    sent_ns: int,
    acked_id: str,
    trigger: str,
    code: str = "AA",
    text: str = "",
) -> str:
    """The ACK a receiver returns (MSA-2 names the acknowledged MSH-10)."""
    msa = f"MSA|{code}|{acked_id}" + (f"|{text}" if text else "")
    return "\r".join(
        (
            _msh(site, system, receiver, sent_ns, f"ACK^{trigger}^ACK", control_id),
            msa,
        )
    )
