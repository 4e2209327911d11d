"""Reads behind the transactions API (ClickHouse; every read exact before merges).

Status and level are evaluated at query time from the stored pending deadlines,
so an open transaction shows ``overdue`` from the instant its deadline passes
even between two sweeps.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from correlator.engine import resummarize
from correlator.explanations import explain, money
from correlator.schema import TRANSACTION_KEYS, TRANSACTIONS
from correlator.transaction import Missed, StepResult, Transaction, id_time_of
from stitchboard import times
from stitchboard.config.model import SlasConfig
from stitchboard.events import Event
from stitchboard.store import Store

_STATUS_NOW = """multiIf(
    status IN ('in_progress', 'overdue')
      AND ((breach_deadline IS NOT NULL AND breach_deadline <= {now:DateTime64(9, 'UTC')})
        OR (warn_deadline IS NOT NULL AND warn_deadline <= {now:DateTime64(9, 'UTC')})),
    'overdue', status)"""
_LEVEL_NOW = """multiIf(
    status IN ('complete', 'late'), level,
    breach_deadline IS NOT NULL AND breach_deadline <= {now:DateTime64(9, 'UTC')}, 'breach',
    level = '' AND warn_deadline IS NOT NULL AND warn_deadline <= {now:DateTime64(9, 'UTC')},
    'warn', level)"""

_SUMMARY = f"""id, workflow, facility, {_STATUS_NOW} AS status_now, {_LEVEL_NOW} AS level_now,
    toUnixTimestamp64Nano(start_time) AS start_ns,
    toUnixTimestamp64Nano(id_time) AS id_ns,
    toUnixTimestamp64Nano(last_time) AS last_ns,
    if(end_time IS NULL, NULL, toUnixTimestamp64Nano(assumeNotNull(end_time))) AS end_ns,
    duration_ns,
    if(warn_deadline IS NULL, NULL, toUnixTimestamp64Nano(assumeNotNull(warn_deadline))) AS warn_ns,
    if(breach_deadline IS NULL, NULL,
       toUnixTimestamp64Nano(assumeNotNull(breach_deadline))) AS breach_ns,
    flags, missed_steps, toString(amount) AS amount_text, event_count, error_count,
    key_names, key_values"""


# Every version of a transaction lives in one partition (the partition key is a
# function of id_time, which an id never changes), so FINAL may merge partitions
# independently.
_FINAL_SETTINGS = " SETTINGS do_not_merge_across_partitions_select_final = 1"


def count_transactions(store: Store) -> int:
    """How many transactions the listing can return: current versions, not retired ids."""
    table = store.table("transactions")
    value = store.scalar(f"SELECT count() FROM {table} FINAL WHERE deleted = 0" + _FINAL_SETTINGS)
    return int(value or 0)


class BadQuery(ValueError):
    """A filter value that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class TransactionFilter:
    workflow: str | None = None
    facility: str | None = None
    status: str | None = None
    flag: str | None = None
    key_values: tuple[str, ...] = ()
    since: int | None = None  # ns, inclusive, on start time
    until: int | None = None  # ns, exclusive
    after: tuple[int, str] | None = None  # cursor: (start ns, id) of the last item shown


def iso(ns: int | None) -> str | None:
    if ns is None or ns == 0:
        return None
    moment = dt.datetime.fromtimestamp(ns // 1_000_000_000, dt.UTC).replace(
        microsecond=(ns % 1_000_000_000) // 1000
    )
    return moment.isoformat().replace("+00:00", "Z")


def parse_time(text: str, name: str) -> int:
    """ISO 8601 (naive means UTC) or a date, as ns."""
    try:
        return times.instant_ns(times.parse_instant(text))
    except ValueError:
        raise BadQuery(f"bad time {text!r} for {name}: {times.INSTANT_HELP}") from None


def encode_cursor(id_ns: int, tx_id: str) -> str:
    return base64.urlsafe_b64encode(f"{id_ns}:{tx_id}".encode()).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        start, tx_id = raw.split(":", 1)
        if not tx_id or not tx_id.isalnum():
            raise ValueError(tx_id)
        return int(start), tx_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadQuery(f"bad cursor {text!r}: pass the next_cursor of a previous page") from None


