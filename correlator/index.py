"""The live path's state in ClickHouse (the I/O edge of ``correlator.live``).

- The chain index is ``transaction_keys`` (value, key -> transaction id, id time),
  filled by its materialized view in the same INSERT as each transaction row, so a
  transaction and its index rows are never written apart, whoever writes them. A
  retired id's tombstone is its ``deleted = 1`` transaction row: lookups keep only
  live ids (and the sweep deletes a retired id's key rows, keeping the index exact).
- ``lookup_hops``: fan-in and unexpected hops by the values they look up.
- ``transaction_state``: by id, what a reload of a transaction needs (its event ids
  and steps, its events' payload), written with every row the live path writes.
- ``transaction_deadlines``: pending deadlines by due instant (materialized view).
- ``correlator_state``: the watermark, the instant swept through, the config signature.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

from correlator.live import Due, Found, LookupHop, StoredTx, TxRef, Update
from correlator.repository import (
    NO_INSERT_MERGE,
    TransactionSink,
    events_from_payload,
    hops_payload,
    read_events_by_id,
    truncate_state,
)
from correlator.schema import (
    CORRELATOR_STATE,
    LOOKUP_HOPS,
    STATE_COLUMNS,
    TRANSACTION_DEADLINES,
    TRANSACTION_KEYS,
    TRANSACTION_STATE,
    TRANSACTIONS,
)
from correlator.stitching import Node
from stitchboard.config.model import SlasConfig
from stitchboard.events import Event
from stitchboard.store import Store, literal_rows, string_array

_CHUNK = 10_000
_LOOKUP_CHUNK = 100_000  # values per lookup statement: one statement for most batches
LOOKUP_COLUMNS = ("workflow", "key", "value", "event_id", "step")


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class StoreIndex:
    """``ChainIndex`` on ClickHouse; writes go through the ``TransactionSink``."""

    def __init__(self, store: Store, sink: TransactionSink, attributes: Sequence[str] = ()):
        self.store = store
        self.sink = sink
        self.attributes = tuple(attributes)
        self.retired: set[str] = set()  # ids whose key, hops and deadline rows are to delete
        self.deadlines_pruned = 0  # pending deadlines due up to this instant (ns) are deleted
        self.events_by_id = 0  # events read from ``events`` by id (not from transaction_hops)
        # Write volume: event ids in the transaction rows written, and the key rows the
        # materialized view derives from them (one per key value of each row).
        self.event_ids_written = 0
        self.key_rows_written = 0

    def find(self, transactions: Mapping[str, set[Node]], hops: Mapping[str, set[Node]]) -> Found:
        wanted = {(w, k, v) for w, values in transactions.items() for k, v in values}
        refs: list[TxRef] = []
        table = self.store.table(TRANSACTION_KEYS.name)
        for part in _chunks(sorted({v for _, _, v in wanted}), _LOOKUP_CHUNK):
            for workflow, key, value, tx_id, id_time in literal_rows(
                self.store,
                "SELECT DISTINCT workflow, key, value, transaction_id,"
                f" toUnixTimestamp64Nano(id_time) FROM {table}"
                f" WHERE value IN {string_array(part)}",
            ):
                if (workflow, key, value) in wanted:
                    refs.append(TxRef(workflow, tx_id, id_time))
        waiting = {(w, k, v) for w, values in hops.items() for k, v in values}
        found: list[LookupHop] = []
        table = self.store.table(LOOKUP_HOPS.name)
        for part in _chunks(sorted({v for _, _, v in waiting}), _LOOKUP_CHUNK):
            for row in literal_rows(
                self.store,
                f"SELECT DISTINCT workflow, key, value, event_id, step FROM {table}"
                f" WHERE value IN {string_array(part)}",
            ):
                hop = LookupHop(*row)
                if (hop.workflow, hop.key, hop.value) in waiting:
                    found.append(hop)
        return Found(refs, found)

    def load_transactions(self, refs: Collection[TxRef]) -> list[StoredTx]:
        """Live transactions by id: from ``transaction_state`` (key lookups, events
        included), else from ``transactions FINAL`` (the caller then reads their
        events from ``events`` by id)."""
        wanted = sorted({r.id for r in refs})
        out: list[StoredTx] = []
        held: set[str] = set()
        table = self.store.table(TRANSACTION_STATE)
        for part in _chunks(wanted):
            for i, w, t, ids, steps, evaluated, deleted, payload in literal_rows(
                self.store,
                "SELECT id, workflow, id_time, event_ids, event_steps, evaluated_at,"
                f" deleted, hops FROM {table} WHERE id IN {string_array(part)}",
            ):
                held.add(i)
                if deleted:
                    continue  # retired: its transactions row is a tombstone too
                events = events_from_payload(payload)
                if events.keys() != set(ids):
                    events = {}  # not what its ids say: read them by id instead
                out.append(StoredTx(w, i, t, tuple(ids), tuple(steps), evaluated, events))
        missing = sorted((r for r in set(refs) if r.id not in held), key=lambda r: r.id_time)
        table = self.store.table(TRANSACTIONS.name)
        for part in _chunks(missing):
            params = {
                "workflows": sorted({r.workflow for r in part}),
                "lo": part[0].id_time,
                "hi": part[-1].id_time,
            }
            for w, i, t, ids, steps, evaluated in literal_rows(
                self.store,
                "SELECT workflow, id, toUnixTimestamp64Nano(id_time), event_ids, event_steps,"
                f" evaluated_at FROM {table} FINAL WHERE workflow IN {{workflows:Array(String)}}"
                " AND id_time BETWEEN fromUnixTimestamp64Nano({lo:Int64})"
                " AND fromUnixTimestamp64Nano({hi:Int64})"
                f" AND id IN {string_array(r.id for r in part)} AND deleted = 0",
                params,
            ):
                out.append(StoredTx(w, i, t, tuple(ids), tuple(steps), evaluated))
        return out

    def load_events(self, event_ids: Collection[str]) -> dict[str, Event]:
        self.events_by_id += len(event_ids)
        return read_events_by_id(self.store, sorted(event_ids), self.attributes)

    def due(self, after: int, until: int) -> list[Due]:
        table = self.store.table(TRANSACTION_DEADLINES.name)
        candidates = self.store.rows(
            f"SELECT workflow, id, toUnixTimestamp64Nano(id_time), max(due) FROM {table}"
            " WHERE due > {after:Int64} AND due <= {until:Int64} GROUP BY workflow, id, id_time",
            {"after": after, "until": until},
        )
        if not candidates:
            return []
        due = {i: (TxRef(w, i, t), d) for w, i, t, d in candidates}
        # Still open and evaluated before the deadline: the deadline is news to its row.
        return [
            Due(due[tx.id][0], due[tx.id][1])
            for tx in self.load_transactions([ref for ref, _ in due.values()])
            if tx.evaluated_at < due[tx.id][1]
        ]

    def write(self, update: Update) -> int:
        """Transactions (with their key rows) first, lookup hops after: a lookup hop
        is only ever found once the transactions it changed are stored."""
        written = self.sink.write(update.changes, new_keys=update.new_keys)
        self.event_ids_written += sum(len(tx.event_ids) for tx in update.changes.upserts)
        self.key_rows_written += sum(
            len(update.new_keys.get(tx.id, tx.keys)) for tx in update.changes.upserts
        )
        changes = update.changes
        if changes.upserts or changes.retired:
            version = self.sink.version()
            txs = {tx.id: tx for tx in changes.upserts}
            rows = [
                (
                    ref.id,
                    ref.workflow,
                    ref.id_time,
                    version,
                    0,
                    tx.event_ids,
                    tx.event_steps,
                    changes.now,
                    hops_payload([h[0] for h in held]),
                )
                for ref, held in update.components
                if (tx := txs.get(ref.id)) is not None
            ]
            # A retired id's tombstone: a reload never finds it live.
            rows += [
                (r.id, r.workflow, r.id_time, version, 1, (), (), 0, "") for r in changes.retired
            ]
            self.store.insert(TRANSACTION_STATE, STATE_COLUMNS, rows)
        hops = update.lookup_hops
        if hops:
            self.store.insert(
                LOOKUP_HOPS.name, LOOKUP_COLUMNS, [tuple(h) for h in hops], NO_INSERT_MERGE
            )
        self.retired.update(r.id for r in update.changes.retired)
        return written

    def retired_by_pass(self, since: int) -> int:
        """Queue for pruning the ids a full pass retired: its tombstones (``deleted = 1``
        rows written at or after ``since``, ns; a pass writes versions from its start on).
        The pass retires them in SQL, so the live path never saw them. Returns how many."""
        ids = self.store.rows(
            f"SELECT DISTINCT id FROM {self.store.table(TRANSACTIONS.name)}"
            " WHERE deleted = 1 AND version >= {since:UInt64}",
            {"since": since},
        )
        self.retired.update(i for (i,) in ids)
        return len(ids)

    def prune_keys(self) -> int:
        """Delete every row kept for a retired id: its key rows, its state (a tombstone
        until now) and its pending deadlines (few ids, batched: each DELETE is a
        mutation). Returns how many ids were pruned."""
        if not self.retired:
            return 0
        ids = sorted(self.retired)
        store = self.store
        tables = (
            (store.local_table(TRANSACTION_KEYS.name), "transaction_id"),
            (store.server_table(TRANSACTION_STATE), "id"),  # each server's own
            (store.local_table(TRANSACTION_DEADLINES.name), "id"),
        )
        for part in _chunks(ids):
            for table, column in tables:
                store.command(
                    f"DELETE FROM {table} WHERE {column} IN {{ids:Array(String)}}",
                    parameters={"ids": list(part)},
                )
        self.retired.clear()
        return len(ids)

    def prune_deadlines(self, through: int) -> int:
        """Delete the pending deadlines due at or before ``through`` (ns): the sweep has
        judged them (it reads only what fell due after the instant it swept through), so
        the table holds only deadlines still ahead. Returns how many rows went."""
        if through <= self.deadlines_pruned:
            return 0
        table = self.store.table(TRANSACTION_DEADLINES.name)
        bounds = {"after": self.deadlines_pruned, "through": through}
        sql = f"SELECT count() FROM {table}"
        sql += " WHERE due > {after:Int64} AND due <= {through:Int64}"
        gone = int(self.store.scalar(sql, bounds) or 0)
        if gone:
            self.store.command(
                f"DELETE FROM {self.store.local_table(TRANSACTION_DEADLINES.name)}"
                " WHERE due <= {through:Int64}",
                parameters={"through": through},
            )
        self.deadlines_pruned = through
        return gone

    def truncate_state(self) -> None:
        """Before a pass that rewrites transactions without it: a row left from before
        could disagree with the transaction it rewrites."""
        truncate_state(self.store)

    def write_all_lookup_hops(self, rows: Sequence[LookupHop]) -> None:
        for part in _chunks(rows, 100_000):
            self.store.insert(LOOKUP_HOPS.name, LOOKUP_COLUMNS, [tuple(h) for h in part])

    def truncate_lookup_hops(self) -> None:
        self.store.truncate(LOOKUP_HOPS.name)


# -- correlator_state: what a restart resumes from ------------------------------------

WATERMARK = "watermark"  # every event inserted before this instant (ns) is correlated
SWEPT = "swept"  # every deadline up to this instant (ns) has been swept
SIGNATURE = "signature"  # the slas.yaml the stored transactions were computed under


def config_signature(config: SlasConfig) -> str:
    """What correlation depends on in slas.yaml: workflows and facilities (their
    aliases, zones and calendars); key rules act at ingest, before correlation."""
    text = config.model_dump_json(include={"workflows", "facilities"})
    return hashlib.sha256(text.encode()).hexdigest()


def read_state(store: Store) -> dict[str, tuple[int, str]]:
    table = store.table(CORRELATOR_STATE.name)
    rows = store.rows(f"SELECT name, number, text FROM {table} FINAL")
    return {name: (number, text) for name, number, text in rows}


def write_state(store: Store, version: int, **values: int | str) -> None:
    rows = [
        (name, value, "", version) if isinstance(value, int) else (name, 0, value, version)
        for name, value in values.items()
    ]
    store.insert(CORRELATOR_STATE.name, ("name", "number", "text", "version"), rows)


def mark_correlated(store: Store, config: SlasConfig, upto: int, version: int) -> None:
    """Record that the stored transactions are correlated under ``config`` from every
    event inserted before ``upto`` (ns), deadlines swept through it: the next start
    resumes from there instead of a full pass. For tools that write transaction rows
    themselves (benchmarks); ``version`` orders this state after any earlier one."""
    values: dict[str, int | str] = {
        SIGNATURE: config_signature(config),
        WATERMARK: upto,
        SWEPT: upto,
    }
    write_state(store, version, **values)
