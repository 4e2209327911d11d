"""Dead letters: listing, replay after fixing slas.yaml (HL7, JSONL, CSV, OTLP), idempotence."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from collector.dead_letters import Filter, list_dead_letters, parse_since, replay
from collector.intake import Intake, batch_of
from collector.normalize import Normalizer
from collector.otlp import traces_to_batch
from stitchboard.config import load_config, parse_config
from tests.otlp_factory import spans_request
from tests.support import ROOT, make_runtime

DATA = Path(__file__).parents[1] / "data" / "hl7"


@pytest.fixture(scope="module")
def runtime(store):
    rt = make_runtime(store)
    yield rt
    rt.writer.close()


def fixed_config():
    """slas.yaml plus the time field the rejected rows used, and their facilities."""
    text = (ROOT / "slas.yaml").read_text()
    text = text.replace(
        'event_time: [event_time, timestamp, time, ts, "@timestamp"]',
        'event_time: [event_time, timestamp, time, ts, "@timestamp", logged_at]',
        1,
    )
    text = text.replace(
        "facilities:\n",
        "facilities:\n"
        "  - {id: GHH01, name: Good Health Hospital, aliases: [GOOD HEALTH HOSPITAL]}\n"
        "  - {id: ELAB3, aliases: [ELAB-3, ZZZ]}\n",
        1,
    )
    return parse_config(text)


def count(store, where: str, table: str = "events") -> int:
    return store.scalar(f"SELECT count() FROM {store.table(table)} FINAL WHERE {where}")


def test_replay_after_fixing_slas_yaml_is_idempotent(runtime, store):
    intake = Intake(runtime.config, runtime.pseudonymize)
    # Undeclared facilities are a gap in slas.yaml, not unreadable records: stored as sent.
    kept = [
        intake.hl7((DATA / "v23_adt_a01.hl7").read_bytes(), "mllp:10.0.0.9", "mllp"),
        intake.hl7((DATA / "v24_oru_r01.hl7").read_bytes(), "http", "http.messages"),
    ]
    assert all(o.accepted for o in kept)
    otlp = traces_to_batch(
        spans_request(3, facility="ZZZ", seed=7), Normalizer(runtime.config, runtime.pseudonymize)
    )
    assert (otlp.accepted, otlp.rejected) == (3, 0)
    # Rows whose time is in a field slas.yaml does not map cannot be placed in time.
    outcomes = [
        intake.json_line(
            b'{"logged_at": "2026-03-01T10:00:00Z", "facility": "ZZZ", "msg_id": "J-1",'
            b' "mrn": "MRN-DL-1"}',
            "mw.jsonl",
            "file:mw.jsonl",
        ),
        intake.row(
            {"logged_at": "2026-03-01 10:00", "facility": "ZZZ", "invoice": "INV-DL"},
            "erp.csv",
            "file:erp.csv",
        ),
        intake.hl7(b"not hl7 at all", "mllp:10.0.0.9", "mllp"),
    ]
    assert all(not o.accepted for o in outcomes)
    runtime.writer.write_sync(batch_of([*kept, *outcomes]))
    runtime.writer.write_sync(otlp.batch)
    assert count(store, "facility = 'GOOD HEALTH HOSPITAL'") == 1
    assert count(store, "facility = 'ZZZ'") == 3

    listed = list_dead_letters(store, Filter())
    assert len(listed) == 3
    assert {r["source"] for r in listed} == {"mllp", "file:mw.jsonl", "file:erp.csv"}
    assert len(list_dead_letters(store, Filter(reason="NO EVENT TIME"))) == 2
    assert len(list_dead_letters(store, Filter(source="file:*"))) == 2

    # Replaying before the fix changes nothing and says why.
    unchanged = replay(runtime, Filter(), runtime.writer.write_sync)
    assert (unchanged.considered, unchanged.replayed, unchanged.still_rejected) == (3, 0, 3)
    assert count(store, "1", "dead_letters") == 3

    fixed = dataclasses.replace(runtime, config=fixed_config())
    report = replay(fixed, Filter(), runtime.writer.write_sync)
    assert (report.considered, report.replayed, report.still_rejected) == (3, 2, 1)
    assert "must start with an MSH segment" in next(iter(report.reasons))
    assert report.events == 2
    assert count(store, "keys['msg'] = 'J-1' AND source_kind = 'jsonl' AND facility = 'ELAB3'") == 1
    assert count(store, "keys['invoice'] = 'INV-DL' AND source_kind = 'csv'") == 1
    # The masked payload replays to the same pseudonym the original would have had.
    assert count(store, f"keys['mrn'] = '{runtime.pseudonymize('MRN-DL-1')}'") == 1
    remaining = list_dead_letters(store, Filter())
    assert [r["source"] for r in remaining] == ["mllp"]
    assert len(list_dead_letters(store, Filter(include_replayed=True))) == 3
    replayed = [r for r in list_dead_letters(store, Filter(include_replayed=True)) if r["replayed"]]
    assert all(r["replayed_time"] is not None for r in replayed)

    # Again: nothing left to do; and forcing every letter through again stores nothing twice.
    again = replay(fixed, Filter(), runtime.writer.write_sync)
    assert (again.considered, again.replayed) == (1, 0)
    forced = replay(fixed, Filter(include_replayed=True), runtime.writer.write_sync)
    assert forced.replayed == 2
    assert count(store, "source_kind IN ('jsonl', 'csv')") == 2
    assert count(store, "1", "dead_letters") == 3


def test_since_filter_and_parsing(runtime, store):
    assert parse_since(None) is None
    now = 1_800_000_000.0
    assert parse_since("6h", now) == dt.datetime.fromtimestamp(now - 6 * 3600, dt.UTC)
    assert parse_since("2026-03-01T08:00").tzinfo is not None
    with pytest.raises(ValueError, match="duration such as 6h"):
        parse_since("yesterday")
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    assert list_dead_letters(store, Filter(since=future)) == []


def test_replay_uses_the_config_file_as_it_is_now(runtime, tmp_path):
    from collector.dead_letters import reload

    path = tmp_path / "slas.yaml"
    path.write_text((ROOT / "slas.yaml").read_text())
    settings = runtime.settings.model_copy(update={"config": path})
    current = dataclasses.replace(runtime, settings=settings)
    assert reload(current).config == load_config(ROOT / "slas.yaml")
    path.write_text("facilities: []\n")
    assert reload(current).config.facilities == []
