"""The alerts stage: its tables, the evaluation loop in ``stitchboard serve``, API and CLI."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time
from collections.abc import Sequence

import typer
from apscheduler.schedulers.background import BackgroundScheduler
from fastapi import APIRouter

from alerts.api import build_router
from alerts.backfill import Backlog, describe
from alerts.evaluation import evaluate_all
from alerts.notifier import ChannelNotifier
from alerts.overdue import next_deadline, wake_at
from alerts.progress import Progress, RegistryProgress
from alerts.schema import MIGRATIONS
from stitchboard.components import Component
from stitchboard.runtime import Runtime
from stitchboard.stages import Stage
from stitchboard.store.schema import Migration

log = logging.getLogger("stitchboard.alerts")
# A deadline's extra cycle runs this long after it: the overdue rule counts a deadline
# at or before the cycle's start.
_MARGIN_NS = 200_000_000
# Extra cycles for deadlines stay a fifth of the interval apart, at most 5 s.
_MAX_GAP_NS = 5_000_000_000


class EvaluationLoop:
    """APScheduler runs ``evaluate_all`` every ``alerts.evaluation_interval``."""

    name = "alerts"

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.notifier = ChannelNotifier(runtime.config, runtime.store)
        self.scheduler = BackgroundScheduler(timezone="UTC")
        # The job asks the scheduler for its next run; APScheduler's shutdown holds the
        # job store lock while it waits for the running job, so the job must not ask once
        # the shutdown began (it would wait on that lock forever).
        self._scheduling = threading.Lock()
        self._stopping = False
        # The correlator's progress, from the metrics it registers in the shared registry.
        self.progress: Progress = RegistryProgress(runtime.metrics.registry)
        self._holding = False
        self._backfill_since: float | None = None  # when feeds began receiving a backlog

    def run_once(self) -> None:
        try:
            correlation = self.progress.read(time.time())
            holding = correlation is not None and correlation.catching_up
            if holding != self._holding and correlation is not None:
                if holding:
                    log.info("burn-rate pages held: %s", correlation.reason())
                else:
                    log.info(
                        "burn-rate pages no longer held: events wait %.0f s to be correlated",
                        correlation.lag_s,
                    )
            self._holding = holding
            evaluation = evaluate_all(
                self.runtime.store,
                self.runtime.config,
                self.notifier,
                correlation=correlation,
            )
            self._log_backfill(evaluation.backfilling)
            self._wake_for_deadline()
        except Exception:  # noqa: BLE001 - one failed cycle must not stop the next
            log.exception("alert evaluation failed")

    def _log_backfill(self, feeds: tuple[Backlog, ...]) -> None:
        """One line when feeds begin receiving a backlog (pages held), one when none does."""
        now = time.time()
        if feeds and self._backfill_since is None:
            self._backfill_since = now
            rule = self.runtime.config.alerts.backfill
            shown = "; ".join(describe(f, rule, time.time_ns()) for f in feeds[:5])
            more = f"; and {len(feeds) - 5} more feeds" if len(feeds) > 5 else ""
            log.info(
                "new burn-rate, overdue and unmatched alerts of the workflows these feeds"
                " serve held (at most %s): backlog arriving from %s%s",
                rule.max_hold.text,
                shown,
                more,
            )
        elif not feeds and self._backfill_since is not None:
            log.info(
                "alerts no longer held for a backlog: no feed is receiving one (held %.0f s)",
                now - self._backfill_since,
            )
            self._backfill_since = None

    def _wake_for_deadline(self) -> None:
        """Run the next cycle when the next high-value deadline passes, if that comes
        before the regular one: a page then waits for the correlator and one cycle,
        not for up to a whole interval more."""
        config = self.runtime.config.alerts
        if not config.overdue.enabled:
            return
        interval = config.evaluation_interval.nanos
        now = time.time_ns()
        deadline = next_deadline(self.runtime.store, config.overdue.amount, now)
        if deadline is None:
            return
        with self._scheduling:
            if self._stopping:
                return
            job = self.scheduler.get_job("alerts-evaluate")
            regular = job.next_run_time if job is not None else None
            next_tick = int(regular.timestamp() * 1e9) if regular else now + interval
            gap = min(interval // 5, _MAX_GAP_NS)
            at = wake_at(now, next_tick, deadline, min_gap=gap, margin=_MARGIN_NS)
            if at is not None:
                when = dt.datetime.fromtimestamp(at / 1e9, dt.UTC)
                self.scheduler.modify_job("alerts-evaluate", next_run_time=when)

    async def start(self) -> None:
        # APScheduler logs every run at INFO: a line per 15 s drowns the server's log.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        seconds = self.runtime.config.alerts.evaluation_interval.nanos / 1e9
        self.scheduler.add_job(
            self.run_once,
            "interval",
            seconds=seconds,
            id="alerts-evaluate",
            max_instances=1,
            coalesce=True,
            # A run the scheduler reaches late (a busy machine) still runs, once: by
            # default one more than 1 s late is skipped, and a page waits a whole interval.
            misfire_grace_time=None,
            next_run_time=None,
        )
        self.scheduler.start()
        # The first cycle right away (off the event loop): a resolve that happened while
        # the server was down goes out now, not one interval later.
        self.scheduler.modify_job("alerts-evaluate", next_run_time=_now())

    async def stop(self) -> None:
        await asyncio.to_thread(self._stop_scheduling)
        await asyncio.to_thread(self.scheduler.shutdown, True)
        await asyncio.to_thread(self.notifier.close)

    def _stop_scheduling(self) -> None:
        with self._scheduling:  # waits for a job that is asking the scheduler now
            self._stopping = True

    def describe(self) -> str:
        config = self.runtime.config
        interval = config.alerts.evaluation_interval.text
        channels = ", ".join(c.name for c in config.alerts.channels) or "none"
        return f"{'Alerts':<22} {len(config.slos)} SLOs every {interval}; channels: {channels}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class AlertsStage(Stage):
    name = "alerts"

    def migrations(self) -> Sequence[Migration]:
        return MIGRATIONS

    def components(self, runtime: Runtime) -> list[Component]:
        return [EvaluationLoop(runtime)]

    def routers(self, runtime: Runtime) -> list[APIRouter]:
        return [build_router(runtime)]

    def commands(self, cli: typer.Typer) -> None:
        from alerts.cli import register

        register(cli)


STAGE = AlertsStage()
