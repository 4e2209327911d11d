"""HL7 v2 parsing and extraction: the shared samples, messages in the style of public
test suites (v2.3–v2.8, repetitions, escapes, Z-segments, custom delimiters, missing
optional fields), checked field by field against the ``hl7`` package."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import hl7
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.hl7.ack import ack_text
from collector.hl7.dtm import parse_dtm
from collector.hl7.extract import Hl7Extractor
from collector.hl7.framing import MllpDecoder, split_hl7_file
from collector.hl7.message import FieldPath, Hl7Error, Hl7Message
from collector.intake import Intake
from stitchboard.config import SlasConfig, parse_config
from stitchboard.config.loader import load_config
from stitchboard.phi import Pseudonymizer

DATA = Path(__file__).parents[1] / "data" / "hl7"
ROOT = Path(__file__).resolve().parents[2]
PSEUDO = Pseudonymizer(b"test-key-0123456789abcdef")


def sample(name: str) -> str:
    return (DATA / name).read_bytes().decode("utf-8")


def repo_config() -> SlasConfig:
    return load_config(ROOT / "slas.yaml")


SAMPLES = sorted(p.name for p in DATA.glob("*.hl7") if not p.name.startswith("batch"))


@pytest.mark.parametrize("name", SAMPLES)
def test_every_leaf_matches_the_hl7_package(name: str) -> None:
    text = sample(name)
    reference = hl7.parse(text.replace("\n", "\r"))
    ours = Hl7Message.parse(text)
    checked = 0
    for index, segment in enumerate(reference):
        seg = str(segment[0])
        first = index == ours.occurrences(seg)[0]
        if not first:
            continue
        for f in range(1, len(segment)):
            for c in range(1, 6):
                path = FieldPath(seg, f, c)
                if seg == "MSH" and f <= 2:
                    continue
                try:
                    expected = reference[f"{seg}.F{f}.R1.C{c}"]
                except IndexError:  # the library's way of saying "no such component"
                    expected = ""
                assert ours.value(path) == str(expected).strip(), f"{name} {path}"
                checked += 1
    assert checked > 20


def test_shared_samples_become_the_documented_events() -> None:
    intake = Intake(repo_config(), PSEUDO)
    adt = intake.hl7(sample("adt_a03.hl7"), "file:adt", "file:adt_a03.hl7")
    (event,) = adt.events
    assert (event.facility, event.system, event.operation) == ("NMC01", "EHR_ADT", "ADT^A03")
    # EVN-6 (20250314161500) in Chicago (CDT, UTC-5): 21:15 UTC.
    assert event.event_time == parse_dtm("20250314211500+0000")
    assert event.keys["visit"] == "VN20250310-000917"
    assert event.keys["account"] == "ACCT7730012845"
    assert event.keys["msg"] == "ADT20250314162210004417"
    assert event.keys["mrn"] == PSEUDO("MRN00482917")
    assert event.status == "ok" and event.source_kind == "hl7"

    charge = intake.hl7(sample("dft_p03.hl7"), "x", "x").events[0]
    assert charge.amount == Decimal("18450.00")
    assert charge.keys["charge"] == "CHG-88120457"
    assert charge.keys["charge_batch"] == "B20250312-OR07"
    credit = intake.hl7(sample("dft_p03_credit.hl7"), "x", "x").events[0]
    assert credit.amount == Decimal("-18450.00")

    ack = intake.hl7(sample("ack.hl7"), "x", "x").events[0]
    # The ACK joins the message it acknowledges: its msg key is MSA-2.
    assert ack.keys["msg"] == "DFT20250312110545000188"
    assert ack.operation == "ACK^P03" and ack.status == "ok"


def test_several_ft1_lines_give_one_event_per_charge_line() -> None:
    intake = Intake(repo_config(), PSEUDO)
    outcome = intake.hl7(sample("v26_dft_p03_three_lines.hl7"), "x", "x")
    assert outcome.accepted
    events = outcome.events
    assert [e.keys["charge"] for e in events] == ["CHG-L-1001", "CHG-L-1002", "CHG-L-1003"]
    assert [e.amount for e in events] == [Decimal("1250.00"), Decimal("180.50"), Decimal("30.00")]
    assert {e.keys["visit"] for e in events} == {"VN-LCH-2026-0310-01"}
    assert {e.facility for e in events} == {"LCH02"}  # MSH-4 alias LCH
    assert len({e.event_id for e in events}) == 3
    # The third FT1 has no set id: its ordinal stands in.
    assert [e.attributes["hl7.ft1_set_id"] for e in events] == ["1", "2", "3"]
    # MSH-7 with an explicit offset wins over the facility zone.
    assert events[0].event_time == parse_dtm("20260310191500+0000")
    again = intake.hl7(sample("v26_dft_p03_three_lines.hl7"), "y", "y")
    assert [e.event_id for e in again.events] == [e.event_id for e in events]


def test_custom_delimiters_and_escapes() -> None:
    intake = Intake(repo_config(), PSEUDO)
    (event,) = intake.hl7(sample("v28_bar_p05_custom_delimiters.hl7"), "x", "x").events
    assert event.operation == "BAR^P05" and event.facility == "MSC03"
    assert event.keys["account"] == "ACCT-M-3$X"  # !F! is the escaped field separator
    assert event.keys["visit"] == "VN-M-42"
    assert event.keys["mrn"] == PSEUDO("MRN-M-3")


def test_an_undecodable_escape_never_puts_the_raw_field_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """hl7's unescape logs the whole field on an empty sequence or a character-set switch;
    a field may hold PHI, so nothing of it reaches the log."""
    msh = "MSH|^~\\&|A|B|C|D|20260310101500||ADT^A01|M1|P|2.5"
    message = Hl7Message.parse(msh + "\rPID|1||DOE\\\\JOHN\\C2842\\X")
    with caplog.at_level("DEBUG"):
        value = message.value(FieldPath.parse("PID-3"))
    assert value is not None and value.startswith("DOE")
    assert not [r for r in caplog.records if "DOE" in r.getMessage()]


def test_older_versions_and_missing_optional_fields_without_facilities() -> None:
    intake = Intake(SlasConfig(), PSEUDO)
    (adt,) = intake.hl7(sample("v23_adt_a01.hl7"), "x", "x").events
    assert adt.operation == "ADT^A01" and adt.facility == "GOOD HEALTH HOSPITAL"
    assert adt.attributes["hl7.version"] == "2.3"
    assert "visit" not in adt.keys  # PV1-19 is absent: no key, no error
    (oru,) = intake.hl7(sample("v24_oru_r01.hl7"), "x", "x").events
    assert oru.operation == "ORU^R01"
    assert oru.event_time == parse_dtm("200202150930")  # no EVN: MSH-7


def test_undeclared_facility_is_kept_and_missing_time_is_rejected() -> None:
    intake = Intake(repo_config(), PSEUDO)
    # A facility slas.yaml does not declare is a configuration gap: kept as sent.
    unknown = intake.hl7(sample("v23_adt_a01.hl7"), "x", "mllp")
    assert unknown.accepted and unknown.reason == ""
    assert {e.facility for e in unknown.events} == {"GOOD HEALTH HOSPITAL"}
    assert unknown.header is not None and unknown.header.control_id == "MSG00001"

    no_time = "MSH|^~\\&|EHR|NMC01|X|Y|||ADT^A03|T1|P|2.5.1\rEVN|A03\rPID|1||M1\r"
    rejected = intake.hl7(no_time, "x", "mllp")
    assert "no usable event time" in rejected.reason and "MSH-7" in rejected.reason
    bad_time = "MSH|^~\\&|EHR|NMC01|X|Y|2025-03-01||ADT^A03|T2|P|2.5.1\r"
    assert "not an HL7 date/time" in intake.hl7(bad_time, "x", "mllp").reason


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "must start with an MSH segment"),
        ("hello world", "must start with an MSH segment"),
        ("MSH", "too short"),
        ("MSHA^~\\&|X", "not a delimiter"),
        ("MSH|^|X", "encoding characters"),
        (
            "MSH|^~\\&|A|NMC01|||20250101||ADT^A01|1|P|2.5\rthis is not a segment\r",
            "segment 2 is not an HL7 segment",
        ),
    ],
)
def test_malformed_messages_say_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(Hl7Error) as caught:
        Hl7Message.parse(text)
    assert reason in caught.value.reason


def test_phi_fields_are_masked_leaf_by_leaf_and_masking_is_stable() -> None:
    extractor = Hl7Extractor(repo_config(), PSEUDO)
    result = extractor.extract(sample("v26_dft_p03_three_lines.hl7"), "x", 0)
    masked = result.masked
    for raw in (
        "MRN777001",
        "999-00-1234",
        "O'BRIEN",
        "SEÁN",
        "19700101",
        "1 MAIN ST",
        "(518)555-0100",
    ):
        assert raw not in masked
    assert PSEUDO("MRN777001") in masked and PSEUDO("999-00-1234") in masked
    # Non-PHI fields and the structure survive.
    assert "ACCT-LCH-5550" in masked and "ZPD|custom" in masked
    # Masking a masked message changes nothing, so a masked dead letter replays the same.
    again = extractor.extract(masked, "x", 0)
    assert again.masked == masked
    assert [e.event_id for e in again.events] == [e.event_id for e in result.events]
    assert [dict(e.keys) for e in again.events] == [dict(e.keys) for e in result.events]


def test_store_message_keeps_only_the_masked_text() -> None:
    config = parse_config("messages:\n  hl7:\n    store_message: true\n")
    (event,) = Intake(config, PSEUDO).hl7(sample("adt_a03.hl7"), "x", "x").events
    stored = event.attributes["hl7.message"]
    assert "EVN|A03" in stored and "MRN00482917" not in stored and "TESTPATIENT" not in stored


def test_extraction_is_configurable() -> None:
    config = parse_config(
        "messages:\n  hl7:\n    facility: [PV1-3.4]\n    event_time: [MSH-7]\n"
        "    keys: {visit: [PV1-19.1], charge_code: [FT1-7.1]}\n"
        "    attributes: {cpt: FT1-25.1}\n    repeat_segment: null\n"
    )
    (event,) = Intake(config, PSEUDO).hl7(sample("dft_p03.hl7"), "x", "x").events
    assert event.facility == "NMC01"
    assert event.keys == {"visit": "VN20250310-000917", "charge_code": "2780001234"}
    assert event.attributes["cpt"] == "33208"


def test_bad_paths_in_slas_yaml_are_reported_with_their_location() -> None:
    from stitchboard.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        parse_config("messages:\n  hl7:\n    keys: {visit: [PV1.19]}\n    bogus: 1\n")
    text = str(caught.value)
    assert "messages.hl7.keys.visit" in text and "PV1.19" in text
    assert "unknown field 'bogus'" in text


def test_hl7_times() -> None:
    assert parse_dtm("20250312110545") == 1741777545 * 10**9
    assert parse_dtm("20250312110545.1234-0500") == (1741777545 + 5 * 3600) * 10**9 + 123_400_000
    assert parse_dtm("202503") == parse_dtm("20250301000000")
    with pytest.raises(ValueError):
        parse_dtm("20251345")


def test_ack_echoes_control_id_and_escapes_the_reason() -> None:
    header = Hl7Extractor(repo_config(), PSEUDO).extract(sample("dft_p03.hl7"), "x", 0).header
    text = ack_text(header, "AE", "bad | value ^ here", "103")
    parsed = hl7.parse(text)
    assert str(parsed["MSA.F1"]) == "AE"
    assert str(parsed["MSA.F2"]) == "DFT20250312110545000188"
    assert parsed.unescape(str(parsed.segment("MSA")(3))) == "bad | value ^ here"
    assert str(parsed["ERR.F3.R1.C1"]) == "103"
    assert str(parsed["MSH.F9.R1.C2"]) == "P03"
    assert str(parsed["MSH.F5"]) == "PERIOP"  # back to the sender


def test_each_ack_carries_its_own_message_s_control_id_in_its_sender_s_delimiters() -> None:
    extract = Hl7Extractor(repo_config(), PSEUDO).extract
    dft = sample("dft_p03.hl7")
    again = dft.replace("DFT20250312110545000188", "DFT-SECOND-0002")
    custom = extract(sample("v28_bar_p05_custom_delimiters.hl7"), "x", 0).header
    acks = [
        ack_text(extract(text, "x", 0).header, "AA", now_ns=n * 1_000_000_000)
        for n, text in ((1, dft), (2, again))
    ]
    first, second = (hl7.parse(text) for text in acks)
    assert str(first["MSA.F2"]) == "DFT20250312110545000188"
    assert str(second["MSA.F2"]) == "DFT-SECOND-0002"  # the first message's id is not reused
    assert str(first["MSH.F7"]) == "19700101000001+0000"
    assert str(second["MSH.F7"]) == "19700101000002+0000"
    assert str(first["MSH.F10"]) != str(second["MSH.F10"])
    for parsed in (first, second):
        assert str(parsed["MSH.F5"]) == "PERIOP" and str(parsed["MSH.F9.R1.C2"]) == "P03"
    # Another sender, other delimiters: its own MSH, in its own field separator.
    text = ack_text(custom, "AA")
    assert text.startswith("MSH" + custom.encoding.field + custom.encoding.characters)
    assert custom.encoding.field != "|" and "|" not in text
    assert text.split("\r")[1].split(custom.encoding.field)[2] == custom.control_id


def test_batch_files_and_separators() -> None:
    batch = (DATA / "batch_fhs_bhs.hl7").read_bytes()
    pieces = list(split_hl7_file(io.BytesIO(batch)))
    assert len(pieces) == 3 and all(p.data.startswith(b"MSH") for p in pieces)
    assert pieces[-1].end <= len(batch)
    # One message per line with LF separators, CRLF, and a small block size.
    lf = b"\n".join(sample(n).replace("\r", "\n").encode() for n in SAMPLES) + b"\n"
    crlf = lf.replace(b"\n", b"\r\n")
    for data in (lf, crlf):
        assert len(list(split_hl7_file(io.BytesIO(data), block=64))) == len(SAMPLES)
    # Resuming at an end offset gives exactly the remaining messages.
    ends = [p.end for p in split_hl7_file(io.BytesIO(lf))]
    rest = list(split_hl7_file(io.BytesIO(lf), start=ends[1]))
    assert len(rest) == len(SAMPLES) - 2


def test_mllp_decoder_handles_partial_frames_garbage_and_restarts() -> None:
    msg = sample("adt_a03.hl7").encode()
    stream = b"noise" + b"\x0b" + msg + b"\x1c\r" + b"\x0b" + msg[:40] + b"\x0b" + msg + b"\x1c\r"
    decoder = MllpDecoder()
    frames = []
    for i in range(0, len(stream), 7):
        frames.extend(decoder.feed(stream[i : i + 7]))
    assert frames == [msg, msg]
    assert decoder.discarded == len(b"noise") + 1 + 40
    assert decoder.pending == 0


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(SAMPLES), min_size=1, max_size=6), st.integers(1, 97))
def test_mllp_decoder_any_chunking(names: list[str], size: int) -> None:
    messages = [sample(n).encode() for n in names]
    stream = b"".join(b"\x0b" + m + b"\x1c\r" for m in messages)
    decoder = MllpDecoder()
    frames = []
    for i in range(0, len(stream), size):
        frames.extend(decoder.feed(stream[i : i + size]))
    assert frames == messages


def test_every_messages_field_is_documented() -> None:
    from stitchboard.config.messages import Hl7Mapping, LogMapping, MessagesConfig

    doc = (ROOT / "docs" / "slas.md").read_text()
    missing = [
        f"{model.__name__}.{name}"
        for model in (MessagesConfig, Hl7Mapping, LogMapping)
        for name in model.model_fields
        if f"`{name}`" not in doc and f"messages.{name}" not in doc
    ]
    assert missing == []


@pytest.mark.parametrize("name", SAMPLES)
def test_later_repetitions_match_the_hl7_package(name: str) -> None:
    text = sample(name)
    reference = hl7.parse(text.replace("\n", "\r"))
    ours = Hl7Message.parse(text)
    for segment in reference:
        seg = str(segment[0])
        if seg == "MSH":
            continue
        for f in range(1, len(segment)):
            for r in (1, 2, 3):
                for c in (1, 2, 5):
                    try:
                        expected = reference[f"{seg}.F{f}.R{r}.C{c}"]
                    except IndexError:
                        expected = ""
                    path = FieldPath(seg, f, c, repetition=r)
                    assert ours.value(path) == str(expected).strip(), f"{name} {path}"
        break  # the first non-MSH segment of each sample is enough


def test_identifier_type_picks_the_repetition() -> None:
    message = Hl7Message.parse(sample("v23_adt_a01.hl7"))
    assert message.value(FieldPath.parse("PID-3[SS].1")) == "123456789"
    assert message.value(FieldPath.parse("PID-3[mr].1")) == "PATID1234"
    assert message.value(FieldPath.parse("PID-3[2].4")) == "USSSA"
    assert message.value(FieldPath.parse("PID-3[XX].1")) == ""
    assert str(FieldPath.parse("PID-3[MR].1")) == "PID-3[MR].1"
    config = parse_config("messages:\n  hl7:\n    keys: {mrn: ['PID-3[SS].1']}\n")
    (event,) = Intake(config, PSEUDO).hl7(sample("v23_adt_a01.hl7"), "x", "x").events
    assert event.keys["mrn"] == PSEUDO("123456789")


def test_reused_control_ids_do_not_collide_but_resends_do() -> None:
    intake = Intake(repo_config(), PSEUDO)
    first = intake.hl7(sample("adt_a03.hl7"), "x", "x").events[0]
    resent = intake.hl7(sample("adt_a03.hl7"), "y", "y").events[0]
    reused = intake.hl7(
        sample("adt_a03.hl7").replace("20250314162210||ADT^A03", "20250315080000||ADT^A03"),
        "x",
        "x",
    )
    assert first.event_id == resent.event_id
    assert reused.events[0].event_id != first.event_id
