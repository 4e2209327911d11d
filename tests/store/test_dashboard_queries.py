"""The console's queries on the embedded engine over known traffic (tests/dashboard_seed.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from correlator import CorrelatorService, StoreTransactions, TransactionFilter
from dashboards import queries as q
from stitchboard.events import EVENT_COLUMNS
from tests.correlator_helpers import DAY, HOUR, MINUTE, at, shipped_config
from tests.dashboard_seed import NOW, T0, seed_events

CONFIG = shipped_config()
D2R = "discharge_to_revenue"
WEEK = q.Scope(since=T0 - DAY, until=T0 + 2 * DAY, workflow=D2R)


@pytest.fixture(scope="module")
def seeded(store):
    for table in ("events", "transactions", "transaction_keys", "dead_letters"):
        store.command(f"TRUNCATE TABLE {store.table(table)}")
    store.insert("events", EVENT_COLUMNS, [e.row() for e in seed_events()])
    CorrelatorService(store, CONFIG).full_pass()
    return store


def tx_id(store, visit: str) -> str:
    reader = StoreTransactions(store, CONFIG)
    [item], _ = reader.list_transactions(TransactionFilter(key_values=(visit,)), 5, NOW)
    return item["id"]


def test_outcomes_by_facility_and_workflow(seeded) -> None:
    cells = q.outcomes(seeded, WEEK, NOW)
    nmc = cells[("NMC01", D2R)]
    assert (nmc.total, nmc.complete, nmc.overdue, nmc.late, nmc.failed) == (3, 1, 2, 0, 0)
    assert nmc.on_time == pytest.approx(1 / 3)
    assert nmc.amount_at_risk == Decimal("100.00")  # VISIT0002's charge; VISIT0004 has none
    lch = cells[("LCH02", D2R)]
    assert (lch.total, lch.late, lch.on_time, lch.amount_at_risk) == (1, 1, 0.0, Decimal("150.50"))
    msc = cells[("MSC03", D2R)]
    assert (msc.total, msc.failed, msc.on_time) == (1, 1, 0.0)
    total = q.total_outcome(cells)
    assert (total.total, total.decided, total.complete) == (5, 5, 1)
    assert total.on_time == pytest.approx(0.2)
    assert total.amount_at_risk == Decimal("250.50")


def test_window_and_facility_narrow_the_scope(seeded) -> None:
    later = q.Scope(since=T0 + 90 * MINUTE, until=T0 + DAY, workflow=D2R, facility="NMC01")
    assert q.outcomes(seeded, later, NOW)[("NMC01", D2R)].total == 1  # VISIT0004 only
    assert q.outcomes(seeded, q.Scope(since=T0 + DAY, until=NOW, workflow=D2R), NOW) == {}
    # A final bill starts a claim_to_cash transaction: three of them, overdue by now.
    claims = q.outcomes(seeded, q.Scope(since=T0, until=NOW, workflow="claim_to_cash"), NOW)
    assert sum(o.total for o in claims.values()) == 3


def test_overdue_now_and_dnfb(seeded) -> None:
    assert q.overdue_now(seeded, NOW, D2R, None) == 2
    assert q.overdue_now(seeded, NOW, D2R, "LCH02") == 0
    dnfb = q.dnfb(seeded, NOW)
    # VISIT0002 (discharged T0+1h, $100.00) and VISIT0004 (T0+3h, no charges) have no final
    # bill: 10 d - 1 h and 10 d - 3 h ago, on average 10 d - 2 h = 9.9167 days.
    assert (dnfb.count, dnfb.amount, dnfb.over_threshold) == (2, Decimal("100.00"), 2)
    assert dnfb.average_days == pytest.approx(10 - 2 / 24)
    assert q.dnfb(seeded, NOW, facility="LCH02").count == 0
    # Three days after the first discharge both were still under the 3-day threshold... at T0+2d.
    assert q.dnfb(seeded, T0 + 2 * DAY).over_threshold == 0


def test_the_cards_figures_from_one_read_of_the_open_set(seeded) -> None:
    d2r = q.Scope(since=T0, until=NOW, workflow=D2R)
    cards = q.decided_cards(seeded, d2r, NOW, D2R)
    assert cards.overdue_now == 2  # VISIT0002 and VISIT0004, as overdue_now counts them
    assert cards.dnfb == q.dnfb(seeded, NOW)
    assert cards.dnfb is not None and (cards.dnfb.count, cards.dnfb.over_threshold) == (2, 2)
    total = q.total_outcome(cards.decided)
    # Decided since T0: VISIT0001 complete, VISIT0003 late ($150.50), the failed one at
    # MSC03, and the two overdue (VISIT0002's $100.00 at risk; VISIT0004 has no amount).
    assert (total.total, total.complete, total.late, total.overdue, total.failed) == (5, 1, 1, 2, 1)
    assert total.amount_at_risk == Decimal("250.50")
    assert cards.decided == q.outcomes(seeded, d2r, NOW, decided=True)
    # Narrowed to LCH02: its late transaction, nothing overdue, no DNFB; without a DNFB
    # workflow the read leaves it out.
    lch = q.decided_cards(seeded, q.Scope(T0, NOW, D2R, "LCH02"), NOW, None)
    assert (lch.overdue_now, lch.dnfb) == (0, None)
    assert lch.decided == {
        ("LCH02", D2R): q.Outcome(total=1, late=1, amount_at_risk=Decimal("150.50"))
    }


def figures_of(store, step: str = "engine_ack", anchor: str | None = "discharge"):
    steps = [s.name for s in CONFIG.workflows[0].steps if not s.optional]  # as the page does
    return q.scope_figures(store, WEEK, NOW, steps, step, anchor)


def test_funnel_reached_and_stopped(seeded) -> None:
    funnel = {f.step: (f.reached, f.stopped_here) for f in figures_of(seeded).funnel}
    assert funnel == {
        "discharge": (5, 0),
        "engine_ack": (5, 1),  # VISIT0004 stopped after the engine's ACK
        "charge": (4, 1),  # VISIT0002 stopped after its charge
        "gl_journal": (3, 0),
        "coding_complete": (3, 0),
        "final_bill": (3, 0),
    }


def test_step_latency_quantiles(seeded) -> None:
    latency = figures_of(seeded).latency
    # ACKs after 60, 60, 60, 300 and 60 seconds.
    assert latency.count == 5
    assert (latency.p50, latency.p90, latency.p99) == (60.0, 300.0, 300.0)
    assert sum(n for _, n in latency.histogram) == 5
    # 30 bins up to the slowest (300 s): 10 s wide; four in the 60 s bin, one in the 300 s bin.
    assert latency.bin_seconds == 10.0
    assert latency.histogram == ((60.0, 4), (300.0, 1))
    end = figures_of(seeded, "final_bill", None).latency
    assert end.count == 3 and end.p50 == 4 * 86400.0 and end.p99 == 6 * 86400.0
    # Durations are the correlator's (from each step's own anchor): no such step, none.
    assert figures_of(seeded, "nonexistent", None).latency.count == 0


def test_aging_of_open_transactions(seeded) -> None:
    buckets = {b.label: (b.count, b.amount) for b in q.aging(seeded, NOW, D2R, None)}
    assert buckets["7–14 d"] == (2, Decimal("100.00"))
    assert sum(n for n, _ in buckets.values()) == 2
    early = {b.label: b.count for b in q.aging(seeded, T0 + 2 * HOUR + MINUTE, D2R, None)}
    assert early["< 1 d"] >= 1 and early["> 30 d"] == 0


def test_flags_slowest_and_most_overdue(seeded) -> None:
    found = figures_of(seeded)
    assert found.flags.get("unexpected_step") == 1
    slow = found.slowest
    assert [r["id"] for r in slow][:1] == [tx_id(seeded, "VISIT0003")]
    assert slow[0]["duration_ns"] == 6 * DAY
    overdue = q.most_overdue(seeded, NOW, D2R, None)
    # First deadline passed: VISIT0004's charge warn (T0+3h+24h = Tue 10 Mar 17:00 UTC), then
    # VISIT0002's journal breach (end of Tue 10 Mar in Chicago = Wed 11 Mar 05:00 UTC).
    assert [r["id"] for r in overdue] == [tx_id(seeded, "VISIT0004"), tx_id(seeded, "VISIT0002")]
    assert [r["due_ns"] for r in overdue] == [
        at("2026-03-10T17:00:00+00:00"),
        at("2026-03-11T05:00:00+00:00"),
    ]
    assert [r["past_breach"] for r in overdue] == [1, 1]


def test_feeds_per_minute(seeded) -> None:
    now = T0 + 3 * HOUR + 30 * MINUTE
    feeds = {(f.system, f.facility): f for f in q.feeds(seeded, now)}
    adt = feeds[("EHR_ADT", "NMC01")]
    assert adt.last_ns == T0 + 3 * HOUR and adt.last_hour == 1
    assert adt.per_minute[30] == 1 and sum(adt.per_minute) == 1
    ack = feeds[("IFENGINE", "NMC01")]
    assert ack.per_minute[35] == 1  # VISIT0004's late ACK at T0+3h05
    assert ("ERP_GL", "NMC01") not in feeds  # its first journal comes at T0+20h


def test_dead_letters_by_reason_and_related(seeded) -> None:
    rows = [
        ("d1", T0, "mllp", "x-application/hl7-v2+er7", "MSH|...|VISIT0002|", "no timestamp"),
        ("d2", T0 + HOUR, "mllp", "x-application/hl7-v2+er7", "MSH|...|OTHER|", "no timestamp"),
        ("d3", T0 + 2 * HOUR, "file:a.csv", "text/csv", "x,VISIT0002", "bad amount"),
    ]
    seeded.insert(
        "dead_letters", ("id", "received_time", "source", "content_type", "payload", "reason"), rows
    )
    reasons = q.dead_letter_reasons(seeded)
    assert [(r["reason"], r["count"]) for r in reasons] == [("no timestamp", 2), ("bad amount", 1)]
    assert reasons[0]["last_ns"] == T0 + HOUR
    related = q.related_dead_letters(seeded, ["VISIT0002", "ACCT0002"], T0 - DAY, NOW)
    assert [r["id"] for r in related] == ["d3", "d1"]
    assert q.related_dead_letters(seeded, ["VISIT0002"], T0 + DAY, NOW) == []


def test_outcomes_decided_in_the_window(seeded) -> None:
    # In [T0+5d, NOW) only VISIT0003's late final bill (T0+2h+6d) was decided; the others
    # finished, failed or passed a deadline within the first five days.
    late_window = q.Scope(since=T0 + 5 * DAY, until=NOW, workflow=D2R)
    assert q.outcomes(seeded, late_window, NOW, decided=True) == {
        ("LCH02", D2R): q.Outcome(total=1, late=1, amount_at_risk=Decimal("150.50"))
    }
    everything = q.outcomes(seeded, q.Scope(since=T0, until=NOW, workflow=D2R), NOW, decided=True)
    total = q.total_outcome(everything)
    assert (total.total, total.complete, total.in_progress) == (5, 1, 0)
