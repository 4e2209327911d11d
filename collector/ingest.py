"""The I/O edge shared by the OTLP/HTTP and OTLP/gRPC endpoints.

Decoding runs in a worker thread so one large request does not stall the
event loop; the response is sent only after ``writer.write`` reports the rows
durable.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from collector.normalize import Normalizer
from collector.otlp import (
    PROTOBUF,
    Decoded,
    decode_logs,
    decode_traces,
    logs_to_batch,
    traces_to_batch,
)
from collector.otlp_native import NATIVE_KIND, NativeTraces
from stitchboard.config import SlasConfig
from stitchboard.runtime import Runtime
from stitchboard.writer import RawInserter


@dataclass(frozen=True)
class Signal:
    name: str  # traces | logs
    noun: str  # spans | log records

    def decode(
        self, body: bytes, content_type: str, norm: Normalizer, native: NativeTraces | None = None
    ) -> Decoded:
        if self.name == "traces":
            if native is None or content_type != PROTOBUF:
                return traces_to_batch(decode_traces(body, content_type), norm)
            spans = native.quick_spans(body)  # most requests: no full parse in Python
            if spans is None:
                request = decode_traces(body, content_type)
                if not native.eligible(request):
                    return traces_to_batch(request, norm)
                spans = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
            decoded = Decoded(accepted=spans)
            decoded.batch.add_raw(NATIVE_KIND, body, spans)
            return decoded
        return logs_to_batch(decode_logs(body, content_type), norm)

    def export_response(self, decoded: Decoded):
        """The Export…ServiceResponse, with ``partial_success`` when records were rejected."""
        if self.name == "traces":
            traces = ExportTraceServiceResponse()
            if decoded.rejected:
                traces.partial_success.rejected_spans = decoded.rejected
                traces.partial_success.error_message = decoded.summary(self.noun)
            return traces
        logs = ExportLogsServiceResponse()
        if decoded.rejected:
            logs.partial_success.rejected_log_records = decoded.rejected
            logs.partial_success.error_message = decoded.summary(self.noun)
        return logs

    def convert(self, request, norm: Normalizer) -> Decoded:
        if self.name == "traces":
            return traces_to_batch(request, norm)
        return logs_to_batch(request, norm)


TRACES = Signal("traces", "spans")
LOGS = Signal("logs", "log records")


class OtlpIngest:
    """Decode, normalize, write, count: one call per export request."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.metrics = runtime.metrics
        self.normalizer = Normalizer(runtime.config, runtime.pseudonymize)
        self.native = native_traces(runtime, self.normalizer)
        runtime.on_config(self._reconfigure)

    def _reconfigure(self, config: SlasConfig) -> None:
        normalizer = Normalizer(config, self.runtime.pseudonymize)
        if self.native is not None:
            self.native.reconfigure(config, normalizer)
        self.normalizer = normalizer  # one assignment: a request uses the old or the new

    async def ingest_bytes(self, signal: Signal, body: bytes, content_type: str) -> Decoded:
        decoded = await asyncio.to_thread(
            signal.decode, body, content_type, self.normalizer, self.native
        )
        await self._write(signal, decoded)
        return decoded

    async def ingest_message(self, signal: Signal, request) -> Decoded:
        decoded = await asyncio.to_thread(signal.convert, request, self.normalizer)
        await self._write(signal, decoded)
        return decoded

    async def _write(self, signal: Signal, decoded: Decoded) -> None:
        started = time.perf_counter()
        self.metrics.received.labels(signal.name).inc(decoded.accepted + decoded.rejected)
        await self.runtime.writer.write(decoded.batch)
        self.metrics.accepted.labels(signal.name).inc(decoded.accepted)
        self.metrics.rejected.labels(signal.name).inc(decoded.rejected)
        self.metrics.batch_latency.labels(signal.name).observe(time.perf_counter() - started)


def native_traces(runtime: Runtime, normalizer: Normalizer) -> NativeTraces | None:
    """The engine-side decoder, registered with the writer (embedded store only)."""
    if not (runtime.settings.native_decode and runtime.store.embedded):
        return None
    native = NativeTraces(runtime.config, normalizer, runtime.store.database)
    runtime.writer.register_raw(NATIVE_KIND, RawInserter(native.insert, ("otel_traces", "events")))
    return native
