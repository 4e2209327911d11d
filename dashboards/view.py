"""Shared pieces of every page: time ranges, URL query strings, filter controls, cards.

A page's filters live in its URL query string (``?workflow=...&facility=...&range=7d``),
so a link reproduces the view; only values that differ from the defaults are written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from dash import dcc, html

from dashboards.formatting import local_time
from stitchboard.config.model import SlasConfig

NS = 1_000_000_000
RANGES: dict[str, int] = {
    "1h": 3600,
    "24h": 86_400,
    "7d": 7 * 86_400,
    "30d": 30 * 86_400,
    "90d": 90 * 86_400,
}
RANGE_LABELS = {
    "1h": "Last hour",
    "24h": "Last 24 hours",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "90d": "Last 90 days",
}
DEFAULT_RANGE = "7d"
REFRESH_MS = 30_000


def window(range_key: str | None, now: int) -> tuple[int, int]:
    """[since, until) in ns for a range preset (an unknown preset means the default)."""
    seconds = RANGES.get(range_key or DEFAULT_RANGE, RANGES[DEFAULT_RANGE])
    return now - seconds * NS, now + 60 * NS


def bucket_seconds(range_key: str | None) -> int:
    """Trend resolution: about 24-90 points per range."""
    seconds = RANGES.get(range_key or DEFAULT_RANGE, RANGES[DEFAULT_RANGE])
    for size in (300, 3600, 6 * 3600, 86_400):
        if seconds / size <= 90:
            return size
    return 86_400


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


def range_options() -> list[dict[str, str]]:
    return [{"label": RANGE_LABELS[k], "value": k} for k in RANGES]


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


def card(title: str, value: str, note: str = "", tone: str = "", card_id: str = "") -> Any:
    return html.Div(
        [
            html.Div(title, className="kpi-title"),
            html.Div(value, className="kpi-value"),
            html.Div(note, className="kpi-note"),
        ],
        className=f"kpi {tone}".strip(),
        id=card_id or f"kpi-{title.lower().replace(' ', '-').replace('%', 'pct')}",
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