def transaction_where(
    store: Store, where: TransactionFilter, now: int
) -> tuple[list[str], dict[str, Any]]:
    """The clauses (to join with AND) and bound parameters that select ``where``'s
    transactions from ``transactions``: live ones, of its workflow, facility and flag,
    started in its range, carrying one of its key values, below its ``after`` cursor,
    and of its status now. The status is that of the select list's ``status_now`` (an
    open transaction past a deadline is overdue: the query binds ``now``).

    Every reader of the table filters through this (the transactions API, the
    console's grid): a filter means the same wherever it is read."""
    clauses = ["deleted = 0"]
    params: dict[str, Any] = {"now": now}
    if where.workflow:
        clauses.append("workflow = {workflow:String}")
        params["workflow"] = where.workflow
    if where.facility:
        clauses.append("facility = {facility:String}")
        params["facility"] = where.facility
    if where.flag:
        clauses.append("has(flags, {flag:String})")
        params["flag"] = where.flag
    if where.since is not None:
        clauses.append("start_time >= fromUnixTimestamp64Nano({since:Int64})")
        params["since"] = where.since
    if where.until is not None:
        # id_time <= start_time, so this bound also prunes partitions and the sort key.
        clauses.append("start_time < fromUnixTimestamp64Nano({until:Int64})")
        clauses.append("id_time < fromUnixTimestamp64Nano({until:Int64})")
        params["until"] = where.until
    if where.key_values:
        keys = store.table(TRANSACTION_KEYS.name)
        # By the full sorting key, so the lookup reads a few granules, not the table.
        clauses.append(
            f"(workflow, id_time, id) IN (SELECT workflow, id_time, transaction_id FROM {keys}"
            " WHERE value IN {values:Array(String)})"
        )
        params["values"] = list(where.key_values)
    if where.after is not None:
        clauses.append(
            "(id_time, id) < (fromUnixTimestamp64Nano({after_ns:Int64}), {after_id:String})"
        )
        params["after_ns"], params["after_id"] = where.after
    if where.status:
        clauses.append("status_now = {status:String}")
        params["status"] = where.status
    return clauses, params


def list_transactions(
    store: Store, where: TransactionFilter, limit: int, now: int
) -> tuple[list[dict[str, Any]], str | None]:
    table = store.table(TRANSACTIONS.name)
    clauses, params = transaction_where(store, where, now)
    params["limit"] = limit + 1
    sql = (
        f"SELECT {_SUMMARY} FROM {table} FINAL WHERE {' AND '.join(clauses)}"
        # Newest first by the transaction's earliest event (id_time: part of the
        # sorting key, so a page reads the newest parts of the key, not the table).
        " ORDER BY id_time DESC, id DESC LIMIT {limit:UInt32}" + _FINAL_SETTINGS
    )
    rows = store.dicts(sql, params)
    page = [summary(r) for r in rows[:limit]]
    cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        cursor = encode_cursor(last["id_ns"], last["id"])
    return page, cursor


def summary(row: dict[str, Any]) -> dict[str, Any]:
    keys: dict[str, list[str]] = {}
    for name, value in zip(row["key_names"], row["key_values"], strict=True):
        keys.setdefault(name, []).append(value)
    return {
        "id": row["id"],
        "workflow": row["workflow"],
        "facility": row["facility"],
        "status": row["status_now"],
        "level": row["level_now"] or None,
        "start_time": iso(row["start_ns"]),
        "end_time": iso(row["end_ns"]),
        "last_time": iso(row["last_ns"]),
        "duration_seconds": row["duration_ns"] / 1e9 if row["duration_ns"] is not None else None,
        "warn_deadline": iso(row["warn_ns"]),
        "breach_deadline": iso(row["breach_ns"]),
        "flags": list(row["flags"]),
        "missed_steps": list(row["missed_steps"]),
        "amount": money(row["amount_text"]),
        "event_count": row["event_count"],
        "error_count": row["error_count"],
        "keys": keys,
    }


_EVENT_FIELDS = """event_id, toUnixTimestamp64Nano(event_time) AS time_ns,
    toUnixTimestamp64Nano(sent_time) AS sent_ns,
    toUnixTimestamp64Nano(observed_time) AS observed_ns, source_kind, source, facility, system,
    operation, status, status_message, duration_ns, amount, trace_id, span_id, keys"""


def get_transaction(
    store: Store, tx_id: str, now: int, config: SlasConfig
) -> dict[str, Any] | None:
    table = store.table(TRANSACTIONS.name)
    id_ns = id_time_of(tx_id)
    # The id carries id_time, a sorting-key column: the lookup reads a granule or two.
    by_time = " AND id_time = fromUnixTimestamp64Nano({id_ns:Int64})" if id_ns is not None else ""
    rows = store.dicts(
        f"SELECT {_SUMMARY}, event_ids, event_steps FROM {table} FINAL"
        f" WHERE id = {{id:String}}{by_time} AND deleted = 0" + _FINAL_SETTINGS,
        {"id": tx_id, "now": now, "id_ns": id_ns},
    )
    if not rows:
        return None
    row = rows[0]
    return _detail(config, row, events_by_id(store, row["event_ids"]), now)


