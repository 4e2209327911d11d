"""Transactions: search by any business key, filter, page through newest first, export CSV.

The grid pages on the server by keyset (``dashboards.queries.listing``: a cursor on the
sorting key), never by OFFSET, so a page is as fast at 10 million transactions as at
ten: each block remembers the cursor of the block after it. A raw MRN typed into the search
is pseudonymized before the query (the store only holds pseudonyms).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any

import dash
import dash_ag_grid as dag
from dash import Input, Output, State, callback, dcc, html, no_update

from correlator import FLAGS, STATUSES, TransactionFilter
from dashboards import time_range, view
from dashboards.context import Console, caller, console
from dashboards.export_action import export_action
from dashboards.formatting import duration, local_time, money
from dashboards.queries import listing
from dashboards.time_range import DEFAULT_RANGE, TimeRange

PAGE = "tx"
EXPORT_LIMIT = 100_000
BLOCK = 100
_KEY_COLUMNS = ("visit", "account", "claim", "charge", "po", "invoice", "journal")


@dataclass(frozen=True)
class Search:
    workflow: str | None = None
    facility: str | None = None
    status: str | None = None
    flag: str | None = None
    key: str | None = None
    range: str = DEFAULT_RANGE  # a preset, or "custom" with start and end
    start: str | None = None  # custom dates (the URL's ``from`` and ``to``)
    end: str | None = None
    zone: str = "UTC"  # where custom dates are read: the facility's, else UTC

    @classmethod
    def from_args(cls, config: Any, args: dict[str, Any]) -> Search:
        """From the URL (``from``/``to``) or the grid's context (``start``/``end``)."""
        key = args.get("key")
        facility = view.one_of(args.get("facility"), [f.id for f in config.facilities])
        zone = view.facility_zone(config, facility)
        period = time_range.from_args(
            {
                "range": args.get("range"),
                "from": args.get("from", args.get("start")),
                "to": args.get("to", args.get("end")),
            },
            zone,
        )
        return cls(
            workflow=view.one_of(args.get("workflow"), [w.name for w in config.workflows]),
            facility=facility,
            status=view.one_of(args.get("status"), list(STATUSES)),
            flag=view.one_of(args.get("flag"), list(FLAGS)),
            key=key.strip()[:200] if isinstance(key, str) and key.strip() else None,
            range=period.preset,
            start=period.start,
            end=period.end,
            zone=zone,
        )

    @property
    def period(self) -> TimeRange:
        return time_range.from_args(
            {"range": self.range, "from": self.start, "to": self.end}, self.zone
        )

    def window(self, now: int) -> tuple[int | None, int | None]:
        """[since, until) on the start time; a key search looks at all time (the key
        names the transaction); a preset has no end."""
        if self.key:
            return None, None
        since, until = self.period.window(now)
        return since, until if self.period.custom else None

    def to_filter(self, ctx: Console, now: int) -> TransactionFilter:
        since, until = self.window(now)
        return TransactionFilter(
            workflow=self.workflow,
            facility=self.facility,
            status=self.status,
            flag=self.flag,
            key_values=key_values(ctx, self.key),
            since=since,
            until=until,
        )


def export_selection(search: Search, now: int) -> dict[str, str]:
    """The export of what the grid shows: its key, or its filters from the range's start."""
    chosen = {
        "key": search.key,
        "workflow": search.workflow,
        "facility": search.facility,
        "status": search.status,
        "flag": search.flag,
    }
    since, until = search.window(now)  # like the grid: a key search covers all time
    for name, ns in (("since", since), ("until", until)):
        if ns is not None:
            moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ns // 1000)
            chosen[name] = moment.isoformat()
    return {name: value for name, value in chosen.items() if value}


def _range_text(search: Search) -> str:
    """``30d``, or custom dates as ``2026-03-09..2026-03-15``."""
    period = search.period
    return f"{period.start}..{period.end}" if period.custom else period.preset


def key_values(ctx: Console, key: str | None) -> tuple[str, ...]:
    """The typed key, plus its pseudonym when slas.yaml has PHI keys (an MRN)."""
    if not key:
        return ()
    if not ctx.runtime.config.phi_keys:
        return (key,)
    return tuple(dict.fromkeys((key, ctx.runtime.pseudonymize(key))))


def grid_row(item: listing.Listed, config: Any) -> dict[str, Any]:
    zone = view.facility_zone(config, item.facility)
    row = {
        "id": item.id,
        "open": f"[{item.id[:12]}…](/transactions/{item.id})",
        "workflow": item.workflow.replace("_", " "),
        "facility": item.facility,
        "status": item.status.replace("_", " "),
        "started": local_time(item.start_ns, zone),
        "duration": duration(None if item.duration_ns is None else item.duration_ns / 1e9),
        "amount": money(item.amount) if item.amount is not None else "",
        "flags": ", ".join(item.flags),
    }
    for name in _KEY_COLUMNS:
        row[name] = ", ".join(item.keys.get(name, [])[:3])
    return row


