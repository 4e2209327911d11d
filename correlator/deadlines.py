"""Deadline arithmetic in a facility's time zone and business calendar (pure)."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo

from stitchboard.config.model import Calendar, Facility
from stitchboard.config.workflows import Duration

_NS = 1_000_000_000
_DAY = dt.timedelta(days=1)


class FacilityClock:
    """Adds durations to instants for one facility.

    ``N`` business days after an instant is the end (local midnight) of the Nth
    business day after the instant's local date: "next business day" = ``1bd``.
    Weekends and holidays come from the facility's calendar.
    """

    def __init__(self, zone: ZoneInfo, calendar: Calendar):
        self.zone = zone
        self.calendar = calendar
        self._weekend = frozenset(calendar.weekend)
        self._holidays = frozenset(calendar.holidays)
        self._end_of_business_days = lru_cache(maxsize=8192)(self._compute_end)

    @classmethod
    def for_facility(cls, facility: Facility | None) -> FacilityClock:
        if facility is None:
            return cls(ZoneInfo("UTC"), Calendar())
        return cls(facility.zone, facility.calendar)

    def add(self, instant_ns: int, duration: Duration) -> int:
        if duration.business_days:
            local = dt.datetime.fromtimestamp(instant_ns / _NS, self.zone).date()
            return self._end_of_business_days(local, duration.business_days)
        return instant_ns + duration.nanos

    def is_business_day(self, day: dt.date) -> bool:
        return _WEEKDAYS[day.weekday()] not in self._weekend and day not in self._holidays

    def _compute_end(self, day: dt.date, count: int) -> int:
        found = 0
        while found < count:
            day += _DAY
            if self.is_business_day(day):
                found += 1
        end = dt.datetime.combine(day + _DAY, dt.time(0), tzinfo=self.zone)
        return int(end.timestamp()) * _NS


_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def clocks_for(facilities: list[Facility]) -> dict[str, FacilityClock]:
    """One clock per canonical facility id; unknown facilities get UTC and a Mon–Fri week."""
    return {f.id: FacilityClock.for_facility(f) for f in facilities}
