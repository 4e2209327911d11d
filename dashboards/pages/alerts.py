"""Alerts: firing, pending, silenced and resolved; silence and acknowledge from the page;
silences and the notification log. Everything goes through the alerts stage's public face."""

from __future__ import annotations

import datetime as dt
from typing import Any

import dash
import dash_ag_grid as dag
from dash import ALL, Input, Output, State, callback, dcc, html, no_update

from alerts import (
    AlertsError,
    AlertView,
    acknowledge,
    list_alerts,
    list_silences,
    notification_log,
    silence,
    unsilence,
)
from dashboards import view
from dashboards.context import Console, caller, console
from dashboards.formatting import NS, duration
from stitchboard.roles import Need

PAGE = "al"
STATES = ("firing", "pending", "resolved")
SILENCE_FOR = {"1h": 1, "2h": 2, "8h": 8, "24h": 24, "72h": 72}


def _utc(moment: dt.datetime | None) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "—"


def alert_row(a: AlertView, now: dt.datetime) -> dict[str, Any]:
    shown = "silenced" if a.silenced else a.state
    return {
        "fingerprint": a.fingerprint,
        "state": shown,
        "severity": a.severity,
        "rule": a.rule,
        "summary": a.annotations.get("summary") or a.annotations.get("description", ""),
        "labels": ", ".join(f"{k}={v}" for k, v in sorted(a.labels.items())),
        "since": _utc(a.starts_at),
        "for": duration(((a.ends_at or now) - a.starts_at).total_seconds()),
        "acknowledged": a.acknowledged_by or "",
        "value": f"{a.value:,.4g}" if a.value is not None else "",
    }


def parse_matchers(text: str) -> dict[str, str]:
    """``facility=NMC01, workflow=discharge_to_revenue`` → a dict; raises on a bad pair."""
    matchers: dict[str, str] = {}
    for part in (p.strip() for p in (text or "").split(",")):
        if not part:
            continue
        name, sep, value = part.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"bad matcher {part!r}: write label=value, separated by commas")
        matchers[name.strip()] = value.strip()
    if not matchers:
        raise ValueError("a silence needs at least one matcher such as facility=NMC01")
    return matchers


def silence_from(
    ctx: Console, matchers: dict[str, str], hours: int, author: str, comment: str, now: dt.datetime
) -> str:
    return silence(
        ctx.runtime.store,
        matchers,
        now,
        now + dt.timedelta(hours=hours),
        author.strip(),
        comment.strip(),
    )


# The summary wraps onto short lines (AG Grid's own line height is the row's); Since and
# For keep their full text, labels show in full on hover.
ALERT_COLUMNS = [
    {"field": "state", "headerName": "State", "width": 110, "checkboxSelection": True},
    {"field": "severity", "headerName": "Severity", "width": 95},
    {"field": "rule", "headerName": "Rule", "width": 130, "tooltipField": "rule"},
    {
        "field": "summary",
        "headerName": "Summary",
        "flex": 3,
        "minWidth": 300,
        "wrapText": True,
        "autoHeight": True,
        "cellClass": "cell-wrap",
    },
    {
        "field": "labels",
        "headerName": "Labels",
        "flex": 2,
        "minWidth": 200,
        "tooltipField": "labels",
    },
    {"field": "since", "headerName": "Since", "width": 185, "minWidth": 185},
    {"field": "for", "headerName": "For", "width": 120, "minWidth": 120},
    {"field": "acknowledged", "headerName": "Acknowledged by", "width": 150},
]


