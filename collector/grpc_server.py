"""OTLP/gRPC receiver for the trace and logs services (default port 4317).

Requests arrive as raw bytes and go through the same decoder as OTLP/HTTP, so
an undecodable request is INVALID_ARGUMENT (not retried) rather than gRPC's
generic INTERNAL. Overload and storage outages are UNAVAILABLE with RetryInfo,
which the OTLP exporters retry with backoff.
"""

from __future__ import annotations

import logging

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2

from collector.errors import UndecodableBody
from collector.ingest import LOGS, TRACES, OtlpIngest, Signal, otlp_ingest
from collector.otlp import PROTOBUF
from stitchboard.errors import Overloaded, StoreUnavailable
from stitchboard.ingest_auth import IngestGuard, token_check
from stitchboard.runtime import Runtime

log = logging.getLogger(__name__)

TRACE_METHOD = ("opentelemetry.proto.collector.trace.v1.TraceService", "Export")
LOGS_METHOD = ("opentelemetry.proto.collector.logs.v1.LogsService", "Export")


def _retry_trailer(seconds: int, code: grpc.StatusCode, message: str) -> tuple:
    info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=seconds))
    status = status_pb2.Status(code=code.value[0], message=message)
    status.details.add().Pack(info)
    return (("grpc-status-details-bin", status.SerializeToString()),)


class OtlpGrpc:
    name = "otlp-grpc"

    def __init__(self, runtime: Runtime, host: str, port: int, ingest: OtlpIngest | None = None):
        self.runtime = runtime
        self.host = host
        self.port = port
        self.ingest = ingest or otlp_ingest(runtime)
        self.server: grpc.aio.Server | None = None
        settings = runtime.settings
        self.guard = IngestGuard(
            token_check(runtime.store), settings.ingest_auth, settings.bootstrap_token
        )

    def _handler(self, signal: Signal):
        retry_after = self.runtime.settings.retry_after_seconds
        metrics = self.runtime.metrics

        async def export(body: bytes, context: grpc.aio.ServicerContext) -> bytes:
            outcome = "ok"
            metadata = dict(context.invocation_metadata() or ())
            authorization = metadata.get("authorization")
            if isinstance(authorization, bytes):
                authorization = authorization.decode("latin-1")
            if not await self.guard.allowed(authorization):
                metrics.requests.labels(signal.name, "unauthenticated").inc()
                await context.abort(
                    grpc.StatusCode.UNAUTHENTICATED,
                    "missing or invalid ingest token (authorization: Bearer)",
                )
            try:
                decoded = await self.ingest.ingest_bytes(signal, body, PROTOBUF)
                if decoded.rejected:
                    outcome = "partial"
                return signal.export_response(decoded).SerializeToString()
            except UndecodableBody as exc:
                outcome = "undecodable"
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            except (Overloaded, StoreUnavailable) as exc:
                outcome = "overloaded" if isinstance(exc, Overloaded) else "store_unavailable"
                message = str(exc) if isinstance(exc, Overloaded) else f"store unavailable: {exc}"
                context.set_trailing_metadata(
                    _retry_trailer(retry_after, grpc.StatusCode.UNAVAILABLE, message)
                )
                await context.abort(grpc.StatusCode.UNAVAILABLE, message)
            except grpc.aio.AbortError:
                raise
            except Exception:  # noqa: BLE001 - answer, never crash the server
                log.exception("OTLP/gRPC %s request failed", signal.name)
                outcome = "error"
                await context.abort(grpc.StatusCode.INTERNAL, "internal error; see server log")
            finally:
                metrics.requests.labels(signal.name, outcome).inc()
            return b""  # unreachable: abort raises

        return export

    async def start(self) -> None:
        # grpc.aio binds a server to the running loop, so it is built here, not in __init__.
        limit = self.runtime.settings.max_body_bytes
        self.server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", 4 * 1024 * 1024),
            ]
        )
        handlers = []
        for (service, method), signal in ((TRACE_METHOD, TRACES), (LOGS_METHOD, LOGS)):
            handler: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(
                self._handler(signal)
            )
            handlers.append(grpc.method_handlers_generic_handler(service, {method: handler}))
        self.server.add_generic_rpc_handlers(tuple(handlers))
        bound = self.server.add_insecure_port(f"{self.host}:{self.port}")
        if not bound:
            raise OSError(f"cannot bind OTLP/gRPC to {self.host}:{self.port}")
        await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(grace=10)

    def describe(self) -> str:
        return f"{'OTLP/gRPC':<22} {self.host}:{self.port}"
