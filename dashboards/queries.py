"""Every read behind the console's pages, in one module, with bound parameters.

User input never becomes SQL text: filter values travel as ClickHouse query
parameters (``{name:Type}``), and the only names spliced into statements are
table names from the store. Reads of ``transactions`` filter on its sorting key
``(workflow, id_time, id)``: a window is a range of ``id_time`` (a transaction's
earliest event), so a page over a week of one workflow reads that week's
granules, not the table.

A transaction's status "now" follows the transactions API: an open transaction
whose deadline has passed is overdue from that instant, even between two
correlator sweeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from dashboards import open_transactions
from stitchboard.store import Store

NS = 1_000_000_000
DAY_NS = 86_400 * NS

# Same rule as the transactions API: an open transaction past a deadline is overdue.
_STATUS_NOW = """multiIf(
    status IN ('in_progress', 'overdue')
      AND ((breach_deadline IS NOT NULL AND breach_deadline <= {now:DateTime64(9, 'UTC')})
        OR (warn_deadline IS NOT NULL AND warn_deadline <= {now:DateTime64(9, 'UTC')})),
    'overdue', status)"""
STATUS_NOW = _STATUS_NOW  # the listing (``dashboards.listing``) reads it too

_FINAL = " SETTINGS do_not_merge_across_partitions_select_final = 1"

# Aging buckets of open transactions (upper bound in days; None = no bound).
AGING_BUCKETS: tuple[tuple[str, float | None], ...] = (
    ("< 1 d", 1),
    ("1–3 d", 3),
    ("3–7 d", 7),
    ("7–14 d", 14),
    ("14–30 d", 30),
    ("> 30 d", None),
)


@dataclass(frozen=True)
class Scope:
    """Which transactions a view covers: workflow, facility and a window on id_time."""

    since: int  # ns, inclusive
    until: int  # ns, exclusive
    workflow: str | None = None
    facility: str | None = None

    def where(self, now: int) -> tuple[str, dict[str, Any]]:
        clauses = [
            "deleted = 0",
            "id_time >= fromUnixTimestamp64Nano({since:Int64})",
            "id_time < fromUnixTimestamp64Nano({until:Int64})",
        ]
        params: dict[str, Any] = {"since": self.since, "until": self.until, "now": now}
        if self.workflow:
            clauses.append("workflow = {workflow:String}")
            params["workflow"] = self.workflow
        if self.facility:
            clauses.append("facility = {facility:String}")
            params["facility"] = self.facility
        return " AND ".join(clauses), params


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


def _decided(store: Store, scope: Scope, now: int) -> dict[tuple[str, str], Outcome]:
    """Outcomes decided in the scope's window, of transactions started at most
    ``DECIDED_LOOKBACK_NS`` before it: the finished ones from the decided ledger (summed
    by the instant of the decision), the overdue ones from the open set (decided when
    their first deadline passed, if it has by ``now``)."""
    params: dict[str, Any] = {
        "d_since": scope.since,
        "d_until": scope.until,
        "l_since": scope.since - DECIDED_LOOKBACK_NS,
        "until": scope.until,
        "now": now,
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
    due = "if(warn_ns != 0, warn_ns, breach_ns)"
    overdue = store.rows(
        f"SELECT facility, workflow, sum(n) AS k, toString(sum(amount * n))"
        f" FROM {open_transactions.signed_relation(store)}"
        f" WHERE {_OPEN_STATUS} AND {_OPEN_OVERDUE}"
        f" AND {due} >= {{d_since:Int64}} AND {due} < {{d_until:Int64}}"
        " AND id_time >= fromUnixTimestamp64Nano({l_since:Int64})"
        f" AND id_time < fromUnixTimestamp64Nano({{until:Int64}}){narrow}"
        " GROUP BY facility, workflow HAVING k != 0",
        params,
    )
    counts: dict[tuple[str, str], dict[str, int]] = {}
    risk: dict[tuple[str, str], Decimal] = {}
    for facility, workflow, status, n, amount in [
        *finished,
        *((f, w, "overdue", n, a) for f, w, n, a in overdue),
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
        return _decided(store, scope, now)
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


# The open set's rows (``open_transactions``): deadlines in ns, 0 = none.
_OPEN_OVERDUE = """(status = 'overdue'
    OR (breach_ns != 0 AND breach_ns <= {now:Int64})
    OR (warn_ns != 0 AND warn_ns <= {now:Int64}))"""
_OPEN_STATUS = "status IN ('in_progress', 'overdue')"


def _open_where(now: int, workflow: str | None, facility: str | None) -> tuple[str, dict]:
    """Open-set rows of a workflow and facility (None: all) that started before tomorrow."""
    clauses = ["id_time < fromUnixTimestamp64Nano({until:Int64})"]
    params: dict[str, Any] = {"until": now + DAY_NS, "now": now}
    if workflow:
        clauses.append("workflow = {workflow:String}")
        params["workflow"] = workflow
    if facility:
        clauses.append("facility = {facility:String}")
        params["facility"] = facility
    return " AND ".join(clauses), params


def overdue_now(store: Store, now: int, workflow: str | None, facility: str | None) -> int:
    """Open transactions past a deadline right now, whenever they started (the open set)."""
    where, params = _open_where(now, workflow, facility)
    return int(
        store.scalar(
            f"SELECT sum(n) FROM {open_transactions.signed_relation(store)}"
            f" WHERE {where} AND {_OPEN_STATUS} AND {_OPEN_OVERDUE}",
            params,
        )
        or 0
    )


@dataclass(frozen=True)
class Dnfb:
    """Discharged, not final billed (HFMA): open discharges with no final bill yet."""

    count: int
    amount: Decimal
    average_days: float | None
    over_threshold: int  # older than the threshold in days (AHIMA's common 3 days)


def dnfb(
    store: Store,
    now: int,
    facility: str | None = None,
    workflow: str = "discharge_to_revenue",
    discharge_step: str = "discharge",
    bill_step: str = "final_bill",
    threshold_days: int = 3,
) -> Dnfb:
    if (discharge_step, bill_step) == (
        open_transactions.DISCHARGE_STEP,
        open_transactions.BILL_STEP,
    ):
        where, params = _open_where(now, workflow, facility)
        source = (
            f"SELECT amount, discharged_ns AS discharged, billed, n FROM"
            f" {open_transactions.signed_relation(store)} WHERE {where}"
        )
    else:  # other steps than the open set keeps: the whole table
        scope = Scope(since=0, until=now + DAY_NS, workflow=workflow, facility=facility)
        where, params = scope.where(now)
        params.update(discharge=discharge_step, bill=bill_step)
        source = (
            "SELECT amount,"
            " arrayElement(step_first, indexOf(step_names, {discharge:String})) AS discharged,"
            " arrayElement(step_counts, indexOf(step_names, {bill:String})) AS billed, 1 AS n"
            f" FROM {store.table('transactions')} FINAL WHERE {where}{_FINAL}"
        )
    params.update(threshold=threshold_days * DAY_NS, now_ns=now)
    row = store.dicts(
        # Signed rows (the open set's n): counts are sums of n. toFloat64 first: an Int64
        # sum of nanosecond ages overflows on a few thousand of them.
        "SELECT sum(n) AS k, toString(sum(ifNull(amount, 0) * n)) AS amount,"
        " sum(toFloat64({now_ns:Int64} - discharged) * n) / k / 86400e9 AS avg_days,"
        " sumIf(n, {now_ns:Int64} - discharged > {threshold:Int64}) AS over"
        f" FROM ({source}) WHERE discharged > 0 AND billed = 0",
        params,
    )[0]
    n = int(row["k"])
    return Dnfb(
        count=n,
        amount=Decimal(row["amount"]),
        average_days=float(row["avg_days"]) if n else None,
        over_threshold=int(row["over"]),
    )


# -- workflow -------------------------------------------------------------------


@dataclass(frozen=True)
class FunnelStep:
    step: str
    reached: int  # transactions with this step
    stopped_here: int  # open transactions whose last step so far is this one


def funnel(store: Store, scope: Scope, now: int, steps: Sequence[str]) -> list[FunnelStep]:
    """Per step: transactions that reached it, and open ones whose last step so far it
    is; one read of the scope."""
    where, params = scope.where(now)
    rows = store.rows(
        "SELECT step, count(), countIf(open AND step = last) FROM ("
        "SELECT arrayFilter((n, c) -> c > 0, step_names, step_counts) AS reached,"
        f" arrayElement(reached, -1) AS last, {_STATUS_NOW} IN ('in_progress', 'overdue') AS open"
        f" FROM {store.table('transactions')} FINAL WHERE {where}{_FINAL})"
        " ARRAY JOIN reached AS step GROUP BY step",
        params,
    )
    found = {str(step): (int(n), int(stopped)) for step, n, stopped in rows}
    return [FunnelStep(s, *found.get(s, (0, 0))) for s in steps]


@dataclass(frozen=True)
class Latency:
    """How long a step took from its anchor, over the transactions that reached it."""

    step: str
    count: int
    p50: float | None  # seconds
    p90: float | None
    p99: float | None
    histogram: tuple[tuple[float, int], ...] = field(default=())  # (bin start s, count)
    bin_seconds: float = 1.0


def step_latency(
    store: Store, scope: Scope, now: int, step: str, anchor: str | None, bins: int = 30
) -> Latency:
    """Seconds from the step's anchor to ``step``, as its deadline clock counts them.

    The correlator stores each step's duration from its anchor (``step_durations``):
    from the anchor's send time for an interface (``within.from: sent``), from the
    step before a skipped optional one, never negative for a step that may come early.
    ``anchor`` (the step its clock starts from, None = the start) is what the page
    names; rows written before durations were stored fall back to the first times.
    """
    where, params = scope.where(now)
    params.update(step=step, anchor=anchor or "")
    start = (
        "arrayElement(step_first, indexOf(step_names, {anchor:String}))"
        if anchor
        else "toUnixTimestamp64Nano(start_time)"
    )
    position = "indexOf(step_names, {step:String})"
    stored = f"arrayElement(step_durations, {position})"
    inner = (
        f"SELECT if(length(step_durations) > 0, {stored} / 1e9,"
        f" (arrayElement(step_first, {position}) - {start}) / 1e9) AS seconds,"
        f" arrayElement(step_first, {position}) AS done,"
        f" if(length(step_durations) > 0, {stored} >= 0, {start} > 0) AS measured"
        f" FROM {store.table('transactions')} FINAL WHERE {where}{_FINAL}"
    )
    sub = f"SELECT seconds FROM ({inner}) WHERE done > 0 AND measured"
    row = store.dicts(
        "SELECT count() AS n, quantileExact(0.5)(seconds) AS p50,"
        " quantileExact(0.9)(seconds) AS p90, quantileExact(0.99)(seconds) AS p99,"
        f" max(seconds) AS top FROM ({sub})",
        params,
    )[0]
    n = int(row["n"])
    if not n:
        return Latency(step, 0, None, None, None)
    width = max(float(row["top"]), 1.0) / bins
    params["width"] = width
    hist = store.rows(
        f"SELECT floor(seconds / {{width:Float64}}) AS b, count() FROM ({sub})"
        " GROUP BY b ORDER BY b",
        params,
    )
    return Latency(
        step,
        n,
        float(row["p50"]),
        float(row["p90"]),
        float(row["p99"]),
        tuple((float(b) * width, int(c)) for b, c in hist),
        width,
    )


@dataclass(frozen=True)
class AgingBucket:
    label: str
    count: int
    amount: Decimal


def aging(store: Store, now: int, workflow: str | None, facility: str | None) -> list[AgingBucket]:
    """Open transactions (in progress or overdue) by age since their start, with $."""
    where, params = _open_where(now, workflow, facility)
    params["now_ns"] = now
    bounds = [b for _, b in AGING_BUCKETS if b is not None]
    params["bounds"] = [int(b * DAY_NS) for b in bounds]
    rows = store.rows(
        "SELECT arrayFirstIndex(b -> age < b, {bounds:Array(Int64)}) AS i, sum(n),"
        " toString(sum(amount * n)) FROM (SELECT amount, n, {now_ns:Int64} - start_ns AS age"
        f" FROM {open_transactions.signed_relation(store)} WHERE {where} AND {_OPEN_STATUS})"
        " GROUP BY i",
        params,
    )
    found = {int(i): (int(n), Decimal(a)) for i, n, a in rows}
    result = []
    for index, (label, _) in enumerate(AGING_BUCKETS, start=1):
        # arrayFirstIndex is 0 past the last bound: the open-ended bucket.
        key = index if index <= len(bounds) else 0
        n, amount = found.get(key, (0, Decimal("0")))
        result.append(AgingBucket(label, n, amount))
    return result


def flag_counts(store: Store, scope: Scope, now: int) -> dict[str, int]:
    where, params = scope.where(now)
    rows = store.rows(
        f"SELECT flag, count() FROM (SELECT arrayJoin(flags) AS flag"
        f" FROM {store.table('transactions')} FINAL WHERE {where}{_FINAL})"
        " GROUP BY flag ORDER BY count() DESC, flag",
        params,
    )
    return {str(f): int(n) for f, n in rows}


_ROW = f"""id, workflow, facility, {_STATUS_NOW} AS status_now,
    toUnixTimestamp64Nano(start_time) AS start_ns, duration_ns,
    if(breach_deadline IS NULL, NULL,
       toUnixTimestamp64Nano(assumeNotNull(breach_deadline))) AS breach_ns,
    if(warn_deadline IS NULL, NULL, toUnixTimestamp64Nano(assumeNotNull(warn_deadline))) AS warn_ns,
    toString(amount) AS amount_text"""


def slowest(store: Store, scope: Scope, now: int, limit: int = 10) -> list[dict[str, Any]]:
    """Finished transactions that took longest, start to end."""
    where, params = scope.where(now)
    params["limit"] = limit
    return store.dicts(
        f"SELECT {_ROW} FROM {store.table('transactions')} FINAL WHERE {where}"
        " AND status IN ('complete', 'late') AND duration_ns IS NOT NULL"
        " ORDER BY duration_ns DESC, id LIMIT {limit:UInt32}" + _FINAL,
        params,
    )


def most_overdue(
    store: Store, now: int, workflow: str | None, facility: str | None, limit: int = 10
) -> list[dict[str, Any]]:
    """Open transactions longest past the first deadline they passed (warn or breach).

    The open set names them; their rows are then read by id from ``transactions``."""
    where, params = _open_where(now, workflow, facility)
    params["limit"] = limit
    due = "if(warn_ns = 0, breach_ns, if(breach_ns = 0, warn_ns, least(warn_ns, breach_ns)))"
    picked = store.rows(
        "SELECT id, toUnixTimestamp64Nano(id_time)"
        f" FROM {open_transactions.signed_relation(store)}"
        f" WHERE {where} AND {_OPEN_STATUS} AND {_OPEN_OVERDUE}"
        # A row held now: its signed rows with these columns sum to 1.
        " GROUP BY id, id_time, warn_ns, breach_ns HAVING sum(n) > 0"
        f" ORDER BY {due}, id LIMIT {{limit:UInt32}}",
        params,
    )
    if not picked:
        return []
    times = [int(t) for _, t in picked]
    scope = Scope(min(times), max(times) + 1, workflow=workflow, facility=facility)
    where, params = scope.where(now)
    params.update(limit=limit, now_ns=now, ids=[str(i) for i, _ in picked])
    due = (
        "toUnixTimestamp64Nano(assumeNotNull(least(ifNull(warn_deadline, breach_deadline),"
        " ifNull(breach_deadline, warn_deadline))))"
    )
    return store.dicts(
        f"SELECT {_ROW}, {due} AS due_ns,"
        " ifNull(breach_ns <= {now_ns:Int64}, 0) AS past_breach"
        f" FROM {store.table('transactions')} FINAL WHERE {where} AND id IN {{ids:Array(String)}}"
        f" AND status IN ('in_progress', 'overdue') AND {_STATUS_NOW} = 'overdue'"
        " ORDER BY due_ns, id LIMIT {limit:UInt32}" + _FINAL,
        params,
    )


# -- transaction detail ----------------------------------------------------------


def event_attributes(store: Store, event_ids: Sequence[str]) -> dict[str, dict[str, str]]:
    """event id → its attributes (PHI already pseudonymized at ingest)."""
    if not event_ids:
        return {}
    rows = store.rows(
        f"SELECT event_id, attributes FROM {store.table('events')}"
        " WHERE event_id IN {ids:Array(String)}",
        {"ids": list(event_ids)},
    )
    return {str(i): dict(a) for i, a in rows}


def related_dead_letters(
    store: Store, values: Sequence[str], since: int, until: int, limit: int = 50
) -> list[dict[str, Any]]:
    """Dead letters received in [since, until) whose payload mentions one of the key values."""
    needles = [v for v in dict.fromkeys(values) if len(v) >= 3][:200]
    if not needles:
        return []
    return store.dicts(
        "SELECT id, toUnixTimestamp64Nano(received_time) AS received_ns, source, reason,"
        f" replayed FROM {store.table('dead_letters')} FINAL"
        " WHERE received_time >= fromUnixTimestamp64Nano({since:Int64})"
        " AND received_time < fromUnixTimestamp64Nano({until:Int64})"
        " AND multiSearchAny(payload, {needles:Array(String)})"
        " ORDER BY received_time DESC LIMIT {limit:UInt32}",
        {"since": since, "until": until, "needles": needles, "limit": limit},
    )


# -- data health -------------------------------------------------------------------


@dataclass(frozen=True)
class Feed:
    """One source of hops: a system at a facility."""

    system: str
    facility: str
    last_ns: int  # newest receipt (observed time)
    last_hour: int
    per_minute: tuple[int, ...]  # oldest first, one count per minute of the last hour


def feeds(store: Store, now: int, lookback_days: int = 7, minutes: int = 60) -> list[Feed]:
    """Every feed seen in the lookback, its newest receipt and its last hour by minute.

    One read of the lookback: per feed and minute of the last hour (-1 = before it), the
    newest receipt and the count; the feed's figures are summed from those rows."""
    params = {"since": now - lookback_days * DAY_NS, "hour": now - minutes * 60 * NS, "now": now}
    rows = store.rows(
        "SELECT system, facility, if(observed_time >= fromUnixTimestamp64Nano({hour:Int64}),"
        " intDiv(toUnixTimestamp64Nano(observed_time) - {hour:Int64}, 60000000000), -1) AS m,"
        " toUnixTimestamp64Nano(max(observed_time)), count()"
        f" FROM {store.table('events')}"
        " WHERE observed_time >= fromUnixTimestamp64Nano({since:Int64})"
        " AND observed_time <= fromUnixTimestamp64Nano({now:Int64})"
        " GROUP BY system, facility, m",
        params,
    )
    last: dict[tuple[str, str], int] = {}
    hour: dict[tuple[str, str], int] = {}
    series: dict[tuple[str, str], list[int]] = {}
    for system, facility, minute, newest, n in rows:
        feed = (str(system), str(facility))
        last[feed] = max(last.get(feed, 0), int(newest))
        counts = series.setdefault(feed, [0] * minutes)
        if minute >= 0:  # the last hour, ``now`` itself included (minute ``minutes``)
            hour[feed] = hour.get(feed, 0) + int(n)
            if minute < minutes:
                counts[int(minute)] = int(n)
    return [
        Feed(s, f, last[(s, f)], hour.get((s, f), 0), tuple(series[(s, f)]))
        for s, f in sorted(last)
    ]


