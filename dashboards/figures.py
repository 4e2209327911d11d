"""Plotly figures of the console: plain data in, ``go.Figure`` out (no Dash, no store).

Colours are the Okabe–Ito palette, which stays readable with the common forms of
colour blindness; compliance is coloured against its objective on a diverging
vermillion → grey → blue scale (below objective warm, at or above cool), and the
number is always written in the cell, so colour is never the only cue.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from dashboards.formatting import count, duration, money_short, percent
from dashboards.queries import AgingBucket, FunnelStep, Latency, TrendPoint

BLUE, ORANGE, VERMILLION = "#0072B2", "#E69F00", "#D55E00"
SKY, GREEN, PURPLE, GREY = "#56B4E9", "#009E73", "#CC79A7", "#999999"
PALETTE = (BLUE, ORANGE, GREEN, PURPLE, SKY, VERMILLION, "#F0E442", GREY)
# Below objective → vermillion, at objective → pale grey, above → blue.
COMPLIANCE_SCALE = [[0.0, VERMILLION], [0.45, "#F4C7A9"], [0.5, "#EEEEEE"], [1.0, BLUE]]


def _base(fig: go.Figure, title: str = "", height: int = 320) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0, "font": {"size": 15}},
        height=height,
        margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10},
        paper_bgcolor="white",
        plot_bgcolor="white",
        font={"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 12},
        colorway=list(PALETTE),
    )
    fig.update_xaxes(automargin=True, gridcolor="#eeeeee")
    fig.update_yaxes(automargin=True, gridcolor="#eeeeee")
    return fig


def empty(message: str, height: int = 240) -> go.Figure:
    fig = _base(go.Figure(), height=height)
    fig.add_annotation(text=message, showarrow=False, font={"size": 14, "color": "#555"})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


@dataclass(frozen=True)
class HeatCell:
    """One facility × workflow cell: the SLO judged there and its compliance."""

    facility: str
    workflow: str
    slo: str
    compliance: float | None  # None = nothing judged (no data)
    objective: float
    judged: int
    step: str | None = None  # the step the SLO judges; None = end to end


def compliance_heatmap(
    facilities: Sequence[tuple[str, str]], workflows: Sequence[str], cells: Sequence[HeatCell]
) -> go.Figure:
    """Facility (rows) × workflow (columns): SLO compliance, coloured against its objective.

    ``facilities`` are (id, label). The colour value is the distance to the objective,
    clipped to ±10 points, so 99.5% against a 99% objective is blue and 97% is warm;
    cells with nothing judged say "no data" and stay blank.
    """
    found = {(c.facility, c.workflow): c for c in cells}
    z: list[list[float | None]] = []
    text: list[list[str]] = []
    custom: list[list[list[str]]] = []
    for fid, _ in facilities:
        zrow: list[float | None] = []
        trow: list[str] = []
        crow: list[list[str]] = []
        for wf in workflows:
            cell = found.get((fid, wf))
            rate = cell.compliance if cell else None
            if cell is None or rate is None:
                zrow.append(None)
                trow.append("no data")
            else:
                zrow.append(max(-0.1, min(0.1, rate - cell.objective)))
                trow.append(f"{percent(rate)}<br>{count(cell.judged)} judged")
            crow.append(
                [fid, wf, percent(cell.objective) if cell else "—", cell.slo if cell else "no SLO"]
            )
        z.append(zrow)
        text.append(trow)
        custom.append(crow)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[_column(w, cells) for w in workflows],
            y=[label for _, label in facilities],
            text=text,
            texttemplate="%{text}",
            customdata=custom,
            hovertemplate="%{y} · %{x}<br>%{text}<br>SLO %{customdata[3]},"
            " objective %{customdata[2]}<br>click for the workflow<extra></extra>",
            colorscale=COMPLIANCE_SCALE,
            zmin=-0.1,
            zmax=0.1,
            zmid=0,
            xgap=3,
            ygap=3,
            colorbar={
                "title": {"text": "vs objective"},
                "tickvals": [-0.1, 0, 0.1],
                "ticktext": ["−10 pts", "at objective", "+10 pts"],
            },
        )
    )
    fig.update_yaxes(autorange="reversed")
    return _base(fig, height=140 + 70 * max(1, len(facilities)))


def _column(workflow: str, cells: Sequence[HeatCell]) -> str:
    """A column's label: the workflow, and the step when its SLO judges one step."""
    step = next((c.step for c in cells if c.workflow == workflow and c.step), None)
    name = workflow.replace("_", " ")
    return f"{name}<br>({step.replace('_', ' ')} step)" if step else name


