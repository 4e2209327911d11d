"""Overview for leaders: SLO compliance by facility × workflow, KPIs, trends and DNFB.

Compliance, objectives, error budgets and the per-workflow trend come from the alerts
stage's SLI rollup (``slo_report(..., relation=rollup_relation)``: the same figures
the burn-rate alerts judge, as of the rollup's last refresh, which the page shows);
counts, $ at risk and DNFB from ``dashboards.queries``. A cell opens the workflow
page for that facility.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dash
from dash import Input, Output, State, callback, dcc, html, no_update

from alerts import SloStatus, rollup_refreshed_at
from dashboards import figures, queries, time_range, view
from dashboards.cache import TtlCache
from dashboards.context import Console, console
from dashboards.figures import HeatCell
from dashboards.formatting import count, local_time, money_short, percent
from dashboards.objectives import SloFigures, report_as_of, slo_window, trend_series
from dashboards.parallel import side_by_side
from dashboards.time_range import DEFAULT_RANGE, TimeRange

PAGE = "ov"
# The SLO report of one rollup refresh is shared by every viewer for at most this long.
SLO_REPORT = TtlCache(ttl=30.0)
DNFB_WORKFLOW = "discharge_to_revenue"


def heat_cells(statuses: list[SloStatus]) -> list[HeatCell]:
    """One cell per facility × workflow: the workflow's end-to-end SLO, else its first."""
    chosen: dict[str, SloStatus] = {}
    for s in statuses:
        current = chosen.get(s.workflow)
        if current is None or (s.step is None and current.step is not None):
            chosen[s.workflow] = s
    cells = []
    for s in statuses:
        if chosen[s.workflow].slo != s.slo:
            continue
        cells.append(
            HeatCell(
                facility=s.group.get("facility", ""),
                workflow=s.workflow,
                slo=s.slo,
                compliance=s.compliance,
                objective=s.objective,
                judged=s.total,
                step=s.step,
            )
        )
    return cells


@dataclass(frozen=True)
class OnTime:
    """The heatmap's verdicts pooled: transactions its SLOs judged, and the good ones."""

    good: int
    judged: int

    @property
    def share(self) -> float | None:
        return self.good / self.judged if self.judged else None


def on_time(statuses: list[SloStatus], facility: str | None = None) -> OnTime:
    """What the "On time" card shows: of the transactions each workflow's headline SLO
    (the heatmap's) judged in the range, at one facility or all, the share it judged
    good, i.e. within its breach deadline (a warn missed is still on time, as for the
    SLO); the heatmap's cells are the same figures one facility × workflow at a time."""
    headline = {c.slo for c in heat_cells(statuses)}
    chosen = [
        s
        for s in statuses
        if s.slo in headline and (not facility or s.group.get("facility") == facility)
    ]
    return OnTime(sum(s.good for s in chosen), sum(s.total for s in chosen))


@dataclass(frozen=True)
class Budget:
    slo: str
    facility: str
    remaining: float


def worst_budget(statuses: list[SloStatus]) -> Budget | None:
    """The SLO × facility with the least error budget left (judged groups only)."""
    judged = [s for s in statuses if s.budget_remaining is not None]
    if not judged:
        return None
    worst = min(judged, key=lambda s: s.budget_remaining or 0.0)
    return Budget(worst.slo, worst.group.get("facility", ""), worst.budget_remaining or 0.0)


