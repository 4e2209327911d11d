"""The live correlator: stitch a batch against the state in the store, not in memory.

The store is the state (docs/correlator.md): every transaction with its event ids,
an index from business key values to the transactions carrying them, and the
fan-in and unexpected hops by the values they look up. For each batch:

1. route the new events, and ask the index once for every value they carry: the
   transactions they may join or attach to, and the lookup hops waiting on them;
2. load those transactions whole (every event id they hold, so a partial reload
   can never overwrite a fuller stored version) from a size-capped LRU cache of
   recent components, or from the store;
3. stitch the loaded hops (as state, nothing dirty) and the new ones (dirty) in a
   scratch ``WorkflowStitcher``; flush it: only transactions a new hop changed, and
   the ids they retired, come out.

So memory holds one batch, the components it touches and the cache, however long
the history; and a replayed event changes nothing and writes nothing. The result
equals the in-memory core (``Correlator``), the reference the tests hold it to.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple, Protocol

from correlator.deadlines import clocks_for
from correlator.engine import renamed_facilities
from correlator.matching import UNEXPECTED, Router
from correlator.stitching import Changes, FanInState, Node, Retired, WorkflowStitcher
from correlator.transaction import UNEXPECTED_NAME, Hop, Transaction
from stitchboard.config.model import SlasConfig
from stitchboard.events import Event


class TxRef(NamedTuple):
    workflow: str
    id: str
    id_time: int


class StoredTx(NamedTuple):
    """A live transaction as stored: its events (ids and step names) and when it was
    evaluated."""

    workflow: str
    id: str
    id_time: int
    event_ids: tuple[str, ...]
    event_steps: tuple[str, ...]
    evaluated_at: int
    events: Mapping[str, Event] = {}  # its events, when the store kept them with it


class LookupHop(NamedTuple):
    """A fan-in or unexpected hop under one value it joins transactions by."""

    workflow: str
    key: str
    value: str
    event_id: str
    step: str


class Due(NamedTuple):
    """A transaction with a deadline at ``due``, after its row was evaluated."""

    ref: TxRef
    due: int


class Found(NamedTuple):
    transactions: list[TxRef]  # may include retired ids and near misses (filtered later)
    hops: list[LookupHop]


class ChainIndex(Protocol):
    """The stored state the live path reads and writes (ClickHouse, or in memory)."""

    def find(
        self, transactions: Mapping[str, set[Node]], hops: Mapping[str, set[Node]]
    ) -> Found: ...

    def load_transactions(self, refs: Collection[TxRef]) -> list[StoredTx]: ...

    def load_events(self, event_ids: Collection[str]) -> dict[str, Event]: ...

    def due(self, after: int, until: int) -> list[Due]: ...

    def write(self, update: Update) -> int: ...


@dataclass(frozen=True, slots=True)
class Update:
    """What one batch (or sweep) changed, to write; then ``LiveCorrelator.commit``."""

    changes: Changes
    lookup_hops: tuple[LookupHop, ...]
    components: tuple[tuple[TxRef, tuple[Hop, ...]], ...]  # every component now current
    events: int = 0  # new events in the batch
    # Per upserted id: the key values its stored version under that id did not have.
    new_keys: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        c = self.changes
        return not (c.upserts or c.retired or c.fan_in or self.lookup_hops)


class ComponentCache:
    """Recent components by transaction id, least recently used evicted first, capped
    by the number of hops held (closed and long-open components alike)."""

    def __init__(self, max_hops: int):
        self.max_hops = max_hops
        self.hops = 0
        self._items: OrderedDict[str, tuple[TxRef, tuple[Hop, ...]]] = OrderedDict()

    def get(self, tx_id: str) -> tuple[TxRef, tuple[Hop, ...]] | None:
        found = self._items.get(tx_id)
        if found is not None:
            self._items.move_to_end(tx_id)
        return found

    def put(self, ref: TxRef, hops: tuple[Hop, ...]) -> None:
        self.drop(ref.id)
        if len(hops) > self.max_hops:
            return
        self._items[ref.id] = (ref, hops)
        self.hops += len(hops)
        while self.hops > self.max_hops:
            _, (_, evicted) = self._items.popitem(last=False)
            self.hops -= len(evicted)

    def drop(self, tx_id: str) -> None:
        gone = self._items.pop(tx_id, None)
        if gone is not None:
            self.hops -= len(gone[1])

    def clear(self) -> None:
        self._items.clear()
        self.hops = 0

    def __len__(self) -> int:
        return len(self._items)


class LiveCorrelator:
    def __init__(self, config: SlasConfig, index: ChainIndex, cache_hops: int = 200_000):
        self.config = config
        self.index = index
        self.router = Router(config.workflows)
        self.workflows = list(config.workflows)
        self.at = {w.name: i for i, w in enumerate(self.workflows)}
        # Never fed: they only say which values a hop needs (config-derived).
        self.shapes = [WorkflowStitcher(w) for w in self.workflows]
        self.clocks = clocks_for(config.facilities)
        self.renamed = renamed_facilities(config)
        self.cache = ComponentCache(cache_hops)
        self.loaded_from_store = 0  # components read back from the store (cache misses)

    def route(self, events: Iterable[Event]) -> dict[int, dict[str, Hop]]:
        routed: dict[int, dict[str, Hop]] = {}
        route, renamed = self.router.route, self.renamed
        for event in events:
            if event.facility in renamed:
                event = replace(event, facility=renamed[event.facility])
            for wi, si in route(event.system, event.operation, event.attributes):
                routed.setdefault(wi, {}).setdefault(event.event_id, Hop(event, si))
        return routed

    def correlate(self, events: Iterable[Event], now: int | None = None) -> Update:
        """Stitch new (or replayed) events against the stored state."""
        routed = self.route(events)
        return self._recompute(routed, {}, time.time_ns() if now is None else now)

    def sweep(self, after: int, now: int | None = None) -> Update:
        """Recompute the open transactions with a deadline in (after, now] that their
        stored row was evaluated before: they turn overdue at the deadline."""
        now = time.time_ns() if now is None else now
        forced: dict[int, dict[str, TxRef]] = {}
        for ref, _ in self.index.due(after, now):
            if ref.workflow in self.at:
                forced.setdefault(self.at[ref.workflow], {})[ref.id] = ref
        return self._recompute({}, forced, now)

    def commit(self, update: Update) -> None:
        """The update is stored: the cache now holds what it wrote."""
        for gone in update.changes.retired:
            self.cache.drop(gone.id)
        for ref, hops in update.components:
            self.cache.put(ref, hops)

    # -- one recomputation ------------------------------------------------------------

    def _recompute(
        self,
        routed: dict[int, dict[str, Hop]],
        forced: dict[int, dict[str, TxRef]],
        now: int,
    ) -> Update:
        tx_values: dict[str, set[Node]] = {}
        hop_values: dict[str, set[Node]] = {}
        for wi, batch in routed.items():
            shape, name = self.shapes[wi], self.workflows[wi].name
            txs, waiting = tx_values.setdefault(name, set()), hop_values.setdefault(name, set())
            for event, step in batch.values():
                joins, waits = shape.wanted(event, step)
                txs.update(joins)
                waits_on = shape.lookup_values(event, step)
                waiting.update(waits, waits_on)
        found = self.index.find(tx_values, hop_values) if tx_values else Found([], [])
        refs: dict[str, TxRef] = {}
        for ref in found.transactions:
            if ref.workflow in self.at:
                refs[ref.id] = ref
        for wanted in forced.values():
            refs.update(wanted)
        components = self._load(refs.values(), found.hops)
        upserts: list[Transaction] = []
        retired: list[Retired] = []
        fan_in: list[FanInState] = []
        current: list[tuple[TxRef, tuple[Hop, ...]]] = []
        lookup_hops: list[LookupHop] = []
        new_keys: dict[str, tuple[tuple[str, str], ...]] = {}
        for wi in sorted({*routed, *forced, *components}):
            workflow = self.workflows[wi]
            stitcher = WorkflowStitcher(workflow)
            stored, pending = components.get(wi, ([], []))
            stitcher.load(pending)
            for _, hops, _ in stored:
                stitcher.load(hops)
            for ref, hops, _ in stored:
                stitcher.claim(hops, ref.id, ref.id_time)
            due = forced.get(wi, {})
            for ref, hops, _ in stored:
                if ref.id in due:
                    stitcher.touch(hops)
            new = routed.get(wi, {})
            for event, step in new.values():
                stitcher.add(event, step)
                for key, value in stitcher.lookup_values(event, step):
                    step_name = UNEXPECTED_NAME if step == UNEXPECTED else workflow.steps[step].name
                    lookup_hops.append(
                        LookupHop(workflow.name, key, value, event.event_id, step_name)
                    )
            changes = stitcher.flush(self.clocks, now)
            upserts.extend(changes.upserts)
            retired.extend(changes.retired)
            fan_in.extend(changes.fan_in)
            by_id: dict[str, Hop] = {hop[0].event_id: hop for hop in (*pending, *new.values())}
            for _, hops, _ in stored:
                by_id.update((hop[0].event_id, hop) for hop in hops)
            for tx in changes.upserts:
                held = tuple(by_id[i] for i in tx.event_ids if i in by_id)
                current.append((TxRef(tx.workflow, tx.id, tx.id_time), held))
            before = {ref.id: hops for ref, hops, _ in stored}
            for tx in changes.upserts:
                old = before.get(tx.id)
                if old is not None:
                    had = {(k, v) for hop in old for k, v in hop[0].keys.items() if v}
                    new_keys[tx.id] = tuple(kv for kv in tx.keys if kv not in had)
                else:
                    new_keys[tx.id] = tx.keys
            replaced = {tx.id for tx in changes.upserts} | {r.id for r in changes.retired}
            current.extend((ref, hops) for ref, hops, _ in stored if ref.id not in replaced)
        events = sum(len(h) for h in routed.values())
        return Update(
            Changes(tuple(upserts), tuple(retired), tuple(fan_in), now),
            tuple(lookup_hops),
            tuple(current),
            events,
            new_keys,
        )

    def _load(
        self, refs: Iterable[TxRef], hops: Sequence[LookupHop]
    ) -> dict[int, tuple[list[tuple[TxRef, tuple[Hop, ...], int]], list[Hop]]]:
        """The components (from the cache, else the store) and lookup hops, by workflow."""
        out: dict[int, tuple[list[tuple[TxRef, tuple[Hop, ...], int]], list[Hop]]] = {}
        missing: list[TxRef] = []
        for ref in refs:
            cached = self.cache.get(ref.id)
            if cached is None:
                missing.append(ref)
            else:
                out.setdefault(self.at[ref.workflow], ([], []))[0].append((ref, cached[1], 0))
        stored = self.index.load_transactions(missing) if missing else []
        self.loaded_from_store += len(stored)
        events: dict[str, Event] = {}
        need: set[str] = set()
        for tx in stored:
            if tx.events:
                events.update(tx.events)
            else:
                need.update(tx.event_ids)
        # A lookup hop may already be in hand as a hop of a cached component (of any
        # workflow: a charge is a core hop of one and a fan-in hop of another).
        held = {
            hop[0].event_id: hop[0] for comps, _ in out.values() for _, hs, _ in comps for hop in hs
        }
        need.update(h.event_id for h in hops if h.event_id not in held and h.event_id not in events)
        if need:
            events.update(self.index.load_events(need))
        for hop in hops:
            if hop.event_id not in events and hop.event_id in held:
                events[hop.event_id] = held[hop.event_id]
        renamed = self.renamed
        if renamed:
            events = {
                i: replace(e, facility=renamed[e.facility]) if e.facility in renamed else e
                for i, e in events.items()
            }
        for tx in stored:
            wi = self.at.get(tx.workflow)
            if wi is None:
                continue
            index = {s.name: i for i, s in enumerate(self.workflows[wi].steps)}
            loaded = tuple(
                Hop(events[i], index.get(step, UNEXPECTED))
                for i, step in zip(tx.event_ids, tx.event_steps, strict=True)
                if i in events
            )
            ref = TxRef(tx.workflow, tx.id, tx.id_time)
            out.setdefault(wi, ([], []))[0].append((ref, loaded, tx.evaluated_at))
        for hop in hops:
            wi = self.at.get(hop.workflow)
            event = events.get(hop.event_id)
            if wi is None or event is None:
                continue
            index = {s.name: i for i, s in enumerate(self.workflows[wi].steps)}
            out.setdefault(wi, ([], []))[1].append(Hop(event, index.get(hop.step, UNEXPECTED)))
        return out
