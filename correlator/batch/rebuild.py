"""The batch pass: every stored event into transactions, grouped in SQL, summarized in Python.

``rebuild`` is the full rebuild (after a slas.yaml change, a backfill, or to
repair): per workflow, ``components.group_workflow`` groups the events into
transactions in ClickHouse; the members are then read back one range of about
``chunk`` transactions at a time, sorted by transaction, into the pure
``transaction.summarize`` (the one definition of statuses, levels, flags, steps
and deadlines), and each chunk is written with the live path's row builders
(``TransactionSink``). Fan-in events and whether a transaction carries them go
to ``unmatched_events`` straight from the work tables, without Python. Python
holds one chunk at a time, never the whole history.

Every live transaction is rewritten with one new version; rows the pass did not
write (ids that no longer exist) are retired afterwards, and so are unmatched
fan-in rows it did not rewrite, as the live correlator's startup pass does.

The two halves overlap: one writer thread (``ChunkWriter``, its own engine
connection) writes a chunk while the pass reads and summarizes the next one, and
while it groups the next workflow in SQL (the engine runs a query without holding
Python's lock, so on two cores the insert and the grouping or summarizing proceed
side by side). At most two chunks wait for the writer, so memory stays one or two
chunks deep. The cyclic garbage collector is paused for the pass: its hundreds of
thousands of short-lived tuples hold no cycles, and the generation-2 collections
their allocation set off walked every live object again and again (a large share
of the pass's Python time in a profile).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from correlator.batch.components import (
    HOP_COLUMNS,
    ComponentStats,
    WorkTables,
    disk_shortfall,
    group_workflow,
    pages,
    work_tables,
)
from correlator.batch.routing import literal, regex_problems
from correlator.deadlines import FacilityClock, clocks_for
from correlator.engine import renamed_facilities
from correlator.repository import TransactionSink, correlation_event, truncate_state
from correlator.stitching import Changes
from correlator.transaction import Hop, Plan, Transaction, summarize
from correlator.unmatched import COLUMNS as UNMATCHED_COLUMNS
from correlator.unmatched import UNMATCHED_EVENTS
from correlator.unmatched import retire_older_than as retire_unmatched
from stitchboard.config.model import SlasConfig
from stitchboard.config.workflows import Workflow
from stitchboard.disks import store_disks
from stitchboard.errors import ConfigError
from stitchboard.events import Event
from stitchboard.store import Store

log = logging.getLogger(__name__)

CHUNK = 20_000  # transactions summarized and written at a time
IN_FLIGHT = 2  # chunks summarized and waiting for the writer, at most


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
    # Writing transactions (the writer thread's busy time, which overlaps the other
    # two) and fan-in states: the three may add up to more than the wall time.
    write_seconds: float


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
    """The grouped members of ``workflow`` (``group_workflow`` ran), summarized, in chunks.

    A chunk is one query over a range of components, read whole before it is
    yielded: the caller may write between chunks (one connection runs one query)."""
    plan = Plan(workflow)
    columns = ", ".join(HOP_COLUMNS)
    for where in pages(store, t, chunk):
        rows = store.rows(
            f"SELECT comp, attached, {columns} FROM {t('members')}"
            f" WHERE {where} ORDER BY comp, event_id"
        )
        done: list[Transaction] = []
        current = -1
        core: list[Hop] = []
        attached: list[Hop] = []
        for row in rows:
            comp = row[0]
            if comp != current:
                if core:
                    done.append(summarize(plan, core, attached, clocks, now))
                current, core, attached = comp, [], []
            hop = Hop(_event(row, renamed), row[3])
            (attached if row[1] else core).append(hop)
        if core:
            done.append(summarize(plan, core, attached, clocks, now))
        del rows
        yield done


def write_fan_in(
    store: Store, workflow: Workflow, t: WorkTables, renamed: dict[str, str], version: int
) -> int:
    """Write every fan-in hop of ``workflow`` to ``unmatched_events`` with whether some
    transaction carries it, inside the engine (the rows ``unmatched.state_row`` builds)."""
    fan_in = [i for i, s in enumerate(workflow.steps) if s.fan_in]
    if not fan_in:
        return 0
    steps = ", ".join(str(i) for i in fan_in)
    names = ", ".join(literal(workflow.steps[i].name) for i in fan_in)
    facility = "toString(facility)"
    if renamed:
        aliases = ", ".join(literal(a) for a in renamed)
        ids = ", ".join(literal(i) for i in renamed.values())
        facility = f"transform({facility}, [{aliases}], [{ids}], {facility})"
    table = store.table(UNMATCHED_EVENTS.name)
    # ``key\x1fvalue``: key names are slas.yaml identifiers, never holding \x1f.
    t.command(
        f"INSERT INTO {table} ({', '.join(UNMATCHED_COLUMNS)})"
        f" SELECT {literal(workflow.name)}, transform(step, [{steps}], [{names}], ''), event_id,"
        f" fromUnixTimestamp64Nano(event_time, 'UTC'), {facility}, system, operation,"
        " arrayMap(x -> substring(x, 1, position(x, '\\x1f') - 1), stitch),"
        " arrayMap(x -> substring(x, position(x, '\\x1f') + 1), stitch), keys,"
        f" toUInt8(event_id IN (SELECT event_id FROM {t('members')} WHERE attached = 1)),"
        f" toUInt64({int(version)}) FROM {t('hops')} WHERE step IN ({steps})"
    )
    return int(store.scalar(f"SELECT count() FROM {t('hops')} WHERE step IN ({steps})") or 0)


@contextmanager
def collection_paused() -> Iterator[None]:
    """No cyclic garbage collection while a pass or a live batch runs.

    Both allocate hundreds of thousands of short-lived objects (hops, rows,
    transactions), each burst triggering collections that walk every long-lived object
    of the process (the component cache, the web stages); in a profile these full
    collections cost as much as correlating. Their garbage holds no cycles that matter
    while they run; the collector resumes afterwards as usual (see the module docstring).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class ChunkWriter:
    """Writes summarized chunks on one thread of its own while the caller goes on.

    ``submit`` returns at once unless ``IN_FLIGHT`` chunks are already waiting, then
    it waits for the oldest; a failed write is raised by the next ``submit`` or by
    ``drain``, so a pass never reports rows it did not write. ``close`` ends the
    thread and its engine connection. ``now`` is the instant the chunks were judged
    at (their rows' ``evaluated_at``)."""

    def __init__(
        self, store: Store, sink: TransactionSink, now: int = 0, in_flight: int = IN_FLIGHT
    ):
        self.store = store
        self.sink = sink
        self.now = now
        self.in_flight = in_flight
        self.seconds = 0.0  # busy time of the writer thread
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rebuild-writer")
        self._pending: list[Future[None]] = []
        self._lock = threading.Lock()

    def _write(self, part: list[Transaction]) -> None:
        at = time.perf_counter()
        # The sink's inserts skip the engine's merge of each block (NO_INSERT_MERGE).
        self.sink.write(Changes(tuple(part), (), now=self.now))
        with self._lock:
            self.seconds += time.perf_counter() - at

    def submit(self, part: list[Transaction]) -> None:
        while len(self._pending) >= self.in_flight:
            self._pending.pop(0).result()
        self._pending.append(self._pool.submit(self._write, part))

    def drain(self) -> None:
        while self._pending:
            self._pending.pop(0).result()

    def close(self) -> None:
        """Stop: chunks not started are dropped (after a failure; a pass that went
        well has drained), the one being written finishes, the connection closes."""
        for pending in self._pending:
            pending.cancel()
        self._pending.clear()
        # The connection is the writer thread's own: close it there, after the rest.
        self._pool.submit(self.store.close).result()
        self._pool.shutdown()


