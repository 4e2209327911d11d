"""The open set (``dashboards.open_transactions``) behind "overdue now", aging, DNFB and
the most overdue equals the newest version of every transaction judged one by one, after
every round of rewrites (closed, reopened, retired, deadlines moved, more rows at the
version of the last mark), merged or not, and after the table is emptied."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
from decimal import Decimal

import pytest

from dashboards import open_transactions
from dashboards import queries as q

NS = 1_000_000_000
DAY = 86_400 * NS
NOW = 1_790_000_000 * NS
D2R, C2C = "discharge_to_revenue", "claim_to_cash"
STEPS = ["discharge", "charge", "final_bill"]
COLUMNS = (
    "id", "workflow", "id_time", "facility", "status", "start_time", "warn_deadline",
    "breach_deadline", "amount", "step_names", "step_counts", "step_first", "version", "deleted",
)  # fmt: skip
OPEN = ("in_progress", "overdue")


def when(ns: int | None) -> dt.datetime | None:
    return None if ns is None else dt.datetime.fromtimestamp(ns // NS, dt.UTC)


class Tx:
    """One version of a transaction, as the test writes it and as the reference reads it."""

    def __init__(self, rng: random.Random, n: int, version: int) -> None:
        self.id = f"t{n:04d}"
        self.workflow = (D2R, C2C)[n % 2]
        self.facility = ("NMC01", "LCH02")[n // 2 % 2]
        self.start = NOW - (n % 97) * DAY // 2 - n * NS
        self.version = version
        self.status = rng.choice(("in_progress", "overdue", "complete", "late", "failed"))
        self.warn = self.start + rng.randrange(1, 30) * DAY // 3 if rng.random() < 0.8 else None
        self.breach = self.start + rng.randrange(5, 40) * DAY // 3 if rng.random() < 0.6 else None
        self.amount = Decimal(f"{rng.randrange(5000)}.{rng.randrange(100):02d}")
        self.discharged = rng.random() < 0.7
        self.billed = rng.random() < 0.4
        self.deleted = int(rng.random() < 0.05)

    def row(self) -> tuple[object, ...]:
        counts = [int(self.discharged), 1, int(self.billed)]
        first = [self.start * c for c in counts]  # 0: the step has not happened
        return (
            self.id, self.workflow, when(self.start), self.facility, self.status,
            when(self.start), when(self.warn), when(self.breach), self.amount, STEPS, counts,
            first,
            self.version, self.deleted,
        )  # fmt: skip

    def overdue_now(self) -> bool:
        passed = any(d is not None and d <= NOW for d in (self.warn, self.breach))
        return self.status in OPEN and (self.status == "overdue" or passed)


def reference(newest: dict[str, Tx], facility: str | None) -> dict[str, object]:
    live = [t for t in newest.values() if not t.deleted and facility in (None, t.facility)]
    open_ = [t for t in live if t.status in OPEN]
    buckets = [0] * len(q.AGING_BUCKETS)
    money = [Decimal("0")] * len(q.AGING_BUCKETS)
    for t in open_:
        age = NOW - t.start
        i = next(
            (k for k, (_, b) in enumerate(q.AGING_BUCKETS) if b is not None and age < b * DAY),
            len(q.AGING_BUCKETS) - 1,
        )
        buckets[i] += 1
        money[i] += t.amount
    unbilled = [t for t in live if t.workflow == D2R and t.discharged and not t.billed]
    # Longest past its first deadline first; stored overdue with no deadline: due at 0.
    overdue = sorted(
        (min((d for d in (t.warn, t.breach) if d is not None), default=0), t.id)
        for t in open_
        if t.overdue_now() and t.workflow == D2R
    )
    return {
        "overdue_now": sum(t.overdue_now() for t in open_),
        "aging": [(n, m) for n, m in zip(buckets, money, strict=True)],
        "dnfb": (len(unbilled), sum((t.amount for t in unbilled), Decimal("0"))),
        "most_overdue": [i for _, i in overdue[:10]],
    }


def observed(store, facility: str | None) -> dict[str, object]:
    d = q.dnfb(store, NOW, facility=facility)
    return {
        "overdue_now": q.overdue_now(store, NOW, None, facility),
        "aging": [(b.count, b.amount) for b in q.aging(store, NOW, None, facility)],
        "dnfb": (d.count, d.amount),
        "most_overdue": [r["id"] for r in q.most_overdue(store, NOW, D2R, facility)],
    }


@pytest.fixture
def clean(store):
    for table in ("transactions", "open_transactions", "open_transactions_marks"):
        store.command(f"TRUNCATE TABLE {store.table(table)}")
    return store


def test_equal_to_the_newest_versions_after_every_round(clean) -> None:
    rng = random.Random(7)
    newest: dict[str, Tx] = {}
    version = 1
    for round_ in range(5):
        # New transactions and new versions of old ones, each in a part of its own.
        written = [Tx(rng, n, version) for n in rng.sample(range(400), 150)]
        clean.insert("transactions", COLUMNS, [t.row() for t in written])
        newest.update({t.id: t for t in written})
        if round_ == 2:
            # More rows with the version the last refresh marked: judged at the next one.
            q.overdue_now(clean, NOW, None, None)
            late = [Tx(rng, n, version) for n in rng.sample(range(400, 500), 30)]
            clean.insert("transactions", COLUMNS, [t.row() for t in late])
            newest.update({t.id: t for t in late})
        if round_ == 3:
            clean.command(f"OPTIMIZE TABLE {clean.table('transactions')} FINAL")
        for facility in (None, "LCH02"):
            expected = reference(newest, facility)
            assert expected["overdue_now"] and expected["dnfb"][0], "the check needs open rows"
            assert observed(clean, facility) == expected, f"round {round_}, {facility}"
        version += 1
    # Rows gone without a new version: the set is rebuilt from what is left.
    clean.command(f"TRUNCATE TABLE {clean.table('transactions')}")
    assert q.overdue_now(clean, NOW, None, None) == 0
    assert q.dnfb(clean, NOW).count == 0
    rebuilt = [Tx(rng, n, 1) for n in range(60)]
    clean.insert("transactions", COLUMNS, [t.row() for t in rebuilt])
    assert observed(clean, None) == reference({t.id: t for t in rebuilt}, None)


def _counts(store) -> tuple[int, int]:
    return (
        store.scalar(f"SELECT count() FROM {store.table('open_transactions')}"),
        store.scalar(f"SELECT count() FROM {store.table('open_transactions_marks')}"),
    )


def test_a_refresh_with_nothing_written_changes_nothing(clean) -> None:
    rng = random.Random(3)
    clean.insert("transactions", COLUMNS, [Tx(rng, n, 1).row() for n in range(50)])
    assert open_transactions.refresh(clean) is True  # first: built from the table
    before = _counts(clean)
    assert open_transactions.refresh(clean) is False
    assert _counts(clean) == before  # nothing inserted: not even a new mark
    # A merge inserts nothing either (it keeps the oldest and newest blocks).
    clean.insert("transactions", COLUMNS, [Tx(rng, n, 2).row() for n in range(50, 60)])
    open_transactions.refresh(clean)
    before = _counts(clean)
    clean.command(f"OPTIMIZE TABLE {clean.table('transactions')} FINAL")
    assert open_transactions.refresh(clean) is False
    assert _counts(clean) == before


def _held(store) -> int:
    return int(
        store.scalar(f"SELECT count() FROM {store.table('open_transactions')} FINAL WHERE n > 0")
    )


def test_the_servers_loop_keeps_the_set_current(clean) -> None:
    rng = random.Random(5)
    first = [Tx(rng, n, 1) for n in range(40)]
    clean.insert("transactions", COLUMNS, [t.row() for t in first])
    loop = open_transactions.RefreshLoop(clean, interval_s=0.2)
    assert loop.describe() == "console open set: refreshed every 0.2s"

    def kept(rows: list[Tx]) -> int:
        newest = {t.id: t for t in rows}
        return sum(
            1
            for t in newest.values()
            if not t.deleted and (t.status in OPEN or (t.discharged and not t.billed))
        )

    def wait_for(count: int) -> None:
        deadline = time.monotonic() + 60
        while _held(clean) != count and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _held(clean) == count

    asyncio.run(loop.start())
    try:
        wait_for(kept(first))  # built at start, before any page asked
        second = [Tx(rng, n, 2) for n in range(20, 60)]  # rewrites and new ones
        clean.insert("transactions", COLUMNS, [t.row() for t in second])
        wait_for(kept(first + second))
    finally:
        asyncio.run(loop.stop())


def test_most_overdue_past_rows_the_set_took_back(clean) -> None:
    # Sixty overdue discharges, due one hour apart; the fifty due first then complete.
    # Their rows stay in the set with the -1 rows that take them back (until a merge),
    # ahead of every held row: the read must look past them to the ten still open.
    rng = random.Random(1)

    def tx(n: int, status: str, version: int) -> Tx:
        t = Tx(rng, n, version)
        t.workflow, t.facility, t.status, t.deleted = D2R, "NMC01", status, 0
        t.start = NOW - 30 * DAY + n * 3600 * NS
        t.warn, t.breach = t.start + DAY, None
        return t

    clean.insert("transactions", COLUMNS, [tx(n, "overdue", 1).row() for n in range(60)])
    assert [r["id"] for r in q.most_overdue(clean, NOW, D2R, None)] == [
        f"t{n:04d}" for n in range(10)
    ]
    clean.insert("transactions", COLUMNS, [tx(n, "complete", 2).row() for n in range(50)])
    assert [r["id"] for r in q.most_overdue(clean, NOW, D2R, None)] == [
        f"t{n:04d}" for n in range(50, 60)
    ]
    assert [r["id"] for r in q.most_overdue(clean, NOW, D2R, None, limit=3)] == [
        "t0050", "t0051", "t0052"
    ]  # fmt: skip
    clean.insert("transactions", COLUMNS, [tx(n, "complete", 3).row() for n in range(50, 60)])
    assert q.most_overdue(clean, NOW, D2R, None) == []


def test_most_overdue_with_reopened_rows_and_equal_deadlines(clean) -> None:
    # Twenty overdue discharges, the first twelve due at one instant (ordered by id), the
    # rest an hour apart after it. The first eight complete, then four of them reopen with
    # the columns they had: their +1, -1 and +1 rows lie ahead of every other held row.
    rng = random.Random(2)

    def tx(n: int, status: str, version: int) -> Tx:
        t = Tx(rng, n, version)
        t.workflow, t.facility, t.status, t.deleted = D2R, "NMC01", status, 0
        t.start = NOW - 30 * DAY + max(0, n - 11) * 3600 * NS
        t.warn, t.breach = t.start + DAY, None
        return t

    clean.insert("transactions", COLUMNS, [tx(n, "overdue", 1).row() for n in range(20)])
    q.overdue_now(clean, NOW, None, None)  # the set as it was: the +1 rows
    clean.insert("transactions", COLUMNS, [tx(n, "complete", 2).row() for n in range(8)])
    q.overdue_now(clean, NOW, None, None)  # the -1 rows
    clean.insert("transactions", COLUMNS, [tx(n, "overdue", 3).row() for n in (1, 3, 5, 7)])
    expected = ["t0001", "t0003", "t0005", "t0007", "t0008", "t0009", "t0010", "t0011"]
    assert [r["id"] for r in q.most_overdue(clean, NOW, D2R, None, limit=8)] == expected
    assert [r["id"] for r in q.most_overdue(clean, NOW, D2R, None, limit=3)] == expected[:3]
    assert [r["id"] for r in q.most_overdue(clean, NOW, D2R, None)] == [*expected, "t0012", "t0013"]
