"""The engine-side OTLP decoder writes exactly the rows of the Python reference decoder."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.normalize import Normalizer
from collector.otlp import traces_to_batch
from collector.otlp_native import NativeTraces
from collector.rowbinary import varint
from stitchboard.config import load_config
from stitchboard.phi import Pseudonymizer
from stitchboard.stages import open_store
from stitchboard.store import Store
from tests.otlp_factory import spans_request
from tests.support import ROOT, TEST_KEY

CONFIG = load_config(ROOT / "slas.yaml")
NORM = Normalizer(CONFIG, Pseudonymizer(TEST_KEY.encode()))

TRACE_COLS = "* EXCEPT (ResourceAttributeItems, SpanAttributeItems)"
EVENT_COLS = "* EXCEPT (inserted_at)"


@pytest.fixture(scope="module")
def pair(store):
    """The module's database for the Python decoder, a second one for the engine decoder."""
    other = open_store(store.url, database=store.database + "_native")
    native = NativeTraces(CONFIG, NORM, other.database)
    yield store, other, native
    other.command(f"DROP DATABASE IF EXISTS `{other.database}`")


def clear(*stores: Store) -> None:
    for s in stores:
        for table in ("otel_traces", "events"):
            s.command(f"TRUNCATE TABLE {s.table(table)}")


def rows(s: Store, table: str, columns: str) -> list[tuple]:
    return s.rows(f"SELECT {columns} FROM {s.table(table)} FINAL ORDER BY tuple(*)")


def both_paths(pair, request: ExportTraceServiceRequest) -> None:
    reference, other, native = pair
    clear(reference, other)
    now = time.time_ns()
    decoded = traces_to_batch(request, NORM, now=now)
    assert decoded.rejected == 0
    for table, (columns, table_rows) in decoded.batch.tables.items():
        reference.insert(table, columns, table_rows)
    native.insert(other, [request.SerializeToString()], stamp=now // 1000, now=now)
    for table, columns in (("otel_traces", TRACE_COLS), ("events", EVENT_COLS)):
        got, expected = rows(other, table, columns), rows(reference, table, columns)
        assert len(got) == len(expected)
        for a, b in zip(got, expected, strict=True):
            assert [x for x in zip(a, b, strict=True) if x[0] != x[1]] == [], table
    # Every event of the insert carries its stamp (a span sent twice in one request is
    # two rows of one event id: count ids, not rows).
    stamped = other.scalar(
        f"SELECT uniqExact(event_id) FROM {other.table('events')}"
        " WHERE inserted_at = fromUnixTimestamp64Micro({s:Int64}, 'UTC')",
        {"s": now // 1000},
    )
    assert stamped == other.scalar(f"SELECT count() FROM {other.table('events')} FINAL")


def test_realistic_batch_is_identical(pair):
    request = spans_request(
        300,
        seed=3,
        extra={"patient.mrn": " MRN0042 ", "my.int": -7, "my.double": 0.25, "my.bool": False},
    )
    assert pair[2].eligible(request)
    both_paths(pair, request)


scalar = st.one_of(
    st.text(max_size=12),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.just(0.0),
    st.floats(min_value=1e-4, max_value=1e14),
    st.floats(min_value=-1e14, max_value=-1e-4),
    st.binary(max_size=8),
)
attr_names = st.sampled_from(
    [
        "charge.id",
        "visit.id",
        "visit.id",
        "encounter.id",
        "patient.mrn",
        "patient.name",
        "account.id",
        "gl.journal_id",
        "charge.batch_id",
        "stitchboard.operation",
        "note",
        "messaging.message.id",
        "service.name",
    ]
)


def set_value(kv, value) -> None:
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    elif isinstance(value, float):
        kv.value.double_value = value
    elif isinstance(value, bytes):
        kv.value.bytes_value = value
    else:
        kv.value.string_value = value


@st.composite
def requests(draw) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(1, 2))):
        rs = request.resource_spans.add()
        resource = {"service.name": draw(st.sampled_from(["PATACCT", "ERP_GL", ""]))}
        if draw(st.booleans()):
            resource["facility.id"] = draw(st.sampled_from(["NMC", "NMC01", "LCH02", "MSC"]))
        resource.update(draw(st.dictionaries(attr_names, scalar, max_size=3)))
        for key, value in resource.items():
            set_value(rs.resource.attributes.add(key=key), value)
        ss = rs.scope_spans.add()
        ss.scope.name = draw(st.text(max_size=5))
        for _ in range(draw(st.integers(0, 4))):
            span = ss.spans.add()
            span.trace_id = b"\x01" + draw(st.binary(min_size=15, max_size=15))
            span.span_id = draw(st.binary(min_size=7, max_size=7)) + b"\x09"
            span.parent_span_id = draw(st.sampled_from([b"", b"\x01" * 8]))
            span.name = draw(st.text(max_size=10))
            span.kind = draw(st.integers(0, 5))
            span.start_time_unix_nano = draw(st.integers(1, 2**62))
            span.end_time_unix_nano = draw(
                st.sampled_from([0, span.start_time_unix_nano, span.start_time_unix_nano + 1234])
            )
            span.status.code = draw(st.integers(0, 2))
            span.status.message = draw(st.text(max_size=6))
            attrs = draw(st.dictionaries(attr_names, scalar, max_size=6))
            if draw(st.booleans()):
                attrs["stitchboard.amount"] = draw(st.sampled_from(["12", "-3.5", "1999.99"]))
            if draw(st.booleans()):
                attrs["facility.id"] = draw(st.sampled_from(["LCH", "MSC03"]))
            for key, value in attrs.items():
                set_value(span.attributes.add(key=key), value)
            for _ in range(draw(st.integers(0, 2))):
                ev = span.events.add(
                    time_unix_nano=draw(st.integers(0, 2**62)), name=draw(st.text(max_size=4))
                )
                for key, value in draw(st.dictionaries(attr_names, scalar, max_size=2)).items():
                    set_value(ev.attributes.add(key=key), value)
            for _ in range(draw(st.integers(0, 1))):
                link = span.links.add(
                    trace_id=b"\x02" * 16,
                    span_id=b"\x03" * 8,
                    trace_state=draw(st.text(max_size=4)),
                )
                set_value(link.attributes.add(key="patient.mrn"), draw(scalar))
    return request


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=requests())
def test_random_requests_give_identical_rows(pair, request):
    assert pair[2].eligible(request)
    both_paths(pair, request)


