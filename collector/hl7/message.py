"""An HL7 v2 message read for the few fields ingest needs.

The ``hl7`` package is the reference for how a message splits into segments,
fields, repetitions, components and subcomponents, and its ``unescape`` decodes
escape sequences (``\\F\\``, ``\\S\\``, ``\\X..\\``, ...). A full ``hl7.parse`` costs
about 450 µs for a charge message, which caps one core near 2,000 messages/s,
while ingest reads a dozen fields of a handful of segments. So this module
splits lazily, only the segments a path asks for, with the same rules; the
tests check every leaf against ``hl7.parse`` on the sample and generated
messages, so the two cannot drift apart.

Read the message's own delimiters from MSH-1/MSH-2: senders do use others.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import hl7.util
from hl7.util import unescape as _hl7_unescape

SEGMENT_SPLIT = re.compile(r"\r\n|\r|\n")
_SEGMENT_NAME = re.compile(r"^[A-Z][A-Z0-9]{2}$")
_PATH = re.compile(
    r"^([A-Z][A-Z0-9]{2})-(\d{1,3})(?:\[(\d{1,3}|[A-Za-z][A-Za-z0-9_]{0,9})\])?"
    r"(?:\.(\d{1,3}))?(?:\.(\d{1,3}))?$"
)
# hl7's unescape logs the whole raw field when it meets a sequence it cannot decode (an
# empty one, a character-set switch). A field may hold PHI, and our own message says what
# was wrong without it, so that logger drops every record. (A filter, because the server's
# logging setup re-enables loggers it does not name.)
hl7.util.logger.addFilter(lambda record: False)
# CX (extended identifier: PID-3, PID-18, PV1-19, ...) keeps the identifier type in component 5.
_CX_TYPE = 5


class Hl7Error(ValueError):
    """The text is not a usable HL7 v2 message; ``code`` is an HL7 table 0357 error code."""

    def __init__(self, reason: str, code: str = "102"):
        self.reason = reason
        self.code = code
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class Encoding:
    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @property
    def characters(self) -> str:
        return self.component + self.repetition + self.escape + self.subcomponent

    # What hl7.util.unescape expects of its container.
    @property
    def separators(self) -> str:
        return "\r" + self.field + self.repetition + self.component + self.subcomponent

    @property
    def esc(self) -> str:
        return self.escape


DEFAULT_ENCODING = Encoding()


@dataclass(frozen=True, slots=True)
class FieldPath:
    """``PV1-19.1``: segment, field, component (0 = whole), subcomponent (0 = whole).

    A repetition other than the first is chosen by number (``PID-3[2].1``) or, for
    identifier (CX) fields, by identifier type code (``PID-3[MR].1``: the repetition
    whose component 5 is ``MR``).
    """

    segment: str
    field: int
    component: int = 0
    subcomponent: int = 0
    repetition: int = 1
    identifier_type: str = ""

    @classmethod
    def parse(cls, text: str) -> FieldPath:
        match = _PATH.match(text)
        if not match:
            raise ValueError(f"{text!r} is not an HL7 field path like PV1-19.1")
        seg, fld, rep, comp, sub = match.groups()
        repetition, identifier_type = 1, ""
        if rep and rep.isdigit():
            repetition = int(rep)
            if repetition < 1:
                raise ValueError(f"{text!r}: repetitions count from 1")
        elif rep:
            identifier_type = rep
        return cls(seg, int(fld), int(comp or 0), int(sub or 0), repetition, identifier_type)

    def __str__(self) -> str:
        text = f"{self.segment}-{self.field}"
        if self.identifier_type or self.repetition != 1:
            text += f"[{self.identifier_type or self.repetition}]"
        if self.component:
            text += f".{self.component}"
        if self.subcomponent:
            text += f".{self.subcomponent}"
        return text


def encoding_of(msh: str) -> Encoding:
    """The delimiters an MSH segment declares (MSH-1 and MSH-2)."""
    if len(msh) < 4:
        raise Hl7Error("MSH segment is too short to declare its delimiters (MSH-1, MSH-2)")
    field = msh[3]
    if field.isalnum() or field in " \r\n":
        raise Hl7Error(f"MSH-1 field separator {field!r} is not a delimiter character")
    end = msh.find(field, 4)
    chars = msh[4:end] if end != -1 else msh[4:]
    distinct = len(set(chars + field)) == len(chars) + 1
    if len(chars) < 2 or not distinct or any(c.isalnum() for c in chars):
        raise Hl7Error(f"MSH-2 encoding characters {chars!r} are not valid (expected e.g. ^~\\&)")
    defaults = DEFAULT_ENCODING
    return Encoding(
        field=field,
        component=chars[0],
        repetition=chars[1],
        escape=chars[2] if len(chars) > 2 else defaults.escape,
        subcomponent=chars[3] if len(chars) > 3 else defaults.subcomponent,
    )


def split_segments(text: str) -> list[str]:
    """Segments separated by CR (the standard), LF or CRLF (what files often hold)."""
    return [s for s in SEGMENT_SPLIT.split(text) if s.strip()]


class Hl7Message:
    """A validated message; fields are split on first access, per segment."""

    __slots__ = ("segments", "names", "encoding", "_fields", "_first", "_components")

    def __init__(self, segments: list[str], encoding: Encoding):
        self.segments = segments
        self.names = [s[:3] for s in segments]
        self.encoding = encoding
        self._fields: dict[int, list[str]] = {}
        self._components: dict[tuple[int, int], list[str]] = {}
        self._first: dict[str, int] = {}
        for i, name in enumerate(self.names):
            self._first.setdefault(name, i)

    @classmethod
    def parse(cls, text: str) -> Hl7Message:
        segments, encoding = validate(text)
        return cls(segments, encoding)

    def text(self) -> str:
        return "\r".join(self.segments)

    def occurrences(self, name: str) -> list[int]:
        return [i for i, n in enumerate(self.names) if n == name]

    def fields(self, index: int) -> list[str]:
        """Fields of segment ``index``, numbered as in the standard (``fields[3]`` is SEG-3).

        MSH-1 is the field separator itself, so MSH's list is shifted by one.
        """
        cached = self._fields.get(index)
        if cached is None:
            segment = self.segments[index]
            cached = segment.split(self.encoding.field)
            if self.names[index] == "MSH":
                cached = ["MSH", self.encoding.field, *cached[1:]]
            self._fields[index] = cached
        return cached

    def raw(self, path: FieldPath, index: int | None = None) -> str:
        """The still-escaped text at ``path`` (first repetition) in segment ``index``.

        ``index`` None means the first segment with that name. Absent parts are "".
        """
        if index is None:
            index = self._first.get(path.segment)
            if index is None:
                return ""
        fields = self.fields(index)
        if path.field >= len(fields):
            return ""
        if path.segment == "MSH" and path.field <= 2:
            return fields[path.field]
        if path.repetition != 1 or path.identifier_type:
            return self._chosen_repetition(fields[path.field], path)
        if not path.component:
            return fields[path.field].split(self.encoding.repetition, 1)[0]
        key = (index, path.field)
        parts = self._components.get(key)
        if parts is None:
            enc = self.encoding
            parts = fields[path.field].split(enc.repetition, 1)[0].split(enc.component)
            self._components[key] = parts
        if path.component > len(parts):
            return ""
        value = parts[path.component - 1]
        if path.subcomponent:
            subs = value.split(self.encoding.subcomponent)
            value = subs[path.subcomponent - 1] if path.subcomponent <= len(subs) else ""
        return value

    def _chosen_repetition(self, field: str, path: FieldPath) -> str:
        enc = self.encoding
        repetitions = field.split(enc.repetition)
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

    def value(self, path: FieldPath, index: int | None = None) -> str:
        """The decoded text at ``path``: escape sequences resolved, spaces trimmed."""
        value = self.raw(path, index)
        if self.encoding.escape in value and not (path.segment == "MSH" and path.field <= 2):
            value = unescape(value, self.encoding)
        return value.strip()

    def components(self, path: FieldPath, count: int, index: int | None = None) -> list[str]:
        """The first ``count`` decoded components of a field (for MSH-9 as ``ADT^A03``)."""
        return [
            self.value(FieldPath(path.segment, path.field, c), index) for c in range(1, count + 1)
        ]


def _component(repetition: str, number: int, enc: Encoding) -> str:
    parts = repetition.split(enc.component)
    return parts[number - 1] if number <= len(parts) else ""


_VALID_NAMES: set[str] = set()


def validate(text: str) -> tuple[list[str], Encoding]:
    """The segments and delimiters of a well-formed message; raises Hl7Error saying why not."""
    text = text.lstrip("\ufeff \t\r\n")
    segments = text.split("\r") if "\n" not in text else SEGMENT_SPLIT.split(text)
    segments = [s for s in segments if s and not s.isspace()]
    if not segments or not segments[0].startswith("MSH"):
        start = text[:20].encode("unicode_escape").decode("ascii")
        raise Hl7Error(
            f"not an HL7 v2 message: it must start with an MSH segment (starts with {start!r})",
            "100",
        )
    encoding = encoding_of(segments[0])
    field = encoding.field
    for number, segment in enumerate(segments, 1):
        name = segment[:3]
        if name not in _VALID_NAMES:
            if not _SEGMENT_NAME.match(name):
                _bad_segment(number, segment)
            _VALID_NAMES.add(name)
        if len(segment) > 3 and segment[3] != field:
            _bad_segment(number, segment)
    return segments, encoding


def _bad_segment(number: int, segment: str) -> None:
    shown = segment[:12].encode("unicode_escape").decode("ascii")
    raise Hl7Error(f"segment {number} is not an HL7 segment (starts with {shown!r})", "100")


def unescape(value: str, encoding: Encoding) -> str:
    return _hl7_unescape(encoding, value)


def escape(text: str, encoding: Encoding = DEFAULT_ENCODING) -> str:
    """Text made safe inside one HL7 component (for ACK reasons)."""
    esc = encoding.escape
    out = text.replace(esc, f"{esc}E{esc}")
    for char, code in (
        (encoding.field, "F"),
        (encoding.component, "S"),
        (encoding.repetition, "R"),
        (encoding.subcomponent, "T"),
    ):
        out = out.replace(char, f"{esc}{code}{esc}")
    out = " ".join(out.split())  # no CR/LF: they would end the segment
    return out.encode("ascii", "replace").decode("ascii")


def decode(raw: bytes) -> str:
    """HL7 bytes as text: UTF-8 (the v2.8 default) and, failing that, Latin-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
