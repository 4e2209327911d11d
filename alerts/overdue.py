"""The overdue rule's ledger: open transactions with a breach deadline, kept current.

The overdue rule asks which open transactions are past their breach deadline, per
workflow x facility. Asked of ``transactions`` (``conditions.overdue_rows``) that is
a FINAL read of the whole table every cycle: it grows with the table, and slows
further while the correlator's newest parts are not merged yet. ``open_deadlines``
holds the open ones only. The rollup refresh (``alerts/rollup.py``), which already
finds the transactions written since its mark, inserts for them the difference
between their newest state (+1 when open with a breach deadline) and what the
ledger holds (-1 each), in one statement; a closed transaction sums to nothing and
merges drop it. Right after a refresh ``overdue_rows`` here counts exactly what
``conditions.overdue_rows`` counts from ``transactions``.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

from alerts.conditions import OverdueRow
from alerts.schema import OPEN_DEADLINES
from stitchboard.store import Store

_COLS = "id, workflow, facility, breach_ns, amount"
# The same rows the scan counts (``conditions.overdue_rows``), whatever their deadline:
# whether it has passed is decided when the rule reads.
_OPEN = "deleted = 0 AND status IN ('in_progress', 'overdue') AND breach_deadline IS NOT NULL"


def _open_sql(source: str) -> str:
    """+1 for each open transaction of ``source`` (one row per transaction)."""
    # A missing amount is held as 0: the rule's amount threshold is > 0, so neither
    # counts as high-value, and both add 0 to the amount at risk.
    return (
        "SELECT id, workflow, facility, toUnixTimestamp64Nano(breach_deadline) AS breach_ns,"
        " ifNull(amount, toDecimal64(0, 2)) AS amount, toInt64(1) AS n"
        f" FROM {source} WHERE {_OPEN}"
    )


def insert_changes(store: Store, since: int, changed: str | None = None) -> None:
    """Bring the ledger up to date for the transactions written at or after ``since``.

    ``changed``: a table already holding the newest version of each of them (the rollup
    refresh stages one), read instead of ``transactions``.
    """
    transactions = store.table("transactions")
    ledger = store.table(OPEN_DEADLINES.name)
    # The newest version of each changed transaction; the filter applies after LIMIT BY
    # (a transaction that closed contributes nothing, and its -1 below removes it).
    newest = (
        "(SELECT id, workflow, facility, status, deleted, breach_deadline, amount"
        f" FROM {transactions} WHERE version >= {{since:UInt64}}"
        " ORDER BY version DESC LIMIT 1 BY id)"
        if changed is None
        else f"(SELECT * FROM {changed})"
    )
    ids = (
        f"SELECT id FROM {transactions} WHERE version >= {{since:UInt64}}"
        if changed is None
        else f"SELECT id FROM {changed}"
    )
    held = f"SELECT {_COLS}, -n AS n FROM {ledger} WHERE id IN ({ids})"
    store.command(
        f"INSERT INTO {ledger} ({_COLS}, n)"
        f" SELECT {_COLS}, sum(n) AS net FROM ({_open_sql(newest)} UNION ALL {held})"
        f" GROUP BY {_COLS} HAVING net != 0",
        {"since": since},
    )


def rebuild(store: Store) -> None:
    """The ledger from scratch: every open transaction (after the ledger was emptied)."""
    transactions = store.table("transactions")
    store.command(
        f"INSERT INTO {store.table(OPEN_DEADLINES.name)} ({_COLS}, n)"
        f" {_open_sql(f'{transactions} FINAL')}"
        " SETTINGS do_not_merge_across_partitions_select_final = 1"
    )


EXAMPLES = 5  # example transactions per alert


def overdue_rows(
    store: Store, threshold: float | None, now: int, window: int = 64
) -> list[OverdueRow]:
    """Open transactions past their breach deadline, per workflow x facility, from the
    ledger (as of the last refresh): the figures of ``conditions.overdue_rows``.

    Counts and sums add up over the ledger's rows as they lie (a closed transaction's
    -1 cancels its +1, merged or not), so no transaction is grouped on its own; only
    the examples need each one's net: they come from each group's ``window`` largest
    rows with the group's not yet merged -1 rows taken off (``_examples``). When a
    group has too many of those for that to be sure, every transaction is netted.
    """
    params = {"now": now, "threshold": threshold if threshold is not None else 1e30}
    sql = (
        "SELECT workflow, facility, sum(n) AS cnt,"
        " sumIf(n, amount >= {threshold:Float64}) AS high, sum(amount * n) AS total,"
        f" groupArraySortedIf({window})((-amount, id, breach_ns, n), n > 0) AS top,"
        f" groupArraySortedIf({window})((-amount, id, breach_ns, -n), n < 0) AS cancelled,"
        " sumIf(-n, n < 0) AS units"
        f" FROM {store.table(OPEN_DEADLINES.name)} WHERE breach_ns <= {{now:Int64}}"
        " GROUP BY workflow, facility HAVING cnt > 0 ORDER BY workflow, facility"
    )
    rows = store.rows(sql, params)
    # Up to ``units`` rows before a transaction's place can be duplicates or cancelled,
    # and its own rows may straddle the window's end: beyond this the examples could miss.
    if any(int(units) > (window - EXAMPLES - 1) // 2 for *_, units in rows):
        return _netted(store, params)
    return [
        OverdueRow(w, f, int(n), int(h), Decimal(t), _examples(top, cancelled))
        for w, f, n, h, t, top, cancelled, _ in rows
    ]


def _examples(
    top: list[tuple[Decimal, str, int, int]], cancelled: list[tuple[Decimal, str, int, int]]
) -> tuple[str, ...]:
    """The first ``EXAMPLES`` ids of ``top`` (largest amounts first, ties by id) left
    with units once the -1 rows (``cancelled``: same key, units) are taken off."""
    left: Counter[tuple[Decimal, str, int]] = Counter()
    for amount, tx_id, due, units in cancelled:
        left[(amount, tx_id, due)] += int(units)
    out: list[str] = []
    for amount, tx_id, due, units in top:
        key = (amount, tx_id, due)
        taken = min(int(units), left[key])
        left[key] -= taken
        if int(units) > taken and tx_id not in out:
            out.append(tx_id)
            if len(out) == EXAMPLES:
                break
    return tuple(out)


def _netted(store: Store, params: dict[str, Any]) -> list[OverdueRow]:
    """The same figures with every transaction netted first (slower, always exact)."""
    sql = (
        "SELECT workflow, facility, count() AS n,"
        " countIf(amount >= {threshold:Float64}) AS high, sum(amount) AS total,"
        # The five largest amounts (ties: the smaller id first), as the scan orders them.
        f" arrayMap(x -> x.2, groupArraySorted({EXAMPLES})((-amount, id))) AS examples"
        f" FROM (SELECT {_COLS} FROM {store.table(OPEN_DEADLINES.name)}"
        " WHERE breach_ns <= {now:Int64}"
        f" GROUP BY {_COLS} HAVING sum(n) > 0)"
        " GROUP BY workflow, facility ORDER BY workflow, facility"
    )
    return [
        OverdueRow(w, f, int(n), int(h), Decimal(t), tuple(ex))
        for w, f, n, h, t, ex in store.rows(sql, params)
    ]


def next_deadline(store: Store, threshold: float | None, after: int) -> int | None:
    """The earliest breach deadline (ns) after ``after`` of an open transaction worth at
    least ``threshold`` (one that pages by itself once overdue), as of the last refresh."""
    if threshold is None:
        return None
    value = store.scalar(
        f"SELECT min(breach_ns) FROM (SELECT breach_ns FROM {store.table(OPEN_DEADLINES.name)}"
        " WHERE breach_ns > {after:Int64} AND amount >= {threshold:Float64}"
        f" GROUP BY {_COLS} HAVING sum(n) > 0)",
        {"after": after, "threshold": threshold},
    )
    # min() over no rows is 0 in ClickHouse.
    return int(value) if value else None


def wake_at(
    now: int, next_tick: int, deadline: int | None, min_gap: int, margin: int
) -> int | None:
    """When to run an extra evaluation cycle for ``deadline`` (ns), or None.

    The regular cycle at ``next_tick`` would find the deadline passed up to a whole
    interval late; an extra cycle right after it (``margin`` later: the rule wants it
    passed) pages sooner. Cycles stay ``min_gap`` apart, so dense deadlines cost at most
    one extra cycle per ``min_gap``; none when the regular cycle comes first anyway.
    """
    if deadline is None:
        return None
    at = max(deadline + margin, now + min_gap)
    return at if at < next_tick else None
