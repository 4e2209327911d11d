"""The correlator's I/O edge: events in, transaction rows out (ClickHouse)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

import msgspec

from correlator.schema import TRANSACTION_KEYS, TRANSACTION_STATE, TRANSACTIONS
from correlator.stitching import Changes, Retired
from correlator.transaction import Level, StepResult, Transaction
from correlator.unmatched import write_states
from stitchboard.events import Event
from stitchboard.store import Store, literal_rows, string_array

# The live path's and the pass's inserts skip the engine's merge of each inserted block
# (``optimize_on_insert``): a block holds one version of each id, so that merge finds
# nothing to collapse. Without it a full pass's inserts (with their key and deadline
# views) took about a third less time, and a live batch about 5 % less in all
# (BENCHMARKS.md). Readers never rely on it: they read with FINAL, DISTINCT or GROUP BY.
NO_INSERT_MERGE = {"optimize_on_insert": 0}

TX_COLUMNS = (
    "id",
    "workflow",
    "id_time",
    "facility",
    "status",
    "level",
    "start_time",
    "end_time",
    "last_time",
    "duration_ns",
    "warn_deadline",
    "breach_deadline",
    "flags",
    "missed_steps",
    "amount",
    "event_ids",
    "event_steps",
    "key_names",
    "key_values",
    "event_count",
    "error_count",
    "step_names",
    "step_counts",
    "step_first",
    "step_last",
    "step_levels",
    "step_durations",
    "step_warn",
    "step_breach",
    "step_status",
    "warn_missed_at",
    "breach_missed_at",
    "version",
    "deleted",
    "evaluated_at",
    "key_delta",
    "delta_key_names",
    "delta_key_values",
)


def first_missed(tx: Transaction) -> tuple[int, int]:
    """The earliest warn-or-worse and breach deadline the transaction missed (ns, 0 = none).

    A missed breach deadline of a step also means its warn deadline was missed
    (when it has one); an end-to-end miss counts at the deadline recorded.
    """
    warn_at = {s.name: s.warn_at for s in tx.steps}
    warn = breach = 0
    for m in tx.missed:
        if m.level == Level.BREACH:
            breach = m.deadline if not breach else min(breach, m.deadline)
            at = warn_at.get(m.step, 0) or m.deadline
        else:
            at = m.deadline
        warn = at if not warn else min(warn, at)
    return warn, breach


_NO_STEPS: tuple[tuple[Any, ...], ...] = ((),) * len(StepResult._fields)


def transaction_row(
    tx: Transaction,
    version: int,
    evaluated_at: int = 0,
    new_keys: tuple[tuple[str, str], ...] | None = None,
) -> tuple:
    """A transaction row; ``new_keys`` (when known) are the key values its previous
    version under the same id did not have: only those are indexed again.

    The step columns come from one transposition of the steps (``zip``), not one pass
    over them per column: a live batch writes tens of thousands of rows."""
    (
        names,
        counts,
        firsts,
        lasts,
        anchors,
        warns,
        breaches,
        durations,
        levels,
        _,
        _,
        statuses,
    ) = _step_columns(tx.steps)
    keys = tuple(zip(*tx.keys, strict=True)) or ((), ())
    delta = tuple(zip(*new_keys, strict=True)) if new_keys else ((), ())
    return (
        tx.id,
        tx.workflow,
        tx.id_time,
        tx.facility,
        tx.status,
        tx.level,
        tx.start_time,
        tx.end_time or None,
        tx.last_time,
        tx.duration_ns if tx.end_time else None,
        tx.warn_deadline or None,
        tx.breach_deadline or None,
        tx.flags,
        sorted({m.step for m in tx.missed}) if tx.missed else (),
        tx.amount,
        tx.event_ids,
        tx.event_steps,
        keys[0],
        keys[1],
        len(tx.event_ids),
        tx.error_count,
        names,
        counts,
        firsts,
        lasts,
        levels,
        [d if f and a else -1 for d, f, a in zip(durations, firsts, anchors, strict=True)],
        warns,
        breaches,
        statuses,
        *(first_missed(tx) if tx.missed else (0, 0)),
        version,
        0,
        evaluated_at,
        0 if new_keys is None else 1,
        delta[0],
        delta[1],
    )


def _step_columns(steps: tuple[StepResult, ...]) -> tuple[tuple[Any, ...], ...]:
    """The steps' fields as columns, in ``StepResult``'s order."""
    return tuple(zip(*steps, strict=True)) if steps else _NO_STEPS


def deleted_row(gone: Retired, version: int) -> tuple:
    return (
        gone.id,
        gone.workflow,
        gone.id_time,
        "",
        "",
        "",
        gone.id_time,
        None,
        gone.id_time,
        None,
        None,
        None,
        [],
        [],
        None,
        [],
        [],
        [],
        [],
        0,
        0,
        [],
        [],
        [],
        [],
        [],
        [],
        [],
        [],
        [],
        0,
        0,
        version,
        1,
        0,
        0,
        [],
        [],
    )


class TransactionSink:
    """Writes a correlator's changes; versions only grow, so the newest write wins."""

    def __init__(self, store: Store):
        self.store = store
        self._last = 0
        self._lock = threading.Lock()

    def version(self) -> int:
        with self._lock:
            self._last = max(self._last + 1, time.time_ns())
            return self._last

    def write(
        self,
        changes: Changes,
        chunk: int = 50_000,
        new_keys: Mapping[str, tuple[tuple[str, str], ...]] | None = None,
    ) -> int:
        if not changes.upserts and not changes.retired and not changes.fan_in:
            return 0
        version = self.version()
        # Fan-in states first: a failed write is redone whole, and rewriting is idempotent.
        write_states(self.store, changes.fan_in, version)
        upserts = changes.upserts
        # Upserts and retirements in one INSERT where they fit: a merged transaction and
        # the id it absorbed land together (transaction_keys is filled by a materialized
        # view from these rows in the same INSERT).
        known = new_keys or {}
        rows = [transaction_row(tx, version, changes.now, known.get(tx.id)) for tx in upserts]
        rows += [deleted_row(r, version) for r in changes.retired]
        for i in range(0, len(rows), chunk):
            self.store.insert(TRANSACTIONS.name, TX_COLUMNS, rows[i : i + chunk], NO_INSERT_MERGE)
        return len(upserts) + len(changes.retired)

    def retire_older_than(self, version: int) -> int:
        """After a full pass wrote every live transaction: delete the ones it did not write."""
        table = self.store.table(TRANSACTIONS.name)
        stale = self.store.rows(
            f"SELECT workflow, id, toUnixTimestamp64Nano(id_time) FROM {table} FINAL"
            " WHERE deleted = 0 AND version < {v:UInt64}",
            {"v": version},
        )
        if stale:
            new = self.version()
            self.store.insert(
                TRANSACTIONS.name,
                TX_COLUMNS,
                [deleted_row(Retired(w, i, t), new) for w, i, t in stale],
            )
        return len(stale)

    def truncate(self) -> None:
        for table in (TRANSACTIONS.name, TRANSACTION_KEYS.name):
            self.store.truncate(table)