@dataclass(frozen=True)
class TrendSeries:
    """One workflow's line: the SLO the overview judges it by, per time bucket."""

    workflow: str
    slo: str
    step: str | None  # the step the SLO judges; None = end to end
    objective: float
    points: Sequence[TrendPoint]


TREND_TITLE = "SLO compliance per workflow, by when each transaction was judged"
TREND_NOTE = (
    "Each point: of the transactions judged in that period (when they completed, or when a"
    " deadline<br>passed with the step still open), the share that met the SLO."
    " No point: nothing was judged then (no data, not 0 %)."
)


def trend(series: Sequence[TrendSeries]) -> go.Figure:
    """Compliance per workflow over time (gaps where nothing was judged), objectives dotted."""
    if not any(p.judged for s in series for p in s.points):
        return empty("No transactions judged in this range")
    fig = go.Figure()
    for index, line in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        name = line.workflow.replace("_", " ")
        if line.step:
            name += f" ({line.step.replace('_', ' ')})"
        rates = [p.compliance for p in line.points]
        fig.add_trace(
            go.Scatter(
                x=[_utc(p.bucket_s) for p in line.points],
                y=[r * 100 if r is not None else None for r in rates],
                customdata=[[count(p.good), count(p.judged)] for p in line.points],
                name=name,
                mode="lines+markers",
                line={"color": colour},
                connectgaps=False,
                hovertemplate="%{x}<br>%{y:.1f}% met the SLO: %{customdata[0]} of"
                " %{customdata[1]} judged<extra>" + line.slo + "</extra>",
            )
        )
        fig.add_hline(y=line.objective * 100, line={"dash": "dot", "color": colour})
    fig.update_yaxes(title="% met the SLO", ticksuffix="%", rangemode="tozero")
    fig.update_xaxes(title="UTC")
    fig.add_annotation(
        text=TREND_NOTE,
        xref="paper",
        yref="paper",
        x=0,
        y=1.0,
        yanchor="bottom",
        showarrow=False,
        align="left",
        font={"size": 11, "color": "#555"},
    )
    fig = _base(fig, TREND_TITLE, height=360)
    fig.update_layout(margin={"t": 84})
    return fig


