"""The ``stitchboard`` command line. Its flags are part of the product's contract."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from stitchboard.cli_options import ClickhouseOpt, ConfigOpt, fail
from stitchboard.errors import ConfigError, PortInUse, StitchboardError
from stitchboard.settings import load_settings

app = typer.Typer(
    name="stitchboard",
    help="Business-SLA observability for healthcare integration.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain help: the rich formatter labels every flag ``<bool>`` with current Click.
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from stitchboard import __version__

        print(f"stitchboard {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Business-SLA observability for healthcare integration."""


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
    """Run every stage in one process: the collectors, the correlator and the JSON API."""
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
    except (ConfigError, PortInUse) as exc:
        fail(str(exc))
    except StitchboardError as exc:
        fail(str(exc), 1)


@app.command("check-config")
def check_config(
    path: Annotated[
        Path | None,
        typer.Argument(
            help="The slas.yaml to check (default: --config, else ./slas.yaml).", show_default=False
        ),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Validate slas.yaml and list every problem with its path, all in one run."""
    from stitchboard.config import load_config

    settings = load_settings(config=path or config)
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

    The query runs with the engine's readonly setting: INSERT, CREATE, DROP and
    other changes are refused. The embedded store can be read only while no
    server holds it (one process owns a data directory).
    """
    import json

    from stitchboard.store import Store

    settings = load_settings(clickhouse=clickhouse)
    held = _embedded_store_in_use(settings.clickhouse)
    if held is not None:
        fail(
            f"the store {held} is held by a running server (one process owns a data"
            " directory): read through its API (/api/v1/transactions, /api/v1/health),"
            " or stop it and run this again"
        )
    store = Store(settings.clickhouse, database=settings.database, cluster=settings.cluster)
    try:
        result = store.query(query.replace("{db}", store.database), settings={"readonly": 1})
    except Exception as exc:  # noqa: BLE001 - report any query error as a CLI error
        message = str(exc).strip().splitlines()[0]
        if "READONLY" in message or "readonly mode" in message:
            message = "stitchboard sql is read-only: only SELECT, SHOW, DESCRIBE and EXPLAIN run"
        fail(message)
        return
    for row in result.named_results():
        print(json.dumps(row, default=str))


def _embedded_store_in_use(url: str) -> Path | None:
    """The data directory of a ``chdb://`` store another process holds, else None.

    The engine holds an exclusive lock on ``<dir>/status`` while it runs; probing it
    (and letting go at once) tells before the engine fails with a raw error.
    """
    import fcntl
    from urllib.parse import unquote, urlsplit

    if not url.startswith("chdb://"):
        return None
    parts = urlsplit(url)
    directory = Path(unquote(parts.netloc + parts.path) or "./data").resolve()
    status = directory / "status"
    if not status.exists():
        return None
    with status.open("rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return directory
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())


def _add_stage_commands(cli: typer.Typer) -> None:
    from stitchboard import access_cli
    from stitchboard.stages import all_stages

    access_cli.register(cli)
    for stage in all_stages():
        stage.commands(cli)


_add_stage_commands(app)
