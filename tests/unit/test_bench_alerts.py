"""The alerts bench's split of deadline -> page, worked out by hand."""

from __future__ import annotations

from bench.alerts import where_time_goes

A, B, C = ("w", "F1"), ("w", "F2"), ("w", "F3")


def test_the_split_without_and_with_the_correlator() -> None:
    deadlines = {A: 100.0, B: 200.0, C: 300.0}
    fired = {A: 110.0, B: 230.0}  # C never fired
    received = {A: 111.5, B: 232.0}
    lines = where_time_goes(deadlines, fired, received)
    assert lines == [
        "-> the evaluation cycle that found it started: median 20.0 s, p95 30.0 s, max 30.0 s",
        "-> webhook received (that cycle, then delivery): median 1.8 s, p95 2.0 s, max 2.0 s",
    ]
    # A's row was written before its deadline (counts 0); B's 25 s after it, so B's
    # cycle found it 5 s after the row was there.
    written = {A: 90.0, B: 225.0}
    lines = where_time_goes(deadlines, fired, received, written)
    assert lines[0] == (
        "deadline -> its transaction row written (0 when before):"
        " median 12.5 s, p95 25.0 s, max 25.0 s"
    )
    assert lines[1] == (
        "-> the evaluation cycle that found it started: median 7.5 s, p95 10.0 s, max 10.0 s"
    )


def test_an_unknown_part_is_refused_by_name(monkeypatch) -> None:
    import pytest

    from bench.alerts import run

    monkeypatch.setenv("BENCH_ALERTS_PARTS", "load,cylce")
    with pytest.raises(ValueError, match=r"BENCH_ALERTS_PARTS: unknown part\(s\) \['cylce'\]"):
        next(run())
