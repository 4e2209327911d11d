"""A full pass through the SQL batch pass, then the live path from the state it left.

After ``CorrelatorService.full_pass`` (``rebuild`` plus ``batch.handover``), the live
path continuing with more events (journals waiting for carriers that arrive later,
unexpected hops waiting for their chain, a deadline that passes with no new event)
must end with what the in-memory core computes over every event; a restart after it
resumes from the watermark and rewrites nothing."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from bench.correlator_traffic import transactions as traffic
from correlator.batch.rebuild import rebuild
from correlator.engine import Correlator, correlate
from correlator.index import SIGNATURE, SWEPT, WATERMARK, config_signature, read_state
from correlator.live import TxRef
from correlator.repository import read_events_by_id
from correlator.service import CorrelatorService
from correlator.transaction import Transaction
from stitchboard.config.model import SlasConfig
from stitchboard.events import EVENT_COLUMNS, Event
from stitchboard.store import Store
from stitchboard.writer import Batch
from tests.correlator_helpers import DAY, HOUR, MINUTE, at, discharge_chain, ev, shipped_config

CONFIG = shipped_config()
T0 = at("2026-03-09T09:00:00-05:00")
FULL_PASS_AT = T0 + 2 * DAY  # the instant the full pass judges deadlines at
LATER = T0 + 90 * DAY  # the live path continues at this instant


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


def insert(store: Store, events: list[Event]) -> None:
    store.insert("events", EVENT_COLUMNS, [e.row() for e in events])


def feed(service: CorrelatorService, store: Store, events: list[Event], now: int) -> None:
    """Make the events durable as the writer does and let the live path correlate them."""
    insert(store, events)
    batch = Batch()
    batch.add("events", EVENT_COLUMNS, [e.row() for e in events])
    service.on_batch(batch)
    service.step(now)


def stored(store: Store) -> dict[str, tuple]:
    rows = store.rows(
        "SELECT id, workflow, status, level, flags, event_ids, event_steps, step_names,"
        " step_counts, arrayZip(key_names, key_values)"
        f" FROM {store.table('transactions')} FINAL WHERE deleted = 0"
    )
    return {r[0]: (*r[1:-1], [tuple(kv) for kv in r[-1]]) for r in rows}


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


def expected(events: Iterable[Event], now: int, config: SlasConfig = CONFIG) -> dict[str, tuple]:
    return {tx.id: shape(tx) for tx in correlate(config, events, now)}


def lookup_rows(store: Store) -> set[tuple[str, ...]]:
    return set(
        store.rows(f"SELECT workflow, key, value, event_id, step FROM {store.table('lookup_hops')}")
    )


def core_lookup_rows(events: list[Event]) -> set[tuple[str, ...]]:
    core = Correlator(CONFIG)
    core.add(events)
    return {(s.workflow.name, *row) for s in core.stitchers for row in s.lookup_rows()}


def history() -> tuple[list[Event], list[Event]]:
    """Events stored before the full pass, and the ones the live path gets after it."""
    bench = list(traffic(120, seed=11, spread_ns=3 * DAY, prefix="t"))
    one = discharge_chain(T0, 1, batch="B1")  # whole, its journal matched
    journal_b5 = [e for e in discharge_chain(T0, 5, batch="B5") if e.system == "ERP_GL"]
    carriers_b5 = [e for e in discharge_chain(T0 + HOUR, 5, batch="B5") if e.system != "ERP_GL"]
    # Open at the full pass (T0 + 2d): its charge is late past warn (start + 24h) but
    # not yet past breach (start + 72h).
    open_adt = ev("EHR_ADT", "ADT^A03", T0, msg="M6", visit="V6", account="A6")
    open_ack = ev("IFENGINE", "ACK^A03", T0 + MINUTE, msg="M6")
    cancel_v1 = ev("EHR_ADT", "ADT^A13", T0 + DAY, visit="V1", account="A1")  # attaches
    cancel_v8 = ev("EHR_ADT", "ADT^A13", T0 + DAY, visit="V8", account="A8")  # waits for V8
    chain_v8 = discharge_chain(T0 + 2 * HOUR, 8, batch="B8")
    second_b1 = [e for e in discharge_chain(T0 + 3 * HOUR, 9, batch="B1") if e.system != "ERP_GL"]
    before = [
        *bench[: len(bench) * 2 // 3],
        *one,
        *journal_b5,
        open_adt,
        open_ack,
        cancel_v1,
        cancel_v8,
    ]
    after = [*bench[len(bench) * 2 // 3 :], *carriers_b5, *chain_v8, *second_b1, *one[:2]]
    return before, after


def test_the_handover_writes_the_lookup_hops_of_the_in_memory_core(clean: Store) -> None:
    before, _ = history()
    insert(clean, before)
    service = CorrelatorService(clean, CONFIG)
    assert service.start_up(FULL_PASS_AT) == len(before)
    assert stored(clean) == expected(before, FULL_PASS_AT)
    assert service.report is not None  # the batch pass, not the in-memory core
    assert service.report.transactions == len(expected(before, FULL_PASS_AT))
    rows = lookup_rows(clean)
    assert rows == core_lookup_rows(before)
    # By hand: B5's journal waits under its batch, the V8 cancel under visit and account.
    [journal] = [e for e in before if e.keys.get("charge_batch") == "B5"]
    [cancel] = [e for e in before if e.keys.get("visit") == "V8"]
    assert ("discharge_to_revenue", "charge_batch", "B5", journal.event_id, "gl_journal") in rows
    assert {r for r in rows if r[3] == cancel.event_id} == {
        ("discharge_to_revenue", "account", "A8", cancel.event_id, "unexpected"),
        ("discharge_to_revenue", "visit", "V8", cancel.event_id, "unexpected"),
    }
    state = read_state(clean)
    assert state[SIGNATURE][1] == config_signature(CONFIG)
    assert state[SWEPT][0] == FULL_PASS_AT
    assert 0 < state[WATERMARK][0] == service.watermark


def test_the_handover_writes_each_transactions_state_as_the_live_path_reads_it(
    clean: Store,
) -> None:
    before, _ = history()
    # Key values JSON must escape: a quote, a backslash, a slash, a non-ASCII letter.
    odd = ev("EHR_ADT", "ADT^A03", T0, msg="M7", visit='V7"\\/é', account="A7\t")
    insert(clean, [*before, odd])
    service = CorrelatorService(clean, CONFIG)
    service.start_up(FULL_PASS_AT)
    rows = clean.rows(
        "SELECT workflow, id, toUnixTimestamp64Nano(id_time), event_ids, event_steps,"
        f" evaluated_at FROM {clean.table('transactions')} FINAL WHERE deleted = 0"
    )
    assert len(rows) == len(expected([*before, odd], FULL_PASS_AT))
    loaded = {tx.id: tx for tx in service.index.load_transactions([TxRef(*r[:3]) for r in rows])}
    assert len(loaded) == len(rows)
    # What correlation reads of each event, as ``events`` holds it (no attributes:
    # only routing reads them, and a stored hop is routed).
    stored_events = read_events_by_id(clean, [i for r in rows for i in r[3]])
    amounts = 0
    for workflow, tx_id, id_time, ids, steps, evaluated in rows:
        tx = loaded[tx_id]
        assert (tx.workflow, tx.id_time, tx.evaluated_at) == (workflow, id_time, evaluated)
        assert (tx.event_ids, tx.event_steps) == (tuple(ids), tuple(steps))  # same order
        assert tx.events == {i: stored_events[i] for i in ids}  # from its state row
        amounts += sum(e.amount is not None for e in tx.events.values())
    assert evaluated == FULL_PASS_AT
    assert amounts > 0  # charges carry amounts, ADTs none: both forms were written
    assert any(
        e.keys.get("visit") == 'V7"\\/é' for tx in loaded.values() for e in tx.events.values()
    )
    assert service.index.events_by_id == 0


def test_the_live_path_continues_from_a_full_pass_and_a_restart_rewrites_nothing(
    clean: Store,
) -> None:
    before, after = history()
    insert(clean, before)
    service = CorrelatorService(clean, CONFIG, cache_hops=0)  # every touch reads the store
    service.start_up(FULL_PASS_AT)
    by_id: list[str] = []
    read_by_id = service.index.load_events
    service.index.load_events = lambda ids: by_id.extend(ids) or read_by_id(ids)  # type: ignore[method-assign]
    for i in range(0, len(after), 50):
        feed(service, clean, after[i : i + 50], LATER)
    # The pass's transactions came back from their transaction_state rows: the only
    # events read by id are fan-in and unexpected hops found waiting under a value.
    assert by_id
    assert set(by_id) <= {row[3] for row in lookup_rows(clean)}
    assert service.index.events_by_id == len(by_id)
    # V6 was not touched again: only the sweep moves it from warn (as the full pass left
    # it at T0 + 2d) to breach (its charge breach, T0 + 72h, passed since).
    v6 = "SELECT status, level FROM {t} FINAL WHERE deleted = 0 AND has(key_values, 'V6')"
    query = v6.format(t=clean.table("transactions"))
    assert clean.rows(query) == [("overdue", "warn")]
    assert service.sweep(now=LATER) > 0
    assert clean.rows(query) == [("overdue", "breach")]
    everything = [*before, *after]
    assert stored(clean) == expected(everything, LATER)
    # The waiting journal and cancel found their carriers; both B1 carriers hold B1's.
    [matched] = clean.rows(
        f"SELECT groupArray(matched) FROM {clean.table('unmatched_events')} FINAL"
        " WHERE has(lookup_values, 'B5')"
    )
    assert matched == ([1],)
    service._save_state(force=True)

    versions = f"SELECT id, max(version) FROM {clean.table('transactions')} GROUP BY id"
    written = dict(clean.rows(versions))
    restarted = CorrelatorService(clean, CONFIG)
    read = restarted.start_up(LATER)
    assert read > 0  # the events since the watermark, read again: all replays
    assert restarted.report is None  # resumed, no full pass
    assert restarted.rewritten == 0
    assert dict(clean.rows(versions)) == written
    assert stored(clean) == expected(everything, LATER)


def test_a_rebuild_beside_the_live_path_leaves_no_state_behind_its_rows(clean: Store) -> None:
    """``stitchboard correlator rebuild`` after a backfill rewrites a transaction the
    live path holds state for: that state is emptied, so the live path's next touch
    reads the rebuilt transaction (with the backfilled charge), not what it held."""
    adt = ev("EHR_ADT", "ADT^A03", T0, msg="M5", visit="V5", account="A5")
    ack = ev("IFENGINE", "ACK^A03", T0 + MINUTE, msg="M5")
    service = CorrelatorService(clean, CONFIG, cache_hops=0)  # every touch reads the store
    service.start_up(T0)
    feed(service, clean, [adt, ack], T0 + HOUR)
    state = f"SELECT count() FROM {clean.table('transaction_state')}"
    assert clean.scalar(state) == 1
    charge = ev("PERIOP", "DFT^P03", T0 + HOUR, visit="V5", account="A5", charge="C5")
    insert(clean, [charge])  # a file import of an old message, not through the live path
    rebuild(clean, CONFIG, T0 + 2 * HOUR)
    assert clean.scalar(state) == 0
    coding = ev("CODING", "BAR^P05", T0 + 2 * DAY, visit="V5", account="A5")
    feed(service, clean, [coding], LATER)
    [(ids,)] = clean.rows(
        f"SELECT event_ids FROM {clean.table('transactions')} FINAL WHERE deleted = 0"
    )
    assert set(ids) == {adt.event_id, ack.event_id, charge.event_id, coding.event_id}
    assert stored(clean) == expected([adt, ack, charge, coding], LATER)


def test_a_regex_the_engine_refuses_falls_back_to_the_in_memory_pass(clean: Store) -> None:
    data = CONFIG.model_dump(mode="json")
    steps = data["workflows"][0]["steps"]
    [ack] = [s for s in steps if s["name"] == "engine_ack"]
    ack["match"]["operation"] = {"regex": "^ACK(?=\\^A03|$)(\\^A03)?$"}  # lookahead: not RE2
    config = SlasConfig.model_validate(data)
    events = [*discharge_chain(T0, 1, batch="B1"), *discharge_chain(T0, 2, batch="B2")[:2]]
    insert(clean, events)
    service = CorrelatorService(clean, config)
    assert service.start_up(FULL_PASS_AT) == len(events)
    assert service.report is None  # the in-memory core ran
    assert stored(clean) == expected(events, FULL_PASS_AT, config)
    assert read_state(clean)[SIGNATURE][1] == config_signature(config)
