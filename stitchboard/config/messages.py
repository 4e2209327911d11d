"""slas.yaml ``messages:`` — how HL7 v2 messages and JSON/CSV log rows become events.

Field paths are written as HL7 people say them: ``SEG-field[.component[.subcomponent]]``
(``PV1-19.1``, ``PV1-3.4``, ``MSH-9``), always the first repetition. Lists are
tried in order and the first non-empty value wins (event time EVN-6, else EVN-2,
else MSH-7). Defaults follow HL7 v2.5.1, so a slas.yaml without this section works.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, field_validator

from stitchboard.config.base import Strict

_PATH = re.compile(
    r"^[A-Z][A-Z0-9]{2}-\d{1,3}(\[([1-9]\d{0,2}|[A-Za-z][A-Za-z0-9_]{0,9})\])?(\.\d{1,3}){0,2}$"
)

DEFAULT_STATUS_MAP = {
    # MSA-1 acknowledgment codes (HL7 table 0008)
    "AA": "ok",
    "CA": "ok",
    "AE": "error",
    "AR": "error",
    "CE": "error",
    "CR": "error",
    # common words in JSON/CSV logs
    "ok": "ok",
    "success": "ok",
    "sent": "ok",
    "delivered": "ok",
    "error": "error",
    "failed": "error",
    "failure": "error",
    "rejected": "error",
}

# PID-3/5/7/11/13/19 are the identifiers the issue names; the others carry the
# same kinds of identifiers (mother's maiden name, work phone, driver's licence,
# next of kin, guarantor, insured) and leak just as easily.
DEFAULT_PHI_FIELDS = [
    "PID-3",
    "PID-5",
    "PID-6",
    "PID-7",
    "PID-11",
    "PID-13",
    "PID-14",
    "PID-19",
    "PID-20",
    "NK1-2",
    "NK1-4",
    "NK1-5",
    "GT1-3",
    "GT1-5",
    "GT1-6",
    "GT1-12",
    "IN1-16",
    "IN1-18",
    "IN1-19",
]


def _check_path(path: str) -> str:
    if not _PATH.match(path):
        raise ValueError(f"{path!r} is not an HL7 field path like PV1-19.1, MSH-9 or PID-3[MR].1")
    return path


Hl7Path = Annotated[str, AfterValidator(_check_path)]


class Hl7Mapping(Strict):
    """Where an HL7 v2 message keeps the event fields and business keys."""

    event_time: list[Hl7Path] = Field(default_factory=lambda: ["EVN-6", "EVN-2", "MSH-7"])
    # When the sending system sent the message (a step's clock may count from it:
    # ``within.from: sent``); none set, or unreadable: the event time.
    sent_time: list[Hl7Path] = Field(default_factory=lambda: ["MSH-7"])
    facility: list[Hl7Path] = Field(default_factory=lambda: ["MSH-4", "PV1-3.4"])
    system: list[Hl7Path] = Field(default_factory=lambda: ["MSH-3"])
    # Message type and trigger joined with ``^`` (``ADT^A03``).
    operation: list[Hl7Path] = Field(default_factory=lambda: ["MSH-9"])
    status: list[Hl7Path] = Field(default_factory=lambda: ["MSA-1"])
    status_map: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_STATUS_MAP))
    default_status: str = "ok"
    status_message: list[Hl7Path] = Field(default_factory=lambda: ["MSA-3", "ERR-8"])
    amount: list[Hl7Path] = Field(default_factory=lambda: ["FT1-11.1", "FT1-12.1"])
    # One event per occurrence of this segment (one charge line per FT1); paths
    # into it read that occurrence, every other path reads the message.
    repeat_segment: str | None = "FT1"
    keys: dict[str, list[Hl7Path]] = Field(
        default_factory=lambda: {
            # An ACK's MSA-2 is the acknowledged message's MSH-10: the ACK joins it.
            "msg": ["MSA-2", "MSH-10"],
            # The MRN among the patient's identifiers, else the first one.
            "mrn": ["PID-3[MR].1", "PID-3.1"],
            "account": ["PID-18.1"],
            "visit": ["PV1-19.1"],
            "charge": ["FT1-2.1"],
            "charge_batch": ["FT1-3.1"],
        }
    )
    attributes: dict[str, Hl7Path] = Field(default_factory=dict)
    phi_fields: list[Hl7Path] = Field(default_factory=lambda: list(DEFAULT_PHI_FIELDS))
    # Keep the message (PHI fields pseudonymized) in the event's attributes.
    store_message: bool = False

    @field_validator("repeat_segment")
    @classmethod
    def _segment(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[A-Z][A-Z0-9]{2}$", value):
            raise ValueError(f"{value!r} is not a segment name like FT1")
        return value


class LogMapping(Strict):
    """Which JSON fields or CSV columns give the event fields.

    Names may reach into nested JSON objects with dots (``meta.facility``).
    A configured business key (slas.yaml ``keys``) is also read from a field of
    the same name, so a column ``visit`` needs no mapping.
    """

    event_time: list[str] = Field(
        default_factory=lambda: ["event_time", "timestamp", "time", "ts", "@timestamp"]
    )
    # auto: ISO 8601, or epoch seconds/milliseconds/microseconds/nanoseconds by magnitude;
    # anything else is a strptime format.
    time_format: str = "auto"
    facility: list[str] = Field(default_factory=lambda: ["facility", "facility_id"])
    system: list[str] = Field(default_factory=lambda: ["system", "service", "source_system"])
    operation: list[str] = Field(
        default_factory=lambda: ["operation", "message_type", "event_type", "event"]
    )
    status: list[str] = Field(default_factory=lambda: ["status", "result", "ack_code"])
    status_map: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_STATUS_MAP))
    default_status: str = "ok"
    status_message: list[str] = Field(
        default_factory=lambda: ["status_message", "error", "error_message"]
    )
    amount: list[str] = Field(default_factory=lambda: ["amount"])
    # A row's own id makes re-sending it idempotent; without one the row's content is hashed.
    id: list[str] = Field(default_factory=lambda: ["event_id", "id"])
    keys: dict[str, list[str]] = Field(
        default_factory=lambda: {"msg": ["msg_id", "message_id", "msh_10", "control_id"]}
    )
    attributes: list[str] = Field(default_factory=list)
    phi_fields: list[str] = Field(
        default_factory=lambda: [
            "mrn",
            "patient_name",
            "patient_mrn",
            "birth_date",
            "dob",
            "address",
            "phone",
            "ssn",
        ]
    )
    csv_delimiter: str = ","

    @field_validator("csv_delimiter")
    @classmethod
    def _one_char(cls, value: str) -> str:
        if len(value) != 1:
            raise ValueError("csv_delimiter must be one character")
        return value


class MessagesConfig(Strict):
    hl7: Hl7Mapping = Field(default_factory=Hl7Mapping)
    logs: LogMapping = Field(default_factory=LogMapping)
