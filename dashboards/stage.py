"""The dashboards stage: the Dash console on the console port (no tables of its own)."""

from __future__ import annotations

from fastapi import FastAPI

from stitchboard.runtime import Runtime
from stitchboard.stages import Stage


class DashboardsStage(Stage):
    name = "dashboards"

    def mount(self, app: FastAPI, runtime: Runtime) -> None:
        from dashboards.app import mount_console

        mount_console(app, runtime)


STAGE = DashboardsStage()
