"""The engine-side HL7 path writes exactly the ``events`` rows of the Python path.

The Python extractor (``Intake`` → ``CompiledExtractor``, itself checked against the
reference ``Hl7Extractor``) is the reference: for every message the engine takes,
its rows must equal the Python path's rows column for column; the messages it
leaves must be ones the SQL cannot be sure about. Checked on the shared samples,
on mutated samples, and on generated messages (Hypothesis) built to exercise what
the SQL computes itself: PHI leaves and identifier types, several FT1 lines,
explicit nulls, amounts, times with and without offsets in each facility's zone
(daylight-saving changes included), under several mappings.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.hl7_native import Loaded, NativeHl7
from collector.intake import Intake
from stitchboard.config import SlasConfig, parse_config
from stitchboard.events import EVENT_COLUMNS
from stitchboard.stages import open_store
from stitchboard.store import Store
from tests.unit.test_hl7_compiled import CONFIGS, PSEUDO, SAMPLES, mutate

pytestmark = pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated:DeprecationWarning")

NOW = 1_767_225_600_123_456_789
SOURCE = "charges.hl7"
ENGINE_CONFIGS: dict[str, SlasConfig] = {
    "repo": CONFIGS["repo"],
    "defaults": CONFIGS["defaults"],
    "no_repeat": CONFIGS["no_repeat"],
    # The "other" mapping of the compiled-extractor tests, without store_message (which
    # the SQL does not cover): PHI components, a repeated PID, identifier types.
    "other": parse_config(
        "facilities:\n  - {id: WST, name: West, timezone: Europe/Berlin, aliases: [W1]}\n"
        "  - {id: EST, name: East, timezone: Australia/Lord_Howe}\n"
        "messages:\n  hl7:\n    facility: [PV1-3.4, MSH-6]\n    event_time: [MSH-7, EVN-2]\n"
        "    sent_time: [EVN-2.1]\n    system: [MSH-5, MSH-3.2]\n    operation: [MSH-9.1]\n"
        "    status: [MSA-1, ZST-2]\n    status_map: {AA: ok, AE: error, XX: bogus}\n"
        "    status_message: [MSA-3, ERR-8]\n    amount: [FT1-12.1.1, FT1-11]\n"
        "    keys: {visit: [PV1-19.1], charge_code: [FT1-7.1], mrn: ['PID-3[2].1'],"
        " alt: ['PID-3[MR].4.2', PID-2], name: [PID-5]}\n"
        "    attributes: {cpt: FT1-25.1, kind: 'PID-3[AN]', unit: PV1-3.2.1}\n"
        "    repeat_segment: PID\n    phi_fields: [PID-3, PID-5.1, NK1-2]\n"
    ),
}


@pytest.fixture(scope="module")
def pair(store: Store):
    """The module's database for the Python path, a second one for the engine."""
    engine = open_store(store.url, database=store.database + "_engine")
    natives = {name: NativeHl7(config, PSEUDO, engine) for name, config in ENGINE_CONFIGS.items()}
    yield store, engine, natives
    for native in natives.values():
        native.close()
    engine.command(f"DROP DATABASE IF EXISTS `{engine.database}`")


def rows(s: Store) -> list[tuple[object, ...]]:
    """The events as readers see them (FINAL): the engine path leaves the copies of one id
    inside a message (repeated segments with the same set id) to the merges, the Python
    path's insert collapses them at once."""
    return s.rows(f"SELECT * EXCEPT (inserted_at) FROM {s.table('events')} FINAL ORDER BY tuple(*)")


def both_paths(pair, config: str, messages: list[str]) -> Loaded:
    """Load ``messages`` both ways; the engine's rows equal the Python path's for the
    messages it took. Messages whose events share an id with an earlier one are left out
    (which copy a store keeps is then up to the store, not to the parser)."""
    reference, engine, natives = pair
    for s in (reference, engine):
        s.command(f"TRUNCATE TABLE {s.table('events')}")
    intake = Intake(ENGINE_CONFIGS[config], PSEUDO, now=lambda: NOW)
    kept, outcomes, seen = [], [], set()
    for text in messages:
        outcome = intake.hl7(text.encode("utf-8"), SOURCE, f"file:{SOURCE}")
        ids = {e.event_id for e in outcome.events}
        if ids & seen:
            continue
        seen |= ids
        kept.append(text.encode("utf-8"))
        outcomes.append(outcome)
    loaded = natives[config].load(kept, SOURCE, NOW)
    left = set(loaded.rest)
    taken = [o for i, o in enumerate(outcomes) if i not in left]
    assert all(o.accepted for o in taken), "the engine took a message Python rejects"
    assert loaded.messages == len(taken)
    expected = [e.row() for o in taken for e in o.events]
    assert loaded.events == len(expected)
    if expected:
        reference.insert("events", EVENT_COLUMNS, expected)
    got, want = rows(engine), rows(reference)
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert [(c, x, y) for c, x, y in zip(EVENT_COLUMNS, a, b, strict=True) if x != y] == []
    return loaded


