"""OTLP export requests → rows for ``otel_traces``/``otel_logs``, ``events`` and ``dead_letters``.

Pure: bytes in, a ``Batch`` out, no I/O. Every span and log record becomes one
row in the raw OpenTelemetry table (exactly as the Collector's ClickHouse
exporter would write it) and one normalized ``events`` row. A record that
cannot be used becomes a dead letter holding an OTLP/JSON request with just
that record, so it can be replayed after slas.yaml is fixed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.attributes import to_dict
from collector.errors import UndecodableBody, UnsupportedMediaType
from collector.normalize import Normalizer, RecordProblem
from collector.otlp_json import parse_json, to_json
from stitchboard.events import (
    DEAD_LETTER_COLUMNS,
    EVENT_COLUMNS,
    STATUS_ERROR,
    STATUS_OK,
    STATUS_UNSET,
    DeadLetter,
    event_id,
    event_row,
)
from stitchboard.writer import Batch

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

TRACE_COLUMNS = (
    "Timestamp",
    "TraceId",
    "SpanId",
    "ParentSpanId",
    "TraceState",
    "SpanName",
    "SpanKind",
    "ServiceName",
    "ResourceAttributes",
    "ScopeName",
    "ScopeVersion",
    "SpanAttributes",
    "Duration",
    "StatusCode",
    "StatusMessage",
    "Events.Timestamp",
    "Events.Name",
    "Events.Attributes",
    "Links.TraceId",
    "Links.SpanId",
    "Links.TraceState",
    "Links.Attributes",
)
LOG_COLUMNS = (
    "Timestamp",
    "TraceId",
    "SpanId",
    "TraceFlags",
    "SeverityText",
    "SeverityNumber",
    "ServiceName",
    "Body",
    "ResourceSchemaUrl",
    "ResourceAttributes",
    "ScopeSchemaUrl",
    "ScopeName",
    "ScopeVersion",
    "ScopeAttributes",
    "LogAttributes",
    "EventName",
)

# Names the exporter writes (pdata's SpanKind.String() / StatusCode.String()).
SPAN_KINDS = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
STATUS_CODES = ("Unset", "Ok", "Error")
EVENT_STATUS = (STATUS_UNSET, STATUS_OK, STATUS_ERROR)
SEVERITY_ERROR = 17  # OTel SeverityNumber ERROR and above mark a failed hop
MAX_REASONS_IN_RESPONSE = 3


@dataclass
class Decoded:
    batch: Batch = field(default_factory=Batch)
    accepted: int = 0
    reasons: list[str] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len(self.reasons)

    def summary(self, noun: str) -> str:
        if not self.reasons:
            return ""
        shown = "; ".join(self.reasons[:MAX_REASONS_IN_RESPONSE])
        more = len(self.reasons) - MAX_REASONS_IN_RESPONSE
        tail = f" (and {more} more; see dead_letters)" if more > 0 else " (see dead_letters)"
        return f"{len(self.reasons)} {noun} rejected: {shown}{tail}"


def media_type(content_type: str | None) -> str:
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind in (PROTOBUF, "application/protobuf"):
        return PROTOBUF
    if kind == JSON:
        return JSON
    raise UnsupportedMediaType(
        f"unsupported Content-Type {content_type!r}; use {PROTOBUF} or {JSON}"
    )


def parse_request(body: bytes, content_type: str, message_type):
    message = message_type()
    if media_type(content_type) == JSON:
        return parse_json(body, message)
    try:
        message.ParseFromString(body)
    except DecodeError as exc:
        raise UndecodableBody(f"body is not a protobuf {message_type.__name__}: {exc}") from exc
    return message


def decode_traces(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    return parse_request(body, content_type, ExportTraceServiceRequest)


def decode_logs(body: bytes, content_type: str) -> ExportLogsServiceRequest:
    return parse_request(body, content_type, ExportLogsServiceRequest)


def _dead_letter(request, source: str, reason: str, now: int) -> DeadLetter:
    return DeadLetter(
        source=source, content_type=JSON, payload=to_json(request), reason=reason, received_time=now
    )


def traces_to_batch(
    request: ExportTraceServiceRequest, norm: Normalizer, now: int | None = None
) -> Decoded:
    now = now or time.time_ns()
    out = Decoded()
    trace_rows: list[tuple] = []
    event_rows: list[tuple[object, ...]] = []
    dead: list[tuple] = []
    for r_index, rs in enumerate(request.resource_spans):
        resource = norm.mask(to_dict(rs.resource.attributes))
        service = resource.get("service.name", "")
        resource_keys = norm.keys(resource)
        for s_index, ss in enumerate(rs.scope_spans):
            scope_name, scope_version = ss.scope.name, ss.scope.version
            for index, span in enumerate(ss.spans):
                where = f"resourceSpans[{r_index}].scopeSpans[{s_index}].spans[{index}]"
                attrs = norm.mask(to_dict(span.attributes))
                try:
                    if len(span.trace_id) != 16 or not any(span.trace_id):
                        raise RecordProblem("traceId must be 16 bytes and not all zero")
                    if len(span.span_id) != 8 or not any(span.span_id):
                        raise RecordProblem("spanId must be 8 bytes and not all zero")
                    if not span.start_time_unix_nano:
                        raise RecordProblem("no startTimeUnixNano")
                    facility = norm.facility(attrs, resource)
                    amount = norm.amount(attrs)
                except RecordProblem as problem:
                    reason = f"{where}: {problem}"
                    out.reasons.append(reason)
                    single = _one_record(ExportTraceServiceRequest(), rs, ss, span, resource, attrs)
                    dead.append(_dead_letter(single, "otlp.traces", reason, now).row())
                    continue
                trace_id = span.trace_id.hex()
                span_id = span.span_id.hex()
                start = span.start_time_unix_nano
                end = span.end_time_unix_nano
                duration = end - start if end > start else 0
                code = span.status.code if 0 <= span.status.code <= 2 else 0
                kind = span.kind if 0 <= span.kind <= 5 else 0
                ev_ts, ev_names, ev_attrs = [], [], []
                for ev in span.events:
                    ev_ts.append(ev.time_unix_nano)
                    ev_names.append(ev.name)
                    ev_attrs.append(norm.mask(to_dict(ev.attributes)))
                ln_trace, ln_span, ln_state, ln_attrs = [], [], [], []
                for link in span.links:
                    ln_trace.append(link.trace_id.hex())
                    ln_span.append(link.span_id.hex())
                    ln_state.append(link.trace_state)
                    ln_attrs.append(norm.mask(to_dict(link.attributes)))
                trace_rows.append(
                    (
                        start,
                        trace_id,
                        span_id,
                        span.parent_span_id.hex(),
                        span.trace_state,
                        span.name,
                        SPAN_KINDS[kind],
                        service,
                        resource,
                        scope_name,
                        scope_version,
                        attrs,
                        duration,
                        STATUS_CODES[code],
                        span.status.message,
                        ev_ts,
                        ev_names,
                        ev_attrs,
                        ln_trace,
                        ln_span,
                        ln_state,
                        ln_attrs,
                    )
                )
                keys = {**resource_keys, **norm.keys(attrs), "trace": trace_id}
                # A span's clock time is its end (its start is the end less the duration).
                event_rows.append(
                    event_row(
                        event_id=event_id("span", trace_id, span_id),
                        event_time=end or start,
                        observed_time=now,
                        source_kind="span",
                        source=service,
                        facility=facility,
                        system=norm.system(attrs, resource),
                        operation=norm.operation(attrs, span.name),
                        status=EVENT_STATUS[code],
                        status_message=span.status.message,
                        duration_ns=duration,
                        amount=amount,
                        trace_id=trace_id,
                        span_id=span_id,
                        keys=keys,
                        attributes=attrs,
                    )
                )
    out.accepted = len(trace_rows)
    out.batch.add("otel_traces", TRACE_COLUMNS, trace_rows)
    out.batch.add("events", EVENT_COLUMNS, event_rows)
    out.batch.add("dead_letters", DEAD_LETTER_COLUMNS, dead)
    return out


def logs_to_batch(
    request: ExportLogsServiceRequest, norm: Normalizer, now: int | None = None
) -> Decoded:
    now = now or time.time_ns()
    out = Decoded()
    log_rows: list[tuple] = []
    event_rows: list[tuple[object, ...]] = []
    dead: list[tuple] = []
    for r_index, rl in enumerate(request.resource_logs):
        resource = norm.mask(to_dict(rl.resource.attributes))
        service = resource.get("service.name", "")
        resource_keys = norm.keys(resource)
        for s_index, sl in enumerate(rl.scope_logs):
            scope_attrs = to_dict(sl.scope.attributes)
            for index, record in enumerate(sl.log_records):
                where = f"resourceLogs[{r_index}].scopeLogs[{s_index}].logRecords[{index}]"
                attrs = norm.mask(to_dict(record.attributes))
                try:
                    timestamp = record.time_unix_nano or record.observed_time_unix_nano
                    if not timestamp:
                        raise RecordProblem("no timeUnixNano or observedTimeUnixNano")
                    if record.trace_id and len(record.trace_id) != 16:
                        raise RecordProblem("traceId must be 16 bytes")
                    if record.span_id and len(record.span_id) != 8:
                        raise RecordProblem("spanId must be 8 bytes")
                    facility = norm.facility(attrs, resource)
                    amount = norm.amount(attrs)
                except RecordProblem as problem:
                    reason = f"{where}: {problem}"
                    out.reasons.append(reason)
                    single = _one_record(
                        ExportLogsServiceRequest(), rl, sl, record, resource, attrs
                    )
                    dead.append(_dead_letter(single, "otlp.logs", reason, now).row())
                    continue
                trace_id = record.trace_id.hex()
                span_id = record.span_id.hex()
                body = _body_string(record.body)
                log_rows.append(
                    (
                        timestamp,
                        trace_id,
                        span_id,
                        record.flags & 0xFF,
                        record.severity_text,
                        min(record.severity_number, 255),
                        service,
                        body,
                        rl.schema_url,
                        resource,
                        sl.schema_url,
                        sl.scope.name,
                        sl.scope.version,
                        scope_attrs,
                        attrs,
                        record.event_name,
                    )
                )
                keys = {**resource_keys, **norm.keys(attrs)}
                if trace_id:
                    keys["trace"] = trace_id
                failed = record.severity_number >= SEVERITY_ERROR
                operation = norm.operation(attrs, record.event_name or attrs.get("event.name", ""))
                identity = record.SerializeToString(deterministic=True)
                event_rows.append(
                    event_row(
                        event_id=event_id("log", service, identity),
                        event_time=timestamp,
                        observed_time=now,
                        source_kind="log",
                        source=service,
                        facility=facility,
                        system=norm.system(attrs, resource),
                        operation=operation,
                        status=STATUS_ERROR if failed else STATUS_OK,
                        status_message=body if failed else "",
                        amount=amount,
                        trace_id=trace_id,
                        span_id=span_id,
                        keys=keys,
                        attributes=attrs,
                    )
                )
    out.accepted = len(log_rows)
    out.batch.add("otel_logs", LOG_COLUMNS, log_rows)
    out.batch.add("events", EVENT_COLUMNS, event_rows)
    out.batch.add("dead_letters", DEAD_LETTER_COLUMNS, dead)
    return out


def _body_string(body) -> str:
    from collector.attributes import value_string

    return value_string(body)


# Field names of the three nesting levels, per request type.
_LEVELS = {
    "ExportTraceServiceRequest": ("resource_spans", "scope_spans", "spans"),
    "ExportLogsServiceRequest": ("resource_logs", "scope_logs", "log_records"),
}


def _one_record(single, resource_part, scope_part, record, resource: dict, attrs: dict):
    """``single`` filled with one record and its resource and scope, PHI already masked.

    The attributes are the masked ones, so a dead letter never holds raw PHI.
    """
    resources, scopes, records = _LEVELS[single.DESCRIPTOR.name]
    one = getattr(single, resources).add(schema_url=resource_part.schema_url)
    one.resource.CopyFrom(resource_part.resource)
    del one.resource.attributes[:]
    _set_attributes(one.resource.attributes, resource)
    scope = getattr(one, scopes).add(schema_url=scope_part.schema_url)
    scope.scope.CopyFrom(scope_part.scope)
    copy = getattr(scope, records).add()
    copy.CopyFrom(record)
    del copy.attributes[:]
    _set_attributes(copy.attributes, attrs)
    return single


def _set_attributes(target, values: dict[str, str]) -> None:
    for key, value in values.items():
        kv = target.add()
        kv.key = key
        kv.value.string_value = value


def replay_batch(
    runtime, source: str, payload: bytes, content_type: str
) -> tuple[Batch, list[str]]:
    """Rebuild the rows of an OTLP dead letter under the current slas.yaml.

    Returns the batch of rows that are usable now (without new dead letters) and
    the reasons of the records that are still rejected.
    """
    norm = Normalizer(runtime.config, runtime.pseudonymize)
    if source == "otlp.traces":
        decoded = traces_to_batch(decode_traces(payload, content_type), norm)
    elif source == "otlp.logs":
        decoded = logs_to_batch(decode_logs(payload, content_type), norm)
    else:
        raise ValueError(f"not an OTLP dead-letter source: {source!r}")
    decoded.batch.tables.pop("dead_letters", None)
    return decoded.batch, decoded.reasons
