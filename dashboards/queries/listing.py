"""The transactions grid's read: newest first, by the sorting key, a page at a time.

``transactions`` is sorted by ``(workflow, id_time, id)``. Newest first across every
workflow cannot read that key in order, and a bound on the start time alone (what the
grid's range filters) does not narrow it: such a read merges (FINAL) every row of the
range before it keeps the newest hundred. This read bounds ``id_time`` instead, from the
top down: it asks the newest hour, then a day, a week, five weeks, and only then all of
time, and stops at the first window that holds a full page.

That is exact: a window ``id_time >= floor`` that holds ``limit + 1`` matches holds the
newest ``limit + 1`` of all of them, because every match outside it has an earlier
``id_time``. The start time filter stays in every read (``id_time <= start_time``, so a
match of the range may have started its clock after its earliest event), and the last
read, with no floor, is the full one. Pages follow by keyset: the cursor is the last
row's ``(id_time, id)``, never an OFFSET.

Status is the status now (``STATUS_NOW``): an open transaction past a deadline
is overdue from that instant. A key search reads ``transaction_keys`` by value first
and the transactions by their full sorting key.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from correlator import TransactionFilter, transaction_where
from dashboards.queries.common import STATUS_NOW
from stitchboard.store import Store

NS = 1_000_000_000
HOUR_NS = 3600 * NS
# How far below the top each read looks before the last one, which looks at all of time.
WINDOWS_NS: tuple[int, ...] = (HOUR_NS, 24 * HOUR_NS, 7 * 24 * HOUR_NS, 35 * 24 * HOUR_NS)

Cursor = tuple[int, str]  # the last row shown: (id_time in ns, id)

_FINAL = " SETTINGS do_not_merge_across_partitions_select_final = 1"
_COLUMNS = f"""id, workflow, facility, {STATUS_NOW} AS status_now,
    toUnixTimestamp64Nano(id_time) AS id_ns, toUnixTimestamp64Nano(start_time) AS start_ns,
    duration_ns, toString(amount) AS amount_text, flags, key_names, key_values"""


@dataclass(frozen=True)
class Listed:
    """One transaction as the grid and its CSV show it."""

    id: str
    workflow: str
    facility: str
    status: str  # now
    id_ns: int  # the earliest event: the order of the list
    start_ns: int
    duration_ns: int | None
    amount: Decimal | None
    flags: tuple[str, ...]
    keys: dict[str, list[str]] = field(default_factory=dict)


def _listed(row: dict[str, Any]) -> Listed:
    keys: dict[str, list[str]] = {}
    for name, value in zip(row["key_names"], row["key_values"], strict=True):
        keys.setdefault(str(name), []).append(str(value))
    duration = row["duration_ns"]
    text = row["amount_text"]
    return Listed(
        id=str(row["id"]),
        workflow=str(row["workflow"]),
        facility=str(row["facility"]),
        status=str(row["status_now"]),
        id_ns=int(row["id_ns"]),
        start_ns=int(row["start_ns"]),
        duration_ns=None if duration is None else int(duration),
        amount=None if text in (None, "", "\\N") else Decimal(text),
        flags=tuple(str(f) for f in row["flags"]),
        keys=keys,
    )


def newest(
    store: Store, where: TransactionFilter, limit: int, now: int, after: Cursor | None = None
) -> tuple[list[Listed], Cursor | None]:
    """Up to ``limit`` transactions matching ``where`` (its ``after`` is ignored: pass the
    cursor as ``after``), newest first by their earliest event, below the cursor; and the
    cursor of the next page (None on the last)."""
    # The correlator's filter, so the grid and the transactions API select the same rows.
    clauses, params = transaction_where(store, replace(where, after=after), now)
    params["limit"] = limit + 1
    table = store.table("transactions")
    top = after[0] if after is not None else where.until if where.until is not None else now
    # A key search names its few transactions: one read, no windows.
    floors = [] if where.key_values else [top - w for w in WINDOWS_NS if top - w > 0]
    for floor in [*floors, None]:
        bounded = list(clauses)
        if floor is not None:
            bounded.append("id_time >= fromUnixTimestamp64Nano({floor:Int64})")
            params["floor"] = floor
        rows = store.dicts(
            f"SELECT {_COLUMNS} FROM {table} FINAL WHERE {' AND '.join(bounded)}"
            " ORDER BY id_time DESC, id DESC LIMIT {limit:UInt32}" + _FINAL,
            params,
        )
        if floor is None or len(rows) > limit:
            break
    page = [_listed(r) for r in rows[:limit]]
    cursor = (page[-1].id_ns, page[-1].id) if len(rows) > limit else None
    return page, cursor
