"""The one parser of durations and instants written by people (slas.yaml, CLI, API).

- ``parse_duration``: ``500ms``, ``90s``, ``15m``, ``24h``, ``1.5d``, ``2w``, or ``1bd``
  (business days: whole numbers, resolved later against a facility's calendar);
- ``parse_instant``: ISO 8601 (``2026-03-09T09:00:00Z``, ``2026-03-09``); no offset
  means UTC;
- ``parse_since``: a duration back from now (``6h``, ``7d``) or an instant.

Each raises ``ValueError`` with a message that names the text and what to write
instead; callers add where it came from.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import NamedTuple

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w|bd)\s*$")
UNIT_NS = {
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
    "w": 7 * 86_400_000_000_000,
}
DURATION_HELP = (
    "write a number and a unit: ms, s, m, h, d, w or bd (business days), e.g. 15m, 24h, 1bd"
)
INSTANT_HELP = "use ISO 8601, e.g. 2026-03-09T09:00:00Z"


class ParsedDuration(NamedTuple):
    """Exactly one of the two is set (a zero duration has both 0)."""

    nanos: int
    business_days: int


def parse_duration(text: str) -> ParsedDuration:
    found = _DURATION.match(text)
    if not found:
        raise ValueError(f"bad duration {text!r}; {DURATION_HELP}")
    number, unit = float(found.group(1)), found.group(2)
    if unit == "bd":
        if number != int(number):
            raise ValueError(f"bad duration {text!r}: business days must be whole")
        return ParsedDuration(0, int(number))
    return ParsedDuration(int(number * UNIT_NS[unit]), 0)


def parse_instant(text: str) -> dt.datetime:
    """An aware datetime (UTC when the text names no offset)."""
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"bad time {text!r}; {INSTANT_HELP}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def instant_ns(moment: dt.datetime) -> int:
    """Nanoseconds since the epoch, to the microsecond."""
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def parse_since(text: str, now: float | None = None) -> dt.datetime:
    """A duration back from ``now`` (seconds since the epoch; default: the clock), or an
    instant. Business days need a facility's calendar and are refused here."""
    found = _DURATION.match(text)
    if found:
        parsed = parse_duration(text)
        if parsed.business_days:
            raise ValueError(f"bad time {text!r}: business days need a facility; use d")
        moment = time.time() if now is None else now
        return dt.datetime.fromtimestamp(moment - parsed.nanos / 1_000_000_000, dt.UTC)
    try:
        return parse_instant(text)
    except ValueError:
        raise ValueError(
            f"bad time {text!r}: use a duration such as 6h or 7d,"
            " or an ISO 8601 time such as 2026-03-01T08:00"
        ) from None
