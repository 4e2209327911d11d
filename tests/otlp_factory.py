"""Builders of OTLP export requests for tests (protobuf messages, realistic spans)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import SEVERITY_NUMBER_INFO
from opentelemetry.proto.trace.v1.trace_pb2 import Span

BASE_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


def _attrs(target, values: dict[str, object]) -> None:
    for key, value in values.items():
        kv = target.add()
        kv.key = key
        if isinstance(value, bool):
            kv.value.bool_value = value
        elif isinstance(value, int):
            kv.value.int_value = value
        elif isinstance(value, float):
            kv.value.double_value = value
        else:
            kv.value.string_value = str(value)


def spans_request(
    n: int,
    service: str = "PATACCT",
    facility: str = "NMC01",
    extra: Mapping[str, object] | None = None,
    seed: int | None = None,
) -> ExportTraceServiceRequest:
    """``n`` charge-posting spans: a resource plus ~10 attributes each."""
    rnd = os.urandom if seed is None else _seeded(seed)
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    _attrs(
        rs.resource.attributes,
        {
            "service.name": service,
            "facility.id": facility,
            "service.version": "4.2.0",
            "host.name": "pa-app-01",
        },
    )
    ss = rs.scope_spans.add()
    ss.scope.name = "patient-accounting.charges"
    for i in range(n):
        span = ss.spans.add()
        span.trace_id = rnd(16)
        span.span_id = rnd(8)
        span.name = "charge.post"
        span.kind = Span.SPAN_KIND_SERVER
        span.start_time_unix_nano = BASE_NS + i * 1_000_000
        span.end_time_unix_nano = span.start_time_unix_nano + 3_500_000
        _attrs(
            span.attributes,
            {
                "charge.id": f"CHG-{i:08d}",
                "visit.id": f"VN-{i // 4:08d}",
                "charge.batch_id": f"B-{i // 100:05d}",
                "account.id": f"ACCT{i // 4:010d}",
                "stitchboard.amount": "125.40",
                "cdm.code": "2780001234",
                "cpt.code": "33208",
                "cost_center": "7010",
                "messaging.system": "hl7",
                "posting.user": "batch",
                **(extra or {}),
            },
        )
    return request


def logs_request(
    n: int,
    service: str = "IFENGINE",
    facility: str = "NMC01",
    extra: Mapping[str, object] | None = None,
) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    _attrs(rl.resource.attributes, {"service.name": service, "facility.id": facility})
    sl = rl.scope_logs.add()
    sl.scope.name = "engine.delivery"
    for i in range(n):
        record = sl.log_records.add()
        record.time_unix_nano = BASE_NS + i * 1_000_000
        record.severity_number = SEVERITY_NUMBER_INFO
        record.severity_text = "INFO"
        record.body.string_value = f"delivered message {i}"
        _attrs(record.attributes, {"messaging.message.id": f"MSG{i:08d}", **(extra or {})})
    return request


def _seeded(seed: int):
    import random

    rnd = random.Random(seed)
    return lambda n: bytes(rnd.getrandbits(8) | 1 for _ in range(n))
