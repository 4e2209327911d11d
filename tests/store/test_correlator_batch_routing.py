"""Routing in SQL equals the Python router: the same step of the same workflow for every event."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from correlator.batch.routing import NOT_ROUTED, literal, step_sql
from correlator.matching import UNEXPECTED, Router
from stitchboard.config.workflows import Workflow
from stitchboard.events import EVENT_COLUMNS, Event

SYSTEMS = ("A", "AB", "B", "b'\\")
OPERATIONS = ("ADT^A03", "ADT^A13", "DFT^P03", "")
VALUES = ("", "1", "12", "2", "A1")
PATTERNS = st.one_of(
    st.builds(lambda v: {"exact": v}, st.sampled_from((*SYSTEMS, *OPERATIONS, *VALUES))),
    st.builds(lambda v: {"prefix": v}, st.sampled_from(("A", "ADT", "1", "", "b'"))),
    st.builds(
        lambda v: {"regex": v},
        st.sampled_from(("^A", "B$", "1", "^$", "A|2", "[12]+", "^ADT\\^A0[0-9]$", "\\\\")),
    ),
)


@st.composite
def matches(draw) -> dict:
    match: dict = {}
    if draw(st.booleans()):
        match["system"] = draw(PATTERNS)
    if draw(st.booleans()):
        match["operation"] = draw(PATTERNS)
    names = draw(st.lists(st.sampled_from(("x", "y")), max_size=2, unique=True))
    match["attributes"] = {n: draw(PATTERNS) for n in names}
    if not match.get("system") and not match.get("operation") and not names:
        match["system"] = draw(PATTERNS)
    return match


@st.composite
def workflow_lists(draw) -> list[Workflow]:
    found = []
    for w in range(draw(st.integers(1, 3))):
        steps = [
            {"name": f"s{i}", "match": draw(matches()), "keys": ["k"]}
            for i in range(draw(st.integers(1, 4)))
        ]
        unexpected = draw(st.lists(matches(), max_size=2))
        found.append(
            Workflow.model_validate({"name": f"w{w}", "steps": steps, "unexpected": unexpected})
        )
    return found


@st.composite
def events(draw) -> list[Event]:
    found = []
    for n in range(draw(st.integers(1, 25))):
        attributes = {
            name: draw(st.sampled_from(VALUES)) for name in ("x", "y", "z") if draw(st.booleans())
        }
        found.append(
            Event(
                event_id=f"e{n}",
                event_time=n,
                observed_time=n,
                source_kind="span",
                system=draw(st.sampled_from(SYSTEMS)),
                operation=draw(st.sampled_from(OPERATIONS)),
                attributes=attributes,
            )
        )
    return found


def test_literals_escape_quotes_and_backslashes(store) -> None:
    assert literal("a'b\\c") == "'a\\'b\\\\c'"
    assert store.scalar(f"SELECT {literal(chr(39) + 'x' + chr(92))}") == "'x\\"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workflows=workflow_lists(), stream=events())
def test_sql_routing_equals_the_router(store, workflows, stream) -> None:
    table = store.table("events")
    store.command(f"TRUNCATE TABLE {table}")
    store.insert("events", EVENT_COLUMNS, [e.row() for e in stream])
    router = Router(workflows)
    for wi, workflow in enumerate(workflows):
        rows = store.rows(f"SELECT event_id, {step_sql(workflow)} FROM {table}")
        got = {event_id: step for event_id, step in rows}
        expected = {}
        for event in stream:
            routed = dict(router.route(event.system, event.operation, event.attributes))
            expected[event.event_id] = routed.get(wi, NOT_ROUTED)
        assert got == expected


def test_first_step_wins_then_unexpected(store) -> None:
    workflow = Workflow.model_validate(
        {
            "name": "w",
            "steps": [
                {"name": "a", "match": {"operation": {"prefix": "ADT"}}, "keys": ["k"]},
                {"name": "b", "match": {"operation": "ADT^A03"}, "keys": ["k"]},
            ],
            "unexpected": [{"system": "EHR"}],
        }
    )
    table = store.table("events")
    store.command(f"TRUNCATE TABLE {table}")
    sample = [
        Event("e1", 1, 1, "span", system="EHR", operation="ADT^A03"),
        Event("e2", 2, 2, "span", system="EHR", operation="DFT^P03"),
        Event("e3", 3, 3, "span", system="LAB", operation="DFT^P03"),
    ]
    store.insert("events", EVENT_COLUMNS, [e.row() for e in sample])
    rows = dict(store.rows(f"SELECT event_id, {step_sql(workflow)} FROM {table}"))
    # ADT^A03 matches both steps: the first in definition order takes it.
    assert rows == {"e1": 0, "e2": UNEXPECTED, "e3": NOT_ROUTED}


def test_a_regex_re2_refuses_is_named_before_anything_is_written(store) -> None:
    from correlator.batch.rebuild import rebuild
    from stitchboard.config.model import SlasConfig
    from stitchboard.errors import ConfigError

    config = SlasConfig.model_validate(
        {
            "facilities": [{"id": "F", "timezone": "UTC"}],
            "keys": {"k": {"attributes": ["k"]}},
            "workflows": [
                {
                    "name": "w",
                    "steps": [
                        {"name": "a", "match": {"operation": {"regex": "^A(?=D)"}}, "keys": ["k"]},
                        {"name": "b", "match": {"operation": {"regex": "^B"}}, "keys": ["k"]},
                    ],
                    "unexpected": [{"attributes": {"x": {"regex": "(a)\\1"}}}],
                }
            ],
        }
    )
    before = store.scalar(f"SELECT count() FROM {store.table('transactions')}")
    try:
        rebuild(store, config)
    except ConfigError as exc:
        lines = str(exc).splitlines()
    else:
        raise AssertionError("the pass ran with a regex RE2 refuses")
    assert [line.split(": regex")[0] for line in lines] == [
        "slas.yaml: workflows[0].steps[0].match.operation",
        "slas.yaml: workflows[0].unexpected[0].attributes.x",
    ]
    assert "'^A(?=D)' is not RE2 syntax" in lines[0]
    assert store.scalar(f"SELECT count() FROM {store.table('transactions')}") == before