def truncate_state(store: Store) -> None:
    """Empty ``transaction_state`` before rows are rewritten without it: on a cluster
    each server keeps its own, so every server's (``ON CLUSTER``)."""
    store.command(f"TRUNCATE TABLE IF EXISTS {store.server_table(TRANSACTION_STATE)}")


# Only what correlation reads: the rest of an event stays in ClickHouse (the detail
# view reads it there), which keeps millions of in-memory hops small.
_SELECT_EVENTS = (
    "SELECT event_id, toUnixTimestamp64Nano(event_time), toUnixTimestamp64Nano(sent_time),"
    " facility, system, operation, status, amount, keys, {attributes} FROM {table}"
)


def correlation_event(
    *,
    event_id: str,
    event_time: int,
    sent_time: int,
    facility: str,
    system: str,
    operation: str,
    status: str,
    amount: Decimal | None,
    keys: dict[str, str],
    attributes: dict[str, str],
) -> Event:
    """An event with only what correlation reads (the one builder for both readers).

    ``Event``'s fields are passed by position: millions are built, and keywords made
    each about a sixth dearer. ``test_correlation_events_carry_what_was_read`` holds
    the positions to the names."""
    return Event(
        event_id,
        event_time,
        event_time,  # observed_time
        "",  # source_kind
        "",  # source
        facility,
        system,
        operation,
        status,
        "",  # status_message
        0,  # duration_ns
        amount,
        "",  # trace_id
        "",  # span_id
        keys,
        attributes,
        sent_time if sent_time != event_time else 0,
    )


