"""The normalized hop event: one row of the ``events`` table per hop from any source.

Times are integer nanoseconds since the Unix epoch (UTC) all the way from the
decoder to ClickHouse: no datetime objects on the hot path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

# Column order of the ``events`` table, shared by the sink and the readers.
EVENT_COLUMNS = (
    "event_id",
    "event_time",
    "observed_time",
    "source_kind",
    "source",
    "facility",
    "system",
    "operation",
    "status",
    "status_message",
    "duration_ns",
    "amount",
    "trace_id",
    "span_id",
    "keys",
    "attributes",
)

STATUS_OK = "ok"
STATUS_ERROR = "error"
STATUS_UNSET = "unset"


def event_id(*parts: object) -> str:
    """A deterministic id: the same hop sent twice gets the same id.

    MD5 of the parts joined by U+001F, in hex: ClickHouse computes the same id
    with ``lower(hex(MD5(...)))`` when it decodes OTLP itself (collector.otlp_native).
    It identifies, it does not protect: nothing secret goes into it.
    """
    joined = "\x1f".join(p if isinstance(p, str) else str(p) for p in parts)
    return hashlib.md5(joined.encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True, slots=True)
class Event:
    """One hop of a business transaction, whatever system reported it."""

    event_id: str
    event_time: int
    observed_time: int
    source_kind: str  # span | log | hl7 | jsonl | csv
    source: str = ""  # service name, MLLP peer, file name
    facility: str = ""
    system: str = ""
    operation: str = ""
    status: str = STATUS_UNSET
    status_message: str = ""
    duration_ns: int = 0
    amount: Decimal | None = None
    trace_id: str = ""
    span_id: str = ""
    keys: Mapping[str, str] = field(default_factory=dict)
    attributes: Mapping[str, str] = field(default_factory=dict)

    def row(self) -> tuple[object, ...]:
        return (
            self.event_id,
            self.event_time,
            self.observed_time,
            self.source_kind,
            self.source,
            self.facility,
            self.system,
            self.operation,
            self.status,
            self.status_message,
            self.duration_ns,
            self.amount,
            self.trace_id,
            self.span_id,
            dict(self.keys),
            dict(self.attributes),
        )


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record that could not be used, kept with its raw payload and a reason."""

    source: str  # otlp.traces | otlp.logs | mllp | file:<name> | http.messages
    content_type: str
    payload: bytes
    reason: str
    received_time: int

    @property
    def dead_letter_id(self) -> str:
        return event_id("dl", self.source, self.payload, self.reason)

    def row(self) -> tuple[object, ...]:
        return (
            self.dead_letter_id,
            self.received_time,
            self.source,
            self.content_type,
            self.payload,
            self.reason,
        )


DEAD_LETTER_COLUMNS = ("id", "received_time", "source", "content_type", "payload", "reason")
