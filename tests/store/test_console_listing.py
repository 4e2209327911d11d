"""The transactions grid's read (``dashboards.queries.listing``) equals the newest version of
every transaction judged one by one, page after page, whatever window the read stops
at: rewritten, retired and merged transactions included, parts merged or not; and the
transactions API, which filters through the same clauses (``transaction_where``),
selects the same rows."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, replace
from decimal import Decimal

import pytest

from correlator import StoreTransactions, TransactionFilter, decode_cursor
from dashboards.queries import listing
from tests.correlator_helpers import shipped_config

NS = 1_000_000_000
HOUR = 3600 * NS
DAY = 24 * HOUR
NOW = 1_790_000_000 * NS
D2R, C2C = "discharge_to_revenue", "claim_to_cash"
COLUMNS = (
    "id", "workflow", "id_time", "facility", "status", "start_time", "last_time",
    "duration_ns", "warn_deadline", "breach_deadline", "flags", "amount", "key_names",
    "key_values", "version", "deleted",
)  # fmt: skip
KEY_COLUMNS = ("value", "key", "transaction_id", "workflow", "id_time")


def when(ns: int | None) -> dt.datetime | None:
    return None if ns is None else dt.datetime.fromtimestamp(ns / NS, dt.UTC)


@dataclass(frozen=True)
class Tx:
    """One version of a transaction, as written and as the reference judges it."""

    id: str
    workflow: str
    facility: str
    id_ns: int
    status: str
    version: int
    start_ns: int = 0  # 0: the earliest event
    warn_ns: int | None = None
    breach_ns: int | None = None
    amount: Decimal | None = Decimal("10.00")
    flags: tuple[str, ...] = ()
    visit: str = ""
    deleted: int = 0

    @property
    def start(self) -> int:
        return self.start_ns or self.id_ns

    def row(self) -> tuple[object, ...]:
        done = self.status in ("complete", "late")
        return (
            self.id, self.workflow, when(self.id_ns), self.facility, self.status,
            when(self.start), when(self.start + HOUR), HOUR if done else None,
            when(self.warn_ns), when(self.breach_ns), list(self.flags), self.amount,
            ["visit"], [self.visit or f"V-{self.id}"], self.version, self.deleted,
        )  # fmt: skip

    def status_now(self) -> str:
        passed = any(d is not None and d <= NOW for d in (self.warn_ns, self.breach_ns))
        return "overdue" if self.status in ("in_progress", "overdue") and passed else self.status


def write(store, versions: list[Tx]) -> None:
    store.insert("transactions", COLUMNS, [t.row() for t in versions])
    store.insert(
        "transaction_keys",
        KEY_COLUMNS,
        [(t.visit or f"V-{t.id}", "visit", t.id, t.workflow, when(t.id_ns)) for t in versions],
    )


def reference(newest: dict[str, Tx], where: TransactionFilter) -> list[tuple[str, str]]:
    def keep(t: Tx) -> bool:
        return (
            not t.deleted
            and where.workflow in (None, t.workflow)
            and where.facility in (None, t.facility)
            and where.status in (None, t.status_now())
            and (where.flag is None or where.flag in t.flags)
            and (where.since is None or t.start >= where.since)
            and (where.until is None or t.start < where.until)
            and (not where.key_values or (t.visit or f"V-{t.id}") in where.key_values)
        )

    found = sorted((t for t in newest.values() if keep(t)), key=lambda t: (t.id_ns, t.id))
    return [(t.id, t.status_now()) for t in reversed(found)]


def walk(store, where: TransactionFilter, size: int) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    after = None
    while True:
        page, after = listing.newest(store, where, size, NOW, after)
        assert len(page) <= size
        seen += [(t.id, t.status) for t in page]
        if after is None:
            return seen
        assert len(page) == size and after == (page[-1].id_ns, page[-1].id)


def walk_api(store, where: TransactionFilter, size: int) -> list[tuple[str, str]]:
    reader = StoreTransactions(store, shipped_config())
    seen: list[tuple[str, str]] = []
    while True:
        page, cursor = reader.list_transactions(where, size, NOW)
        seen += [(t["id"], t["status"]) for t in page]
        if cursor is None:
            return seen
        where = replace(where, after=decode_cursor(cursor))


@pytest.fixture
def clean(store):
    for table in ("transactions", "transaction_keys"):
        store.command(f"TRUNCATE TABLE {store.table(table)}")
    return store


def test_a_hand_worked_page(clean) -> None:
    write(
        clean,
        [
            Tx("a1", D2R, "NMC01", NOW - 30 * 60 * NS, "in_progress", 1),
            Tx("a2", D2R, "LCH02", NOW - 5 * HOUR, "complete", 1, amount=Decimal("12.5")),
            Tx("a3", C2C, "NMC01", NOW - 3 * DAY, "in_progress", 1, warn_ns=NOW - HOUR),
            Tx("a4", D2R, "NMC01", NOW - 20 * DAY, "late", 1, flags=("missing_step",)),
            Tx("a5", C2C, "LCH02", NOW - 200 * DAY, "failed", 1, amount=None),
        ],
    )
    write(clean, [Tx("a2", D2R, "LCH02", NOW - 5 * HOUR, "complete", 2, deleted=1)])  # retired
    page, after = listing.newest(clean, TransactionFilter(), 2, NOW)
    # a1 (30 min ago) then a3 (3 days): a2 is retired; a3's warn deadline passed an hour ago.
    assert [(t.id, t.status) for t in page] == [("a1", "in_progress"), ("a3", "overdue")]
    assert after == (NOW - 3 * DAY, "a3")
    rest, end = listing.newest(clean, TransactionFilter(), 2, NOW, after)
    assert [(t.id, t.status, t.amount) for t in rest] == [
        ("a4", "late", Decimal("10")),
        ("a5", "failed", None),
    ]
    assert end is None
    assert rest[0].flags == ("missing_step",) and rest[0].keys == {"visit": ["V-a4"]}
    assert rest[0].duration_ns == HOUR and rest[0].start_ns == NOW - 20 * DAY
    overdue, _ = listing.newest(clean, TransactionFilter(status="overdue"), 10, NOW)
    assert [t.id for t in overdue] == ["a3"]
    by_key, _ = listing.newest(clean, TransactionFilter(key_values=("V-a5",)), 10, NOW)
    assert [t.id for t in by_key] == ["a5"]


def test_equal_to_the_newest_versions_page_after_page(clean) -> None:
    rng = random.Random(11)
    newest: dict[str, Tx] = {}
    # Spread over 300 days, denser near now, so reads stop at every window and beyond.
    ages = [rng.choice((HOUR, DAY, 7 * DAY, 60 * DAY, 300 * DAY)) for _ in range(160)]
    for round_ in range(4):
        written = []
        for n in rng.sample(range(160), 70):
            tx = Tx(
                id=f"t{n:03d}",
                workflow=(D2R, C2C)[n % 2],
                facility=("NMC01", "LCH02")[n // 2 % 2],
                id_ns=NOW - rng.randrange(ages[n]) - NS,
                status=rng.choice(("in_progress", "overdue", "complete", "late", "failed")),
                version=round_ + 1,
                start_ns=0,
                warn_ns=NOW + rng.randrange(-3, 3) * DAY if rng.random() < 0.5 else None,
                flags=("missing_step",) if rng.random() < 0.3 else (),
                deleted=int(rng.random() < 0.1),
            )
            if tx.id in newest:  # a rewrite keeps the id and its earliest event
                tx = replace(tx, id_ns=newest[tx.id].id_ns)
            tx = replace(tx, start_ns=tx.id_ns + rng.randrange(2) * HOUR)
            written.append(tx)
        if round_ == 3:
            # A merge (last: the keys table keeps every key a transaction ever had): t000
            # takes t001's key, t001 is retired.
            written = [t for t in written if t.id not in ("t000", "t001")]
            keep = newest.get("t000", written[0])
            written += [
                replace(keep, id="t000", version=round_ + 1, deleted=0, visit="V-t001"),
                replace(newest.get("t001", keep), id="t001", version=round_ + 1, deleted=1),
            ]
        write(clean, written)
        newest.update({t.id: t for t in written})
        if round_ == 2:
            clean.command(f"OPTIMIZE TABLE {clean.table('transactions')} FINAL")
        filters = [
            TransactionFilter(),
            TransactionFilter(workflow=D2R),
            TransactionFilter(facility="LCH02", status="overdue"),
            TransactionFilter(flag="missing_step", since=NOW - 30 * DAY),
            TransactionFilter(since=NOW - 10 * DAY, until=NOW - HOUR),
            TransactionFilter(key_values=("V-t001", "V-t005")),
        ]
        for where in filters:
            expected = reference(newest, where)
            for size in (3, 25):
                assert walk(clean, where, size) == expected, (round_, where, size)
            assert walk_api(clean, where, 25) == expected, (round_, where)
        assert len(reference(newest, TransactionFilter())) > 60, "the check needs live rows"
