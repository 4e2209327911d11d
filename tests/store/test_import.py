"""File import into the store: HL7 (lines, batches, MLLP dumps), JSON Lines, CSV; resuming."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collector.import_state import file_id, resume_offset
from collector.importer import DirectTarget, import_file
from tests.support import make_runtime

DATA = Path(__file__).parents[1] / "data" / "hl7"
ADT = (DATA / "adt_a03.hl7").read_bytes()


def adt(n: int) -> bytes:
    return ADT.replace(b"ADT20250314162210004417", f"IMP-{n:06d}".encode())


@pytest.fixture(scope="module")
def runtime(store):
    rt = make_runtime(store)
    yield rt
    rt.writer.close()


def count(store, where: str, table: str = "events") -> int:
    return store.scalar(f"SELECT count() FROM {store.table(table)} FINAL WHERE {where}")


class Abandoned(Exception):
    """The import stopped without its final flush (a crash, as far as the store knows)."""


class AbandonedTarget(DirectTarget):
    """Gives up after its fifth durable chunk."""

    def send_all(self, chunks, *args):
        for sent, end in enumerate(super().send_all(chunks, *args), 1):
            if sent == 5:
                raise Abandoned
            yield end


def test_hl7_file_with_lf_separators_is_imported_and_reimport_stores_nothing(
    runtime, store, tmp_path
):
    path = tmp_path / "adt.txt"
    body = b"complete garbage line\n"
    body += b"".join(adt(n).replace(b"\r", b"\n") + b"\n" for n in range(1200))
    path.write_bytes(body)
    target = DirectTarget(runtime)
    report = import_file(target, path, "auto", restart=False, chunk_size=500)
    assert (report.records, report.events, report.rejected) == (1201, 1200, 1)
    assert "must start with an MSH segment" in next(iter(report.reasons))
    assert count(store, "startsWith(keys['msg'], 'IMP-')") == 1200
    assert count(store, "source = 'file:adt.txt'", "dead_letters") == 1
    again = import_file(target, path, "auto", restart=False, chunk_size=500)
    assert again.resumed_at == len(body) and again.records == 0
    forced = import_file(target, path, "hl7", restart=True, chunk_size=500)
    assert forced.records == 1201
    assert count(store, "startsWith(keys['msg'], 'IMP-')") == 1200
    assert count(store, "source = 'file:adt.txt'", "dead_letters") == 1


def test_interrupted_import_resumes_after_the_last_durable_chunk(runtime, store, tmp_path):
    path = tmp_path / "resume.hl7"
    path.write_bytes(b"".join(adt(10_000 + n) + b"\r\n" for n in range(1000)))

    class Crash(Exception):
        pass

    class CrashingTarget(DirectTarget):
        def send_all(self, chunks, *args):
            for sent, end in enumerate(super().send_all(chunks, *args), 1):
                if sent == 4:
                    raise Crash
                yield end

    crashing = CrashingTarget(runtime, engine_chunk=1)  # an engine statement per chunk
    with pytest.raises(Crash):
        import_file(crashing, path, "auto", restart=False, chunk_size=100)
    crashing.flush()
    stored = count(store, "startsWith(keys['msg'], 'IMP-01')")
    assert stored == 400
    resumed = import_file(DirectTarget(runtime), path, "auto", restart=False, chunk_size=100)
    assert resumed.resumed_at > 0 and resumed.records == 600
    assert count(store, "startsWith(keys['msg'], 'IMP-01')") == 1000


def test_a_checkpoint_names_only_records_synced_before_it(runtime, store, tmp_path):
    """Chunk N's checkpoint is written after chunk N's rows are inserted and synced, so a
    crash (here: the import abandoned without its final flush) resumes at or before the
    first record that might not be on disk, and re-importing stores nothing twice."""
    path = tmp_path / "ordered.hl7"
    lines = [adt(30_000 + n) + b"\r\n" for n in range(500)]
    path.write_bytes(b"".join(lines))
    ends = [sum(len(line) for line in lines[: 100 * k]) for k in range(1, 6)]
    seen: list[tuple[int, int]] = []  # at each sync: (events stored, checkpoint offset)
    fid = file_id(path)

    def sync() -> None:
        seen.append((count(store, "startsWith(keys['msg'], 'IMP-03')"), resume_offset(store, fid)))

    abandoned = AbandonedTarget(runtime, sync=sync, engine=False)  # the Python path's pipeline
    with pytest.raises(Abandoned):
        import_file(abandoned, path, "auto", False, chunk_size=100)
    # A sync after each of chunks 1-4 has been inserted (the next one may be in already).
    # Chunk N's checkpoint is taken after the sync that follows its insert, and rides with
    # chunk N + 2's rows (N + 1 is already in flight): never past what a sync made durable.
    # The writer may carry chunks N + 1 and N + 2 in one insert, so at sync N the checkpoint
    # is one the syncs before it made durable: at most chunk N - 1's end.
    assert len(seen) == 4
    for n, (stored, offset) in enumerate(seen, 1):
        assert stored in (100 * n, 100 * (n + 1))
        assert offset in (0, *ends[: n - 1])
    assert [offset for _, offset in seen] == sorted(offset for _, offset in seen)
    for future, _ in abandoned._in_flight:  # the insert the abandoned import left running
        future.result()
    assert resume_offset(store, fid) == ends[2]  # chunk 5's rows carried chunk 3's checkpoint
    resumed = import_file(DirectTarget(runtime), path, "auto", restart=False, chunk_size=100)
    assert (resumed.resumed_at, resumed.records) == (ends[2], 200)
    assert count(store, "startsWith(keys['msg'], 'IMP-03')") == 500


def test_worker_processes_store_what_one_process_stores(runtime, store, tmp_path):
    path = tmp_path / "parallel.hl7"
    body = b"".join(adt(40_000 + n).replace(b"\r", b"\n") + b"\n" for n in range(900))
    path.write_bytes(b"not a message\n" + body)
    target = DirectTarget(runtime, workers=2, engine=False)
    try:
        report = import_file(target, path, "auto", restart=False, chunk_size=100)
    finally:
        target.pool.close()
    assert (report.records, report.events, report.rejected) == (901, 900, 1)
    assert count(store, "startsWith(keys['msg'], 'IMP-04')") == 900
    assert resume_offset(store, file_id(path)) == len(body) + len(b"not a message\n")
    parallel = store.rows(
        f"SELECT event_id, event_time, keys FROM {store.table('events')} FINAL"
        " WHERE startsWith(keys['msg'], 'IMP-04') ORDER BY event_id"
    )
    path.rename(tmp_path / "serial.hl7")
    one = import_file(
        DirectTarget(runtime, engine=False), tmp_path / "serial.hl7", "auto", True, 100
    )
    assert (one.records, one.events, one.rejected) == (901, 900, 1)
    serial = store.rows(
        f"SELECT event_id, event_time, keys FROM {store.table('events')} FINAL"
        " WHERE startsWith(keys['msg'], 'IMP-04') ORDER BY event_id"
    )
    assert serial == parallel and len(serial) == 900


def test_mllp_dump_and_batch_file(runtime, store, tmp_path):
    dump = tmp_path / "capture.mllp"
    dump.write_bytes(
        b"".join(b"\x0b" + adt(20_000 + n) + b"\x1c\r\n" for n in range(50))
        + b"\x0b"
        + adt(20_050)[:50]
    )  # cut off mid-frame
    report = import_file(DirectTarget(runtime), dump, "auto", restart=False, chunk_size=20)
    assert (report.records, report.events, report.rejected) == (51, 50, 1)
    batch = import_file(DirectTarget(runtime), DATA / "batch_fhs_bhs.hl7", "auto", False, 10)
    # FHS/BHS/BTS/FTS envelopes are not messages; the third has no EVN-2, so MSH-7 dates it.
    assert (batch.records, batch.events, batch.rejected) == (3, 3, 0)
    assert count(store, "keys['msg'] IN ('B-ADT-1', 'B-ADT-2', 'B-ADT-3')") == 3
    letters = store.rows(
        f"SELECT reason FROM {store.table('dead_letters')} FINAL WHERE source = 'file:capture.mllp'"
    )
    assert letters == [("MLLP frame not terminated: the file ends in the middle of a message",)]


def test_json_lines_and_csv_files(runtime, store, tmp_path):
    jsonl = tmp_path / "middleware.jsonl"
    rows = [
        {
            "ts": f"2026-03-01T10:{n % 60:02d}:00-05:00",
            "facility": "LCH",
            "system": "MW",
            "event": "claim.submitted",
            "claim": f"CLM-{n}",
            "amount": n,
        }
        for n in range(300)
    ]
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    config = runtime.config.model_copy(
        update={
            "messages": runtime.config.messages.model_copy(
                update={
                    "logs": runtime.config.messages.logs.model_copy(update={"event_time": ["ts"]})
                }
            )
        }
    )
    custom = make_runtime(store, config=config)
    try:
        report = import_file(DirectTarget(custom), jsonl, "auto", False, 128)
    finally:
        custom.writer.close()
    assert (report.records, report.events, report.rejected) == (300, 300, 0)
    assert count(store, "startsWith(keys['claim'], 'CLM-') AND facility = 'LCH02'") == 300

    csv_path = tmp_path / "erp.csv"
    csv_path.write_text(
        "timestamp,facility,system,operation,invoice,po,amount,note\n"
        + "".join(
            f"2026-03-02T08:00:{n % 60:02d},MSC03,ERP,invoice.matched,INV-{n},PO-{n},"
            f'{n}.5,"multi\nline note"\n'
            for n in range(200)
        )
        + "2026-03-02T09:00:00,ELSEWHERE,ERP,invoice.matched,INV-X,PO-X,1,\n"
    )
    report = import_file(DirectTarget(runtime), csv_path, "auto", False, 64)
    # A facility slas.yaml does not declare is kept as sent, not refused.
    assert (report.records, report.events, report.rejected) == (201, 201, 0)
    assert count(store, "startsWith(keys['invoice'], 'INV-') AND source_kind = 'csv'") == 201
    assert count(store, "keys['invoice'] = 'INV-X' AND facility = 'ELSEWHERE'") == 1
    again = import_file(DirectTarget(runtime), csv_path, "auto", False, 64)
    assert again.records == 0


ESCAPED = (DATA / "v26_dft_p03_three_lines.hl7").read_bytes()  # escapes: the Python path


def test_engine_import_checkpoints_only_synced_chunks(runtime, store, tmp_path):
    """The engine path: chunk N's rows, then a sync, then chunk N's checkpoint (with chunk
    N + 1's rows); an abandoned import resumes there and stores nothing twice."""
    path = tmp_path / "engine.hl7"
    lines = [adt(50_000 + n) + b"\r\n" for n in range(600)]
    path.write_bytes(b"".join(lines))
    ends = [sum(len(line) for line in lines[: 100 * k]) for k in range(1, 7)]
    seen: list[tuple[int, int]] = []
    fid = file_id(path)

    def sync() -> None:
        seen.append((count(store, "startsWith(keys['msg'], 'IMP-05')"), resume_offset(store, fid)))

    abandoned = AbandonedTarget(runtime, sync=sync, engine_chunk=1)  # a statement per chunk
    assert abandoned.native is not None
    with pytest.raises(Abandoned):
        import_file(abandoned, path, "auto", False, chunk_size=100)
    assert seen == [(100, 0), (200, ends[0]), (300, ends[1]), (400, ends[2]), (500, ends[3])]
    assert resume_offset(store, fid) == ends[3]
    resumed = import_file(DirectTarget(runtime), path, "auto", restart=False, chunk_size=100)
    assert (resumed.resumed_at, resumed.records, resumed.events) == (ends[3], 200, 200)
    assert count(store, "startsWith(keys['msg'], 'IMP-05')") == 600
    assert resume_offset(store, fid) == ends[5]


def test_engine_and_python_paths_import_the_same_file_alike(runtime, store, tmp_path):
    """A file of clean messages, messages with escapes (left to Python) and garbage:
    the same report and, re-imported the other way, the same rows and no second copy."""
    path = tmp_path / "mixed.hl7"
    body = b"".join(
        adt(60_000 + n) + b"\r\n"
        if n % 10
        else ESCAPED.replace(b"LCH-DFT-000777", f"IMP-06-{n:04d}".encode()) + b"\r\n"
        for n in range(300)
    )
    path.write_bytes(b"garbage before the first message\r\n" + body)
    where = "startsWith(keys['msg'], 'IMP-06')"
    columns = "* EXCEPT (observed_time, inserted_at)"

    def stored() -> list[tuple]:
        return store.rows(
            f"SELECT {columns} FROM {store.table('events')} FINAL WHERE {where} ORDER BY event_id"
        )

    python = import_file(DirectTarget(runtime, engine=False), path, "auto", True, 100)
    by_python = stored()
    engine = import_file(DirectTarget(runtime), path, "auto", True, 100)
    by_engine = stored()
    # 270 ADTs (one event each), 30 charges of three lines, one piece of garbage.
    for report in (python, engine):
        assert (report.records, report.events, report.rejected) == (301, 270 + 90, 1)
    assert len(by_python) == 360 and by_engine == by_python
    assert count(store, where) == 360
