"""The overview's reads: outcomes started or decided in a window, overdue now, DNFB."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from dashboards import open_transactions
from dashboards.queries.common import (
    _FINAL,
    _OPEN_OVERDUE,
    _OPEN_STATUS,
    _STATUS_NOW,
    DAY_NS,
    Scope,
    _open_where,
)
from stitchboard.store import Store

# -- overview -------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """Transactions of one group by status now; on time = complete of the decided ones."""

    total: int = 0
    complete: int = 0
    late: int = 0
    overdue: int = 0
    failed: int = 0
    in_progress: int = 0
    amount_at_risk: Decimal = Decimal("0")

    @property
    def decided(self) -> int:
        return self.complete + self.late + self.overdue + self.failed

    @property
    def on_time(self) -> float | None:
        """Complete within every deadline / decided; None when nothing is decided yet."""
        return self.complete / self.decided if self.decided else None


_OUTCOME_COLUMNS = """count() AS total,
    countIf(s = 'complete') AS complete, countIf(s = 'late') AS late,
    countIf(s = 'overdue') AS overdue, countIf(s = 'failed') AS failed,
    countIf(s = 'in_progress') AS in_progress,
    toString(sumIf(ifNull(amount, 0), s IN ('late', 'overdue'))) AS at_risk"""


def _outcome(row: dict[str, Any]) -> Outcome:
    return Outcome(
        total=int(row["total"]),
        complete=int(row["complete"]),
        late=int(row["late"]),
        overdue=int(row["overdue"]),
        failed=int(row["failed"]),
        in_progress=int(row["in_progress"]),
        amount_at_risk=Decimal(row["at_risk"]),
    )


# When a transaction's outcome was decided: finished (complete or late) at its end,
# overdue from the first deadline it passed (warn, else breach), failed at its last hop.
# ``DECIDED_CANDIDATE`` is that instant from a row's stored status alone (an open row: its
# first deadline, which decides it once passed). The engine computes it into the column
# ``decided_candidate`` on every insert (``dashboards.schema``); the decided ledger of
# finished transactions (``open_transactions``) keeps it as their ``decided_ns``.
DECIDED_CANDIDATE = (
    "multiIf(status IN ('complete', 'late'), toUnixTimestamp64Nano(assumeNotNull(end_time)),"
    " status IN ('in_progress', 'overdue'),"
    " toUnixTimestamp64Nano(assumeNotNull(coalesce(warn_deadline, breach_deadline))),"
    " status = 'failed', toUnixTimestamp64Nano(last_time), 0)"
)
# How far back a transaction decided in a window may have started.
DECIDED_LOOKBACK_NS = 90 * DAY_NS


def _decided(
    store: Store, scope: Scope, now: int, overdue: dict[tuple[str, str], tuple[int, Decimal]]
) -> dict[tuple[str, str], Outcome]:
    """Outcomes decided in the scope's window, of transactions started at most
    ``DECIDED_LOOKBACK_NS`` before it: the finished ones from the decided ledger (summed
    by the instant of the decision), the overdue ones as ``open_figures`` found them in the
    open set (decided when their first deadline passed, if it has by ``now``)."""
    params: dict[str, Any] = {
        "d_since": scope.since,
        "d_until": scope.until,
        "l_since": scope.since - DECIDED_LOOKBACK_NS,
        "until": scope.until,
    }
    narrow = ""
    if scope.workflow:
        narrow += " AND workflow = {workflow:String}"
        params["workflow"] = scope.workflow
    if scope.facility:
        narrow += " AND facility = {facility:String}"
        params["facility"] = scope.facility
    finished = store.rows(
        "SELECT facility, workflow, status, sum(n) AS k, toString(sum(amount))"
        f" FROM {open_transactions.decided_relation(store)}"
        " WHERE decided_ns >= {d_since:Int64} AND decided_ns < {d_until:Int64}"
        f" AND id_time_ns >= {{l_since:Int64}} AND id_time_ns < {{until:Int64}}{narrow}"
        " GROUP BY facility, workflow, status HAVING k != 0",
        params,
    )
    counts: dict[tuple[str, str], dict[str, int]] = {}
    risk: dict[tuple[str, str], Decimal] = {}
    for facility, workflow, status, n, amount in [
        *finished,
        *((f, w, "overdue", n, a) for (f, w), (n, a) in overdue.items()),
    ]:
        key = (str(facility), str(workflow))
        counts.setdefault(key, {})[str(status)] = int(n)
        if status in ("late", "overdue"):
            risk[key] = risk.get(key, Decimal("0")) + Decimal(amount)
    return {
        key: Outcome(
            total=sum(c.values()),
            complete=c.get("complete", 0),
            late=c.get("late", 0),
            overdue=c.get("overdue", 0),
            failed=c.get("failed", 0),
            amount_at_risk=risk.get(key, Decimal("0")),
        )
        for key, c in sorted(counts.items())
    }


def outcomes(
    store: Store, scope: Scope, now: int, decided: bool = False
) -> dict[tuple[str, str], Outcome]:
    """(facility, workflow) → outcome of the transactions started in the scope's window,
    or, with ``decided``, of those whose outcome was decided in it (see ``DECIDED_CANDIDATE``;
    then nothing is in progress)."""
    if decided:
        return _decided(store, scope, now, open_figures(store, scope, now).decided_overdue)
    where, params = scope.where(now)
    inner = (
        f"SELECT facility, workflow, amount, {_STATUS_NOW} AS s"
        f" FROM {store.table('transactions')} FINAL WHERE {where}{_FINAL}"
    )
    rows = store.dicts(
        f"SELECT facility, workflow, {_OUTCOME_COLUMNS} FROM ({inner})"
        " GROUP BY facility, workflow ORDER BY facility, workflow",
        params,
    )
    return {(r["facility"], r["workflow"]): _outcome(r) for r in rows}


def total_outcome(cells: dict[tuple[str, str], Outcome]) -> Outcome:
    """The sum of several groups' outcomes."""
    fields = ("total", "complete", "late", "overdue", "failed", "in_progress")
    sums = {f: sum(getattr(o, f) for o in cells.values()) for f in fields}
    risk = sum((o.amount_at_risk for o in cells.values()), Decimal("0"))
    return Outcome(**sums, amount_at_risk=risk)


