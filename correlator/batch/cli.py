"""``stitchboard correlator rebuild``: every transaction recomputed by the batch pass."""

from __future__ import annotations

import time

import typer

from stitchboard.cli_options import ClickhouseOpt, ConfigOpt, fail
from stitchboard.errors import ConfigError, StitchboardError
from stitchboard.settings import load_settings

correlator_app = typer.Typer(
    help="The correlator's batch tools (rebuilds and backfills in ClickHouse).",
    no_args_is_help=True,
)


@correlator_app.command("rebuild")
def rebuild_command(clickhouse: ClickhouseOpt = None, config: ConfigOpt = None) -> None:
    """Recompute every transaction from the stored events with the SQL batch pass.

    Groups events into transactions inside ClickHouse (per workflow), summarizes
    them in bounded chunks, rewrites them and retires ids that no longer exist.
    Idempotent. With the embedded store, stop the server first: one process owns
    a data directory.
    """
    from correlator.batch.rebuild import rebuild
    from stitchboard.config import load_config
    from stitchboard.stages import open_store

    try:
        settings = load_settings(clickhouse=clickhouse, config=config)
        loaded = load_config(settings.config)
        store = open_store(
            settings.clickhouse, database=settings.database, cluster=settings.cluster
        )
    except ConfigError as exc:
        fail(str(exc))
        return
    except StitchboardError as exc:
        fail(str(exc), 1)
        return
    try:
        started = time.perf_counter()
        report = rebuild(store, loaded)
        elapsed = time.perf_counter() - started
        statuses = store.rows(
            f"SELECT status, count() FROM {store.table('transactions')} FINAL"
            " WHERE deleted = 0 GROUP BY status ORDER BY status"
        )
    except StitchboardError as exc:
        fail(str(exc), 1)
        return
    finally:
        store.close()
    rate = report.events / elapsed if elapsed else 0.0
    print(
        f"rebuilt {report.events} events into {report.transactions} transactions"
        f" in {elapsed:.1f}s ({rate:,.0f} events/s; grouping {report.grouping_seconds:.1f}s,"
        f" summarizing {report.summarize_seconds:.1f}s, writing {report.write_seconds:.1f}s);"
        f" {report.retired} retired, {report.fan_in} fan-in events"
    )
    for stats in report.workflows:
        print(
            f"  {stats.workflow:<30} {stats.hops} hops, {stats.transactions} transactions,"
            f" {stats.rounds} propagation rounds"
        )
    for status, count in statuses:
        print(f"  {status:<12} {count}")


def register(cli: typer.Typer) -> None:
    cli.add_typer(correlator_app, name="correlator")
