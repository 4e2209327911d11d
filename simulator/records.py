"""What the generator produces: hops (what systems send) and truths (what really happened).

Both are frozen values with a JSON form, so traffic can be written to a file once
and replayed by tests and benchmarks without running the generator again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

NS = 1_000_000_000
MINUTE = 60 * NS
HOUR = 60 * MINUTE
DAY = 24 * HOUR

# How a hop travels: OTLP span, OTLP log record, HL7 v2 over MLLP, JSON line over HTTP.
CHANNELS = ("span", "log", "hl7", "jsonl")


@dataclass(frozen=True, slots=True)
class Hop:
    """One record a real system emits: a span, a log record, an HL7 message or a JSON line.

    ``time`` is when it happened by the sending system's clock (skew included);
    ``sent`` is when the system hands it over (late arrivals, retries). For an
    HL7 message with several FT1 lines, ``lines`` holds one key map per line.
    """

    hop_id: str
    # (workflow, transaction, step) this hop is part of: an implant charge is a
    # charge of the visit and the implant's charge at once. Fan-in hops (GL
    # journals) list none: they join every transaction that carries their keys.
    members: tuple[tuple[str, str, str], ...]
    channel: str
    facility: str
    system: str
    operation: str
    time: int
    sent: int
    keys: Mapping[str, str] = field(default_factory=dict)
    status: str = "ok"
    status_message: str = ""
    amount: Decimal | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    body: str = ""  # the HL7 message (segments joined by \r) or a log body
    lines: tuple[Mapping[str, str], ...] = ()
    resend: bool = False  # a duplicate send after a timeout: same ids, same content
    # When the system stamped the message as sent (HL7 MSH-7), by its clock; 0 = ``time``.
    # A discharge is documented (EVN-6, ``time``) minutes to hours before its ADT is sent.
    message_time: int = 0

    @property
    def sent_stamp(self) -> int:
        return self.message_time or self.time

    def to_json(self) -> dict[str, Any]:
        return {
            "hop_id": self.hop_id,
            "members": [list(m) for m in self.members],
            "channel": self.channel,
            "facility": self.facility,
            "system": self.system,
            "operation": self.operation,
            "time": self.time,
            "sent": self.sent,
            "keys": dict(self.keys),
            "status": self.status,
            "status_message": self.status_message,
            "amount": None if self.amount is None else str(self.amount),
            "attributes": dict(self.attributes),
            "body": self.body,
            "lines": [dict(line) for line in self.lines],
            "resend": self.resend,
            "message_time": self.message_time,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Hop:
        amount = data.get("amount")
        return cls(
            hop_id=data["hop_id"],
            members=tuple(tuple(m) for m in data["members"]),
            channel=data["channel"],
            facility=data["facility"],
            system=data["system"],
            operation=data["operation"],
            time=int(data["time"]),
            sent=int(data["sent"]),
            keys=dict(data["keys"]),
            status=data["status"],
            status_message=data["status_message"],
            amount=None if amount is None else Decimal(amount),
            attributes=dict(data["attributes"]),
            body=data["body"],
            lines=tuple(dict(line) for line in data["lines"]),
            resend=bool(data["resend"]),
            message_time=int(data.get("message_time", 0)),
        )

    @property
    def event_count(self) -> int:
        """Events the collector makes of this hop (one per FT1 line for charges)."""
        return len(self.lines) or 1


@dataclass(frozen=True, slots=True)
class StepTruth:
    step: str
    first: int  # ns UTC, as the hops report it
    last: int
    count: int  # events matched to the step


@dataclass(frozen=True, slots=True)
class Missed:
    """A deadline that was (or will be, if nothing arrives) missed."""

    step: str  # step name, or "end_to_end"
    level: str  # warn | breach
    deadline: int  # ns UTC


@dataclass(frozen=True, slots=True)
class Truth:
    """The ground truth of one simulated transaction, as of ``as_of``."""

    txn: str
    workflow: str
    facility: str
    start: int
    steps: tuple[StepTruth, ...]
    missed: tuple[Missed, ...]
    status: str  # in_progress | complete | late | overdue | failed
    flags: tuple[str, ...]
    keys: Mapping[str, tuple[str, ...]]
    scenario: tuple[str, ...]  # the hard cases this transaction exercises
    as_of: int
    amount: Decimal | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "txn": self.txn,
            "workflow": self.workflow,
            "facility": self.facility,
            "start": _iso(self.start),
            "status": self.status,
            "flags": list(self.flags),
            "steps": [
                {"step": s.step, "first": _iso(s.first), "last": _iso(s.last), "count": s.count}
                for s in self.steps
            ],
            "missed": [
                {"step": m.step, "level": m.level, "deadline": _iso(m.deadline)}
                for m in self.missed
            ],
            "keys": {k: list(v) for k, v in self.keys.items()},
            "scenario": list(self.scenario),
            "amount": None if self.amount is None else str(self.amount),
            "as_of": _iso(self.as_of),
        }


def _iso(ns: int) -> str:
    import datetime as dt

    seconds, rest = divmod(ns, NS)
    moment = dt.datetime.fromtimestamp(seconds, tz=dt.UTC).replace(microsecond=rest // 1000)
    return moment.isoformat().replace("+00:00", "Z")


def dumps(record: Hop | Truth) -> str:
    return json.dumps(record.to_json(), separators=(",", ":"), sort_keys=True)