def _wanted(attributes: Sequence[str]) -> str:
    """The ``attributes`` column with only the names correlation reads."""
    if not attributes:
        return "map()"
    return "mapFilter((k, v) -> has({attribute_names:Array(String)}, k), attributes)"


def _events(rows: Sequence[Sequence[Any]]) -> list[Event]:
    """Events from rows of ``_SELECT_EVENTS`` (columns after its ten are ignored)."""
    return [
        correlation_event(
            event_id=row[0],
            event_time=row[1],
            sent_time=row[2],
            facility=row[3],
            system=row[4],
            operation=row[5],
            status=row[6],
            amount=row[7],
            keys=row[8],
            attributes=row[9],
        )
        for row in rows
    ]


def read_events(
    store: Store,
    inserted_since: int | None = None,
    inserted_stamps: Sequence[int] = (),
    attributes: Sequence[str] = (),
    block: int = 100_000,
) -> Iterator[list[Event]]:
    """Every stored event (or those inserted since an instant, or with the given
    ``inserted_at`` stamps in microseconds), in blocks.

    No FINAL: copies of one event share its id and the correlator keeps one, so
    unmerged duplicates cannot change a result, and the scan stays a plain read.
    """
    wanted = _wanted(attributes)
    sql = _SELECT_EVENTS.format(table=store.table("events"), attributes=wanted)
    params: dict[str, Any] = {"attribute_names": list(attributes)} if attributes else {}
    if inserted_since is not None:
        sql += " WHERE inserted_at >= fromUnixTimestamp64Nano({since:Int64})"
        params["since"] = inserted_since
    elif inserted_stamps:
        lowest, highest = min(inserted_stamps), max(inserted_stamps)
        sql += (
            " WHERE inserted_at BETWEEN fromUnixTimestamp64Micro({lo:Int64})"
            " AND fromUnixTimestamp64Micro({hi:Int64})"
            " AND toUnixTimestamp64Micro(inserted_at) IN {stamps:Array(Int64)}"
        )
        params.update(lo=lowest, hi=highest, stamps=sorted(set(inserted_stamps)))
    settings = {"max_block_size": block}
    for rows in store.stream_rows(sql, params or None, settings):
        yield _events(rows)