def funnel(steps: Sequence[FunnelStep]) -> go.Figure:
    if not steps or not steps[0].reached:
        return empty("No transactions in this range")
    names = [s.step.replace("_", " ") for s in steps]
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            y=names,
            x=[s.reached for s in steps],
            orientation="h",
            name="reached",
            marker_color=BLUE,
            text=[count(s.reached) for s in steps],
            textposition="outside",
            textangle=0,
            cliponaxis=False,
        )
    )
    fig.add_trace(
        go.Bar(
            y=names,
            x=[s.stopped_here for s in steps],
            orientation="h",
            name="open, stopped here",
            marker_color=ORANGE,
            text=[count(s.stopped_here) if s.stopped_here else "" for s in steps],
            textposition="outside",
            textangle=0,
            cliponaxis=False,
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(barmode="group", legend={"orientation": "h", "y": -0.15})
    return _base(fig, "Step funnel: how many reached each step, where open ones stand")


def latency(result: Latency, warn: float | None, breach: float | None) -> go.Figure:
    """Histogram of a step's durations with p50/p90/p99 and the warn/breach limits."""
    if not result.count:
        return empty(f"No {result.step.replace('_', ' ')} step in this range")
    hours = _unit(max(result.p99 or 0, breach or 0, warn or 0))
    scale, unit = hours
    width = result.bin_seconds
    fig = go.Figure(
        go.Bar(
            x=[start / scale for start, _ in result.histogram],
            y=[n for _, n in result.histogram],
            width=[width / scale] * len(result.histogram),
            offset=0,
            marker_color=SKY,
            hovertemplate="%{x:.1f} " + unit + ": %{y} transactions<extra></extra>",
            name="transactions",
        )
    )
    quantiles = (
        ("p50", result.p50, "dot"),
        ("p90", result.p90, "dash"),
        ("p99", result.p99, "longdash"),
    )
    for _, seconds, dash in quantiles:
        if seconds is not None:
            fig.add_vline(x=seconds / scale, line={"color": GREY, "dash": dash, "width": 2})
    for label, seconds, colour in (("warn", warn, ORANGE), ("breach", breach, VERMILLION)):
        if seconds is not None:
            fig.add_vline(
                x=seconds / scale,
                line={"color": colour, "width": 2},
                annotation_text=f"{label} {duration(seconds)}",
                annotation_position="top right",
                annotation_font={"color": colour},
            )
    summary = " · ".join(f"{name} {duration(s)}" for name, s, _ in quantiles)
    fig.update_xaxes(title=f"{unit} from the step's clock start")
    fig.update_yaxes(title="transactions")
    title = f"{result.step.replace('_', ' ')}: {count(result.count)} transactions"
    return _base(fig, f"{title}<br><sup>{summary} (grey lines)</sup>", height=340)


def aging(buckets: Sequence[AgingBucket]) -> go.Figure:
    if not any(b.count for b in buckets):
        return empty("No open transactions")
    fig = go.Figure(
        go.Bar(
            x=[b.label for b in buckets],
            y=[b.count for b in buckets],
            text=[
                f"{count(b.count)} · {money_short(b.amount)}" if b.count else "" for b in buckets
            ],
            textposition="outside",
            textangle=0,
            cliponaxis=False,
            marker_color=[BLUE, SKY, "#F0E442", ORANGE, VERMILLION, PURPLE][: len(buckets)],
            hovertemplate="%{x}: %{y} open<extra></extra>",
        )
    )
    fig.update_yaxes(title="open transactions")
    return _base(fig, "Open transactions by age (count and $)")


def flags(counts: Mapping[str, int]) -> go.Figure:
    if not counts:
        return empty("No conformance flags in this range")
    names = list(counts)
    fig = go.Figure(
        go.Bar(
            x=[counts[n] for n in names],
            y=[n.replace("_", " ") for n in names],
            orientation="h",
            marker_color=PURPLE,
            text=[count(counts[n]) for n in names],
            textposition="auto",
        )
    )
    fig.update_yaxes(autorange="reversed")
    return _base(fig, "Conformance flags", height=260)


def sparkline(per_minute: Sequence[int], idle: bool) -> go.Figure:
    fig = go.Figure(
        go.Scatter(
            y=list(per_minute),
            mode="lines",
            line={"color": VERMILLION if idle else BLUE, "width": 1.5},
            fill="tozeroy",
            hoverinfo="skip",
        )
    )
    fig.update_layout(
        height=36,
        width=180,
        margin={"l": 0, "r": 0, "t": 0, "b": 0},
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        showlegend=False,
    )
    fig.update_xaxes(visible=False, fixedrange=True)
    fig.update_yaxes(visible=False, fixedrange=True, rangemode="tozero")
    return fig


# Labels on the timeline: a character's width and the plot's narrowest width (px), to
# tell which labels would overlap when drawn side by side.
_CHAR_PX, _PLOT_PX = 6.2, 900
_LABEL_ROW_PX = 14


def _minutes(local: str) -> float:
    """A plotted local time (``2026-03-09 09:00``) as minutes on a common scale."""
    moment = dt.datetime.strptime(local[:16], "%Y-%m-%d %H:%M")
    return moment.replace(tzinfo=dt.UTC).timestamp() / 60


def label_rows(marks: Sequence[tuple[str, str]], span: tuple[str, str]) -> list[int]:
    """Per mark (local time, label text), the row its label goes on (0 = nearest the
    plot) so that no two labels on a row overlap: each label runs right of its time, as
    wide as its text on the narrowest plot whose x axis spans ``span``."""
    start, end = (_minutes(t) for t in span)
    per_px = max(end - start, 1.0) / _PLOT_PX
    ends: list[float] = []  # per row: where its last label ends (minutes)
    rows = [0] * len(marks)
    order = sorted(range(len(marks)), key=lambda i: _minutes(marks[i][0]))
    for i in order:
        at = _minutes(marks[i][0])
        row = next((r for r, e in enumerate(ends) if e <= at), len(ends))
        if row == len(ends):
            ends.append(0.0)
        ends[row] = at + (len(marks[i][1]) + 2) * _CHAR_PX * per_px
        rows[i] = row
    return rows


def timeline(
    hops: Sequence[Mapping[str, Any]],
    steps: Sequence[Mapping[str, Any]],
    zone: str,
) -> go.Figure:
    """One lane per system, a marker per hop; each step's warn/breach deadline drawn;
    hops of a step that missed a deadline, and failed hops, marked in vermillion."""
    if not hops:
        return empty("No hops")
    late_steps = {s["name"]: s["missed"] for s in steps if s.get("missed")}
    systems = list(dict.fromkeys(h["system"] for h in hops))
    fig = go.Figure()
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for hop in hops:
        kind = (
            "failed"
            if hop["status"] == "error"
            else ("late step" if hop["step"] in late_steps else "on time")
        )
        groups.setdefault(kind, []).append(hop)
    style = {
        "on time": (BLUE, "circle"),
        "late step": (VERMILLION, "diamond"),
        "failed": (VERMILLION, "x"),
    }
    deadlines = [
        (when, f"{step['name'].replace('_', ' ')} {level}", level)
        for step in steps
        for level in ("warn", "breach")
        if (when := step.get(f"{level}_local"))
    ]
    times = [h["local"] for h in hops] + [d[0] for d in deadlines]
    span = (min(times), max(times))
    # Hop labels of one lane that would overlap go above and below their markers.
    above: dict[int, bool] = {}
    for system in systems:
        lane = [(i, h) for i, h in enumerate(hops) if h["system"] == system]
        marks = [(h["local"], (h["step"] or "—").replace("_", " ")) for _, h in lane]
        for (i, _), row in zip(lane, label_rows(marks, span), strict=True):
            above[i] = row % 2 == 0
    index = {id(h): i for i, h in enumerate(hops)}
    for kind, items in groups.items():
        colour, symbol = style[kind]
        fig.add_trace(
            go.Scatter(
                x=[h["local"] for h in items],
                y=[h["system"] for h in items],
                mode="markers+text",
                text=[(h["step"] or "—").replace("_", " ") for h in items],
                textposition=[
                    "top center" if above[index[id(h)]] else "bottom center" for h in items
                ],
                marker={
                    "color": colour,
                    "symbol": symbol,
                    "size": 13,
                    "line": {"width": 1, "color": "white"},
                },
                name=kind,
                customdata=[[h["operation"], h["status"]] for h in items],
                hovertemplate="%{y} · %{customdata[0]}<br>%{x}<br>%{text} · %{customdata[1]}"
                "<extra></extra>",
            )
        )
    # Deadline labels read left to right above the plot, in rows where they would meet.
    rows = label_rows([(when, text) for when, text, _ in deadlines], span)
    colours = {"warn": (ORANGE, "dash"), "breach": (VERMILLION, "solid")}
    for (when, text, level), row in zip(deadlines, rows, strict=True):
        colour, dash = colours[level]
        fig.add_shape(
            type="line",
            x0=when,
            x1=when,
            y0=0,
            y1=1,
            yref="paper",
            line={"color": colour, "dash": dash, "width": 1},
        )
        fig.add_annotation(
            x=when,
            y=1,
            yref="paper",
            showarrow=False,
            yanchor="bottom",
            xanchor="left",
            yshift=2 + _LABEL_ROW_PX * row,
            text=text,
            font={"size": 10, "color": colour},
        )
    fig.update_yaxes(categoryorder="array", categoryarray=systems[::-1], title="system")
    fig.update_xaxes(title=f"time ({zone})")
    fig.update_layout(legend={"orientation": "h", "y": -0.25})
    fig = _base(fig, height=300 + 45 * len(systems))
    # Room above the plot for the rows of deadline labels, right of it for the last one.
    fig.update_layout(margin={"t": 30 + _LABEL_ROW_PX * (max(rows, default=0) + 1), "r": 140})
    return fig


def _unit(seconds: float) -> tuple[float, str]:
    if seconds >= 2 * 86400:
        return 86400.0, "days"
    if seconds >= 2 * 3600:
        return 3600.0, "hours"
    if seconds >= 120:
        return 60.0, "minutes"
    return 1.0, "seconds"


def _utc(epoch_s: int) -> str:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).strftime("%Y-%m-%d %H:%M")