@pytest.mark.parametrize(
    "change, why",
    [
        (
            lambda s: s.attributes.add(key="a").value.array_value.values.add(string_value="x"),
            "array values are rendered as JSON by the Python decoder",
        ),
        (lambda s: setattr(s, "start_time_unix_nano", 0), "invalid: dead letter"),
        (
            lambda s: s.attributes.add(key="stitchboard.amount").value.__setattr__(
                "string_value", "1.005"
            ),
            "more than two decimals: Python rounding",
        ),
        (
            lambda s: s.attributes.add(key="m").value.kvlist_value.values.add(key="k"),
            "map values are rendered as JSON by the Python decoder",
        ),
        (
            lambda s: s.attributes.add(key="d").value.__setattr__("double_value", 1e15),
            "a double Python and ClickHouse format apart (exponent)",
        ),
        (
            lambda s: s.attributes.add(key="d").value.__setattr__("double_value", 5e-5),
            "a small double Python and ClickHouse format apart",
        ),
        (lambda s: setattr(s, "trace_id", bytes(16)), "an all-zero trace id: dead letter"),
        (lambda s: setattr(s, "trace_id", b"\x01" * 8), "a short trace id: dead letter"),
        (lambda s: setattr(s, "span_id", bytes(8)), "an all-zero span id: dead letter"),
        (
            lambda s: s.events.add(name="e").attributes.add(key="a").value.array_value.values.add(),
            "an array in an event's attributes",
        ),
        (
            lambda s: (
                s.links.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8)
                .attributes.add(key="a")
                .value.kvlist_value.SetInParent()
            ),
            "a map in a link's attributes",
        ),
    ],
)
def test_requests_the_engine_does_not_take(change, why):
    request = spans_request(2, seed=1)
    change(request.resource_spans[0].scope_spans[0].spans[0])
    native = NativeTraces(CONFIG, NORM, "unused")
    assert not native.eligible(request), why
    assert native.quick_spans(request.SerializeToString()) is None, why


def test_the_resource_is_checked_too():
    request = spans_request(2, seed=1)
    request.resource_spans[0].resource.attributes.add(key="r").value.array_value.SetInParent()
    native = NativeTraces(CONFIG, NORM, "unused")
    assert not native.eligible(request)
    assert native.quick_spans(request.SerializeToString()) is None


