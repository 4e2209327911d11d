"""Outcomes decided in a window are summed from the decided ledger (finished transactions
by the instant of the decision) and the open set (overdue ones), both kept from the
transaction versions written since their mark (``dashboards.open_transactions``): the
same figures as the newest version of every transaction judged one by one, whatever
versions the correlator wrote (rewritten, retired) and whether the engine has merged
them yet."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from decimal import Decimal

import pytest

from dashboards import queries as q

NS = 1_000_000_000
DAY = 86_400 * NS
T = 1_790_000_000 * NS  # the window's start (2026-09-21 UTC, a whole second)
WINDOW = q.Scope(since=T, until=T + 7 * DAY)
NOW = T + 20 * DAY
D2R, C2C = "discharge_to_revenue", "claim_to_cash"
COLUMNS = (
    "id", "workflow", "id_time", "facility", "status", "start_time", "end_time", "last_time",
    "warn_deadline", "breach_deadline", "amount", "version", "deleted",
)  # fmt: skip


def when(ns: int | None) -> dt.datetime | None:
    return None if ns is None else dt.datetime.fromtimestamp(ns // NS, dt.UTC)


def row(
    tx: str,
    start: int,
    status: str,
    version: int,
    *,
    end: int | None = None,
    last: int | None = None,
    warn: int | None = None,
    breach: int | None = None,
    amount: str = "0",
    facility: str = "NMC01",
    workflow: str = D2R,
    deleted: int = 0,
) -> tuple[object, ...]:
    return (
        tx, workflow, when(start), facility, status, when(start), when(end),
        when(last if last is not None else (end or start)), when(warn), when(breach),
        Decimal(amount), version, deleted,
    )  # fmt: skip


def write(store, rows: list[tuple[object, ...]]) -> None:
    """One INSERT: one part of its own, not merged with the others until OPTIMIZE."""
    store.insert("transactions", COLUMNS, rows)


@pytest.fixture
def clean(store):
    store.command(f"TRUNCATE TABLE {store.table('transactions')}")
    return store


def test_newest_versions_decide_by_hand(clean) -> None:
    write(clean, [
        # A: decided in the window (overdue at T+2d) then rewritten late at T+9d: out.
        row("a", T - 10 * DAY, "overdue", 1, warn=T + 2 * DAY, amount="1.00"),
        # B: started 60 days before the window, open (deadline after it), then complete
        # in it: counted, from far back in the look-back.
        row("b", T - 60 * DAY, "in_progress", 1, warn=T + 30 * DAY, amount="2.00"),
        # C: complete in the window, then retired (merged into another): out.
        row("c", T - 5 * DAY, "complete", 1, end=T + DAY, amount="4.00"),
        # D: failed at its last hop, T+2d: counted.
        row("d", T + DAY, "failed", 1, last=T + 2 * DAY, amount="8.00"),
        # E: stored in progress, its warn deadline T+4d has passed by NOW: overdue then.
        row("e", T - 20 * DAY, "in_progress", 1, warn=T + 4 * DAY, amount="16.00"),
        # F: overdue from T+15d, after the window: out.
        row("f", T - DAY, "in_progress", 1, warn=T + 15 * DAY, amount="32.00"),
        # G: another workflow and facility, late at T+5d.
        row("g", T - 3 * DAY, "late", 1, end=T + 5 * DAY, amount="64.00",
            facility="LCH02", workflow=C2C),
    ])  # fmt: skip
    # Before the rewrites: A and E overdue, C complete, D failed (B not due, F after).
    assert q.outcomes(clean, WINDOW, NOW, decided=True) == {
        ("NMC01", D2R): q.Outcome(
            total=4, complete=1, overdue=2, failed=1, amount_at_risk=Decimal("17.00")
        ),
        ("LCH02", C2C): q.Outcome(total=1, late=1, amount_at_risk=Decimal("64.00")),
    }
    write(clean, [
        row("a", T - 10 * DAY, "late", 2, end=T + 9 * DAY, amount="1.00"),
        row("b", T - 60 * DAY, "complete", 2, end=T + 3 * DAY, amount="2.00"),
        row("c", T - 5 * DAY, "complete", 2, end=T + DAY, amount="4.00", deleted=1),
    ])  # fmt: skip
    expected = {
        ("NMC01", D2R): q.Outcome(
            total=3, complete=1, overdue=1, failed=1, amount_at_risk=Decimal("16.00")
        ),
        ("LCH02", C2C): q.Outcome(total=1, late=1, amount_at_risk=Decimal("64.00")),
    }
    assert q.outcomes(clean, WINDOW, NOW, decided=True) == expected
    clean.command(f"OPTIMIZE TABLE {clean.table('transactions')} FINAL")
    assert q.outcomes(clean, WINDOW, NOW, decided=True) == expected
    # Nothing decided in a window: no groups (and no read of the look-back).
    empty = q.Scope(since=T + 40 * DAY, until=T + 41 * DAY)
    assert q.outcomes(clean, empty, NOW, decided=True) == {}


def _reference(rows: list[tuple[object, ...]], scope: q.Scope, now: int) -> dict:
    """The newest version of each id, judged in Python: status now, when it was decided."""
    newest: dict[str, tuple[object, ...]] = {}
    for r in rows:
        if r[0] not in newest or r[11] > newest[r[0]][11]:  # type: ignore[operator]
            newest[r[0]] = r  # type: ignore[index]
    counts: dict[tuple[str, str], Counter] = {}
    risk: dict[tuple[str, str], Decimal] = {}
    ns = lambda d: int(d.timestamp()) * NS  # noqa: E731
    since = scope.since - q.DECIDED_LOOKBACK_NS
    for (
        _tx,
        workflow,
        _,
        facility,
        status,
        start,
        end,
        last,
        warn,
        breach,
        amount,
        _,
        gone,
    ) in newest.values():
        if gone or not since <= ns(start) < scope.until:
            continue
        passed = any(d is not None and ns(d) <= now for d in (warn, breach))
        s = "overdue" if status in ("in_progress", "overdue") and passed else status
        decided = {
            "complete": end, "late": end, "failed": last,
            "overdue": warn if warn is not None else breach,
        }.get(s)  # fmt: skip
        if decided is None or not scope.since <= ns(decided) < scope.until:
            continue
        key = (facility, workflow)
        counts.setdefault(key, Counter())[s] += 1
        if s in ("late", "overdue"):
            risk[key] = risk.get(key, Decimal("0")) + amount
    return {
        key: q.Outcome(
            total=sum(c.values()),
            complete=c["complete"],
            late=c["late"],
            overdue=c["overdue"],
            failed=c["failed"],
            amount_at_risk=risk.get(key, Decimal("0")),
        )  # fmt: skip
        for key, c in counts.items()
    }


def test_equal_to_judging_every_newest_version(clean) -> None:
    """Random transactions over 95 days of starts in up to three versions (one part per
    version), some retired."""
    rng = random.Random(11)
    rows: list[tuple[object, ...]] = []
    for n in range(600):
        start = T - rng.randrange(95) * DAY + rng.randrange(86_400) * NS
        workflow = rng.choice((D2R, C2C))
        facility = rng.choice(("NMC01", "LCH02"))
        for version in range(1, rng.randrange(1, 4) + 1):
            status = rng.choice(("in_progress", "overdue", "complete", "late", "failed"))
            took = rng.randrange(1, 100) * DAY // 4
            rows.append(
                row(
                    f"t{n}",
                    start,
                    status,
                    version,
                    end=start + took if status in ("complete", "late") else None,
                    last=start + took,
                    warn=start + rng.randrange(1, 40) * DAY // 2 if rng.random() < 0.8 else None,
                    breach=start + 30 * DAY if rng.random() < 0.5 else None,
                    amount=f"{rng.randrange(10_000)}.{rng.randrange(100):02d}",
                    facility=facility,
                    workflow=workflow,
                    deleted=int(rng.random() < 0.05),
                )  # fmt: skip
            )
    # MSC03: one transaction every other day, decided within the hour, alternating two
    # workflows, over 170 days.
    for k in range(85):
        start = T - 2 * k * DAY
        wf = (D2R, C2C)[k % 2]
        rows.append(row(f"s{k}", start, "complete", 1, end=start + DAY // 24, workflow=wf,
                        facility="MSC03"))  # fmt: skip
    for version in (1, 2, 3):  # one part per version, read after each: built, then kept
        write(clean, [r for r in rows if r[11] == version])
        written = [r for r in rows if r[11] <= version]
        for scope in (WINDOW, q.Scope(T - 30 * DAY, T), q.Scope(T, T + 7 * DAY, workflow=C2C)):
            for facility in (None, "LCH02"):
                chosen = q.Scope(scope.since, scope.until, scope.workflow, facility)
                expected = _reference(
                    [r for r in written if (not facility or r[3] == facility)
                     and (not chosen.workflow or r[1] == chosen.workflow)],
                    chosen,
                    NOW,
                )  # fmt: skip
                assert expected, "the check needs transactions decided in the window"
                assert q.outcomes(clean, chosen, NOW, decided=True) == expected, version
    clean.command(f"OPTIMIZE TABLE {clean.table('transactions')} FINAL")
    assert q.outcomes(clean, WINDOW, NOW, decided=True) == _reference(rows, WINDOW, NOW)
    sparse = q.Scope(T - 170 * DAY, T + 7 * DAY, facility="MSC03")
    assert q.outcomes(clean, sparse, NOW, decided=True) == {
        ("MSC03", D2R): q.Outcome(total=43, complete=43),
        ("MSC03", C2C): q.Outcome(total=42, complete=42),
    }
