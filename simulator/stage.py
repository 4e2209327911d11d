"""The simulator as a command-line tool (not served): ``stitchboard simulate`` and ``demo``."""

from __future__ import annotations

import typer

from stitchboard.stages import Stage


class SimulatorTool(Stage):
    name = "simulator"

    def commands(self, cli: typer.Typer) -> None:
        from simulator import cli as simulator_cli

        simulator_cli.register(cli)


STAGE = SimulatorTool()