def _detail(
    config: SlasConfig, row: dict[str, Any], stored: list[dict[str, Any]], now: int
) -> dict[str, Any]:
    """A transaction in full from its row and its stored hops (in time order)."""
    body = summary(row)
    step_of = dict(zip(row["event_ids"], row["event_steps"], strict=True))
    hops = [(_as_event(e), step_of.get(e["event_id"], "")) for e in stored]
    # Step detail is recomputed from the hops by the correlator's own pure core.
    tx = resummarize(config, row["workflow"], hops, now)
    body["steps"] = [step_detail(s) for s in tx.steps] if tx else []
    body["missed"] = [missed_detail(m) for m in tx.missed] if tx else []
    if tx is not None:
        body["status"], body["level"] = tx.status, tx.level or None
    body["awaiting"] = awaiting(config, tx) if tx is not None else None
    body["events"] = [event_detail(e, step_of.get(e["event_id"], "")) for e in stored]
    return body


def awaiting(config: SlasConfig, tx: Transaction) -> str | None:
    """The first required step an open transaction still waits for ("awaiting discharge")."""
    if tx.end_time:
        return None
    workflow = next((w for w in config.workflows if w.name == tx.workflow), None)
    if workflow is None:
        return None
    happened = {s.name for s in tx.steps if s.events}
    return next((s.name for s in workflow.steps if not s.optional and s.name not in happened), None)


def get_transactions(
    store: Store, tx_ids: Sequence[str], now: int, config: SlasConfig
) -> list[dict[str, Any]]:
    """Several transactions in full, as :func:`get_transaction` gives each, in two reads
    (for exports: a page of transactions costs two queries, not one per transaction)."""
    if not tx_ids:
        return []
    table = store.table(TRANSACTIONS.name)
    rows = store.dicts(
        f"SELECT {_SUMMARY}, event_ids, event_steps FROM {table} FINAL"
        " WHERE id IN {ids:Array(String)} AND deleted = 0" + _FINAL_SETTINGS,
        {"ids": list(tx_ids), "now": now},
    )
    wanted = [i for r in rows for i in r["event_ids"]]
    stored = {e["event_id"]: e for e in events_by_id(store, wanted)}
    by_id: dict[str, dict[str, Any]] = {}
    for row in rows:
        mine = sorted(
            (stored[i] for i in set(row["event_ids"]) if i in stored),
            key=lambda e: (e["time_ns"], e["event_id"]),
        )
        by_id[row["id"]] = _detail(config, row, mine, now)
    return [by_id[i] for i in tx_ids if i in by_id]


def events_by_id(store: Store, ids: Sequence[str]) -> list[dict[str, Any]]:
    if not ids:
        return []
    rows = store.dicts(
        f"SELECT {_EVENT_FIELDS} FROM {store.table('events')} FINAL"
        " WHERE event_id IN {ids:Array(String)} ORDER BY time_ns, event_id",
        {"ids": list(ids)},
    )
    return with_sources(store, rows)


