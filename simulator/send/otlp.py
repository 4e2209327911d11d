"""Spans and log records through the OpenTelemetry SDK and its OTLP/HTTP exporters.

One tracer and logger provider per (facility, system): a real estate runs one
SDK per service, and ``service.name``/``facility.id`` are resource attributes.
Span and trace ids come from the hop id, so a re-send carries the same ids.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode

from simulator.records import Hop

# Flush a provider after this many records so the SDK's bounded queue never drops.
FLUSH_EVERY = 20_000
QUEUE = 2 * FLUSH_EVERY


class HopIds(IdGenerator):
    """Ids for the span being started, taken from the hop (thread-local)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def use(self, hop_id: str) -> None:
        self._local.ids = (int(hop_id[:32], 16) or 1, int(hop_id[:16], 16) or 1)

    def generate_trace_id(self) -> int:
        return self._local.ids[0]

    def generate_span_id(self) -> int:
        return self._local.ids[1]


def attributes_for(hop: Hop, key_attributes: Mapping[str, str]) -> dict[str, str]:
    """The hop's business keys under the attribute names slas.yaml reads them from."""
    attrs = {key_attributes.get(k, k): v for k, v in hop.keys.items()}
    attrs.update(hop.attributes)
    attrs["stitchboard.operation"] = hop.operation
    if hop.amount is not None:
        attrs["stitchboard.amount"] = f"{hop.amount:.2f}"
    return attrs


class _Service:
    def __init__(self, endpoint: str, facility: str, system: str, ids: HopIds, timeout: float):
        resource = Resource.create(
            {
                "service.name": system,
                "facility.id": facility,
                "service.namespace": "simulated-health-system",
            }
        )
        self.tracer_provider = TracerProvider(resource=resource, id_generator=ids)
        self.tracer_provider.add_span_processor(
            BatchSpanProcessor(
                OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", timeout=timeout),
                max_queue_size=QUEUE,
                max_export_batch_size=2048,
                schedule_delay_millis=200,
            )
        )
        self.logger_provider = LoggerProvider(resource=resource)
        self.logger_provider.add_log_record_processor(
            BatchLogRecordProcessor(
                OTLPLogExporter(endpoint=f"{endpoint}/v1/logs", timeout=timeout),
                max_queue_size=QUEUE,
                max_export_batch_size=2048,
                schedule_delay_millis=200,
            )
        )
        self.tracer = self.tracer_provider.get_tracer("stitchboard.simulator")
        self.logger = self.logger_provider.get_logger("stitchboard.simulator")
        self.pending = 0

    def flush(self) -> None:
        self.tracer_provider.force_flush()
        self.logger_provider.force_flush()
        self.pending = 0

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()


class OtlpSender:
    def __init__(self, endpoint: str, key_attributes: Mapping[str, str], timeout: float = 10.0):
        self.endpoint = endpoint.rstrip("/")
        self.key_attributes = dict(key_attributes)
        self.timeout = timeout
        self._ids = HopIds()
        self._services: dict[tuple[str, str], _Service] = {}
        self._lock = threading.Lock()

    def _service(self, hop: Hop) -> _Service:
        key = (hop.facility, hop.system)
        with self._lock:
            service = self._services.get(key)
            if service is None:
                service = _Service(self.endpoint, hop.facility, hop.system, self._ids, self.timeout)
                self._services[key] = service
        return service

    def send(self, hop: Hop) -> None:
        service = self._service(hop)
        attrs = attributes_for(hop, self.key_attributes)
        if hop.channel == "span":
            self._ids.use(hop.hop_id)
            # The hop happened when its span ended (the collector's event time).
            took = 1_000_000 + int(hop.hop_id[-4:], 16) * 1000
            span = service.tracer.start_span(
                hop.operation, kind=SpanKind.INTERNAL, start_time=hop.time - took, attributes=attrs
            )
            if hop.status == "error":
                span.set_status(Status(StatusCode.ERROR, hop.status_message))
            else:
                span.set_status(Status(StatusCode.OK))
            span.end(end_time=hop.time)
        else:
            attrs["log.record.uid"] = hop.hop_id
            error = hop.status == "error"
            service.logger.emit(
                # A re-sent record is the same record: same observed time, same event id.
                timestamp=hop.time,
                observed_timestamp=hop.time,
                severity_number=SeverityNumber.ERROR if error else SeverityNumber.INFO,
                severity_text="ERROR" if error else "INFO",
                body=hop.status_message or f"{hop.operation} {' '.join(hop.keys.values())}",
                attributes=attrs,
                event_name=hop.operation,
            )
        service.pending += 1
        if service.pending >= FLUSH_EVERY:
            service.flush()

    def flush(self) -> None:
        for service in list(self._services.values()):
            service.flush()

    def close(self) -> None:
        for service in list(self._services.values()):
            service.shutdown()
        self._services.clear()
