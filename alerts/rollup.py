"""The SLI rollup: judged transactions per SLO, group, minute and kind, kept current.

Counting every SLO straight from ``transactions`` costs a scan of the table per
SLO. The evaluator instead keeps ``slo_rollup`` current and counts from it
(``rollup_relation``); right after a refresh the figures are the scan's
(``sli.scan_relation``) exactly, because both count the rows of ``sli.judgements_sql``.

``transactions`` is a ReplacingMergeTree rewritten on every change, so a view on
its inserts would count every version. ``refresh`` works from versions instead:
the transactions written since the last refresh (``version >=`` the mark; versions
only grow) are judged again, and the difference from what the ledger holds for
them (each transaction's current contribution per SLO) is inserted: +1 for a new
judgement, -1 for the one it replaces. What the ledger holds is looked up by key in
``slo_held`` (``alerts/held.py``), not in the ledger: the changed ids lie all over the
window, and a lookup in the ledger's order would read nearly all of it. One insert
does it for every SLO (one new part of the ledger and of the rollup per refresh); a
rebuild goes one SLO per statement. A crash part way is found by ``slo_held``'s token
and rebuilds. The ledger feeds ``slo_rollup`` through a materialized view in the same
insert.

The same refresh keeps ``open_deadlines`` (``alerts/overdue.py``), what the overdue
rule reads, by the same difference.

The rollup is rebuilt from scratch when the SLO definitions it was built for
change (indicator or grouping), or when transaction rows went away without a new
version (the table was truncated or a partition dropped).

One process refreshes a store (the server's evaluation, under the alerts state
lock): two refreshing the same store at once could both insert one difference.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

from alerts import held, overdue
from alerts.repository import STATE_LOCK
from alerts.schema import OPEN_DEADLINES, SLO_HELD, SLO_LEDGER, SLO_ROLLUP, SLO_ROLLUP_MARKS
from alerts.sli import Relation, judgements_sql, scan_relation
from stitchboard.config.slos import Slo
from stitchboard.store import Store


@dataclass(frozen=True)
class Refresh:
    rebuilt: bool
    since: int  # transactions with a version >= this were judged again
    upto: int  # the newest version seen
    seconds: float
    as_of: int = 0  # ns: every transaction version written before it was judged


# The ledgers a refresh keeps: a store built before one of them existed is rebuilt once.
_LEDGERS = [SLO_LEDGER.name, OPEN_DEADLINES.name, SLO_HELD]


def signature(slos: list[Slo]) -> str:
    """What the ledgers depend on: each SLO's name, indicator and grouping."""
    spec: list[Any] = [
        [s.name, s.indicator.workflow, s.indicator.step, s.indicator.threshold, s.grouping]
        for s in slos
    ]
    spec.append(_LEDGERS)
    return hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:16]


def _first_block(store: Store) -> int:
    """The oldest insert block still held by ``transactions`` (grows only when rows are
    removed without a merge: TRUNCATE, a dropped partition)."""
    table = "transactions_local" if store.cluster else "transactions"
    value = store.scalar(
        "SELECT ifNull(min(min_block_number), 0) FROM system.parts"
        " WHERE database = {db:String} AND table = {table:String} AND active",
        {"db": store.database, "table": table},
    )
    return int(value or 0)


class _Mark(NamedTuple):
    signature: str
    watermark: int
    first_block: int
    at_watermark: int
    version: int


def _mark(store: Store) -> _Mark | None:
    rows = store.rows(
        "SELECT signature, watermark, first_block, watermark_rows, version FROM"
        f" {store.table(SLO_ROLLUP_MARKS.name)} ORDER BY version DESC LIMIT 1"
    )
    if not rows:
        return None
    signature_, watermark, first_block, at_watermark, version = rows[0]
    return _Mark(str(signature_), int(watermark), int(first_block), int(at_watermark), int(version))


def _changed_source(store: Store) -> str:
    """The newest version of each changed transaction of the workflow, as staged by
    ``held.stage_changed``."""
    return f"(SELECT * FROM {store.table(held.CHANGED)} WHERE workflow = {{workflow:String}})"


_COLS = "id, facility, labels, minute, kind, due_ns, amount"