def with_sources(store: Store, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each event row with every source that delivered it, first delivery first.

    A copy received later (an MLLP message re-imported from a file) replaces the
    event row; its provenance is kept in ``event_sources``: the event's source is
    its first delivery, and every later one is listed with its time.
    """
    if not rows:
        return rows
    found = store.rows(
        "SELECT event_id, source_kind, source, toUnixTimestamp64Nano(min(received_time))"
        f" AS first FROM {store.table('event_sources')}"
        " WHERE event_id IN {ids:Array(String)}"
        " GROUP BY event_id, source_kind, source ORDER BY event_id, first, source",
        {"ids": [r["event_id"] for r in rows]},
    )
    sources: dict[str, list[dict[str, Any]]] = {}
    for event_id, kind, source, first in found:
        sources.setdefault(event_id, []).append(
            {"source_kind": kind, "source": source, "received_time": iso(first)}
        )
    out = []
    for row in rows:
        delivered = sources.get(row["event_id"])
        if delivered:
            row = {**row, "source_kind": delivered[0]["source_kind"]}
            row["source"] = delivered[0]["source"]
        else:  # stored before deliveries were recorded: the event row is all there is
            delivered = [
                {
                    "source_kind": row["source_kind"],
                    "source": row["source"],
                    "received_time": iso(row["observed_ns"]),
                }
            ]
        out.append({**row, "sources": delivered})
    return out


def _as_event(row: dict[str, Any]) -> Event:
    return Event(
        event_id=row["event_id"],
        event_time=row["time_ns"],
        observed_time=row["observed_ns"],
        source_kind=row["source_kind"],
        source=row["source"],
        facility=row["facility"],
        system=row["system"],
        operation=row["operation"],
        status=row["status"],
        status_message=row["status_message"],
        duration_ns=row["duration_ns"],
        amount=row["amount"],
        trace_id=row["trace_id"],
        span_id=row["span_id"],
        keys=dict(row["keys"]),
        sent_time=row["sent_ns"] if row["sent_ns"] != row["time_ns"] else 0,
    )


def step_detail(step: StepResult) -> dict[str, Any]:
    return {
        "name": step.name,
        "count": step.events,
        "first_time": iso(step.first_time),
        "last_time": iso(step.last_time),
        "anchor_time": iso(step.anchor_time),
        "warn_deadline": iso(step.warn_at),
        "breach_deadline": iso(step.breach_at),
        "duration_seconds": step.duration_ns / 1e9
        if step.first_time and step.anchor_time
        else None,
        "missed": step.level or None,
        "late_by_seconds": step.late_by_ns / 1e9 if step.level else None,
        "amount": money(step.amount),
        "status": step.status or None,
    }


def missed_detail(missed: Missed) -> dict[str, Any]:
    return {
        "step": missed.step,
        "level": missed.level,
        "deadline": iso(missed.deadline),
        "actual": iso(missed.actual),
        "by_seconds": missed.by_ns / 1e9,
        "explanation": explain(missed),
    }


def facility_seen(store: Store, name: str) -> bool:
    """Whether any transaction carries this facility name (an undeclared one, kept as sent)."""
    table = store.table(TRANSACTIONS.name)
    return bool(
        store.rows(f"SELECT 1 FROM {table} WHERE facility = {{f:String}} LIMIT 1", {"f": name})
    )


def events_by_key(store: Store, values: Sequence[str], limit: int = 1000) -> list[dict[str, Any]]:
    """Every hop carrying one of these key values, oldest first, each with the
    transactions it belongs to (and as which step): matched or not."""
    rows = store.dicts(
        f"SELECT {_EVENT_FIELDS} FROM {store.table('events')} FINAL"
        " WHERE hasAny(mapValues(keys), {values:Array(String)})"
        " ORDER BY time_ns, event_id LIMIT {limit:UInt32}",
        {"values": list(values), "limit": limit},
    )
    if not rows:
        return []
    ids = [r["event_id"] for r in rows]
    table = store.table(TRANSACTIONS.name)
    # The transactions that hold these events, with each event's step in them.
    member_rows = store.rows(
        f"SELECT id, workflow, event_id, step FROM {table} FINAL"
        " ARRAY JOIN event_ids AS event_id, event_steps AS step"
        " WHERE deleted = 0 AND hasAny(event_ids, {ids:Array(String)})"
        " AND event_id IN {ids:Array(String)}" + _FINAL_SETTINGS,
        {"ids": ids},
    )
    members: dict[str, list[dict[str, str]]] = {}
    for tx_id, workflow, event_id, step in member_rows:
        members.setdefault(event_id, []).append(
            {"transaction_id": tx_id, "workflow": workflow, "step": step}
        )
    return [
        {**event_detail(r, ""), "transactions": sorted(members.get(r["event_id"], []), key=str)}
        for r in with_sources(store, rows)
    ]


def event_detail(row: dict[str, Any], step: str) -> dict[str, Any]:
    return {
        "event_id": row["event_id"],
        "step": step,
        "time": iso(row["time_ns"]),
        "sent_time": iso(row["sent_ns"]),
        "facility": row["facility"],
        "system": row["system"],
        "operation": row["operation"],
        "status": row["status"],
        "status_message": row["status_message"] or None,
        "source_kind": row["source_kind"],  # of the first delivery
        "source": row["source"],
        "sources": row.get("sources", []),  # every delivery, first one first
        "trace_id": row["trace_id"] or None,
        "span_id": row["span_id"] or None,
        "amount": money(row["amount"]),
        "keys": dict(row["keys"]),
    }
