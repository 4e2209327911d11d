"""Shared pieces of every page: time ranges, URL query strings, filter controls, cards.

A page's filters live in its URL query string (``?workflow=...&facility=...&range=7d``),
so a link reproduces the view; only values that differ from the defaults are written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from dash import dcc, html

from dashboards import time_range
from dashboards.formatting import local_time
from dashboards.time_range import CUSTOM, DEFAULT_RANGE, RANGE_LABELS, RANGES, TimeRange
from stitchboard.config.model import SlasConfig

NS = 1_000_000_000
REFRESH_MS = 30_000


def window(range_key: str | None, now: int) -> tuple[int, int]:
    """[since, until) in ns for a range preset (an unknown preset means the default)."""
    return TimeRange(range_key if range_key in RANGES else DEFAULT_RANGE).window(now)


def bucket_seconds(range_key: str | None) -> int:
    """Trend resolution of a preset: about 24-90 points per range."""
    return time_range.bucket_seconds(RANGES.get(range_key or DEFAULT_RANGE, RANGES[DEFAULT_RANGE]))


def query_string(values: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> str:
    """``?a=1&b=2`` of the values that are set and not their defaults ('' when none)."""
    defaults = defaults or {}
    kept = {k: v for k, v in values.items() if v not in (None, "", []) and defaults.get(k) != v}
    return "?" + urlencode(kept) if kept else ""


def one_of(value: Any, allowed: list[str]) -> str | None:
    """A URL value if it is one of the allowed ones, else None (a bad link shows everything)."""
    return value if isinstance(value, str) and value in allowed else None


def facility_zone(config: SlasConfig, facility: str | None) -> str:
    found = config.facility(facility) if facility else None
    return found.timezone if found else "UTC"


def zone_note(config: SlasConfig, facility: str | None) -> str:
    found = config.facility(facility) if facility else None
    if found:
        return f"Times in {found.name or found.id}'s time zone ({found.timezone})."
    return "Times in each facility's own time zone; totals and charts in UTC."


def workflow_options(config: SlasConfig) -> list[dict[str, str]]:
    return [{"label": w.name.replace("_", " "), "value": w.name} for w in config.workflows]


def facility_options(config: SlasConfig) -> list[dict[str, str]]:
    return [{"label": f"{f.name or f.id} ({f.id})", "value": f.id} for f in config.facilities]


def range_options(custom: bool = True) -> list[dict[str, str]]:
    options = [{"label": RANGE_LABELS[k], "value": k} for k in RANGES]
    if custom:
        options.append({"label": "Custom dates", "value": CUSTOM})
    return options


def range_controls(page: str, chosen: TimeRange, label: str = "Range") -> list[Any]:
    """A preset dropdown and a date picker (custom dates), and the range as the page
    read it from its URL (``{page}-range-spec``, for the callbacks)."""
    return [
        dropdown(page, "range", range_options(), chosen.preset, clearable=False, label=label),
        html.Div(
            [
                html.Label(f"Dates ({chosen.zone})", htmlFor=f"{page}-dates"),
                dcc.DatePickerRange(
                    id=f"{page}-dates",
                    start_date_id=f"{page}-dates-from",
                    end_date_id=f"{page}-dates-to",
                    start_date=chosen.start[:10] if chosen.start else None,
                    end_date=chosen.end[:10] if chosen.end else None,
                    display_format="YYYY-MM-DD",
                    minimum_nights=0,
                    clearable=True,
                    start_date_placeholder_text="from",
                    end_date_placeholder_text="to (inclusive)",
                ),
            ],
            className="filter dates",
        ),
        dcc.Store(id=f"{page}-range-spec", data=chosen.spec()),
    ]


def range_note(chosen: TimeRange) -> str:
    """Says which clock custom dates are in, or why the URL's dates were not used."""
    if chosen.problem:
        return f"Dates not used ({chosen.problem}): showing {RANGE_LABELS[chosen.preset].lower()}."
    if chosen.custom:
        return f"Dates are whole days in {chosen.zone}, the last one included."
    return ""


def range_from_spec(spec: Mapping[str, Any] | None, zone: str) -> TimeRange:
    """The range a page's callbacks use: what its URL said (``range_controls``)."""
    return time_range.from_args(spec or {}, zone)


def range_query(
    preset: str | None, start: str | None, end: str | None, trigger: Any, page: str
) -> dict[str, Any] | None:
    """The URL values for the range after a control changed (None: wait for both dates)."""
    values = time_range.chosen(preset, start, end, trigger == f"{page}-dates")
    return values or None


def dropdown(page: str, name: str, options: list[dict[str, str]], value: Any, **kw: Any) -> Any:
    return html.Div(
        [
            html.Label(kw.pop("label", name.title()), htmlFor=f"{page}-{name}"),
            dcc.Dropdown(id=f"{page}-{name}", options=options, value=value, **kw),
        ],
        className="filter",
    )


def updated_at(now: int, zone: str) -> str:
    return f"Updated {local_time(now, zone)} · refreshes every {REFRESH_MS // 1000} s"


def card(
    title: str, value: str, note: str = "", tone: str = "", card_id: str = "", tooltip: str = ""
) -> Any:
    """A KPI card; ``tooltip`` shows on hover (what the figure counts)."""
    return html.Div(
        [
            html.Div(title, className="kpi-title"),
            html.Div(value, className="kpi-value"),
            html.Div(note, className="kpi-note"),
        ],
        className=f"kpi {tone}".strip(),
        id=card_id or f"kpi-{title.lower().replace(' ', '-').replace('%', 'pct')}",
        title=tooltip or None,
    )


def page_header(page: str, title: str, subtitle: str) -> Any:
    return html.Div(
        [
            html.H1(title),
            html.P(subtitle, className="subtitle"),
            html.Div(id=f"{page}-updated", className="updated"),
            dcc.Interval(id=f"{page}-tick", interval=REFRESH_MS),
            dcc.Location(id=f"{page}-url", refresh="callback-nav"),
        ],
        className="page-header",
    )
