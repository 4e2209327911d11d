"""SLO reports: compliance, error budget and burn rates per SLO and group.

The arithmetic is pure (``judge``); the counts come from one ClickHouse query per
SLO (``alerts.sli``). A group with no judged transaction is ``no_data``: silence
is never "100 % on time", and never a breach either.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from alerts.sli import (
    GroupCounts,
    Relation,
    WindowCounts,
    compliance_series,
    group_counts,
    scan_relation,
)
from stitchboard.config.model import SlasConfig
from stitchboard.config.slos import Slo
from stitchboard.config.workflows import Duration
from stitchboard.store import Store

_NS = 1_000_000_000
_THIRTY_DAYS_NS = 30 * 86_400 * _NS


class SloState(StrEnum):
    OK = "ok"
    BREACH = "breach"
    NO_DATA = "no_data"


@dataclass(frozen=True)
class SloStatus:
    slo: str
    workflow: str
    step: str | None
    group: dict[str, str]
    objective: float
    window: str
    status: str  # SloState value: "ok" | "breach" | "no_data"
    compliance: float | None
    good: int
    bad: int
    late: int
    overdue: int
    failed: int
    total: int
    budget_remaining: float | None
    burn_rates: dict[str, float | None]
    amount_at_risk: Decimal
    reasons: tuple[str, ...] = ()
    # label -> (good, total) in that burn-rate window, for the minimum-events guard.
    window_counts: dict[str, tuple[int, int]] = field(default_factory=dict)


def label(ns: int) -> str:
    """A compact duration label: 5m, 1h, 6h, 3d, 56m, 1h30m."""
    seconds = ns // _NS
    for unit, size in (("d", 86_400), ("h", 3_600)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    if seconds >= 3_600:
        return f"{seconds // 3_600}h{(seconds % 3_600) // 60}m"
    if seconds >= 60:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def scaled(duration: Duration, slo: Slo) -> int:
    """A burn-rate window written for 30 days, scaled to the SLO's window (whole seconds)."""
    ns = duration.nanos * slo.window_ns // _THIRTY_DAYS_NS
    return max(_NS, ns // _NS * _NS)


def burn_windows(slo: Slo) -> dict[str, int]:
    """Every burn-rate window of the SLO's policy: label -> length (ns)."""
    out: dict[str, int] = {}
    for pair in slo.alerting.windows:
        for duration in (pair.long, pair.short):
            ns = scaled(duration, slo)
            out[label(ns)] = ns
    return dict(sorted(out.items(), key=lambda kv: kv[1]))


def burn_rate(good: int, bad: int, objective: float) -> float | None:
    """How fast the error budget burns: error rate / allowed error rate (None: no events)."""
    total = good + bad
    if total == 0:
        return None
    return (bad / total) / (1 - objective)


def judge(slo: Slo, counts: GroupCounts, windows: dict[str, int]) -> SloStatus:
    """Compliance, budget and burn rates of one group (pure)."""
    reasons: list[str] = []
    rates = {
        name: burn_rate(counts.windows[name].good, counts.windows[name].bad, slo.objective)
        for name in windows
    }
    window_counts = {
        name: (counts.windows[name].good, counts.windows[name].good + counts.windows[name].bad)
        for name in windows
    }
    if slo.budgeting == "timeslices":
        good_n, total_n = counts.good_slices, counts.total_slices
    else:
        good_n, total_n = counts.good, counts.total
    if total_n == 0:
        compliance = budget = None
        state = SloState.NO_DATA
        reasons.append(f"no transactions judged in the {slo.window_label} window")
    else:
        compliance = good_n / total_n
        budget = 1 - (1 - compliance) / (1 - slo.objective)
        if compliance < slo.objective:
            state = SloState.BREACH
            reasons.append(f"compliance {compliance:.4f} is below the objective {slo.objective}")
        else:
            state = SloState.OK
        if slo.budgeting == "timeslices":
            reasons.append(f"{good_n} of {total_n} {slo.timeslice.text} slices met the target")
    return SloStatus(
        slo=slo.name,
        workflow=slo.indicator.workflow,
        step=slo.indicator.step,
        group=dict(counts.group),
        objective=slo.objective,
        window=slo.window_label,
        status=state.value,
        compliance=compliance,
        good=counts.good,
        bad=counts.bad,
        late=counts.late,
        overdue=counts.overdue,
        failed=counts.failed,
        total=counts.total,
        budget_remaining=budget,
        burn_rates=rates,
        amount_at_risk=counts.amount_at_risk,
        reasons=tuple(reasons),
        window_counts=window_counts,
    )


def _ns(moment: dt.datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    return int(moment.timestamp()) * _NS + moment.microsecond * 1000


def month_start(now: dt.datetime, zone: ZoneInfo) -> int:
    local = now.astimezone(zone)
    first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return _ns(first)


def _facilities(config: SlasConfig, slo: Slo) -> list[str]:
    return list(slo.facilities) or [f.id for f in config.facilities]


def evaluate_slo(
    store: Store,
    config: SlasConfig,
    slo: Slo,
    now: dt.datetime,
    window: str | None = None,
    relation: Relation = scan_relation,
) -> list[SloStatus]:
    """Every group of one SLO (declared facilities without transactions are ``no_data``).

    ``relation``: where the counts come from (``transactions`` itself, or the rollup).
    """
    now_ns = _ns(now)
    windows = burn_windows(slo)
    start: dict[str, int] | int
    if window is not None:
        length = Duration.model_validate(window)
        if not length.nanos:
            raise ValueError(f"bad window {window!r}: use a clock duration such as 7d")
        start = now_ns - length.nanos
    elif slo.calendar == "month":
        start = {
            f.id: month_start(now, f.zone)
            for f in config.facilities
            if f.id in _facilities(config, slo)
        } or now_ns - slo.window_ns
    else:
        start = now_ns - slo.window_ns
    facilities = list(slo.facilities)
    rows = group_counts(store, slo, now_ns, start, windows, facilities, relation)
    if window is not None:
        slo = slo.model_copy(update={"window": Duration.model_validate(window), "calendar": None})
    result = [judge(slo, row, windows) for row in rows]
    seen = {r.group["facility"] for r in result}
    for facility in _facilities(config, slo):
        if facility not in seen:
            empty = GroupCounts(
                group={"facility": facility},
                good=0,
                late=0,
                overdue=0,
                failed=0,
                amount_at_risk=Decimal("0.00"),
                windows={name: WindowCounts(0, 0) for name in windows},
            )
            result.append(judge(slo, empty, windows))
    return sorted(result, key=lambda s: tuple(s.group.values()))


def slo_report(
    store: Store,
    config: SlasConfig,
    now: dt.datetime | None = None,
    window: str | None = None,
    relation: Relation = scan_relation,
) -> list[SloStatus]:
    """One entry per SLO x group, in slas.yaml order then by group."""
    now = now or dt.datetime.now(dt.UTC)
    out: list[SloStatus] = []
    for slo in config.slos:
        out.extend(evaluate_slo(store, config, slo, now, window, relation))
    return out


def slo_series(
    store: Store,
    config: SlasConfig,
    slo: str,
    group: dict[str, str],
    start: dt.datetime,
    end: dt.datetime,
    step: dt.timedelta,
    relation: Relation = scan_relation,
) -> list[tuple[dt.datetime, float | None]]:
    """Compliance of the transactions judged in each ``step`` bucket from start to end
    (counted per minute: a bucket holds the minutes that start in it)."""
    found = config.slo(slo)
    if found is None:
        raise KeyError(slo)
    step_s = max(1, int(step.total_seconds()))
    start_ns = _ns(start) // (step_s * _NS) * (step_s * _NS)
    end_ns = _ns(end)
    buckets = compliance_series(store, found, group, start_ns, end_ns, step_s, relation)
    series: list[tuple[dt.datetime, float | None]] = []
    t = start_ns
    while t < end_ns:
        good, total = buckets.get(t, (0, 0))
        moment = dt.datetime.fromtimestamp(t // _NS, dt.UTC)
        series.append((moment, good / total if total else None))
        t += step_s * _NS
    return series
