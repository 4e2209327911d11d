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
    stamped = other.scalar(
        f"SELECT count() FROM {other.table('events')}"
        " WHERE inserted_at = fromUnixTimestamp64Micro({s:Int64}, 'UTC')",
        {"s": now // 1000},
    )
    spans = {
        (sp.trace_id, sp.span_id)
        for r in request.resource_spans
        for ss in r.scope_spans
        for sp in ss.spans
    }
    assert stamped == len(spans)  # one event per distinct span, all with this insert's stamp


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


def test_the_resource_is_checked_too():
    request = spans_request(2, seed=1)
    request.resource_spans[0].resource.attributes.add(key="r").value.array_value.SetInParent()
    assert not NativeTraces(CONFIG, NORM, "unused").eligible(request)


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
