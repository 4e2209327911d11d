"""OTLP/HTTP over real sockets: statuses, encodings, idempotency, backpressure, outages."""

from __future__ import annotations

import gzip
import json
import threading

import httpx
import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from collector.http import build_app
from collector.otlp_json import to_json
from stitchboard.components import HttpComponent
from stitchboard.store import MemorySink
from tests.otlp_factory import logs_request, spans_request
from tests.support import InProcess, free_port, make_runtime

PB = {"content-type": "application/x-protobuf"}
JS = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def server(store):
    runtime = make_runtime(store, max_body_bytes=256 * 1024)
    port = free_port()
    with InProcess([HttpComponent("otlp", build_app(runtime), "127.0.0.1", port, "OTLP")]):
        yield runtime, f"http://127.0.0.1:{port}"
    runtime.writer.close()


def count(store, table: str, where: str = "1") -> int:
    return store.scalar(f"SELECT count() FROM {store.table(table)} FINAL WHERE {where}")


def test_protobuf_spans_are_stored_before_200(server, store):
    runtime, url = server
    request = spans_request(20, extra={"batch.tag": "pb20"})
    response = httpx.post(f"{url}/v1/traces", content=request.SerializeToString(), headers=PB)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    parsed = ExportTraceServiceResponse.FromString(response.content)
    assert not parsed.HasField("partial_success")
    assert count(store, "otel_traces", "SpanAttributes['batch.tag'] = 'pb20'") == 20
    assert count(store, "events", "attributes['batch.tag'] = 'pb20'") == 20


def test_resending_the_same_batch_never_duplicates(server, store):
    _, url = server
    body = spans_request(15, seed=11, extra={"batch.tag": "dup"}).SerializeToString()
    for _ in range(3):
        assert httpx.post(f"{url}/v1/traces", content=body, headers=PB).status_code == 200
    assert count(store, "events", "attributes['batch.tag'] = 'dup'") == 15
    assert count(store, "otel_traces", "SpanAttributes['batch.tag'] = 'dup'") == 15
    # the same spans sent as JSON are the same events
    assert (
        httpx.post(
            f"{url}/v1/traces",
            content=to_json(spans_request(15, seed=11, extra={"batch.tag": "dup"})),
            headers=JS,
        ).status_code
        == 200
    )
    assert count(store, "events", "attributes['batch.tag'] = 'dup'") == 15


def test_json_request_gets_json_response_with_partial_success(server, store):
    _, url = server
    request = spans_request(3, extra={"batch.tag": "partial"})
    request.resource_spans[0].scope_spans[0].spans[1].start_time_unix_nano = 0
    response = httpx.post(f"{url}/v1/traces", content=to_json(request), headers=JS)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["partialSuccess"]["rejectedSpans"] == "1"
    assert "no startTimeUnixNano" in body["partialSuccess"]["errorMessage"]
    assert count(store, "events", "attributes['batch.tag'] = 'partial'") == 2
    assert count(store, "dead_letters", "reason LIKE '%no startTimeUnixNano%'") >= 1


def test_gzip_body(server, store):
    _, url = server
    body = gzip.compress(logs_request(7, extra={"batch.tag": "gz"}).SerializeToString())
    response = httpx.post(
        f"{url}/v1/logs", content=body, headers={**PB, "content-encoding": "gzip"}
    )
    assert response.status_code == 200
    assert count(store, "otel_logs", "LogAttributes['batch.tag'] = 'gz'") == 7


def error_of(response) -> status_pb2.Status:
    return status_pb2.Status.FromString(response.content)


def test_undecodable_protobuf_is_400_with_status_body(server):
    _, url = server
    response = httpx.post(f"{url}/v1/traces", content=b"\xff\xff\xff", headers=PB)
    assert response.status_code == 400
    assert "not a protobuf ExportTraceServiceRequest" in error_of(response).message


def test_undecodable_json_is_400_naming_the_field(server):
    _, url = server
    body = b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"nothex"}]}]}]}'
    response = httpx.post(f"{url}/v1/traces", content=body, headers=JS)
    assert response.status_code == 400
    assert response.json()["message"] == (
        "resourceSpans[0].scopeSpans[0].spans[0].traceId: 'nothex' is not a hex id"
    )


def test_broken_gzip_is_400(server):
    _, url = server
    response = httpx.post(
        f"{url}/v1/traces", content=b"not gzip at all", headers={**PB, "content-encoding": "gzip"}
    )
    assert response.status_code == 400
    assert "not valid gzip" in error_of(response).message


