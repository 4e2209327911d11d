"""The live path's stored state in memory: the ``ChainIndex`` fake for tests.

It keeps what ClickHouse keeps (events, live transactions with their event ids, the
key index with stale rows for retired ids, lookup hops, pending deadlines), so the
live path meets the same over-inclusive lookups and must filter them the same way.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from correlator.live import Due, Found, LookupHop, StoredTx, TxRef, Update
from correlator.stitching import FanInState, Node
from correlator.transaction import Transaction
from stitchboard.events import Event


class MemoryIndex:
    def __init__(self) -> None:
        self.events: dict[str, Event] = {}
        self.live: dict[str, StoredTx] = {}
        self.rows: dict[str, Transaction] = {}  # the newest row written per live id
        self.keys: dict[tuple[str, str], set[TxRef]] = {}  # (key, value) -> ids, never pruned
        self.hops: dict[tuple[str, str], set[LookupHop]] = {}
        self.deadlines: list[Due] = []
        self.fan_in: dict[tuple[str, str], FanInState] = {}
        self.rows_written = 0  # transaction rows, retirements included
        self.loads = 0  # transactions read back

    def store_events(self, events: Iterable[Event]) -> None:
        for event in events:
            self.events.setdefault(event.event_id, event)

    def find(self, transactions: Mapping[str, set[Node]], hops: Mapping[str, set[Node]]) -> Found:
        refs = [
            ref
            for workflow, values in transactions.items()
            for value in values
            for ref in self.keys.get(value, ())
            if ref.workflow == workflow
        ]
        found = [
            hop
            for workflow, values in hops.items()
            for value in values
            for hop in self.hops.get(value, ())
            if hop.workflow == workflow
        ]
        return Found(refs, found)

    def load_transactions(self, refs: Collection[TxRef]) -> list[StoredTx]:
        self.loads += len(refs)
        return [self.live[r.id] for r in refs if r.id in self.live]

    def load_events(self, event_ids: Collection[str]) -> dict[str, Event]:
        return {i: self.events[i] for i in event_ids if i in self.events}

    def due(self, after: int, until: int) -> list[Due]:
        return [
            d
            for d in self.deadlines
            if after < d.due <= until
            and d.ref.id in self.live
            and self.live[d.ref.id].evaluated_at < d.due
        ]

    def write(self, update: Update) -> int:
        changes = update.changes
        for tx in changes.upserts:
            ref = TxRef(tx.workflow, tx.id, tx.id_time)
            self.live[tx.id] = StoredTx(
                tx.workflow, tx.id, tx.id_time, tx.event_ids, tx.event_steps, changes.now
            )
            self.rows[tx.id] = tx
            for value in tx.keys:
                self.keys.setdefault(value, set()).add(ref)
            if not tx.end_time:
                for due in (tx.warn_deadline, tx.breach_deadline):
                    if due > changes.now:
                        self.deadlines.append(Due(ref, due))
        for gone in changes.retired:
            self.live.pop(gone.id, None)
            self.rows.pop(gone.id, None)
        for hop in update.lookup_hops:
            self.hops.setdefault((hop.key, hop.value), set()).add(hop)
        for state in changes.fan_in:
            self.fan_in[(state.workflow, state.event.event_id)] = state
        written = len(changes.upserts) + len(changes.retired)
        self.rows_written += written
        return written