@pytest.mark.parametrize("config", sorted(ENGINE_CONFIGS))
def test_samples_give_the_python_rows(pair, config: str) -> None:
    variants = [t for s in SAMPLES for t in (s, s.replace("\r", "\n"), s.replace("\r", "\r\n"))]
    loaded = both_paths(pair, config, variants)
    if config == "repo":
        # All but the FHS batch (rejected, in its three line-ending variants) and the custom
        # delimiters; escapes in unread fields (ORU's NTE, the DFT's ZPD) are no obstacle.
        # The three-line DFT gives three events.
        assert loaded.messages == 7 and loaded.events == 9


def test_what_the_engine_leaves_to_python(pair) -> None:
    """Escapes, other delimiters, rejections and times near a DST change go to Python."""
    base = "MSH|^~\\&|EHR|NMC01|ENG|NMC01|{when}||ADT^A03|{control}|P|2.5.1\rEVN|A03|{when}"
    cases = [
        base.format(when="20260310120000", control="ok-1"),  # taken
        base.format(when="20260310120000", control="esc\\T\\1"),  # an escape
        base.format(when="20260310120000", control="z-esc") + "\rZPD|\\S\\",  # unread: taken
        base.format(when="20260308023000", control="dst-1"),  # a skipped hour in Chicago
        base.format(when="20261101013000", control="dst-2"),  # a repeated hour
        base.format(when="20260230120000", control="bad-date"),  # rejected: no usable time
        base.format(when="20260310120000", control=""),  # no MSH-10
        base.format(when="19690101000000", control="old"),  # before 1971
        base.format(when="20260310120000", control="amt") + "\rFT1|1|C1|B1||||||||1,234.567",
        "MSH#^~\\&#EHR#NMC01#ENG#NMC01#20260310120000##ADT^A03#delim#P#2.5.1",
        "PID|not a message",
    ]
    loaded = both_paths(pair, "repo", cases)
    assert loaded.rest == (1, *range(3, len(cases)))


SAFE = st.text(alphabet=st.sampled_from(list('AZaz09 .-+"')), max_size=10)
NAME = st.text(alphabet=st.sampled_from(list('AZaz09 .-+é"')), max_size=10)
VALID_WHEN = st.builds(
    lambda y, mo, d, h, mi, s, zone: f"{y:04d}{mo:02d}{d:02d}{h:02d}{mi:02d}{s:02d}{zone}",
    st.integers(1971, 2105),
    st.integers(1, 12),
    st.integers(1, 28),
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 59),
    st.sampled_from(["", "", "", "-0500", "+0000", "+1400", ".5", ".123456-0330"]),
)
WHEN = st.one_of(
    VALID_WHEN,
    VALID_WHEN,
    VALID_WHEN,
    st.sampled_from(
        [
            "20260308023000",
            "20260308013000",
            "20261101013000",
            "20260329023000",
            "20261004020000",
            "2026031012",
            "202603",
            "2026",
            "20260310120000.1234",
            "20260310120000+0530",
            "20260310120000-1400",
            "20260310120000+1500",
            "20240229235959",
            "20230229000000",
            "20260310246000",
            "2026031012000",
            "",
            '""',
        ]
    ),
    st.builds(
        lambda y, mo, d, h, mi, s: f"{y:04d}{mo:02d}{d:02d}{h:02d}{mi:02d}{s:02d}",
        st.integers(1969, 2107),
        st.integers(0, 13),
        st.integers(0, 32),
        st.integers(0, 24),
        st.integers(0, 60),
        st.integers(0, 60),
    ),
)
FACILITY = st.sampled_from(["NMC01", "NMC", "LCH", "MSC03", "ELSE", "", "W1", "EST", '""'])
AMOUNT = st.sampled_from(["12.50", "-3", "+7.1", "1,250.00", "007", "", "", "0.125", "1e3", "abc"])


