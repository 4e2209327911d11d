"""The export stage: signed bundles through the API and ``stitchboard export``."""

from __future__ import annotations

import typer
from fastapi import APIRouter, FastAPI

from stitchboard.runtime import Runtime
from stitchboard.stages import Stage


class ExportStage(Stage):
    name = "exports"

    def routers(self, runtime: Runtime) -> list[APIRouter]:
        from exports.api import build_router

        return [build_router(runtime)]

    def mount(self, app: FastAPI, runtime: Runtime) -> None:
        from exports.page import mount

        mount(app)

    def commands(self, cli: typer.Typer) -> None:
        from exports import cli as export_cli

        export_cli.register(cli)


STAGE = ExportStage()
