"""Reading transactions: the one interface alerts, dashboards and exports use.

``TransactionReader`` is what a reader needs (a filtered page of summaries, one
transaction in detail, both evaluated at ``now``). ``StoreTransactions`` reads
what the correlator wrote to ClickHouse; ``MemoryTransactions`` correlates a list
of events in memory with the same pure core and answers in the same shapes, for
tests of the stages that read transactions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from correlator.engine import Correlator, resummarize
from correlator.explanations import money
from correlator.queries import (
    TransactionFilter,
    awaiting,
    encode_cursor,
    event_detail,
    get_transaction,
    get_transactions,
    iso,
    list_transactions,
    missed_detail,
    step_detail,
)
from correlator.transaction import Transaction
from stitchboard.config.model import SlasConfig
from stitchboard.events import Event
from stitchboard.store import Store


class TransactionReader(Protocol):
    def list_transactions(
        self, where: TransactionFilter, limit: int, now: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Summaries matching ``where``, newest first (by the earliest event), at most
        ``limit``, and a cursor for the next page (``None`` on the last)."""
        ...

    def get_transaction(self, transaction_id: str, now: int) -> dict[str, Any] | None:
        """One transaction with its steps, missed deadlines and events; None if unknown."""
        ...


class StoreTransactions:
    """Transactions as the correlator stored them (ClickHouse)."""

    def __init__(self, store: Store, config: SlasConfig):
        self.store = store
        self.config = config

    def list_transactions(
        self, where: TransactionFilter, limit: int, now: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        return list_transactions(self.store, where, limit, now)

    def get_transaction(self, transaction_id: str, now: int) -> dict[str, Any] | None:
        return get_transaction(self.store, transaction_id, now, self.config)

    def get_transactions(self, transaction_ids: Sequence[str], now: int) -> list[dict[str, Any]]:
        """Several transactions as ``get_transaction`` gives each, in two reads (exports)."""
        return get_transactions(self.store, transaction_ids, now, self.config)


class MemoryTransactions:
    """Transactions correlated in memory from the events given (amounts as given).

    Everything is evaluated at ``now``, ``missed_steps`` included (the store keeps that
    one as of the correlator's last write of the transaction).
    """

    def __init__(self, config: SlasConfig, events: Iterable[Event] = ()):
        self.config = config
        self.events: dict[str, Event] = {}
        self.add(events)

    def add(self, events: Iterable[Event]) -> None:
        for event in events:
            self.events.setdefault(event.event_id, event)

    def _transactions(self, now: int) -> list[Transaction]:
        correlator = Correlator(self.config)
        correlator.add(self.events.values())
        return correlator.transactions(now)

    def list_transactions(
        self, where: TransactionFilter, limit: int, now: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        found = sorted(
            (tx for tx in self._transactions(now) if _matches(tx, where)),
            key=lambda tx: (tx.id_time, tx.id),
            reverse=True,
        )
        page = found[:limit]
        cursor = None
        if len(found) > limit:
            cursor = encode_cursor(page[-1].id_time, page[-1].id)
        return [transaction_summary(tx) for tx in page], cursor

    def get_transaction(self, transaction_id: str, now: int) -> dict[str, Any] | None:
        tx = next((t for t in self._transactions(now) if t.id == transaction_id), None)
        if tx is None:
            return None
        body = transaction_summary(tx)
        events = sorted(
            (self.events[i] for i in tx.event_ids), key=lambda e: (e.event_time, e.event_id)
        )
        step_of = dict(zip(tx.event_ids, tx.event_steps, strict=True))
        again = resummarize(
            self.config, tx.workflow, [(e, step_of[e.event_id]) for e in events], now
        )
        body["steps"] = [step_detail(s) for s in again.steps] if again else []
        body["missed"] = [missed_detail(m) for m in again.missed] if again else []
        if again is not None:
            body["status"], body["level"] = str(again.status), str(again.level) or None
        body["awaiting"] = awaiting(self.config, again) if again is not None else None
        body["events"] = [event_detail(_stored(e), step_of[e.event_id]) for e in events]
        return body


def _matches(tx: Transaction, where: TransactionFilter) -> bool:
    if where.workflow and tx.workflow != where.workflow:
        return False
    if where.facility and tx.facility != where.facility:
        return False
    if where.status and tx.status != where.status:
        return False
    if where.flag and where.flag not in tx.flags:
        return False
    if where.key_values and not {v for _, v in tx.keys} & set(where.key_values):
        return False
    if where.since is not None and tx.start_time < where.since:
        return False
    if where.until is not None and (tx.start_time >= where.until or tx.id_time >= where.until):
        return False
    return where.after is None or (tx.id_time, tx.id) < where.after


def transaction_summary(tx: Transaction) -> dict[str, Any]:
    """The summary of ``queries.summary`` for a transaction held in memory."""
    keys: dict[str, list[str]] = {}
    for name, value in tx.keys:
        keys.setdefault(name, []).append(value)
    return {
        "id": tx.id,
        "workflow": tx.workflow,
        "facility": tx.facility,
        "status": str(tx.status),
        "level": str(tx.level) or None,
        "start_time": iso(tx.start_time),
        "end_time": iso(tx.end_time),
        "last_time": iso(tx.last_time),
        "duration_seconds": tx.duration_ns / 1e9 if tx.end_time else None,
        "warn_deadline": iso(tx.warn_deadline),
        "breach_deadline": iso(tx.breach_deadline),
        "flags": [str(f) for f in tx.flags],
        "missed_steps": sorted({m.step for m in tx.missed}),
        "amount": money(tx.amount),
        "event_count": len(tx.event_ids),
        "error_count": tx.error_count,
        "keys": keys,
    }


def _stored(event: Event) -> dict[str, Any]:
    """An event as ``queries.events_by_id`` returns it."""
    return {
        "event_id": event.event_id,
        "time_ns": event.event_time,
        "sent_ns": event.sent,
        "observed_ns": event.observed_time,
        "facility": event.facility,
        "system": event.system,
        "operation": event.operation,
        "status": event.status,
        "status_message": event.status_message,
        "source_kind": event.source_kind,
        "source": event.source,
        "trace_id": event.trace_id,
        "span_id": event.span_id,
        "amount": event.amount,
        "keys": dict(event.keys),
        # One delivery: the event as it was received (``queries.with_sources``).
        "sources": [
            {
                "source_kind": event.source_kind,
                "source": event.source,
                "received_time": iso(event.observed_time),
            }
        ],
    }
