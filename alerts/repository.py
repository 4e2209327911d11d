"""Alert state, silences and the notification log in ClickHouse (the I/O edge)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from alerts.lifecycle import AlertRecord, Silence
from alerts.schema import ALERT_STATE, NOTIFICATION_LOG, SILENCES
from stitchboard.store import Store

_NS = 1_000_000_000
_MS = 1_000_000
_version_lock = threading.Lock()
_last_version = 0
# Held by an evaluation from reading alert state to writing it, and by anything else
# that rewrites an alert (an acknowledgement), so neither overwrites the other.
STATE_LOCK = threading.Lock()


def next_version() -> int:
    """Strictly increasing in this process, and ahead of wall-clock ns across restarts."""
    global _last_version
    with _version_lock:
        _last_version = max(_last_version + 1, time.time_ns())
        return _last_version


def to_dt(ns: int | None) -> dt.datetime | None:
    if ns is None:
        return None
    return dt.datetime.fromtimestamp(ns // _NS, dt.UTC).replace(microsecond=(ns % _NS) // 1000)


def to_ns(value: dt.datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return int(value.timestamp()) * _NS + value.microsecond * 1000


_STATE_COLUMNS = (
    "fingerprint",
    "rule",
    "severity",
    "state",
    "labels",
    "annotations",
    "active_since",
    "starts_at",
    "ends_at",
    "value",
    "silenced",
    "inhibited",
    "acknowledged_by",
    "acknowledged_at",
    "notified_state",
    "notified_severity",
    "last_notified_at",
    "version",
)


def _state_row(r: AlertRecord, version: int) -> tuple[Any, ...]:
    return (
        r.fingerprint,
        r.rule,
        r.severity,
        r.state,
        r.labels,
        r.annotations,
        to_dt(r.active_since),
        to_dt(r.starts_at),
        to_dt(r.ends_at),
        r.value,
        int(r.silenced),
        int(r.inhibited),
        r.acknowledged_by,
        to_dt(r.acknowledged_at),
        r.notified_state,
        r.notified_severity,
        to_dt(r.last_notified_at),
        version,
    )


def write_records(store: Store, records: Iterable[AlertRecord]) -> None:
    version = next_version()
    rows = [_state_row(r, version) for r in records]
    store.insert(ALERT_STATE.name, _STATE_COLUMNS, rows)


def _record(row: dict[str, Any]) -> AlertRecord:
    return AlertRecord(
        fingerprint=row["fingerprint"],
        rule=row["rule"],
        severity=row["severity"],
        state=row["state"],
        labels=dict(row["labels"]),
        annotations=dict(row["annotations"]),
        active_since=to_ns(row["active_since"]) or 0,
        starts_at=to_ns(row["starts_at"]) or 0,
        ends_at=to_ns(row["ends_at"]),
        value=row["value"],
        silenced=bool(row["silenced"]),
        inhibited=bool(row["inhibited"]),
        acknowledged_by=row["acknowledged_by"],
        acknowledged_at=to_ns(row["acknowledged_at"]),
        notified_state=row["notified_state"],
        notified_severity=row["notified_severity"],
        last_notified_at=to_ns(row["last_notified_at"]),
    )


def load_records(
    store: Store,
    states: Sequence[str] | None = None,
    limit: int | None = None,
    fingerprint: str | None = None,
) -> list[AlertRecord]:
    """Alerts, newest first (FINAL: exact before merges)."""
    clauses = ["1"]
    params: dict[str, Any] = {}
    if states:
        clauses.append("state IN {states:Array(String)}")
        params["states"] = list(states)
    if fingerprint is not None:
        clauses.append("fingerprint = {fp:String}")
        params["fp"] = fingerprint
    sql = (
        f"SELECT {', '.join(_STATE_COLUMNS[:-1])} FROM {store.table(ALERT_STATE.name)} FINAL"
        f" WHERE {' AND '.join(clauses)} ORDER BY starts_at DESC, fingerprint"
    )
    if limit is not None:
        sql += " LIMIT {limit:UInt32}"
        params["limit"] = limit
    return [_record(r) for r in store.dicts(sql, params)]


def live_records(store: Store, now: int, keep_resolved_ns: int = 86_400 * _NS) -> list[AlertRecord]:
    """What an evaluation needs: every unresolved alert and recently resolved ones."""
    sql = (
        f"SELECT {', '.join(_STATE_COLUMNS[:-1])} FROM {store.table(ALERT_STATE.name)} FINAL"
        " WHERE state != 'resolved' OR ends_at >= fromUnixTimestamp64Nano({since:Int64})"
        " OR notified_state = 'firing'"
    )
    return [_record(r) for r in store.dicts(sql, {"since": now - keep_resolved_ns})]


_SILENCE_COLUMNS = (
    "id",
    "matchers",
    "starts_at",
    "ends_at",
    "author",
    "comment",
    "created_at",
    "expired_by",
    "version",
)


def write_silence(store: Store, s: Silence, created_at: int) -> None:
    row = (
        s.id,
        s.matchers,
        to_dt(s.starts_at),
        to_dt(s.ends_at),
        s.author,
        s.comment,
        to_dt(created_at),
        s.expired_by,
        next_version(),
    )
    store.insert(SILENCES.name, _SILENCE_COLUMNS, [row])


def load_silences(store: Store, silence_id: str | None = None) -> list[Silence]:
    where = " WHERE id = {id:String}" if silence_id else ""
    rows = store.dicts(
        f"SELECT {', '.join(_SILENCE_COLUMNS[:-2])}, expired_by"
        f" FROM {store.table(SILENCES.name)} FINAL{where} ORDER BY starts_at DESC, id",
        {"id": silence_id} if silence_id else None,
    )
    return [
        Silence(
            id=r["id"],
            matchers=dict(r["matchers"]),
            starts_at=to_ns(r["starts_at"]) or 0,
            ends_at=to_ns(r["ends_at"]) or 0,
            author=r["author"],
            comment=r["comment"],
            expired_by=r["expired_by"],
        )
        for r in rows
    ]


_LOG_COLUMNS = (
    "time",
    "fingerprint",
    "group_key",
    "channel",
    "action",
    "status",
    "response",
    "error",
    "attempt",
)


def log_attempts(store: Store, rows: Sequence[tuple[Any, ...]]) -> None:
    """Rows in ``_LOG_COLUMNS`` order (time as an aware datetime)."""
    store.insert(NOTIFICATION_LOG.name, _LOG_COLUMNS, rows)


def read_log(store: Store, limit: int = 200) -> list[dict[str, Any]]:
    return store.dicts(
        f"SELECT {', '.join(_LOG_COLUMNS)} FROM {store.table(NOTIFICATION_LOG.name)}"
        " ORDER BY time DESC, fingerprint LIMIT {limit:UInt32}",
        {"limit": limit},
    )