def _judged(store: Store, slo: Slo, n: int, rebuild: bool) -> tuple[str, dict[str, Any]]:
    """One SLO's judgements (+1) of the changed transactions (of all of them for a
    rebuild), with parameters of its own (``_n``)."""
    transactions = store.table("transactions")
    source = f"{transactions} FINAL" if rebuild else _changed_source(store)
    new = judgements_sql(slo, source).replace("{transactions}", transactions)
    sql = f"SELECT {{slo:String}} AS slo, {_COLS}, n FROM ({new})"
    params: dict[str, Any] = {"slo": slo.name, "workflow": slo.indicator.workflow}
    if slo.indicator.step is not None:
        params["step"] = slo.indicator.step
    for name in params:
        sql = sql.replace(f"{{{name}:String}}", f"{{{name}_{n}:String}}")
    return sql, {f"{name}_{n}": value for name, value in params.items()}


def _judged_branches(
    store: Store, slos: list[Slo], rebuild: bool
) -> tuple[list[str], dict[str, Any]]:
    params: dict[str, Any] = {}
    branches = []
    for n, slo in enumerate(slos):
        sql, more = _judged(store, slo, n, rebuild)
        branches.append(sql)
        params.update(more)
    return branches, params


def _rebuild_slo(store: Store, slo: Slo) -> None:
    """One SLO's judgements of every transaction into the (emptied) ledger."""
    [sql], params = _judged_branches(store, [slo], rebuild=True)
    store.command(
        f"INSERT INTO {store.table(SLO_LEDGER.name)} (slo, {_COLS}, n)"
        f" SELECT slo, {_COLS}, sum(n) AS net FROM ({sql})"
        f" GROUP BY slo, {_COLS} HAVING net != 0",
        params,
    )


def _insert_diff(store: Store, slos: list[Slo]) -> None:
    """Insert the net change of these SLOs' judgements of the changed transactions (as
    staged) into the ledger (one new part of the ledger and of the rollup), and hold the
    new ones."""
    branches, params = _judged_branches(store, slos, rebuild=False)
    held.stage(store, slos, branches, params)
    store.command(
        f"INSERT INTO {store.table(SLO_LEDGER.name)} (slo, {_COLS}, n) {held.ledger_diff(store)}"
    )
    held.advance(store)


class _Plan(NamedTuple):
    signature: str
    first_block: int
    rebuild: bool
    since: int
    at_since: int  # transaction rows with version ``since`` the last refresh judged


def _plan(store: Store, slos: list[Slo]) -> _Plan:
    wanted = signature(slos)
    first_block = _first_block(store)
    mark = _mark(store)
    # The oldest block moved: rows went away (an empty table's first block is 0).
    removed = mark is not None and mark.first_block != 0 and first_block != mark.first_block
    # What is held by key no longer matches the mark (a refresh stopped part way).
    apart = mark is not None and held.token(store) != str(mark.version)
    rebuild = mark is None or mark.signature != wanted or removed or apart
    since = 0 if rebuild or mark is None else mark.watermark
    return _Plan(wanted, first_block, rebuild, since, 0 if mark is None else mark.at_watermark)


def refresh(store: Store, slos: list[Slo]) -> Refresh:
    """Bring the rollup up to date with ``transactions`` for these SLOs."""
    done = _refresh(store, slos, rebuild=True)
    if done is None:  # pragma: no cover - a rebuild is allowed here
        raise RuntimeError("the rollup refresh declined a rebuild")
    return done


