"""Transaction detail: hops on a timeline per system, deadlines, keys, attributes, verdict.

Everything about the transaction comes from the correlator's ``get_transaction``
(the same body as ``GET /api/v1/transactions/{id}``); each hop's attributes and the
dead letters that mention one of its keys come from ``dashboards.queries``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dash
import dash_ag_grid as dag
from dash import dcc, html

from correlator import StoreTransactions
from dashboards import figures, queries, view
from dashboards.context import Console, caller, console
from dashboards.export_action import export_action
from dashboards.formatting import NS, duration, iso_to_ns, local_time, money

_REASON_WINDOW = 30 * 86_400 * NS


@dataclass(frozen=True)
class Detail:
    body: dict[str, Any]
    zone: str
    attributes: dict[str, dict[str, str]]
    dead_letters: list[dict[str, Any]]


def load(ctx: Console, tx_id: str, now: int) -> Detail | None:
    if not tx_id.isalnum() or len(tx_id) > 64:
        return None
    config = ctx.runtime.config
    body = StoreTransactions(ctx.runtime.store, config).get_transaction(tx_id, now)
    if body is None:
        return None
    zone = view.facility_zone(config, body["facility"])
    store = ctx.runtime.store
    attributes = queries.event_attributes(store, [e["event_id"] for e in body["events"]])
    values = [v for vs in body["keys"].values() for v in vs]
    start = iso_to_ns(body["start_time"]) or now
    last = iso_to_ns(body["last_time"]) or now
    letters = queries.related_dead_letters(
        store, values, start - _REASON_WINDOW, last + _REASON_WINDOW
    )
    return Detail(body, zone, attributes, letters)


def reasons(body: dict[str, Any], zone: str) -> list[str]:
    """The verdict in words: which deadline, when it was, by how much."""
    lines = []
    for missed in body.get("missed", []):
        step = missed["step"].replace("_", " ")
        when = local_time(iso_to_ns(missed["deadline"]), zone)
        late = duration(missed["by_seconds"])
        if missed.get("actual"):
            lines.append(f"{step} missed its {missed['level']} deadline ({when}) by {late}")
        else:
            lines.append(
                f"{step} has not happened; its {missed['level']} deadline was {when}, {late} ago"
            )
    if body["status"] == "failed":
        failed = [e for e in body["events"] if e["status"] == "error"]
        for event in failed:
            message = f": {event['status_message']}" if event.get("status_message") else ""
            lines.append(f"{event['system']} {event['operation']} reported an error{message}")
    if not lines and body["status"] == "complete":
        lines.append("every step happened within its deadlines")
    if not lines and body["status"] == "in_progress":
        lines.append("in progress; no deadline has passed yet")
    return lines


def step_verdict(step: dict[str, Any]) -> tuple[str, str]:
    """A step's verdict in words and its badge class."""
    if step["name"] == "unexpected":
        return "unexpected step", "warn"
    if step.get("missed"):
        return f"missed {step['missed']}", step["missed"]
    if not step.get("count"):
        return "not yet", "in_progress"
    return "on time", "ok"


def timeline_data(detail: Detail) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    zone = detail.zone
    hops = [
        {**e, "local": local_time(iso_to_ns(e["time"]), zone, with_zone=False)}
        for e in detail.body["events"]
    ]
    steps = []
    for s in detail.body.get("steps", []):
        steps.append(
            {
                **s,
                "warn_local": _plot_time(s.get("warn_deadline"), zone),
                "breach_local": _plot_time(s.get("breach_deadline"), zone),
            }
        )
    return hops, steps


def _plot_time(iso: str | None, zone: str) -> str | None:
    ns = iso_to_ns(iso)
    return local_time(ns, zone, with_zone=False) if ns else None


def _table(headers: list[str], rows: list[list[Any]], numeric: set[int] | None = None) -> Any:
    numeric = numeric or set()
    return html.Table(
        [
            html.Thead(
                html.Tr(
                    [
                        html.Th(h, className="num" if i in numeric else "")
                        for i, h in enumerate(headers)
                    ]
                )
            ),
            html.Tbody(
                [
                    html.Tr(
                        [
                            html.Td(c, className="num" if i in numeric else "")
                            for i, c in enumerate(r)
                        ]
                    )
                    for r in rows
                ]
            ),
        ],
        className="simple",
    )


