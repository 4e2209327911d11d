"""The live correlator on the embedded engine: the state in ClickHouse equals the
in-memory core, a restart resumes from the watermark (nothing rewritten, nothing
lost), evicted components reload whole, and the SQL sweep marks passed deadlines."""

from __future__ import annotations

import random
from collections.abc import Iterable

import pytest

from bench.correlator_traffic import transactions as traffic
from correlator.engine import correlate
from correlator.index import SIGNATURE, WATERMARK, read_state
from correlator.schema import STATE_COLUMNS
from correlator.service import CorrelatorService
from correlator.transaction import Transaction
from stitchboard.config.model import SlasConfig
from stitchboard.events import EVENT_COLUMNS, Event
from stitchboard.store import Store
from stitchboard.writer import Batch
from tests.correlator_helpers import DAY, HOUR, MINUTE, at, discharge_chain, ev, shipped_config

CONFIG = shipped_config()
T0 = at("2026-03-09T09:00:00-05:00")
NOW = T0 + 90 * DAY


@pytest.fixture
def clean(store: Store) -> Store:
    for table in (
        "events",
        "transactions",
        "transaction_keys",
        "lookup_hops",
        "correlator_state",
        "transaction_deadlines",
        "transaction_state",
        "unmatched_events",
    ):
        store.command(f"TRUNCATE TABLE {store.table(table)}")
    return store


def durable(store: Store, events: list[Event]) -> Batch:
    """Insert events as the writer does, and the batch it reports to its listeners."""
    store.insert("events", EVENT_COLUMNS, [e.row() for e in events])
    batch = Batch()
    batch.add("events", EVENT_COLUMNS, [e.row() for e in events])
    return batch


def started(store: Store, cache_hops: int = 200_000) -> CorrelatorService:
    service = CorrelatorService(store, CONFIG, cache_hops=cache_hops)
    service.start_up()
    return service


def feed(service: CorrelatorService, store: Store, events: list[Event], now: int = NOW) -> None:
    service.on_batch(durable(store, events))
    service.step(now)


def stored(store: Store) -> dict[str, tuple]:
    rows = store.rows(
        "SELECT id, workflow, status, level, flags, event_ids, event_steps, step_names,"
        " step_counts, arrayZip(key_names, key_values)"
        f" FROM {store.table('transactions')} FINAL WHERE deleted = 0"
    )
    return {r[0]: (*r[1:-1], [tuple(kv) for kv in r[-1]]) for r in rows}


def expected(events: Iterable[Event], now: int = NOW) -> dict[str, tuple]:
    return {tx.id: shape(tx) for tx in correlate(CONFIG, events, now)}


def shape(tx: Transaction) -> tuple:
    return (
        tx.workflow,
        tx.status,
        tx.level,
        list(tx.flags),
        list(tx.event_ids),
        list(tx.event_steps),
        [s.name for s in tx.steps],
        [s.events for s in tx.steps],
        list(tx.keys),
    )


def test_live_batches_with_a_tiny_cache_equal_the_core_on_bench_traffic(clean: Store) -> None:
    events = list(traffic(400, seed=3, spread_ns=20 * DAY))
    rng = random.Random(5)
    arrival = events + rng.sample(events, 150)  # replays
    rng.shuffle(arrival)
    service = started(clean, cache_hops=40)  # most touched components come from the store
    for i in range(0, len(arrival), 97):
        feed(service, clean, arrival[i : i + 97])
    assert service.live.loaded_from_store > 100
    assert stored(clean) == expected(events)
    # The key index holds every key of every live transaction (each written once, as
    # the transaction first carried it), and no retired id once those are pruned.
    table = clean.table("transaction_keys")
    written = clean.scalar(f"SELECT count() FROM {table}")
    assert written == service.index.key_rows_written  # each (value, key, id) written once
    assert written == clean.scalar(f"SELECT count() FROM {table} FINAL")
    service.index.prune_keys()
    keys = set(
        clean.rows(
            f"SELECT DISTINCT value, key, transaction_id FROM {clean.table('transaction_keys')}"
        )
    )
    assert keys == {(v, k, i) for i, row in stored(clean).items() for k, v in row[-1]}
    assert (
        service.index.key_rows_written
        < sum(len(tx.keys) for tx in correlate(CONFIG, events, NOW)) * 2
    )