def test_unknown_content_type_is_415(server):
    _, url = server
    response = httpx.post(f"{url}/v1/traces", content=b"x", headers={"content-type": "text/xml"})
    assert response.status_code == 415
    assert "unsupported Content-Type 'text/xml'" in error_of(response).message


def test_unknown_content_encoding_is_415(server):
    _, url = server
    response = httpx.post(f"{url}/v1/logs", content=b"x", headers={**PB, "content-encoding": "br"})
    assert response.status_code == 415


def test_body_over_limit_is_413(server):
    _, url = server
    response = httpx.post(f"{url}/v1/traces", content=b"\0" * (300 * 1024), headers=PB)
    assert response.status_code == 413


def test_gzip_bomb_is_413(server):
    _, url = server
    bomb = gzip.compress(b"\0" * (2 * 1024 * 1024))
    assert len(bomb) < 256 * 1024
    response = httpx.post(
        f"{url}/v1/traces", content=bomb, headers={**PB, "content-encoding": "gzip"}
    )
    assert response.status_code == 413
    assert "decompressed body is over" in error_of(response).message


def test_wrong_method_and_path(server):
    _, url = server
    assert httpx.get(f"{url}/v1/traces").status_code == 405
    assert httpx.post(f"{url}/v1/metrics", content=b"", headers=PB).status_code == 404


def test_metrics_count_requests(server):
    runtime, _ = server
    text = runtime.metrics.render().decode()
    assert 'stitchboard_accepted_records_total{signal="traces"}' in text
    assert 'stitchboard_requests_total{outcome="undecodable",signal="traces"}' in text


def test_store_down_is_503_then_recovers(store):
    sink = MemorySink()
    runtime = make_runtime(store, sink=sink, retry_after_seconds=3)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    body = spans_request(4, seed=21).SerializeToString()
    with InProcess([HttpComponent("otlp", build_app(runtime), "127.0.0.1", port, "OTLP")]):
        sink.down = True
        response = httpx.post(f"{url}/v1/traces", content=body, headers=PB)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "3"
        assert "store unavailable" in error_of(response).message
        assert "events" not in sink.tables
        sink.down = False
        assert httpx.post(f"{url}/v1/traces", content=body, headers=PB).status_code == 200
        assert len(sink.tables["events"]) == 4
    runtime.writer.close()


def test_overload_is_429_with_retry_after(store):
    class SlowSink(MemorySink):
        def __init__(self):
            super().__init__()
            self.release = threading.Event()

        def insert(self, table, columns, rows):
            self.release.wait(10)
            super().insert(table, columns, rows)

    sink = SlowSink()
    runtime = make_runtime(store, sink=sink, queue_max_rows=10)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    component = HttpComponent("otlp", build_app(runtime), "127.0.0.1", port, "OTLP")
    with InProcess([component]), httpx.Client() as client:
        first = threading.Thread(
            target=client.post,
            args=(f"{url}/v1/traces",),
            kwargs={"content": spans_request(4, seed=1).SerializeToString(), "headers": PB},
        )
        first.start()
        for _ in range(100):
            if runtime.writer.pending_rows:
                break
            threading.Event().wait(0.02)
        response = client.post(
            f"{url}/v1/traces", headers=PB, content=spans_request(4, seed=2).SerializeToString()
        )
        assert response.status_code == 429
        assert response.headers["retry-after"] == "1"
        sink.release.set()
        first.join(10)
    assert len(sink.tables["events"]) == 4  # the first batch only; the refused one left no rows
    runtime.writer.close()


def test_json_enum_names_and_integers_both_work(server, store):
    _, url = server
    body = json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": "EHR_ADT"}}]
                    },
                    "scopeSpans": [
                        {
                            "spans": [
                                {
                                    "traceId": "AB" * 16,
                                    "spanId": "CD" * 8,
                                    "name": "enum-int",
                                    "kind": 3,
                                    "startTimeUnixNano": "1767225600000000000",
                                    "status": {"code": 1},
                                },
                                {
                                    "traceId": "AB" * 16,
                                    "spanId": "CE" * 8,
                                    "name": "enum-name",
                                    "kind": "SPAN_KIND_PRODUCER",
                                    "startTimeUnixNano": 1767225600000000000,
                                },
                            ]
                        }
                    ],
                }
            ]
        }
    )
    assert httpx.post(f"{url}/v1/traces", content=body, headers=JS).status_code == 200
    kinds = dict(
        store.rows(
            f"SELECT SpanName, SpanKind FROM {store.table('otel_traces')} FINAL"
            " WHERE SpanName LIKE 'enum-%'"
        )
    )
    assert kinds == {"enum-int": "Client", "enum-name": "Producer"}
