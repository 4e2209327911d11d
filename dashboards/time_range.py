"""A page's time range: a preset ending now (``range=7d``), or custom dates
(``from=2026-03-01&to=2026-03-07``) in the URL.

Custom dates are whole days in one time zone: the facility's when the page is
filtered to one facility, else UTC. ``to`` is the last day shown (inclusive), so
``from=2026-03-09&to=2026-03-09`` is that one day. Either may also name a minute
(``2026-03-09T08:30``, same zone); ``to`` is then exclusive. A range that cannot be
read (a bad date, ``to`` before ``from``, longer than ``MAX_DAYS``) falls back to
the default preset and says why (``TimeRange.problem``): a bad link still shows a page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
CUSTOM = "custom"
MAX_DAYS = 400
# A preset's window reaches a minute past now: a hop stamped by a clock slightly ahead.
_AHEAD_NS = 60 * NS


@dataclass(frozen=True)
class TimeRange:
    preset: str  # a RANGES key, or CUSTOM
    start: str | None = None  # custom: as written in the URL
    end: str | None = None
    zone: str = "UTC"  # where custom dates are read
    since_ns: int = 0  # custom: [since, until)
    until_ns: int = 0
    problem: str | None = None  # why a custom range in the URL was not used

    @property
    def custom(self) -> bool:
        return self.preset == CUSTOM

    def window(self, now: int) -> tuple[int, int]:
        """[since, until) in ns."""
        if self.custom:
            return self.since_ns, self.until_ns
        seconds = RANGES.get(self.preset, RANGES[DEFAULT_RANGE])
        return now - seconds * NS, now + _AHEAD_NS

    def seconds(self, now: int) -> int:
        since, until = self.window(now)
        return max(1, (min(until, now + _AHEAD_NS) - since) // NS)

    @property
    def key(self) -> str:
        """Names the range for a cache: a preset, or the custom window."""
        return f"{self.since_ns}-{self.until_ns}" if self.custom else self.preset

    def query(self) -> dict[str, str | None]:
        """Its URL query values."""
        if self.custom:
            return {"from": self.start, "to": self.end}
        return {"range": self.preset}

    def spec(self) -> dict[str, str | None]:
        """What a page keeps in the browser to read the range again in its callbacks."""
        return {"range": self.preset, "from": self.start, "to": self.end}

    def describe(self, now: int) -> str:
        if not self.custom:
            return RANGE_LABELS.get(self.preset, self.preset)
        return f"{self.start} to {self.end} ({self.zone})"


def bucket_seconds(seconds: int) -> int:
    """Trend resolution for a range this long: about 24-90 points."""
    for size in (300, 3600, 6 * 3600, 86_400):
        if seconds / size <= 90:
            return size
    return 86_400 if seconds / 86_400 <= 90 else 7 * 86_400


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _instant(text: str, zone: ZoneInfo, last_day: bool) -> int:
    """A date (the start of the day; of the next day for the last day) or a minute."""
    text = text.strip()
    if "T" in text or " " in text:
        moment = dt.datetime.fromisoformat(text.replace(" ", "T"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone)
    else:
        day = dt.date.fromisoformat(text)
        if last_day:
            day += dt.timedelta(days=1)
        moment = dt.datetime(day.year, day.month, day.day, tzinfo=zone)
    return int(moment.timestamp()) * NS + moment.microsecond * 1000


def custom_range(start: str, end: str, zone: str) -> TimeRange:
    """Custom dates, or the default preset with the reason they could not be used."""
    where = _zone(zone)
    try:
        since = _instant(start, where, last_day=False)
        until = _instant(end, where, last_day=True)
    except ValueError:
        return TimeRange(
            DEFAULT_RANGE, zone=zone, problem=f"from={start!r}, to={end!r}: use YYYY-MM-DD dates"
        )
    if until <= since:
        return TimeRange(DEFAULT_RANGE, zone=zone, problem=f"to={end!r} is before from={start!r}")
    if until - since > MAX_DAYS * 86_400 * NS:
        return TimeRange(DEFAULT_RANGE, zone=zone, problem=f"longer than {MAX_DAYS} days")
    return TimeRange(CUSTOM, start.strip(), end.strip(), zone, since, until)


def from_args(args: Mapping[str, Any], zone: str = "UTC") -> TimeRange:
    """The range of a page's URL values (``range``, or ``from`` and ``to``)."""
    start, end = args.get("from"), args.get("to")
    if isinstance(start, str) and isinstance(end, str) and start.strip() and end.strip():
        return custom_range(start, end, zone)
    preset = args.get("range")
    if isinstance(preset, str) and preset in RANGES:
        return TimeRange(preset, zone=zone)
    return TimeRange(DEFAULT_RANGE, zone=zone)


def chosen(preset: str | None, start: str | None, end: str | None, changed_dates: bool) -> dict:
    """The URL values after a change of the range controls (a preset dropdown and a
    date picker): picking dates makes the range custom; picking a preset drops the
    dates. ``{}`` when nothing is to change yet (custom chosen, dates not both set)."""
    if (changed_dates or preset == CUSTOM) and start and end:
        return {"from": start[:10], "to": end[:10]}
    if preset and preset != CUSTOM and not changed_dates:
        return {"range": preset}
    return {}
