"""The SLI in ClickHouse: good and bad transactions per group over several windows at once.

A transaction is judged once, at one instant:

- complete (or late): when its last required step happened (``end_time``), or
  for a step indicator when that step first happened; good when no deadline of
  the indicator's level (``breach``, or ``warn`` when the SLO holds to it) was
  missed, else ``late``;
- open past its deadline: ``overdue``, counted from the moment the deadline
  passed (the stored pending deadline), never later when it finally completes;
- failed (a hop reported an error): ``failed``, at its last hop;
- open and not yet due: not counted at all.

One scan of ``transactions`` per SLO computes every window's counts with
``countIf``; nothing is looped over in Python.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from stitchboard.config.slos import Slo
from stitchboard.store import Store

_FINAL = " SETTINGS do_not_merge_across_partitions_select_final = 1"
_RANK = "multiIf({col} = 'breach', 2, {col} = 'warn', 1, 0)"
# Kinds are small integers and judgement times integer ns: every window below is a
# countIf over the same rows, and integer comparisons keep that cheap.
OPEN, GOOD, LATE, OVERDUE, FAILED = 0, 1, 2, 3, 4
MINUTE_NS = 60_000_000_000


@dataclass(frozen=True)
class WindowCounts:
    good: int
    bad: int


@dataclass(frozen=True)
class GroupCounts:
    """The SLI figures of one group (facility plus labels) for one SLO."""

    group: dict[str, str]
    good: int
    late: int
    overdue: int
    failed: int
    amount_at_risk: Decimal
    windows: dict[str, WindowCounts]  # window label -> counts judged within it
    good_slices: int = 0
    total_slices: int = 0

    @property
    def bad(self) -> int:
        return self.late + self.overdue + self.failed

    @property
    def total(self) -> int:
        return self.good + self.bad


def _least_set(a: str, b: str) -> str:
    """The earlier of two instants (ns) where 0 means none."""
    return f"if({a} = 0, {b}, if({b} = 0, {a}, least({a}, {b})))"


def _end_to_end(threshold: int) -> tuple[str, str, str]:
    """Named subexpressions, kind and judgement time (ns) of a workflow end to end."""
    if threshold == 2:
        pending = "ifNull(toUnixTimestamp64Nano(breach_deadline), 0)"
        missed = "breach_missed_at"
    else:
        pending = _least_set(
            "ifNull(toUnixTimestamp64Nano(warn_deadline), 0)",
            "ifNull(toUnixTimestamp64Nano(breach_deadline), 0)",
        )
        missed = "warn_missed_at"
    named = (
        f"{_RANK.format(col='level')} AS lvl_rank,"
        " status IN ('complete', 'late') AS done,"
        " toUnixTimestamp64Nano(last_time) AS last_ns,"
        # The first moment the transaction was bad: a deadline it missed (recorded by
        # the correlator, also after it completed) or a pending one that has passed
        # (the filter on now decides); rows written before the missed instants were
        # recorded fall back to their last hop.
        f" {_least_set(missed, pending)} AS due_ns,"
        f" if(due_ns = 0 AND lvl_rank >= {threshold}, last_ns, due_ns) AS bad_ns"
    )
    kind = (
        f"multiIf(status = 'failed', {FAILED}, done,"
        f" if(lvl_rank >= {threshold}, {LATE}, {GOOD}), bad_ns != 0, {OVERDUE}, {OPEN})"
    )
    end_ns = "toUnixTimestamp64Nano(ifNull(end_time, last_time))"
    judged = (
        f"multiIf(status = 'failed', if(bad_ns != 0, least(bad_ns, last_ns), last_ns),"
        f" done, if(lvl_rank >= {threshold} AND {missed} != 0, {missed}, {end_ns}), bad_ns)"
    )
    return named, kind, judged


def _step(threshold: int) -> tuple[str, str, str]:
    """Named subexpressions, kind and judgement time (ns) of one step of a workflow."""
    deadline = (
        "step_breach[si]"
        if threshold == 2
        else "if(step_warn[si] != 0, step_warn[si], step_breach[si])"
    )
    # Rows written before step deadlines were recorded (no step_breach) keep the older
    # approximation: a pending step past the transaction's earliest pending deadline.
    legacy_due = (
        "toUnixTimestamp64Nano(multiIf(breach_deadline IS NOT NULL, breach_deadline,"
        " warn_deadline IS NOT NULL, warn_deadline, last_time))"
    )
    named = (
        "indexOf(step_names, {step:String}) AS si,"
        " (si > 0 AND step_first[si] != 0) AS happened,"
        f" {_RANK.format(col='step_levels[si]')} AS lvl_rank,"
        " length(step_breach) > 0 AS recorded,"
        f" if(recorded, {deadline}, 0) AS step_due,"
        " if(length(step_status) > 0, step_status[si] = 'error', status = 'failed')"
        " AS step_failed"
    )
    kind = (
        f"multiIf(si = 0, {OPEN}, happened AND step_failed, {FAILED},"
        f" happened, if(lvl_rank >= {threshold}, {LATE}, {GOOD}),"
        f" status IN ('complete', 'late'), {OPEN}, recorded, if(step_due != 0, {OVERDUE},"
        f" {OPEN}), lvl_rank >= {threshold}, {OVERDUE}, {OPEN})"
    )
    last = "if(length(step_status) > 0, step_last[si], toUnixTimestamp64Nano(last_time))"
    judged = (
        f"multiIf(happened AND step_failed, if(lvl_rank >= {threshold} AND step_due != 0,"
        f" least(step_due, {last}), {last}), happened,"
        f" if(lvl_rank >= {threshold} AND step_due != 0, step_due, step_first[si]),"
        f" recorded, step_due, {legacy_due})"
    )
    return named, kind, judged


# The columns of ``transactions`` that ``judged_sql`` reads: a source that picks rows
# (the rollup's changed transactions) reads only these, not the hop lists.
JUDGED_COLUMNS = (
    "id, workflow, facility, status, level, end_time, last_time, warn_deadline,"
    " breach_deadline, warn_missed_at, breach_missed_at, amount, key_names, key_values,"
    " deleted, step_names, step_first, step_last, step_levels, step_warn, step_breach,"
    " step_status"
)


def judged_sql(slo: Slo, source: str = "{transactions} FINAL") -> str:
    """A subquery: one row per judged transaction with its group, kind, time and amount.

    ``source``: where the transaction rows come from (one row per transaction).
    """
    threshold = 2 if slo.indicator.threshold == "breach" else 1
    labels = "".join(
        f", if(has(key_names, '{label}'), key_values[indexOf(key_names, '{label}')], '')"
        f" AS `label_{label}`"
        for label in slo.grouping[1:]
    )
    if slo.indicator.step is None:
        named, kind, judged = _end_to_end(threshold)
    else:
        named, kind, judged = _step(threshold)
    return (
        f"SELECT id, facility{labels}, {named}, toUInt8({kind}) AS kind,"
        f" toInt64({judged}) AS judged_ns,"
        " ifNull(amount, toDecimal64(0, 2)) AS amount_value"
        f" FROM {source}"
        " WHERE workflow = {workflow:String} AND deleted = 0"
    )


def judgements_sql(slo: Slo, source: str = "{transactions} FINAL") -> str:
    """The judged transactions as the rollup keeps them: facility, labels (in the SLO's
    grouping order), minute, kind, the exact instant of an overdue one, a count and
    the amount at risk."""
    labels = ", ".join(f"`label_{label}`" for label in slo.grouping[1:])
    return (
        f"SELECT id, facility, CAST([{labels}] AS Array(String)) AS labels,"
        f" intDiv(judged_ns, {MINUTE_NS}) AS minute, kind,"
        f" if(kind = {OVERDUE}, judged_ns, 0) AS due_ns, toInt64(1) AS n,"
        f" toDecimal128(if(kind IN ({LATE}, {OVERDUE}), amount_value, 0), 2) AS amount"
        f" FROM ({judged_sql(slo, source)}) WHERE kind != {OPEN}"
    )


# Where the counts are read from: an SQL relation with the columns of
# ``judgements_sql`` and its parameters.
Relation = Callable[[Store, Slo], tuple[str, dict[str, Any]]]


def scan_relation(store: Store, slo: Slo) -> tuple[str, dict[str, Any]]:
    """Straight from ``transactions`` (exact at any moment; one scan of the workflow)."""
    sql = judgements_sql(slo).replace("{transactions}", store.table("transactions"))
    return sql, _params(slo)


def _params(slo: Slo) -> dict[str, Any]:
    params: dict[str, Any] = {"workflow": slo.indicator.workflow}
    if slo.indicator.step is not None:
        params["step"] = slo.indicator.step
    return params


def _facility_filter(facilities: Sequence[str]) -> str:
    return " AND facility IN {facilities:Array(String)}" if facilities else ""


# Judgements that count by now: every kind but overdue is judged at a moment already
# past; an overdue transaction counts once its deadline has passed.
_due = f"(kind != {OVERDUE} OR due_ns <= {{now:Int64}})"


def _minute(ns: int) -> int:
    return ns // MINUTE_NS


def group_counts(
    store: Store,
    slo: Slo,
    now: int,
    window_start: Mapping[str, int] | int,
    windows: Mapping[str, int],
    facilities: Sequence[str] = (),
    relation: Relation = scan_relation,
) -> list[GroupCounts]:
    """Counts per group over the SLO window and each of ``windows`` (label -> length ns).

    ``window_start``: one start (ns) for every facility, or per facility (calendar month).
    A window counts the judgements from the start of the minute its start falls in;
    an overdue transaction counts from the instant its deadline passed (``<= now``).
    """
    inner, params = relation(store, slo)
    params = {**params, "now": now}
    if isinstance(window_start, int):
        start = "{start:Int64}"
        params["start"] = _minute(window_start)
        earliest = window_start
    else:
        start = (
            "transform(facility, {start_keys:Array(String)},"
            " {start_values:Array(Int64)}, {start_default:Int64})"
        )
        params["start_keys"] = list(window_start)
        params["start_values"] = [_minute(v) for v in window_start.values()]
        params["start_default"] = _minute(min(window_start.values()))
        earliest = min(window_start.values())
    earliest = min([earliest, *(now - w for w in windows.values())])
    params["earliest"] = _minute(earliest)
    if facilities:
        params["facilities"] = list(facilities)
    # Windows all end now, so they nest: a judgement is in the k shortest ones (k =
    # how many start at or before its minute). Rows are summed per (group, in the SLO
    # window, k, kind) in ClickHouse, and the windows' counts added up here.
    by_start = sorted(windows, key=lambda label: windows[label], reverse=True)
    depth = []
    for n, label in enumerate(by_start):
        params[f"w{n}"] = _minute(now - windows[label])
        depth.append(f"minute >= {{w{n}:Int64}}, {n + 1}")
    depth_sql = f"multiIf({', '.join(reversed(depth))}, 0)" if depth else "0"
    sql = (
        f"SELECT facility, labels, minute >= {start} AS inside, {depth_sql} AS depth, kind,"
        " sum(n) AS count, sum(amount) AS at_risk"
        f" FROM ({inner}) WHERE {_due}{_facility_filter(facilities)}"
        " AND minute >= {earliest:Int64}"
        " GROUP BY facility, labels, inside, depth, kind" + _FINAL
    )
    sums: dict[tuple[str, ...], dict[str, Any]] = {}
    for facility, labels, inside, k, kind, count, at_risk in store.rows(sql, params):
        key = (str(facility), *(str(v) for v in labels))
        got = sums.setdefault(
            key,
            {"all": 0, "kinds": [0] * 5, "risk": Decimal(0), "good": [0] * len(by_start)}
            | {"bad": [0] * len(by_start)},
        )
        got["all"] += int(count)
        if inside:
            got["kinds"][int(kind)] += int(count)
            got["risk"] += Decimal(at_risk)
        for n in range(int(k)):
            got["good" if kind == GOOD else "bad"][n] += int(count)
    slices = _slices(store, slo, inner, start, params, facilities) if _sliced(slo) else {}
    result = []
    for key in sorted(sums):
        got = sums[key]
        if got["all"] == 0:
            continue
        group = {"facility": key[0]}
        group.update(zip(slo.grouping[1:], key[1:], strict=True))
        counts = {
            label: WindowCounts(good=got["good"][n], bad=got["bad"][n])
            for n, label in enumerate(by_start)
        }
        good_slices, total_slices = slices.get(key, (0, 0))
        result.append(
            GroupCounts(
                group=group,
                good=got["kinds"][GOOD],
                late=got["kinds"][LATE],
                overdue=got["kinds"][OVERDUE],
                failed=got["kinds"][FAILED],
                amount_at_risk=got["risk"].quantize(Decimal("0.01")),
                windows={label: counts[label] for label in windows},
                good_slices=good_slices,
                total_slices=total_slices,
            )
        )
    return result


def _sliced(slo: Slo) -> bool:
    return slo.budgeting == "timeslices"


def _slices(
    store: Store,
    slo: Slo,
    inner: str,
    start: str,
    params: dict[str, Any],
    facilities: Sequence[str],
) -> dict[tuple[str, ...], tuple[int, int]]:
    """Timeslice budgeting: per group, slices whose compliance reached the target, of all."""
    params = {
        **params,
        "slice_ns": slo.timeslice.nanos,
        "target": slo.timeslice_target or slo.objective,
    }
    sql = (
        "SELECT facility, labels, countIf(good / total >= {target:Float64}) AS good_slices,"
        " count() AS total_slices FROM ("
        f"SELECT facility, labels, intDiv(minute * {MINUTE_NS}, {{slice_ns:Int64}}) AS slice,"
        f" sumIf(n, kind = {GOOD}) AS good, sum(n) AS total"
        f" FROM ({inner}) WHERE {_due}{_facility_filter(facilities)} AND minute >= {start}"
        " GROUP BY facility, labels, slice HAVING total != 0) GROUP BY facility, labels" + _FINAL
    )
    out: dict[tuple[str, ...], tuple[int, int]] = {}
    for facility, labels, good, total in store.rows(sql, params):
        out[(str(facility), *(str(v) for v in labels))] = (int(good), int(total))
    return out


def compliance_series(
    store: Store,
    slo: Slo,
    group: Mapping[str, str],
    start: int,
    end: int,
    step_s: int,
    relation: Relation = scan_relation,
) -> dict[int, tuple[int, int]]:
    """Per bucket start (ns): (good, total) of the transactions judged in that bucket.

    Judgements are kept per minute: a bucket counts the minutes that start in it, from
    the minute of ``start`` to the one ``end`` falls in; an overdue transaction counts
    once its deadline passed (``<= end``). With buckets of whole minutes aligned to
    minutes (the API's), that is every judgement from ``start`` to ``end``.
    """
    inner, params = relation(store, slo)
    params = {
        **params,
        "now": end,
        "start": _minute(start),
        "end": _minute(end),
        "step_ns": step_s * 1_000_000_000,
        "facility": group.get("facility", ""),
    }
    where = ["facility = {facility:String}"]
    for n, label in enumerate(slo.grouping[1:]):
        if label in group:
            params[f"l{n}"] = group[label]
            where.append(f"labels[{n + 1}] = {{l{n}:String}}")
    sql = (
        f"SELECT intDiv(minute * {MINUTE_NS}, {{step_ns:Int64}}) * {{step_ns:Int64}} AS bucket,"
        f" sumIf(n, kind = {GOOD}) AS good, sum(n) AS total"
        f" FROM ({inner}) WHERE {_due} AND {' AND '.join(where)}"
        " AND minute >= {start:Int64} AND minute <= {end:Int64}"
        " GROUP BY bucket HAVING total != 0 ORDER BY bucket" + _FINAL
    )
    return {int(b): (int(g), int(t)) for b, g, t in store.rows(sql, params)}