def test_the_first_amount_attribute_set_is_the_one_judged():
    """As the Python decoder reads amounts: slas.yaml's first amount attribute that is set
    decides; a later one with more decimals does not matter, and ints are not text."""
    names = CONFIG.otel.amount_attributes
    assert len(names) >= 1
    request = spans_request(1, seed=1)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    for kv in list(span.attributes):
        if kv.key in names:
            span.attributes.remove(kv)
    span.attributes.add(key=names[0]).value.string_value = "12.50"
    native = NativeTraces(CONFIG, NORM, "unused")
    assert native.eligible(request)
    if len(names) > 1:
        span.attributes.add(key=names[1]).value.string_value = "1.005"
        assert native.eligible(request)
    span.attributes.add(key="x").value.int_value = 7
    assert native.eligible(request)


def test_an_undeclared_facility_is_kept_as_sent_by_both_paths(pair):
    request = spans_request(2, seed=1)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.add(key="facility.id").value.string_value = "ZZZ"
    span = request.resource_spans[0].scope_spans[0].spans[1]
    span.attributes.add(key="facility.id").value.string_value = "LCH"  # an alias
    assert pair[2].eligible(request)
    both_paths(pair, request)
    facilities = pair[1].rows(
        f"SELECT facility FROM {pair[1].table('events')} FINAL"
        " WHERE facility IN ('ZZZ', 'LCH02') ORDER BY facility"
    )
    assert [f for (f,) in facilities] == ["LCH02", "ZZZ"]


# -- the quick check: the common request judged from its body -------------------------------


def _spans(request: ExportTraceServiceRequest) -> int:
    return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)


def _values(request: ExportTraceServiceRequest):
    for rs in request.resource_spans:
        yield from rs.resource.attributes
        for ss in rs.scope_spans:
            yield from ss.scope.attributes
            for span in ss.spans:
                yield from span.attributes
                for ev in span.events:
                    yield from ev.attributes
                for ln in span.links:
                    yield from ln.attributes


def _only_for_the_full_check(request: ExportTraceServiceRequest) -> bool:
    """What the quick check leaves to ``eligible`` in an otherwise eligible request: a
    double, or an amount attribute that is not text."""
    amounts = set(CONFIG.otel.amount_attributes)
    return any(
        kv.value.WhichOneof("value") == "double_value"
        or (kv.key in amounts and kv.value.WhichOneof("value") not in (None, "string_value"))
        for kv in _values(request)
    )


@settings(max_examples=150, deadline=None)
@given(request=requests())
def test_the_quick_check_takes_what_the_full_check_takes(request):
    native = NativeTraces(CONFIG, NORM, "unused")
    quick = native.quick_spans(request.SerializeToString())
    if quick is not None:
        assert native.eligible(request)
        assert quick == _spans(request)
    else:
        assert not native.eligible(request) or _only_for_the_full_check(request)


def test_plain_requests_are_counted_by_the_quick_check():
    native = NativeTraces(CONFIG, NORM, "unused")
    request = spans_request(3, seed=2, extra={"my.int": 7, "my.bool": True, "my.bytes": b"\x01"})
    request.resource_spans.add().CopyFrom(spans_request(2, seed=5).resource_spans[0])
    assert native.quick_spans(request.SerializeToString()) == 5
    assert native.quick_spans(ExportTraceServiceRequest().SerializeToString()) == 0


def _drop_amounts(span) -> None:
    for kv in list(span.attributes):
        if kv.key == "stitchboard.amount":
            span.attributes.remove(kv)


@pytest.mark.parametrize("amount", ["12.50", "-3", "0.5", "999999999999999.99", ""])
def test_text_amounts_the_engine_reads_pass_the_quick_check(amount):
    request = spans_request(2, seed=1)
    span = request.resource_spans[0].scope_spans[0].spans[1]
    _drop_amounts(span)
    span.attributes.add(key="stitchboard.amount").value.string_value = amount
    native = NativeTraces(CONFIG, NORM, "unused")
    assert native.eligible(request)
    assert native.quick_spans(request.SerializeToString()) == 2


@pytest.mark.parametrize(
    "value",
    [
        lambda v: setattr(v, "double_value", 0.25),  # a double both decoders format alike
        lambda v: setattr(v, "int_value", 1250),  # an amount that is not text
    ],
)
def test_what_the_quick_check_cannot_read_goes_to_the_full_check(value):
    request = spans_request(2, seed=1)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    _drop_amounts(span)
    value(span.attributes.add(key="stitchboard.amount").value)
    native = NativeTraces(CONFIG, NORM, "unused")
    assert native.quick_spans(request.SerializeToString()) is None
    assert native.eligible(request)


