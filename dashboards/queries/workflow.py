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


def funnel(store: Store, scope: Scope, now: int, steps: Sequence[str]) -> list[FunnelStep]:
    """Per step: transactions that reached it, and open ones whose last step so far it
    is; one read of the scope."""
    where, params = scope.where(now)
    rows = store.rows(
        "SELECT step, count(), countIf(open AND step = last) FROM ("
        "SELECT arrayFilter((n, c) -> c > 0, step_names, step_counts) AS reached,"
        f" arrayElement(reached, -1) AS last, {_STATUS_NOW} IN ('in_progress', 'overdue') AS open"
        f" FROM {store.table('transactions')} FINAL WHERE {where}{_FINAL})"
        " ARRAY JOIN reached AS step GROUP BY step",
        params,
    )
    found = {str(step): (int(n), int(stopped)) for step, n, stopped in rows}
    return [FunnelStep(s, *found.get(s, (0, 0))) for s in steps]


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


def step_latency(
    store: Store, scope: Scope, now: int, step: str, anchor: str | None, bins: int = 30
) -> Latency:
    """Seconds from the step's anchor to ``step``, as its deadline clock counts them.

    The correlator stores each step's duration from its anchor (``step_durations``):
    from the anchor's send time for an interface (``within.from: sent``), from the
    step before a skipped optional one, never negative for a step that may come early.
    ``anchor`` (the step its clock starts from, None = the start) is what the page
    names; rows written before durations were stored fall back to the first times.
    """
    where, params = scope.where(now)
    params.update(step=step, anchor=anchor or "")
    start = (
        "arrayElement(step_first, indexOf(step_names, {anchor:String}))"
        if anchor
        else "toUnixTimestamp64Nano(start_time)"
    )
    position = "indexOf(step_names, {step:String})"
    stored = f"arrayElement(step_durations, {position})"
    inner = (
        f"SELECT if(length(step_durations) > 0, {stored} / 1e9,"
        f" (arrayElement(step_first, {position}) - {start}) / 1e9) AS seconds,"
        f" arrayElement(step_first, {position}) AS done,"
        f" if(length(step_durations) > 0, {stored} >= 0, {start} > 0) AS measured"
        f" FROM {store.table('transactions')} FINAL WHERE {where}{_FINAL}"
    )
    # One read of the scope: the quantiles, and the histogram from the same values (its
    # bin width needs their maximum: bins over the collected values, ~8 bytes each).
    params["bins"] = bins
    row = store.dicts(
        "SELECT n, q, greatest(top, 1.0) / {bins:UInt32} AS width,"
        " arrayMap(x -> toInt64(floor(x / width)), values) AS idx,"
        " arraySort(arrayDistinct(idx)) AS keys, arrayMap(k -> countEqual(idx, k), keys) AS counts"
        " FROM (SELECT count() AS n, quantilesExact(0.5, 0.9, 0.99)(seconds) AS q,"
        f" max(seconds) AS top, groupArray(seconds) AS values FROM ({inner})"
        " WHERE done > 0 AND measured)",
        params,
    )[0]
    n = int(row["n"])
    if not n:
        return Latency(step, 0, None, None, None)
    width = float(row["width"])
    p50, p90, p99 = (float(v) for v in row["q"])
    hist = tuple((int(b) * width, int(c)) for b, c in zip(row["keys"], row["counts"], strict=True))
    return Latency(step, n, p50, p90, p99, hist, width)


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


def flag_counts(store: Store, scope: Scope, now: int) -> dict[str, int]:
    where, params = scope.where(now)
    rows = store.rows(
        f"SELECT flag, count() FROM (SELECT arrayJoin(flags) AS flag"
        f" FROM {store.table('transactions')} FINAL WHERE {where}{_FINAL})"
        " GROUP BY flag ORDER BY count() DESC, flag",
        params,
    )
    return {str(f): int(n) for f, n in rows}


_ROW = f"""id, workflow, facility, {_STATUS_NOW} AS status_now,
    toUnixTimestamp64Nano(start_time) AS start_ns, duration_ns,
    if(breach_deadline IS NULL, NULL,
       toUnixTimestamp64Nano(assumeNotNull(breach_deadline))) AS breach_ns,
    if(warn_deadline IS NULL, NULL, toUnixTimestamp64Nano(assumeNotNull(warn_deadline))) AS warn_ns,
    toString(amount) AS amount_text"""


def slowest(store: Store, scope: Scope, now: int, limit: int = 10) -> list[dict[str, Any]]:
    """Finished transactions that took longest, start to end."""
    where, params = scope.where(now)
    params["limit"] = limit
    return store.dicts(
        f"SELECT {_ROW} FROM {store.table('transactions')} FINAL WHERE {where}"
        " AND status IN ('complete', 'late') AND duration_ns IS NOT NULL"
        " ORDER BY duration_ns DESC, id LIMIT {limit:UInt32}" + _FINAL,
        params,
    )


def most_overdue(
    store: Store, now: int, workflow: str | None, facility: str | None, limit: int = 10
) -> list[dict[str, Any]]:
    """Open transactions longest past the first deadline they passed (warn or breach).

    The open set names them; their rows are then read by id from ``transactions``."""
    where, params = _open_where(now, workflow, facility)
    params["limit"] = limit
    due = "if(warn_ns = 0, breach_ns, if(breach_ns = 0, warn_ns, least(warn_ns, breach_ns)))"
    picked = store.rows(
        "SELECT id, toUnixTimestamp64Nano(id_time)"
        f" FROM {open_transactions.signed_relation(store)}"
        f" WHERE {where} AND {_OPEN_STATUS} AND {_OPEN_OVERDUE}"
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
