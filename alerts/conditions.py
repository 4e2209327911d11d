"""Overdue high-value transactions, idle feeds and error spikes: queries and their alerts.

Each rule is a ClickHouse query (the edge) feeding a pure function that turns
rows into ``Candidate`` alerts; ``inhibited`` decides which alerts an idle feed
mutes.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from alerts.lifecycle import Candidate
from stitchboard.config.model import SlasConfig
from stitchboard.config.slos import BusinessHours, IdleFeedRule, OverdueRule
from stitchboard.config.workflows import Duration, Pattern
from stitchboard.store import Store

_NS = 1_000_000_000
_FINAL = " SETTINGS do_not_merge_across_partitions_select_final = 1"
# Events are sorted by id, not time: the inserted_at minmax index prunes old parts (an
# event is never inserted before it happened), event_time then decides.
_RECENT = (
    "inserted_at >= fromUnixTimestamp64Nano({since:Int64})"
    " AND event_time >= fromUnixTimestamp64Nano({since:Int64})"
    " AND event_time <= fromUnixTimestamp64Nano({now:Int64})"
)
OVERDUE = "overdue"
IDLE_FEED = "idle_feed"
# Receipt, not event time: a feed is idle when nothing arrives from it, whatever times
# its events carry (a history replay sends old event times; a feed back from an outage
# sends its backlog). The same clock as the console's data health. inserted_at >=
# observed_time (an event is stored after it is received), so the index still prunes.
_RECEIVED = (
    "inserted_at >= fromUnixTimestamp64Nano({since:Int64})"
    " AND observed_time >= fromUnixTimestamp64Nano({since:Int64})"
    " AND observed_time <= fromUnixTimestamp64Nano({now:Int64})"
)
ERROR_SPIKE = "error_spike"


@dataclass(frozen=True)
class OverdueRow:
    workflow: str
    facility: str
    count: int
    high_value: int
    amount: Decimal
    examples: tuple[str, ...]


@dataclass(frozen=True)
class FeedRow:
    system: str
    facility: str
    operation: str  # "" = every operation of the system
    last_ns: int | None  # newest receipt (observed time); None: none in the discovery window


def overdue_rows(store: Store, threshold: float | None, now: int) -> list[OverdueRow]:
    """Open transactions past their breach deadline, per workflow x facility."""
    sql = (
        "SELECT workflow, facility, count() AS n,"
        " countIf(amount >= {threshold:Float64}) AS high, sum(ifNull(amount, 0)) AS total,"
        # The five largest amounts (ties: the smaller id first).
        " arrayMap(x -> x.2, groupArraySorted(5)((-ifNull(amount, 0), id))) AS examples"
        f" FROM {store.table('transactions')} FINAL"
        " WHERE deleted = 0 AND status IN ('in_progress', 'overdue')"
        " AND breach_deadline IS NOT NULL"
        " AND breach_deadline <= fromUnixTimestamp64Nano({now:Int64})"
        " GROUP BY workflow, facility ORDER BY workflow, facility" + _FINAL
    )
    params = {"now": now, "threshold": threshold if threshold is not None else 1e30}
    return [
        OverdueRow(w, f, int(n), int(h), Decimal(t), tuple(ex))
        for w, f, n, h, t, ex in store.rows(sql, params)
    ]


def overdue_candidates(
    rule: OverdueRule, rows: Iterable[OverdueRow], external_url: str
) -> list[Candidate]:
    out = []
    for row in rows:
        by_amount = rule.amount is not None and row.high_value > 0
        by_count = rule.count is not None and row.count >= rule.count
        if not (by_amount or by_count):
            continue
        why = []
        if by_amount:
            why.append(f"{row.high_value} worth at least ${rule.amount:,.0f}")
        if by_count:
            why.append(f"{row.count} overdue (limit {rule.count})")
        links = " ".join(f"{external_url}/api/v1/transactions/{i}" for i in row.examples)
        out.append(
            Candidate(
                rule=OVERDUE,
                severity=rule.severity,
                labels={"rule": OVERDUE, "workflow": row.workflow, "facility": row.facility},
                annotations={
                    "summary": (
                        f"{row.workflow} at {row.facility}: {row.count} transactions overdue,"
                        f" ${row.amount:,.2f} at risk"
                    ),
                    "description": "; ".join(why),
                    "overdue": str(row.count),
                    "amount_at_risk": f"{row.amount:.2f}",
                    "examples": " ".join(row.examples),
                    "example_links": links,
                    **rule.annotations,
                },
                value=float(row.count),
                for_ns=rule.for_.nanos,
            )
        )
    return out


def feed_rows(store: Store, config: SlasConfig, rule: IdleFeedRule, now: int) -> list[FeedRow]:
    """Feeds received from within the discovery window (system x facility), plus declared
    ones, with their newest receipt."""
    since = now - rule.discover_within.nanos
    sql = (
        "SELECT system, facility, toUnixTimestamp64Nano(max(observed_time)) AS last"
        f" FROM {store.table('events')}"
        f" WHERE {_RECEIVED} AND system != '' AND facility != ''"
        " GROUP BY system, facility HAVING count() >= {min_events:UInt32}"
    )
    params = {"since": since, "now": now, "min_events": rule.discover_min_events}
    seen = {(s, f): int(last) for s, f, last in store.rows(sql, params)}
    declared_facilities = set(config.facility_index().values())
    rows = [
        FeedRow(system, facility, "", last)
        for (system, facility), last in sorted(seen.items())
        if facility in declared_facilities
    ]
    for feed in rule.feeds:
        if feed.operation:
            last_op = store.scalar(
                "SELECT toUnixTimestamp64Nano(max(observed_time)) FROM"
                f" {store.table('events')} WHERE system = {{s:String}} AND facility = {{f:String}}"
                f" AND operation = {{o:String}} AND {_RECEIVED}",
                {
                    "s": feed.system,
                    "f": feed.facility,
                    "o": feed.operation,
                    "since": since,
                    "now": now,
                },
            )
            rows.append(FeedRow(feed.system, feed.facility, feed.operation, int(last_op) or None))
        elif (feed.system, feed.facility) not in seen:
            rows.append(FeedRow(feed.system, feed.facility, "", None))
    return rows


def in_business_hours(hours: BusinessHours, config: SlasConfig, facility: str, now: int) -> bool:
    found = config.facility(facility)
    if found is None:
        return True
    local = dt.datetime.fromtimestamp(now / _NS, dt.UTC).astimezone(found.zone)
    return found.calendar.is_business_day(local.date()) and hours.start <= local.hour < hours.end


def idle_limit(rule: IdleFeedRule, row: FeedRow) -> Duration:
    """How long the feed of ``row`` may stay silent: its declared limit, else the rule's."""
    for feed in rule.feeds:
        if (feed.system, feed.facility, feed.operation or "") == (
            row.system,
            row.facility,
            row.operation,
        ) and feed.idle_after is not None:
            return feed.idle_after
    return rule.idle_after


