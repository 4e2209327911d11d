"""An SLO's compliance over time, from the alerts stage's SLI rollup."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dashboards.queries.common import NS
from stitchboard.store import Store

# -- SLO figures from the alerts stage's rollup -------------------------------------

# How the alerts stage's SLI rollup marks a judgement (``kind``): good, or bad as late,
# overdue or failed. An overdue judgement counts from the instant its deadline passed
# (``due_ns``). Pinned by tests/store/test_overview_slo.py against ``slo_report``.
_KIND_GOOD, _KIND_OVERDUE = 1, 3


@dataclass(frozen=True)
class TrendPoint:
    """One bucket of an SLO's trend: transactions judged in it, and how many were good."""

    bucket_s: int  # bucket start, Unix seconds (UTC)
    good: int
    judged: int

    @property
    def compliance(self) -> float | None:
        return self.good / self.judged if self.judged else None


def slo_trend(
    store: Store,
    relation: tuple[str, dict[str, Any]],
    since: int,
    until: int,
    now: int,
    bucket_seconds: int,
    facility: str | None = None,
) -> list[TrendPoint]:
    """An SLO's compliance per bucket of when its transactions were judged (completed,
    or open past the deadline), from ``relation`` (the alerts stage's
    ``rollup_relation``), one point per bucket from ``since`` to ``until``; a bucket in
    which nothing was judged has ``judged == 0`` (no data, not 0 %)."""
    inner, params = relation
    bucket = max(60, bucket_seconds // 60 * 60)
    params = {
        **params,
        "now": now,
        "m_since": since // (60 * NS),
        "m_until": -(-until // (60 * NS)),
        "bucket_min": bucket // 60,
        "facility": facility or "",
    }
    rows = store.rows(
        "SELECT intDiv(minute, {bucket_min:Int64}) * {bucket_min:Int64} * 60 AS b,"
        f" sumIf(n, kind = {_KIND_GOOD}) AS good, sum(n) AS judged FROM ({inner})"
        f" WHERE (kind != {_KIND_OVERDUE} OR due_ns <= {{now:Int64}})"
        " AND minute >= {m_since:Int64} AND minute < {m_until:Int64}"
        " AND ({facility:String} = '' OR facility = {facility:String})"
        " GROUP BY b HAVING judged != 0 ORDER BY b",
        params,
    )
    found = {int(b): (int(g), int(j)) for b, g, j in rows}
    first = since // NS // bucket * bucket
    points = []
    for start in range(first, -(-until // NS), bucket):
        good, judged = found.get(start, (0, 0))
        points.append(TrendPoint(start, good, judged))
    return points