def overdue_now(store: Store, now: int, workflow: str | None, facility: str | None) -> int:
    """Open transactions past a deadline right now, whenever they started (the open set)."""
    return open_figures(store, Scope(now, now, workflow, facility), now).overdue_now


@dataclass(frozen=True)
class Dnfb:
    """Discharged, not final billed (HFMA): open discharges with no final bill yet."""

    count: int
    amount: Decimal
    average_days: float | None
    over_threshold: int  # older than the threshold in days (AHIMA's common 3 days)


DNFB_THRESHOLD_DAYS = 3  # AHIMA's common threshold


@dataclass(frozen=True)
class OpenFigures:
    """What the overview reads of the open set, in one read of it."""

    overdue_now: int  # open and past a deadline now, whenever started
    # Overdue, (facility, workflow) → (count, amount), whose first deadline passed in the
    # scope's window (the overdue part of the outcomes decided in it).
    decided_overdue: dict[tuple[str, str], tuple[int, Decimal]]
    dnfb: Dnfb | None  # of ``dnfb_workflow``; None when not asked for


def open_figures(
    store: Store,
    scope: Scope,
    now: int,
    dnfb_workflow: str | None = None,
    threshold_days: int = DNFB_THRESHOLD_DAYS,
) -> OpenFigures:
    """Overdue now, the overdue decided in the scope's window and DNFB (``dnfb_workflow``'s
    discharges not final billed, whatever their status) of the scope's workflow and
    facility, from one read of the open set's signed rows (counts are sums of ``n``)."""
    where, params = _open_where(now, scope.workflow, scope.facility)
    params.update(
        d_since=scope.since,
        d_until=scope.until,
        l_since=scope.since - DECIDED_LOOKBACK_NS,
        d_id_until=scope.until,
        dnfb=dnfb_workflow or "",
        threshold=threshold_days * DAY_NS,
    )
    overdue = f"{_OPEN_STATUS} AND {_OPEN_OVERDUE}"
    due = "if(warn_ns != 0, warn_ns, breach_ns)"
    decided = (
        f"{overdue} AND {due} >= {{d_since:Int64}} AND {due} < {{d_until:Int64}}"
        " AND id_time >= fromUnixTimestamp64Nano({l_since:Int64})"
        " AND id_time < fromUnixTimestamp64Nano({d_id_until:Int64})"
    )
    unbilled = "workflow = {dnfb:String} AND discharged_ns > 0 AND billed = 0"
    rows = store.rows(
        # toFloat64 first: an Int64 sum of nanosecond ages overflows on a few thousand.
        f"SELECT facility, workflow, sumIf(n, {overdue}), sumIf(n, {decided}),"
        f" toString(sumIf(amount * n, {decided})), sumIf(n, {unbilled}),"
        f" toString(sumIf(amount * n, {unbilled})),"
        f" sumIf(toFloat64({{now:Int64}} - discharged_ns) * n, {unbilled}),"
        f" sumIf(n, {unbilled} AND {{now:Int64}} - discharged_ns > {{threshold:Int64}})"
        f" FROM {open_transactions.signed_relation(store)} WHERE {where}"
        " GROUP BY facility, workflow",
        params,
    )
    decided_overdue = {
        (str(f), str(w)): (int(k), Decimal(a)) for f, w, _, k, a, *_ in rows if int(k)
    }
    unbilled_n = sum(int(r[5]) for r in rows)
    return OpenFigures(
        overdue_now=sum(int(r[2]) for r in rows),
        decided_overdue=dict(sorted(decided_overdue.items())),
        dnfb=Dnfb(
            count=unbilled_n,
            amount=sum((Decimal(r[6]) for r in rows), Decimal("0")),
            average_days=sum(float(r[7]) for r in rows) / unbilled_n / 86400e9
            if unbilled_n
            else None,
            over_threshold=sum(int(r[8]) for r in rows),
        )
        if dnfb_workflow
        else None,
    )


