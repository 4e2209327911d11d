"""The correlator stage: its migrations, its loop, its API routes and ``stitchboard correlate``."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import typer
from fastapi import APIRouter

from correlator.api import build_router
from correlator.queries import count_transactions
from correlator.schema import MIGRATIONS
from correlator.service import CorrelatorService
from stitchboard.components import Component
from stitchboard.runtime import Runtime
from stitchboard.stages import Stage
from stitchboard.store.schema import Migration


class CorrelatorComponent:
    """Runs the correlator thread; fed by the writer's durable batches."""

    name = "correlator"

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.service: CorrelatorService | None = None

    async def start(self) -> None:
        runtime = self.runtime
        service = CorrelatorService(
            runtime.store,
            runtime.config,
            runtime.metrics.registry,
            interval=runtime.settings.correlator_interval,
            cache_hops=runtime.settings.correlator_cache_hops,
        )
        runtime.writer.add_listener(service.on_batch)
        runtime.on_config(service.reconfigure)
        service.start()
        self.service = service

    async def stop(self) -> None:
        if self.service is not None:
            await asyncio.to_thread(self.service.stop)

    def describe(self) -> str:
        count = len(self.runtime.config.workflows)
        return f"{'Correlator':<22} {count} workflows from {self.runtime.settings.config}"


class CorrelatorStage(Stage):
    name = "correlator"

    def migrations(self) -> Sequence[Migration]:
        return MIGRATIONS

    def components(self, runtime: Runtime) -> list[Component]:
        return [CorrelatorComponent(runtime)]

    def routers(self, runtime: Runtime) -> list[APIRouter]:
        return [build_router(runtime)]

    def health(self, runtime: Runtime) -> dict[str, Any]:
        return {"transactions": count_transactions(runtime.store)}

    def commands(self, cli: typer.Typer) -> None:
        from correlator import cli as correlator_cli
        from correlator.batch import cli as batch_cli

        correlator_cli.register(cli)
        batch_cli.register(cli)


STAGE = CorrelatorStage()
