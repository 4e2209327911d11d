"""The stages mounted by ``stitchboard serve``.

Each entry names a module with ``components(runtime) -> list[Component]`` and,
optionally, ``routers(runtime) -> list[fastapi.APIRouter]`` (mounted under
``/api/v1``) and ``mount(app, runtime)`` (for anything else on the console
port). The kernel knows stages only through this list.
"""

from __future__ import annotations

import importlib
from types import ModuleType

STAGE_MODULES = ("collector.stage", "correlator.stage")


def load_stages() -> list[ModuleType]:
    return [importlib.import_module(name) for name in STAGE_MODULES]
