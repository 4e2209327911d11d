"""The workflow page's reads: funnel, step latency, aging, flags, slowest, most overdue."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from dashboards import open_transactions
from dashboards.queries.common import (
    _FINAL,
    _OPEN_OVERDUE,
    _OPEN_STATUS,
    _STATUS_NOW,
    AGING_BUCKETS,
    DAY_NS,
    Scope,
    _open_where,
)
from stitchboard.store import Store

# -- workflow -------------------------------------------------------------------


@dataclass(frozen=True)
class FunnelStep:
    step: str
    reached: int  # transactions with this step
    stopped_here: int  # open transactions whose last step so far is this one


@dataclass(frozen=True)
class Latency:
    """How long a step took from its anchor, over the transactions that reached it."""

    step: str
    count: int
    p50: float | None  # seconds
    p90: float | None
    p99: float | None
    histogram: tuple[tuple[float, int], ...] = field(default=())  # (bin start s, count)
    bin_seconds: float = 1.0


@dataclass(frozen=True)
class ScopeFigures:
    """What the workflow page shows of the transactions that started in its scope."""

    funnel: tuple[FunnelStep, ...]  # the steps asked for, in their order
    latency: Latency
    flags: dict[str, int]  # conformance flag → transactions, most first
    slowest: tuple[dict[str, Any], ...]  # finished, longest first (``_ROW``'s columns)


# Seconds from the step's anchor to the step, as its deadline clock counts them. The
# correlator stores each step's duration from its anchor (``step_durations``): from the
# anchor's send time for an interface (``within.from: sent``), from the step before a
# skipped optional one, never negative for a step that may come early. Rows written
# before durations were stored fall back to the first times (``anchor``: the step its
# clock starts from, '' = the start).
_LATENCY = """indexOf(step_names, {step:String}) AS position,
    if({anchor:String} = '', toUnixTimestamp64Nano(start_time),
       arrayElement(step_first, indexOf(step_names, {anchor:String}))) AS anchored,
    if(length(step_durations) > 0, arrayElement(step_durations, position) / 1e9,
       (arrayElement(step_first, position) - anchored) / 1e9) AS seconds,
    arrayElement(step_first, position) > 0
      AND if(length(step_durations) > 0, arrayElement(step_durations, position) >= 0,
             anchored > 0) AS measured"""
_ROW = f"""id, workflow, facility, {_STATUS_NOW} AS status_now,
    toUnixTimestamp64Nano(start_time) AS start_ns, duration_ns,
    if(breach_deadline IS NULL, NULL,
       toUnixTimestamp64Nano(assumeNotNull(breach_deadline))) AS breach_ns,
    if(warn_deadline IS NULL, NULL, toUnixTimestamp64Nano(assumeNotNull(warn_deadline))) AS warn_ns,
    toString(amount) AS amount_text"""


def scope_figures(
    store: Store,
    scope: Scope,
    now: int,
    steps: Sequence[str],
    step: str,
    anchor: str | None,
    bins: int = 30,
    limit: int = 10,
) -> ScopeFigures:
    """The funnel over ``steps``, the latency of ``step`` from ``anchor`` (None = the
    start) in ``bins`` bins, the conformance flags and the ``limit`` slowest finished
    transactions of the scope, in two reads of its newest versions (FINAL) where five
    were made before: the aggregates in one, the slowest by a sort with a limit.

    The funnel counts, per step, the transactions that reached it and the open ones
    whose last step so far it is; the flags, every flag a transaction carries. Rows are
    grouped by their step names and flags (a handful of groups, more only after a
    workflow's steps changed), so per-step sums add arrays position by position instead
    of unnesting every step of every row; each group's latencies are gathered, then
    judged together.
    """
    where, params = scope.where(now)
    params.update(step=step, anchor=anchor or "", bins=bins)
    grouped = (
        "SELECT step_names, flags, count() AS rows,"
        " sumForEach(arrayMap(c -> toUInt64(c > 0), step_counts)) AS reached,"
        " sumForEach(arrayMap(i -> toUInt64(open AND i = last), arrayEnumerate(step_counts)))"
        " AS stopped,"
        " groupArrayIf(seconds, measured) AS latencies"
        " FROM (SELECT step_names, step_counts, flags,"
        " status IN ('in_progress', 'overdue') AS open,"
        f" arrayLastIndex(c -> c > 0, step_counts) AS last, {_LATENCY}"
        f" FROM {store.table('transactions')} FINAL WHERE {where})"
        " GROUP BY step_names, flags"
    )
    row = store.dicts(
        "SELECT groups, length(values) AS n, arrayReduce('quantilesExact(0.5, 0.9, 0.99)',"
        " values) AS q, greatest(arrayMax(values), 1.0) / {bins:UInt32} AS width,"
        " arrayMap(x -> toInt64(floor(x / width)), values) AS idx,"
        " arraySort(arrayDistinct(idx)) AS keys, arrayMap(k -> countEqual(idx, k), keys) AS counts"
        " FROM (SELECT groupArray((step_names, flags, rows, reached, stopped)) AS groups,"
        f" arrayFlatten(groupArray(latencies)) AS values FROM ({grouped}))" + _FINAL,
        params,
    )[0]
    reached: dict[str, list[int]] = {}
    flags: dict[str, int] = {}
    for names, carried, rows, reached_at, stopped_at in row["groups"]:
        for name, r, s in zip(names, reached_at, stopped_at, strict=False):
            total = reached.setdefault(str(name), [0, 0])
            total[0] += int(r)
            total[1] += int(s)
        for flag in carried:
            flags[str(flag)] = flags.get(str(flag), 0) + int(rows)
    return ScopeFigures(
        funnel=tuple(FunnelStep(s, *reached.get(s, (0, 0))) for s in steps),
        latency=_latency(step, row),
        flags=dict(sorted(flags.items(), key=lambda kv: (-kv[1], kv[0]))),
        slowest=tuple(_slowest(store, scope, now, limit)),
    )


def _latency(step: str, row: dict[str, Any]) -> Latency:
    n = int(row["n"])
    if not n:
        return Latency(step, 0, None, None, None)
    width = float(row["width"])
    p50, p90, p99 = (float(v) for v in row["q"])
    hist = tuple((int(b) * width, int(c)) for b, c in zip(row["keys"], row["counts"], strict=True))
    return Latency(step, n, p50, p90, p99, hist, width)


def _slowest(store: Store, scope: Scope, now: int, limit: int) -> list[dict[str, Any]]:
    """Finished transactions that took longest, start to end: a sort with a limit reads
    the rows it keeps, where gathering them in the aggregates would copy every row."""
    where, params = scope.where(now)
    params["limit"] = limit
    return store.dicts(
        f"SELECT {_ROW} FROM {store.table('transactions')} FINAL WHERE {where}"
        " AND status IN ('complete', 'late') AND duration_ns IS NOT NULL"
        " ORDER BY duration_ns DESC, id LIMIT {limit:UInt32}" + _FINAL,
        params,
    )


@dataclass(frozen=True)
class AgingBucket:
    label: str
    count: int
    amount: Decimal


def aging(store: Store, now: int, workflow: str | None, facility: str | None) -> list[AgingBucket]:
    """Open transactions (in progress or overdue) by age since their start, with $."""
    where, params = _open_where(now, workflow, facility)
    params["now_ns"] = now
    bounds = [b for _, b in AGING_BUCKETS if b is not None]
    params["bounds"] = [int(b * DAY_NS) for b in bounds]
    rows = store.rows(
        "SELECT arrayFirstIndex(b -> age < b, {bounds:Array(Int64)}) AS i, sum(n),"
        " toString(sum(amount * n)) FROM (SELECT amount, n, {now_ns:Int64} - start_ns AS age"
        f" FROM {open_transactions.signed_relation(store)} WHERE {where} AND {_OPEN_STATUS})"
        " GROUP BY i",
        params,
    )
    found = {int(i): (int(n), Decimal(a)) for i, n, a in rows}
    result = []
    for index, (label, _) in enumerate(AGING_BUCKETS, start=1):
        # arrayFirstIndex is 0 past the last bound: the open-ended bucket.
        key = index if index <= len(bounds) else 0
        n, amount = found.get(key, (0, Decimal("0")))
        result.append(AgingBucket(label, n, amount))
    return result


def most_overdue(
    store: Store, now: int, workflow: str | None, facility: str | None, limit: int = 10
) -> list[dict[str, Any]]:
    """Open transactions longest past the first deadline they passed (warn or breach).

    The open set names them; their rows are then read by id from ``transactions``.

    A row held now is one whose signed rows sum to 1. Rather than summing every open
    row of the workflow to keep the first ``limit``, only the candidates are summed: the
    rows due no later than the ``(limit + k)``-th row by due instant, where k is the
    weight of the rows taken back (-1 rows: few, merges cancel them), with every row
    taken back. A row taken back cancels at most one row due before a held one, so the
    first ``limit`` held rows are among the candidates; all the rows of a transaction
    share its due instant, so its sum is whole. The threshold reads only the deadline
    columns: the ids of the candidates alone are read."""
    where, params = _open_where(now, workflow, facility)
    params["limit"] = limit
    due = "if(warn_ns = 0, breach_ns, if(breach_ns = 0, warn_ns, least(warn_ns, breach_ns)))"
    relation = open_transactions.signed_relation(store)
    overdue = f"{where} AND {_OPEN_STATUS} AND {_OPEN_OVERDUE}"
    taken_back = f"SELECT ifNull(sum(-n), 0) FROM {relation} WHERE {overdue} AND n < 0"
    threshold = (
        f"SELECT max(due) FROM (SELECT {due} AS due FROM {relation} WHERE {overdue} AND n > 0"
        f" ORDER BY due LIMIT {{limit:UInt32}} + ({taken_back}))"
    )
    columns = "id, id_time, warn_ns, breach_ns, n"
    picked = store.rows(
        "SELECT id, toUnixTimestamp64Nano(id_time) FROM ("
        f"(SELECT {columns} FROM {relation} WHERE {overdue} AND n > 0 AND {due} <= ({threshold}))"
        f" UNION ALL (SELECT {columns} FROM {relation} WHERE {overdue} AND n < 0))"
        # A row held now: its signed rows with these columns sum to 1.
        " GROUP BY id, id_time, warn_ns, breach_ns HAVING sum(n) > 0"
        f" ORDER BY {due}, id LIMIT {{limit:UInt32}}",
        params,
    )
    if not picked:
        return []
    times = [int(t) for _, t in picked]
    scope = Scope(min(times), max(times) + 1, workflow=workflow, facility=facility)
    where, params = scope.where(now)
    params.update(limit=limit, now_ns=now, ids=[str(i) for i, _ in picked])
    due = (
        "toUnixTimestamp64Nano(assumeNotNull(least(ifNull(warn_deadline, breach_deadline),"
        " ifNull(breach_deadline, warn_deadline))))"
    )
    return store.dicts(
        f"SELECT {_ROW}, {due} AS due_ns,"
        " ifNull(breach_ns <= {now_ns:Int64}, 0) AS past_breach"
        f" FROM {store.table('transactions')} FINAL WHERE {where} AND id IN {{ids:Array(String)}}"
        f" AND status IN ('in_progress', 'overdue') AND {_STATUS_NOW} = 'overdue'"
        " ORDER BY due_ns, id LIMIT {limit:UInt32}" + _FINAL,
        params,
    )