def layout(tx_id: str = "", **_: Any) -> Any:
    ctx = console()
    detail = load(ctx, tx_id, ctx.now())
    current = caller()
    if current is not None:  # HIPAA: who viewed which transaction
        current.record("transaction.view", (tx_id,), "ok" if detail else "not found")
    if detail is None:
        return html.Div(
            [
                html.H1("Transaction not found"),
                html.P(f"No transaction {tx_id!r}."),
                dcc.Link("Back to transactions", href="/transactions"),
            ],
            id="txd-missing",
        )
    body, zone = detail.body, detail.zone
    hops, steps = timeline_data(detail)
    keys = [[name, ", ".join(values)] for name, values in sorted(body["keys"].items())]
    step_rows = [
        [
            s["name"].replace("_", " "),
            s["count"],
            local_time(iso_to_ns(s["first_time"]), zone),
            duration(s["duration_seconds"]),
            local_time(iso_to_ns(s["warn_deadline"]), zone),
            local_time(iso_to_ns(s["breach_deadline"]), zone),
            html.Span(step_verdict(s)[0], className=f"badge {step_verdict(s)[1]}"),
        ]
        for s in steps
    ]
    hop_rows = [
        {
            "time": local_time(iso_to_ns(e["time"]), zone),
            "step": e["step"] or "—",
            "system": e["system"],
            "operation": e["operation"],
            "status": e["status"],
            "message": e["status_message"] or "",
            "amount": money(e["amount"]) if e["amount"] else "",
            "keys": ", ".join(f"{k}={v}" for k, v in sorted(e["keys"].items())),
            "attributes": ", ".join(
                f"{k}={v}" for k, v in sorted(detail.attributes.get(e["event_id"], {}).items())
            ),
            "trace": "/".join(x for x in (e["trace_id"], e["span_id"]) if x),
            "source": f"{e['source_kind']} {e['source']}",
        }
        for e in body["events"]
    ]
    letters = [
        [
            local_time(d["received_ns"], zone),
            d["source"],
            d["reason"],
            "replayed" if d["replayed"] else "waiting",
        ]
        for d in detail.dead_letters
    ]
    status = body["status"]
    return html.Div(
        [
            html.Div(
                [
                    html.H1(
                        [
                            body["workflow"].replace("_", " "),
                            " · ",
                            body["facility"],
                            " ",
                            html.Span(
                                status.replace("_", " "),
                                className=f"badge {status}",
                                id="txd-status",
                            ),
                        ]
                    ),
                    html.P(
                        [
                            html.Code(body["id"]),
                            f" · {len(body['events'])} hops · ",
                            f"amount {money(body['amount']) if body['amount'] else '—'} · ",
                            f"started {local_time(iso_to_ns(body['start_time']), zone)} · ",
                            f"duration {duration(body['duration_seconds'])}",
                        ],
                        className="subtitle",
                    ),
                    html.P(view.zone_note(ctx.runtime.config, body["facility"]), className="muted"),
                    export_action("txd", {"transaction_id": body["id"]}, current),
                ]
            ),
            html.Div(
                [
                    html.H2("SLO verdict"),
                    html.Ul(
                        [html.Li(r) for r in reasons(body, zone)],
                        className="reasons",
                        id="txd-reasons",
                    ),
                ],
                className="panel",
            ),
            html.Div(
                [
                    dcc.Graph(
                        id="txd-timeline",
                        figure=figures.timeline(hops, steps, zone),
                        config={"displaylogo": False},
                    )
                ],
                className="panel",
            ),
            html.Div(
                [
                    html.H2("Steps"),
                    _table(
                        ["step", "hops", "first", "took", "warn by", "breach by", "verdict"],
                        step_rows,
                        {1},
                    ),
                ],
                className="panel",
            ),
            html.Div(
                [
                    html.H2(f"Hops ({len(hop_rows)})"),
                    dag.AgGrid(
                        id="txd-hops",
                        rowData=hop_rows,
                        columnDefs=[{"field": f} for f in hop_rows[0]] if hop_rows else [],
                        defaultColDef={"resizable": True, "wrapText": False},
                        style={"height": f"{min(600, 60 + 42 * len(hop_rows))}px"},
                        dashGridOptions={"domLayout": "normal"},
                    ),
                ],
                className="panel",
            ),
            html.Div(
                [
                    html.Div(
                        [html.H2("Keys that joined the hops"), _table(["key", "values"], keys)],
                        className="panel",
                    ),
                    html.Div(
                        [
                            html.H2("Related dead letters"),
                            _table(["received", "source", "reason", "state"], letters)
                            if letters
                            else html.P("None mention this transaction's keys.", className="muted"),
                        ],
                        className="panel",
                    ),
                ],
                className="grid2",
            ),
        ]
    )


def register() -> None:
    """Add this page to the Dash app (called by ``dashboards.app.build_dash``)."""
    dash.register_page(
        __name__,
        path_template="/transactions/<tx_id>",
        name="Transaction",
        nav=False,
        order=4,
        layout=layout,
    )
