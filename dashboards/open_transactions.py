"""The open set: every transaction in progress or overdue, kept current from versions.

"Overdue now", aging, DNFB and the most overdue look at every open transaction,
whenever it started: read from ``transactions`` (with FINAL) that is a read of the
whole table. ``open_transactions`` holds only the open ones (and, for DNFB, every
discharge not final billed whatever its status), with what those reads need
(``dashboards.schema``). The same refresh keeps ``decided_ledger``: each finished
transaction's outcome and the instant it was decided, summed by a view into
``decided_outcomes`` (sorted by that instant) for "outcomes decided in a window".

``transactions`` is rewritten on every change (newest ``version`` wins), so a view on
its inserts would keep every version. ``refresh`` works as the alerts stage's SLI
rollup does: the transactions written since the mark (``version >=`` it; versions
only grow, and the alerts stage's minmax index on ``version`` skips older granules)
are judged again, and their difference from what the open set holds for them is
inserted: +1 for a row that is open now, -1 for the row it replaces (or that closed).
Re-running a refresh inserts nothing new. The set is rebuilt from ``transactions``
when there is no mark yet or rows went away without a new version (TRUNCATE).

One process refreshes a store (the console in ``stitchboard serve``, under
``_LOCK``; a tool such as the benchmark on a store of its own). In the server,
``RefreshLoop`` refreshes it every ``INTERVAL_S`` seconds (and builds it at start), so
a page's own refresh before it reads finds little or nothing left to do.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time

from apscheduler.schedulers.background import BackgroundScheduler

from dashboards.schema import (
    DECIDED_LEDGER,
    DECIDED_OUTCOMES,
    OPEN_TRANSACTIONS,
    OPEN_TRANSACTIONS_MARKS,
)
from stitchboard.store import Store

log = logging.getLogger(__name__)
_LOCK = threading.Lock()
INTERVAL_S = 10.0

# The DNFB steps of the discharge workflow, kept per open row (``queries.dnfb``).
DISCHARGE_STEP, BILL_STEP = "discharge", "final_bill"

_COLUMNS = (
    "workflow, id_time, id, facility, status, start_ns, warn_ns, breach_ns, amount,"
    " discharged_ns, billed"
)
# One open row as the open set holds it, from a ``transactions`` row.
_OPEN_ROW = f"""workflow, id_time, id, facility, status,
    toUnixTimestamp64Nano(start_time) AS start_ns,
    ifNull(toUnixTimestamp64Nano(warn_deadline), 0) AS warn_ns,
    ifNull(toUnixTimestamp64Nano(breach_deadline), 0) AS breach_ns,
    ifNull(amount, toDecimal64(0, 2)) AS amount,
    arrayElement(step_first, indexOf(step_names, '{DISCHARGE_STEP}')) AS discharged_ns,
    arrayElement(step_counts, indexOf(step_names, '{BILL_STEP}')) AS billed"""
# Kept: open, or discharged and not final billed whatever its status (DNFB counts a failed
# discharge that was never billed too).
_KEPT = f"""deleted = 0 AND (status IN ('in_progress', 'overdue')
    OR (arrayElement(step_first, indexOf(step_names, '{DISCHARGE_STEP}')) > 0
        AND arrayElement(step_counts, indexOf(step_names, '{BILL_STEP}')) = 0))"""
# A finished transaction's outcome in ``decided_ledger``: when it was decided (its end, or
# its last hop for a failed one: ``transactions.decided_candidate``), and its start.
_DECIDED_COLUMNS = "id, workflow, facility, status, decided_ns, id_time_ns, amount"
_DECIDED_ROW = """id, workflow, facility, status, decided_candidate AS decided_ns,
    toUnixTimestamp64Nano(id_time) AS id_time_ns, ifNull(amount, toDecimal64(0, 2)) AS amount"""
_FINISHED = "deleted = 0 AND status IN ('complete', 'late', 'failed')"
# What the rows above read of a transaction row.
_SOURCE = (
    "workflow, id_time, id, facility, status, start_time, warn_deadline, breach_deadline,"
    " amount, step_names, step_first, step_counts, deleted, version, decided_candidate"
)


def _blocks(store: Store) -> tuple[int, int]:
    """The oldest and newest insert blocks ``transactions`` holds: the oldest moves only
    when rows are removed without a merge (TRUNCATE, a dropped partition), the newest
    with every insert (a merge keeps both)."""
    table = "transactions_local" if store.cluster else "transactions"
    first, last = store.rows(
        "SELECT ifNull(min(min_block_number), 0), ifNull(max(max_block_number), 0)"
        " FROM system.parts WHERE database = {db:String} AND table = {table:String} AND active",
        {"db": store.database, "table": table},
    )[0]
    return int(first), int(last)


def refresh(store: Store) -> bool:
    """Bring the open set up to date with ``transactions``; True when it was rebuilt."""
    with _LOCK:
        return _refresh(store)


def _refresh(store: Store) -> bool:
    transactions = store.table("transactions")
    held = store.table(OPEN_TRANSACTIONS.name)
    marks = store.rows(
        "SELECT watermark, watermark_rows, first_block, last_block FROM"
        f" {store.table(OPEN_TRANSACTIONS_MARKS.name)} ORDER BY version DESC LIMIT 1"
    )
    first_block, last_block = _blocks(store)
    rebuild = not marks or (marks[0][2] != 0 and first_block != marks[0][2])
    if not rebuild and last_block == marks[0][3]:
        return False  # nothing inserted since the mark
    since, judged_at_since = (0, 0) if rebuild else (int(marks[0][0]), int(marks[0][1]))
    # Counted before judging: a row written meanwhile is judged now or at the next refresh.
    newest, at_since = store.rows(
        "SELECT max(version), countIf(version = {since:UInt64})"
        f" FROM {transactions} WHERE version >= {{since:UInt64}}",
        {"since": since},
    )[0]
    newest, at_since = max(int(newest or 0), since), int(at_since)
    complete_at_since = at_since == judged_at_since
    at_newest = (
        at_since
        if newest == since
        else int(
            store.scalar(
                f"SELECT count() FROM {transactions} WHERE version = {{newest:UInt64}}",
                {"newest": newest},
            )
            or 0
        )
    )
    ledger = store.table(DECIDED_LEDGER.name)
    if rebuild:
        for table in (OPEN_TRANSACTIONS, DECIDED_LEDGER, DECIDED_OUTCOMES):
            store.truncate(table.name)
        store.command(
            f"INSERT INTO {held} ({_COLUMNS}, n) SELECT {_OPEN_ROW}, 1 AS n"
            f" FROM {transactions} FINAL WHERE {_KEPT}"
            " SETTINGS do_not_merge_across_partitions_select_final = 1"
        )
        store.command(
            f"INSERT INTO {ledger} ({_DECIDED_COLUMNS}, n) SELECT {_DECIDED_ROW}, 1 AS n"
            f" FROM {transactions} FINAL WHERE {_FINISHED}"
            " SETTINGS do_not_merge_across_partitions_select_final = 1"
        )
        # A large build lands in several parts that span the whole key: readers (FINAL)
        # would merge all of them on every read. One part; later diffs are small parts.
        store.command(f"OPTIMIZE TABLE {held} FINAL")
    elif newest > since or not complete_at_since:
        # The newest version of each transaction written since the mark (its newest of
        # all: versions only grow), open or not, against what the set holds for it. The
        # rows at the mark's version were judged unless more of them arrived since.
        lower = since + 1 if complete_at_since else since
        changed = (
            f"SELECT {_SOURCE} FROM {transactions} WHERE version >= {{lower:UInt64}}"
            " ORDER BY version DESC LIMIT 1 BY id"
        )
        store.command(
            f"INSERT INTO {held} ({_COLUMNS}, n) SELECT {_COLUMNS}, sum(n) AS net FROM ("
            f"SELECT {_OPEN_ROW}, 1 AS n FROM ({changed}) WHERE {_KEPT}"
            f" UNION ALL SELECT {_COLUMNS}, -n AS n FROM {held} WHERE id IN"
            f" (SELECT id FROM {transactions} WHERE version >= {{lower:UInt64}}))"
            f" GROUP BY {_COLUMNS} HAVING net != 0",
            {"lower": lower},
        )
        store.command(
            f"INSERT INTO {ledger} ({_DECIDED_COLUMNS}, n)"
            f" SELECT {_DECIDED_COLUMNS}, sum(n) AS net FROM ("
            f"SELECT {_DECIDED_ROW}, 1 AS n FROM ({changed}) WHERE {_FINISHED}"
            f" UNION ALL SELECT {_DECIDED_COLUMNS}, -n AS n FROM {ledger} WHERE id IN"
            f" (SELECT id FROM {transactions} WHERE version >= {{lower:UInt64}}))"
            f" GROUP BY {_DECIDED_COLUMNS} HAVING net != 0",
            {"lower": lower},
        )
    store.insert(
        OPEN_TRANSACTIONS_MARKS.name,
        ("watermark", "watermark_rows", "first_block", "last_block", "version"),
        [(newest, at_newest, first_block, last_block, time.time_ns())],
    )
    return rebuild


def decided_relation(store: Store) -> str:
    """Finished transactions by the instant their outcome was decided, brought up to date:
    a subquery with ``decided_ns, workflow, facility, status, id_time_ns, n, amount``
    (sums: read them with ``sum``)."""
    refresh(store)
    return f"{store.table(DECIDED_OUTCOMES.name)}"


def signed_relation(store: Store) -> str:
    """The open set, brought up to date, as its signed rows (``n``: +1 held, -1 taken
    back), read without FINAL: count with ``sum(n)``, add amounts as ``sum(amount * n)``,
    and pick rows with ``GROUP BY ... HAVING sum(n) > 0``. A row and the row that takes
    it back carry the same columns, so any filter on them keeps or drops both; the sums
    are those of the merged set however many parts it lies in (FINAL would merge the
    parts again on every read)."""
    refresh(store)
    return store.table(OPEN_TRANSACTIONS.name)


class RefreshLoop:
    """The server's component: APScheduler runs ``refresh`` every ``INTERVAL_S`` seconds,
    the first time right away (off the event loop)."""

    name = "console-open-set"

    def __init__(self, store: Store, interval_s: float = INTERVAL_S):
        self.store = store
        self.interval_s = interval_s
        self.scheduler = BackgroundScheduler(timezone="UTC")

    def run_once(self) -> None:
        try:
            refresh(self.store)
        except Exception:  # noqa: BLE001 - a failed refresh is retried at the next one
            log.exception("console open set refresh failed")

    async def start(self) -> None:
        self.scheduler.add_job(
            self.run_once,
            "interval",
            seconds=self.interval_s,
            id="console-open-set",
            max_instances=1,
            coalesce=True,
            next_run_time=dt.datetime.now(dt.UTC),
        )
        self.scheduler.start()

    async def stop(self) -> None:
        await asyncio.to_thread(self.scheduler.shutdown, True)

    def describe(self) -> str:
        return f"console open set: refreshed every {self.interval_s:g}s"
