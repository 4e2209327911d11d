"""The normalized hop event: one row of the ``events`` table per hop from any source.

Times are integer nanoseconds since the Unix epoch (UTC) all the way from the
decoder to ClickHouse: no datetime objects on the hot path.

A hop has two times: ``event_time``, when the business event occurred (HL7 EVN-6,
a span's end), and ``sent_time``, when the sending system handed the message on
(HL7 MSH-7; a span's end again). A step's deadline says which one its clock
counts from (slas.yaml ``within.from``). A row is built in one place,
``event_row``, by keyword, whatever decoded it.
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
    "sent_time",
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


def event_row(
    *,
    event_id: str,
    event_time: int,
    observed_time: int,
    source_kind: str,
    source: str = "",
    facility: str = "",
    system: str = "",
    operation: str = "",
    status: str = STATUS_UNSET,
    status_message: str = "",
    duration_ns: int = 0,
    amount: Decimal | None = None,
    trace_id: str = "",
    span_id: str = "",
    keys: Mapping[str, str] | None = None,
    attributes: Mapping[str, str] | None = None,
    sent_time: int = 0,
) -> tuple[object, ...]:
    """The ``events`` row of one hop, in ``EVENT_COLUMNS`` order: the one builder of it.

    ``sent_time`` 0 means the sender gave no separate send time: the event time.
    """
    return (
        event_id,
        event_time,
        observed_time,
        source_kind,
        source,
        facility,
        system,
        operation,
        status,
        status_message,
        duration_ns,
        amount,
        trace_id,
        span_id,
        _plain(keys),
        _plain(attributes),
        sent_time or event_time,
    )


def _plain(values: Mapping[str, str] | None) -> dict[str, str]:
    # A dict the decoder just built is used as is: rows are built millions of times.
    if type(values) is dict:
        return values
    return dict(values) if values else {}


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
    sent_time: int = 0  # when the sender handed it on (HL7 MSH-7); 0 = the event time

    @property
    def sent(self) -> int:
        """The send time, or the event time when the sender gave none."""
        return self.sent_time or self.event_time

    def row(self) -> tuple[object, ...]:
        return event_row(
            event_id=self.event_id,
            event_time=self.event_time,
            observed_time=self.observed_time,
            source_kind=self.source_kind,
            source=self.source,
            facility=self.facility,
            system=self.system,
            operation=self.operation,
            status=self.status,
            status_message=self.status_message,
            duration_ns=self.duration_ns,
            amount=self.amount,
            trace_id=self.trace_id,
            span_id=self.span_id,
            keys=self.keys,
            attributes=self.attributes,
            sent_time=self.sent_time,
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