def _field(tag: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field."""
    return bytes([tag]) + varint(len(payload)) + payload


def _request_around(span_bytes: bytes) -> bytes:
    """A request of one resource and scope (from the factory) holding these span bytes."""
    rs = spans_request(1, seed=1).resource_spans[0]
    scope = rs.scope_spans[0]
    del scope.spans[:]
    scope_bytes = scope.SerializeToString() + _field(0x12, span_bytes)
    del rs.scope_spans[:]
    return _field(0x0A, rs.SerializeToString() + _field(0x12, scope_bytes))


def test_a_body_not_in_canonical_form_goes_to_the_full_check():
    span = spans_request(1, seed=3).resource_spans[0].scope_spans[0].spans[0]
    body = _request_around(span.SerializeToString() + _field(0x2A, b"x"))  # name twice
    request = ExportTraceServiceRequest.FromString(body)
    assert request.resource_spans[0].scope_spans[0].spans[0].name == "x"  # the last one
    native = NativeTraces(CONFIG, NORM, "unused")
    assert native.eligible(request)
    assert native.quick_spans(body) is None


def test_an_amount_sent_value_first_is_judged_by_the_full_check():
    # key and value swapped: the amount's bytes do not follow its key; as read, 1.005
    span = spans_request(1, seed=3).resource_spans[0].scope_spans[0].spans[0]
    _drop_amounts(span)
    value = _field(0x0A, b"1.005")
    swapped = _field(0x12, value) + _field(0x0A, b"stitchboard.amount")
    body = _request_around(span.SerializeToString() + _field(0x4A, swapped))
    request = ExportTraceServiceRequest.FromString(body)
    native = NativeTraces(CONFIG, NORM, "unused")
    assert not native.eligible(request)
    assert native.quick_spans(body) is None


def test_an_amount_key_inside_other_text_does_not_pass_for_an_amount():
    key = b"\n\x12stitchboard.amount"
    native = NativeTraces(CONFIG, NORM, "unused")
    for text, quick in (
        (key + b"\x12\x07\n\x051.005", None),  # reads as a bad amount: the full check
        (key + b"!", None),  # reads as nothing: the full check
        (key + b"\x12\x06\n\x0412.5", 1),  # reads as a good amount: harmless
    ):
        request = spans_request(1, seed=4)
        span = request.resource_spans[0].scope_spans[0].spans[0]
        span.attributes.add(key="note").value.string_value = text.decode()
        assert native.eligible(request)
        assert native.quick_spans(request.SerializeToString()) == quick


def test_the_sdk_exporters_requests_pass_the_quick_check():
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "PATACCT", "facility.id": "NMC01"})
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("charges", "1.0")
    for i in range(3):
        with tracer.start_as_current_span("charge.post") as span:
            span.set_attribute("charge.id", f"C{i}")
            span.set_attribute("stitchboard.amount", "125.50")
            span.set_attribute("line.count", 3)
            span.add_event("posted", {"batch": "B1"})
    provider.shutdown()
    body = encode_spans(exporter.get_finished_spans()).SerializeToString()
    native = NativeTraces(CONFIG, NORM, "unused")
    assert native.eligible(ExportTraceServiceRequest.FromString(body))
    assert native.quick_spans(body) == 3


def test_a_request_with_an_undecodable_body_is_left_to_the_full_parse():
    assert NativeTraces(CONFIG, NORM, "unused").quick_spans(b"\x0a\xff\xff") is None


def test_with_two_amount_attributes_the_full_check_judges_any_amount():
    """The first amount attribute set decides: only ``eligible`` reads which one that is."""
    otel = CONFIG.otel.model_copy(
        update={"amount_attributes": ["charge.amount", "stitchboard.amount"]}
    )
    native = NativeTraces(CONFIG.model_copy(update={"otel": otel}), NORM, "unused")
    request = spans_request(2, seed=1)
    assert any(kv.key == "stitchboard.amount" for kv in _values(request))
    assert native.eligible(request)
    assert native.quick_spans(request.SerializeToString()) is None
    for span in request.resource_spans[0].scope_spans[0].spans:
        _drop_amounts(span)
    assert native.quick_spans(request.SerializeToString()) == 2


def test_without_a_copy_of_the_schema_every_request_takes_the_full_check(monkeypatch):
    import collector.otlp_native as otlp_native

    monkeypatch.setattr(otlp_native, "_quick_request_type", lambda: None)
    request = spans_request(2, seed=1)
    native = NativeTraces(CONFIG, NORM, "unused")
    assert native.quick_spans(request.SerializeToString()) is None
    assert native.eligible(request)
