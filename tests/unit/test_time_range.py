"""Custom date ranges from the URL: whole days in the facility's zone (else UTC)."""

from __future__ import annotations

import datetime as dt

from dashboards import time_range
from dashboards.time_range import CUSTOM, DEFAULT_RANGE, TimeRange, bucket_seconds, chosen

NS = 1_000_000_000
HOUR = 3600 * NS


def ns(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).timestamp()) * NS


def test_dates_are_whole_utc_days_the_last_one_included() -> None:
    r = time_range.from_args({"from": "2026-03-09", "to": "2026-03-15", "range": "30d"})
    assert r.custom and r.zone == "UTC"
    assert r.window(0) == (ns("2026-03-09T00:00:00+00:00"), ns("2026-03-16T00:00:00+00:00"))
    assert r.query() == {"from": "2026-03-09", "to": "2026-03-15"}
    assert r.seconds(ns("2026-04-01T00:00:00+00:00")) == 7 * 86_400


def test_dates_in_a_facility_zone_across_the_daylight_saving_change() -> None:
    one_day = time_range.from_args({"from": "2026-03-09", "to": "2026-03-09"}, "America/Chicago")
    # Monday 9 March 2026 in Chicago is CDT (UTC-5): 05:00 UTC to 05:00 UTC.
    assert one_day.window(0) == (ns("2026-03-09T05:00:00+00:00"), ns("2026-03-10T05:00:00+00:00"))
    # Sat 7 (CST, UTC-6) and Sun 8 March (clocks forward at 02:00): 47 hours.
    weekend = time_range.from_args({"from": "2026-03-07", "to": "2026-03-08"}, "America/Chicago")
    since, until = weekend.window(0)
    assert since == ns("2026-03-07T06:00:00+00:00") and until - since == 47 * HOUR


def test_a_minute_is_exact_and_its_end_exclusive() -> None:
    r = time_range.from_args({"from": "2026-03-09T08:30", "to": "2026-03-09T10:00"}, "UTC")
    assert r.window(0) == (ns("2026-03-09T08:30:00+00:00"), ns("2026-03-09T10:00:00+00:00"))


def test_unreadable_dates_fall_back_to_the_default_and_say_why() -> None:
    backwards = time_range.from_args({"from": "2026-03-09", "to": "2026-03-01"})
    assert backwards.preset == DEFAULT_RANGE and not backwards.custom
    assert backwards.problem == "to='2026-03-01' is before from='2026-03-09'"
    garbage = time_range.from_args({"from": "'; DROP TABLE x", "to": "2026-03-01"})
    assert garbage.preset == DEFAULT_RANGE and "YYYY-MM-DD" in (garbage.problem or "")
    too_long = time_range.from_args({"from": "2020-01-01", "to": "2026-01-01"})
    assert too_long.problem == "longer than 400 days"
    only_one = time_range.from_args({"from": "2026-03-09", "range": "24h"})
    assert only_one == TimeRange("24h") and only_one.problem is None


def test_presets_end_now() -> None:
    now = ns("2026-03-09T12:00:00+00:00")
    r = time_range.from_args({"range": "24h"})
    assert r.window(now) == (now - 24 * HOUR, now + 60 * NS)
    assert r.key == "24h" and r.query() == {"range": "24h"}
    assert time_range.from_args({"range": "1y"}) == TimeRange(DEFAULT_RANGE)


def test_the_controls_choose_dates_or_a_preset() -> None:
    # Both dates picked: custom, whatever the dropdown says.
    assert chosen("7d", "2026-03-09", "2026-03-10", changed_dates=True) == {
        "from": "2026-03-09",
        "to": "2026-03-10",
    }
    # "Custom dates" chosen before the dates: nothing changes yet.
    assert chosen(CUSTOM, None, None, changed_dates=False) == {}
    assert chosen(CUSTOM, "2026-03-09", None, changed_dates=True) == {}
    # A preset picked: the dates are dropped.
    assert chosen("30d", "2026-03-09", "2026-03-10", changed_dates=False) == {"range": "30d"}


def test_trend_buckets_for_custom_lengths() -> None:
    assert bucket_seconds(3600) == 300
    assert bucket_seconds(7 * 86_400) == 6 * 3600
    assert bucket_seconds(60 * 86_400) == 86_400
    assert bucket_seconds(400 * 86_400) == 7 * 86_400