def layout(**kwargs: Any) -> Any:
    states = [s for s in str(kwargs.get("state", "firing,pending")).split(",") if s in STATES]
    return html.Div(
        [
            view.page_header(
                PAGE,
                "Alerts",
                "What is breaking now, who is on it, and who was told. Times in UTC.",
            ),
            html.Div(
                [
                    html.Div(
                        [
                            html.Label("Show"),
                            dcc.Checklist(
                                id="al-states",
                                options=list(STATES),
                                value=states or ["firing", "pending"],
                                inline=True,
                            ),
                        ],
                        className="filter",
                    ),
                    html.Div(
                        [
                            html.Label("Acting as", htmlFor="al-author"),
                            _author_input(),
                        ],
                        className="filter",
                    ),
                ],
                className="filters",
            ),
            html.Div(id="al-message", className="message"),
            html.Div(
                [
                    html.H2("Alerts"),
                    dag.AgGrid(
                        id="al-grid",
                        columnDefs=ALERT_COLUMNS,
                        rowData=[],
                        getRowId="params.data.fingerprint",
                        dashGridOptions={"rowSelection": "single"},
                        defaultColDef={"resizable": True},
                        style={"height": "360px"},
                    ),
                    html.Div(
                        [
                            html.Button("Acknowledge selected", id="al-ack", className="button"),
                            " ",
                            dcc.Dropdown(
                                id="al-for",
                                options=list(SILENCE_FOR),
                                value="2h",
                                clearable=False,
                                style={"width": "6rem", "display": "inline-block"},
                            ),
                            " ",
                            html.Button(
                                "Silence selected",
                                id="al-silence-selected",
                                className="button secondary",
                            ),
                        ],
                        className="filters",
                    ),
                ],
                className="panel",
            ),
            html.Div(
                [
                    html.H2("New silence"),
                    html.Div(
                        [
                            html.Div(
                                [
                                    html.Label("Matchers", htmlFor="al-matchers"),
                                    dcc.Input(
                                        id="al-matchers",
                                        type="text",
                                        placeholder="facility=NMC01, workflow=…",
                                    ),
                                ],
                                className="filter",
                            ),
                            html.Div(
                                [
                                    html.Label("Comment", htmlFor="al-comment"),
                                    dcc.Input(
                                        id="al-comment",
                                        type="text",
                                        placeholder="why (maintenance window…)",
                                    ),
                                ],
                                className="filter",
                            ),
                            html.Button("Silence", id="al-silence-new", className="button"),
                        ],
                        className="filters",
                    ),
                    html.H2("Silences"),
                    html.Div(id="al-silences"),
                ],
                className="panel",
            ),
            html.Div([html.H2("Notification log"), html.Div(id="al-log")], className="panel"),
            dcc.Store(id="al-changed"),
        ]
    )


def _table(head: list[str], rows: list[list[Any]], table_id: str) -> Any:
    if not rows:
        return html.P("None.", className="muted", id=table_id)
    return html.Table(
        [
            html.Thead(html.Tr([html.Th(h) for h in head])),
            html.Tbody([html.Tr([html.Td(c) for c in r]) for r in rows]),
        ],
        className="simple",
        id=table_id,
    )


@callback(
    Output("al-grid", "rowData"),
    Output("al-silences", "children"),
    Output("al-log", "children"),
    Output("al-updated", "children"),
    Input("al-tick", "n_intervals"),
    Input("al-states", "value"),
    Input("al-changed", "data"),
)
def _refresh(_: int | None, states: list[str], __: Any) -> tuple:
    ctx = console()
    store = ctx.runtime.store
    now = dt.datetime.fromtimestamp(ctx.now() / NS, dt.UTC)
    alerts = list_alerts(store, states=[s for s in states if s in STATES] or None)
    rows = [alert_row(a, now) for a in alerts if a.state in states]
    silences = []
    for s in list_silences(store):
        active = s["ends_at"] > now and not s["expired_by"]
        action = (
            html.Button(
                "Expire", id={"type": "al-expire", "id": s["id"]}, className="button secondary"
            )
            if active
            else html.Span(
                "expired" + (f" by {s['expired_by']}" if s["expired_by"] else ""), className="muted"
            )
        )
        matchers = ", ".join(f"{k}={v}" for k, v in sorted(s["matchers"].items()))
        silences.append(
            [matchers, _utc(s["starts_at"]), _utc(s["ends_at"]), s["author"], s["comment"], action]
        )
    log = [
        [
            _utc(r.get("time")),
            r.get("channel", ""),
            r.get("action", ""),
            html.Span(r.get("status", ""), className=f"badge {r.get('status', '')}"),
            r.get("attempt", ""),
            str(r.get("response") or r.get("error") or "")[:120],
            str(r.get("fingerprint", ""))[:12],
        ]
        for r in notification_log(store, limit=100)
    ]
    return (
        rows,
        _table(["matchers", "from", "until", "by", "comment", ""], silences, "al-silence-table"),
        _table(
            ["time", "channel", "action", "status", "attempt", "response", "alert"],
            log,
            "al-log-table",
        ),
        view.updated_at(ctx.now(), "UTC"),
    )