def dead_letter_reasons(store: Store, limit: int = 50) -> list[dict[str, Any]]:
    """Unreplayed dead letters grouped by reason, most frequent first."""
    return store.dicts(
        "SELECT reason, count() AS count, toUnixTimestamp64Nano(max(received_time)) AS last_ns,"
        " groupUniqArray(5)(source) AS sources"
        f" FROM {store.table('dead_letters')} FINAL WHERE replayed = 0"
        " GROUP BY reason ORDER BY count DESC, reason LIMIT {limit:UInt32}",
        {"limit": limit},
    )


# -- SLO figures from the alerts stage's rollup -------------------------------------

# How the alerts stage's SLI rollup marks a judgement (``kind``): good, or bad as late,
# overdue or failed. An overdue judgement counts from the instant its deadline passed
# (``due_ns``). Pinned by tests/store/test_overview_slo.py against ``slo_report``.
_KIND_GOOD, _KIND_OVERDUE = 1, 3


@dataclass(frozen=True)
class TrendPoint:
    """One bucket of an SLO's trend: transactions judged in it, and how many were good."""

    bucket_s: int  # bucket start, Unix seconds (UTC)
    good: int
    judged: int

    @property
    def compliance(self) -> float | None:
        return self.good / self.judged if self.judged else None


