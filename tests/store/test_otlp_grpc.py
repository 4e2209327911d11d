"""OTLP/gRPC: the OpenTelemetry SDK's exporter as a real client, and status codes."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from collector.grpc_server import TRACE_METHOD, OtlpGrpc
from stitchboard.store import MemorySink
from tests.otlp_factory import spans_request
from tests.support import InProcess, free_port, make_runtime

METHOD = f"/{TRACE_METHOD[0]}/{TRACE_METHOD[1]}"


@pytest.fixture(scope="module")
def grpc_server(store):
    runtime = make_runtime(store)
    port = free_port()
    with InProcess([OtlpGrpc(runtime, "127.0.0.1", port)]):
        yield runtime, f"127.0.0.1:{port}"
    runtime.writer.close()


def raw_call(target: str, body: bytes, timeout: float = 10):
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
        return call.with_call(body, timeout=timeout)


def test_sdk_exporter_spans_are_stored(grpc_server, store):
    _, target = grpc_server
    provider = TracerProvider(
        resource=Resource.create({"service.name": "ERP_GL", "facility.id": "LCH02"})
    )
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=target, insecure=True))
    )
    tracer = provider.get_tracer("gl")
    for i in range(3):
        with tracer.start_as_current_span(
            "gl.journal.post", attributes={"gl.journal_id": f"JE-{i}", "charge.batch_id": "B-77"}
        ):
            pass
    provider.shutdown()
    got = store.rows(
        f"SELECT keys['journal'], facility, system FROM {store.table('events')}"
        " FINAL WHERE keys['charge_batch'] = 'B-77' ORDER BY 1"
    )
    assert got == [(f"JE-{i}", "LCH02", "ERP_GL") for i in range(3)]


def test_partial_success_over_grpc(grpc_server):
    _, target = grpc_server
    request = spans_request(2, seed=5)
    request.resource_spans[0].scope_spans[0].spans[0].span_id = b"\x01"
    body, _ = raw_call(target, request.SerializeToString())
    response = ExportTraceServiceResponse.FromString(body)
    assert response.partial_success.rejected_spans == 1
    assert "spanId must be 8 bytes" in response.partial_success.error_message


def test_undecodable_is_invalid_argument(grpc_server):
    _, target = grpc_server
    with pytest.raises(grpc.RpcError) as info:
        raw_call(target, b"\xff\xff\xff")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a protobuf" in info.value.details()


def test_store_down_is_unavailable_with_retry_info(store):
    sink = MemorySink()
    sink.down = True
    runtime = make_runtime(store, sink=sink, retry_after_seconds=2)
    port = free_port()
    with InProcess([OtlpGrpc(runtime, "127.0.0.1", port)]):
        with pytest.raises(grpc.RpcError) as info:
            raw_call(f"127.0.0.1:{port}", spans_request(1, seed=9).SerializeToString())
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        details = dict(info.value.trailing_metadata())["grpc-status-details-bin"]
        status = status_pb2.Status.FromString(details)
        retry = error_details_pb2.RetryInfo()
        assert status.details[0].Unpack(retry)
        assert retry.retry_delay.seconds == 2
        sink.down = False
        raw_call(f"127.0.0.1:{port}", spans_request(1, seed=9).SerializeToString())
        assert len(sink.tables["events"]) == 1
    runtime.writer.close()
