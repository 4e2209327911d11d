"""The batch pass: every stored event into transactions, grouped in SQL, summarized in Python.

``rebuild`` is the full rebuild (after a slas.yaml change, a backfill, or to
repair): per workflow, ``components.group_workflow`` groups the events into
transactions in ClickHouse; the members are then streamed back sorted by
transaction, in blocks, into the pure ``transaction.summarize`` (the one
definition of statuses, levels, flags, steps and deadlines), and written with the
live path's row builders (``TransactionSink``) in chunks. Python holds one block
of rows and one chunk of transactions at a time, never the whole history.

Every live transaction is rewritten with one new version; rows the pass did not
write (ids that no longer exist) are retired afterwards, and so are unmatched
fan-in rows it did not rewrite, as the live correlator's startup pass does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from correlator.batch.components import (
    HOP_COLUMNS,
    ComponentStats,
    WorkTables,
    group_workflow,
    work_tables,
)
from correlator.deadlines import FacilityClock, clocks_for
from correlator.engine import renamed_facilities
from correlator.repository import TransactionSink, correlation_event
from correlator.stitching import Changes, FanInState
from correlator.transaction import Hop, Plan, Transaction, summarize
from correlator.unmatched import retire_older_than as retire_unmatched
from correlator.unmatched import write_states
from stitchboard.config.model import SlasConfig
from stitchboard.config.workflows import Workflow
from stitchboard.events import Event
from stitchboard.store import Store

CHUNK = 20_000  # transactions summarized and written at a time
BLOCK = 65_536  # rows per block read from the engine


@dataclass(frozen=True, slots=True)
class RebuildReport:
    """What one rebuild did, with where its time went."""

    events: int  # rows of ``events`` read (copies included)
    transactions: int  # transactions written
    fan_in: int  # fan-in events whose matched state was written
    retired: int  # stored transactions that no longer exist
    workflows: tuple[ComponentStats, ...]
    grouping_seconds: float  # the SQL half
    summarize_seconds: float  # streaming the members back and summarizing them
    write_seconds: float  # writing transactions and fan-in states


def _event(row: Sequence[Any], renamed: dict[str, str]) -> Event:
    # Columns: comp, attached, then HOP_COLUMNS.
    facility = row[6]
    return correlation_event(
        event_id=row[2],
        event_time=row[4],
        sent_time=row[5],
        facility=renamed.get(facility, facility),
        system=row[7],
        operation=row[8],
        status=row[9],
        amount=row[10],
        keys=row[11],
        attributes={},
    )


def transactions(
    store: Store,
    workflow: Workflow,
    t: WorkTables,
    clocks: dict[str, FacilityClock],
    renamed: dict[str, str],
    now: int,
    chunk: int = CHUNK,
) -> Iterator[list[Transaction]]:
    """The grouped members of ``workflow`` (``group_workflow`` ran), summarized, in chunks."""
    plan = Plan(workflow)
    columns = ", ".join(HOP_COLUMNS)
    sql = f"SELECT comp, attached, {columns} FROM {t('members')} ORDER BY comp, event_id"
    done: list[Transaction] = []
    current = -1
    core: list[Hop] = []
    attached: list[Hop] = []
    for block in store.stream_rows(sql, settings={"max_block_size": BLOCK}):
        for row in block:
            comp = row[0]
            if comp != current:
                if core:
                    done.append(summarize(plan, core, attached, clocks, now))
                    if len(done) >= chunk:
                        yield done
                        done = []
                current, core, attached = comp, [], []
            hop = Hop(_event(row, renamed), row[3])
            (attached if row[1] else core).append(hop)
    if core:
        done.append(summarize(plan, core, attached, clocks, now))
    if done:
        yield done


def fan_in_states(
    store: Store, workflow: Workflow, t: WorkTables, renamed: dict[str, str], chunk: int = CHUNK
) -> Iterator[list[FanInState]]:
    """Every fan-in hop of ``workflow`` with whether some transaction carries it."""
    fan_in = [i for i, s in enumerate(workflow.steps) if s.fan_in]
    if not fan_in:
        return
    names = [s.name for s in workflow.steps]
    columns = ", ".join(HOP_COLUMNS)
    sql = (
        f"SELECT 0, 0, {columns}, stitch,"
        f" event_id IN (SELECT event_id FROM {t('members')} WHERE attached = 1) AS matched"
        f" FROM {t('hops')} WHERE step IN ({', '.join(map(str, fan_in))}) ORDER BY event_id"
    )
    states: list[FanInState] = []
    for block in store.stream_rows(sql, settings={"max_block_size": BLOCK}):
        for row in block:
            # ``key\x1fvalue``: key names are slas.yaml identifiers, never holding \x1f.
            lookup = tuple((k, v) for k, _, v in (x.partition("\x1f") for x in row[12]))
            states.append(
                FanInState(
                    workflow.name,
                    names[row[3]],
                    _event(row, renamed),
                    lookup,
                    bool(row[13]),
                )
            )
            if len(states) >= chunk:
                yield states
                states = []
    if states:
        yield states


def rebuild(
    store: Store,
    config: SlasConfig,
    now: int | None = None,
    sink: TransactionSink | None = None,
    chunk: int = CHUNK,
) -> RebuildReport:
    """Recompute every transaction from the stored events and write them (idempotent).

    ``now`` is the instant deadlines are judged at (default: the clock); ``sink``
    writes the rows (default: a ``TransactionSink`` on ``store``).
    """
    now = time.time_ns() if now is None else now
    sink = sink or TransactionSink(store)
    clocks = clocks_for(config.facilities)
    renamed = renamed_facilities(config)
    started = sink.version()
    events = int(store.scalar(f"SELECT count() FROM {store.table('events')}") or 0)
    grouping = summarizing = writing = 0.0
    written = fan_in = 0
    stats = []
    with work_tables(store) as t:
        for workflow in config.workflows:
            at = time.perf_counter()
            stats.append(group_workflow(store, workflow, t))
            grouping += time.perf_counter() - at
            at = time.perf_counter()
            for part in transactions(store, workflow, t, clocks, renamed, now, chunk):
                wrote = time.perf_counter()
                summarizing += wrote - at
                sink.write(Changes(tuple(part), ()))
                written += len(part)
                at = time.perf_counter()
                writing += at - wrote
            summarizing += time.perf_counter() - at
            at = time.perf_counter()
            for states in fan_in_states(store, workflow, t, renamed, chunk):
                write_states(store, states, sink.version())
                fan_in += len(states)
            writing += time.perf_counter() - at
    at = time.perf_counter()
    retired = sink.retire_older_than(started)
    retire_unmatched(store, started, sink.version())
    writing += time.perf_counter() - at
    return RebuildReport(
        events, written, fan_in, retired, tuple(stats), grouping, summarizing, writing
    )


def rebuilt(store: Store, config: SlasConfig, now: int) -> dict[str, Transaction]:
    """Every transaction the batch pass computes, by id, without writing (for comparisons)."""
    clocks = clocks_for(config.facilities)
    renamed = renamed_facilities(config)
    found: dict[str, Transaction] = {}
    with work_tables(store) as t:
        for workflow in config.workflows:
            group_workflow(store, workflow, t)
            for part in transactions(store, workflow, t, clocks, renamed, now):
                found.update((tx.id, tx) for tx in part)
    return found


__all__ = ["RebuildReport", "rebuild", "rebuilt"]
