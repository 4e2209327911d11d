"""Workflow definitions in slas.yaml (the correlator's input)."""

from __future__ import annotations

from pydantic import Field

from stitchboard.config.base import Strict


class StepMatch(Strict):
    system: str | None = None
    operation: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)


class Step(Strict):
    name: str
    match: StepMatch
    keys: list[str] = Field(default_factory=list)


class Workflow(Strict):
    name: str
    description: str = ""
    steps: list[Step]
