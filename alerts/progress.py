"""How far behind the correlator is, read from its ``/metrics`` face, so that burn-rate
pages wait while it catches up.

While the correlator works through a backlog (a history replay, a burst, a restart's
catch-up), its deadline sweep has already judged transactions overdue whose
completing hops are still queued: an SLO counted then reads far worse than it will
once the queue drains (a replay paged 47-50 % compliance for a workflow that settled
at 77-79 %). So while the correlator lags by more than ``LAG_LIMIT_S``, a burn-rate
alert that would start firing stays ``pending`` with a ``held`` annotation that says
why; alerts already firing carry on, and a condition that clears meanwhile resolves
without a page. A hold lasts at most ``MAX_HOLD_NS``: a correlator that never
catches up must not keep a real page from going out.

The lag comes from the metrics the correlator registers in the registry
``stitchboard serve`` shares (names below, the same as ``/metrics`` shows): the mean
wait of the batches correlated since the previous reading (batch durable ->
transactions written), or, when events are pending and none were correlated since,
how long it has been since any were. A process without a correlator (the CLI's
``alerts evaluate --once``) reads no lag and holds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry

PENDING = "stitchboard_correlator_pending_events"
DELAY_SUM = "stitchboard_correlation_delay_seconds_sum"
DELAY_COUNT = "stitchboard_correlation_delay_seconds_count"
LAG_LIMIT_S = 10.0
MAX_HOLD_NS = 10 * 60 * 1_000_000_000


@dataclass(frozen=True)
class Correlation:
    """One reading of the correlator's progress."""

    pending: int  # durable events not yet correlated
    lag_s: float  # how long events wait to be correlated now (0: nothing waits)

    @property
    def catching_up(self) -> bool:
        return self.lag_s > LAG_LIMIT_S

    def reason(self) -> str:
        return (
            f"correlator catching up: events waited {self.lag_s:.0f} s to be correlated,"
            f" {self.pending:,} still pending; burn-rate pages wait while that exceeds"
            f" {LAG_LIMIT_S:.0f} s (at most {MAX_HOLD_NS // 60_000_000_000} minutes)"
        )


class Progress(Protocol):
    def read(self, now: float) -> Correlation | None:
        """The correlator's progress at ``now`` (seconds), None when none runs here."""


@dataclass
class RegistryProgress:
    """Reads the correlator's metrics from the registry it shares with this stage."""

    registry: CollectorRegistry
    _count: float = 0.0
    _sum: float = 0.0
    _progressed_at: float | None = None  # when a reading last saw batches correlated

    def read(self, now: float) -> Correlation | None:
        pending = self.registry.get_sample_value(PENDING)
        count = self.registry.get_sample_value(DELAY_COUNT)
        total = self.registry.get_sample_value(DELAY_SUM)
        if pending is None or count is None or total is None:
            return None
        if self._progressed_at is None:
            self._progressed_at = now
        lag = 0.0
        if count > self._count:
            lag = (total - self._sum) / (count - self._count)
            self._progressed_at = now
        elif pending > 0:
            lag = now - self._progressed_at
        self._count, self._sum = count, total
        return Correlation(int(pending), lag)


@dataclass
class FixedProgress:
    """In memory, for tests: the reading they set."""

    correlation: Correlation | None = None

    def read(self, now: float) -> Correlation | None:
        return self.correlation
