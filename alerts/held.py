"""What the SLI ledger holds for each SLO and transaction, looked up by key.

A refresh judges the changed transactions again and inserts into ``slo_ledger`` the
difference from what the ledger holds for them (``alerts/rollup.py``). Asked of the
ledger itself (ordered by SLO and id), that lookup reads every granule a changed id
falls in; claims and purchase orders complete weeks after they start, so the ids a
refresh judges again lie all over the window, and even 1,000 of them touch nearly
every granule (14 M ledger rows at 10 M transactions: most of a second). ``slo_held``
keeps the same judgements by key (the SLO, NUL, the id) in a key-value table, where a
lookup costs per key, whatever the size of the ledger.

One refresh: ``stage_changed`` copies the newest version of each changed transaction
(the columns a judgement reads) into ``slo_refresh_changed``, so ``transactions`` is
read once, not once per SLO (the overdue ledger's step reads it too); ``stage`` puts
the new judgements (+1) and what is held (-1) for them into ``slo_refresh_scratch``;
``ledger_diff`` is their net (what the ledger gets); ``advance`` writes each key's new
judgement back (or a tombstone, n = 0, when it no longer counts).

The ledger and ``slo_held`` are written by separate statements, so a crash between
them would leave them apart. ``slo_held_marks`` names the rollup mark the table
matches: ``dirty`` from before a refresh writes until its mark is taken. A refresh
that finds another token than the latest mark's version rebuilds, as after a
truncate. On a cluster each server keeps its own ``slo_held`` (it is not replicated),
so a refresh that reaches another server than the last one rebuilds too.
"""

from __future__ import annotations

from typing import Any

from alerts.schema import SLO_HELD, SLO_HELD_MARKS, SLO_LEDGER, SLO_REFRESH_SCRATCH
from alerts.sli import JUDGED_COLUMNS
from stitchboard.config.slos import Slo
from stitchboard.store import Store

COLS = "slo, id, facility, labels, minute, kind, due_ns, amount"
_KEY = "concat(slo, '\\0', id)"
_TOKEN = "rollup"
DIRTY = "dirty"
CHANGED = "slo_refresh_changed"


def token(store: Store) -> str | None:
    """The rollup mark (its version) the held judgements match, ``DIRTY``, or None."""
    value = store.scalar(
        f"SELECT token FROM {store.table(SLO_HELD_MARKS)} WHERE name = {{name:String}}",
        {"name": _TOKEN},
    )
    return None if value is None else str(value)


def set_token(store: Store, value: str) -> None:
    store.insert(SLO_HELD_MARKS, ("name", "token"), [(_TOKEN, value)])


def clear(store: Store) -> None:
    # Not ``store.truncate``: these tables are each server's own, never Distributed.
    for table in (SLO_HELD, SLO_REFRESH_SCRATCH):
        store.command(f"TRUNCATE TABLE IF EXISTS {store.table(table)}")


def fill_from_ledger(store: Store) -> None:
    """After a rebuild, when the ledger holds one +1 row per judgement."""
    store.command(
        f"INSERT INTO {store.table(SLO_HELD)} (key, {COLS}, n)"
        f" SELECT {_KEY}, {COLS}, n FROM {store.table(SLO_LEDGER.name)} WHERE n != 0"
    )


def stage_changed(store: Store, since: int) -> str:
    """``slo_refresh_changed`` := the newest version of each transaction written at or
    after ``since``, the columns a judgement reads (a table of the engine's memory, made
    anew each time: its columns follow ``transactions``'). Returns its name."""
    table = store.table(CHANGED)
    store.command(f"DROP TABLE IF EXISTS {table}")
    store.command(
        f"CREATE TABLE {table} ENGINE = Memory AS SELECT {JUDGED_COLUMNS}"
        f" FROM {store.table('transactions')} WHERE version >= {int(since)}"
        " ORDER BY version DESC LIMIT 1 BY id"
    )
    return table


def stage(store: Store, slos: list[Slo], judged: list[str], params: dict[str, Any]) -> None:
    """The scratch table := the new judgements of the staged changed transactions
    (``judged``: a SELECT of ``COLS`` and n = +1 per SLO) and what is held for them
    (n = -1)."""
    scratch = store.table(SLO_REFRESH_SCRATCH)
    store.command(f"TRUNCATE TABLE {scratch}")
    # The keys: each changed transaction under every SLO of its workflow.
    held = (
        f"SELECT {COLS}, -n AS n FROM {store.table(SLO_HELD)} WHERE key IN"
        f" (SELECT concat(held_slo, '\\0', id) FROM {store.table(CHANGED)}"
        " ARRAY JOIN {held_slos:Array(String)} AS held_slo,"
        " {held_workflows:Array(String)} AS held_workflow"
        " WHERE held_workflow = workflow) AND n != 0"
    )
    store.command(
        f"INSERT INTO {scratch} (key, {COLS}, n) SELECT {_KEY}, {COLS}, n"
        f" FROM ({' UNION ALL '.join([*judged, held])})",
        {
            **params,
            "held_slos": [slo.name for slo in slos],
            "held_workflows": [slo.indicator.workflow for slo in slos],
        },
    )


def ledger_diff(store: Store) -> str:
    """The net change the staged judgements make to the ledger (``COLS``, n)."""
    return (
        f"SELECT {COLS}, sum(n) AS net FROM {store.table(SLO_REFRESH_SCRATCH)}"
        f" GROUP BY {COLS} HAVING net != 0"
    )


def advance(store: Store) -> None:
    """Hold each staged key's new judgement (the +1 row), or nothing (n = 0)."""
    picked = ", ".join(
        f"argMax({c}, n)" for c in ("facility", "labels", "minute", "kind", "due_ns", "amount")
    )
    store.command(
        f"INSERT INTO {store.table(SLO_HELD)} (key, {COLS}, n)"
        f" SELECT key, any(slo), any(id), {picked}, toInt64(max(n) > 0)"
        f" FROM {store.table(SLO_REFRESH_SCRATCH)} GROUP BY key"
    )
