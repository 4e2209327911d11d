"""The simulated health system: facilities from slas.yaml, their systems, clocks and rhythms."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from simulator.records import HOUR, MINUTE, NS
from stitchboard.config.model import Calendar, Facility


@dataclass(frozen=True, slots=True)
class Site:
    """A facility as the simulator sees it: size, kind, clock offsets."""

    id: str
    name: str
    zone: ZoneInfo
    calendar: Calendar
    size: float  # relative volume: a large hospital 1.0
    inpatient: bool  # an ambulatory surgery center has day cases only
    code: str  # short alias used inside identifiers (NMC, LCH, ...)


def site_of(facility: Facility) -> Site:
    """Guess the kind of facility from its name; unknown names get a mid-size hospital."""
    name = facility.name.lower()
    if "surgery" in name or "ambulatory" in name or "asc" in name.split():
        size, inpatient = 0.3, False
    elif "community" in name:
        size, inpatient = 0.5, True
    else:
        size, inpatient = 1.0, True
    code = facility.aliases[0] if facility.aliases else facility.id[:3]
    return Site(facility.id, facility.name, facility.zone, facility.calendar, size, inpatient, code)


# Clocks a few minutes apart between systems (NTP drift on appliances, a VM that
# lost sync). Systems that hand messages to each other within seconds (ADT and
# the interface engine share a data center) stay close.
CLOCK_SKEW_NS: dict[str, int] = {
    "EHR_ADT": 0,
    "IFENGINE": 2 * NS,
    "PERIOP": -40 * NS,
    "LAB_LIS": 75 * NS,
    "RAD_RIS": -20 * NS,
    "PHARMACY": 15 * NS,
    "EHR_ORDERS": 0,
    "HIM_CODING": 3 * MINUTE,
    "PATACCT": -90 * NS,
    "CLEARINGHOUSE": 4 * MINUTE,
    "ERP_INV": 30 * NS,
    "ERP_PO": 30 * NS,
    "ERP_AP": 30 * NS,
    "ERP_AR": 30 * NS,
    "ERP_GL": 30 * NS,
    "WFM": -2 * MINUTE,
    "PAYROLL": 60 * NS,
    "BANK": 0,
}


def skewed(system: str, ns: int) -> int:
    return ns + CLOCK_SKEW_NS.get(system, 0)


def local(site: Site, ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ns / NS, tz=dt.UTC).astimezone(site.zone)


def to_ns(moment: dt.datetime) -> int:
    return int(moment.timestamp()) * NS + moment.microsecond * 1000


def hl7_time(site: Site, ns: int) -> str:
    """HL7 DTM in the facility's local time, with its UTC offset (never ambiguous at DST)."""
    return local(site, ns).strftime("%Y%m%d%H%M%S%z")


# Relative volume by local hour (0-23): clinical work peaks late morning,
# discharges early afternoon, back-office (ERP, payroll) keeps office hours.
_CLINICAL = (
    0.25,
    0.2,
    0.2,
    0.2,
    0.25,
    0.35,
    0.6,
    0.9,
    1.2,
    1.4,
    1.5,
    1.5,
    1.5,
    1.45,
    1.4,
    1.3,
    1.2,
    1.0,
    0.85,
    0.7,
    0.55,
    0.45,
    0.35,
    0.3,
)
_DISCHARGE = (
    0.1,
    0.05,
    0.05,
    0.05,
    0.05,
    0.1,
    0.2,
    0.4,
    0.8,
    1.3,
    1.8,
    2.2,
    2.4,
    2.4,
    2.2,
    1.9,
    1.5,
    1.1,
    0.8,
    0.5,
    0.35,
    0.25,
    0.15,
    0.1,
)
_OFFICE = (
    0.02,
    0.02,
    0.02,
    0.02,
    0.03,
    0.1,
    0.5,
    1.4,
    2.0,
    2.2,
    2.2,
    1.8,
    1.6,
    2.0,
    2.1,
    2.0,
    1.6,
    0.9,
    0.4,
    0.2,
    0.1,
    0.05,
    0.03,
    0.02,
)
CURVES = {"clinical": _CLINICAL, "discharge": _DISCHARGE, "office": _OFFICE}
WEEKEND = {"clinical": 0.7, "discharge": 0.55, "office": 0.08}


def volume(site: Site, curve: str, ns: int) -> float:
    """Relative volume at this moment (mean 1.0 over a weekday for the clinical curve)."""
    moment = local(site, ns)
    hourly = CURVES[curve]
    # Interpolate between hours so minute-level traffic has no steps at the hour.
    frac = moment.minute / 60
    level = hourly[moment.hour] * (1 - frac) + hourly[(moment.hour + 1) % 24] * frac
    if not site.calendar.is_business_day(moment.date()):
        level *= WEEKEND[curve]
    return level


def next_business_day(site: Site, ns: int, days: int = 1, hour: int = 6) -> int:
    """``days`` business days after the local date of ``ns``, at ``hour`` local time."""
    day = local(site, ns).date()
    left = days
    while left > 0:
        day += dt.timedelta(days=1)
        if site.calendar.is_business_day(day):
            left -= 1
    moment = dt.datetime.combine(day, dt.time(hour), tzinfo=site.zone)
    return to_ns(moment)


def hour_floor(ns: int) -> int:
    return ns - ns % HOUR


def lognormal_ns(rng, median_ns: float, sigma: float) -> int:
    """A long-tailed duration: most near the median, a few far out to the right."""
    return int(median_ns * math.exp(rng.gauss(0.0, sigma)))


def minutes(n: float) -> int:
    return int(n * MINUTE)


def business_hours(site: Site, ns: int, rng) -> int:
    """``ns`` if it falls in office hours (8-17 local on a business day), else a random
    moment in the morning of the next business day."""
    moment = local(site, ns)
    if site.calendar.is_business_day(moment.date()) and 8 <= moment.hour < 17:
        return ns
    days = 0 if moment.hour < 8 and site.calendar.is_business_day(moment.date()) else 1
    base = (
        next_business_day(site, ns, days, 8)
        if days
        else to_ns(dt.datetime.combine(moment.date(), dt.time(8), tzinfo=site.zone))
    )
    return base + int(rng.uniform(0, 4) * HOUR)
