"""The HL7 mapping of slas.yaml as ClickHouse SQL: raw messages in, ``events`` rows out (pure).

``collector.hl7_native`` loads raw messages into the engine and runs these
statements over them; this module only writes the SQL. The statements compute
what ``CompiledExtractor`` computes (the reference: it stays the ingest path and
the fallback), value for value: the same segment/field/repetition/component
reads, PHI fields pseudonymized leaf by leaf with the same keyed HMAC (the pads
travel as query parameters, never stored), MSH-7/EVN times in the facility's
time zone, the same event ids.

Each row also gets ``ok``: 1 only when the SQL is certain to equal the
reference. Everything else goes to the Python path, which also writes every
dead letter: other delimiters, escape sequences in a field it reads, bytes that
are not UTF-8, unusual white space, malformed segments, a message without
MSH-10, every rejection (no facility, no usable event time), times outside
1971-2105 or within a day of a daylight-saving change of the facility's zone,
amounts that are not plain decimals with at most two places, non-ASCII text
where Python's case or digit rules would differ from the engine's.

A configuration the SQL does not cover at all (``store_message: true``, paths
into MSH-1/MSH-2, attribute names the extractor sets itself) gives
``unsupported``; then every message takes the Python path.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

from collector.hl7.extract import Hl7Extractor
from collector.hl7.message import FieldPath
from collector.hl7.phi import _CX_CODES, _CX_FIELDS
from stitchboard.events import STATUS_ERROR, STATUS_OK, STATUS_UNSET
from stitchboard.phi import PREFIX as PHI_PREFIX

_STATUSES = (STATUS_OK, STATUS_ERROR, STATUS_UNSET)
_DTM = r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,6}))?([+-]\d{4})?$"
_AMOUNT = r"^[+-]?[0-9]{1,15}(\.[0-9]{1,2})?$"
# Python's str.strip() removes these too; the SQL trims only space and tab, so a message
# holding any of them takes the Python path (C0 controls, NEL, NBSP, the Unicode spaces).
_ODD_SPACE = (
    r"[\x0b\x0c\x1c-\x1f"
    "\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
)
_SEGMENT = r"^[A-Z][A-Z0-9]{2}(\||$)"
# Times outside these years take the Python path (DateTime's range, with a day to spare).
_FIRST_YEAR, _LAST_YEAR = 1971, 2105


def q(text: str) -> str:
    """A ClickHouse string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _strings(values: Sequence[str]) -> str:
    return "CAST([" + ", ".join(q(v) for v in values) + "], 'Array(String)')"


def _trim(expr: str) -> str:
    return f"trimBoth({expr}, ' \\t')"


def _ascii(expr: str) -> str:
    return f"(lengthUTF8({expr}) = length({expr}))"


# Planning settings for both statements: merging the expression steps of the nested levels
# (one per level of named values) makes planning slow and evaluation memory-hungry.
SETTINGS = {"query_plan_enable_optimizations": 0, "query_plan_merge_expressions": 0}


class Hl7Statements(NamedTuple):
    """``parse``: a SELECT of ``LANDING_COLUMNS`` from the messages in the files
    ``{path_0}`` … ``{path_<inputs - 1>}`` (RowBinary, ``idx UInt32, raw String``; read as
    streams, so they may be pipes): one row per event, ``ok`` 1 when the SQL is sure of
    it, and one row with ``ok`` 0 for a message it is not sure of as a whole. A message
    with any row ``ok`` 0 is left to Python, all of it.
    Parameters: ``path_<n>``, ``source``, ``now`` (ns), ``ipad``, ``opad``."""

    parse: str


# The events columns after the message index and the routing flag.
LANDING_COLUMNS = """idx UInt32, ok UInt8, event_id String, event_time DateTime64(9, 'UTC'),
observed_time DateTime64(9, 'UTC'), source_kind String, source String, facility String,
system String, operation String, status String, status_message String, duration_ns UInt64,
amount Nullable(Decimal(18, 2)), trace_id String, span_id String, keys Map(String, String),
attributes Map(String, String), sent_time DateTime64(9, 'UTC')"""


