"""A real ``stitchboard serve`` subprocess fed by the OpenTelemetry SDK exporters."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogs
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogs
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpans
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from tests.support import AUTH, ROOT, ServeProcess, serve_process, sql

pytestmark = pytest.mark.slow


def send_spans(exporter, service: str, n: int, tag: str) -> None:
    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "facility.id": "NMC01"})
    )
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=50))
    tracer = provider.get_tracer("stitchboard.tests")
    for i in range(n):
        with tracer.start_as_current_span(
            "charge.post",
            attributes={"charge.id": f"{tag}-{i}", "patient.mrn": f"MRN-{tag}-{i}", "run.tag": tag},
        ):
            pass
    provider.shutdown()


def send_logs(exporter, n: int, tag: str) -> None:
    provider = LoggerProvider(
        resource=Resource.create({"service.name": "IFENGINE", "facility.id": "LCH02"})
    )
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    logger = provider.get_logger("engine")
    for i in range(n):
        logger.emit(
            body=f"delivered {tag} {i}",
            severity_number=9,
            severity_text="INFO",
            attributes={"messaging.message.id": f"{tag}-{i}", "run.tag": tag},
            event_name="engine.delivered",
        )
    provider.shutdown()


def test_sdk_exporters_over_http_and_grpc_then_sigterm_keeps_everything():
    with serve_process() as server:
        send_spans(
            HttpSpans(endpoint=f"{server.otlp_http}/v1/traces", compression=Compression.Gzip),
            "PATACCT",
            120,
            "http",
        )
        send_spans(
            GrpcSpans(endpoint=f"127.0.0.1:{server.otlp_grpc_port}", insecure=True),
            "ERP_GL",
            80,
            "grpc",
        )
        send_logs(HttpLogs(endpoint=f"{server.otlp_http}/v1/logs"), 30, "httplog")
        send_logs(
            GrpcLogs(endpoint=f"127.0.0.1:{server.otlp_grpc_port}", insecure=True), 20, "grpclog"
        )
        health = server.health()
        assert health["status"] == "ok"
        assert health["store"]["schema_version"] >= 1
        # OTLP/HTTP is counted in the receivers' process, reported within 0.1 s.
        expected = (
            'stitchboard_accepted_records_total{signal="traces"} 200.0',
            'stitchboard_accepted_records_total{signal="logs"} 50.0',
        )
        deadline = time.monotonic() + 5
        while True:
            metrics = httpx.get(f"{server.api}/metrics", headers=AUTH).text
            if all(line in metrics for line in expected) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert expected[0] in metrics
        assert expected[1] in metrics
        assert server.stop() == 0
        assert "Stitchboard stopped" in server.output
        counts = sql(
            server.clickhouse,
            "SELECT run, count() AS n FROM (SELECT"
            " attributes['run.tag'] AS run FROM {db}.events FINAL) GROUP BY run",
        )
        assert {r["run"]: r["n"] for r in counts} == {
            "http": 120,
            "grpc": 80,
            "httplog": 30,
            "grpclog": 20,
        }
        raw = sql(server.clickhouse, "SELECT count() AS n FROM {db}.otel_traces FINAL")
        assert raw == [{"n": 200}]
        leaked = sql(
            server.clickhouse,
            "SELECT count() AS n FROM {db}.events WHERE has(mapValues(keys), 'MRN-http-1')",
        )
        assert leaked == [{"n": 0}]


def test_bad_slas_yaml_stops_serve_with_every_problem(tmp_path):
    bad = tmp_path / "slas.yaml"
    bad.write_text("keys:\n  visit: {phi: maybe}\nfacilities:\n  - {timezone: Nowhere/Land}\n")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "stitchboard",
            "serve",
            "--config",
            str(bad),
            "--clickhouse",
            f"chdb://{tmp_path / 'data'}",
            "--port",
            "0",
            "--otlp-http-port",
            "0",
            "--otlp-grpc-port",
            "0",
            "--mllp-port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert out.returncode == 2
    assert "slas.yaml: keys.visit.attributes: field required" in out.stderr
    assert "slas.yaml: facilities[0].id: field required" in out.stderr
    assert "unknown time zone 'Nowhere/Land'" in out.stderr


def test_a_port_of_zero_disables_that_listener(tmp_path):
    server = ServeProcess(tmp_path / "data")
    server.otlp_grpc_port = 0
    server.mllp_port = 0
    server.start()
    assert server.stop() == 0
    assert "OTLP/HTTP" in server.output
    assert "OTLP/gRPC" not in server.output
    assert "MLLP" not in server.output


def test_console_port_serves_index_openapi_and_common_errors():
    with serve_process() as server:
        index = httpx.get(f"{server.api}/", headers=AUTH)
        assert index.status_code == 200 and "Stitchboard" in index.text
        spec = httpx.get(f"{server.api}/api/v1/openapi.json", headers=AUTH).json()
        assert "/api/v1/health" in spec["paths"]
        missing = httpx.get(f"{server.api}/api/v1/nope", headers=AUTH)
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
