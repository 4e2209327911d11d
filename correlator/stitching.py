"""Key-chained stitching of one workflow's hops into transactions (pure, incremental).

The state is a union-find over chain-key values ``(key, value)``: a core hop
(a step without ``fan_in``) unites the values of its step's ``keys``, so
events sharing any of them — directly or through a chain — end up in one
component, which is one transaction. Fan-in hops (and ``unexpected`` hops)
never unite anything: they are indexed by their lookup values and belong to
every transaction whose core hops carry one of those values.

Everything kept is a set (hops by event id, unions, indexes), so the state
after any sequence of batches equals the state after one batch holding all of
their events; transactions are recomputed from that state by ``summarize``,
which sorts what it reads. Hence incremental == batch, whatever the order,
duplication or split of the input.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass

from correlator.deadlines import FacilityClock
from correlator.matching import UNEXPECTED
from correlator.transaction import Hop, Plan, Transaction, summarize
from stitchboard.config.workflows import Workflow
from stitchboard.events import Event

Node = tuple[str, str]


@dataclass(frozen=True, slots=True)
class FanInState:
    """A fan-in event (a GL journal for a charge batch) and whether any transaction
    carries one of the values it looks up. Unmatched, it is a reconciliation
    exception of its own: listed, aged and alertable until a carrier arrives."""

    workflow: str
    step: str
    event: Event
    lookup: tuple[Node, ...]  # the (key, value) pairs it joins transactions by
    matched: bool


@dataclass(frozen=True, slots=True)
class Changes:
    """What one feed changed: transactions to (re)write and ids that no longer exist,
    and the fan-in events whose matched state may have changed."""

    upserts: tuple[Transaction, ...]
    retired: tuple[Retired, ...]
    fan_in: tuple[FanInState, ...] = ()
    now: int = 0  # the instant the upserts were evaluated at (0: unknown)


@dataclass(frozen=True, slots=True, order=True)
class Retired:
    """A transaction id that no longer exists (merged away or re-identified)."""

    workflow: str
    id: str
    id_time: int


class WorkflowStitcher:
    def __init__(self, workflow: Workflow):
        self.workflow = workflow
        self.plan = Plan(workflow)
        steps = workflow.steps
        lookup_keys = {k for s in steps for k in s.fan_in}
        self._chain = [tuple(s.keys) if not s.fan_in else () for s in steps]
        # The values fan-in hops look transactions up by: a core hop's keys and carries,
        # restricted to the keys some fan-in step actually looks up.
        self._carried = [
            tuple(k for k in dict.fromkeys((*s.keys, *s.carries)) if k in lookup_keys)
            if not s.fan_in
            else ()
            for s in steps
        ]
        self._lookup = [tuple(s.fan_in) for s in steps]
        self._unexpected_keys = tuple(sorted(workflow.chain_keys))
        self._parent: dict[Node, Node] = {}
        self._size: dict[Node, int] = {}
        self._members: dict[Node, list[Hop]] = {}  # root -> core hops
        self._seen: set[str] = set()  # event ids of every accepted hop
        self._carriers: dict[Node, set[Node]] = {}  # carried value -> chain nodes carrying it
        self._fanin: dict[Node, list[Hop]] = {}  # lookup value -> fan-in hops
        self._unexpected: dict[Node, list[Hop]] = {}  # chain value -> unexpected hops
        self._emitted: dict[Node, tuple[str, int]] = {}  # root -> (id, id_time) last written
        self._dirty: set[Node] = set()
        # (instant, root): when an open transaction's status or level changes by
        # itself (a warn or breach deadline passes); ``sweep`` recomputes it then.
        self._deadlines: list[tuple[int, Node]] = []
        self._retired: set[tuple[str, int]] = set()
        self._last_flush: tuple[set[Node], set[tuple[str, int]], set[str]] = (
            set(),
            set(),
            set(),
        )
        # Fan-in hops by event id with their lookup values; the ones whose matched state
        # may have changed since the last flush; the unmatched ones with their time.
        self._fanin_hops: dict[str, tuple[Hop, tuple[Node, ...]]] = {}
        self._fanin_changed: set[str] = set()
        self.unmatched: dict[str, int] = {}  # event id -> event time
        self.unstitchable = 0  # hops of a step that carried none of its keys

    # -- union-find ------------------------------------------------------------------

    def _find(self, node: Node) -> Node:
        parent = self._parent
        root = node
        while parent[root] != root:
            root = parent[root]
        while parent[node] != root:  # path compression
            parent[node], node = root, parent[node]
        return root

    def _add_node(self, node: Node) -> Node:
        if node not in self._parent:
            self._parent[node] = node
            self._size[node] = 1
            return node
        return self._find(node)

    def _union(self, a: Node, b: Node) -> Node:
        if a == b:
            return a
        if self._size[a] < self._size[b]:
            a, b = b, a
        self._parent[b] = a
        self._size[a] += self._size.pop(b)  # sizes matter for roots only
        absorbed = self._members.pop(b, None)
        if absorbed:
            self._members.setdefault(a, []).extend(absorbed)
        old = self._emitted.pop(b, None)
        if old is not None:
            self._retired.add(old)
        return a

    # -- feeding -----------------------------------------------------------------------

    def add(self, event: Event, step: int) -> None:
        event_id = event.event_id
        if event_id in self._seen:
            return  # a replay or duplicate send: same id, same hop
        keys = event.keys
        hop = Hop(event, step)
        if step == UNEXPECTED:
            # Unexpected hops join the transaction that holds one of their chain values.
            nodes = [(k, v) for k in self._unexpected_keys if (v := keys.get(k))]
            if not nodes:
                self.unstitchable += 1
                return
            self._seen.add(event_id)
            for node in nodes:
                self._unexpected.setdefault(node, []).append(hop)
                if node in self._parent:
                    self._dirty.add(node)
            return
        lookup = self._lookup[step]
        if lookup:
            values = [(k, v) for k in lookup if (v := keys.get(k))]
            if not values:
                self.unstitchable += 1
                return
            self._seen.add(event_id)
            for value in values:
                self._fanin.setdefault(value, []).append(hop)
                carriers = self._carriers.get(value)
                if carriers:
                    self._dirty.update(carriers)
            self._fanin_hops[event_id] = (hop, tuple(values))
            self._fanin_changed.add(event_id)
            return
        nodes = [(k, v) for k in self._chain[step] if (v := keys.get(k))]
        if not nodes:
            self.unstitchable += 1
            return
        self._seen.add(event_id)
        anchor = nodes[0]
        root = self._add_node(anchor)
        for node in nodes[1:]:
            other = self._add_node(node)
            if other != root:
                root = self._union(root, other)
        members = self._members.get(root)
        if members is None:
            self._members[root] = [hop]
        else:
            members.append(hop)
        for k in self._carried[step]:
            carried = keys.get(k)
            if carried:
                value = (k, carried)
                holders = self._carriers.get(value)
                if holders is None:
                    self._carriers[value] = {anchor}
                    # The first carrier of this value: fan-in events waiting for it match.
                    for waiting in self._fanin.get(value, ()):
                        self._fanin_changed.add(waiting[0].event_id)
                else:
                    holders.add(anchor)
        self._dirty.add(anchor)

    def flush(self, clocks: dict[str, FacilityClock], now: int) -> Changes:
        """Recompute every transaction touched since the last flush."""
        roots = {self._find(node) for node in self._dirty}
        self._dirty.clear()
        fan_in = self._fan_in_states()
        self._last_flush = (roots, set(self._retired), {f.event.event_id for f in fan_in})
        upserts = []
        for root in roots:
            tx = self.transaction(root, clocks, now)
            previous = self._emitted.get(root)
            if previous is not None and previous[0] != tx.id:
                self._retired.add(previous)
            self._emitted[root] = (tx.id, tx.id_time)
            upserts.append(tx)
            for deadline in (tx.warn_deadline, tx.breach_deadline):
                if deadline > now:
                    heapq.heappush(self._deadlines, (deadline, root))
        live = {tx.id for tx in upserts}
        name = self.workflow.name
        retired = tuple(sorted(Retired(name, i, t) for i, t in self._retired if i not in live))
        self._retired.clear()
        return Changes(tuple(upserts), retired, fan_in, now)

    def _fan_in_states(self) -> tuple[FanInState, ...]:
        changed, self._fanin_changed = self._fanin_changed, set()
        states = []
        carriers, names, name = self._carriers, self.plan.names, self.workflow.name
        for event_id in sorted(changed):
            hop, values = self._fanin_hops[event_id]
            matched = any(value in carriers for value in values)
            if matched:
                self.unmatched.pop(event_id, None)
            else:
                self.unmatched[event_id] = hop[0].event_time
            states.append(FanInState(name, names[hop[1]], hop[0], values, matched))
        return tuple(states)

    def touch_all(self) -> None:
        self._dirty.update(self._members)
        self._fanin_changed.update(self._fanin_hops)

    def redo(self) -> None:
        """The last flush's changes were not stored: include them in the next flush."""
        roots, retired, fan_in = self._last_flush
        self._dirty.update(roots)
        self._retired.update(retired)
        self._fanin_changed.update(fan_in)

    def sweep(self, clocks: dict[str, FacilityClock], now: int) -> Changes:
        """Recompute the transactions whose deadline has passed (they become overdue)."""
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            self._dirty.add(heapq.heappop(heap)[1])
        return self.flush(clocks, now)

    def next_deadline(self) -> int:
        return self._deadlines[0][0] if self._deadlines else 0

    # -- the live path: a stitcher holding only the components a batch touches ----------

    def wanted(self, event: Event, step: int) -> tuple[list[Node], list[Node]]:
        """What a new hop needs loaded before it is added: the values whose transactions
        it may join or attach to, and the values lookup hops (fan-in, unexpected) may
        wait on."""
        keys = event.keys
        if step == UNEXPECTED:
            nodes = [(k, v) for k in self._unexpected_keys if (v := keys.get(k))]
            return nodes, nodes
        lookup = self._lookup[step]
        if lookup:
            values = [(k, v) for k in lookup if (v := keys.get(k))]
            return values, values
        nodes = [(k, v) for k in self._chain[step] if (v := keys.get(k))]
        carried = [(k, v) for k in self._carried[step] if (v := keys.get(k))]
        return nodes, nodes + carried

    def lookup_values(self, event: Event, step: int) -> list[Node]:
        """The values a fan-in or unexpected hop joins transactions by ([] for a core hop)."""
        keys = event.keys
        if step == UNEXPECTED:
            return [(k, v) for k in self._unexpected_keys if (v := keys.get(k))]
        return [(k, v) for k in self._lookup[step] if (v := keys.get(k))]

    def load(self, hops: Iterable[Hop]) -> None:
        """Hops already stored: they are state, not news (nothing becomes dirty)."""
        for event, step in hops:
            self.add(event, step)
        self._dirty.clear()
        self._fanin_changed.clear()

    def claim(self, hops: Iterable[Hop], tx_id: str, id_time: int) -> None:
        """The loaded core hops form the stored transaction ``tx_id``. Two stored
        transactions that turn out to be one (a write cut short before the retirement)
        are mended: the later claim is retired and the survivor recomputed."""
        for event, step in hops:
            nodes = [(k, v) for k in self._chain[step] if (v := event.keys.get(k))]
            if step != UNEXPECTED and nodes and event.event_id in self._seen:
                root = self._find(nodes[0])
                break
        else:
            return
        previous = self._emitted.get(root)
        if previous is None:
            self._emitted[root] = (tx_id, id_time)
        elif previous != (tx_id, id_time):
            self._retired.add((tx_id, id_time))
            self._dirty.add(root)

    def touch(self, hops: Iterable[Hop]) -> None:
        """Recompute the component of these (loaded) core hops on the next flush."""
        for event, step in hops:
            nodes = [(k, v) for k in self._chain[step] if (v := event.keys.get(k))]
            if step != UNEXPECTED and nodes and nodes[0] in self._parent:
                self._dirty.add(nodes[0])
                return

    def lookup_rows(self) -> Iterable[tuple[str, str, str, str]]:
        """(key, value, event id, step name) of every fan-in and unexpected hop held."""
        names = self.plan.names
        for event_id, (hop, values) in self._fanin_hops.items():
            for key, value in values:
                yield key, value, event_id, names[hop[1]]
        for (key, value), hops in self._unexpected.items():
            for hop in hops:
                yield key, value, hop[0].event_id, "unexpected"

    def transaction(self, root: Node, clocks: dict[str, FacilityClock], now: int) -> Transaction:
        core = self._members[root]
        attached: dict[str, Hop] = {}
        if self._fanin:
            # Fan-in hops belong to every transaction carrying one of their values.
            carried, fanin = self._carried, self._fanin
            for hop in core:
                names = carried[hop[1]]
                if names:
                    keys = hop[0].keys
                    for k in names:
                        value = keys.get(k)
                        if value:
                            for other in fanin.get((k, value), ()):
                                attached[other[0].event_id] = other
        if self._unexpected:
            chain, unexpected = self._chain, self._unexpected
            for hop in core:
                keys = hop[0].keys
                for k in chain[hop[1]]:
                    value = keys.get(k)
                    if value:
                        for other in unexpected.get((k, value), ()):
                            attached[other[0].event_id] = other
        return summarize(self.plan, core, attached.values(), clocks, now)

    def roots(self) -> Iterable[Node]:
        return list(self._members)

    def __len__(self) -> int:
        return len(self._members)
