"""The dashboards stage: the Dash console on the console port, and a column and index on
``transactions`` for its reads (``dashboards.schema``)."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI

from stitchboard.components import Component
from stitchboard.runtime import Runtime
from stitchboard.stages import Stage
from stitchboard.store.schema import Migration


class DashboardsStage(Stage):
    name = "dashboards"

    def migrations(self) -> Sequence[Migration]:
        from dashboards.schema import MIGRATIONS

        return MIGRATIONS

    def components(self, runtime: Runtime) -> list[Component]:
        from dashboards.open_transactions import RefreshLoop

        return [RefreshLoop(runtime.store)]

    def mount(self, app: FastAPI, runtime: Runtime) -> None:
        from dashboards.app import mount_console

        mount_console(app, runtime)


STAGE = DashboardsStage()