def kpis(
    ctx: Console,
    chosen: TimeRange,
    facility: str | None,
    now: int,
    slo_statuses: Callable[[], list[SloStatus]],
) -> list[Any]:
    """The cards. ``slo_statuses`` (the SLO report's, shared with the heatmap) is fetched
    beside the cards' own reads, not before them: the cards show once the slower is in."""
    store = ctx.runtime.store
    since, until = chosen.window(now)
    scope = queries.Scope(since, until, facility=facility)
    has_dnfb = any(w.name == DNFB_WORKFLOW for w in ctx.runtime.config.workflows)
    jobs: dict[str, Callable[[], Any]] = {
        "slo": slo_statuses,
        "started": lambda: queries.total_outcome(queries.outcomes(store, scope, now)),
        "cards": lambda: queries.decided_cards(
            store, scope, now, DNFB_WORKFLOW if has_dnfb else None
        ),
    }
    found = side_by_side(jobs)
    started, cards_found = found["started"], found["cards"]
    decided = queries.total_outcome(cards_found.decided)
    overdue = cards_found.overdue_now
    statuses: list[SloStatus] = found["slo"]
    budget = worst_budget(
        [s for s in statuses if not facility or s.group.get("facility") == facility]
    )
    judged = on_time(statuses, facility)
    budget_tone = ""
    if budget:
        budget_tone = (
            "bad" if budget.remaining < 0 else "warn" if budget.remaining < 0.25 else "good"
        )
    cards = [
        view.card(
            "Transactions",
            count(started.total),
            f"started in the range · {count(started.in_progress)} still in progress",
            card_id="ov-kpi-transactions",
        ),
        view.card(
            "On time",
            percent(judged.share),
            f"{count(judged.good)} of {count(judged.judged)} judged in the range:"
            " within the breach deadline",
            "good" if judged.share is not None and judged.share >= 0.95 else "warn",
            "ov-kpi-on-time",
            tooltip="As the heatmap counts it: each workflow's SLO judges its transactions"
            " (a missed warn deadline is still on time); the share of them it judged good.",
        ),
        view.card(
            "Overdue now",
            count(overdue),
            "open and past a deadline",
            "bad" if overdue else "good",
            "ov-kpi-overdue",
        ),
        view.card(
            "$ at risk",
            money_short(decided.amount_at_risk),
            "in transactions that went late or overdue in the range",
            "bad" if decided.amount_at_risk else "good",
            "ov-kpi-at-risk",
        ),
        view.card(
            "Error budget left",
            percent(budget.remaining, 0) if budget else "—",
            f"lowest: {budget.slo.replace('_', ' ')} at {budget.facility}"
            if budget
            else "no SLO judged",
            budget_tone,
            "ov-kpi-budget",
        ),
    ]
    if cards_found.dnfb is not None:
        d = cards_found.dnfb
        days = f"{d.average_days:.1f} days on average · " if d.average_days is not None else ""
        cards.append(
            view.card(
                "DNFB",
                money_short(d.amount),
                f"{count(d.count)} discharged, not final billed · {days}"
                f"{count(d.over_threshold)} over {queries.DNFB_THRESHOLD_DAYS} days",
                "bad" if d.over_threshold else "good",
                "ov-kpi-dnfb",
            )
        )
    return cards


def layout(**kwargs: Any) -> Any:
    ctx = console()
    config = ctx.runtime.config
    facility = view.one_of(kwargs.get("facility"), [f.id for f in config.facilities])
    chosen = time_range.from_args(kwargs, view.facility_zone(config, facility))
    return html.Div(
        [
            view.page_header(
                PAGE,
                "SLA overview",
                "Are transactions meeting their deadlines at every facility?"
                " Click a cell to see that workflow at that facility.",
            ),
            html.Div(
                [
                    *view.range_controls(PAGE, chosen),
                    view.dropdown(
                        PAGE,
                        "facility",
                        view.facility_options(config),
                        facility,
                        placeholder="All facilities",
                    ),
                ],
                className="filters",
            ),
            html.P(view.range_note(chosen), className="muted"),
            html.Div(id="ov-kpis", className="kpis"),
            html.Div(
                [
                    html.H2("SLO compliance by facility and workflow"),
                    html.P(id="ov-slo-as-of", className="muted"),
                    dcc.Graph(id="ov-heatmap", config={"displaylogo": False}),
                ],
                className="panel",
            ),
            html.Div(dcc.Graph(id="ov-trend", config={"displaylogo": False}), className="panel"),
        ]
    )


@callback(
    Output("ov-url", "search"),
    Input("ov-range", "value"),
    Input("ov-dates", "start_date"),
    Input("ov-dates", "end_date"),
    Input("ov-facility", "value"),
    State("ov-range-spec", "data"),
    prevent_initial_call=True,
)
def _to_url(
    rng: str, start: str | None, end: str | None, facility: str | None, spec: dict | None
) -> Any:
    trigger = dash.ctx.triggered_id
    if trigger == "ov-facility":  # the range stays as the URL had it
        period: dict[str, Any] = dict(time_range.from_args(spec or {}).query())
    else:
        found = view.range_query(rng, start, end, trigger, PAGE)
        if found is None:
            return no_update
        period = found
    return view.query_string({**period, "facility": facility}, {"range": DEFAULT_RANGE})


def _chosen(ctx: Console, spec: dict | None, facility: str | None) -> TimeRange:
    return view.range_from_spec(spec, view.facility_zone(ctx.runtime.config, facility))


