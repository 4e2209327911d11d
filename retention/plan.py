"""Retention: what each table would lose, and pruning it, never touching what must stay.

``retention_days`` (settings) gives days per table for ``events``, ``otel_traces``,
``otel_logs`` and ``dead_letters``. Rows older than that go, except:

- events of transactions that are open (in progress or overdue), failed, or
  under a legal hold (the transactions' ``event_ids``);
- spans and log records of those events' traces;
- dead letters not yet replayed (they are still owed to the store).

The audit log is never pruned here: its hash chains must stay whole.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from stitchboard.errors import ConfigError
from stitchboard.store import Store

# table -> (time column, how a protected row is recognised)
_PROTECTED_EVENTS = """(SELECT arrayJoin(event_ids) FROM {transactions} FINAL
    WHERE deleted = 0 AND (status IN ('in_progress', 'overdue', 'failed')
      OR id IN (SELECT transaction_id FROM {holds} FINAL WHERE released = 0)))"""
_PROTECTED_TRACES = """(SELECT DISTINCT trace_id FROM {events} FINAL
    WHERE trace_id != '' AND event_id IN {protected_events})"""
TABLES = {
    "events": ("event_time", "event_id IN {protected_events}"),
    "otel_traces": ("Timestamp", "TraceId IN {protected_traces}"),
    "otel_logs": ("Timestamp", "TraceId IN {protected_traces}"),
    "dead_letters": ("received_time", "replayed = 0"),
}


@dataclass(frozen=True)
class TablePlan:
    table: str
    days: int
    cutoff: dt.datetime
    older: int  # rows older than the cutoff
    kept: int  # of those, protected
    to_delete: int


def check_policy(days: Mapping[str, int]) -> dict[str, int]:
    problems = [
        f"retention_days.{t}: unknown table (known: {', '.join(TABLES)})"
        for t in days
        if t not in TABLES
    ]
    problems += [f"retention_days.{t}: must be at least 1 day" for t, d in days.items() if d < 1]
    if problems:
        raise ConfigError("settings", problems)
    return dict(days)


def _sql(store: Store, table: str) -> tuple[str, str]:
    time_column, protected = TABLES[table]
    events = _PROTECTED_EVENTS.format(
        transactions=store.table("transactions"), holds=store.table("legal_holds")
    )
    traces = _PROTECTED_TRACES.format(events=store.table("events"), protected_events=events)
    condition = protected.format(protected_events=events, protected_traces=traces)
    return f"{time_column} < {{cutoff:DateTime64(9, 'UTC')}}", condition


def plan(store: Store, days: Mapping[str, int], now: dt.datetime | None = None) -> list[TablePlan]:
    """What pruning would remove now, per table, without removing anything."""
    now = now or dt.datetime.now(dt.UTC)
    result = []
    for table, keep_days in check_policy(days).items():
        cutoff = now - dt.timedelta(days=keep_days)
        old, protected = _sql(store, table)
        older, kept = store.rows(
            f"SELECT countIf({old}), countIf({old} AND {protected})"
            f" FROM {store.table(table)} FINAL",
            {"cutoff": cutoff},
        )[0]
        result.append(TablePlan(table, keep_days, cutoff, older, kept, older - kept))
    return result


def prune(store: Store, days: Mapping[str, int], now: dt.datetime | None = None) -> list[TablePlan]:
    """Delete what :func:`plan` lists; returns the plan it carried out."""
    planned = plan(store, days, now)
    for p in planned:
        if p.to_delete == 0:
            continue
        old, protected = _sql(store, p.table)
        store.command(
            f"ALTER TABLE {store.table(p.table)} DELETE WHERE {old} AND NOT ({protected})",
            {"cutoff": p.cutoff},
            settings={"mutations_sync": 2, "allow_nondeterministic_mutations": 1},
        )
    return planned
