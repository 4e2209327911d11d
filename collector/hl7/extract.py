"""HL7 v2 message → hop events, per slas.yaml ``messages.hl7`` (no I/O).

PHI fields are masked first and everything is read from the masked message,
so PHI keys come out as pseudonyms and a masked dead letter replays to the
same events.

A message with several FT1 segments (``repeat_segment``) gives one event per
FT1 line: each carries its own charge key, amount and set id, plus the
message's keys (visit, account, msg). A message without one gives one event.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from collector.hl7.dtm import parse_dtm
from collector.hl7.message import (
    DEFAULT_ENCODING,
    Encoding,
    FieldPath,
    Hl7Error,
    Hl7Message,
    unescape,
    validate,
)
from collector.hl7.phi import Masker
from stitchboard.config import SlasConfig
from stitchboard.events import STATUS_ERROR, STATUS_OK, STATUS_UNSET, Event, event_id

_STATUSES = {STATUS_OK, STATUS_ERROR, STATUS_UNSET}
_AMOUNT_LIMIT = Decimal("1e16")
_CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Header:
    """The MSH of a message, decoded on demand (event ids need three fields, ACKs more)."""

    encoding: Encoding = DEFAULT_ENCODING
    msh: tuple[str, ...] = ()  # numbered as in the standard: msh[10] is MSH-10

    def field(self, number: int, component: int = 0) -> str:
        if number >= len(self.msh):
            return ""
        enc = self.encoding
        value = self.msh[number].split(enc.repetition, 1)[0]
        if component:
            parts = value.split(enc.component)
            value = parts[component - 1] if component <= len(parts) else ""
        if enc.escape in value:
            value = unescape(value, enc)
        return value.strip()

    @property
    def sending_application(self) -> str:
        return self.field(3)

    @property
    def sending_facility(self) -> str:
        return self.field(4)

    @property
    def receiving_application(self) -> str:
        return self.field(5)

    @property
    def receiving_facility(self) -> str:
        return self.field(6)

    @property
    def trigger(self) -> str:
        return self.field(9, 2)

    @property
    def control_id(self) -> str:
        return self.field(10)

    @property
    def processing_id(self) -> str:
        return self.field(11, 1) or "P"

    @property
    def version(self) -> str:
        return self.field(12, 1)


@dataclass(frozen=True, slots=True, eq=False)
class Hl7Result:
    """Either events, or a rejection reason. ``masked`` is the message text with every PHI
    field pseudonymized, given as ``text`` or as the function that makes it when it is read
    (an accepted message's whole masked text is rarely wanted: ``store_message``, a message
    without a control id)."""

    text: str | Callable[[], str]
    header: Header = field(default_factory=Header)
    events: tuple[Event, ...] = ()
    reason: str = ""
    error_code: str = ""

    @property
    def masked(self) -> str:
        return self.text if isinstance(self.text, str) else self.text()

    @property
    def rejected(self) -> bool:
        return bool(self.reason)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Hl7Result):
            return NotImplemented
        mine = (self.masked, self.header, self.events, self.reason, self.error_code)
        return mine == (other.masked, other.header, other.events, other.reason, other.error_code)


class Hl7Extractor:
    def __init__(self, config: SlasConfig, pseudonymize: Callable[[str], str]):
        mapping = config.messages.hl7
        paths = lambda texts: [FieldPath.parse(t) for t in texts]  # noqa: E731
        self.event_time = paths(mapping.event_time)
        self.sent_time = paths(mapping.sent_time)
        self.facility = paths(mapping.facility)
        self.system = paths(mapping.system)
        self.operation = paths(mapping.operation)
        self.status = paths(mapping.status)
        self.status_message = paths(mapping.status_message)
        self.status_map = {k.upper(): v for k, v in mapping.status_map.items()}
        self.default_status = mapping.default_status
        self.amount = paths(mapping.amount)
        self.repeat = mapping.repeat_segment
        self.keys = {name: paths(texts) for name, texts in mapping.keys.items()}
        # Keys read once per message, and keys read per repeated segment (per charge line).
        per_line = {n for n, ps in self.keys.items() if any(p.segment == self.repeat for p in ps)}
        self.message_keys = [(n, ps) for n, ps in self.keys.items() if n not in per_line]
        self.line_keys = [(n, ps) for n, ps in self.keys.items() if n in per_line]
        self.attributes = {name: FieldPath.parse(text) for name, text in mapping.attributes.items()}
        self.store_message = mapping.store_message
        self.masker = Masker(mapping.phi_fields, pseudonymize)
        self.pseudonymize = self.masker.pseudonymize  # the cached one
        self.phi_keys = config.phi_keys
        self.facilities = config.facility_index()
        self.zones = {f.id: f.zone for f in config.facilities}

    def extract(self, text: str, source: str, observed_time: int) -> Hl7Result:
        try:
            segments, encoding = validate(text)
        except Hl7Error as exc:
            return Hl7Result(self.masker.text(text), reason=exc.reason, error_code=exc.code)
        message = Hl7Message(self.masker.segments(segments, encoding), encoding)
        masked = message.text()
        header = _header(message)
        try:
            events = self._events(message, masked, header, source, observed_time)
        except Hl7Error as exc:
            return Hl7Result(masked, header=header, reason=exc.reason, error_code=exc.code)
        return Hl7Result(masked, header=header, events=tuple(events))

    # -- the pure mapping ---------------------------------------------------------------

    def _first(
        self,
        message: Hl7Message,
        paths: list[FieldPath],
        index: int | None = None,
        repeat: str | None = None,
    ) -> str:
        for path in paths:
            value = message.value(path, index if path.segment == repeat else None)
            if value and value != '""':
                return value
        return ""

    def _resolve_facility(self, message: Hl7Message) -> str:
        """The first value naming a declared facility (its id), else the first value as sent.

        An undeclared facility is a gap in slas.yaml, not a bad message: it is stored
        (and answered AA) under the name it was sent with, listed in health, and takes
        the facility's id once slas.yaml declares it.
        """
        first = ""
        for path in self.facility:
            value = message.value(path)
            if not value:
                continue
            if not self.facilities:
                return value
            canonical = self.facilities.get(value)
            if canonical:
                return canonical
            first = first or value
        if not self.facilities:
            return ""
        if not first:
            where = ", ".join(str(p) for p in self.facility)
            raise Hl7Error(
                f"no facility: {where} empty; slas.yaml declares facilities, so every"
                " message must name one",
                "101",
            )
        return first

    def _sent_time(self, message: Hl7Message, zone: dt.tzinfo | None) -> int:
        """The send time (MSH-7), or 0 (= the event time) when absent or unreadable:
        a message is never refused for its send time."""
        for path in self.sent_time:
            value = message.value(path)
            if not value:
                continue
            try:
                return parse_dtm(value.split(message.encoding.component, 1)[0], zone)
            except ValueError:
                continue
        return 0

    def _time(self, message: Hl7Message, zone: dt.tzinfo | None) -> int:
        problems = []
        for path in self.event_time:
            value = message.value(path)
            if not value:
                continue
            try:
                return parse_dtm(value.split(message.encoding.component, 1)[0], zone)
            except ValueError as exc:
                problems.append(f"{path}: {exc}")
        where = ", ".join(str(p) for p in self.event_time)
        detail = "; ".join(problems) if problems else f"{where} all empty"
        raise Hl7Error(f"no usable event time ({detail})", "101" if not problems else "102")

    def _events(
        self, message: Hl7Message, masked: str, header: Header, source: str, observed_time: int
    ) -> list[Event]:
        facility = self._resolve_facility(message)
        zone = self.zones.get(facility)
        event_time = self._time(message, zone)
        sent_time = self._sent_time(message, zone)
        system = self._first(message, self.system)
        operation = ""
        for path in self.operation:
            if path.component:
                operation = message.value(path)
            else:
                operation = "^".join(c for c in message.components(path, 2) if c)
            if operation:
                break
        status_code = self._first(message, self.status)
        status = (
            self.status_map.get(status_code.upper(), STATUS_UNSET)
            if status_code
            else (self.default_status)
        )
        if status not in _STATUSES:
            status = STATUS_UNSET
        status_message = self._first(message, self.status_message) if status == STATUS_ERROR else ""
        attributes = {"hl7.version": header.version} if header.version else {}
        if self.store_message:
            attributes["hl7.message"] = masked
        # MSH-10 is unique per sender only in theory: some engines reuse control ids
        # after a restart, so the message time and type are part of the identity too.
        identity = (
            f"{header.control_id}|{header.field(7)}|{header.field(9)}"
            if header.control_id
            else event_id(masked)
        )
        message_keys = self._keys(message, self.message_keys, None)

        occurrences: list[int | None] = []
        if self.repeat:
            occurrences = list(message.occurrences(self.repeat))
        if not occurrences:
            occurrences = [None]
        events = []
        for ordinal, index in enumerate(occurrences, 1):
            keys = dict(message_keys)
            if self.line_keys:
                keys.update(self._keys(message, self.line_keys, index))
            attrs = dict(attributes)
            for name, path in self.attributes.items():
                value = message.value(path, index if path.segment == self.repeat else None)
                if value:
                    attrs[name] = value
            part = ""
            if index is not None:
                set_id = message.value(FieldPath(self.repeat or "", 1), index)
                part = set_id or str(ordinal)
                attrs[f"hl7.{(self.repeat or '').lower()}_set_id"] = part
            events.append(
                Event(
                    event_id=event_id(
                        "hl7", header.sending_application, header.sending_facility, identity, part
                    ),
                    event_time=event_time,
                    sent_time=sent_time,
                    observed_time=observed_time,
                    source_kind="hl7",
                    source=source,
                    facility=facility,
                    system=system,
                    operation=operation,
                    status=status,
                    status_message=status_message,
                    amount=parse_amount(self._first(message, self.amount, index, self.repeat)),
                    keys=keys,
                    attributes=attrs,
                )
            )
        return events

    def _keys(
        self, message: Hl7Message, rules: list[tuple[str, list[FieldPath]]], index: int | None
    ) -> dict[str, str]:
        keys = {}
        for name, paths in rules:
            value = self._first(message, paths, index, self.repeat)
            if value:
                keys[name] = self.pseudonymize(value) if name in self.phi_keys else value
        return keys


def _header(message: Hl7Message) -> Header:
    return Header(message.encoding, tuple(message.fields(0)))


def parse_amount(text: str) -> Decimal | None:
    """A money amount, or None when absent or not a number (the hop still counts)."""
    if not text:
        return None
    try:
        amount = Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None
    if not amount.is_finite() or abs(amount) >= _AMOUNT_LIMIT:
        return None
    return amount.quantize(_CENT)
