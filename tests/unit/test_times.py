"""The kernel's one parser of durations and instants (slas.yaml, CLI, API)."""

from __future__ import annotations

import datetime as dt

import pytest

from stitchboard.times import (
    ParsedDuration,
    instant_ns,
    parse_duration,
    parse_instant,
    parse_since,
)

NS = 1_000_000_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500ms", ParsedDuration(500_000_000, 0)),
        ("90s", ParsedDuration(90 * NS, 0)),
        (" 15m ", ParsedDuration(900 * NS, 0)),
        ("1.5h", ParsedDuration(5400 * NS, 0)),
        ("3d", ParsedDuration(3 * 86_400 * NS, 0)),
        ("2w", ParsedDuration(14 * 86_400 * NS, 0)),
        ("1bd", ParsedDuration(0, 1)),
    ],
)
def test_durations(text: str, expected: ParsedDuration) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("15", "bad duration '15'; write a number and a unit"),
        ("15 minutes", "bad duration '15 minutes'"),
        ("1.5bd", "business days must be whole"),
    ],
)
def test_bad_durations_say_what_to_write(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(text)


def test_instants_without_an_offset_are_utc() -> None:
    assert parse_instant("2026-03-09T09:00:00Z") == dt.datetime(2026, 3, 9, 9, tzinfo=dt.UTC)
    assert parse_instant("2026-03-09") == dt.datetime(2026, 3, 9, tzinfo=dt.UTC)
    eastern = parse_instant("2026-03-09T09:00:00-05:00")
    assert eastern == dt.datetime(2026, 3, 9, 14, tzinfo=dt.UTC)
    # 2026-03-09T14:00:00.000250Z: 1,773,064,800 s and 250 µs after the epoch.
    assert instant_ns(parse_instant("2026-03-09T14:00:00.000250Z")) == 1_773_064_800_000_250_000
    with pytest.raises(ValueError, match="bad time 'yesterday'; use ISO 8601"):
        parse_instant("yesterday")


def test_since_is_a_duration_back_from_now_or_an_instant() -> None:
    now = 1_800_000_000.0
    assert parse_since("6h", now) == dt.datetime.fromtimestamp(now - 6 * 3600, dt.UTC)
    assert parse_since("90s", now) == dt.datetime.fromtimestamp(now - 90, dt.UTC)
    assert parse_since("2026-03-01T08:00", now) == dt.datetime(2026, 3, 1, 8, tzinfo=dt.UTC)
    with pytest.raises(ValueError, match="business days need a facility"):
        parse_since("1bd", now)
    with pytest.raises(ValueError, match="use a duration such as 6h or 7d"):
        parse_since("last week", now)
