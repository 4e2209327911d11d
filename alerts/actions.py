"""What people do with alerts: list them, silence, unsilence, acknowledge (the I/O edge).

The API and CLI call these; role checks happen in front of them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, replace
from typing import Any

from alerts.errors import AlertNotFound, BadSilence, SilenceNotFound
from alerts.lifecycle import AlertRecord, Silence
from alerts.repository import (
    STATE_LOCK,
    load_records,
    load_silences,
    read_log,
    to_dt,
    to_ns,
    write_records,
    write_silence,
)
from stitchboard.store import Store


@dataclass(frozen=True)
class AlertView:
    fingerprint: str
    rule: str
    severity: str
    state: str  # "pending" | "firing" | "resolved"
    silenced: bool
    acknowledged_by: str | None
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: dt.datetime
    ends_at: dt.datetime | None
    value: float | None
    inhibited: bool = False
    acknowledged_at: dt.datetime | None = None
    last_notified_at: dt.datetime | None = None


def _now(now: dt.datetime | None) -> dt.datetime:
    return now or dt.datetime.now(dt.UTC)


def _view(r: AlertRecord) -> AlertView:
    return AlertView(
        fingerprint=r.fingerprint,
        rule=r.rule,
        severity=r.severity,
        state=r.state,
        silenced=r.silenced,
        acknowledged_by=r.acknowledged_by,
        labels=r.labels,
        annotations=r.annotations,
        starts_at=to_dt(r.starts_at) or dt.datetime.fromtimestamp(0, dt.UTC),
        ends_at=to_dt(r.ends_at),
        value=r.value,
        inhibited=r.inhibited,
        acknowledged_at=to_dt(r.acknowledged_at),
        last_notified_at=to_dt(r.last_notified_at),
    )


def list_alerts(store: Store, states: list[str] | None = None, limit: int = 500) -> list[AlertView]:
    """Alerts newest first; ``states`` filters (pending, firing, resolved)."""
    return [_view(r) for r in load_records(store, states=states, limit=limit)]


def silence(
    store: Store,
    matchers: dict[str, str],
    starts_at: dt.datetime | None,
    ends_at: dt.datetime,
    author: str,
    comment: str,
    now: dt.datetime | None = None,
) -> str:
    """Mute notifications of every alert whose labels equal all ``matchers``; the silence id."""
    now = _now(now)
    start = starts_at or now
    if not matchers:
        raise BadSilence("a silence needs at least one matcher (label=value)")
    if not author.strip():
        raise BadSilence("a silence needs an author")
    if start.tzinfo is None or ends_at.tzinfo is None:
        raise BadSilence("silence times must carry a time zone (e.g. 2026-03-09T09:00:00Z)")
    if ends_at <= start:
        raise BadSilence("a silence must end after it starts")
    silence_id = uuid.uuid4().hex
    record = Silence(
        id=silence_id,
        matchers=dict(matchers),
        starts_at=to_ns(start) or 0,
        ends_at=to_ns(ends_at) or 0,
        author=author,
        comment=comment,
    )
    write_silence(store, record, to_ns(now) or 0)
    return silence_id


def unsilence(store: Store, silence_id: str, author: str, now: dt.datetime | None = None) -> None:
    """Expire a silence now (it stays listed, with who expired it)."""
    found = load_silences(store, silence_id)
    if not found:
        raise SilenceNotFound(f"no silence {silence_id!r}")
    current = found[0]
    now_ns = to_ns(_now(now)) or 0
    ended = replace(current, expired_by=author, ends_at=min(current.ends_at, now_ns))
    write_silence(store, ended, now_ns)


def list_silences(store: Store) -> list[dict[str, Any]]:
    """Every silence, newest first.

    Keys: id, matchers, starts_at, ends_at, author, comment, expired_by.
    """
    return [
        {
            "id": s.id,
            "matchers": s.matchers,
            "starts_at": to_dt(s.starts_at),
            "ends_at": to_dt(s.ends_at),
            "author": s.author,
            "comment": s.comment,
            "expired_by": s.expired_by,
        }
        for s in load_silences(store)
    ]


def acknowledge(
    store: Store, fingerprint: str, author: str, now: dt.datetime | None = None
) -> AlertView:
    """Stop repeats of a firing alert until it resolves or worsens in severity."""
    with STATE_LOCK:  # not between an evaluation's read and write of this alert
        found = load_records(store, fingerprint=fingerprint)
        if not found:
            raise AlertNotFound(f"no alert with fingerprint {fingerprint!r}")
        record = found[0]
        if record.state == "resolved":
            raise AlertNotFound(f"alert {fingerprint!r} is resolved; nothing to acknowledge")
        acked = replace(record, acknowledged_by=author, acknowledged_at=to_ns(_now(now)))
        write_records(store, [acked])
    return _view(acked)


def notification_log(store: Store, limit: int = 200) -> list[dict[str, Any]]:
    """Delivery attempts, newest first: time, fingerprint, group_key, channel, action,
    status (sent | failed | retrying), response, error, attempt."""
    return read_log(store, limit)
