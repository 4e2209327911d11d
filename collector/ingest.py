"""The I/O edge shared by the OTLP/HTTP and OTLP/gRPC endpoints.

Decoding runs in a worker thread so one large request does not stall the
event loop; the response is sent only after ``writer.write`` reports the rows
durable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
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
from stitchboard.metrics import Metrics
from stitchboard.runtime import Runtime
from stitchboard.writer import Batch, RawInserter


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
    """Decode, normalize, write, count: one call per export request.

    ``native``: the engine-side decoder's checks (requests it can take are written as
    sent); whoever loads the batches registers its inserter (``otlp_ingest``).
    """

    def __init__(
        self,
        config: SlasConfig,
        pseudonymize: Callable[[str], str],
        metrics: Metrics,
        write: Callable[[Batch], Awaitable[None]],
        database: str | None = None,
    ):
        self.pseudonymize = pseudonymize
        self.metrics = metrics
        self.write = write
        self.normalizer = Normalizer(config, pseudonymize)
        self.native = None if database is None else NativeTraces(config, self.normalizer, database)

    def reconfigure(self, config: SlasConfig) -> None:
        normalizer = Normalizer(config, self.pseudonymize)
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
        await self.write(decoded.batch)
        self.metrics.accepted.labels(signal.name).inc(decoded.accepted)
        self.metrics.rejected.labels(signal.name).inc(decoded.rejected)
        self.metrics.batch_latency.labels(signal.name).observe(time.perf_counter() - started)


def native_database(runtime: Runtime) -> str | None:
    """The database the engine-side decoder writes to, when it is on (embedded store only)."""
    if runtime.settings.native_decode and runtime.store.embedded:
        return runtime.store.database
    return None


def otlp_ingest(runtime: Runtime) -> OtlpIngest:
    """The server's ingest: its engine-side decoder registered with the writer (which loads
    what any receiver spooled as sent), and reloads of slas.yaml followed."""
    ingest = OtlpIngest(
        runtime.config,
        runtime.pseudonymize,
        runtime.metrics,
        runtime.writer.write,
        native_database(runtime),
    )
    if ingest.native is not None:
        inserter = RawInserter(ingest.native.insert, ("otel_traces", "events"))
        runtime.writer.register_raw(NATIVE_KIND, inserter)
    runtime.on_config(ingest.reconfigure)
    return ingest
