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
   neighbours, gives that label also to the value its label names (hooking), then
   the label of its label (pointer jumping), until no label drops. Labels only
   decrease, so the sum of labels falling is the change test.
4. ``members``: per component (transaction) its core hops, plus the attached
   ones: unexpected hops sharing a chain value, and fan-in hops looking up a value
   a core hop of the component carries (fan-in attaches to every such
   transaction and never merges two).
5. ``ids``: per component the deterministic transaction id
   (``transaction.transaction_id``) from its earliest core hop (by time, then id).

Everything is set-based SQL: memory is the engine's, never one Python object per
event, and bounded (``spill_settings``): every statement runs with settings that
make the engine spill to disk rather than hold a large intermediate whole.
Aggregations (the edges, each round's least labels, the ids) and sorts spill
beyond ``SPILL_BYTES``; inserted blocks are ``BLOCK_ROWS`` rows; a workflow with
more than ``VALUES_PER_BUCKET`` chain values joins by ClickHouse's grace hash
join, in buckets of about that many values, instead of one hash table of every
value per join. At 6 M events this took the pass's peak from 4.4 to 1.5 GiB
(BENCHMARKS.md); a workflow of fewer values keeps the in-memory hash join.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from correlator.batch.routing import (
    NOT_ROUTED,
    KeyPlan,
    literal,
    step_sql,
    values_sql,
)
from correlator.matching import UNEXPECTED
from stitchboard.config.workflows import Workflow
from stitchboard.disks import GIB, DiskSpace
from stitchboard.store import Store

# A guard only: labels fall every round until the fixed point, which hooking and pointer
# jumping reach in about log2(longest chain) rounds, not one round per link.
MAX_ROUNDS = 10_000

# Work tables are plain MergeTree: they spill to disk, never held whole in memory.
_ENGINE = "ENGINE = MergeTree ORDER BY tuple()"

# The memory bounds of the pass's statements (see the module docstring).
SPILL_BYTES = 256 * 1024 * 1024  # an aggregation or sort beyond this spills to disk
BLOCK_ROWS = 100_000  # rows per inserted block (a million, the default, with the
# events' key maps, took 1.6 GiB to fill the hops table at 6 M events; this 0.5)
VALUES_PER_BUCKET = 4_000_000  # chain values per join bucket (hashed)
# Free disk a pass may use, per stored event: it used up to 10.8 GB over 20 M events
# and 11-12 GB over 18 M (work tables, spilled join buckets, transactions written;
# BENCHMARKS.md), 540-670 bytes an event.
DISK_PER_EVENT = 700


def spill_settings(values: int = 0) -> dict[str, Any]:
    """The settings of a pass statement for a workflow with ``values`` chain values."""
    settings: dict[str, Any] = {
        "max_bytes_before_external_group_by": SPILL_BYTES,
        "max_bytes_before_external_sort": SPILL_BYTES,
        "max_insert_block_size": BLOCK_ROWS,
        "min_insert_block_size_rows": BLOCK_ROWS,
    }
    buckets = -(-values // VALUES_PER_BUCKET)
    if buckets > 1:
        settings["join_algorithm"] = "grace_hash"
        # A power of two: the grace hash join doubles its buckets when it grows them.
        settings["grace_hash_join_initial_buckets"] = 1 << (buckets - 1).bit_length()
    return settings


def disk_shortfall(disks: list[DiskSpace], events: int) -> str | None:
    """Why the store's disk may be too small for a pass over ``events`` (None: it is
    not). The engine spills to where it keeps its data: the ``default`` disk."""
    need = events * DISK_PER_EVENT
    default = [d for d in disks if d.name == "store:default"] or disks
    short = [d for d in default if d.free_bytes < need]
    if not short:
        return None
    free = ", ".join(f"{d.name} ({d.path}) has {d.free_bytes / GIB:,.1f} GiB free" for d in short)
    return (
        f"the batch pass over {events:,} events may need up to {need / GIB:,.1f} GiB of"
        f" free disk ({DISK_PER_EVENT} bytes an event) and {free}; a pass that runs out"
        " fails with the engine's error and is retried"
    )


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
        self.settings = spill_settings()  # of the workflow being grouped

    def command(self, sql: str) -> None:
        """Run one of the pass's statements, within its memory bounds."""
        self.store.command(sql, settings=self.settings)

    def __call__(self, name: str) -> str:
        return self.store.table(f"_batch_{self.run}_{name}")

    def drop(self, *names: str) -> None:
        for name in names:
            self.store.command(f"DROP TABLE IF EXISTS {self(name)}")


WORK = ("hops", "edges", "labels", "least", "next", "jumped", "members", "carriers", "ids")


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
    t.settings = spill_settings()
    plan = KeyPlan(workflow)
    core, fan_in = _ints(plan.core), _ints(plan.fan_in)
    run = t.command
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
        " SELECT p.1 AS a, p.2 AS b FROM ("
        " SELECT arrayJoin([(first, node), (node, first)]) AS p FROM ("
        f" SELECT {_node('stitch[1]')} AS first, arrayJoin(arrayMap(x -> {_node('x')}, stitch))"
        f" AS node FROM {t('hops')} WHERE step IN {core})) GROUP BY a, b"
    )
    # 3. min-label propagation with pointer jumping, to a fixed point.
    run(
        f"CREATE TABLE {t('labels')} {_ENGINE} AS"
        f" SELECT a AS n, a AS l FROM {t('edges')} GROUP BY a"
    )
    values = int(store.scalar(f"SELECT count() FROM {t('labels')}") or 0)
    t.settings = spill_settings(values)
    total = _label_sum(store, t("labels"))
    rounds = 0
    while True:
        rounds += 1
        if rounds > MAX_ROUNDS:
            raise RuntimeError(f"workflow {workflow.name}: labels still falling after {MAX_ROUNDS}")
        # Each value takes the least label among its neighbours (``least``: the edges
        # hold self-loops, so a value is its own neighbour), and so does the value its
        # label names (hooking: a root adopts a smaller label seen anywhere below it).
        # Two statements of one join each: the least neighbour label per value, then
        # that offered to the value's own label too.
        run(
            f"CREATE TABLE {t('least')} {_ENGINE} AS SELECT e.a AS n, min(l.l) AS m"
            f" FROM {t('edges')} AS e INNER JOIN {t('labels')} AS l ON e.b = l.n GROUP BY n"
        )
        run(
            f"CREATE TABLE {t('next')} {_ENGINE} AS SELECT n, min(m) AS l FROM ("
            f" SELECT n, m FROM {t('least')} UNION ALL SELECT l.l AS n, x.m AS m"
            f" FROM {t('least')} AS x INNER JOIN {t('labels')} AS l ON x.n = l.n"
            ") GROUP BY n"
        )
        run(
            f"CREATE TABLE {t('jumped')} {_ENGINE} AS"
            f" SELECT x.n AS n, least(x.l, j.l) AS l FROM {t('next')} AS x"
            f" INNER JOIN {t('next')} AS j ON x.l = j.n"
        )
        t.drop("labels", "least", "next")
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
        " SELECT arrayJoin(carried) AS value, comp"
        f" FROM {t('members')} WHERE attached = 0 AND notEmpty(carried) GROUP BY value, comp"
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


def pages(store: Store, t: WorkTables, chunk: int) -> list[str]:
    """Conditions on ``comp``: ranges of about ``chunk`` transactions each."""
    uppers = [
        int(row[0])
        for row in store.rows(
            f"SELECT max(comp) FROM (SELECT comp, intDiv(row_number() OVER (ORDER BY comp) - 1,"
            f" {int(chunk)}) AS page FROM {t('ids')}) GROUP BY page ORDER BY 1"
        )
    ]
    # 128-bit labels: as strings, a literal that large would be read as a float.
    bounds = [f"toUInt128('{u}')" for u in uppers]
    lowers = [f"comp > {b} AND " for b in bounds]
    return [f"{lower}comp <= {upper}" for lower, upper in zip(["", *lowers], bounds, strict=False)]


def _node(value: str) -> str:
    """A chain value's node: 128 bits of SipHash (two distinct values of one workflow share
    a node with a probability near n^2 / 2^129: nil at any real volume)."""
    return f"reinterpretAsUInt128(sipHash128({value}))"


def _label_sum(store: Store, table: str) -> int:
    # In 256 bits: a sum of 128-bit labels must not wrap (fewer than 2^128 of them).
    return int(store.scalar(f"SELECT sum(toUInt256(l)) FROM {table}") or 0)


def grouping(store: Store, t: WorkTables) -> dict[str, frozenset[str]]:
    """Transaction id -> its event ids (core and attached), as grouped (for tests)."""
    rows = store.rows(
        f"SELECT i.id, groupArray(m.event_id) FROM {t('members')} AS m"
        f" INNER JOIN {t('ids')} AS i ON m.comp = i.comp GROUP BY i.id"
    )
    return {tx_id: frozenset(ids) for tx_id, ids in rows}
