"""The SLO figures of the overview, counted from the alerts stage's SLI rollup.

The alert evaluator brings the rollup up to date every cycle; reading it costs a
small fraction of a scan of ``transactions``. The figures are those of the last
refresh (``SloFigures.as_of``), which the page shows. Before the first refresh the
report is counted from ``transactions`` itself (then a range in the past counts the
judgements from its start up to now).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from alerts import SloStatus, rollup_refreshed_at, rollup_relation, slo_report
from dashboards import figures, queries
from dashboards.formatting import NS
from dashboards.time_range import TimeRange
from stitchboard.config.model import SlasConfig
from stitchboard.config.slos import Slo
from stitchboard.store import Store

_MINUTE_NS = 60 * NS


@dataclass(frozen=True)
class SloFigures:
    """The SLO report behind the heatmap and the budget card, and what it was counted from."""

    statuses: list[SloStatus]
    as_of: int | None  # the rollup's last refresh (ns); None: counted from transactions


def slo_figures(store: Store, config: SlasConfig, window: str, now: int) -> SloFigures:
    """The alerts stage's SLO report over ``window`` ending ``now``, from its SLI rollup
    (as of the rollup's last refresh, which the alert evaluator makes every cycle).
    Before the first refresh the report counts straight from ``transactions``."""
    return report_as_of(store, config, window, now, rollup_refreshed_at(store))


def report_as_of(
    store: Store, config: SlasConfig, window: str, now: int, as_of: int | None
) -> SloFigures:
    """``slo_figures`` for a known last refresh (``alerts.rollup_refreshed_at``)."""
    moment = dt.datetime.fromtimestamp(now / NS, dt.UTC)
    if as_of is None:
        return SloFigures(slo_report(store, config, now=moment, window=window), None)
    relation = rollup_until(now)
    report = slo_report(store, config, now=moment, window=window, relation=relation)
    return SloFigures(report, as_of)


def rollup_until(end: int) -> Callable[[Store, Slo], tuple[str, dict[str, Any]]]:
    """The rollup's judgements made before ``end`` (ns): a report for a range in the
    past (custom dates) ends there, not at the present. The report itself counts
    every judgement from its window's start on, assuming it ends now."""

    def relation(store: Store, slo: Slo) -> tuple[str, dict[str, Any]]:
        sql, params = rollup_relation(store, slo)
        limit = -(-end // _MINUTE_NS)  # the minute ``end`` falls in, included
        return f"SELECT * FROM ({sql}) WHERE minute < {{rollup_end:Int64}}", {
            **params,
            "rollup_end": limit,
        }

    return relation


def slo_window(chosen: TimeRange, now: int) -> tuple[str, int]:
    """The SLO report's window and its end for a page's range: a preset ends now;
    custom dates end at their last day (or now, if that is earlier)."""
    if not chosen.custom:
        return chosen.preset, now
    since, until = chosen.window(now)
    end = min(now, until)
    return f"{max(60, (end - since) // NS)}s", end


def headline_slos(slos: Sequence[Slo]) -> dict[str, Slo]:
    """workflow -> the SLO the overview judges it by: end to end, else its first."""
    chosen: dict[str, Slo] = {}
    for slo in slos:
        current = chosen.get(slo.indicator.workflow)
        if current is None or (slo.indicator.step is None and current.indicator.step is not None):
            chosen[slo.indicator.workflow] = slo
    return chosen


def trend_series(
    store: Store,
    config: SlasConfig,
    since: int,
    until: int,
    now: int,
    bucket_seconds: int,
    facility: str | None,
) -> list[figures.TrendSeries]:
    """Each workflow's headline SLO per bucket of when transactions were judged, from
    the SLI rollup (as of its last refresh)."""
    chosen = headline_slos(config.slos)
    out = []
    for workflow in config.workflows:
        slo = chosen.get(workflow.name)
        if slo is None:
            continue
        relation = rollup_relation(store, slo)
        points = queries.slo_trend(
            store, relation, since, until, min(now, until), bucket_seconds, facility
        )
        out.append(
            figures.TrendSeries(
                workflow.name, slo.name, slo.indicator.step, slo.objective, tuple(points)
            )
        )
    return out
