"""Workflow: the step funnel, per-step latency against its deadlines, aging of open
transactions with $, conformance flags, and the slowest and most overdue ones."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dash
from dash import Input, Output, State, callback, dcc, html, no_update

from dashboards import figures, queries, time_range, view
from dashboards.context import Console, console
from dashboards.formatting import NS, duration, local_time, money
from dashboards.parallel import side_by_side
from dashboards.time_range import DEFAULT_RANGE, TimeRange
from stitchboard.config.workflows import Workflow

PAGE = "wf"


@dataclass(frozen=True)
class WorkflowView:
    workflow: str
    facility: str | None
    period: TimeRange
    step: str


def resolve(ctx: Console, args: dict[str, Any]) -> WorkflowView:
    config = ctx.runtime.config
    names = [w.name for w in config.workflows]
    workflow = view.one_of(args.get("workflow"), names) or (names[0] if names else "")
    steps = [s.name for s in _workflow(ctx, workflow).steps] if workflow else []
    facility = view.one_of(args.get("facility"), [f.id for f in config.facilities])
    return WorkflowView(
        workflow=workflow,
        facility=facility,
        period=time_range.from_args(args, view.facility_zone(config, facility)),
        step=view.one_of(args.get("step"), steps) or (steps[1] if len(steps) > 1 else ""),
    )


def _workflow(ctx: Console, name: str) -> Workflow:
    return next(w for w in ctx.runtime.config.workflows if w.name == name)


def anchor_and_limits(wf: Workflow, step: str) -> tuple[str | None, float | None, float | None]:
    """The step its clock starts from (None = the transaction's start), warn, breach (s).

    Business-day limits vary by the day; they are drawn only when fixed.
    """
    names = [s.name for s in wf.steps]
    index = names.index(step)
    spec = wf.steps[index]
    within = spec.within
    after = within.after if within else "previous"
    if after == "start" or index == 0:
        anchor = None
    elif after == "previous":
        anchor = names[index - 1]
    else:
        anchor = after
    warn = within.warn.nanos / NS if within and within.warn and within.warn.nanos else None
    breach = within.breach.nanos / NS if within and within.breach and within.breach.nanos else None
    return anchor, warn, breach


def _past(breach: bool) -> Any:
    level = "breach" if breach else "warn"
    return html.Td(html.Span(level, className=f"badge {level}"))


def _rows(items: list[dict[str, Any]], ctx: Console, now: int, overdue: bool) -> Any:
    config = ctx.runtime.config
    head = ["transaction", "facility", "started", "overdue by" if overdue else "took", "amount"]
    if overdue:
        head.append("past")
    body = []
    for r in items:
        zone = view.facility_zone(config, r["facility"])
        took = (now - r["due_ns"]) / NS if overdue else r["duration_ns"] / NS
        body.append(
            html.Tr(
                [
                    html.Td(dcc.Link(r["id"][:12] + "…", href=f"/transactions/{r['id']}")),
                    html.Td(r["facility"]),
                    html.Td(local_time(r["start_ns"], zone)),
                    html.Td(duration(took), className="num"),
                    html.Td(money(r["amount_text"]) if r["amount_text"] else "", className="num"),
                    *([_past(bool(r["past_breach"]))] if overdue else []),
                ]
            )
        )
    if not body:
        return html.P("None.", className="muted")
    return html.Table(
        [html.Thead(html.Tr([html.Th(h) for h in head])), html.Tbody(body)], className="simple"
    )


def panels(ctx: Console, v: WorkflowView, now: int) -> dict[str, Any]:
    """Every figure and table of the page for one view (called by the refresh callback)."""
    store = ctx.runtime.store
    wf = _workflow(ctx, v.workflow)
    since, until = v.period.window(now)
    scope = queries.Scope(since=since, until=until, workflow=v.workflow, facility=v.facility)
    # The funnel is the path every transaction takes: optional steps (an ASN, a charge
    # reversal) are not stages of it.
    steps = [s.name for s in wf.steps if not s.optional]
    anchor, warn, breach = anchor_and_limits(wf, v.step)
    jobs: dict[str, Callable[[], Any]] = {
        "scope": lambda: queries.scope_figures(store, scope, now, steps, v.step, anchor),
        "aging": lambda: figures.aging(queries.aging(store, now, v.workflow, v.facility)),
        "overdue": lambda: _rows(
            queries.most_overdue(store, now, v.workflow, v.facility), ctx, now, overdue=True
        ),
    }
    done = side_by_side(jobs)
    found: queries.ScopeFigures = done.pop("scope")
    return {
        **done,
        "funnel": figures.funnel(found.funnel),
        "latency": figures.latency(found.latency, warn, breach),
        "flags": figures.flags(found.flags),
        "slowest": _rows(list(found.slowest), ctx, now, overdue=False),
    }


def layout(**kwargs: Any) -> Any:
    ctx = console()
    config = ctx.runtime.config
    if not config.workflows:
        return html.P("No workflows in slas.yaml.")
    v = resolve(ctx, kwargs)
    steps = [
        {"label": s.name.replace("_", " "), "value": s.name}
        for s in _workflow(ctx, v.workflow).steps
    ]
    graph: Any = {"displaylogo": False}
    return html.Div(
        [
            view.page_header(
                PAGE,
                "Workflow",
                "Where transactions stop, how long each step takes against its"
                " deadline, and what is open and ageing.",
            ),
            html.Div(
                [
                    view.dropdown(
                        PAGE, "workflow", view.workflow_options(config), v.workflow, clearable=False
                    ),
                    view.dropdown(
                        PAGE,
                        "facility",
                        view.facility_options(config),
                        v.facility,
                        placeholder="All facilities",
                    ),
                    *view.range_controls(PAGE, v.period, label="Started"),
                    view.dropdown(
                        PAGE, "step", steps, v.step, clearable=False, label="Latency of step"
                    ),
                ],
                className="filters",
            ),
            html.P(
                " ".join(
                    filter(None, [view.zone_note(config, v.facility), view.range_note(v.period)])
                ),
                className="muted",
            ),
            html.Div(
                [
                    html.Div(dcc.Graph(id="wf-funnel", config=graph), className="panel"),
                    html.Div(dcc.Graph(id="wf-latency", config=graph), className="panel"),
                ],
                className="grid2",
            ),
            html.Div(
                [
                    html.Div(dcc.Graph(id="wf-aging", config=graph), className="panel"),
                    html.Div(dcc.Graph(id="wf-flags", config=graph), className="panel"),
                ],
                className="grid2",
            ),
            html.Div(
                [
                    html.Div(
                        [html.H2("Most overdue (open)"), html.Div(id="wf-overdue")],
                        className="panel",
                    ),
                    html.Div(
                        [html.H2("Slowest finished"), html.Div(id="wf-slowest")], className="panel"
                    ),
                ],
                className="grid2",
            ),
        ]
    )


@callback(
    Output("wf-url", "search"),
    Input("wf-workflow", "value"),
    Input("wf-facility", "value"),
    Input("wf-range", "value"),
    Input("wf-dates", "start_date"),
    Input("wf-dates", "end_date"),
    Input("wf-step", "value"),
    State("wf-range-spec", "data"),
    prevent_initial_call=True,
)
def _to_url(
    workflow: str,
    facility: str,
    rng: str,
    start: str | None,
    end: str | None,
    step: str,
    spec: dict | None,
) -> Any:
    trigger = dash.ctx.triggered_id
    period: dict[str, Any] = dict(time_range.from_args(spec or {}).query())
    if trigger in ("wf-range", "wf-dates"):
        found = view.range_query(rng, start, end, trigger, PAGE)
        if found is None:
            return no_update
        period = found
    values = {
        "workflow": workflow,
        "facility": facility,
        **period,
        "step": None if trigger == "wf-workflow" else step,
    }
    return view.query_string(values, {"range": DEFAULT_RANGE})


@callback(
    Output("wf-funnel", "figure"),
    Output("wf-latency", "figure"),
    Output("wf-aging", "figure"),
    Output("wf-flags", "figure"),
    Output("wf-slowest", "children"),
    Output("wf-overdue", "children"),
    Output("wf-updated", "children"),
    Input("wf-tick", "n_intervals"),
    State("wf-workflow", "value"),
    State("wf-facility", "value"),
    State("wf-range-spec", "data"),
    State("wf-step", "value"),
)
def _refresh(_: int | None, workflow: str, facility: str, spec: dict | None, step: str) -> tuple:
    ctx = console()
    now = ctx.now()
    args = {**(spec or {}), "workflow": workflow, "facility": facility, "step": step}
    v = resolve(ctx, args)
    p = panels(ctx, v, now)
    zone = view.facility_zone(ctx.runtime.config, v.facility)
    return (
        p["funnel"],
        p["latency"],
        p["aging"],
        p["flags"],
        p["slowest"],
        p["overdue"],
        view.updated_at(now, zone),
    )


def register() -> None:
    """Add this page to the Dash app (called by ``dashboards.app.build_dash``)."""
    dash.register_page(__name__, path="/workflow", name="Workflow", order=2, layout=layout)
