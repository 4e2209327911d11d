"""The HL7 extractor on the ingest path: the same mapping as ``Hl7Extractor``, fewer steps.

``Hl7Extractor`` (``collector.hl7.extract``) is the reference: it reads every
value through ``Hl7Message``, a general view of the message (a few calls and a
cache lookup per value). This one reads only the segments and fields the
configured paths name, with one function per value, skips what the common
delimiters make unnecessary (``MSH|^~\\&|`` needs no ``encoding_of``), masks only
the PHI fields it reads (the whole masked text is made when asked for: a dead
letter, ``store_message``), and builds each event's row once. Everything a
message gives - events, ids, the masked text, the header, the rejection reason
and code - must equal the reference's: ``tests/unit/test_hl7_compiled.py``
checks that on the shared samples and on generated messages (Hypothesis).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from collector.hl7.dtm import parse_dtm
from collector.hl7.extract import Header, Hl7Extractor, Hl7Result, parse_amount
from collector.hl7.message import (
    DEFAULT_ENCODING,
    SEGMENT_SPLIT,
    Encoding,
    FieldPath,
    Hl7Error,
    unescape,
    validate,
)
from collector.hl7.phi import FieldMask, Masker
from stitchboard.config import SlasConfig
from stitchboard.events import STATUS_ERROR, STATUS_OK, STATUS_UNSET, Event, event_id

_STATUSES = {STATUS_OK, STATUS_ERROR, STATUS_UNSET}
_DEFAULT_MSH = "MSH|^~\\&|"
_CX_TYPE = 5  # the identifier type component of a CX field (as in collector.hl7.message)
_SEGMENT_NAME = re.compile(r"^[A-Z][A-Z0-9]{2}$")
_NAMES: set[str] = set()  # segment names seen well-formed


# A FieldPath as the tuple the hot loop unpacks: segment, field, component, subcomponent,
# the path itself when it picks a repetition other than the first (by number or CX type),
# and how the field is masked when it is a PHI field.
Leaf = tuple[str, int, int, int, FieldPath | None, FieldMask | None]


def leaf(path: FieldPath, masker: Masker) -> Leaf:
    chosen = path if path.repetition != 1 or path.identifier_type else None
    mask = masker.field_mask(path.segment, path.field)
    return (path.segment, path.field, path.component, path.subcomponent, chosen, mask)


class _Segments:
    """The segments of one validated message; each split into fields once, on demand, and
    a PHI field masked (as ``Masker.segments`` masks it) when it is read."""

    __slots__ = ("segments", "enc", "first", "split", "masker")

    def __init__(self, segments: list[str], enc: Encoding, msh: list[str], masker: Masker):
        self.segments = segments
        self.enc = enc
        self.masker = masker
        first: dict[str, int] = {}
        for i, segment in enumerate(segments):
            name = segment[:3]
            if name not in first:
                first[name] = i
        self.first = first
        self.split: dict[int, list[str]] = {0: msh}

    def fields(self, index: int) -> list[str]:
        fields = self.split.get(index)
        if fields is None:
            segment = self.segments[index]
            fields = segment.split(self.enc.field)
            if segment[:3] == "MSH":
                fields = ["MSH", self.enc.field, *fields[1:]]
            self.split[index] = fields
        return fields

    def value(self, leaf: Leaf, index: int | None = None) -> str:
        """What ``Hl7Message.value(path, index)`` returns, in one call."""
        segment, number, component, subcomponent, chosen, mask = leaf
        if index is None:
            index = self.first.get(segment)
            if index is None:
                return ""
        fields = self.split.get(index)
        if fields is None:
            fields = self.fields(index)
        if number >= len(fields):
            return ""
        text = fields[number]
        if number <= 2 and segment == "MSH":
            return text.strip()
        enc = self.enc
        if mask is not None:
            text = self.masker.mask_field(text, mask, enc)
        if chosen is not None:
            text = _chosen_repetition(text, chosen, enc)
        else:
            if enc.repetition in text:
                text = text.split(enc.repetition, 1)[0]
            if component:
                parts = text.split(enc.component)
                if component > len(parts):
                    return ""
                text = parts[component - 1]
                if subcomponent:
                    subs = text.split(enc.subcomponent)
                    text = subs[subcomponent - 1] if subcomponent <= len(subs) else ""
        if enc.escape in text:
            text = unescape(text, enc)
        return text.strip()

    def first_value(self, leaves: list[Leaf], index: int | None, repeat: str | None) -> str:
        """``Hl7Extractor._first``: the first value present and not the explicit null ``""``."""
        first = self.first
        for leaf in leaves:
            segment = leaf[0]
            if segment == repeat and index is not None:
                value = self.value(leaf, index)
            elif segment in first:
                value = self.value(leaf)
            else:
                continue
            if value and value != '""':
                return value
        return ""


def _chosen_repetition(field: str, path: FieldPath, enc: Encoding) -> str:
    repetitions = field.split(enc.repetition)
    chosen: str | None
    if path.identifier_type:
        wanted = path.identifier_type.upper()
        chosen = next(
            (r for r in repetitions if _component(r, _CX_TYPE, enc).strip().upper() == wanted),
            None,
        )
    else:
        number = path.repetition
        chosen = repetitions[number - 1] if number <= len(repetitions) else None
    if chosen is None:
        return ""
    if not path.component:
        return chosen
    value = _component(chosen, path.component, enc)
    if path.subcomponent:
        subs = value.split(enc.subcomponent)
        value = subs[path.subcomponent - 1] if path.subcomponent <= len(subs) else ""
    return value


def _component(repetition: str, number: int, enc: Encoding) -> str:
    parts = repetition.split(enc.component)
    return parts[number - 1] if number <= len(parts) else ""


def _validate(text: str) -> tuple[list[str], Encoding]:
    """``validate`` for the common delimiters (``MSH|^~\\&|``); anything else goes to it."""
    if not text.startswith(_DEFAULT_MSH):
        return validate(text)
    parts = text.split("\r") if "\n" not in text else SEGMENT_SPLIT.split(text)
    segments = [s for s in parts if s and not s.isspace()]
    for segment in segments:
        if len(segment) > 3 and segment[3] != "|":
            return validate(text)
        name = segment[:3]
        if name not in _NAMES:
            if not _SEGMENT_NAME.match(name):
                return validate(text)
            _NAMES.add(name)
    return segments, DEFAULT_ENCODING


class CompiledExtractor(Hl7Extractor):
    """``Hl7Extractor`` with a faster ``extract``; the configuration is read the same way."""

    def __init__(self, config: SlasConfig, pseudonymize: Callable[[str], str]):
        super().__init__(config, pseudonymize)
        masker = self.masker
        leaves = lambda paths: [leaf(p, masker) for p in paths]  # noqa: E731
        self.leaves_event_time = [(leaf(p, masker), p) for p in self.event_time]
        self.leaves_sent_time = leaves(self.sent_time)
        self.leaves_facility = leaves(self.facility)
        self.leaves_system = leaves(self.system)
        self.leaves_operation = [
            [leaf(p, masker)]
            if p.component
            else [leaf(FieldPath(p.segment, p.field, c), masker) for c in (1, 2)]
            for p in self.operation
        ]
        self.leaves_status = leaves(self.status)
        self.leaves_status_message = leaves(self.status_message)
        self.leaves_amount = leaves(self.amount)
        self.leaves_message_keys = [(name, leaves(paths)) for name, paths in self.message_keys]
        self.leaves_line_keys = [(name, leaves(paths)) for name, paths in self.line_keys]
        self.leaves_attributes = [(name, leaf(p, masker)) for name, p in self.attributes.items()]
        self.leaves_set_id = leaf(FieldPath(self.repeat or "MSH", 1), masker)

    def extract(self, text: str, source: str, observed_time: int) -> Hl7Result:
        try:
            segments, enc = _validate(text)
        except Hl7Error as exc:
            return Hl7Result(self.masker.text(text), reason=exc.reason, error_code=exc.code)
        msh = segments[0].split(enc.field)  # MSH holds no PHI: never masked
        msh[0:1] = ["MSH", enc.field]
        header = Header(enc, tuple(msh))
        view = _Segments(segments, enc, msh, self.masker)
        masked = functools.partial(self._masked_text, segments, enc)
        try:
            events = self._read_events(view, masked, header, source, observed_time)
        except Hl7Error as exc:
            return Hl7Result(masked, header=header, reason=exc.reason, error_code=exc.code)
        return Hl7Result(masked, header=header, events=events)

    def _masked_text(self, segments: list[str], enc: Encoding) -> str:
        return "\r".join(self.masker.segments(segments, enc))

    def _read_facility(self, view: _Segments) -> str:
        first = ""
        for path in self.leaves_facility:
            value = view.value(path)
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

    def _read_times(self, view: _Segments, facility: str) -> tuple[int, int]:
        zone = self.zones.get(facility)
        component = view.enc.component
        problems = []
        event_time: int | None = None
        for path, named in self.leaves_event_time:
            value = view.value(path)
            if not value:
                continue
            try:
                event_time = parse_dtm(value.split(component, 1)[0], zone)
                break
            except ValueError as exc:
                problems.append(f"{named}: {exc}")
        if event_time is None:
            where = ", ".join(str(p) for p in self.event_time)
            detail = "; ".join(problems) if problems else f"{where} all empty"
            raise Hl7Error(f"no usable event time ({detail})", "101" if not problems else "102")
        sent_time = 0
        for path in self.leaves_sent_time:
            value = view.value(path)
            if not value:
                continue
            try:
                sent_time = parse_dtm(value.split(component, 1)[0], zone)
                break
            except ValueError:
                continue
        return event_time, sent_time

    def _read_events(
        self,
        view: _Segments,
        masked: Callable[[], str],
        header: Header,
        source: str,
        observed_time: int,
    ) -> tuple[Event, ...]:
        facility = self._read_facility(view)
        event_time, sent_time = self._read_times(view, facility)
        repeat = self.repeat
        system = view.first_value(self.leaves_system, None, None)
        operation = ""
        for leaves in self.leaves_operation:
            if len(leaves) == 1:
                operation = view.value(leaves[0])
            else:
                # As Hl7Message.components: components 1 and 2 of the field's first repetition.
                operation = "^".join(c for c in (view.value(p) for p in leaves) if c)
            if operation:
                break
        status_code = view.first_value(self.leaves_status, None, None)
        status = (
            self.status_map.get(status_code.upper(), STATUS_UNSET)
            if status_code
            else self.default_status
        )
        if status not in _STATUSES:
            status = STATUS_UNSET
        status_message = (
            view.first_value(self.leaves_status_message, None, None)
            if status == STATUS_ERROR
            else ""
        )
        version = header.version
        attributes = {"hl7.version": version} if version else {}
        if self.store_message:
            attributes["hl7.message"] = masked()
        control_id = header.control_id
        if control_id:
            identity = f"{control_id}|{header.field(7)}|{header.field(9)}"
        else:
            identity = event_id(masked())
        application, sender = header.sending_application, header.sending_facility
        message_keys = self._read_keys(view, self.leaves_message_keys, None)

        occurrences: list[int | None] = []
        if repeat:
            occurrences = [i for i, s in enumerate(view.segments) if s[:3] == repeat]
        if not occurrences:
            occurrences = [None]
        events = []
        for ordinal, index in enumerate(occurrences, 1):
            keys = dict(message_keys)
            if self.leaves_line_keys:
                keys.update(self._read_keys(view, self.leaves_line_keys, index))
            attrs = dict(attributes)
            for name, path in self.leaves_attributes:
                value = view.value(path, index if path[0] == repeat else None)
                if value:
                    attrs[name] = value
            part = ""
            if index is not None:
                set_id = view.value(self.leaves_set_id, index)
                part = set_id or str(ordinal)
                attrs[f"hl7.{(repeat or '').lower()}_set_id"] = part
            events.append(
                Event(
                    event_id=event_id("hl7", application, sender, identity, part),
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
                    amount=parse_amount(view.first_value(self.leaves_amount, index, repeat)),
                    keys=keys,
                    attributes=attrs,
                )
            )
        return tuple(events)

    def _read_keys(
        self, view: _Segments, rules: list[tuple[str, list[Leaf]]], index: int | None
    ) -> dict[str, str]:
        keys = {}
        repeat = self.repeat
        for name, paths in rules:
            value = view.first_value(paths, index, repeat)
            if value:
                keys[name] = self.pseudonymize(value) if name in self.phi_keys else value
        return keys
