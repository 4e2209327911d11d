"""The SLO figures of the overview, counted from the alerts stage's SLI rollup.

The alert evaluator brings the rollup up to date every cycle; reading it costs a
small fraction of a scan of ``transactions``. The figures are those of the last
refresh (``SloFigures.as_of``), which the page shows. Before the first refresh the
report is counted from ``transactions`` itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from alerts import SloStatus, rollup_relation, slo_report
from dashboards import figures, queries
from dashboards.formatting import NS
from stitchboard.config.model import SlasConfig
from stitchboard.config.slos import Slo
from stitchboard.store import Store


@dataclass(frozen=True)
class SloFigures:
    """The SLO report behind the heatmap and the budget card, and what it was counted from."""

    statuses: list[SloStatus]
    as_of: int | None  # the rollup's last refresh (ns); None: counted from transactions


def slo_figures(store: Store, config: SlasConfig, window: str, now: int) -> SloFigures:
    """The alerts stage's SLO report over ``window`` ending ``now``, from its SLI rollup
    (as of the rollup's last refresh, which the alert evaluator makes every cycle).
    Before the first refresh the report counts straight from ``transactions``."""
    return report_as_of(store, config, window, now, queries.rollup_as_of(store))


def report_as_of(
    store: Store, config: SlasConfig, window: str, now: int, as_of: int | None
) -> SloFigures:
    """``slo_figures`` for a known last refresh (``queries.rollup_as_of``)."""
    moment = dt.datetime.fromtimestamp(now / NS, dt.UTC)
    if as_of is None:
        return SloFigures(slo_report(store, config, now=moment, window=window), None)
    report = slo_report(store, config, now=moment, window=window, relation=rollup_relation)
    return SloFigures(report, as_of)


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
