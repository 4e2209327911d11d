"""Data health: every feed with its last receipt, per-minute sparkline and idle marker;
dead letters by reason with replay; ingest rates and correlator lag from /metrics; the
lowest free disk of the store and the spool."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dash
from dash import ALL, Input, Output, State, callback, dcc, html, no_update
from prometheus_client import CollectorRegistry

from dashboards import figures, queries, view
from dashboards.context import Console, console
from dashboards.formatting import NS, count, duration, local_time, size
from stitchboard.config.model import SlasConfig
from stitchboard.disks import DiskSpace

PAGE = "dh"
BUSY_WARN = 0.9  # share of the time the correlator works at which its card warns


@dataclass(frozen=True)
class FeedRow:
    feed: queries.Feed
    idle_seconds: float  # since the last receipt
    idle: bool


def idle_limits(config: SlasConfig) -> tuple[float, dict[tuple[str, str], float]]:
    """Seconds of silence that make a feed idle: the idle-feed alert's ``idle_after``,
    or a declared feed's own (so the page and the alert agree)."""
    rule = config.alerts.idle_feeds
    default = rule.idle_after.nanos / NS
    declared = {
        (f.system, f.facility): f.idle_after.nanos / NS
        for f in rule.feeds
        if f.idle_after is not None and f.idle_after.nanos
    }
    return default, declared


def feed_rows(ctx: Console, now: int) -> list[FeedRow]:
    default, declared = idle_limits(ctx.runtime.config)
    rows = []
    for feed in queries.feeds(ctx.runtime.store, now):
        quiet = (now - feed.last_ns) / NS
        limit = declared.get((feed.system, feed.facility), default)
        rows.append(FeedRow(feed, quiet, quiet > limit))
    return sorted(rows, key=lambda r: (not r.idle, r.feed.system, r.feed.facility))


def metric_totals(registry: CollectorRegistry) -> dict[str, float]:
    """Counters and gauges of the server's own registry (the same numbers as /metrics)."""
    wanted = {
        "stitchboard_accepted_records_total": "accepted",
        "stitchboard_rejected_records_total": "rejected",
        "stitchboard_correlated_events_total": "correlated",
        "stitchboard_ingest_queue_rows": "queue_rows",
        "stitchboard_correlator_pending_events": "correlator_pending",
        "stitchboard_correlator_busy_seconds_total": "correlator_busy",
        "stitchboard_correlation_delay_seconds_sum": "delay_sum",
        "stitchboard_correlation_delay_seconds_count": "delay_count",
    }
    totals = dict.fromkeys(wanted.values(), 0.0)
    for family in registry.collect():
        for sample in family.samples:
            name = wanted.get(sample.name)
            if name:
                totals[name] += sample.value
    return totals


def lag_card(current: dict[str, float], per_second: dict[str, float]) -> Any:
    """The correlator's mean delay, its backlog and how busy it was since the last
    refresh; it warns when busy nearly all the time (any burst then makes a backlog)."""
    lag = (current["delay_sum"] / current["delay_count"]) if current["delay_count"] else None
    busy = per_second.get("correlator_busy") if per_second else None
    return view.card(
        "Correlator lag",
        duration(lag) if lag is not None else "—",
        f"mean, durable → stitched · {count(current['correlator_pending'])} events waiting"
        + (f" · busy {busy:.0%}" if busy is not None else ""),
        "warn" if busy is not None and busy >= BUSY_WARN else "",
        "dh-kpi-lag",
        tooltip="busy: the share of the time since the last refresh the correlator spent"
        " correlating and writing (stitchboard_correlator_busy_seconds_total); near 100 %"
        " it only just keeps up",
    )


def disk_card(disks: list[DiskSpace], min_free_percent: float) -> Any:
    """The disk with the least free space: bad below the health warning's threshold,
    warn below twice it."""
    if not disks:
        return view.card("Free disk", "—", "disks not readable", "warn", "dh-kpi-disk")
    lowest = min(disks, key=lambda d: d.free_percent)
    tone = "good"
    if lowest.low(min_free_percent):
        tone = "bad"
    elif lowest.low(2 * min_free_percent):
        tone = "warn"
    return view.card(
        "Free disk",
        f"{lowest.free_percent:.1f} %",
        f"{size(lowest.free_bytes)} of {size(lowest.total_bytes)} on {lowest.name}",
        tone,
        "dh-kpi-disk",
        tooltip=" · ".join(
            f"{d.name} {d.path}: {size(d.free_bytes)} free ({d.free_percent:.1f} %)" for d in disks
        )
        + f" · warns below {min_free_percent:g} % (STITCHBOARD_DISK_MIN_FREE_PERCENT)",
    )


def rates(previous: dict[str, float] | None, current: dict[str, float]) -> dict[str, float]:
    """Per-second rates of the counters between two refreshes (``t`` = seconds);
    ``correlator_busy`` is the share of that time the correlator spent working."""
    if not previous or current["t"] <= previous["t"]:
        return {}
    span = current["t"] - previous["t"]
    out = {
        k: max(0.0, (current[k] - previous[k]) / span)
        for k in ("accepted", "rejected", "correlated")
    }
    if "correlator_busy" in previous:  # a sample from before the counter: no share yet
        busy = current["correlator_busy"] - previous["correlator_busy"]
        out["correlator_busy"] = min(1.0, max(0.0, busy / span))
    return out