def unsupported(extractor: Hl7Extractor) -> str:
    """Why this mapping cannot run in SQL at all ("" when it can)."""
    if extractor.store_message:
        return "store_message is on (the SQL does not rebuild the masked message)"
    paths = [
        *extractor.event_time,
        *extractor.sent_time,
        *extractor.facility,
        *extractor.system,
        *extractor.operation,
        *extractor.status,
        *extractor.status_message,
        *extractor.amount,
        *(p for _, ps in extractor.keys.items() for p in ps),
        *extractor.attributes.values(),
    ]
    for path in paths:
        if path.segment == "MSH" and path.field <= 2:
            return f"{path} reads a delimiter field"
    reserved = {"hl7.version", f"hl7.{(extractor.repeat or '').lower()}_set_id"}
    clash = reserved.intersection(extractor.attributes)
    if clash:
        return f"attribute {sorted(clash)[0]} is also set by the extractor"
    return ""


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MSG_BASE = ("idx", "raw", "segs", "names", "flds", "msh")
_LINE_BASE = ("o", "ordinal", "line")


class _Names:
    """Named expressions of one scope, each at the level above the names it uses."""

    def __init__(self, prefix: str, base: Sequence[str]):
        self.prefix = prefix
        self.level: dict[str, int] = dict.fromkeys(base, 0)
        self.by_expr: dict[str, str] = {}
        self.items: list[tuple[str, str, int]] = []  # alias, expr, level

    def add(self, expr: str, alias: str | None = None) -> str:
        known = self.by_expr.get(expr)
        if known is not None and alias is None:
            return known
        alias = alias or f"{self.prefix}{len(self.items)}"
        uses = [self.level[n] for n in _IDENTIFIER.findall(expr) if n in self.level]
        level = 1 + max(uses, default=0)
        self.level[alias] = level
        self.by_expr.setdefault(expr, alias)
        self.items.append((alias, expr, level))
        return alias

    def wrap(self, base: str) -> str:
        """``base`` (a SELECT) inside one SELECT per level, each adding that level's names."""
        sql = base
        for level in range(1, max((lv for *_, lv in self.items), default=0) + 1):
            columns = ", ".join(f"{e} AS {a}" for a, e, lv in self.items if lv == level)
            if columns:
                sql = f"SELECT *, {columns} FROM ({sql})"
        return sql