def slo_trend(
    store: Store,
    relation: tuple[str, dict[str, Any]],
    since: int,
    until: int,
    now: int,
    bucket_seconds: int,
    facility: str | None = None,
) -> list[TrendPoint]:
    """An SLO's compliance per bucket of when its transactions were judged (completed,
    or open past the deadline), from ``relation`` (the alerts stage's
    ``rollup_relation``), one point per bucket from ``since`` to ``until``; a bucket in
    which nothing was judged has ``judged == 0`` (no data, not 0 %)."""
    inner, params = relation
    bucket = max(60, bucket_seconds // 60 * 60)
    params = {
        **params,
        "now": now,
        "m_since": since // (60 * NS),
        "m_until": -(-until // (60 * NS)),
        "bucket_min": bucket // 60,
        "facility": facility or "",
    }
    rows = store.rows(
        "SELECT intDiv(minute, {bucket_min:Int64}) * {bucket_min:Int64} * 60 AS b,"
        f" sumIf(n, kind = {_KIND_GOOD}) AS good, sum(n) AS judged FROM ({inner})"
        f" WHERE (kind != {_KIND_OVERDUE} OR due_ns <= {{now:Int64}})"
        " AND minute >= {m_since:Int64} AND minute < {m_until:Int64}"
        " AND ({facility:String} = '' OR facility = {facility:String})"
        " GROUP BY b HAVING judged != 0 ORDER BY b",
        params,
    )
    found = {int(b): (int(g), int(j)) for b, g, j in rows}
    first = since // NS // bucket * bucket
    points = []
    for start in range(first, -(-until // NS), bucket):
        good, judged = found.get(start, (0, 0))
        points.append(TrendPoint(start, good, judged))
    return points
