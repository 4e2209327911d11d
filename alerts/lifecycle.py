"""The alert lifecycle, after Alertmanager (pure: no I/O, the clock is a parameter).

Each evaluation yields the conditions that hold now (``Candidate``). ``advance``
moves every known alert one step: a new condition is ``pending`` until it has
held for its ``for:`` duration, then ``firing``; a condition that no longer
holds is ``resolved``. Alerts are grouped by ``group_by`` labels; a group is
notified ``group_wait`` after its first alert fired, then at most every
``group_interval`` when something changed, and again every ``repeat_interval``
while unacknowledged alerts keep firing. Silenced and inhibited alerts are kept
and shown but not notified; an acknowledged alert is not repeated until it
resolves or worsens in severity.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import NamedTuple

from stitchboard.config.slos import Route

SEVERITY_RANK = {"info": 0, "ticket": 1, "page": 2}


class AlertState(StrEnum):
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


def fingerprint(labels: Mapping[str, str]) -> str:
    """Stable across restarts and processes: a hash of the sorted labels."""
    text = json.dumps(sorted(labels.items()), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Candidate:
    """A condition that holds now, as a rule found it."""

    rule: str
    severity: str
    labels: dict[str, str]
    annotations: dict[str, str]
    value: float | None
    for_ns: int = 0

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)


@dataclass(frozen=True)
class AlertRecord:
    """One alert as stored in ``alert_state`` (times in ns since the epoch)."""

    fingerprint: str
    rule: str
    severity: str
    state: str
    labels: dict[str, str]
    annotations: dict[str, str]
    active_since: int
    starts_at: int
    ends_at: int | None
    value: float | None
    silenced: bool = False
    inhibited: bool = False
    acknowledged_by: str | None = None
    acknowledged_at: int | None = None
    notified_state: str = ""  # what the receivers were last told: "", firing, resolved
    notified_severity: str = ""
    last_notified_at: int | None = None

    @property
    def muted(self) -> bool:
        return self.silenced or self.inhibited


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: dict[str, str]
    starts_at: int
    ends_at: int
    author: str
    comment: str
    expired_by: str | None = None

    def active(self, now: int) -> bool:
        return self.expired_by is None and self.starts_at <= now < self.ends_at

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.matchers.items())


@dataclass(frozen=True)
class Notice:
    """One notification of one group: its firing and newly resolved alerts."""

    group_key: str
    group_labels: dict[str, str]
    alerts: tuple[AlertRecord, ...]
    status: str  # "firing" when any alert fires, else "resolved"
    repeat: bool = False
    # An acknowledgement to pass on (PagerDuty's acknowledge); other channels skip it.
    acknowledgement: bool = False


class Hold(NamedTuple):
    """Why a new alert may not start firing now (its ``held`` annotation), and how long
    at most it stays pending for that (then its ``for:`` decides as usual)."""

    reason: str
    max_ns: int


@dataclass(frozen=True)
class Step:
    records: dict[str, AlertRecord]  # every alert after this evaluation
    changed: tuple[AlertRecord, ...]  # to write
    notices: tuple[Notice, ...] = field(default=())


def _open(c: Candidate, now: int) -> AlertRecord:
    state = AlertState.FIRING if c.for_ns <= 0 else AlertState.PENDING
    return AlertRecord(
        fingerprint=c.fingerprint,
        rule=c.rule,
        severity=c.severity,
        state=state.value,
        labels=dict(c.labels),
        annotations=dict(c.annotations),
        active_since=now,
        starts_at=now,
        ends_at=None,
        value=c.value,
    )


def _carry(prev: AlertRecord, c: Candidate, now: int) -> AlertRecord:
    state = prev.state
    starts_at = prev.starts_at
    if state == AlertState.PENDING and now - prev.active_since >= c.for_ns:
        state, starts_at = AlertState.FIRING.value, now
    ack_by, ack_at = prev.acknowledged_by, prev.acknowledged_at
    if SEVERITY_RANK.get(c.severity, 0) > SEVERITY_RANK.get(prev.severity, 0):
        ack_by, ack_at = None, None  # worse than what was acknowledged: page again
    return replace(
        prev,
        severity=c.severity,
        state=state,
        starts_at=starts_at,
        annotations=dict(c.annotations),
        value=c.value,
        acknowledged_by=ack_by,
        acknowledged_at=ack_at,
    )


def advance(
    previous: Mapping[str, AlertRecord],
    candidates: Iterable[Candidate],
    silences: Iterable[Silence],
    inhibited: frozenset[str],
    route: Route,
    now: int,
    resolutions: Mapping[str, dict[str, str]] | None = None,
    held: Mapping[str, Hold] | None = None,
) -> Step:
    """One evaluation: new states, and the notices to send now. ``resolutions``: the
    annotations an alert that clears now takes (what it cleared to), by fingerprint; an
    alert without one keeps those of its last cycle. ``held``: alerts (by fingerprint)
    that may not start firing now, with the reason (shown as the ``held`` annotation);
    such an alert stays pending, for at most the hold's ``max_ns`` since it became
    pending (then its ``for:`` decides as usual); alerts already firing are not held."""
    resolutions = resolutions or {}
    held = held or {}
    active_silences = [s for s in silences if s.active(now)]
    records: dict[str, AlertRecord] = dict(previous)
    seen: set[str] = set()
    for c in candidates:
        fp = c.fingerprint
        seen.add(fp)
        prev = previous.get(fp)
        hold = held.get(fp)
        if hold is not None and (prev is None or prev.state != AlertState.FIRING):
            c = replace(
                c,
                for_ns=max(c.for_ns, hold.max_ns),
                annotations={**c.annotations, "held": hold.reason},
            )
        if prev is None or prev.state == AlertState.RESOLVED:
            record = _open(c, now)
            if prev is not None:  # a new episode keeps what the receivers were last told
                record = replace(record, notified_state=prev.notified_state)
        else:
            record = _carry(prev, c, now)
        records[fp] = record
    for fp, prev in previous.items():
        if fp not in seen and prev.state != AlertState.RESOLVED:
            records[fp] = replace(
                prev,
                state=AlertState.RESOLVED.value,
                ends_at=now,
                annotations=resolutions.get(fp, prev.annotations),
            )
    for fp, record in records.items():
        silenced = any(s.matches(record.labels) for s in active_silences)
        records[fp] = replace(record, silenced=silenced, inhibited=fp in inhibited)
    notices, notified = _notices(records, route, now)
    records.update(notified)
    changed = tuple(r for fp, r in records.items() if previous.get(fp) != r)
    return Step(records=records, changed=changed, notices=notices)


def _group_key(record: AlertRecord, route: Route) -> tuple[str, dict[str, str]]:
    labels = {k: record.labels.get(k, record.rule if k == "rule" else "") for k in route.group_by}
    return "{" + ",".join(f"{k}={v!r}" for k, v in labels.items()) + "}", labels


def _notices(
    records: Mapping[str, AlertRecord], route: Route, now: int
) -> tuple[tuple[Notice, ...], dict[str, AlertRecord]]:
    groups: dict[str, list[AlertRecord]] = {}
    labels_of: dict[str, dict[str, str]] = {}
    for record in records.values():
        key, labels = _group_key(record, route)
        groups.setdefault(key, []).append(record)
        labels_of[key] = labels
    notices: list[Notice] = []
    notified: dict[str, AlertRecord] = {}
    for key, members in sorted(groups.items()):
        firing = [r for r in members if r.state == AlertState.FIRING and not r.muted]
        new = [
            r
            for r in firing
            if r.notified_state != AlertState.FIRING or r.notified_severity != r.severity
        ]
        resolved = [
            r
            for r in members
            if r.state == AlertState.RESOLVED and r.notified_state == AlertState.FIRING
        ]
        sent = [r.last_notified_at for r in members if r.last_notified_at is not None]
        last = max(sent, default=None)
        due = False
        repeat = False
        if new or resolved:
            if last is None:
                first = min((r.starts_at for r in new), default=now)
                due = now - first >= route.group_wait.nanos or not new
            else:
                due = now - last >= route.group_interval.nanos
        elif firing and last is not None and now - last >= route.repeat_interval.nanos:
            due = any(r.acknowledged_by is None for r in firing)
            repeat = due
        acked = [
            r
            for r in firing
            if r.acknowledged_at is not None
            and r.notified_state == AlertState.FIRING
            and (r.last_notified_at is None or r.acknowledged_at > r.last_notified_at)
        ]
        if acked and not due:
            notices.append(
                Notice(key, labels_of[key], tuple(acked), "firing", acknowledgement=True)
            )
            for r in acked:
                # max(): an acknowledgement stamped ahead of this evaluation's clock is
                # still passed on once.
                notified[r.fingerprint] = replace(
                    r, last_notified_at=max(now, r.acknowledged_at or now)
                )
        if not due:
            continue
        include = [r for r in firing if not (repeat and r.acknowledged_by)] + resolved
        status = "firing" if any(r.state == AlertState.FIRING for r in include) else "resolved"
        notices.append(Notice(key, labels_of[key], tuple(include), status, repeat))
        for r in include:
            notified[r.fingerprint] = replace(
                r, notified_state=r.state, notified_severity=r.severity, last_notified_at=now
            )
    return tuple(notices), notified


def acknowledge(record: AlertRecord, author: str, now: int) -> AlertRecord:
    return replace(record, acknowledged_by=author, acknowledged_at=now)