def test_restart_resumes_from_the_watermark_and_rewrites_nothing(clean: Store) -> None:
    events = list(traffic(200, seed=4, spread_ns=10 * DAY))
    first = started(clean)
    feed(first, clean, events[:600])
    first._save_state(force=True)
    state = read_state(clean)
    assert state[SIGNATURE][1] and state[WATERMARK][0] > 0
    before = stored(clean)
    # Killed: never stopped. Meanwhile more events became durable that it never saw.
    clean.insert("events", EVENT_COLUMNS, [e.row() for e in events[600:]])
    second = CorrelatorService(clean, CONFIG)
    second.start_up(NOW)
    assert second.correlator.transaction_count == 0  # no full pass: nothing held in memory
    after = stored(clean)
    assert after == expected(events)
    unchanged = {i for i, row in before.items() if after.get(i) == row}
    versions = dict(
        clean.rows(f"SELECT id, max(version) FROM {clean.table('transactions')} GROUP BY id")
    )
    first_versions = {i: v for i, v in versions.items() if i in unchanged}
    # A third start over the same history writes nothing at all.
    third = CorrelatorService(clean, CONFIG)
    third.start_up(NOW)
    assert third.rewritten == 0
    again = dict(
        clean.rows(f"SELECT id, max(version) FROM {clean.table('transactions')} GROUP BY id")
    )
    assert {i: again[i] for i in first_versions} == first_versions
    assert len(unchanged) > 0


def test_a_changed_slas_yaml_is_a_full_pass(clean: Store) -> None:
    feed(started(clean), clean, discharge_chain(T0, 1))
    fewer = SlasConfig.model_validate(
        {
            **CONFIG.model_dump(mode="json"),
            "workflows": [w.model_dump(mode="json") for w in CONFIG.workflows[1:]],
        }
    )
    changed = CorrelatorService(clean, fewer)
    changed.start_up()
    assert changed.rewritten > 0
    assert all(row[0] != "discharge_to_revenue" for row in stored(clean).values())


def test_a_journal_before_between_and_after_evicted_carriers_with_restarts(
    clean: Store,
) -> None:
    """A GL journal for batch B1 arrives first (unmatched), then a carrier (matched), then a
    second carrier after the first was evicted; a restart between each step."""
    one = [e for e in discharge_chain(T0, 1, batch="B1") if e.system != "ERP_GL"]
    journal = [e for e in discharge_chain(T0, 1, batch="B1") if e.system == "ERP_GL"]
    two = [e for e in discharge_chain(T0 + HOUR, 2, batch="B1") if e.system != "ERP_GL"]
    filler = discharge_chain(T0 + 2 * HOUR, 3, batch="B9")
    seen: list[Event] = []
    for part in (journal, one, filler, two, journal):
        service = started(clean, cache_hops=3)  # a restart; the cache holds almost nothing
        feed(service, clean, part)
        service._save_state(force=True)
        seen += part
        assert stored(clean) == expected(seen)
    [matched] = clean.rows(
        f"SELECT matched FROM {clean.table('unmatched_events')} FINAL"
        " WHERE workflow = 'discharge_to_revenue' AND event_id = {id:String}",
        {"id": journal[0].event_id},
    )
    assert matched == (1,)


def test_one_event_linking_two_evicted_transactions_retires_one(clean: Store) -> None:
    ack = ev("IFENGINE", "ACK^A03", T0 + MINUTE, msg="M7")
    charge = ev("PERIOP", "DFT^P03", T0 + HOUR, visit="V7", account="A7", charge="C7")
    service = started(clean, cache_hops=0)
    feed(service, clean, [ack, charge])
    assert len(stored(clean)) == 2
    retired = set(stored(clean))
    adt = ev("EHR_ADT", "ADT^A03", T0, msg="M7", visit="V7", account="A7")
    feed(service, clean, [adt])
    [(tx_id, row)] = stored(clean).items()
    assert len(row[4]) == 3 and tx_id not in retired
    service.index.prune_keys()
    keys = clean.rows(f"SELECT DISTINCT transaction_id FROM {clean.table('transaction_keys')}")
    assert keys == [(tx_id,)]
    # The retired ids resolve to nothing: a late event for them joins the survivor.
    late = ev("CODING", "BAR^P05", T0 + 2 * DAY, visit="V7", account="A7")
    feed(service, clean, [late])
    [(same, row)] = stored(clean).items()
    assert same == tx_id and len(row[4]) == 4


