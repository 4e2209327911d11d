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

from collections.abc import Mapping, Sequence
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


def judged_sql(slo: Slo) -> str:
    """A subquery: one row per judged transaction with its group, kind, time and amount."""
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
        f"SELECT facility{labels}, {named}, toUInt8({kind}) AS kind,"
        f" toInt64({judged}) AS judged_ns,"
        " ifNull(amount, toDecimal64(0, 2)) AS amount_value"
        " FROM {transactions} FINAL"
        " WHERE workflow = {workflow:String} AND deleted = 0"
    )


def _params(slo: Slo, now: int) -> dict[str, Any]:
    params: dict[str, Any] = {"now": now, "workflow": slo.indicator.workflow}
    if slo.indicator.step is not None:
        params["step"] = slo.indicator.step
    return params


def _facility_filter(facilities: Sequence[str]) -> str:
    return " AND facility IN {facilities:Array(String)}" if facilities else ""


def group_counts(
    store: Store,
    slo: Slo,
    now: int,
    window_start: Mapping[str, int] | int,
    windows: Mapping[str, int],
    facilities: Sequence[str] = (),
) -> list[GroupCounts]:
    """Counts per group over the SLO window and each of ``windows`` (label -> length ns).

    ``window_start``: one start (ns) for every facility, or per facility (calendar month).
    """
    params = _params(slo, now)
    if isinstance(window_start, int):
        start = "{start:Int64}"
        params["start"] = window_start
        earliest = window_start
    else:
        start = (
            "transform(facility, {start_keys:Array(String)},"
            " {start_values:Array(Int64)}, {start_default:Int64})"
        )
        params["start_keys"] = list(window_start)
        params["start_values"] = list(window_start.values())
        params["start_default"] = min(window_start.values())
        earliest = min(window_start.values())
    earliest = min([earliest, *(now - w for w in windows.values())])
    params["earliest"] = earliest
    if facilities:
        params["facilities"] = list(facilities)
    label_cols = [f"`label_{label}`" for label in slo.grouping[1:]]
    group_cols = ", ".join(["facility", *label_cols])
    per_window = []
    for n, (label, length) in enumerate(windows.items()):
        params[f"w{n}"] = now - length
        since = f"judged_ns >= {{w{n}:Int64}}"
        per_window.append(
            f"countIf(kind = {GOOD} AND {since}) AS good_{n},"
            f" countIf(kind != {GOOD} AND {since}) AS bad_{n}"
        )
        del label
    in_window = f"judged_ns >= {start}"
    inner = judged_sql(slo).replace("{transactions}", store.table("transactions"))
    sql = (
        f"SELECT {group_cols},"
        f" countIf(kind = {GOOD} AND {in_window}) AS good,"
        f" countIf(kind = {LATE} AND {in_window}) AS late,"
        f" countIf(kind = {OVERDUE} AND {in_window}) AS overdue,"
        f" countIf(kind = {FAILED} AND {in_window}) AS failed,"
        f" sumIf(amount_value, kind IN ({LATE}, {OVERDUE}) AND {in_window}) AS at_risk"
        + "".join(f", {w}" for w in per_window)
        + f" FROM ({inner}{_facility_filter(facilities)}) WHERE kind != {OPEN}"
        " AND judged_ns >= {earliest:Int64} AND judged_ns <= {now:Int64}"
        f" GROUP BY {group_cols} ORDER BY {group_cols}" + _FINAL
    )
    rows = store.dicts(sql, params)
    slices = _slices(store, slo, now, start, params, facilities) if _sliced(slo) else {}
    result = []
    for row in rows:
        group = {"facility": row["facility"]}
        for label in slo.grouping[1:]:
            group[label] = row[f"label_{label}"]
        counts = {
            label: WindowCounts(good=int(row[f"good_{n}"]), bad=int(row[f"bad_{n}"]))
            for n, label in enumerate(windows)
        }
        good_slices, total_slices = slices.get(tuple(group.values()), (0, 0))
        result.append(
            GroupCounts(
                group=group,
                good=int(row["good"]),
                late=int(row["late"]),
                overdue=int(row["overdue"]),
                failed=int(row["failed"]),
                amount_at_risk=Decimal(row["at_risk"]),
                windows=counts,
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
    now: int,
    start: str,
    params: dict[str, Any],
    facilities: Sequence[str],
) -> dict[tuple[str, ...], tuple[int, int]]:
    """Timeslice budgeting: per group, slices whose compliance reached the target, of all."""
    label_cols = [f"`label_{label}`" for label in slo.grouping[1:]]
    group_cols = ", ".join(["facility", *label_cols])
    params = {
        **params,
        "slice_ns": slo.timeslice.nanos,
        "target": slo.timeslice_target or slo.objective,
    }
    inner = judged_sql(slo).replace("{transactions}", store.table("transactions"))
    sql = (
        f"SELECT {group_cols}, countIf(good / total >= {{target:Float64}}) AS good_slices,"
        " count() AS total_slices FROM ("
        f"SELECT {group_cols}, intDiv(judged_ns, {{slice_ns:Int64}}) AS slice,"
        f" countIf(kind = {GOOD}) AS good, count() AS total"
        f" FROM ({inner}{_facility_filter(facilities)}) WHERE kind != {OPEN}"
        f" AND judged_ns >= {start} AND judged_ns <= {{now:Int64}}"
        f" GROUP BY {group_cols}, slice) GROUP BY {group_cols}" + _FINAL
    )
    out: dict[tuple[str, ...], tuple[int, int]] = {}
    for row in store.rows(sql, params):
        out[tuple(str(v) for v in row[:-2])] = (int(row[-2]), int(row[-1]))
    return out


def compliance_series(
    store: Store,
    slo: Slo,
    group: Mapping[str, str],
    start: int,
    end: int,
    step_s: int,
) -> dict[int, tuple[int, int]]:
    """Per bucket start (ns): (good, total) of transactions judged in that bucket."""
    params = _params(slo, end)
    params.update(
        {"start": start, "step_ns": step_s * 1_000_000_000, "facility": group.get("facility", "")}
    )
    where = ["facility = {facility:String}"]
    for n, label in enumerate(slo.grouping[1:]):
        if label in group:
            params[f"l{n}"] = group[label]
            where.append(f"`label_{label}` = {{l{n}:String}}")
    inner = judged_sql(slo).replace("{transactions}", store.table("transactions"))
    sql = (
        "SELECT intDiv(judged_ns, {step_ns:Int64}) * {step_ns:Int64} AS bucket,"
        f" countIf(kind = {GOOD}) AS good, count() AS total"
        f" FROM ({inner}) WHERE kind != {OPEN} AND {' AND '.join(where)}"
        " AND judged_ns >= {start:Int64} AND judged_ns < {now:Int64}"
        " GROUP BY bucket ORDER BY bucket" + _FINAL
    )
    return {int(b): (int(g), int(t)) for b, g, t in store.rows(sql, params)}
