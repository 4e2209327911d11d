"""The ``stitchboard`` command line. Its flags are part of the product's contract."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from stitchboard.cli_options import ClickhouseOpt, ConfigOpt, fail
from stitchboard.errors import ConfigError, StitchboardError
from stitchboard.settings import load_settings

app = typer.Typer(
    name="stitchboard",
    help="Business-SLA observability for healthcare integration.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.command()
def serve(
    clickhouse: ClickhouseOpt = None,
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Console and API port (default 8050).")] = None,
    otlp_http_port: Annotated[
        int | None, typer.Option(help="OTLP/HTTP port (default 4318); 0 disables.")
    ] = None,
    otlp_grpc_port: Annotated[
        int | None, typer.Option(help="OTLP/gRPC port (default 4317); 0 disables.")
    ] = None,
    mllp_port: Annotated[
        int | None, typer.Option(help="HL7 v2 MLLP port (default 2575); 0 disables.")
    ] = None,
) -> None:
    """Run every stage in one process: collectors, correlator, alerts, API, dashboards."""
    from stitchboard.server import serve as run_server

    try:
        settings = load_settings(
            clickhouse=clickhouse,
            config=config,
            host=host,
            port=port,
            otlp_http_port=otlp_http_port,
            otlp_grpc_port=otlp_grpc_port,
            mllp_port=mllp_port,
        )
        run_server(settings)
    except ConfigError as exc:
        fail(str(exc))
    except StitchboardError as exc:
        fail(str(exc), 1)


@app.command("check-config")
def check_config(config: ConfigOpt = None) -> None:
    """Validate slas.yaml and list every problem with its path."""
    from stitchboard.config import load_config

    settings = load_settings(config=config)
    try:
        loaded = load_config(settings.config)
    except ConfigError as exc:
        fail(str(exc))
        return
    print(
        f"{settings.config}: ok ({len(loaded.facilities)} facilities, {len(loaded.keys)} keys,"
        f" {len(loaded.workflows)} workflows)"
    )


@app.command("sql")
def sql(
    query: Annotated[str, typer.Argument(help="A SELECT; {db} is replaced by the database name.")],
    clickhouse: ClickhouseOpt = None,
) -> None:
    """Run a read-only query on the store and print one JSON object per row.

    With the embedded store, stop the server first: one process owns a data directory.
    """
    import json

    from stitchboard.store import Store

    settings = load_settings(clickhouse=clickhouse)
    store = Store(settings.clickhouse, database=settings.database, cluster=settings.cluster)
    try:
        result = store.query(
            query.replace("{db}", store.database),
            settings={"readonly": 1} if not store.embedded else None,
        )
    except Exception as exc:  # noqa: BLE001 - report any query error as a CLI error
        fail(str(exc).strip().splitlines()[0])
        return
    for row in result.named_results():
        print(json.dumps(row, default=str))


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())


def _add_stage_commands(cli: typer.Typer) -> None:
    from stitchboard import access_cli
    from stitchboard.stages import all_stages

    access_cli.register(cli)
    for stage in all_stages():
        stage.commands(cli)


_add_stage_commands(app)