class _Builder:
    """SQL expressions over the columns ``names`` (segment names), ``flds`` (each segment's
    fields) and ``msh`` (MSH's fields, numbered as the standard), all 1-based."""

    def __init__(self, extractor: Hl7Extractor):
        self.x = extractor
        self.repeat = extractor.repeat
        # Named subexpressions, per query level: "msg" is evaluated once per message, "line"
        # once per event (after ARRAY JOIN). Each becomes a column of a nested SELECT one
        # level above the names it uses, so a value read by several rules is computed and
        # written once (aliases would be expanded into every use by the analyzer).
        self.names: dict[str, _Names] = {
            "msg": _Names("__m", _MSG_BASE),
            "line": _Names("__l", _LINE_BASE),
        }
        # Every field a value is read from ("line": of the repeated segment's occurrence).
        self.fields: dict[str, dict[str, None]] = {"msg": {}, "line": {}}
        # The facilities' time zones other than UTC (UTC needs no lookup).
        self.zone_names = sorted({str(z) for z in extractor.zones.values()} - {"UTC"})

    def unescaped(self, scope: str) -> str:
        """True when no field read in ``scope`` holds the escape character."""
        checks = [f"position({f}, '\\\\') = 0" for f in self.fields[scope]]
        return " AND ".join(checks) if checks else "1"

    def name(self, expr: str, scope: str, alias: str | None = None) -> str:
        return self.names[scope].add(expr, alias)

    def scope(self, paths: Sequence[FieldPath], occurrence: str | None) -> str:
        """Where values of ``paths`` are computed: per event if they read the occurrence."""
        if occurrence is not None and any(p.segment == self.repeat for p in paths):
            return "line"
        return "msg"

    # -- PHI, as collector.hl7.phi.Masker ---------------------------------------------------

    def hmac(self, value: str) -> str:
        inner = f"SHA256(concat(unhex({{ipad:String}}), {value}))"
        digest = f"lower(hex(SHA256(concat(unhex({{opad:String}}), {inner}))))"
        return f"concat({q(PHI_PREFIX)}, substring({digest}, 1, 32))"

    def pseudonym(self, value: str) -> str:
        """``Pseudonymizer.__call__`` of an already trimmed value."""
        return (
            f"if({value} = '' OR startsWith({value}, {q(PHI_PREFIX)}), {value}, {self.hmac(value)})"
        )

    def leaf(self, x: str) -> str:
        """``Masker._leaf``."""
        t = _trim(x)
        return f"if({t} = '' OR {x} = '\"\"', {x}, {self.pseudonym(t)})"

    def component_mask(self, x: str) -> str:
        return f"arrayStringConcat(arrayMap(_x -> {self.leaf('_x')}, splitByChar('&', {x})), '&')"

    def targets(self, path: FieldPath) -> tuple[frozenset[int], bool] | None:
        """The components of ``path``'s field that are masked (empty: all), and whether the
        field keeps its identifier codes (CX components 3-6); None if not a PHI field."""
        if path.segment == "MSH":
            return None
        components = self.x.masker.targets.get(path.segment, {}).get(path.field)
        if components is None:
            return None
        keep = not components and (path.segment, path.field) in _CX_FIELDS
        return frozenset(components), keep

    def masked(self, path: FieldPath, component: int) -> bool:
        targets = self.targets(path)
        if targets is None:
            return False
        components, keep = targets
        if keep and component in _CX_CODES:
            return False
        return not components or component in components

    def repetition_mask(self, path: FieldPath, x: str) -> str:
        targets = self.targets(path)
        if targets is None:
            return x
        components, keep = targets
        if components:
            cond = f"has([{', '.join(str(c) for c in sorted(components))}], _i)"
        elif keep:
            cond = f"NOT has([{', '.join(str(c) for c in _CX_CODES)}], _i)"
        else:
            cond = "1"
        parts = f"splitByChar('^', {x})"
        return (
            f"arrayStringConcat(arrayMap((_c, _i) -> if({cond}, {self.component_mask('_c')}, _c),"
            f" {parts}, arrayEnumerate({parts})), '^')"
        )

    # -- values, as CompiledExtractor's _Segments.value -------------------------------------

    def field(self, path: FieldPath, occurrence: str | None) -> str:
        if path.segment == "MSH":
            return f"msh[{path.field}]"
        index = (
            None
            if occurrence is not None and path.segment == self.repeat
            else f"indexOf(names, {q(path.segment)})"
        )
        if index is None:  # the occurrence's fields, after ARRAY JOIN: column ``line``
            return f"line[{path.field + (0 if path.segment == 'MSH' else 1)}]"
        return f"flds[{index}][{path.field + 1}]"

    def value(self, path: FieldPath, occurrence: str | None = None) -> str:
        """The trimmed, masked value at ``path``; ``occurrence``: the repeated segment's index."""
        return self.name(self._value(path, occurrence), self.scope([path], occurrence))

    def _value(self, path: FieldPath, occurrence: str | None) -> str:
        # Remember the field: an escape sequence in any field read sends the message to Python.
        if occurrence is not None and path.segment == self.repeat:
            self.fields["line"][self.field(path, occurrence)] = None
        else:
            self.fields["msg"][self.field(path, None)] = None
        text = self.field(path, occurrence)
        if path.identifier_type:
            comp5 = "splitByChar('^', _r)[5]"
            if self.masked(path, 5):
                comp5 = self.component_mask(comp5)
            wanted = q(path.identifier_type.upper())
            text = f"arrayFirst(_r -> upper({_trim(comp5)}) = {wanted}, splitByChar('~', {text}))"
        elif path.repetition != 1:
            text = f"splitByChar('~', {text})[{path.repetition}]"
        else:
            text = f"splitByChar('~', {text})[1]"
        if not path.component:
            return _trim(self.repetition_mask(path, text))
        value = f"splitByChar('^', {text})[{path.component}]"
        if path.subcomponent:
            value = f"splitByChar('&', {value})[{path.subcomponent}]"
            if self.masked(path, path.component):
                value = self.leaf(value)
        elif self.masked(path, path.component):
            value = self.component_mask(value)
        return _trim(value)

    def first(self, paths: Sequence[FieldPath], occurrence: str | None = None) -> str:
        """``_Segments.first_value``: the first value present and not the explicit null."""
        if not paths:
            return "''"
        branches = []
        for path in paths:
            v = self.value(path, occurrence)
            branches.append(f"{v} != '' AND {v} != '\"\"', {v}")
        return self.name(f"multiIf({', '.join(branches)}, '')", self.scope(paths, occurrence))

    def ascii_guard(self, paths: Sequence[FieldPath], occurrence: str | None = None) -> str:
        """True when the fields behind identifier-type reads are ASCII (Python upper() maps
        some non-ASCII letters to ASCII ones; the engine's upper() does not)."""
        checks = [_ascii(self.field(p, occurrence)) for p in paths if p.identifier_type]
        return " AND ".join(checks) if checks else "1"

    # -- the message header -------------------------------------------------------------

    @staticmethod
    def header(number: int, component: int = 0) -> str:
        value = f"splitByChar('~', msh[{number}])[1]"
        if component:
            value = f"splitByChar('^', {value})[{component}]"
        return _trim(value)

    # -- times, as collector.hl7.dtm.parse_dtm -------------------------------------------------

    def time(self, value: str) -> str:
        """(state, ns) of one time value: state 0 empty or unreadable (the reference skips
        it), 1 read, 2 only Python can tell (the message takes the Python path)."""
        m = lambda expr: self.name(expr, "msg")  # noqa: E731
        t = m(_trim(f"splitByChar('^', {value})[1]"))
        g = m(f"extractGroups({t}, {q(_DTM)})")

        def num(i: int, default: int) -> str:
            return m(f"if({g}[{i}] = '', {default}, toInt64OrZero({g}[{i}]))")

        y, mo, d = num(1, 0), num(2, 1), num(3, 1)
        h, mi, s = num(4, 0), num(5, 0), num(6, 0)
        leap = f"(({y} % 4 = 0 AND {y} % 100 != 0) OR {y} % 400 = 0)"
        days_in_month = f"[31, if({leap}, 29, 28), 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][{mo}]"
        offset = m(f"{g}[8]")
        off_h = m(f"toInt64OrZero(substring({offset}, 2, 2))")
        off_m = m(f"toInt64OrZero(substring({offset}, 4, 2))")
        valid = m(
            f"{y} >= 1 AND {mo} BETWEEN 1 AND 12 AND {d} BETWEEN 1 AND {days_in_month}"
            f" AND {h} <= 23 AND {mi} <= 59 AND {s} <= 59"
            f" AND ({offset} = '' OR ({off_h} <= 14 AND {off_m} <= 59))"
        )
        # Days from the civil date (Howard Hinnant's algorithm), so no date function can throw.
        yy = f"({y} - if({mo} <= 2, 1, 0))"
        era = f"intDiv({yy}, 400)"
        yoe = f"({yy} - {era} * 400)"
        doy = f"(intDiv(153 * ({mo} + if({mo} > 2, -3, 9)) + 2, 5) + {d} - 1)"
        doe = f"({yoe} * 365 + intDiv({yoe}, 4) - intDiv({yoe}, 100) + {doy})"
        local = m(f"(({era} * 146097 + {doe} - 719468) * 86400 + {h} * 3600 + {mi} * 60 + {s})")
        fraction = m(f"toInt64OrZero(rightPad({g}[7], 9, '0'))")
        sign = f"if(substring({offset}, 1, 1) = '-', -1, 1)"
        fixed = m(f"({local} - {sign} * ({off_h} * 3600 + {off_m} * 60))")

        # The facility's zone (column zone_ix: 0 UTC, else 1 + its place in self.zone_names):
        # one expression per zone, of which each row evaluates its own (short-circuit).
        def offset_at(instant: str) -> str:
            bounded = f"toUInt32(greatest(least({instant}, 4294880000), 86400))"
            branches = [
                f"zone_ix = {i}, timeZoneOffset(toDateTime({bounded}, {q(zone)}))"
                for i, zone in enumerate(self.zone_names, 1)
            ]
            return f"multiIf({', '.join(branches)}, 0)" if branches else "0"

        zoned = m(f"({local} - {offset_at(local)})")
        utc = m(f"if({offset} = '', {zoned}, {fixed})")
        # Within a day of a change the local time may be ambiguous or skipped: Python decides.
        changes = f"{offset_at(zoned + ' - 86400')} != {offset_at(zoned + ' + 86400')}"
        near_change = m(f"({offset} = '' AND zone_ix != 0 AND {changes})")
        return m(
            f"multiIf({value} = '', (0, 0), NOT {_ascii(value)}, (2, 0), empty({g}), (0, 0),"
            f" NOT {valid}, (0, 0), {y} NOT BETWEEN {_FIRST_YEAR} AND {_LAST_YEAR}, (2, 0),"
            f" {near_change}, (2, 0), (1, {utc} * 1000000000 + {fraction}))"
        )

    def times(self, paths: Sequence[FieldPath], default: str) -> str:
        """The first time that is not skipped: (state, ns); ``default`` when all are."""
        branches = []
        for path in paths:
            t = self.time(self.value(path))
            branches.append(f"{t}.1 != 0, {t}")
        return (
            self.name(f"multiIf({', '.join(branches)}, {default})", "msg") if branches else default
        )

    def zone_index(self) -> str:
        """The message's zone as a number (``zone_names``), from its facility (column)."""
        facilities = [f for f, zone in self.x.zones.items() if str(zone) in self.zone_names]
        numbers = [str(self.zone_names.index(str(self.x.zones[f])) + 1) for f in facilities]
        if not facilities:
            return "0"
        return f"transform(facility, {_strings(facilities)}, [{', '.join(numbers)}], 0)"


