"""The correlator's wait between failed attempts (the loop itself: tests/store)."""

from __future__ import annotations

from correlator.service import retry_delay


def test_the_wait_doubles_up_to_its_ceiling() -> None:
    waits = [retry_delay(n, 0.5, 30.0) for n in range(1, 10)]
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
