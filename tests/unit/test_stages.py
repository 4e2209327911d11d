"""The stage interface: one list, explicit contributions, no registration by import."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from stitchboard.cli import app
from stitchboard.stages import STAGES, TOOLS, Stage, all_stages, served_stages, stage_migrations
from stitchboard.store.schema import KERNEL_MIGRATIONS, all_migrations


def test_every_listed_module_defines_one_stage():
    stages = all_stages()
    assert len(stages) == len(STAGES) + len(TOOLS)
    assert all(isinstance(stage, Stage) and stage.name for stage in stages)
    assert [s.name for s in served_stages()] == [
        "collector",
        "correlator",
        "alerts",
        "exports",
        "retention",
        "dashboards",
    ]


def test_migrations_come_from_the_stages_in_version_order():
    versions = [m.version for m in all_migrations(stage_migrations())]
    assert versions == sorted(versions)
    # The kernel's own (1-9) come first; its access and audit tables use 40-49.
    core = [m.version for m in KERNEL_MIGRATIONS if m.version < 10]
    assert versions[: len(core)] == core
    assert {m.version for m in KERNEL_MIGRATIONS} <= set(versions)
    assert {10, 11, 20} <= set(versions)


def test_a_version_taken_twice_is_refused_with_both_names():
    class Clash(Stage):
        name = "clash"

        def migrations(self):
            from stitchboard.store.schema import Migration

            return (Migration(10, "something else", lambda ctx: []),)

    migrations = [m for s in (*served_stages(), Clash()) for m in s.migrations()]
    try:
        all_migrations(migrations)
    except ValueError as exc:
        assert "10" in str(exc) and "something else" in str(exc)
        assert "correlator transactions" in str(exc)
    else:
        raise AssertionError("a clashing migration version was accepted")


def test_stage_commands_reach_the_command_line():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "import", "dead-letters", "correlate", "alerts", "simulate", "demo"):
        assert command in result.output


def test_a_stage_with_nothing_to_add_adds_nothing():
    cli = typer.Typer()
    stage = Stage()
    stage.commands(cli)
    assert stage.migrations() == ()
    assert cli.registered_commands == []
