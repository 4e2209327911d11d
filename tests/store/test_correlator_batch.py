"""The batch pass (SQL grouping + summarize) equals the Python core, and its rebuild writes
what the live correlator's full pass writes."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.correlator_traffic import transactions as bench_traffic
from correlator.batch import components
from correlator.batch.components import group_workflow, grouping, work_tables
from correlator.batch.rebuild import rebuild, rebuilt
from correlator.engine import correlate
from correlator.repository import TX_COLUMNS, TransactionSink
from correlator.service import CorrelatorService
from stitchboard.disks import DiskSpace
from stitchboard.errors import StoreUnavailable
from stitchboard.events import EVENT_COLUMNS
from tests.correlator_helpers import DAY, HOUR, at, discharge_chain, ev, shipped_config
from tests.simulated_events import simulated_events
from tests.unit.test_correlator_property import NOW, streams, workflows

CONFIG = shipped_config()
T0 = at("2026-03-09T09:00:00-05:00")


def load(store, events) -> None:
    store.command(f"TRUNCATE TABLE {store.table('events')}")
    for i in range(0, len(events), 100_000):
        store.insert("events", EVENT_COLUMNS, [e.row() for e in events[i : i + 100_000]])


def clear_transactions(store) -> None:
    for table in ("transactions", "transaction_keys", "unmatched_events"):
        store.command(f"TRUNCATE TABLE {store.table(table)}")


def stored(store) -> dict[str, tuple]:
    """Live transaction rows by id, without what records the write rather than the
    transaction (the version, the evaluation instant, which keys the row added)."""
    bookkeeping = {"version", "evaluated_at", "key_delta", "delta_key_names", "delta_key_values"}
    columns = [c for c in TX_COLUMNS if c not in bookkeeping]
    rows = store.rows(
        f"SELECT {', '.join(columns)} FROM {store.table('transactions')} FINAL WHERE deleted = 0"
    )
    return {row[0]: row for row in rows}


def unmatched(store) -> set[tuple]:
    rows = store.rows(
        "SELECT workflow, step, event_id, lookup_keys, lookup_values, matched, event_time,"
        " facility, system, operation, keys"
        f" FROM {store.table('unmatched_events')} FINAL"
    )
    return {
        (*row[:3], tuple(row[3]), tuple(row[4]), *row[5:10], tuple(sorted(row[10].items())))
        for row in rows
    }


def test_a_small_estate_equals_the_core(store) -> None:
    second = [e for e in discharge_chain(T0 + HOUR, 2) if e.system != "ERP_GL"]
    events = discharge_chain(T0, 1) + second + discharge_chain(T0 + 5 * HOUR, 3, batch="B9")
    # A replayed copy and an A13 cancel (unexpected, joins by the visit).
    events += [events[0], ev("EHR_ADT", "ADT^A13", T0 + 2 * HOUR, visit="V1", msg="M1x")]
    load(store, events)
    now = T0 + 40 * DAY
    expected = {tx.id: tx for tx in correlate(CONFIG, events, now)}
    assert rebuilt(store, CONFIG, now) == expected
    # The journal of batch B1 belongs to visits 1 and 2, and merges neither.
    journals = {tx.id: [s for s in tx.event_steps if s == "gl_journal"] for tx in expected.values()}
    assert sorted(len(j) for j in journals.values() if j) == [1, 1, 1]
    assert any("unexpected" in tx.event_steps for tx in expected.values())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_batch_pass_equals_the_core_on_any_stream(store, data) -> None:
    config = data.draw(workflows())
    events = data.draw(streams(config))
    replays = data.draw(st.lists(st.sampled_from(events), max_size=5))
    load(store, events + replays)
    expected = {t.id: t for t in correlate(config, events, NOW)}
    assert rebuilt(store, config, NOW) == expected


def _grouping(store, config) -> dict[str, frozenset[str]]:
    found: dict[str, frozenset[str]] = {}
    with work_tables(store) as t:
        for workflow in config.workflows:
            group_workflow(store, workflow, t)
            found.update(grouping(store, t))
    return found


def test_bench_traffic_groups_and_summarizes_as_the_core(store) -> None:
    events = list(bench_traffic(3_000, seed=3))
    load(store, events)
    now = T0 + 90 * DAY
    expected = {tx.id: tx for tx in correlate(CONFIG, events, now)}
    assert _grouping(store, CONFIG) == {i: frozenset(tx.event_ids) for i, tx in expected.items()}
    assert rebuilt(store, CONFIG, now, chunk=100) == expected


def test_a_pass_that_spills_every_statement_to_disk_finds_the_same_transactions(
    store, monkeypatch
) -> None:
    """The memory bounds only move work to disk: with every aggregation and sort
    spilling at once and every join a grace hash join of many buckets, the pass finds
    what the core does."""
    monkeypatch.setattr(components, "SPILL_BYTES", 1)
    monkeypatch.setattr(components, "VALUES_PER_BUCKET", 200)
    events = list(bench_traffic(3_000, seed=5))
    load(store, events)
    now = T0 + 90 * DAY
    expected = {tx.id: tx for tx in correlate(CONFIG, events, now)}
    assert components.spill_settings(3_000)["grace_hash_join_initial_buckets"] == 16
    assert _grouping(store, CONFIG) == {i: frozenset(tx.event_ids) for i, tx in expected.items()}
    assert rebuilt(store, CONFIG, now, chunk=500) == expected


def test_spill_settings_join_in_memory_up_to_a_bucket_then_in_buckets() -> None:
    small = components.spill_settings(4_000_000)
    assert "join_algorithm" not in small
    assert small["max_bytes_before_external_group_by"] == 256 * 1024 * 1024
    assert small["max_insert_block_size"] == 100_000
    # One value more: 2 buckets of at most 4 million values.
    large = components.spill_settings(4_000_001)
    assert (large["join_algorithm"], large["grace_hash_join_initial_buckets"]) == ("grace_hash", 2)
    # 23 million: 6 buckets, rounded up to a power of two.
    assert components.spill_settings(23_000_000)["grace_hash_join_initial_buckets"] == 8


def test_disk_shortfall_compares_the_default_disk_with_700_bytes_an_event() -> None:
    cold = DiskSpace("store:cold", "/cold/", 10, 10**12)  # not where the engine spills
    # One million events: 700,000,000 bytes, 0.65 GiB.
    enough = DiskSpace("store:default", "/data/", 700_000_000, 10**12)
    assert components.disk_shortfall([enough, cold], 1_000_000) is None
    short = DiskSpace("store:default", "/data/", 699_999_999, 10**12)
    assert components.disk_shortfall([short, cold], 1_000_000) == (
        "the batch pass over 1,000,000 events may need up to 0.7 GiB of free disk"
        " (700 bytes an event) and store:default (/data/) has 0.7 GiB free; a pass that"
        " runs out fails with the engine's error and is retried"
    )
    # Without a default disk every disk counts.
    assert "store:cold (/cold/) has 0.0 GiB free" in str(components.disk_shortfall([cold], 1))


def test_a_pass_warns_in_the_log_when_the_disk_may_be_too_small(store, monkeypatch, caplog) -> None:
    load(store, discharge_chain(T0, 1))
    with caplog.at_level("WARNING", logger="correlator.batch.rebuild"):
        first = rebuild(store, CONFIG, NOW)
    assert not [r for r in caplog.records if "may need up to" in r.message]
    monkeypatch.setattr(components, "DISK_PER_EVENT", 1 << 50)  # a petabyte an event
    with caplog.at_level("WARNING", logger="correlator.batch.rebuild"):
        report = rebuild(store, CONFIG, NOW)
    warned = [r.message for r in caplog.records if "may need up to" in r.message]
    assert len(warned) == 1 and "store:default" in warned[0]
    assert warned[0].startswith(f"the batch pass over {report.events:,} events ")
    # A warning: the pass still runs, and writes what it wrote without one.
    assert report.transactions == first.transactions == 2


@pytest.mark.slow
def test_thirty_simulated_days_equal_the_core(store) -> None:
    since = at("2026-02-01T00:00:00+00:00")
    events = list(simulated_events(CONFIG, 1, since, 30))
    load(store, events)
    now = since + 30 * DAY
    expected = {tx.id: tx for tx in correlate(CONFIG, events, now)}
    assert len(expected) > 10_000
    assert {tx.workflow for tx in expected.values()} == {w.name for w in CONFIG.workflows}
    got = rebuilt(store, CONFIG, now)
    assert got.keys() == expected.keys()
    different = [i for i in expected if got[i] != expected[i]]
    assert different == []


def test_rebuild_writes_what_the_full_pass_writes(store) -> None:
    events = list(bench_traffic(400, seed=5))
    # Stored under a facility alias (NMC for NMC01): a journal no charge batch matches,
    # and a discharge.
    lone = ev("ERP_GL", "gl.journal.post", T0, facility="NMC", charge_batch="BX", journal="JX")
    events += [lone, ev("EHR_ADT", "ADT^A03", T0, facility="NMC", msg="M9", visit="V9")]
    load(store, events)
    clear_transactions(store)
    service = CorrelatorService(store, CONFIG)
    now = time.time_ns()
    service._full_pass_in_memory(now, now)  # the in-memory core: the reference
    by_core, fan_in_core = stored(store), unmatched(store)
    assert len(by_core) > 400
    clear_transactions(store)
    report = rebuild(store, CONFIG, chunk=37)  # many chunks: none splits a transaction
    assert report.transactions == len(by_core)
    assert report.events == len(events)
    assert report.fan_in == len(fan_in_core)
    # Every row equal but the evaluation instant's open deadlines and levels may not
    # move between the two passes: the traffic lies in 2026, well past every deadline.
    assert stored(store) == by_core
    assert unmatched(store) == fan_in_core
    [journal] = [row for row in fan_in_core if row[2] == lone.event_id]
    assert (journal[5], journal[7]) == (0, "NMC01")  # unmatched, under the facility's id
    assert {row[3] for row in by_core.values() if "V9" in row[18]} == {"NMC01"}
    # No work table is left behind.
    assert store.rows(f"SHOW TABLES FROM `{store.database}` LIKE '\\_batch%'") == []


def test_rebuild_retires_what_no_longer_exists(store) -> None:
    events = discharge_chain(T0, 1) + discharge_chain(T0 + HOUR, 2, batch="B2")
    load(store, events)
    clear_transactions(store)
    first = rebuild(store, CONFIG, now=T0 + 40 * DAY)
    before = stored(store)
    assert first.transactions == len(before) == 4  # two discharges, two claims
    # The second visit's events go (a retention prune): its transactions are retired.
    load(store, discharge_chain(T0, 1))
    second = rebuild(store, CONFIG, now=T0 + 40 * DAY)
    after = stored(store)
    assert second.retired == 2
    assert set(after) < set(before) and len(after) == 2
    assert {row[1] for row in after.values()} == {"discharge_to_revenue", "claim_to_cash"}


def test_a_long_chain_is_one_transaction(store) -> None:
    """300 events linked in a line (a1-b1, b1-a2, a2-b2, ...): every label must travel
    the whole line; pointer jumping gets there in far fewer rounds than its length."""
    from stitchboard.config.model import SlasConfig

    config = SlasConfig.model_validate(
        {
            "facilities": [{"id": "F", "timezone": "UTC"}],
            "keys": {k: {"attributes": [k]} for k in ("a", "b")},
            "workflows": [
                {
                    "name": "line",
                    "steps": [
                        {"name": "s", "match": {"system": "S"}, "keys": ["a", "b"], "repeat": True}
                    ],
                }
            ],
        }
    )
    events = [
        ev("S", "op", T0 + i * HOUR, facility="F", a=f"a{(i + 1) // 2}", b=f"b{i // 2}")
        for i in range(300)
    ]
    load(store, events)
    expected = {tx.id: tx for tx in correlate(config, events, T0 + 40 * DAY)}
    assert len(expected) == 1
    with work_tables(store) as t:
        stats = group_workflow(store, config.workflows[0], t)
    assert (stats.hops, stats.values, stats.transactions) == (300, 301, 1)
    assert stats.rounds <= 20, stats.rounds
    assert rebuilt(store, config, T0 + 40 * DAY) == expected


class _FailingSink(TransactionSink):
    """Refuses its ``fail_at``-th write of transactions (a store that goes away mid-pass)."""

    def __init__(self, store, fail_at: int):
        super().__init__(store)
        self.fail_at = fail_at
        self.writes = 0

    def write(self, changes, chunk=50_000, new_keys=None) -> int:
        self.writes += 1
        if self.writes == self.fail_at:
            raise StoreUnavailable("ClickHouse went away")
        return super().write(changes, chunk, new_keys)


def test_a_failed_write_fails_the_rebuild_and_the_next_one_repairs_it(store) -> None:
    """Chunks are written on a writer thread while the next ones are summarized: a
    write that fails there fails the pass (no report of rows it did not write), and
    nothing is retired; a rebuild afterwards writes every transaction."""
    events = list(bench_traffic(400, seed=7))
    load(store, events)
    clear_transactions(store)
    now = T0 + 90 * DAY
    expected = rebuilt(store, CONFIG, now)
    sink = _FailingSink(store, fail_at=3)
    with pytest.raises(StoreUnavailable, match="went away"):
        rebuild(store, CONFIG, now=now, sink=sink, chunk=37)
    assert sink.writes >= 3
    partial = stored(store)
    assert 0 < len(partial) < len(expected)  # the chunks before the failure, not retired
    report = rebuild(store, CONFIG, now=now, chunk=37)
    assert report.transactions == len(expected) and report.retired == 0
    rows = stored(store)
    assert rows.keys() == expected.keys()
    assert {i: (r[4], r[5], tuple(r[15])) for i, r in rows.items()} == {
        i: (tx.status, tx.level, tx.event_ids) for i, tx in expected.items()
    }
    assert store.rows(f"SHOW TABLES FROM `{store.database}` LIKE '\\_batch%'") == []
