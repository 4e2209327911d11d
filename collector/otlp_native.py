"""OTLP trace requests decoded by the ClickHouse engine itself (embedded store).

The Python decoder (``collector.otlp``) is the reference and handles every
request; for the common case this module lets ClickHouse do the same work in
C++: the writer hands it the raw protobuf bodies of many requests, it writes
them length-delimited to one file, and one ``INSERT … SELECT`` reads that file
with the ``Protobuf`` format (``OTLP_TRACE_PROTO``, a subset of the OTLP schema)
into a Null table whose two materialized views (generated from slas.yaml at
startup) write exactly the ``otel_traces`` and ``events`` rows the Python
decoder would.

A request takes this path only when ``eligible`` says so: every span valid,
facility and amount attributes resolvable, and only scalar attribute values.
Anything else (rejections, arrays and maps as values, amounts with more than
two decimals) goes through the Python decoder, which dead-letters what it must.
``quick_spans`` answers the common case from the body itself, without the full
parse and the walk over every attribute that ``eligible`` needs (see there).
``tests/store/test_otlp_native.py`` checks that both paths write the same rows.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import FileDescriptor
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.normalize import Normalizer
from collector.rowbinary import varint
from stitchboard.config import SlasConfig
from stitchboard.phi import ASCII_SPACE, Pseudonymizer
from stitchboard.phi import PREFIX as PHI_PREFIX

log = logging.getLogger(__name__)

NATIVE_KIND = "otlp.traces.protobuf"

# The fields of opentelemetry/proto/collector/trace/v1/trace_service.proto (and the
# messages it uses) that Stitchboard reads, with their OTLP field numbers. Fields not
# listed are skipped by the decoder, as protobuf allows.
OTLP_TRACE_PROTO = """\
syntax = "proto3";
package stitchboard.otlp;
message AnyValue {
  oneof value {
    string string_value = 1; bool bool_value = 2; int64 int_value = 3;
    double double_value = 4; bytes bytes_value = 7;
  }
}
message KeyValue { string key = 1; AnyValue value = 2; }
message Resource { repeated KeyValue attributes = 1; }
message InstrumentationScope { string name = 1; string version = 2; }
message Status { string message = 2; int32 code = 3; }
message Event { fixed64 time_unix_nano = 1; string name = 2; repeated KeyValue attributes = 3; }
message Link { bytes trace_id = 1; bytes span_id = 2; string trace_state = 3;
               repeated KeyValue attributes = 4; }
