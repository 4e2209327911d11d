"""How a stage plugs into the kernel: one interface, one list.

A stage is a package with a ``stage.py`` module that defines ``STAGE``, an
instance of a :class:`Stage` subclass overriding what it has: its schema
migrations, the long-running components of ``stitchboard serve`` (listeners,
background loops), API routers mounted under ``/api/v1``, anything else on the
console port (``mount``), and its CLI commands. ``STAGES`` lists the stages that
``stitchboard serve`` runs, in start order; ``TOOLS`` lists command-line tools
that are not served (the simulator, the benchmarks). The kernel imports them by
name, so it never depends on a stage at import time and a new stage is one entry.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter, FastAPI

    from stitchboard.components import Component
    from stitchboard.runtime import Runtime
    from stitchboard.store import Store
    from stitchboard.store.schema import Migration

STAGES: tuple[str, ...] = (
    "collector.stage",
    "correlator.stage",
    "alerts.stage",
    "exports.stage",
    "retention.stage",
    "dashboards.stage",
)
TOOLS: tuple[str, ...] = ("simulator.stage",)


class Stage:
    """A stage's contribution to the kernel; every part is optional."""

    name: str = ""

    def migrations(self) -> Sequence[Migration]:
        """Schema migrations, in version order (see ``stitchboard.store.schema``)."""
        return ()

    def components(self, runtime: Runtime) -> list[Component]:
        """Long-running parts of ``stitchboard serve``, started in list order."""
        return []

    def routers(self, runtime: Runtime) -> list[APIRouter]:
        """Routers mounted under ``/api/v1`` on the console port."""
        return []

    def mount(self, app: FastAPI, runtime: Runtime) -> None:
        """Anything else on the console port (pages, static files)."""

    def commands(self, cli: typer.Typer) -> None:
        """Add this stage's commands to the ``stitchboard`` command line."""

    def health(self, runtime: Runtime) -> dict[str, Any]:
        """Figures for ``/api/v1/health`` under ``stages.<name>`` (read from the store)."""
        return {}


def _load(names: Sequence[str]) -> list[Stage]:
    stages = []
    for name in names:
        stage = importlib.import_module(name).STAGE
        if not isinstance(stage, Stage):
            raise TypeError(f"{name}.STAGE is not a stitchboard.stages.Stage")
        stages.append(stage)
    return stages


def served_stages() -> list[Stage]:
    """The stages ``stitchboard serve`` runs, in start order."""
    return _load(STAGES)


def all_stages() -> list[Stage]:
    """Served stages, then command-line tools."""
    return _load(STAGES + TOOLS)


def stage_migrations() -> list[Migration]:
    """Every served stage's migrations (the kernel's own come first in ``migrate``)."""
    return [m for stage in served_stages() for m in stage.migrations()]


def open_store(url: str, database: str = "stitchboard", cluster: str | None = None) -> Store:
    """Open the store with the schema of the kernel and every served stage up to date."""
    from stitchboard.store import connect

    return connect(url, database=database, cluster=cluster, migrations=stage_migrations())