def _feeds_table(rows: list[FeedRow], ctx: Console) -> Any:
    if not rows:
        return html.P("No events received in the last 7 days.", className="muted")
    config = ctx.runtime.config
    body = []
    for r in rows:
        zone = view.facility_zone(config, r.feed.facility)
        state = (
            html.Span(f"idle {duration(r.idle_seconds)}", className="badge idle")
            if r.idle
            else html.Span("receiving", className="badge ok")
        )
        body.append(
            html.Tr(
                [
                    html.Td(r.feed.system),
                    html.Td(r.feed.facility or "—"),
                    html.Td(local_time(r.feed.last_ns, zone)),
                    html.Td(count(r.feed.last_hour), className="num"),
                    html.Td(
                        dcc.Graph(
                            figure=figures.sparkline(r.feed.per_minute, r.idle),
                            config={"staticPlot": True, "displayModeBar": False},
                        )
                    ),
                    html.Td(state),
                ]
            )
        )
    head = [
        "system",
        "facility",
        "last received (facility time)",
        "last hour",
        "events per minute, last hour",
        "state",
    ]
    return html.Table(
        [html.Thead(html.Tr([html.Th(h) for h in head])), html.Tbody(body)],
        className="simple",
        id="dh-feeds-table",
    )


def _reasons_table(rows: list[dict[str, Any]]) -> Any:
    if not rows:
        return html.P("No dead letters waiting.", className="muted")
    body = [
        html.Tr(
            [
                html.Td(r["reason"]),
                html.Td(count(r["count"]), className="num"),
                html.Td(local_time(r["last_ns"], "UTC")),
                html.Td(", ".join(r["sources"])),
                html.Td(
                    html.Button(
                        "Replay",
                        id={"type": "dh-replay", "reason": r["reason"]},
                        className="button secondary",
                    )
                ),
            ]
        )
        for r in rows
    ]
    head = ["reason", "count", "latest (UTC)", "sources", ""]
    return html.Table(
        [html.Thead(html.Tr([html.Th(h) for h in head])), html.Tbody(body)], className="simple"
    )


def layout(**_: Any) -> Any:
    return html.Div(
        [
            view.page_header(
                PAGE,
                "Data health",
                "Is every feed sending? A feed silent longer than the idle-feed alert's"
                " idle_after (slas.yaml) is marked idle: silence is never 100% on time.",
            ),
            html.Div(id="dh-kpis", className="kpis"),
            html.Div(
                [html.H2("Feeds (system × facility)"), html.Div(id="dh-feeds")], className="panel"
            ),
            html.Div(
                [
                    html.H2("Dead letters by reason"),
                    html.P(
                        "Replay re-reads them under slas.yaml as it is on disk now.",
                        className="muted",
                    ),
                    html.Div(id="dh-replay-result", className="message"),
                    html.Div(id="dh-reasons"),
                ],
                className="panel",
            ),
            dcc.Store(id="dh-last-metrics"),
        ]
    )


@callback(
    Output("dh-feeds", "children"),
    Output("dh-reasons", "children"),
    Output("dh-kpis", "children"),
    Output("dh-last-metrics", "data"),
    Output("dh-updated", "children"),
    Input("dh-tick", "n_intervals"),
    Input("dh-replay-result", "children"),
    State("dh-last-metrics", "data"),
)
def _refresh(_: int | None, __: Any, previous: dict[str, float] | None) -> tuple:
    ctx = console()
    now = ctx.now()
    feeds = feed_rows(ctx, now)
    current = {**metric_totals(ctx.runtime.metrics.registry), "t": now / NS}
    per_second = rates(previous, current)
    idle = sum(1 for f in feeds if f.idle)
    rate_note = "since the last refresh" if per_second else "rate after the next refresh"
    kpis = [
        view.card(
            "Feeds",
            count(len(feeds)),
            f"{count(idle)} idle",
            "bad" if idle else "good",
            "dh-kpi-feeds",
        ),
        view.card(
            "Ingest rate",
            f"{per_second['accepted']:,.1f}/s" if per_second else "—",
            f"{count(current['accepted'])} records stored since start · {rate_note}",
            card_id="dh-kpi-ingest",
        ),
        view.card(
            "Rejected",
            count(current["rejected"]),
            "records dead-lettered since start",
            "warn" if current["rejected"] else "",
            "dh-kpi-rejected",
        ),
        lag_card(current, per_second),
        view.card(
            "Ingest buffer",
            count(current["queue_rows"]),
            "rows not yet durable",
            card_id="dh-kpi-queue",
        ),
        disk_card(ctx.runtime.disks(), ctx.runtime.settings.disk_min_free_percent),
    ]
    reasons = queries.dead_letter_reasons(ctx.runtime.store)
    return (
        _feeds_table(feeds, ctx),
        _reasons_table(reasons),
        kpis,
        current,
        view.updated_at(now, "UTC"),
    )


@callback(
    Output("dh-replay-result", "children"),
    Input({"type": "dh-replay", "reason": ALL}, "n_clicks"),
    prevent_initial_call=True,
)
def _replay(clicks: list[int | None]) -> Any:
    trigger = dash.ctx.triggered_id
    if not trigger or not any(clicks):
        return no_update
    ctx = console()
    report = replay_reason(ctx, trigger["reason"])
    return (
        f"Replayed {report['replayed']} of {report['considered']} ({report['events']}"
        f" events stored); {report['still_rejected']} still rejected."
    )


def replay_reason(ctx: Console, reason: str) -> dict[str, Any]:
    """Replay the waiting dead letters with this reason (the collector's replay)."""
    from collector import DeadLetterFilter, reload_config, replay_dead_letters

    runtime = reload_config(ctx.runtime)
    flt = DeadLetterFilter(reason=reason)
    return replay_dead_letters(runtime, flt, ctx.runtime.writer.write_sync).as_dict()


def register() -> None:
    """Add this page to the Dash app (called by ``dashboards.app.build_dash``)."""
    dash.register_page(__name__, path="/data-health", name="Data health", order=6, layout=layout)