def idle_candidates(
    config: SlasConfig, rule: IdleFeedRule, rows: Iterable[FeedRow], now: int
) -> list[Candidate]:
    out = []
    for row in rows:
        limit = idle_limit(rule, row)
        quiet = now - row.last_ns if row.last_ns is not None else None
        if quiet is not None and quiet < limit.nanos:
            continue
        if rule.business_hours and not in_business_hours(
            rule.business_hours, config, row.facility, now
        ):
            continue
        labels = {"rule": IDLE_FEED, "system": row.system, "facility": row.facility}
        if row.operation:
            labels["operation"] = row.operation
        minutes = f"{quiet // (60 * _NS)} minutes" if quiet is not None else "the whole window"
        out.append(
            Candidate(
                rule=IDLE_FEED,
                severity=rule.severity,
                labels=labels,
                annotations={
                    "summary": (
                        f"Nothing received from {row.system} at {row.facility} for {minutes}"
                    ),
                    "description": (
                        f"The feed {row.system}"
                        + (f" {row.operation}" if row.operation else "")
                        + f" at {row.facility} is silent (limit {limit.text})."
                    ),
                    **rule.annotations,
                },
                value=quiet / _NS if quiet is not None else None,
                for_ns=rule.for_.nanos,
            )
        )
    return out


def error_rows(store: Store, window_ns: int, now: int) -> list[tuple[str, str, int]]:
    """Failed hops per feed (system, facility) in the window, distinct events."""
    sql = (
        "SELECT system, facility, uniqExact(event_id) AS n FROM"
        f" {store.table('events')} WHERE status = 'error' AND {_RECENT}"
        " GROUP BY system, facility ORDER BY system, facility"
    )
    return [(s, f, int(n)) for s, f, n in store.rows(sql, {"since": now - window_ns, "now": now})]


def error_candidates(config: SlasConfig, rows: Iterable[tuple[str, str, int]]) -> list[Candidate]:
    rule = config.alerts.error_spike
    out = []
    for system, facility, count in rows:
        if count < rule.threshold:
            continue
        out.append(
            Candidate(
                rule=ERROR_SPIKE,
                severity=rule.severity,
                labels={"rule": ERROR_SPIKE, "system": system, "facility": facility},
                annotations={
                    "summary": (
                        f"{count} failed hops from {system} at {facility} in {rule.window.text}"
                    ),
                    "description": f"Threshold {rule.threshold} per {rule.window.text}.",
                    **rule.annotations,
                },
                value=float(count),
                for_ns=rule.for_.nanos,
            )
        )
    return out


def inhibited(config: SlasConfig, candidates: Sequence[Candidate]) -> frozenset[str]:
    """Fingerprints muted by an idle feed: the facility's burn-rate and overdue alerts of
    workflows with a step from the silent system (the silence causes them)."""
    if not config.alerts.inhibit_idle_feeds:
        return frozenset()
    idle = {(c.labels["system"], c.labels["facility"]) for c in candidates if c.rule == IDLE_FEED}
    if not idle:
        return frozenset()
    muted = set()
    for c in candidates:
        if c.rule == IDLE_FEED:
            continue
        workflow, facility = c.labels.get("workflow"), c.labels.get("facility")
        if workflow is None or facility is None:
            continue
        if feeding(config, workflow, facility, idle):
            muted.add(c.fingerprint)
    return frozenset(muted)


def feeding(
    config: SlasConfig, workflow: str, facility: str, feeds: Iterable[tuple[str, str]]
) -> list[tuple[str, str]]:
    """The feeds (system, facility) of ``feeds`` that ``workflow`` at ``facility`` depends
    on: those at that facility whose system one of the workflow's steps matches."""
    wf = next((w for w in config.workflows if w.name == workflow), None)
    if wf is None:
        return []
    return [
        (system, at)
        for system, at in feeds
        if at == facility
        and any(s.match.system is not None and _matches(s.match.system, system) for s in wf.steps)
    ]


def _matches(pattern: Pattern, value: str) -> bool:
    if pattern.exact is not None:
        return value == pattern.exact
    if pattern.prefix is not None:
        return value.startswith(pattern.prefix)
    return pattern.regex is not None and re.search(pattern.regex, value) is not None