def _slo_figures(ctx: Console, chosen: TimeRange, now: int) -> SloFigures:
    """Shared by the viewers of one range until the rollup's next refresh (or the TTL).

    A preset ends now; custom dates end at their last day (or now, if that is later)."""
    store, config = ctx.runtime.store, ctx.runtime.config
    as_of = rollup_refreshed_at(store)
    length, end = slo_window(chosen, now)
    found: SloFigures = SLO_REPORT.get(
        (chosen.key, as_of), lambda: report_as_of(store, config, length, end, as_of)
    )
    return found


def as_of_note(as_of: int | None, zone: str) -> str:
    if as_of is None:
        return "Counted from the transactions now (the SLI rollup has not been built yet)."
    return (
        f"SLO figures as of {local_time(as_of, zone)}: the SLI rollup, refreshed by the"
        " alert evaluator every cycle."
    )


# Three callbacks, not one: the browser asks for them at once, so the cards, the
# heatmap and the trend are computed side by side and each shows as soon as it is ready.
@callback(
    Output("ov-kpis", "children"),
    Output("ov-updated", "children"),
    Input("ov-tick", "n_intervals"),
    State("ov-range-spec", "data"),
    State("ov-facility", "value"),
)
def _refresh_kpis(_: int | None, spec: dict | None, facility: str | None) -> tuple:
    ctx = console()
    now = ctx.now()
    chosen = _chosen(ctx, spec, facility)
    zone = view.facility_zone(ctx.runtime.config, facility)
    cards = kpis(ctx, chosen, facility, now, lambda: _slo_figures(ctx, chosen, now).statuses)
    return cards, view.updated_at(now, zone)


@callback(
    Output("ov-heatmap", "figure"),
    Output("ov-slo-as-of", "children"),
    Input("ov-tick", "n_intervals"),
    State("ov-range-spec", "data"),
    State("ov-facility", "value"),
)
def _refresh_heatmap(_: int | None, spec: dict | None, facility: str | None) -> tuple:
    ctx = console()
    config = ctx.runtime.config
    found = _slo_figures(ctx, _chosen(ctx, spec, facility), ctx.now())
    facilities = [
        (f.id, f"{f.name or f.id}") for f in config.facilities if not facility or f.id == facility
    ]
    workflows = [w.name for w in config.workflows]
    figure = figures.compliance_heatmap(facilities, workflows, heat_cells(found.statuses))
    return figure, as_of_note(found.as_of, view.facility_zone(config, facility))


@callback(
    Output("ov-trend", "figure"),
    Input("ov-tick", "n_intervals"),
    State("ov-range-spec", "data"),
    State("ov-facility", "value"),
)
def _refresh_trend(_: int | None, spec: dict | None, facility: str | None) -> Any:
    ctx = console()
    store, config = ctx.runtime.store, ctx.runtime.config
    now = ctx.now()
    if rollup_refreshed_at(store) is None:
        return figures.empty("The trend appears after the alert evaluator's first cycle")
    chosen = _chosen(ctx, spec, facility)
    since, until = chosen.window(now)
    bucket = time_range.bucket_seconds(chosen.seconds(now))
    return figures.trend(trend_series(store, config, since, until, now, bucket, facility))


def drill_target(config: Any, point: dict[str, Any], period: dict[str, Any]) -> str | None:
    """The workflow page for a clicked heatmap cell (its labels are display names), over
    the same range (``period``: the page's range values, see ``TimeRange.spec``)."""
    label = str(point.get("x", "")).split("<br>")[0]
    workflow = next((w.name for w in config.workflows if w.name.replace("_", " ") == label), None)
    facility = next((f.id for f in config.facilities if (f.name or f.id) == point.get("y")), None)
    if workflow is None:
        return None
    chosen = time_range.from_args(period)
    search = view.query_string(
        {"workflow": workflow, "facility": facility, **chosen.query()},
        {"range": DEFAULT_RANGE},
    )
    return f"/workflow{search}"


@callback(
    Output("ov-url", "href"),
    Input("ov-heatmap", "clickData"),
    State("ov-range-spec", "data"),
    prevent_initial_call=True,
)
def _drill(click: dict[str, Any] | None, spec: dict | None) -> Any:
    if not click or not click.get("points"):
        return no_update
    target = drill_target(console().runtime.config, click["points"][0], spec or {})
    return target or no_update


def register() -> None:
    """Add this page to the Dash app (called by ``dashboards.app.build_dash``)."""
    dash.register_page(__name__, path="/", name="Overview", order=1, layout=layout)
