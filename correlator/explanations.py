"""How a transaction's numbers read to a person (pure): missed deadlines, spans, money.

Every missed deadline gets one sentence saying which limit, counted from what,
and by how much it was missed: ``breach 72h after discharge at
2026-03-14T05:00Z, missed by 4h 12m``. Amounts are always a decimal string
with two places, whatever the source wrote.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from correlator.transaction import END_TO_END, Missed

_NS = 1_000_000_000
_CENT = Decimal("0.01")
_UNITS = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))


def money(amount: Decimal | int | str | None) -> str | None:
    """``12.5`` → ``"12.50"``; None stays None."""
    if amount is None:
        return None
    return str(Decimal(amount).quantize(_CENT))


def span_text(ns: int) -> str:
    """A length of time in its two largest units: ``4h 12m``, ``2d 3h``, ``45s``."""
    seconds = max(ns, 0) // _NS
    parts: list[str] = []
    for unit, size in _UNITS:
        count, seconds = divmod(seconds, size)
        if count or parts:
            parts.append(f"{count}{unit}")
    parts = [p for p in parts[:2] if not p.startswith("0")] or ["0s"]
    return " ".join(parts)


def instant_text(ns: int) -> str:
    """UTC, to the minute unless seconds matter: ``2026-03-14T05:00Z``."""
    moment = dt.datetime.fromtimestamp(ns // _NS, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ" if moment.second else "%Y-%m-%dT%H:%MZ")


def explain(missed: Missed) -> str:
    """One sentence for a missed deadline."""
    by = span_text(missed.by_ns)
    since = missed.since or "start"
    at = f" at {instant_text(missed.since_time)}" if missed.since_time else ""
    if missed.missing:
        limit = missed.limit
        return f"{missed.level}: no {missed.step} within {limit} of {since}{at}, missed by {by}"
    limit = f"{missed.limit} " if missed.limit else ""
    scope = "end to end: " if missed.step == END_TO_END else ""
    return f"{scope}{missed.level} {limit}after {since}{at}, missed by {by}"
