"""``stitchboard correlate``: correlate the stored backlog, or rebuild every transaction."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from stitchboard.cli_options import ClickhouseOpt, ConfigOpt, fail
from stitchboard.errors import ConfigError, StitchboardError
from stitchboard.settings import load_settings


def correlate(
    clickhouse: ClickhouseOpt = None,
    config: ConfigOpt = None,
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild",
            help="Drop every transaction first and recompute them all from events"
            " (after changing workflows in slas.yaml).",
        ),
    ] = False,
) -> None:
    """Stitch every stored event into transactions (a backlog pass; idempotent).

    With the embedded store, stop the server first: one process owns a data
    directory (a running server also re-correlates everything when it starts).
    """
    from correlator.service import CorrelatorService
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
        service = CorrelatorService(store, loaded)
        started = time.perf_counter()
        if rebuild:
            service.sink.truncate()
        events = service.full_pass()
        elapsed = time.perf_counter() - started
        # The pass holds nothing in memory: what it wrote is read back from the store.
        statuses = dict(
            store.rows(
                f"SELECT status, count() FROM {store.table('transactions')} FINAL"
                " WHERE deleted = 0 GROUP BY status"
            )
        )
    except StitchboardError as exc:
        fail(str(exc), 1)
        return
    finally:
        store.close()
    rate = events / elapsed if elapsed else 0.0
    print(
        f"{'rebuilt' if rebuild else 'correlated'} {events} events into"
        f" {sum(statuses.values())} transactions in {elapsed:.1f}s"
        f" ({rate:,.0f} events/s)"
    )
    for status, count in sorted(statuses.items()):
        print(f"  {status:<12} {count}")


def register(cli: typer.Typer) -> None:
    cli.command()(correlate)
