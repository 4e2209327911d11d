"""The retention stage: legal holds, the retention plan, and a daily prune in the server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import typer
from fastapi import APIRouter

from retention.holds import MIGRATIONS
from stitchboard.components import Component
from stitchboard.runtime import Runtime
from stitchboard.stages import Stage
from stitchboard.store.schema import Migration

log = logging.getLogger(__name__)
DAY = 86_400.0


class DailyPrune:
    """Prunes by ``retention_days`` once a day (first run an hour after start)."""

    name = "retention"

    def __init__(self, runtime: Runtime, first_delay: float = 3600.0, every: float = DAY):
        self.runtime = runtime
        self.first_delay = first_delay
        self.every = every
        self._task: asyncio.Task[None] | None = None

    async def _loop(self) -> None:
        from retention.plan import prune

        await asyncio.sleep(self.first_delay)
        while True:
            try:
                done = await asyncio.to_thread(
                    prune, self.runtime.store, self.runtime.settings.retention_days
                )
                log.info("retention: %s", ", ".join(f"{p.table} -{p.to_delete}" for p in done))
            except Exception:  # noqa: BLE001 - try again tomorrow, keep serving
                log.exception("retention prune failed")
            await asyncio.sleep(self.every)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def describe(self) -> str:
        days = self.runtime.settings.retention_days
        kept = ", ".join(f"{t} {d}d" for t, d in days.items())
        return f"{'Retention':<22} {kept} (daily; holds and open work kept)"


class RetentionStage(Stage):
    name = "retention"

    def migrations(self) -> Sequence[Migration]:
        return MIGRATIONS

    def components(self, runtime: Runtime) -> list[Component]:
        from retention.plan import check_policy

        check_policy(runtime.settings.retention_days)
        return [DailyPrune(runtime)] if runtime.settings.retention_days else []

    def routers(self, runtime: Runtime) -> list[APIRouter]:
        from retention.api import build_router

        return [build_router(runtime)]

    def commands(self, cli: typer.Typer) -> None:
        from retention import cli as retention_cli

        retention_cli.register(cli)


STAGE = RetentionStage()
