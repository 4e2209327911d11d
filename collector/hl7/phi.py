"""PHI masking of HL7 messages: every value of a PHI field becomes its pseudonym.

Masking works leaf by leaf (each subcomponent of each repetition), so the
structure survives and a masked message extracts to exactly the same events as
the original: ``PID-3.1`` of the masked message is the pseudonym of the MRN, and
pseudonymizing a pseudonym returns it unchanged. That is what makes a masked
dead letter replayable, so dead letters never hold raw PHI either.

Masking must also work on text that failed validation, so it only needs the
segment lines and the delimiters (the defaults when MSH cannot be read).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Iterable

from collector.hl7.message import (
    DEFAULT_ENCODING,
    Encoding,
    FieldPath,
    Hl7Error,
    encoding_of,
    split_segments,
    unescape,
)

Pseudonymize = Callable[[str], str]
_CACHE_SIZE = 1 << 15
# Identifier (CX) fields: the check-digit scheme, assigning authority, identifier type and
# assigning facility (components 3-6) are codes such as NMC or MR, not identities. Keeping
# them lets PID-3[MR].1 pick the MRN among a patient's identifiers after masking.
_CX_FIELDS = frozenset(
    {
        ("PID", 2),
        ("PID", 3),
        ("PID", 4),
        ("PID", 18),
        ("PID", 21),
        ("MRG", 1),
        ("MRG", 2),
        ("MRG", 3),
    }
)
_CX_CODES = (3, 4, 5, 6)
# How one field is masked: the components masked (empty: all of them), the components kept.
FieldMask = tuple[frozenset[int], tuple[int, ...]]


def _kept(segment: str, number: int, components: set[int]) -> tuple[int, ...]:
    """The components of a wholly masked field left as they are: a CX field's codes."""
    return _CX_CODES if not components and (segment, number) in _CX_FIELDS else ()


class Masker:
    def __init__(self, phi_fields: Iterable[str], pseudonymize: Pseudonymize):
        # Patients recur across messages; the HMAC is the costliest step of ingest.
        self.pseudonymize = functools.lru_cache(maxsize=1 << 16)(pseudonymize)
        # Masked segments (mask None) and masked fields, by their text: both recur.
        self._cache: dict[tuple[str, FieldMask | None, Encoding], str] = {}
        # segment name -> field number -> components to mask (empty set: the whole field)
        self.targets: dict[str, dict[int, set[int]]] = defaultdict(dict)
        for text in phi_fields:
            path = FieldPath.parse(text)
            fields = self.targets[path.segment]
            if not path.component:
                fields[path.field] = set()  # the whole field
            elif path.field not in fields:
                fields[path.field] = {path.component}
            elif fields[path.field]:
                fields[path.field].add(path.component)

    def segments(self, segments: list[str], encoding: Encoding) -> list[str]:
        """The segments with PHI fields replaced by pseudonyms (others untouched)."""
        out = segments
        for i, segment in enumerate(segments):
            fields_to_mask = self.targets.get(segment[:3])
            if not fields_to_mask or segment[:3] == "MSH":
                continue
            if out is segments:
                out = list(segments)
            out[i] = self._segment(segment, fields_to_mask, encoding)
        return out

    def text(self, text: str) -> str:
        """Best-effort masking of anything that looks like HL7, valid or not."""
        segments = split_segments(text)
        encoding = DEFAULT_ENCODING
        if segments and segments[0].startswith("MSH"):
            try:
                encoding = encoding_of(segments[0])
            except Hl7Error:
                encoding = DEFAULT_ENCODING
        return "\r".join(self.segments(segments, encoding))

    def field_mask(self, segment: str, number: int) -> FieldMask | None:
        """How ``segments`` masks field ``number`` of a ``segment`` segment (None: it does
        not): for ``mask_field``, so a reader can mask only the fields it reads."""
        if segment == "MSH":
            return None
        components = self.targets.get(segment, {}).get(number)
        if components is None:
            return None
        return frozenset(components), _kept(segment, number, components)

    def mask_field(self, field: str, mask: FieldMask, enc: Encoding) -> str:
        """The field as ``segments`` leaves it in the masked segment."""
        if not field:
            return field
        # A patient's identifiers recur unchanged across the ADT, charges and billing messages.
        key = (field, mask, enc)
        masked = self._cache.get(key)
        if masked is None:
            masked = self._keep(key, self._field(field, mask[0], enc, mask[1]))
        return masked

    def _segment(self, segment: str, targets: dict[int, set[int]], enc: Encoding) -> str:
        # A patient's PID recurs unchanged across the ADT, charges and billing messages.
        key = (segment, None, enc)
        masked = self._cache.get(key)
        if masked is None:
            masked = self._keep(key, self._mask_segment(segment, targets, enc))
        return masked

    def _keep(self, key: tuple[str, FieldMask | None, Encoding], masked: str) -> str:
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        self._cache[key] = masked
        return masked

    def _mask_segment(self, segment: str, targets: dict[int, set[int]], enc: Encoding) -> str:
        fields = segment.split(enc.field)
        name = segment[:3]
        for number, components in targets.items():
            if number < len(fields) and fields[number]:
                keep = _kept(name, number, components)
                fields[number] = self._field(fields[number], components, enc, keep)
        return enc.field.join(fields)

    def _field(
        self,
        field: str,
        components: set[int] | frozenset[int],
        enc: Encoding,
        keep: tuple[int, ...] = (),
    ) -> str:
        repetitions = []
        for repetition in field.split(enc.repetition):
            parts = repetition.split(enc.component)
            for c, part in enumerate(parts, 1):
                if (components and c not in components) or c in keep:
                    continue
                parts[c - 1] = enc.subcomponent.join(
                    self._leaf(sub, enc) for sub in part.split(enc.subcomponent)
                )
            repetitions.append(enc.component.join(parts))
        return enc.repetition.join(repetitions)

    def _leaf(self, leaf: str, enc: Encoding) -> str:
        # HL7's explicit null ("") carries no identity; keep it so "delete" semantics survive.
        if not leaf or leaf == '""':
            return leaf
        value = unescape(leaf, enc) if enc.escape in leaf else leaf
        value = value.strip()
        return self.pseudonymize(value) if value else leaf
