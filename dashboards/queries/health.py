"""The data health page's reads: feeds and their last hour, dead letters by reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dashboards.queries.common import DAY_NS, NS
from stitchboard.store import Store

# -- data health -------------------------------------------------------------------


@dataclass(frozen=True)
class Feed:
    """One source of hops: a system at a facility."""

    system: str
    facility: str
    last_ns: int  # newest receipt (observed time)
    last_hour: int
    per_minute: tuple[int, ...]  # oldest first, one count per minute of the last hour


def feeds(store: Store, now: int, lookback_days: int = 7, minutes: int = 60) -> list[Feed]:
    """Every feed seen in the lookback, its newest receipt and its last hour by minute.

    One read of the lookback: per feed and minute of the last hour (-1 = before it), the
    newest receipt and the count; the feed's figures are summed from those rows."""
    params = {"since": now - lookback_days * DAY_NS, "hour": now - minutes * 60 * NS, "now": now}
    rows = store.rows(
        "SELECT system, facility, if(observed_time >= fromUnixTimestamp64Nano({hour:Int64}),"
        " intDiv(toUnixTimestamp64Nano(observed_time) - {hour:Int64}, 60000000000), -1) AS m,"
        " toUnixTimestamp64Nano(max(observed_time)), count()"
        f" FROM {store.table('events')}"
        " WHERE observed_time >= fromUnixTimestamp64Nano({since:Int64})"
        " AND observed_time <= fromUnixTimestamp64Nano({now:Int64})"
        " GROUP BY system, facility, m",
        params,
    )
    last: dict[tuple[str, str], int] = {}
    hour: dict[tuple[str, str], int] = {}
    series: dict[tuple[str, str], list[int]] = {}
    for system, facility, minute, newest, n in rows:
        feed = (str(system), str(facility))
        last[feed] = max(last.get(feed, 0), int(newest))
        counts = series.setdefault(feed, [0] * minutes)
        if minute >= 0:  # the last hour, ``now`` itself included (minute ``minutes``)
            hour[feed] = hour.get(feed, 0) + int(n)
            if minute < minutes:
                counts[int(minute)] = int(n)
    return [
        Feed(s, f, last[(s, f)], hour.get((s, f), 0), tuple(series[(s, f)]))
        for s, f in sorted(last)
    ]


def dead_letter_reasons(store: Store, limit: int = 50) -> list[dict[str, Any]]:
    """Unreplayed dead letters grouped by reason, most frequent first."""
    return store.dicts(
        "SELECT reason, count() AS count, toUnixTimestamp64Nano(max(received_time)) AS last_ns,"
        " groupUniqArray(5)(source) AS sources"
        f" FROM {store.table('dead_letters')} FINAL WHERE replayed = 0"
        " GROUP BY reason ORDER BY count DESC, reason LIMIT {limit:UInt32}",
        {"limit": limit},
    )