def _plain_mapping(value: object) -> dict[str, str]:
    """``hops_payload``'s encoder hook: an event's keys or attributes held in a mapping
    that is not a dict (the encoder writes dicts natively)."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"cannot write {type(value).__name__} into a hops payload")


# msgspec's JSON: about a ninth of the standard library encoder's time an event, and
# half its decoder's (components are rewritten whole, so each event is written again
# with every later hop of its transaction). Amounts are written as decimal strings.
_PAYLOAD_ENCODER = msgspec.json.Encoder(enc_hook=_plain_mapping, decimal_format="string")
_PAYLOAD_DECODER = msgspec.json.Decoder()


def hops_payload(events: Sequence[Event]) -> str:
    """What correlation reads of these events, as JSON (``events_from_payload`` reads it)."""
    return _PAYLOAD_ENCODER.encode(
        [
            (
                e.event_id,
                e.event_time,
                e.sent_time,
                e.facility,
                e.system,
                e.operation,
                e.status,
                e.amount,
                e.keys,
                e.attributes,
            )
            for e in events
        ]
    ).decode()


def events_from_payload(text: str) -> dict[str, Event]:
    found: dict[str, Event] = {}
    for (
        i,
        t,
        sent,
        facility,
        system,
        operation,
        status,
        amount,
        keys,
        attrs,
    ) in _PAYLOAD_DECODER.decode(text):
        found[i] = correlation_event(
            event_id=i,
            event_time=t,
            sent_time=sent or t,
            facility=facility,
            system=system,
            operation=operation,
            status=status,
            amount=None if amount is None else Decimal(amount),
            keys=keys,
            attributes=attrs,
        )
    return found


@dataclass(frozen=True)
class InsertCursor:
    """A place in ``events`` in insert order: rows inserted at or after ``since`` (ns)
    that come after the row (``at`` in microseconds, ``after`` its event id)."""

    since: int
    at: int = -1
    after: str = ""


# The rows after an ``InsertCursor``: the bound on ``inserted_at`` is what its minmax
# index can skip granules by.
_AFTER_CURSOR = (
    " WHERE inserted_at >= fromUnixTimestamp64Nano({since:Int64})"
    " AND (toUnixTimestamp64Micro(inserted_at), event_id) > ({at:Int64}, {after:String})"
)


def read_events_page(
    store: Store, cursor: InsertCursor, attributes: Sequence[str] = (), block: int = 20_000
) -> tuple[list[Event], InsertCursor]:
    """Up to ``block`` events after ``cursor``, oldest insert first, and the cursor
    after them (the same one when there were none). Fewer than ``block``: caught up."""
    wanted = _wanted(attributes)
    select = _SELECT_EVENTS.replace(
        " FROM {table}", ", toUnixTimestamp64Micro(inserted_at) FROM {table}"
    )
    sql = select.format(table=store.table("events"), attributes=wanted) + (
        _AFTER_CURSOR + " ORDER BY inserted_at, event_id LIMIT {block:UInt32}"
    )
    params: dict[str, Any] = {
        "since": cursor.since,
        "at": cursor.at,
        "after": cursor.after,
        "block": block,
    }
    if attributes:
        params["attribute_names"] = list(attributes)
    rows = store.rows(sql, params)
    if not rows:
        return [], cursor
    events = _events(rows)
    return events, InsertCursor(cursor.since, rows[-1][-1], rows[-1][0])


def count_events_after(store: Store, cursor: InsertCursor) -> int:
    """How many events come after ``cursor`` in insert order (a catch-up's backlog)."""
    rows = store.rows(
        f"SELECT count() FROM {store.table('events')}" + _AFTER_CURSOR,
        {"since": cursor.since, "at": cursor.at, "after": cursor.after},
    )
    return int(rows[0][0])


def read_events_inserted_since(
    store: Store, since: int, attributes: Sequence[str] = (), block: int = 20_000
) -> Iterator[list[Event]]:
    """The events inserted at or after ``since`` (ns), oldest insert first, one page
    at a time (a page is read whole, so the caller may query between pages)."""
    cursor = InsertCursor(since)
    while True:
        events, cursor = read_events_page(store, cursor, attributes, block)
        if events:
            yield events
        if len(events) < block:
            return


def read_events_by_id(
    store: Store, event_ids: Sequence[str], attributes: Sequence[str] = (), chunk: int = 20_000
) -> dict[str, Event]:
    """The stored events with these ids (``events`` is sorted by id: a key lookup)."""
    wanted = _wanted(attributes)
    select = _SELECT_EVENTS.format(table=store.table("events"), attributes=wanted)
    params = {"attribute_names": list(attributes)} if attributes else None
    found: dict[str, Event] = {}
    for i in range(0, len(event_ids), chunk):
        sql = f"{select} WHERE event_id IN {string_array(event_ids[i : i + chunk])}"
        for row in literal_rows(store, sql, params):
            event_id, t, sent, facility, system, operation, status, amount, keys, attrs = row
            found.setdefault(
                event_id,
                correlation_event(
                    event_id=event_id,
                    event_time=t,
                    sent_time=sent,
                    facility=facility,
                    system=system,
                    operation=operation,
                    status=status,
                    amount=amount,
                    keys=keys,
                    attributes=attrs,
                ),
            )
    return found


def events_from_batch(
    columns: Sequence[str], rows: Sequence[Sequence[object]], attributes: Sequence[str] = ()
) -> list[Event]:
    """Events from rows the writer just made durable, with only what correlation reads
    (as ``read_events``), whatever column order the sink used."""
    names_at = list(columns)
    at = {name: names_at.index(name) for name in _NEEDED}
    i, t, f, s, o, st, am, k, a = (at[name] for name in _NEEDED)
    sent_at = names_at.index("sent_time") if "sent_time" in names_at else t
    names = tuple(attributes)
    events = []
    for row in rows:
        attrs = cast(dict, row[a])
        kept = {n: attrs[n] for n in names if n in attrs} if names and attrs else {}
        events.append(
            correlation_event(
                event_id=cast(str, row[i]),
                event_time=cast(int, row[t]),
                sent_time=cast(int, row[sent_at]),
                facility=cast(str, row[f]),
                system=cast(str, row[s]),
                operation=cast(str, row[o]),
                status=cast(str, row[st]),
                amount=cast(Any, row[am]),
                keys=cast(dict, row[k]),
                attributes=kept,
            )
        )
    return events


_NEEDED = (
    "event_id",
    "event_time",
    "facility",
    "system",
    "operation",
    "status",
    "amount",
    "keys",
    "attributes",
)
