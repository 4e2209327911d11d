"""Feeds receiving a backlog, so that new burn-rate, overdue and unmatched alerts wait for it.

While a sender replays history (the demo's first minute, a migration sent over the
wire) or an interface engine drains its queue after an outage, transactions whose
later hops are still in the backlog look overdue against the real clock, and an SLO
counted then reads far worse than it will once the backlog is in: in one run of the
demo's 13-day replay, burn-rate tickets quoted 60.3 % compliance for discharge ->
revenue against a settled 77-79 %, and the overdue rule paged 1,409 overdue. The
correlator kept up, so its own hold (``alerts.progress``) did not apply.

The signal is in the events themselves: an event received long after it was sent
(``observed_time - sent_time`` at least ``alerts.backfill.lag``) comes from a backlog.
The send time, not the event time: a discharge is documented hours before its ADT is
sent, and a live feed carries such events all day. A feed (system x facility) is
receiving a backlog while at least half of the events received from it in the last
``window``, and at least ``min_events``, are such. Per feed rather than for the whole
store: an engine that drains one facility's queue must not hold the pages of every
other facility; the alerts held are those the backlog can change, the burn-rate,
overdue and unmatched alerts of workflows with a step from that system at that
facility (the same reach as an idle feed's inhibition).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from alerts.burn_rate import RULE as BURN_RATE
from alerts.conditions import OVERDUE, feeding
from alerts.lifecycle import Candidate, Hold
from alerts.unmatched import UNMATCHED
from stitchboard.config.model import SlasConfig
from stitchboard.config.slos import BackfillHold
from stitchboard.store import Store

# The rules whose figures a backlog changes: SLOs, overdue transactions, and fan-in
# events waiting for transactions that may still be in the backlog.
HELD_RULES = (BURN_RATE, OVERDUE, UNMATCHED)
_NS = 1_000_000_000


@dataclass(frozen=True)
class Backlog:
    """What one feed received in the window, and how much of it was sent long before."""

    system: str
    facility: str
    received: int  # events received in the window
    lagging: int  # of which sent at least ``lag`` before they were received
    oldest_sent_ns: int  # the oldest send time among those (0: none)


def backlog_rows(store: Store, rule: BackfillHold, now: int) -> list[Backlog]:
    """Every feed that received events sent at least ``rule.lag`` before, in the last
    ``rule.window`` up to ``now`` (by receipt; ``inserted_at`` >= receipt prunes parts)."""
    sql = (
        "SELECT system, facility, count() AS received,"
        " countIf(lag_ns >= {lag:Int64}) AS lagging,"
        " minIf(sent_ns, lag_ns >= {lag:Int64}) AS oldest"
        " FROM (SELECT system, facility, toUnixTimestamp64Nano(sent_time) AS sent_ns,"
        " toUnixTimestamp64Nano(observed_time) - sent_ns AS lag_ns"
        f" FROM {store.table('events')}"
        " WHERE inserted_at >= fromUnixTimestamp64Nano({since:Int64})"
        " AND observed_time >= fromUnixTimestamp64Nano({since:Int64})"
        " AND observed_time <= fromUnixTimestamp64Nano({now:Int64})"
        " AND system != '' AND facility != '')"
        " GROUP BY system, facility HAVING lagging > 0 ORDER BY system, facility"
    )
    params = {"lag": rule.lag.nanos, "since": now - rule.window.nanos, "now": now}
    return [Backlog(s, f, int(n), int(k), int(o)) for s, f, n, k, o in store.rows(sql, params)]


def backfilling(rule: BackfillHold, rows: Iterable[Backlog]) -> tuple[Backlog, ...]:
    """The feeds receiving a backlog: at least ``min_events`` lagging events, and at least
    half of what they received (a live feed's few late resends do not hold anything)."""
    return tuple(r for r in rows if r.lagging >= rule.min_events and 2 * r.lagging >= r.received)


def age(ns: int) -> str:
    """A duration for people: 13d, 5h, 40m, 20s."""
    seconds = max(ns, 0) // _NS
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def describe(feed: Backlog, rule: BackfillHold, now: int) -> str:
    """``SYS at F (120 of 130 received in the last 2m sent 15m or more before, the
    oldest 13d ago)``."""
    return (
        f"{feed.system} at {feed.facility} ({feed.lagging:,} of {feed.received:,} events"
        f" received in the last {rule.window.text} were sent {rule.lag.text} or more before,"
        f" the oldest {age(now - feed.oldest_sent_ns)} ago)"
    )


def held_reason(
    config: SlasConfig, workflow: str, facility: str, feeds: Iterable[Backlog], now: int
) -> str | None:
    """Why new alerts of ``HELD_RULES`` for ``workflow`` at ``facility`` wait, or None
    when none of the feeds it depends on is receiving a backlog."""
    rule = config.alerts.backfill
    by_key = {(f.system, f.facility): f for f in feeds}
    mine = feeding(config, workflow, facility, sorted(by_key))
    if not mine:
        return None
    return (
        "backlog arriving from "
        + ", ".join(describe(by_key[k], rule, now) for k in mine)
        + f"; new burn-rate, overdue and unmatched alerts of {workflow} at {facility} wait"
        f" until it is in (at most {rule.max_hold.text})"
    )


def backfill_holds(
    config: SlasConfig, candidates: Iterable[Candidate], feeds: tuple[Backlog, ...], now: int
) -> dict[str, Hold]:
    """The holds, by fingerprint, of the candidates of ``HELD_RULES`` whose workflow
    at their facility depends on a feed receiving a backlog."""
    if not feeds:
        return {}
    limit = config.alerts.backfill.max_hold.nanos
    out: dict[str, Hold] = {}
    for c in candidates:
        if c.rule not in HELD_RULES:
            continue
        reason = _reason_for(config, c.labels, feeds, now)
        if reason is not None:
            out[c.fingerprint] = Hold(reason, limit)
    return out


def _reason_for(
    config: SlasConfig, labels: Mapping[str, str], feeds: tuple[Backlog, ...], now: int
) -> str | None:
    workflow, facility = labels.get("workflow"), labels.get("facility")
    if workflow is None or facility is None:
        return None
    return held_reason(config, workflow, facility, feeds, now)