message Span {
  bytes trace_id = 1; bytes span_id = 2; string trace_state = 3; bytes parent_span_id = 4;
  string name = 5; int32 kind = 6; fixed64 start_time_unix_nano = 7;
  fixed64 end_time_unix_nano = 8; repeated KeyValue attributes = 9;
  repeated Event events = 11; repeated Link links = 13; Status status = 15;
}
message ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
"""

_KV = (
    "Array(Tuple(key String, value Tuple(string_value String, bool_value Bool,"
    " int_value Int64, double_value Float64, bytes_value String,"
    " value Enum8('none' = 0, 'string_value' = 1, 'bool_value' = 2, 'int_value' = 3,"
    " 'double_value' = 4, 'bytes_value' = 7))))"
)
STRUCTURE = (
    f"resource_spans Array(Tuple(resource Tuple(attributes {_KV}),"
    " scope_spans Array(Tuple(scope Tuple(name String, version String),"
    " spans Array(Tuple(trace_id String, span_id String, trace_state String,"
    f" parent_span_id String, name String, kind Int32, start_time_unix_nano UInt64,"
    f" end_time_unix_nano UInt64, attributes {_KV},"
    f" events Array(Tuple(time_unix_nano UInt64, name String, attributes {_KV})),"
    f" links Array(Tuple(trace_id String, span_id String, trace_state String,"
    f" attributes {_KV})),"
    " status Tuple(message String, code Int32)))))))"
)

_AMOUNT = re.compile(r"^-?\d{1,15}(\.\d{1,2})?$")
_NON_SCALAR = frozenset({"array_value", "kvlist_value"})
_ZERO_TRACE, _ZERO_SPAN = bytes(16), bytes(8)  # invalid ids (the spec: all zeros)


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _array(values: Sequence[str]) -> str:
    return "[" + ", ".join(_quote(v) for v in values) + "]"


class NativeTraces:
    """Eligibility check plus the SQL that turns raw OTLP trace requests into rows."""

    LANDING = "_otlp_span_landing"
    TRACES_VIEW = "_otlp_span_landing_to_otel_traces"
    EVENTS_VIEW = "_otlp_span_landing_to_events"

    def __init__(self, config: SlasConfig, normalizer: Normalizer, database: str):
        self.config = config
        self.norm = normalizer
        self.database = database
        self._amount_keys = _amount_keys(config)
        self._amount_pattern = _amount_pattern(self._amount_keys)
        pseudonymize = normalizer.pseudonymize
        if not isinstance(pseudonymize, Pseudonymizer):
            raise TypeError("the engine-side decoder needs a keyed Pseudonymizer (its HMAC pads)")
        self.ipad, self.opad = pseudonymize.hmac_pads()
        self._landing = f"`{database}`.`{self.LANDING}`"
        self._prepared = False
        self._schema_dir = Path(tempfile.mkdtemp(prefix="stitchboard-otlp-schema-"))
        # The schema and batch files live only as long as this decoder.
        weakref.finalize(self, shutil.rmtree, self._schema_dir, True)
        (self._schema_dir / "otlp_trace.proto").write_text(OTLP_TRACE_PROTO)
        self._sql = self._build_sql()
        self._lock = threading.Lock()

    def reconfigure(self, config: SlasConfig, normalizer: Normalizer) -> None:
        """A reloaded slas.yaml: new statements; the views are recreated before the next
        insert (under the insert lock, so no insert runs against half of them)."""
        with self._lock:
            self.config, self.norm = config, normalizer
            self._amount_keys = _amount_keys(config)
            self._amount_pattern = _amount_pattern(self._amount_keys)
            self._sql = self._build_sql()
            self._prepared = False

    # -- which requests may take this path ------------------------------------------------

    def eligible(self, request: ExportTraceServiceRequest) -> bool:
        """Whether the engine writes exactly what the Python decoder would for every span.

        It runs for every request on the acceptance path, so it reads each attribute once
        (a span's attributes are most of the work: about 6 µs a span of ten)."""
        amounts = self.config.otel.amount_attributes
        amount_names = frozenset(amounts)
        for rs in request.resource_spans:
            if not _scalar(rs.resource.attributes):
                return False
            for ss in rs.scope_spans:
                for span in ss.spans:
                    if not _valid(span):
                        return False
                    found: dict[str, str] | None = None  # amount attributes sent as text
                    for kv in span.attributes:
                        value = kv.value
                        text = value.string_value
                        if text:
                            if kv.key in amount_names:
                                found = found or {}
                                found[kv.key] = text
                        elif not _scalar_value(value):
                            return False
                    if found:  # the first amount attribute slas.yaml names that is set
                        raw = next(found[name] for name in amounts if name in found)
                        if not _AMOUNT.match(raw):
                            return False
                    if span.events and not all(_scalar(ev.attributes) for ev in span.events):
                        return False
                    if span.links and not all(_scalar(ln.attributes) for ln in span.links):
                        return False
        return True

    def quick_spans(self, body: bytes) -> int | None:
        """The number of spans of a protobuf request body that ``eligible`` would take, or
        None: then parse it in full and ask ``eligible``.

        ``eligible`` walks every attribute of the parsed request in Python (about 7.5 µs a
        span of twelve). This reads the body with the OTLP schema in which an attribute
        value can only be a string, bool, int or bytes (``_quick_request_type``), drops
        what that schema does not know (doubles, arrays, maps, fields newer than the
        schema) and asks for the same bytes back. Equal bytes mean none of that was there,
        and that the body is in canonical form: each key, then its value, in field order,
        so the amount attributes can be read off the bytes (``_plain_amounts``). What is
        left in Python is each span's ids and start time.
        """
        quick = _quick_request_type()
        if quick is None:
            return None
        try:
            request = quick.FromString(body)
        except DecodeError:
            return None  # the full parse says why
        request.DiscardUnknownFields()
        if request.SerializeToString() != body:
            return None
        spans = 0
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                if not all(_valid(span) for span in ss.spans):
                    return None
                spans += len(ss.spans)
        return spans if self._plain_amounts(body) else None

    def _plain_amounts(self, body: bytes) -> bool:
        """Every amount attribute of a canonical body is text ``eligible`` accepts.

        In canonical form an attribute is ``0x0A <len> key 0x12 <len> AnyValue`` and a
        text value ``0x0A <len> text``, so every amount attribute is at a place where its
        key's bytes occur. Each such place must read as an empty value or as text of the
        form ``eligible`` accepts, of exactly the length given before it. Where the bytes
        occur by chance (inside some other text) and do not read so, the request only
        goes to ``eligible``. With several amount attributes configured the first one set
        decides, which only ``eligible`` can tell: it is asked whenever one occurs.
        """
        keys = self._amount_keys
        if len(keys) != 1:
            return not any(key in body for key in keys)
        key, pattern = keys[0], self._amount_pattern
        found = pattern.findall(body)
        if len(found) != body.count(key):
            return False
        return all(
            not size or (size[0] == length[0] + 2 and length[0] == len(text))
            for size, length, text in found
        )

    # -- the SQL ---------------------------------------------------------------------------

    def _build_sql(self) -> tuple[str, str, str]:
        norm = self.norm
        otel = self.config.otel
        phi = _array(sorted(norm.phi_attributes))

        def rendered(kvs: str) -> str:
            """KeyValue array → Map with exporter-style strings, PHI pseudonymized."""
            render = (
                "multiIf(kv.value.value = 'string_value', kv.value.string_value,"
                " kv.value.value = 'int_value', toString(kv.value.int_value),"
                " kv.value.value = 'bool_value', if(kv.value.bool_value, 'true', 'false'),"
                " kv.value.value = 'double_value', toString(kv.value.double_value),"
                " kv.value.value = 'bytes_value', base64Encode(kv.value.bytes_value), '')"
            )
            pseudo = (
                f"concat({_quote(PHI_PREFIX)}, substring(lower(hex(SHA256(concat("
                "unhex({opad:String}), SHA256(concat(unhex({ipad:String}),"
                f" trimBoth(p.2, {_quote(ASCII_SPACE)}))))))), 1, 32))"
            )
            pairs = f"arrayMap(kv -> (kv.key, {render}), {kvs})"
            masked = (
                f"arrayMap(p -> if(has({phi}, p.1) AND p.2 != ''"
                f" AND NOT startsWith(p.2, {_quote(PHI_PREFIX)}), {pseudo}, p.2), {pairs})"
            )
            return f"mapFromArrays(arrayMap(p -> p.1, {pairs}), {masked})"

        def first(names: Sequence[str], *maps: str, default: str = "''") -> str:
            """The first non-empty attribute, all names on one map before the next map."""
            branches = [f"{m}[{_quote(n)}] != '', {m}[{_quote(n)}]" for m in maps for n in names]
            return f"multiIf({', '.join(branches)}, {default})" if branches else default

        by_key: dict[str, list[tuple[int, str]]] = {}
        for attribute, (key, rank) in norm._key_attrs.items():
            by_key.setdefault(key, []).append((rank, attribute))
        key_pairs = []
        for key in self.config.keys:
            attrs = [a for _, a in sorted(by_key.get(key, []))]
            if attrs:
                key_pairs.append(f"{_quote(key)}, {first(attrs, 'sa', 'ra')}")
        key_pairs.append("'trace', trace_hex")
        keys = f"mapFilter((k, v) -> v != '', map({', '.join(key_pairs)}))"

        facility = first(otel.facility_attributes, "sa", "ra")
        index = self.config.facility_index()
        if index:
            names = list(index)
            # An undeclared facility keeps the name it was sent with (as collector.normalize).
            facility = (
                f"transform({facility}, {_array(names)}, {_array([index[n] for n in names])},"
                f" {facility})"
            )
        system = first(otel.system_attributes, "sa", "ra")
        operation = first(otel.operation_attributes, "sa", default="name")
        amount_raw = first(otel.amount_attributes, "sa")
        amount = f"if(({amount_raw}) = '', NULL, toDecimal64OrNull({amount_raw}, 2))"

        # The statement flattens the request into one row per span, with the attribute
        # maps rendered and PHI pseudonymized (the HMAC pads travel as parameters, never
        # stored), into a Null table; two materialized views built from slas.yaml turn
        # each flat row into the otel_traces row and the events row.
        insert = (
            f"INSERT INTO {self._landing} SELECT"
            f" {rendered('rs.resource.attributes')} AS ra, {rendered('sp.attributes')} AS sa,"
            " lower(hex(sp.trace_id)) AS trace_hex, lower(hex(sp.span_id)) AS span_hex,"
            " lower(hex(sp.parent_span_id)) AS parent_hex, sp.trace_state AS trace_state,"
            " sp.name AS name, sp.kind AS kind, sp.start_time_unix_nano AS start_ns,"
            " sp.end_time_unix_nano AS end_ns, sp.status.message AS status_message,"
            " if(sp.status.code BETWEEN 0 AND 2, sp.status.code, 0) AS code,"
            " ss.scope.name AS scope_name, ss.scope.version AS scope_version,"
            " arrayMap(e -> e.time_unix_nano, sp.events) AS ev_time,"
            " arrayMap(e -> e.name, sp.events) AS ev_name,"
            f" arrayMap(e -> {rendered('e.attributes')}, sp.events) AS ev_attrs,"
            " arrayMap(l -> lower(hex(l.trace_id)), sp.links) AS ln_trace,"
            " arrayMap(l -> lower(hex(l.span_id)), sp.links) AS ln_span,"
            " arrayMap(l -> l.trace_state, sp.links) AS ln_state,"
            f" arrayMap(l -> {rendered('l.attributes')}, sp.links) AS ln_attrs,"
            " {now:Int64} AS observed, {stamp:Int64} AS stamp"
            " FROM file({path:String}, 'Protobuf', {structure:String})"
            " ARRAY JOIN resource_spans AS rs ARRAY JOIN rs.scope_spans AS ss"
            " ARRAY JOIN ss.spans AS sp"
        )
        db = f"`{self.database}`"
        traces = (
            f"CREATE MATERIALIZED VIEW {db}.`{self.TRACES_VIEW}` TO {db}.`otel_traces` AS"
            " SELECT fromUnixTimestamp64Nano(toInt64(start_ns)) AS Timestamp,"
            " trace_hex AS TraceId, span_hex AS SpanId, parent_hex AS ParentSpanId,"
            " trace_state AS TraceState, name AS SpanName,"
            " if(kind BETWEEN 0 AND 5, ['Unspecified', 'Internal', 'Server', 'Client',"
            " 'Producer', 'Consumer'][kind + 1], 'Unspecified') AS SpanKind,"
            " ra['service.name'] AS ServiceName, ra AS ResourceAttributes,"
            " scope_name AS ScopeName, scope_version AS ScopeVersion, sa AS SpanAttributes,"
            " if(end_ns > start_ns, end_ns - start_ns, 0) AS Duration,"
            " ['Unset', 'Ok', 'Error'][code + 1] AS StatusCode,"
            " status_message AS StatusMessage,"
            " arrayMap(t -> fromUnixTimestamp64Nano(toInt64(t)), ev_time) AS `Events.Timestamp`,"
            " ev_name AS `Events.Name`, ev_attrs AS `Events.Attributes`,"
            " ln_trace AS `Links.TraceId`, ln_span AS `Links.SpanId`,"
            " ln_state AS `Links.TraceState`, ln_attrs AS `Links.Attributes`"
            f" FROM {self._landing}"
        )
        events = (
            f"CREATE MATERIALIZED VIEW {db}.`{self.EVENTS_VIEW}` TO {db}.`events` AS"
            " SELECT lower(hex(MD5(concat('span\\x1f', trace_hex, '\\x1f', span_hex))))"
            " AS event_id,"
            " fromUnixTimestamp64Nano(toInt64(if(end_ns != 0, end_ns, start_ns)), 'UTC')"
            " AS event_time, fromUnixTimestamp64Nano(observed, 'UTC') AS observed_time,"
            " 'span' AS source_kind, ra['service.name'] AS source,"
            f" {facility} AS facility, {system} AS system, {operation} AS operation,"
            " ['unset', 'ok', 'error'][code + 1] AS status, status_message,"
            " if(end_ns > start_ns, end_ns - start_ns, 0) AS duration_ns,"
            f" {amount} AS amount, trace_hex AS trace_id, span_hex AS span_id,"
            f" {keys} AS keys, sa AS attributes,"
            # A span's send time is its clock time, the end (as collector.otlp).
            " fromUnixTimestamp64Nano(toInt64(if(end_ns != 0, end_ns, start_ns)), 'UTC')"
            " AS sent_time,"
            f" fromUnixTimestamp64Micro(stamp, 'UTC') AS inserted_at FROM {self._landing}"
        )
        return insert, traces, events

    def prepare(self, store) -> None:
        """(Re)create the landing table and the views for the current slas.yaml."""
        db = f"`{self.database}`"
        store.command(
            f"CREATE TABLE IF NOT EXISTS {self._landing} (ra Map(String, String),"
            " sa Map(String, String), trace_hex String, span_hex String, parent_hex String,"
            " trace_state String, name String, kind Int32, start_ns UInt64, end_ns UInt64,"
            " status_message String, code Int32, scope_name String, scope_version String,"
            " ev_time Array(UInt64), ev_name Array(String), ev_attrs Array(Map(String, String)),"
            " ln_trace Array(String), ln_span Array(String), ln_state Array(String),"
            " ln_attrs Array(Map(String, String)), observed Int64, stamp Int64) ENGINE = Null"
        )
        for view, sql in ((self.TRACES_VIEW, self._sql[1]), (self.EVENTS_VIEW, self._sql[2])):
            store.command(f"DROP VIEW IF EXISTS {db}.`{view}`")
            store.command(sql)
        self._prepared = True

    def settings(self) -> dict[str, str]:
        return {
            "format_schema": f"{self._schema_dir / 'otlp_trace.proto'}:ExportTraceServiceRequest",
            "input_format_protobuf_oneof_presence": "1",
        }

    def insert(self, store, payloads: Sequence[bytes], stamp: int, now: int | None = None) -> None:
        """Insert the rows of these request bodies.

        ``stamp`` (microseconds) becomes the events' ``inserted_at``, so a reader can
        fetch exactly the events of this insert.
        """
        fd, path = tempfile.mkstemp(prefix="otlp-", suffix=".pb", dir=self._schema_dir)
        try:
            with os.fdopen(fd, "wb") as out:
                for body in payloads:
                    out.write(varint(len(body)))
                    out.write(body)
            params = {
                "path": path,
                "structure": STRUCTURE,
                "ipad": self.ipad,
                "opad": self.opad,
                "now": now or time.time_ns(),
                "stamp": stamp,
            }
            with self._lock:
                if not self._prepared:
                    self.prepare(store)
                store.command(self._sql[0], parameters=params, settings=self.settings())
        finally:
            os.unlink(path)


@functools.cache
def _quick_request_type() -> type[ExportTraceServiceRequest] | None:
    """``ExportTraceServiceRequest`` as the installed OTLP schema has it, in a pool of its
    own, except that ``AnyValue`` has no double, array or map value: those parse as
    unknown fields. (Doubles in the range both decoders format alike are fine, but only
    ``eligible`` looks at the value.) None if the schema cannot be copied: then every
    request takes the full check."""
    files: list[FileDescriptor] = []

    def add(file: FileDescriptor) -> None:  # dependencies first, each file once
        if file not in files:
            for dependency in file.dependencies:
                add(dependency)
            files.append(file)

    request = trace_service_pb2.DESCRIPTOR.message_types_by_name["ExportTraceServiceRequest"]
    add(request.file)
    pool = descriptor_pool.DescriptorPool()
    try:
        for file in files:
            proto = descriptor_pb2.FileDescriptorProto()
            file.CopyToProto(proto)
            for message in proto.message_type:
                if message.name == "AnyValue":
                    kept = [f for f in message.field if f.name not in _NOT_QUICK]
                    del message.field[:]
                    message.field.extend(kept)
            pool.Add(proto)
        found = message_factory.GetMessageClass(pool.FindMessageTypeByName(request.full_name))
    except Exception:  # noqa: BLE001 - an optimization: the full check stays correct
        log.warning("OTLP requests all take the full check: the schema copy failed", exc_info=True)
        return None
    return cast(type[ExportTraceServiceRequest], found)  # same fields, fewer value kinds


_NOT_QUICK = frozenset({"double_value", "array_value", "kvlist_value"})


def _valid(span) -> bool:
    """Ids and a start time the Python decoder accepts (else it dead-letters the span)."""
    trace_id, span_id = span.trace_id, span.span_id
    if len(trace_id) != 16 or trace_id == _ZERO_TRACE:
        return False
    if len(span_id) != 8 or span_id == _ZERO_SPAN:
        return False
    return bool(span.start_time_unix_nano)


def _amount_keys(config: SlasConfig) -> tuple[bytes, ...]:
    """Each amount attribute's key as a canonical body holds it (``0x0A <len> key``)."""
    return tuple(
        b"\n" + varint(len(raw)) + raw
        for raw in (name.encode() for name in config.otel.amount_attributes)
    )


def _amount_pattern(keys: Sequence[bytes]) -> re.Pattern[bytes]:
    """After the one amount key: an empty value (0x12 0x00), or a value of one text
    (0x12 <size> 0x0A <length> text) where the text, if any, is an amount ``_AMOUNT``
    accepts without a line end. Sizes and lengths under 128 (one byte each); ``findall``
    gives (size, length, text), all empty for the empty value."""
    key = re.escape(keys[0]) if len(keys) == 1 else b"(?!)"
    return re.compile(
        key + rb"\x12(?:\x00|([\x02-\x7f])\n([\x00-\x7d])(-?\d{1,15}(?:\.\d{1,2})?)?)"
    )


def _scalar(attributes) -> bool:
    """Only values both decoders render alike (``_scalar_value``)."""
    return all(kv.value.string_value or _scalar_value(kv.value) for kv in attributes)


def _scalar_value(value) -> bool:
    """No arrays or maps, and doubles in the range where Python and ClickHouse agree on
    fixed notation (they switch to exponents apart)."""
    kind = value.WhichOneof("value")
    if kind in _NON_SCALAR:
        return False
    if kind == "double_value":
        magnitude = abs(value.double_value)
        if magnitude >= 1e15 or 0 < magnitude < 1e-4:
            return False
    return True