def test_a_replayed_old_event_writes_nothing(clean: Store) -> None:
    events = discharge_chain(T0, 1)
    service = started(clean, cache_hops=0)
    feed(service, clean, events)
    rows = clean.scalar(f"SELECT count() FROM {clean.table('transactions')}")
    feed(service, clean, events[:2])
    assert clean.scalar(f"SELECT count() FROM {clean.table('transactions')}") == rows


def test_the_sweep_marks_a_deadline_that_passed_after_the_row_was_written(clean: Store) -> None:
    adt = ev("EHR_ADT", "ADT^A03", T0, msg="M4", visit="V4", account="A4")
    service = started(clean)
    feed(service, clean, [adt], now=T0)
    status = f"SELECT status, level FROM {clean.table('transactions')} FINAL WHERE deleted = 0"
    assert clean.rows(status) == [("in_progress", "")]
    service.swept = T0
    assert service.sweep(now=T0 + MINUTE // 2) == 0  # nothing due yet
    assert service.sweep(now=T0 + 3 * MINUTE) == 1  # the engine ACK's warn deadline
    assert clean.rows(status) == [("overdue", "warn")]
    assert service.sweep(now=T0 + 4 * MINUTE) == 0  # swept: not again
    assert service.sweep(now=T0 + HOUR) == 1
    assert clean.rows(status) == [("overdue", "breach")]


def test_an_evicted_transaction_is_read_back_from_its_stored_state(clean: Store) -> None:
    adt = ev("EHR_ADT", "ADT^A03", T0, msg="M5", visit="V5", account="A5")
    ack = ev("IFENGINE", "ACK^A03", T0 + MINUTE, msg="M5")
    service = started(clean, cache_hops=0)
    feed(service, clean, [adt, ack])
    charge = ev("PERIOP", "DFT^P03", T0 + HOUR, visit="V5", account="A5", charge="C5")
    feed(service, clean, [charge])
    assert service.index.events_by_id == 0  # both reloads came from transaction_state
    # A state row whose events are not its ids' is not used: they are read by id instead.
    [row] = clean.rows(f"SELECT * FROM {clean.table('transaction_state')}")
    assert row[-1].startswith("[[")  # its events, as JSON
    clean.insert("transaction_state", STATE_COLUMNS, [(*row[:-1], "[]")])
    coding = ev("CODING", "BAR^P05", T0 + 2 * DAY, visit="V5", account="A5")
    feed(service, clean, [coding])
    assert service.index.events_by_id == 3
    assert stored(clean) == expected([adt, ack, charge, coding])


def test_serve_sizes_the_cache_and_paces_the_steps_from_its_settings(clean: Store) -> None:
    import asyncio

    from correlator.stage import CorrelatorComponent
    from tests.support import make_runtime

    runtime = make_runtime(clean, correlator_cache_hops=7, correlator_interval=1.5)
    component = CorrelatorComponent(runtime)
    asyncio.run(component.start())
    try:
        assert component.service is not None
        assert component.service.live.cache.max_hops == 7
        assert component.service.interval == 1.5
    finally:
        asyncio.run(component.stop())


def test_busy_seconds_count_the_steps_and_not_the_waits(clean: Store) -> None:
    """A step of 0.3 s counts 0.3 s; the interval's wait, and the backoff after a
    failed step (0.5 s here), do not (no sweep is due in the test's second)."""
    import threading
    import time

    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    service = CorrelatorService(
        clean, CONFIG, registry, interval=0.05, sweep_interval=3600, retry_initial=0.5
    )
    service.loaded = True  # no startup pass: only the loop's steps
    calls = 0
    done = threading.Event()

    def step(now: int | None = None) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            time.sleep(0.3)
        elif calls == 2:
            raise RuntimeError("store away")
        else:
            done.set()

    service.step = step  # type: ignore[method-assign]
    started = time.perf_counter()
    service.start()
    assert done.wait(10)
    service.stop()
    elapsed = time.perf_counter() - started
    busy = registry.get_sample_value("stitchboard_correlator_busy_seconds_total") or 0.0
    assert elapsed >= 0.3 + 0.5  # the slow step, then the backoff
    assert 0.3 <= busy < 0.75  # the slow step, not the 0.5 s of backoff as well


def test_key_values_that_need_escaping_are_looked_up_exactly(clean: Store) -> None:
    # The lookup writes the batch's values into its statement as a literal: quotes,
    # backslashes, backticks, tabs and newlines must find the same transactions.
    odd = ["q'uote", "back\\slash", "tick`", "tab\there", "new\nline", "plain", "\\'"]
    events = [e for n, name in enumerate(odd) for e in discharge_chain(T0 + n * HOUR, name)]
    first = [e for e in events if e.operation == "ADT^A03"]
    service = started(clean, cache_hops=0)  # every later hop reloads its transaction
    feed(service, clean, first)
    feed(service, clean, [e for e in events if e not in first])
    assert service.live.loaded_from_store == len(odd)
    assert stored(clean) == expected(events)
    discharges = [row for row in stored(clean).values() if row[0] == "discharge_to_revenue"]
    # Six hops of its own and the seven journals of batch B1 (every chain posts one).
    assert [len(row[4]) for row in discharges] == [6 + len(odd)] * len(odd)


def test_a_passed_deadline_is_swept_before_a_backlog_is_drained(clean: Store) -> None:
    adt = ev("EHR_ADT", "ADT^A03", T0, msg="M9", visit="V9", account="A9")
    service = CorrelatorService(clean, CONFIG, batch_max=100, sweep_interval=0.0)
    service.start_up()
    feed(service, clean, [adt], now=T0)
    service.swept = T0
    [(tx_id, status)] = clean.rows(
        f"SELECT id, status FROM {clean.table('transactions')} FINAL WHERE deleted = 0"
    )
    assert status == "in_progress"
    # A backlog of 1,000+ events arrives in one writer batch, after the engine ACK's
    # breach deadline (15 minutes) has passed: correlated in parts of 100, with the
    # sweep between them.
    backlog = list(traffic(250, seed=8, spread_ns=2 * DAY, prefix="bk"))
    assert len(backlog) > 1_000
    now = T0 + HOUR
    service.on_batch(durable(clean, backlog))
    service.step(now)
    rows = clean.rows(
        f"SELECT status, level, version FROM {clean.table('transactions')}"
        " WHERE id = {i:String} ORDER BY version",
        {"i": tx_id},
    )
    assert [(s, lv) for s, lv, _ in rows] == [("in_progress", ""), ("overdue", "breach")]
    overdue_at = rows[-1][2]
    # Written before most of the backlog: the backlog's rows came in parts after it.
    later = clean.scalar(
        f"SELECT uniqExact(version) FROM {clean.table('transactions')}"
        " WHERE id != {i:String} AND version > {v:UInt64}",
        {"i": tx_id, "v": overdue_at},
    )
    assert later >= 9  # ten parts; the sweep ran after the first
    assert stored(clean) == expected([adt, *backlog], now)


def test_a_backlog_is_taken_in_whole_batches_up_to_batch_max(clean: Store) -> None:
    service = CorrelatorService(clean, CONFIG, batch_max=250)
    service.start_up()
    events = list(traffic(120, seed=9, spread_ns=2 * DAY))[:600]
    parts = [events[i : i + 100] for i in range(0, len(events), 100)]  # six batches
    for part in parts:
        service.on_batch(durable(clean, part))
    service.step(NOW)  # two batches (200 events): a third would pass 250
    assert service._pending == len(events) - 200
    assert service._wake.is_set()  # the next step follows without a wait
    steps = 1
    while service._pending:
        service.step(NOW)
        steps += 1
    assert steps == 3
    assert stored(clean) == expected(events)


def _ids(store: Store, table: str) -> list[str]:
    return [i for (i,) in store.rows(f"SELECT id FROM {store.table(table)}")]


def _dues(store: Store) -> list[int]:
    return [d for (d,) in store.rows(f"SELECT due FROM {store.table('transaction_deadlines')}")]


def test_retired_and_judged_rows_are_pruned_and_the_state_still_equals_the_core(
    clean: Store,
) -> None:
    """Stored hops and pending deadlines of merged ids, and deadlines the sweep has
    judged, are deleted, so both tables hold only what a live transaction still needs;
    the live path goes on equal to the core after the prune."""
    events = list(traffic(300, seed=11, spread_ns=10 * DAY))
    rng = random.Random(3)
    arrival = events + rng.sample(events, 100)  # replays
    rng.shuffle(arrival)  # late heads merge transactions stored earlier
    seen = min(e.event_time for e in events)
    service = CorrelatorService(clean, CONFIG, cache_hops=40)
    service.start_up(seen)  # swept through the traffic's start, not the wall clock
    for i in range(0, len(arrival), 89):
        part = arrival[i : i + 89]
        seen = max(seen, *(e.event_time for e in part))
        feed(service, clean, part, now=seen)  # judged as it arrives: deadlines still ahead
    retired = set(service.index.retired)
    assert len(retired) > 10  # merges happened
    live = set(stored(clean))
    hops_before, dues_before = _ids(clean, "transaction_state"), _dues(clean)
    assert retired & set(hops_before)  # the tombstones of merged ids
    assert retired & set(_ids(clean, "transaction_deadlines"))
    # Deadlines pass: the sweep judges them, and its first housekeeping prunes the rows
    # of the merged ids (what it prunes next waits for the swept instant to be stored).
    end = seen + 100 * DAY
    service.sweep(now=end)
    assert service.index.retired == set()
    hops_after = _ids(clean, "transaction_state")
    assert set(hops_after) <= live and len(hops_after) < len(hops_before)
    assert not retired & set(_ids(clean, "transaction_deadlines"))
    assert not retired & set(
        r for (r,) in clean.rows(f"SELECT transaction_id FROM {clean.table('transaction_keys')}")
    )
    judged = sum(1 for d in _dues(clean) if d <= end)
    assert judged > 0
    service._save_state(force=True)
    assert service.swept_saved == end
    assert service.index.prune_deadlines(service.swept_saved) == judged
    dues_after = _dues(clean)
    assert all(d > end for d in dues_after) and len(dues_after) < len(dues_before)
    assert service.index.prune_deadlines(service.swept_saved) == 0  # nothing new

    # The live path goes on from the pruned state: late copies and new events, with
    # the touched transactions read back from the store.
    more = list(traffic(40, seed=12, spread_ns=10 * DAY, prefix="x"))
    feed(service, clean, more + rng.sample(events, 60), now=end)
    assert stored(clean) == expected(events + more, now=end)


def test_key_rows_of_ids_a_full_pass_retires_are_pruned(clean: Store) -> None:
    """Transactions whose events went away (retention) are retired by the next full pass,
    in SQL; their key rows go with the next prune, as those of merged ids do, and the
    index then holds exactly the live transactions' keys."""
    events = list(traffic(60, seed=13, spread_ns=5 * DAY))
    service = started(clean)
    feed(service, clean, events)
    before = stored(clean)
    gone = sorted(before)[:3]
    dropped = {e for tx in gone for e in before[tx][4]}  # their event ids
    clean.command(
        f"DELETE FROM {clean.table('events')} WHERE event_id IN {{ids:Array(String)}}",
        parameters={"ids": sorted(dropped)},
    )
    kept = [e for e in events if e.event_id not in dropped]
    service.full_pass(NOW)
    assert stored(clean) == expected(kept)
    assert set(gone) <= service.index.retired
    keys = f"SELECT DISTINCT transaction_id FROM {clean.table('transaction_keys')}"
    assert set(gone) <= {i for (i,) in clean.rows(keys)}  # still there before the prune
    service.index.prune_keys()
    assert service.index.retired == set()
    assert {i for (i,) in clean.rows(keys)} == set(stored(clean))
