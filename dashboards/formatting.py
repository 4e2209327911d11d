"""How the console writes numbers, money, durations and times for people.

Amounts as US dollars with grouped thousands, durations in the two largest
human units ("3 d 4 h"), counts grouped, times in a facility's time zone with
the zone's abbreviation so nobody has to guess which clock a time is on.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

NS = 1_000_000_000
_UNITS = (("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1))


def money(amount: Decimal | float | int | str | None) -> str:
    """``$1,234,567.89``; ``-$12.00``; an empty or unreadable amount is an em dash."""
    if amount is None or amount == "":
        return "—"
    try:
        value = Decimal(str(amount)).quantize(Decimal("0.01"))
    except InvalidOperation:
        return "—"
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}"


def money_short(amount: Decimal | float | int | None) -> str:
    """KPI-card money: ``$1.2M``, ``$48.3K``; below $1,000 exact: ``$950.50``."""
    if amount is None:
        return "—"
    value = float(amount)
    if abs(value) < 1000:
        return money(amount)
    sign = "-" if value < 0 else ""
    value = abs(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if value >= limit:
            return f"{sign}${value / limit:,.1f}{suffix}"
    return money(amount)


def count(value: int | float | None) -> str:
    """``12,345``."""
    if value is None:
        return "—"
    return f"{int(value):,}"


def size(n_bytes: int | float | None) -> str:
    """Bytes in binary units: 1,536 → "1.5 KiB", 80 GiB → "80.0 GiB"."""
    if n_bytes is None:
        return "—"
    value = float(n_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} TiB"


def percent(fraction: float | None, digits: int = 1) -> str:
    """``98.5%`` from 0.985; no data is an em dash, never 0% or 100%."""
    if fraction is None:
        return "—"
    return f"{fraction * 100:.{digits}f}%"


def duration(seconds: float | None) -> str:
    """``3 d 4 h``, ``2 h 5 min``, ``45 s``, ``300 ms``: two largest units, rounded down."""
    if seconds is None:
        return "—"
    sign = "-" if seconds < 0 else ""
    left = abs(seconds)
    if left < 1:
        return f"{sign}{left * 1000:.0f} ms"
    whole = int(left)
    parts: list[str] = []
    for unit, size in _UNITS:
        amount, whole = divmod(whole, size)
        if amount or parts:
            parts.append(f"{amount} {unit}")
        if len(parts) == 2:
            break
    if len(parts) == 2 and parts[1].startswith("0 "):
        parts.pop()
    return sign + " ".join(parts)


def zone_of(timezone: str | None) -> ZoneInfo:
    return ZoneInfo(timezone or "UTC")


def local_time(ns: int | None, timezone: str | None, with_zone: bool = True) -> str:
    """``2026-03-09 09:00 CDT`` in the named zone (UTC when none)."""
    if not ns:
        return "—"
    moment = dt.datetime.fromtimestamp(ns / NS, dt.UTC).astimezone(zone_of(timezone))
    text = moment.strftime("%Y-%m-%d %H:%M")
    return f"{text} {moment.tzname()}" if with_zone else text


def iso_to_ns(text: str | None) -> int | None:
    """An ISO 8601 instant from the API (``...Z``) as ns since the epoch."""
    if not text:
        return None
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp()) * NS + moment.microsecond * 1000