def _refresh(store: Store, slos: list[Slo], rebuild: bool) -> Refresh | None:
    """``rebuild``: whether a rebuild may be done (else None when one is needed)."""
    started = time.perf_counter()
    as_of = time.time_ns()  # every version written before this instant is read below
    plan = _plan(store, slos)
    if plan.rebuild and not rebuild:
        return None
    since = plan.since
    # Only the rows written since the mark (the version index skips the rest); none: the
    # mark stays where it was. Rows are counted before they are judged: a row that
    # arrives in between is judged and not counted, so the next refresh looks again.
    transactions = store.table("transactions")
    newest, changed, at_since = store.rows(
        "SELECT max(version), groupUniqArray(workflow), countIf(version = {since:UInt64})"
        f" FROM {transactions} WHERE version >= {{since:UInt64}}",
        {"since": since},
    )[0]
    upto = max(int(newest or 0), since)
    if not plan.rebuild and upto == since and int(at_since) == plan.at_since:
        # Nothing written since the last refresh: nothing to judge, no mark to move.
        return Refresh(False, since, upto, time.perf_counter() - started, as_of)
    at_upto = (
        int(at_since)
        if upto == since
        else int(
            store.scalar(
                f"SELECT count() FROM {transactions} WHERE version = {{upto:UInt64}}",
                {"upto": upto},
            )
            or 0
        )
    )
    due = [slo for slo in slos if slo.indicator.workflow in changed]
    held.set_token(store, held.DIRTY)  # until the mark below is taken
    if plan.rebuild:
        for table in (SLO_LEDGER, SLO_ROLLUP, OPEN_DEADLINES):
            store.truncate(table.name)
        held.clear(store)
        # A rebuild judges every transaction: one SLO per statement bounds its memory.
        for slo in due:
            _rebuild_slo(store, slo)
        held.fill_from_ledger(store)
        overdue.rebuild(store)
    else:
        changed = held.stage_changed(store, since)
        if due:
            _insert_diff(store, due)
        overdue.insert_changes(store, since, changed)
    version = time.time_ns()
    held.set_token(store, str(version))
    store.insert(
        SLO_ROLLUP_MARKS.name,
        ("signature", "watermark", "first_block", "version", "watermark_rows"),
        [(plan.signature, upto, plan.first_block, version, at_upto)],
    )
    return Refresh(plan.rebuild, since, upto, time.perf_counter() - started, as_of)


@dataclass(frozen=True)
class Snapshot:
    """Where a reader counts from, and as of when: every transaction written before
    ``as_of`` is counted (later writes may be too)."""

    relation: Relation
    as_of: dt.datetime
    source: str  # "rollup" or "transactions" (a scan, exact at the moment it runs)


@contextmanager
def snapshot(store: Store, slos: list[Slo], wait_s: float = 10.0) -> Iterator[Snapshot]:
    """For a reader (the API): the rollup caught up, or a scan; count inside the block.

    The rollup is refreshed and read under the alerts state lock (one refresher at a
    time, so nothing changes it while the reader counts). When the rollup needs a
    rebuild (never built, the SLOs changed, rows went away: tens of seconds at 10M
    transactions, which the evaluation does), or the lock stays taken longer than
    ``wait_s`` (a rebuild under way), the reader scans ``transactions`` instead:
    slower, never wrong.
    """
    if not STATE_LOCK.acquire(timeout=wait_s):
        yield _scan()
        return
    try:
        done = _refresh(store, slos, rebuild=False)
    except BaseException:
        STATE_LOCK.release()
        raise
    if done is None:
        STATE_LOCK.release()  # a scan needs no lock: the evaluation may rebuild meanwhile
        yield _scan()
        return
    try:
        moment = dt.datetime.fromtimestamp(done.as_of / 1e9, dt.UTC)
        yield Snapshot(rollup_relation, moment, "rollup")
    finally:
        STATE_LOCK.release()


def _scan() -> Snapshot:
    return Snapshot(scan_relation, dt.datetime.now(dt.UTC), "transactions")


def refreshed_at(store: Store) -> int | None:
    """When the rollup was last brought up to date (ns: each refresh records a mark whose
    version is the wall-clock time it was taken); None if it never was."""
    value = store.scalar(f"SELECT max(version) FROM {store.table(SLO_ROLLUP_MARKS.name)}")
    return int(value) if value else None


def rollup_relation(store: Store, slo: Slo) -> tuple[str, dict[str, Any]]:
    """Counts from the rollup (current as of the last ``refresh``)."""
    sql = (
        "SELECT facility, labels, minute, kind, due_ns, n, amount"
        f" FROM {store.table(SLO_ROLLUP.name)} WHERE slo = {{rollup_slo:String}}"
    )
    return sql, {"rollup_slo": slo.name}
