"""The batch pass's SQL half: one workflow's events grouped into transactions in ClickHouse.

For one workflow, in work tables the pass creates and drops itself:

1. ``hops``: every stored event the workflow routes (``routing.step_sql``), one
   copy per event id (the newest, as ``FINAL`` reads it), with the values it is
   stitched by; a hop with none of them is not stitchable and left out (the
   Python stitcher counts and drops it the same way).
2. ``edges``: each core hop links its first chain-key value (``key\\x1fvalue``)
   to each of its values (both ways, self-loops included); a value is a node,
   named by a 128-bit hash of it.
3. ``labels``: connected components by min-label propagation: each value starts
   labelled with its own node; a round gives every value the least label of its
   neighbours, then the label of its label (pointer jumping), until no label
   drops. Labels only decrease, so the sum of labels falling is the change test.
4. ``members``: per component (transaction) its core hops, plus the attached
   ones: unexpected hops sharing a chain value, and fan-in hops looking up a value
   a core hop of the component carries (fan-in attaches to every such
   transaction and never merges two).
5. ``ids``: per component the deterministic transaction id
   (``transaction.transaction_id``) from its earliest core hop (by time, then id).

Everything is set-based SQL: memory is the engine's (joins hold the smaller side,
the values), never one Python object per event.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from correlator.batch.routing import (
    NOT_ROUTED,
    KeyPlan,
    literal,
    step_sql,
    values_sql,
)
from correlator.matching import UNEXPECTED
from stitchboard.config.workflows import Workflow
from stitchboard.store import Store

MAX_ROUNDS = 64  # a chain of values halves its depth per round: 2^64 is out of reach

# Work tables are plain MergeTree: they spill to disk, never held whole in memory.
_ENGINE = "ENGINE = MergeTree ORDER BY tuple()"


# The hop columns summaries read (with ``comp`` and ``attached``): see ``members``.
HOP_COLUMNS = (
    "event_id",
    "step",
    "event_time",
    "sent_time",
    "facility",
    "system",
    "operation",
    "status",
    "amount",
    "keys",
)


def _ints(values: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(v) for v in values) + ")" if values else "(-100)"


@dataclass(frozen=True, slots=True)
class ComponentStats:
    """What the SQL half found for one workflow."""

    workflow: str
    hops: int  # stitchable hops routed to the workflow
    values: int  # distinct chain-key values
    rounds: int  # propagation rounds to the fixed point
    transactions: int


class WorkTables:
    """The names of one run's work tables (unique per run, dropped at the end)."""

    def __init__(self, store: Store, run: str | None = None):
        self.store = store
        self.run = run or uuid.uuid4().hex[:12]

    def __call__(self, name: str) -> str:
        return self.store.table(f"_batch_{self.run}_{name}")

    def drop(self, *names: str) -> None:
        for name in names:
            self.store.command(f"DROP TABLE IF EXISTS {self(name)}")


WORK = ("hops", "edges", "labels", "next", "jumped", "members", "carriers", "ids")


@contextmanager
def work_tables(store: Store, run: str | None = None) -> Iterator[WorkTables]:
    tables = WorkTables(store, run)
    try:
        yield tables
    finally:
        tables.drop(*WORK)