def _inputs(count: int) -> str:
    """The raw messages: one ``file()`` per input, each read by its own stream."""
    files = [
        f"SELECT idx, raw FROM file({{path_{n}:String}}, 'RowBinary', 'idx UInt32, raw String')"
        for n in range(count)
    ]
    return "(" + " UNION ALL ".join(files) + ")"


def statements(extractor: Hl7Extractor, inputs: int = 1) -> Hl7Statements:
    """The statements for this mapping (``unsupported`` must be ""), reading ``inputs`` files."""
    b = _Builder(extractor)
    x = extractor
    repeat = x.repeat

    # Facility: the first value naming a declared facility, else the first value as sent.
    values = [b.value(p) for p in x.facility]
    if x.facilities:
        names = list(x.facilities)
        canonical = [x.facilities[n] for n in names]
        known = _strings(names)
        branches = [
            f"has({known}, {v}), transform({v}, {known}, {_strings(canonical)}, '')" for v in values
        ]
        branches += [f"{v} != '', {v}" for v in values]
    else:
        branches = [f"{v} != '', {v}" for v in values]
    facility = f"multiIf({', '.join(branches)}, '')" if branches else "''"

    operations = []
    for path in x.operation:
        if path.component:
            operations.append(b.value(path))
        else:
            parts = [b.value(FieldPath(path.segment, path.field, c)) for c in (1, 2)]
            operations.append(
                f"arrayStringConcat(arrayFilter(_y -> _y != '', [{', '.join(parts)}]), '^')"
            )
    operation = (
        "multiIf(" + ", ".join(f"{o} != '', {o}" for o in operations) + ", '')"
        if operations
        else "''"
    )

    status_map = {k: (v if v in _STATUSES else STATUS_UNSET) for k, v in x.status_map.items()}
    default_status = x.default_status if x.default_status in _STATUSES else STATUS_UNSET
    codes = list(status_map)
    status = (
        f"if(status_code = '', {q(default_status)}, transform(upper(status_code),"
        f" {_strings(codes)}, {_strings([status_map[c] for c in codes])}, {q(STATUS_UNSET)}))"
    )

    def pairs(rules: Sequence[tuple[str, list[FieldPath]]], occurrence: str | None) -> str:
        items = []
        for name, paths in rules:
            value = b.first(paths, occurrence)
            if name in x.phi_keys:
                value = b.pseudonym(value)
            items.append(f"({q(name)}, {value})")
        return f"CAST([{', '.join(items)}], 'Array(Tuple(String, String))')"

    message_attrs = [(n, p) for n, p in x.attributes.items() if p.segment != repeat]
    line_attrs = [(n, p) for n, p in x.attributes.items() if p.segment == repeat]
    attrs = ["('hl7.version', version)"] + [f"({q(n)}, {b.value(p)})" for n, p in message_attrs]
    # The fields of each occurrence of the repeated segment (a lambda over two arrays
    # captures no column: a captured column would be copied for every element).
    occurrences = (
        f"arrayFilter((_f, _n) -> _n = {q(repeat)}, flds, names)"
        if repeat
        else "CAST([], 'Array(Array(String))')"
    )
    amount_paths = x.amount
    amount_text = lambda o: f"replaceAll({b.first(amount_paths, o)}, ',', '')"  # noqa: E731
    line_paths = [*(p for _, ps in x.line_keys for p in ps), *(p for _, p in line_attrs)]
    header_fields = [f"position(msh[{n}], '\\\\') = 0" for n in (3, 4, 7, 9, 10, 12)]
    message_guard_paths = [
        *x.facility,
        *x.event_time,
        *x.sent_time,
        *x.system,
        *x.operation,
        *x.status,
        *x.status_message,
        *(p for _, ps in x.message_keys for p in ps),
        *(p for _, p in message_attrs),
    ]

    line = lambda expr, alias: b.name(expr, "line", alias)  # noqa: E731
    set_id = b.value(FieldPath(repeat or "MSH", 1), "o") if repeat else "''"
    line(f"if(o = 0, '', if({set_id} != '', {set_id}, toString(ordinal)))", "part")
    line(pairs(x.line_keys, "o"), "line_keys")
    line("arrayFilter(_p -> _p.2 != '', arrayConcat(message_keys, line_keys))", "key_pairs")
    set_attr = f"hl7.{(repeat or '').lower()}_set_id"
    line_attr_items = [f"({q(n)}, {b.value(p, 'o')})" for n, p in line_attrs]
    line_attr_items.append(f"({q(set_attr)}, if(o = 0, '', part))")
    line(
        "arrayFilter(_p -> _p.2 != '', arrayConcat(message_attrs,"
        f" CAST([{', '.join(line_attr_items)}], 'Array(Tuple(String, String))')))",
        "attr_pairs",
    )
    amount_raw = b.first(amount_paths, "o")
    line(f"if({amount_raw} = '', NULL, toDecimal64OrNull({amount_text('o')}, 2))", "amount_value")
    # What only a line can tell: its amount, and escapes or non-ASCII identifier types in
    # the fields it reads (last: every line value must be built before).
    line(
        f"({amount_raw} = '' OR match({amount_text('o')}, {q(_AMOUNT)}))"
        f" AND {b.ascii_guard(line_paths, 'o')} AND {b.unescaped('line')}",
        "line_ok",
    )
    m = lambda expr, alias: b.name(expr, "msg", alias)  # noqa: E731
    m(_Builder.header(10), "control_id")
    m(facility, "facility")
    m(b.zone_index(), "zone_ix")
    m(b.times(x.event_time, "(0, 0)"), "event")
    m(b.times(x.sent_time, "(1, 0)"), "sent")
    m(b.first(x.status), "status_code")
    m(occurrences, "lines")
    m("length(lines)", "line_count")
    m(b.first(x.system), "system")
    m(operation, "operation")
    m(status, "status")
    m(f"if(status = {q(STATUS_ERROR)}, {b.first(x.status_message)}, '')", "status_message")
    m(_Builder.header(12, 1), "version")
    m(
        "concat('hl7\\x1f', "
        f"{_Builder.header(3)}, '\\x1f', {_Builder.header(4)}, '\\x1f', control_id, '|',"
        f" {_Builder.header(7)}, '|', {_Builder.header(9)}, '\\x1f')",
        "id_prefix",
    )
    m(pairs(x.message_keys, None), "message_keys")
    m(f"CAST([{', '.join(attrs)}], 'Array(Tuple(String, String))')", "message_attrs")
    m(
        "isValidUTF8(raw) AND startsWith(raw, 'MSH|^~\\\\&|')"
        f" AND {' AND '.join(header_fields)} AND {b.unescaped('msg')}"
        f" AND NOT match(raw, {q(_ODD_SPACE)})"
        f" AND arrayAll(_s -> match(_s, {q(_SEGMENT)}), segs)"
        " AND control_id != '' AND facility != '' AND event.1 = 1 AND sent.1 = 1"
        f" AND {_ascii('status_code')} AND {b.ascii_guard(message_guard_paths)}",
        "ok",
    )
    inner = b.names["msg"].wrap(
        "SELECT idx, raw,"
        " arrayFilter(_s -> _s != '', splitByRegexp('\\r\\n|\\r|\\n', raw)) AS segs,"
        " arrayMap(_s -> substring(_s, 1, 3), segs) AS names,"
        " arrayMap(_s -> splitByChar('|', _s), segs) AS flds, flds[1] AS msh"
        f" FROM {_inputs(inputs)}"
    )

    joined = "if(ok AND line_count > 0, lines, [CAST([], 'Array(String)')])"
    events = b.names["line"].wrap(
        # One row per event of a message the SQL takes, one (ok 0) per message it leaves;
        # the message's own text and fields stay behind (ARRAY JOIN would copy them per row).
        # Not WHERE ok: a filter over this many nested levels costs the analyzer seconds.
        f"SELECT * EXCEPT (raw, segs, names, flds, msh, lines), line, ordinal,"
        f" if(line_count = 0, 0, ordinal) AS o FROM ({inner})"
        f" ARRAY JOIN {joined} AS line, arrayEnumerate({joined}) AS ordinal"
    )
    parse = (
        "SELECT idx, ok AND line_ok, lower(hex(MD5(concat(id_prefix, part)))),"
        " fromUnixTimestamp64Nano(event.2, 'UTC'), fromUnixTimestamp64Nano({now:Int64}, 'UTC'),"
        " 'hl7', {source:String}, facility, system, operation, status, status_message, 0,"
        " amount_value, '', '',"
        " mapFromArrays(arrayMap(_p -> _p.1, key_pairs), arrayMap(_p -> _p.2, key_pairs)),"
        " mapFromArrays(arrayMap(_p -> _p.1, attr_pairs), arrayMap(_p -> _p.2, attr_pairs)),"
        " fromUnixTimestamp64Nano(if(sent.2 != 0, sent.2, event.2), 'UTC')"
        f" FROM ({events})"
    )
    return Hl7Statements(parse)