# Cursor of the block that starts at row N, per search: sequential scrolling and paging
# never re-read earlier rows. Bounded; a forgotten cursor is rebuilt by walking forward.
_cursors: OrderedDict[tuple[str, int], tuple[int, str] | None] = OrderedDict()
_CURSOR_CACHE = 5_000


def _remember(search_key: str, start: int, cursor: tuple[int, str] | None) -> None:
    _cursors[(search_key, start)] = cursor
    _cursors.move_to_end((search_key, start))
    while len(_cursors) > _CURSOR_CACHE:
        _cursors.popitem(last=False)


def rows_between(ctx: Console, search: Search, start: int, end: int, now: int) -> dict[str, Any]:
    """Rows [start, end) newest first, for AG Grid's infinite row model."""
    config = ctx.runtime.config
    base = search.to_filter(ctx, now)
    search_key = json.dumps(asdict(search), sort_keys=True)
    known = [s for (k, s) in _cursors if k == search_key and s <= start] if start else []
    at = max(known) if known else 0
    after = _cursors.get((search_key, at)) if at else None
    if at and after is None:  # the search ended before this row
        return {"rowData": [], "rowCount": at}
    while at < start:  # walk forward from the nearest known block
        step = min(start - at, 1000)
        _, after = listing.newest(ctx.runtime.store, base, step, now, after)
        at += step
        if after is None:
            return {"rowData": [], "rowCount": at}
        _remember(search_key, at, after)
    items, token = listing.newest(ctx.runtime.store, base, end - start, now, after)
    if token:
        _remember(search_key, end, token)
    rows = [grid_row(i, config) for i in items]
    result: dict[str, Any] = {"rowData": rows}
    if not token:
        result["rowCount"] = start + len(rows)
    return result


def export_csv(ctx: Console, search: Search, now: int, limit: int = EXPORT_LIMIT) -> str:
    """Every transaction of the search (up to ``limit``), newest first, as CSV."""
    config = ctx.runtime.config
    base = search.to_filter(ctx, now)
    out = io.StringIO()
    columns = [
        "id",
        "workflow",
        "facility",
        "status",
        "started",
        "duration",
        "amount",
        "flags",
        *_KEY_COLUMNS,
    ]
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    after: listing.Cursor | None = None
    written = 0
    while written < limit:
        items, after = listing.newest(
            ctx.runtime.store, base, min(1000, limit - written), now, after
        )
        for item in items:
            row = grid_row(item, config)
            row["amount"] = "" if item.amount is None else f"{item.amount:.2f}"
            writer.writerow(row)
        written += len(items)
        if after is None:
            break
    return out.getvalue()


COLUMNS = [
    {"field": "open", "headerName": "Transaction", "cellRenderer": "markdown", "width": 150},
    {"field": "workflow", "headerName": "Workflow", "width": 190},
    {"field": "facility", "headerName": "Facility", "width": 90},
    {
        "field": "status",
        "headerName": "Status",
        "width": 110,
        "cellClassRules": {"status-bad": "['overdue','failed','late'].includes(params.value)"},
    },
    {"field": "started", "headerName": "Started (facility time)", "width": 180},
    {"field": "duration", "headerName": "Duration", "width": 110},
    {"field": "amount", "headerName": "Amount", "width": 120, "type": "rightAligned"},
    {"field": "visit", "headerName": "Visit", "width": 130},
    {"field": "account", "headerName": "Account", "width": 120},
    {"field": "claim", "headerName": "Claim", "width": 120},
    {"field": "po", "headerName": "PO", "width": 110},
    {"field": "invoice", "headerName": "Invoice", "width": 110},
    {"field": "flags", "headerName": "Flags", "width": 160},
]