def group_workflow(store: Store, workflow: Workflow, t: WorkTables) -> ComponentStats:
    """Fill ``members`` and ``ids`` for one workflow (replacing a previous workflow's)."""
    t.drop(*WORK)
    plan = KeyPlan(workflow)
    core, fan_in = _ints(plan.core), _ints(plan.fan_in)
    run = store.command
    # 1. routed, deduplicated, stitchable hops.
    stitch = values_sql(plan.stitch_keys_sql())
    carried = values_sql(plan.carried_sql())
    run(
        f"CREATE TABLE {t('hops')} ENGINE = MergeTree ORDER BY event_id AS"
        f" SELECT event_id, step, event_time, sent_time, facility, system, operation, status,"
        f" amount, keys, {stitch} AS stitch, {carried} AS carried FROM ("
        " SELECT event_id, toUnixTimestamp64Nano(event_time) AS event_time,"
        " toUnixTimestamp64Nano(sent_time) AS sent_time, facility, system, operation,"
        f" status, amount, keys, {step_sql(workflow)} AS step"
        # FINAL: one copy per event id, the newest, merged as it is read (no global sort).
        f" FROM {store.table('events')} FINAL WHERE step != {NOT_ROUTED}"
        ") WHERE notEmpty(stitch)"
    )
    hops = int(store.scalar(f"SELECT count() FROM {t('hops')}") or 0)
    # 2. edges from each core hop's first chain value to each of its values (both ways;
    # self-loops included, so every value is a node).
    run(
        f"CREATE TABLE {t('edges')} {_ENGINE} AS"
        " SELECT DISTINCT p.1 AS a, p.2 AS b FROM ("
        " SELECT arrayJoin([(first, node), (node, first)]) AS p FROM ("
        f" SELECT {_node('stitch[1]')} AS first, arrayJoin(arrayMap(x -> {_node('x')}, stitch))"
        f" AS node FROM {t('hops')} WHERE step IN {core}))"
    )
    # 3. min-label propagation with pointer jumping, to a fixed point.
    run(f"CREATE TABLE {t('labels')} {_ENGINE} AS SELECT DISTINCT a AS n, a AS l FROM {t('edges')}")
    values = int(store.scalar(f"SELECT count() FROM {t('labels')}") or 0)
    total = _label_sum(store, t("labels"))
    rounds = 0
    while True:
        rounds += 1
        if rounds > MAX_ROUNDS:
            raise RuntimeError(f"workflow {workflow.name}: labels still falling after {MAX_ROUNDS}")
        run(
            f"CREATE TABLE {t('next')} {_ENGINE} AS"
            f" SELECT e.a AS n, min(l.l) AS l FROM {t('edges')} AS e"
            f" INNER JOIN {t('labels')} AS l ON e.b = l.n GROUP BY e.a"
        )
        run(
            f"CREATE TABLE {t('jumped')} {_ENGINE} AS"
            f" SELECT x.n AS n, least(x.l, j.l) AS l FROM {t('next')} AS x"
            f" INNER JOIN {t('next')} AS j ON x.l = j.n"
        )
        t.drop("labels", "next")
        run(f"RENAME TABLE {t('jumped')} TO {t('labels')}")
        now_total = _label_sum(store, t("labels"))
        if now_total == total:
            break
        total = now_total
    # 4. members: core hops by the label of their first value, then attached hops.
    hop_columns = ", ".join(f"h.{c}" for c in HOP_COLUMNS)
    run(
        f"CREATE TABLE {t('members')} ENGINE = MergeTree ORDER BY (comp, event_id) AS"
        f" SELECT l.l AS comp, toUInt8(0) AS attached, {hop_columns}, h.carried AS carried"
        f" FROM (SELECT *, {_node('stitch[1]')} AS first FROM {t('hops')} WHERE step IN {core})"
        f" AS h INNER JOIN {t('labels')} AS l ON h.first = l.n"
    )
    if workflow.unexpected:
        run(
            f"INSERT INTO {t('members')} SELECT DISTINCT l.l AS comp, toUInt8(1) AS attached,"
            f" {hop_columns}, CAST([] AS Array(String)) AS carried FROM ("
            f" SELECT *, arrayJoin(arrayMap(x -> {_node('x')}, stitch)) AS node FROM {t('hops')}"
            f" WHERE step = {UNEXPECTED}) AS h INNER JOIN {t('labels')} AS l ON h.node = l.n"
        )
    run(
        f"CREATE TABLE {t('carriers')} ENGINE = MergeTree ORDER BY value AS"
        " SELECT DISTINCT arrayJoin(carried) AS value, comp"
        f" FROM {t('members')} WHERE attached = 0 AND notEmpty(carried)"
    )
    if plan.fan_in:
        run(
            f"INSERT INTO {t('members')} SELECT DISTINCT c.comp AS comp, toUInt8(1) AS attached,"
            f" {hop_columns}, CAST([] AS Array(String)) AS carried FROM ("
            f" SELECT *, arrayJoin(stitch) AS value FROM {t('hops')} WHERE step IN {fan_in}"
            f") AS h INNER JOIN {t('carriers')} AS c ON h.value = c.value"
        )
    # 5. the transaction id of each component (transaction.transaction_id, in SQL).
    run(
        f"CREATE TABLE {t('ids')} ENGINE = MergeTree ORDER BY comp AS"
        " SELECT comp, first_time AS id_time, concat("
        "leftPad(lower(hex(toUInt64(first_time))), 16, '0'),"
        f" substring(lower(hex(MD5(concat('tx\\x1f', {literal(workflow.name)},"
        " '\\x1f', first_id)))), 1, 16)) AS id FROM ("
        " SELECT comp, min(event_time) AS first_time,"
        " argMin(event_id, (event_time, event_id)) AS first_id"
        f" FROM {t('members')} WHERE attached = 0 GROUP BY comp)"
    )
    transactions = int(store.scalar(f"SELECT count() FROM {t('ids')}") or 0)
    return ComponentStats(workflow.name, hops, values, rounds, transactions)


def _node(value: str) -> str:
    """A chain value's node: 128 bits of SipHash (two distinct values of one workflow share
    a node with a probability near n^2 / 2^129: nil at any real volume)."""
    return f"reinterpretAsUInt128(sipHash128({value}))"


def _label_sum(store: Store, table: str) -> int:
    return int(store.scalar(f"SELECT sum(l) FROM {table}") or 0)


def grouping(store: Store, t: WorkTables) -> dict[str, frozenset[str]]:
    """Transaction id -> its event ids (core and attached), as grouped (for tests)."""
    rows = store.rows(
        f"SELECT i.id, groupArray(m.event_id) FROM {t('members')} AS m"
        f" INNER JOIN {t('ids')} AS i ON m.comp = i.comp GROUP BY i.id"
    )
    return {tx_id: frozenset(ids) for tx_id, ids in rows}