@dataclass(frozen=True)
class Cards:
    """The overview's cards of a scope: started and decided outcomes, overdue now, DNFB."""

    decided: dict[tuple[str, str], Outcome]
    overdue_now: int
    dnfb: Dnfb | None


def decided_cards(store: Store, scope: Scope, now: int, dnfb_workflow: str | None) -> Cards:
    """The outcomes decided in the scope's window, overdue now and DNFB: one read of the
    open set for the three and one of the decided ledger."""
    found = open_figures(store, scope, now, dnfb_workflow)
    return Cards(_decided(store, scope, now, found.decided_overdue), found.overdue_now, found.dnfb)


def dnfb(
    store: Store,
    now: int,
    facility: str | None = None,
    workflow: str = "discharge_to_revenue",
    discharge_step: str = "discharge",
    bill_step: str = "final_bill",
    threshold_days: int = DNFB_THRESHOLD_DAYS,
) -> Dnfb:
    if (discharge_step, bill_step) == (
        open_transactions.DISCHARGE_STEP,
        open_transactions.BILL_STEP,
    ):
        scope = Scope(now, now, workflow, facility)
        found = open_figures(store, scope, now, workflow, threshold_days).dnfb
        assert found is not None  # asked for
        return found
    # Other steps than the open set keeps: the whole table.
    scope = Scope(since=0, until=now + DAY_NS, workflow=workflow, facility=facility)
    where, params = scope.where(now)
    params.update(
        discharge=discharge_step, bill=bill_step, threshold=threshold_days * DAY_NS, now_ns=now
    )
    row = store.dicts(
        "SELECT count() AS k, toString(sum(ifNull(amount, 0))) AS amount,"
        " sum(toFloat64({now_ns:Int64} - discharged)) / k / 86400e9 AS avg_days,"
        " countIf({now_ns:Int64} - discharged > {threshold:Int64}) AS over FROM ("
        "SELECT amount,"
        " arrayElement(step_first, indexOf(step_names, {discharge:String})) AS discharged,"
        " arrayElement(step_counts, indexOf(step_names, {bill:String})) AS billed"
        f" FROM {store.table('transactions')} FINAL WHERE {where}{_FINAL})"
        " WHERE discharged > 0 AND billed = 0",
        params,
    )[0]
    n = int(row["k"])
    return Dnfb(
        count=n,
        amount=Decimal(row["amount"]),
        average_days=float(row["avg_days"]) if n else None,
        over_threshold=int(row["over"]),
    )