def layout(**kwargs: Any) -> Any:
    ctx = console()
    config = ctx.runtime.config
    search = Search.from_args(config, kwargs)
    statuses = [{"label": s.replace("_", " "), "value": s} for s in STATUSES]
    flags = [{"label": f.replace("_", " "), "value": f} for f in FLAGS]
    return html.Div(
        [
            view.page_header(
                PAGE,
                "Transactions",
                "Every stitched business transaction, newest first."
                " Search by visit, account, charge, claim, PO, invoice, journal"
                " or MRN.",
            ),
            html.Div(
                [
                    html.Div(
                        [
                            html.Label("Business key", htmlFor="tx-key"),
                            dcc.Input(
                                id="tx-key",
                                type="text",
                                value=search.key or "",
                                debounce=True,
                                placeholder="visit, claim, PO, MRN…",
                            ),
                        ],
                        className="filter",
                    ),
                    view.dropdown(
                        PAGE,
                        "workflow",
                        view.workflow_options(config),
                        search.workflow,
                        placeholder="All workflows",
                    ),
                    view.dropdown(
                        PAGE,
                        "facility",
                        view.facility_options(config),
                        search.facility,
                        placeholder="All facilities",
                    ),
                    view.dropdown(
                        PAGE, "status", statuses, search.status, placeholder="Any status"
                    ),
                    view.dropdown(PAGE, "flag", flags, search.flag, placeholder="Any flag"),
                    *view.range_controls(PAGE, search.period, label="Started"),
                    html.Button("Download CSV", id="tx-csv", className="button"),
                    dcc.Download(id="tx-download"),
                    export_action(PAGE, export_selection(search, ctx.now()), caller()),
                ],
                className="filters",
            ),
            html.P(
                " ".join(
                    filter(
                        None,
                        [
                            view.zone_note(config, search.facility),
                            view.range_note(search.period),
                            "A key search covers all time." if search.key else "",
                        ],
                    )
                ),
                className="muted",
            ),
            dag.AgGrid(
                id="tx-grid",
                columnDefs=COLUMNS,
                rowModelType="infinite",
                defaultColDef={"sortable": False, "resizable": True},
                dashGridOptions={
                    "context": asdict(search),
                    "cacheBlockSize": BLOCK,
                    "maxBlocksInCache": 20,
                    "pagination": True,
                    "paginationPageSize": BLOCK,
                    "paginationPageSizeSelector": False,
                    "rowBuffer": 0,
                },
                getRowId="params.data.id",
                style={"height": "640px"},
            ),
        ]
    )


@callback(
    Output("tx-url", "search"),
    Input("tx-key", "value"),
    Input("tx-workflow", "value"),
    Input("tx-facility", "value"),
    Input("tx-status", "value"),
    Input("tx-flag", "value"),
    Input("tx-range", "value"),
    Input("tx-dates", "start_date"),
    Input("tx-dates", "end_date"),
    State("tx-range-spec", "data"),
    prevent_initial_call=True,
)
def _to_url(
    key: str,
    workflow: str,
    facility: str,
    status: str,
    flag: str,
    rng: str,
    start: str | None,
    end: str | None,
    spec: dict | None,
) -> Any:
    trigger = dash.ctx.triggered_id
    period: dict[str, Any] = dict(time_range.from_args(spec or {}).query())
    if trigger in ("tx-range", "tx-dates"):
        found = view.range_query(rng, start, end, trigger, PAGE)
        if found is None:
            return no_update
        period = found
    values = {
        "key": (key or "").strip(),
        "workflow": workflow,
        "facility": facility,
        "status": status,
        "flag": flag,
        **period,
    }
    return view.query_string(values, {"range": DEFAULT_RANGE})


@callback(
    Output("tx-updated", "children"), Input("tx-tick", "n_intervals"), State("tx-facility", "value")
)
def _updated(_: int | None, facility: str | None) -> str:
    ctx = console()
    return view.updated_at(ctx.now(), view.facility_zone(ctx.runtime.config, facility))


@callback(Output("tx-grid", "getRowsResponse"), Input("tx-grid", "getRowsRequest"))
def _rows(request: dict[str, Any] | None) -> Any:
    if not request:
        return no_update
    ctx = console()
    search = Search.from_args(ctx.runtime.config, request.get("context") or {})
    start = int(request.get("startRow", 0))
    end = int(request.get("endRow", start + BLOCK))
    current = caller()
    if current is not None and search.key and start == 0:
        # A key may be PHI (an MRN): the audit log keeps its pseudonym, like the events.
        current.record("transaction.search", (f"key:{ctx.runtime.pseudonymize(search.key)}",))
    return rows_between(ctx, search, start, min(end, start + 1000), ctx.now())


@callback(
    Output("tx-download", "data"),
    Input("tx-csv", "n_clicks"),
    State("tx-grid", "dashGridOptions"),
    prevent_initial_call=True,
)
def _download(_: int, options: dict[str, Any]) -> Any:
    ctx = console()
    search = Search.from_args(ctx.runtime.config, (options or {}).get("context") or {})
    text = export_csv(ctx, search, ctx.now())
    current = caller()
    if current is not None:
        key = f"key:{ctx.runtime.pseudonymize(search.key)}" if search.key else ""
        described = (
            f"{name}:{value}"
            for name, value in (
                ("workflow", search.workflow),
                ("facility", search.facility),
                ("status", search.status),
                ("flag", search.flag),
                ("range", None if search.key else _range_text(search)),
            )
            if value
        )
        current.record("transaction.csv", tuple(filter(None, (key, *described))))
    return {"content": text, "filename": "transactions.csv", "type": "text/csv"}


def register() -> None:
    """Add this page to the Dash app (called by ``dashboards.app.build_dash``)."""
    dash.register_page(__name__, path="/transactions", name="Transactions", order=3, layout=layout)