@st.composite
def message(draw: st.DrawFn) -> str:
    """A clean message (no escapes, default delimiters) with drawn values."""
    control = draw(st.text(alphabet="ABC123-", min_size=1, max_size=8))
    when = draw(WHEN)
    head = (
        f"MSH|^~\\&|EHR^{draw(NAME)}|{draw(FACILITY)}|{draw(SAFE)}|{draw(FACILITY)}|{when}||"
        f"{draw(st.sampled_from(['DFT^P03', 'ADT^A03^ADT_A03', 'ACK', '^A01', '']))}|"
        f"{control}|P|{draw(st.sampled_from(['2.5.1', '2.3^x', '']))}"
    )
    segments = [head]
    if draw(st.booleans()):
        segments.append(f"EVN|A03|{draw(WHEN)}||||{draw(WHEN)}")
    for _ in range(draw(st.integers(0, 2))):
        ids = draw(
            st.lists(
                st.builds(
                    lambda v, t, s: f"{v}^^^NMC^{t}&{s}" if s else f"{v}^^^NMC^{t}",
                    SAFE,
                    st.sampled_from(["MR", "mr", "AN", "", " MR "]),
                    SAFE,
                ),
                max_size=3,
            )
        )
        name = f"{draw(NAME)}^{draw(NAME)}&{draw(SAFE)}"
        segments.append(
            f"PID|1|{draw(SAFE)}|{'~'.join(ids)}||{name}||19580722|||||||||||{draw(SAFE)}"
        )
    if draw(st.booleans()):
        segments.append(f"PV1|1|I|OR^{draw(SAFE)}^^{draw(FACILITY)}" + "|" * 16 + draw(SAFE))
    if draw(st.booleans()):
        segments.append(
            f"MSA|{draw(st.sampled_from(['AA', 'AE', 'ar', 'XX', '', ' CE']))}|{draw(SAFE)}|"
            f"{draw(SAFE)}"
        )
    for _ in range(draw(st.integers(0, 3))):
        set_id = draw(st.sampled_from(["1", "2", "", '""', " 3 "]))
        segments.append(
            f"FT1|{set_id}|{draw(SAFE)}|{draw(SAFE)}|||{draw(st.sampled_from(['CG', 'CD', '']))}"
            f"|{draw(SAFE)}^X|||{draw(AMOUNT)}|{draw(AMOUNT)}&1" + "|" * 13 + draw(SAFE)
        )
    if draw(st.booleans()):
        segments.append(f"NK1|1|{draw(SAFE)}^{draw(SAFE)}")
    if draw(st.booleans()):
        draw_order = draw(st.permutations(segments[1:]))
        segments = [head, *draw_order]
    separator = draw(st.sampled_from(["\r", "\n", "\r\n"]))
    return separator.join(segments)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.sampled_from(sorted(ENGINE_CONFIGS)), st.lists(message(), min_size=20, max_size=150))
def test_generated_messages_give_the_python_rows(pair, config: str, messages: list[str]) -> None:
    # A control id of its own for each (MSH-10 is followed by MSH-11 "P"): few share ids.
    both_paths(pair, config, [m.replace("|P|", f"-{i}|P|", 1) for i, m in enumerate(messages)])


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.sampled_from(sorted(ENGINE_CONFIGS)), st.integers(0, 2**32))
def test_mutated_samples_give_the_python_rows(pair, config: str, seed: int) -> None:
    rnd = random.Random(seed)
    both_paths(pair, config, [mutate(rnd, rnd.choice(SAMPLES)) for _ in range(300)])


def test_the_engine_takes_most_clean_messages(pair) -> None:
    """The comparison above means something: clean messages are taken, not left."""
    texts = [s for s in SAMPLES if "\\" not in s[9:] and s.startswith("MSH|^~\\&|")]
    many = [t.replace("|P|2.", f"{n}|P|2.", 1) for n in range(200) for t in texts]
    loaded = both_paths(pair, "repo", many)
    assert loaded.messages == len(many) and not loaded.rest


