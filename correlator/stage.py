"""The correlator as mounted by ``stitchboard serve``: its loop and its API routes."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

import correlator.schema  # noqa: F401 - registers migrations 10-19
from correlator.api import build_router
from correlator.service import CorrelatorService
from stitchboard.components import Component
from stitchboard.runtime import Runtime

SERVICE = "correlator"


class CorrelatorComponent:
    """Runs the correlator thread; fed by the writer's durable batches."""

    name = "correlator"

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.service: CorrelatorService | None = None

    async def start(self) -> None:
        runtime = self.runtime
        service = CorrelatorService(runtime.store, runtime.config, runtime.metrics.registry)
        runtime.writer.add_listener(service.on_batch)
        service.start()
        runtime.services[SERVICE] = service
        self.service = service

    async def stop(self) -> None:
        if self.service is not None:
            await asyncio.to_thread(self.service.stop)

    def describe(self) -> str:
        count = len(self.runtime.config.workflows)
        return f"{'Correlator':<22} {count} workflows from {self.runtime.settings.config}"


def components(runtime: Runtime) -> list[Component]:
    return [CorrelatorComponent(runtime)]


def routers(runtime: Runtime) -> list[APIRouter]:
    return [build_router(runtime)]