def rebuild(
    store: Store,
    config: SlasConfig,
    now: int | None = None,
    sink: TransactionSink | None = None,
    chunk: int = CHUNK,
    after: Callable[[Workflow, WorkTables], None] | None = None,
) -> RebuildReport:
    """Recompute every transaction from the stored events and write them (idempotent).

    Raises ``ConfigError`` (before writing anything) for a slas.yaml regex the
    engine's RE2 cannot compile, naming each.

    ``now`` is the instant deadlines are judged at (default: the clock); ``sink``
    writes the rows (default: a ``TransactionSink`` on ``store``); ``after`` is called
    with each workflow and the work tables once its transactions and fan-in states are
    written, before the tables are reused (the live correlator's handover).
    """
    now = time.time_ns() if now is None else now
    problems = regex_problems(
        config.workflows,
        lambda regex: store.scalar("SELECT match('', {r:String})", {"r": regex}),
    )
    if problems:
        raise ConfigError("slas.yaml", problems)
    # The live path's state of each transaction would disagree with the rows rewritten
    # here: empty it (the live correlator's ``after`` hook writes it again).
    truncate_state(store)
    sink = sink or TransactionSink(store)
    clocks = clocks_for(config.facilities)
    renamed = renamed_facilities(config)
    started = sink.version()
    events = int(store.scalar(f"SELECT count() FROM {store.table('events')}") or 0)
    try:
        short = disk_shortfall(store_disks(store), events)
    except Exception as exc:  # noqa: BLE001 - a warning must never stop the pass
        log.info("free disk not checked before the batch pass: %s", exc)
        short = None
    if short:
        log.warning("%s", short)
    grouping = summarizing = writing = 0.0
    written = fan_in = 0
    stats = []
    writer = ChunkWriter(store, sink, now)
    try:
        with collection_paused(), work_tables(store) as t:
            for workflow in config.workflows:
                at = time.perf_counter()
                stats.append(group_workflow(store, workflow, t))
                grouping += time.perf_counter() - at
                at = time.perf_counter()
                for part in transactions(store, workflow, t, clocks, renamed, now, chunk):
                    writer.submit(part)
                    written += len(part)
                summarizing += time.perf_counter() - at
                at = time.perf_counter()
                fan_in += write_fan_in(store, workflow, t, renamed, sink.version())
                if after is not None:
                    writer.drain()  # the hook sees this workflow's transactions stored
                    after(workflow, t)
                writing += time.perf_counter() - at
        at = time.perf_counter()
        writer.drain()
        writing += time.perf_counter() - at
    finally:
        writer.close()
    at = time.perf_counter()
    retired = sink.retire_older_than(started)
    retire_unmatched(store, started, sink.version())
    writing += time.perf_counter() - at + writer.seconds
    return RebuildReport(
        events, written, fan_in, retired, tuple(stats), grouping, summarizing, writing
    )


def rebuilt(
    store: Store, config: SlasConfig, now: int, chunk: int = CHUNK
) -> dict[str, Transaction]:
    """Every transaction the batch pass computes, by id, without writing (for comparisons)."""
    clocks = clocks_for(config.facilities)
    renamed = renamed_facilities(config)
    found: dict[str, Transaction] = {}
    with work_tables(store) as t:
        for workflow in config.workflows:
            group_workflow(store, workflow, t)
            for part in transactions(store, workflow, t, clocks, renamed, now, chunk):
                found.update((tx.id, tx) for tx in part)
    return found


__all__ = ["RebuildReport", "rebuild", "rebuilt"]