def _author_input() -> dcc.Input:
    """Logged in, actions are recorded under the login; only a console without the
    access layer (a test app) asks for a name."""
    current = caller()
    if current is not None:
        return dcc.Input(id="al-author", type="text", value=current.name, disabled=True)
    return dcc.Input(id="al-author", type="text", placeholder="who is acting")


@callback(
    Output("al-message", "children"),
    Output("al-changed", "data"),
    Input("al-ack", "n_clicks"),
    Input("al-silence-selected", "n_clicks"),
    Input("al-silence-new", "n_clicks"),
    Input({"type": "al-expire", "id": ALL}, "n_clicks"),
    State("al-grid", "selectedRows"),
    State("al-author", "value"),
    State("al-for", "value"),
    State("al-matchers", "value"),
    State("al-comment", "value"),
    prevent_initial_call=True,
)
def _act(
    _a: Any,
    _s: Any,
    _n: Any,
    expire: list[int | None],
    selected: list[dict] | None,
    author: str | None,
    hours: str,
    matchers: str | None,
    comment: str | None,
) -> tuple:
    trigger = dash.ctx.triggered_id
    if trigger is None or (isinstance(trigger, dict) and not any(expire)):
        return no_update, no_update
    ctx = console()
    store = ctx.runtime.store
    now = dt.datetime.fromtimestamp(ctx.now() / NS, dt.UTC)
    current = caller()
    if current is not None:
        if not current.may(Need.ENGINEER):
            return html.Span(
                "Acknowledging and silencing need the engineer role"
                f" (you are {current.principal.role}).",
                className="error",
            ), no_update
        who = current.name
    else:
        who = (author or "").strip()
        if not who:
            return html.Span(
                "Enter your name first: every action records who did it.", className="error"
            ), no_update
    action = ""
    targets: tuple[str, ...] = ()
    try:
        if isinstance(trigger, dict):
            unsilence(store, trigger["id"], who)
            action, targets = "alert.unsilence", (str(trigger["id"]),)
            message = "Silence expired."
        elif trigger == "al-silence-new":
            found = parse_matchers(matchers or "")
            silence_id = silence_from(ctx, found, 2, who, comment or "", now)
            action, targets = "alert.silence", (silence_id,)
            message = f"Silenced {', '.join(f'{k}={v}' for k, v in found.items())} for 2 h."
        else:
            if not selected:
                return html.Span("Select an alert first.", className="error"), no_update
            alert = next(
                a
                for a in list_alerts(store, limit=100_000)
                if a.fingerprint == selected[0]["fingerprint"]
            )
            if trigger == "al-ack":
                acknowledge(store, alert.fingerprint, who)
                action, targets = "alert.ack", (alert.fingerprint,)
                message = f"Acknowledged {alert.rule}."
            else:
                span = SILENCE_FOR.get(hours, 2)
                silence_id = silence_from(
                    ctx, dict(alert.labels), span, who, comment or alert.rule, now
                )
                action, targets = "alert.silence", (silence_id, alert.fingerprint)
                message = f"Silenced {alert.rule} for {span} h."
    except (AlertsError, ValueError) as exc:
        return html.Span(str(exc), className="error"), no_update
    if current is not None and action:
        current.record(action, targets)
    return message, ctx.now()


def register() -> None:
    """Add this page to the Dash app (called by ``dashboards.app.build_dash``)."""
    dash.register_page(__name__, path="/alerts", name="Alerts", order=5, layout=layout)
