"""When an extra evaluation cycle runs for a passing deadline (pure), by hand."""

from __future__ import annotations

from alerts.overdue import wake_at

S = 1_000_000_000


def test_a_deadline_before_the_next_tick_gets_its_own_cycle() -> None:
    # Now 100 s, regular tick at 115 s, cycles at least 3 s apart, 0.2 s after the deadline.
    assert wake_at(100 * S, 115 * S, 108 * S, 3 * S, S // 5) == 108 * S + S // 5
    # A deadline about to pass waits for the gap: 103 s, not 100.5 s.
    assert wake_at(100 * S, 115 * S, 100 * S + S // 2, 3 * S, S // 5) == 103 * S


def test_no_extra_cycle_when_the_regular_one_comes_first_or_nothing_is_due() -> None:
    assert wake_at(100 * S, 115 * S, 115 * S, 3 * S, S // 5) is None  # 115.2 s: the tick is first
    assert wake_at(100 * S, 115 * S, 200 * S, 3 * S, S // 5) is None
    assert wake_at(100 * S, 102 * S, 101 * S, 3 * S, S // 5) is None  # the gap reaches the tick
    assert wake_at(100 * S, 115 * S, None, 3 * S, S // 5) is None
