"""The collector stage as mounted by ``stitchboard serve``: its listeners and routes."""

from __future__ import annotations

from stitchboard.components import Component
from stitchboard.runtime import Runtime


def components(runtime: Runtime) -> list[Component]:
    result: list[Component] = []
    return result
