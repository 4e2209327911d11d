"""Legal holds: transactions an auditor has frozen; retention never prunes their events.

Setting and releasing a hold is audited (by the route or command that does it).
Rows are versioned: a release inserts the hold again with ``released = 1``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from stitchboard.errors import InvalidInput
from stitchboard.store import Store
from stitchboard.store.ddl import SchemaContext, Table
from stitchboard.store.schema import Migration

LEGAL_HOLDS = Table(
    name="legal_holds",
    columns="""\
    transaction_id String,
    reason String,
    created_by String,
    created_at DateTime64(3, 'UTC'),
    released UInt8,
    updated_at DateTime64(6, 'UTC') DEFAULT now64(6)""",
    engine="ReplacingMergeTree(updated_at)",
    tail="ORDER BY transaction_id",
    shard_key="cityHash64(transaction_id)",
)

MIGRATIONS = (Migration(42, "legal holds", lambda ctx: SchemaContext.create(ctx, LEGAL_HOLDS)),)


@dataclass(frozen=True)
class Hold:
    transaction_id: str
    reason: str
    created_by: str
    created_at: dt.datetime


def _check_id(transaction_id: str) -> str:
    if not transaction_id.isalnum() or len(transaction_id) > 64:
        raise InvalidInput(f"bad transaction id {transaction_id!r}")
    return transaction_id


def set_hold(
    store: Store, transaction_id: str, reason: str, by: str, now: dt.datetime | None = None
) -> Hold:
    if not reason.strip():
        raise InvalidInput("a legal hold needs a reason")
    hold = Hold(_check_id(transaction_id), reason.strip(), by, now or dt.datetime.now(dt.UTC))
    store.insert(
        "legal_holds",
        ["transaction_id", "reason", "created_by", "created_at", "released"],
        [[hold.transaction_id, hold.reason, hold.created_by, hold.created_at, 0]],
    )
    return hold


def release_hold(store: Store, transaction_id: str) -> Hold:
    current = {h.transaction_id: h for h in list_holds(store)}.get(_check_id(transaction_id))
    if current is None:
        raise InvalidInput(f"no legal hold on {transaction_id!r}")
    store.insert(
        "legal_holds",
        ["transaction_id", "reason", "created_by", "created_at", "released"],
        [[current.transaction_id, current.reason, current.created_by, current.created_at, 1]],
    )
    return current


def list_holds(store: Store) -> list[Hold]:
    rows = store.rows(
        "SELECT transaction_id, reason, created_by, created_at"
        f" FROM {store.table('legal_holds')} FINAL WHERE released = 0 ORDER BY created_at"
    )
    return [
        Hold(t, r, b, c.replace(tzinfo=dt.UTC) if c.tzinfo is None else c) for t, r, b, c in rows
    ]