def test_landing_tables_of_dead_processes_are_dropped(pair) -> None:
    """A landing table left by a process killed mid-import goes with the next load."""
    _, engine, natives = pair
    stale = engine.table("_hl7_landing_999999999_1")
    engine.command(f"CREATE TABLE {stale} (idx UInt32) ENGINE = Memory")
    native = NativeHl7(ENGINE_CONFIGS["repo"], PSEUDO, engine)
    try:
        native.load([SAMPLES[1].encode()], SOURCE, NOW)
        tables = engine.rows(
            "SELECT name FROM system.tables WHERE database = {db:String}"
            " AND startsWith(name, '_hl7_landing_')",
            {"db": engine.database},
        )
        assert ("_hl7_landing_999999999_1",) not in tables
        assert any(name.startswith(f"_hl7_landing_{os.getpid()}_") for (name,) in tables)
    finally:
        native.close()


def test_batches_are_indexed_on_across_batches(pair) -> None:
    """``load_batches`` (the import's path: batches taken while the engine parses) leaves
    the same messages as one ``load`` of them all, by their place in the whole sequence."""
    reference, engine, natives = pair
    base = "MSH|^~\\&|EHR|NMC01|ENG|NMC01|{w}||ADT^A03|{c}|P|2.5.1\rEVN|A03|{w}"
    good = [base.format(c=f"b-{n}", w="20260310120000") for n in range(9)]
    bad = [base.format(c=f"x-{n}", w="20260230120000") for n in range(3)]  # no usable time
    texts = [good[0], bad[0], *good[1:4], bad[1], *good[4:], bad[2]]
    data = [t.encode() for t in texts]
    engine.command(f"TRUNCATE TABLE {engine.table('events')}")
    batches = [data[:1], [], data[1:5], data[5:6], data[6:]]
    loaded = natives["repo"].load_batches(batches, SOURCE, NOW)
    assert loaded.rest == (1, 5, 11)
    assert loaded.messages == 9 and loaded.events == 9
    stored = engine.rows(f"SELECT keys['msg'] FROM {engine.table('events')} FINAL ORDER BY 1")
    assert stored == [(f"b-{n}",) for n in range(9)]


def test_a_failing_source_writes_nothing_and_raises_its_error(pair) -> None:
    _, engine, natives = pair
    text = "MSH|^~\\&|EHR|NMC01|ENG|NMC01|20260310120000||ADT^A03|f-{n}|P|2.5.1"

    def batches():
        yield [text.format(n=n).encode() for n in range(50)]
        raise OSError("the file went away")

    engine.command(f"TRUNCATE TABLE {engine.table('events')}")
    with pytest.raises(OSError, match="the file went away"):
        natives["repo"].load_batches(batches(), SOURCE, NOW)
    assert engine.scalar(f"SELECT count() FROM {engine.table('events')}") == 0
    # The same loader goes on working.
    loaded = natives["repo"].load([text.format(n=1).encode()], SOURCE, NOW)
    assert loaded.messages == 1 and loaded.events == 1


def test_without_named_pipes_every_message_goes_to_python(pair, tmp_path: Path) -> None:
    """Where no pipe can be made (here: the directory does not exist), the engine path is
    off with the reason, and a load hands every message back for the Python path."""
    _, engine, _ = pair
    missing = tmp_path / "gone"
    native = NativeHl7(ENGINE_CONFIGS["repo"], PSEUDO, engine, scratch=missing)
    try:
        assert not native.enabled
        assert native.reason.startswith(f"no directory for named pipes in {missing}: ")
        loaded = native.load([SAMPLES[1].encode(), SAMPLES[2].encode()], SOURCE, NOW)
        assert loaded == Loaded(0, 0, (0, 1))
    finally:
        native.close()


def test_the_pipe_directory_is_checked_with_a_pipe(pair, tmp_path: Path) -> None:
    """A usable directory gets a private subdirectory, emptied of the probe pipe."""
    _, engine, _ = pair
    native = NativeHl7(ENGINE_CONFIGS["repo"], PSEUDO, engine, scratch=tmp_path)
    try:
        assert native.enabled and native.reason == ""
        (made,) = tmp_path.iterdir()
        assert made.name.startswith("stitchboard-hl7-") and list(made.iterdir()) == []
    finally:
        native.close()
