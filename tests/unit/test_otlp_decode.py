"""The pure OTLP decoder: JSON and protobuf in, exporter rows, events and dead letters out."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from collector.errors import UndecodableBody, UnsupportedMediaType
from collector.normalize import Normalizer
from collector.otlp import (
    LOG_COLUMNS,
    TRACE_COLUMNS,
    decode_logs,
    decode_traces,
    logs_to_batch,
    media_type,
    traces_to_batch,
)
from collector.otlp_json import to_json
from stitchboard.config import load_config
from stitchboard.events import EVENT_COLUMNS
from stitchboard.phi import Pseudonymizer
from tests.otlp_factory import spans_request
from tests.support import ROOT, TEST_KEY

DATA = Path(__file__).parents[1] / "data" / "otlp"
PSEUDO = Pseudonymizer(TEST_KEY.encode())


@pytest.fixture(scope="module")
def norm() -> Normalizer:
    return Normalizer(load_config(ROOT / "slas.yaml"), PSEUDO)


def rows(decoded, table, columns):
    return [dict(zip(columns, row, strict=True)) for row in decoded.batch.tables[table][1]]


def test_example_trace_json_becomes_exporter_row_and_event(norm):
    body = (DATA / "trace.json").read_bytes()
    decoded = traces_to_batch(decode_traces(body, "application/json"), norm, now=1)
    assert decoded.accepted == 1 and decoded.rejected == 0
    (span,) = rows(decoded, "otel_traces", TRACE_COLUMNS)
    assert span["TraceId"] == "5b8efff798038103d269b633813fc60c"
    assert span["SpanId"] == "eee19b7ec3c1b174"
    assert span["ParentSpanId"] == "eee19b7ec3c1b173"
    assert span["Timestamp"] == 1544712660000000000
    assert span["Duration"] == 1_000_000_000
    assert span["SpanKind"] == "Server"
    assert span["StatusCode"] == "Error"
    assert span["StatusMessage"] == "CDM code inactive"
    assert span["ScopeName"] == "patient-accounting.charges"
    attrs = span["SpanAttributes"]
    assert attrs["my.bool"] == "true"
    assert attrs["my.int"] == "42"
    assert attrs["my.double"] == "3.25"
    assert json.loads(attrs["my.array"]) == ["a", 7]
    assert json.loads(attrs["my.map"]) == {"inner": False}
    assert attrs["my.bytes"] == "aGVsbG8="
    assert attrs["patient.mrn"] == PSEUDO("MRN00482917")
    assert span["Events.Name"] == ["charge.validated"]
    assert span["Links.TraceId"] == ["0af7651916cd43dd8448eb211c80319c"]

    (event,) = rows(decoded, "events", EVENT_COLUMNS)
    assert event["facility"] == "NMC01"  # alias NMC resolved
    assert event["system"] == "PATACCT"
    assert event["operation"] == "charge.post"
    assert event["status"] == "error"
    assert event["amount"] == Decimal("18450.00")
    assert event["event_time"] == 1544712661000000000
    assert event["keys"] == {
        "charge": "CHG-88120457",
        "visit": "VN20250310-000917",
        "mrn": PSEUDO("MRN00482917"),
        "trace": "5b8efff798038103d269b633813fc60c",
    }


def test_example_logs_json(norm):
    body = (DATA / "logs.json").read_bytes()
    decoded = logs_to_batch(decode_logs(body, "application/json; charset=utf-8"), norm, now=1)
    assert decoded.accepted == 2
    first, second = rows(decoded, "otel_logs", LOG_COLUMNS)
    assert first["TraceId"] == "5b8efff798038103d269b633813fc60c"
    assert first["Body"] == "Delivered ADT^A03 to PATACCT"
    assert first["LogAttributes"]["double.attribute"] == "637.704"
    assert second["Timestamp"] == 1544712670000000000  # observed time when time is missing
    events = rows(decoded, "events", EVENT_COLUMNS)
    assert [e["status"] for e in events] == ["ok", "error"]
    assert events[0]["keys"]["msg"] == "ADT20250314162210004417"
    assert events[1]["status_message"].startswith("Delivery to PATACCT failed")


def test_protobuf_and_json_give_the_same_rows(norm):
    request = spans_request(5, seed=1)
    from_pb = traces_to_batch(
        decode_traces(request.SerializeToString(), "application/x-protobuf"), norm, now=1
    )
    from_json = traces_to_batch(decode_traces(to_json(request), "application/json"), norm, now=1)
    assert from_pb.batch.tables == from_json.batch.tables


def test_event_ids_are_deterministic(norm):
    body = spans_request(3, seed=7).SerializeToString()
    first = traces_to_batch(decode_traces(body, "application/x-protobuf"), norm, now=1)
    again = traces_to_batch(decode_traces(body, "application/x-protobuf"), norm, now=2)
    ids = [r[0] for r in first.batch.tables["events"][1]]
    assert ids == [r[0] for r in again.batch.tables["events"][1]]
    assert len(set(ids)) == 3


def test_unusable_records_become_dead_letters_with_reasons(norm):
    request = spans_request(4, seed=3)
    spans = request.resource_spans[0].scope_spans[0].spans
    spans[0].start_time_unix_nano = 0
    spans[1].trace_id = b"\x00" * 16
    spans[2].attributes.add(key="stitchboard.amount").value.string_value = "lots"
    decoded = traces_to_batch(request, norm, now=1)
    assert decoded.accepted == 1 and decoded.rejected == 3
    reasons = decoded.reasons
    assert reasons[0] == "resourceSpans[0].scopeSpans[0].spans[0]: no startTimeUnixNano"
    assert "traceId must be 16 bytes" in reasons[1]
    assert "'lots' is not an amount" in reasons[2]
    dead = decoded.batch.tables["dead_letters"][1]
    assert [d[5] for d in dead] == reasons
    # each payload is a one-record OTLP/JSON request, replayable through the same decoder
    payload = json.loads(dead[2][4])
    assert len(payload["resourceSpans"][0]["scopeSpans"][0]["spans"]) == 1
    assert "3 spans rejected" in decoded.summary("spans")


def test_an_undeclared_facility_is_stored_as_sent_not_dead_lettered(norm):
    request = spans_request(2, seed=3)
    spans = request.resource_spans[0].scope_spans[0].spans
    spans[0].attributes.add(key="facility.id").value.string_value = "ATLANTIS"
    decoded = traces_to_batch(request, norm, now=1)
    assert (decoded.accepted, decoded.rejected) == (2, 0)
    assert len(decoded.batch.tables["otel_traces"][1]) == 2
    assert decoded.batch.tables.get("dead_letters", ("", []))[1] == []
    events = rows(decoded, "events", EVENT_COLUMNS)
    assert "ATLANTIS" in {e["facility"] for e in events}


def test_dead_letter_payload_has_no_raw_phi(norm):
    request = spans_request(
        1, seed=4, extra={"patient.mrn": "MRN-SECRET-1", "stitchboard.amount": "lots"}
    )
    decoded = traces_to_batch(request, norm, now=1)
    assert decoded.rejected == 1
    assert b"MRN-SECRET-1" not in decoded.batch.tables["dead_letters"][1][0][4]


def test_bad_amount_is_rejected(norm):
    decoded = traces_to_batch(spans_request(1, extra={"stitchboard.amount": "lots"}), norm, now=1)
    assert decoded.reasons == [
        "resourceSpans[0].scopeSpans[0].spans[0]: attribute stitchboard.amount: 'lots' is not an"
        " amount"
    ]


@pytest.mark.parametrize(
    "body, message",
    [
        (b"{not json", "body is not valid JSON"),
        (b"[1, 2]", "body must be a JSON object"),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": "XYZ"}]}]}]}',
            "resourceSpans[0].scopeSpans[0].spans[0].spanId: 'XYZ' is not a hex id",
        ),
        (b'{"resourceSpans": "nope"}', "not an OTLP ExportTraceServiceRequest"),
    ],
)
def test_undecodable_json_names_the_problem(body, message):
    with pytest.raises(UndecodableBody) as info:
        decode_traces(body, "application/json")
    assert message in str(info.value)


def test_undecodable_protobuf():
    with pytest.raises(UndecodableBody, match="not a protobuf ExportTraceServiceRequest"):
        decode_traces(b"\xff\xff\xff\xff", "application/x-protobuf")


def test_unknown_media_type():
    with pytest.raises(UnsupportedMediaType, match="unsupported Content-Type 'text/csv'"):
        media_type("text/csv")
