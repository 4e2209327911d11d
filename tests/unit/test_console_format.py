"""How the console writes money, durations, counts and times; URL state; pure page logic."""

from __future__ import annotations

from decimal import Decimal

import pytest

from dashboards import view
from dashboards.formatting import (
    count,
    duration,
    iso_to_ns,
    local_time,
    money,
    money_short,
    percent,
)
from dashboards.pages.alerts import parse_matchers
from dashboards.pages.data_health import lag_card, rates
from dashboards.pages.transaction import reasons, step_verdict

NS = 1_000_000_000


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (Decimal("1234567.891"), "$1,234,567.89"),
        ("-12", "-$12.00"),
        (0, "$0.00"),
        (None, "—"),
        ("not a number", "—"),
    ],
)
def test_money(amount, text) -> None:
    assert money(amount) == text


@pytest.mark.parametrize(
    ("amount", "text"),
    [(Decimal("15700000"), "$15.7M"), (12250.5, "$12.3K"), (250.5, "$250.50"), (-2500, "-$2.5K")],
)
def test_money_short(amount, text) -> None:
    assert money_short(amount) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (3 * 86400 + 4 * 3600 + 59, "3 d 4 h"),
        (2 * 3600 + 5 * 60, "2 h 5 min"),
        (86400, "1 d"),
        (45, "45 s"),
        (0.3, "300 ms"),
        (-(22 * 3600 + 41 * 60), "-22 h 41 min"),
        (None, "—"),
    ],
)
def test_duration(seconds, text) -> None:
    assert duration(seconds) == text


def test_counts_and_percents() -> None:
    assert count(1234567) == "1,234,567"
    assert percent(0.985) == "98.5%"
    assert percent(None) == "—"  # no data is never 0% or 100%
    assert percent(1 / 7) == "14.3%"


def test_local_time_names_the_zone() -> None:
    ns = iso_to_ns("2026-03-09T14:00:00Z")
    assert ns == 1773064800 * NS
    assert local_time(ns, "America/Chicago") == "2026-03-09 09:00 CDT"  # DST began 8 March
    assert local_time(ns, "America/Phoenix") == "2026-03-09 07:00 MST"
    assert local_time(ns, None) == "2026-03-09 14:00 UTC"
    assert local_time(None, "UTC") == "—"


def test_url_state_keeps_only_what_differs_from_defaults() -> None:
    values = {"workflow": "discharge_to_revenue", "facility": None, "range": "7d", "key": ""}
    assert view.query_string(values, {"range": "7d"}) == "?workflow=discharge_to_revenue"
    assert view.query_string({"key": "A&B=C"}) == "?key=A%26B%3DC"
    assert view.query_string({}) == ""
    assert view.one_of("7d", list(view.RANGES)) == "7d"
    assert view.one_of("'; DROP TABLE", list(view.RANGES)) is None


def test_windows_and_trend_buckets() -> None:
    now = 1_000_000 * NS
    assert view.window("24h", now) == (now - 86400 * NS, now + 60 * NS)
    assert view.window("nonsense", now) == view.window("7d", now)
    assert view.bucket_seconds("24h") == 3600  # 24 points
    assert view.bucket_seconds("7d") == 6 * 3600  # 28 points
    assert view.bucket_seconds("90d") == 86400


def test_silence_matchers() -> None:
    assert parse_matchers("facility=NMC01, workflow = discharge_to_revenue") == {
        "facility": "NMC01",
        "workflow": "discharge_to_revenue",
    }
    with pytest.raises(ValueError, match="bad matcher 'facility'"):
        parse_matchers("facility")
    with pytest.raises(ValueError, match="at least one matcher"):
        parse_matchers(" , ")


def test_ingest_rates_between_refreshes() -> None:
    before = {"t": 100.0, "accepted": 1000.0, "rejected": 0.0, "correlated": 500.0}
    before["correlator_busy"] = 40.0
    after = {"t": 130.0, "accepted": 4000.0, "rejected": 30.0, "correlated": 500.0}
    after["correlator_busy"] = 52.0  # 12 s of work in 30 s
    assert rates(before, after) == {
        "accepted": 100.0,
        "rejected": 1.0,
        "correlated": 0.0,
        "correlator_busy": 0.4,
    }
    assert rates(None, after) == {}
    assert rates(after, after) == {}
    # A sample kept from before the busy counter existed gives no share; more than the
    # span (a clock step) is shown as fully busy.
    old = {k: v for k, v in before.items() if k != "correlator_busy"}
    assert "correlator_busy" not in rates(old, after)
    assert rates(before, {**after, "correlator_busy": 100.0})["correlator_busy"] == 1.0


def test_verdict_reasons_say_which_deadline_and_by_how_much() -> None:
    body = {
        "status": "late",
        "events": [],
        "missed": [
            {
                "step": "final_bill",
                "level": "warn",
                "deadline": "2026-03-14T15:00:00Z",
                "actual": "2026-03-15T16:00:00Z",
                "by_seconds": 25 * 3600,
            },
            {
                "step": "gl_journal",
                "level": "breach",
                "deadline": "2026-03-11T05:00:00Z",
                "actual": None,
                "by_seconds": 2 * 86400,
            },
        ],
    }
    assert reasons(body, "America/New_York") == [
        "final bill missed its warn deadline (2026-03-14 11:00 EDT) by 1 d 1 h",
        "gl journal has not happened; its breach deadline was 2026-03-11 01:00 EDT, 2 d ago",
    ]
    failed = {
        "status": "failed",
        "missed": [],
        "events": [
            {
                "status": "error",
                "system": "PERIOP",
                "operation": "DFT^P03",
                "status_message": "charge rejected",
            }
        ],
    }
    assert reasons(failed, "UTC") == ["PERIOP DFT^P03 reported an error: charge rejected"]
    assert step_verdict({"name": "unexpected", "count": 1}) == ("unexpected step", "warn")
    assert step_verdict({"name": "charge", "count": 0, "missed": None}) == (
        "not yet",
        "in_progress",
    )
    assert step_verdict({"name": "charge", "count": 2, "missed": "breach"}) == (
        "missed breach",
        "breach",
    )


def test_the_lag_card_shows_the_mean_delay_the_backlog_and_how_busy() -> None:
    current = {"delay_sum": 8.0, "delay_count": 4.0, "correlator_pending": 1234.0}
    card = lag_card(current, {"correlator_busy": 0.4})
    title, value, note = (child.children for child in card.children)
    assert (title, value) == ("Correlator lag", "2 s")  # 8 s over 4 batches
    assert note == "mean, durable → stitched · 1,234 events waiting · busy 40%"
    assert card.className == "kpi"
    assert lag_card(current, {"correlator_busy": 0.93}).className == "kpi warn"
    first = lag_card({**current, "delay_count": 0.0}, {})  # before the second refresh
    assert [c.children for c in first.children][1:] == [
        "—",
        "mean, durable → stitched · 1,234 events waiting",
    ]
