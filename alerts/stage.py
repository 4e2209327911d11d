"""The alerts stage: its tables, the evaluation loop in ``stitchboard serve``, API and CLI."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Sequence

import typer
from apscheduler.schedulers.background import BackgroundScheduler
from fastapi import APIRouter

from alerts.api import build_router
from alerts.evaluation import evaluate_all
from alerts.notifier import ChannelNotifier
from alerts.schema import MIGRATIONS
from stitchboard.components import Component
from stitchboard.runtime import Runtime
from stitchboard.stages import Stage
from stitchboard.store.schema import Migration

log = logging.getLogger("stitchboard.alerts")


class EvaluationLoop:
    """APScheduler runs ``evaluate_all`` every ``alerts.evaluation_interval``."""

    name = "alerts"

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.notifier = ChannelNotifier(runtime.config, runtime.store)
        self.scheduler = BackgroundScheduler(timezone="UTC")

    def run_once(self) -> None:
        try:
            evaluate_all(self.runtime.store, self.runtime.config, self.notifier)
        except Exception:  # noqa: BLE001 - one failed cycle must not stop the next
            log.exception("alert evaluation failed")

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
            next_run_time=None,
        )
        self.scheduler.start()
        # The first cycle right away (off the event loop): a resolve that happened while
        # the server was down goes out now, not one interval later.
        self.scheduler.modify_job("alerts-evaluate", next_run_time=_now())

    async def stop(self) -> None:
        await asyncio.to_thread(self.scheduler.shutdown, True)
        await asyncio.to_thread(self.notifier.close)

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
