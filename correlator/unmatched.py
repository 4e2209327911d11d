"""Fan-in events no transaction carries (the I/O edge): stored, listed, aged.

A GL journal whose charge batch no transaction carries is a reconciliation
exception in its own right (DOMAIN.md). The correlator writes every change of a
fan-in event's matched state to ``unmatched_events`` (the newest ``version``
wins); the listing reads the ones still unmatched with their age, by workflow,
key value or minimum age ("unmatched for longer than N", what an alert asks).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from correlator.queries import iso
from correlator.stitching import FanInState
from stitchboard.store import Store
from stitchboard.store.ddl import SchemaContext, Table

UNMATCHED_EVENTS = Table(
    name="unmatched_events",
    columns="""\
    workflow LowCardinality(String),
    step LowCardinality(String),
    event_id String,
    event_time DateTime64(9, 'UTC'),
    facility LowCardinality(String),
    system LowCardinality(String),
    operation LowCardinality(String),
    lookup_keys Array(LowCardinality(String)),
    lookup_values Array(String),
    keys Map(LowCardinality(String), String),
    matched UInt8,
    version UInt64,
    INDEX idx_key_values mapValues(keys) TYPE bloom_filter(0.01) GRANULARITY 1""",
    engine="ReplacingMergeTree(version)",
    tail="ORDER BY (workflow, event_id)",
    shard_key="cityHash64(event_id)",
)

COLUMNS = (
    "workflow",
    "step",
    "event_id",
    "event_time",
    "facility",
    "system",
    "operation",
    "lookup_keys",
    "lookup_values",
    "keys",
    "matched",
    "version",
)


def create(ctx: SchemaContext) -> list[str]:
    return ctx.create(UNMATCHED_EVENTS)


def state_row(state: FanInState, version: int) -> tuple[object, ...]:
    event = state.event
    return (
        state.workflow,
        state.step,
        event.event_id,
        event.event_time,
        event.facility,
        event.system,
        event.operation,
        [k for k, _ in state.lookup],
        [v for _, v in state.lookup],
        dict(event.keys),
        1 if state.matched else 0,
        version,
    )


def write_states(store: Store, states: Sequence[FanInState], version: int) -> None:
    if states:
        store.insert(UNMATCHED_EVENTS.name, COLUMNS, [state_row(s, version) for s in states])


def retire_older_than(store: Store, version: int, new_version: int) -> int:
    """After a full pass rewrote every fan-in event: the unmatched rows it did not write
    (their workflow or step is gone) stop being listed."""
    table = store.table(UNMATCHED_EVENTS.name)
    stale = store.rows(
        f"SELECT workflow, event_id FROM {table} FINAL"
        " WHERE matched = 0 AND version < {v:UInt64}",
        {"v": version},
    )
    if stale:
        store.command(
            f"INSERT INTO {table} (workflow, step, event_id, event_time, matched, version)"
            f" SELECT workflow, step, event_id, event_time, 1, {{n:UInt64}} FROM {table} FINAL"
            " WHERE matched = 0 AND version < {v:UInt64}",
            parameters={"v": version, "n": new_version},
        )
    return len(stale)


@dataclass(frozen=True)
class UnmatchedFilter:
    workflow: str | None = None
    key_values: tuple[str, ...] = ()
    older_than_ns: int = 0  # only events unmatched for at least this long
    limit: int = 100


def list_unmatched(store: Store, where: UnmatchedFilter, now: int) -> list[dict[str, Any]]:
    """Fan-in events no transaction carries, oldest first, with their age at ``now``."""
    table = store.table(UNMATCHED_EVENTS.name)
    clauses = ["matched = 0"]
    params: dict[str, Any] = {"now": now, "limit": where.limit}
    if where.workflow:
        clauses.append("workflow = {workflow:String}")
        params["workflow"] = where.workflow
    if where.key_values:
        clauses.append("hasAny(mapValues(keys), {values:Array(String)})")
        params["values"] = list(where.key_values)
    if where.older_than_ns:
        clauses.append("event_time <= fromUnixTimestamp64Nano({now:Int64} - {older:Int64}, 'UTC')")
        params["older"] = where.older_than_ns
    rows = store.dicts(
        "SELECT workflow, step, event_id, toUnixTimestamp64Nano(event_time) AS time_ns,"
        " facility, system, operation, lookup_keys, lookup_values, keys"
        f" FROM {table} FINAL WHERE {' AND '.join(clauses)}"
        " ORDER BY event_time, event_id LIMIT {limit:UInt32}",
        params,
    )
    return [
        {
            "workflow": r["workflow"],
            "step": r["step"],
            "event_id": r["event_id"],
            "time": iso(r["time_ns"]),
            "age_seconds": max(now - r["time_ns"], 0) / 1e9,
            "facility": r["facility"],
            "system": r["system"],
            "operation": r["operation"],
            "waiting_for": dict(zip(r["lookup_keys"], r["lookup_values"], strict=True)),
            "keys": dict(r["keys"]),
        }
        for r in rows
    ]


@dataclass(frozen=True)
class UnmatchedGroup:
    """The fan-in events of one workflow step at one facility that no transaction carries."""

    workflow: str
    step: str
    facility: str
    waiting: int  # unmatched now, whatever their age
    aged: int  # of them, unmatched for at least ``older_than_ns``
    oldest_ns: int  # the oldest one's event time
    examples: tuple[str, ...]  # up to five event ids, oldest first
    waiting_for: tuple[str, ...]  # the key value each example waits for (a batch id)


def unmatched_groups(store: Store, now: int, older_than_ns: int = 0) -> list[UnmatchedGroup]:
    """Unmatched fan-in events per workflow x step x facility at ``now`` (counted in
    ClickHouse), for alerts on "waiting longer than N" and "more than M waiting"."""
    table = store.table(UNMATCHED_EVENTS.name)
    rows = store.rows(
        "SELECT workflow, step, facility, count() AS waiting,"
        " countIf(event_time <= fromUnixTimestamp64Nano({now:Int64} - {older:Int64}, 'UTC'))"
        " AS aged, toUnixTimestamp64Nano(min(event_time)) AS oldest,"
        " groupArraySorted(5)((event_time, event_id, lookup_values[1])) AS oldest_five"
        f" FROM {table} FINAL WHERE matched = 0"
        " GROUP BY workflow, step, facility ORDER BY workflow, step, facility"
        " SETTINGS do_not_merge_across_partitions_select_final = 1",
        {"now": now, "older": older_than_ns},
    )
    return [
        UnmatchedGroup(
            str(w),
            str(s),
            str(f),
            int(n),
            int(a),
            int(o),
            tuple(str(e[1]) for e in five),
            tuple(str(e[2]) for e in five),
        )
        for w, s, f, n, a, o, five in rows
    ]
