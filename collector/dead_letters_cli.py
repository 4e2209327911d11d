"""``stitchboard dead-letters list`` and ``stitchboard dead-letters replay``.

Like ``stitchboard import``, they talk to the running server when one answers
(it owns the embedded store) and open the store directly otherwise. Replay
reads slas.yaml from disk, so fix it first; replaying twice is harmless.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from collector.dead_letters import Filter, list_dead_letters, parse_since, replay
from collector.importer import running_server
from stitchboard.cli_options import ClickhouseOpt, ConfigOpt, fail, server_headers
from stitchboard.errors import ConfigError, StitchboardError
from stitchboard.settings import load_settings

console = Console()
dead_letters_app = typer.Typer(
    help="Rejected records: list them, replay them after fixing slas.yaml.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

SinceOpt = Annotated[
    str | None,
    typer.Option(help="Only those received since: a duration (30m, 6h, 7d) or an ISO date/time."),
]
ReasonOpt = Annotated[str | None, typer.Option(help="Only reasons containing this text.")]
SourceOpt = Annotated[
    str | None,
    typer.Option(
        help="Only this source (mllp, http.messages, otlp.traces, file:NAME, or a prefix like"
        " 'file:*')."
    ),
]
ServerOpt = Annotated[
    str | None, typer.Option(help="Use this running server (default: the local one if it answers).")
]
DirectOpt = Annotated[bool, typer.Option(help="Open the store directly.")]


def _server(settings, server: str | None, direct: bool) -> str | None:
    return server or (None if direct else running_server(settings))


@dead_letters_app.command("list")
def list_command(
    since: SinceOpt = None,
    reason: ReasonOpt = None,
    source: SourceOpt = None,
    include_replayed: Annotated[bool, typer.Option("--all", help="Include replayed ones.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    server: ServerOpt = None,
    direct: DirectOpt = False,
    clickhouse: ClickhouseOpt = None,
) -> None:
    """List dead letters, newest first, with their reasons."""
    settings = load_settings(clickhouse=clickhouse)
    try:
        flt = Filter(parse_since(since), reason, source, include_replayed, limit)
    except ValueError as exc:
        fail(str(exc))
        return
    url = _server(settings, server, direct)
    try:
        if url:
            params: dict[str, Any] = {"limit": limit, "include_replayed": include_replayed}
            params.update(
                {k: v for k, v in (("since", since), ("reason", reason), ("source", source)) if v}
            )
            response = httpx.get(
                f"{url}/api/v1/dead-letters", params=params, timeout=60, headers=server_headers()
            )
            response.raise_for_status()
            rows = response.json()["dead_letters"]
        else:
            from stitchboard.stages import open_store

            store = open_store(
                settings.clickhouse, database=settings.database, cluster=settings.cluster
            )
            rows = [
                {**r, "received_time": r["received_time"].isoformat()}
                for r in list_dead_letters(store, flt)
            ]
            store.close()
    except (StitchboardError, httpx.HTTPError) as exc:
        fail(str(exc), 1)
        return
    table = Table(title=f"{len(rows)} dead letters")
    for column in ("received (UTC)", "source", "type", "bytes", "replayed", "reason"):
        table.add_column(column, overflow="fold")
    for row in rows:
        received = str(row["received_time"])[:19].replace("T", " ")
        table.add_row(
            received,
            row["source"],
            row["content_type"],
            str(row["payload_bytes"]),
            "yes" if row["replayed"] else "",
            row["reason"],
        )
    console.print(table)


@dead_letters_app.command("replay")
def replay_command(
    since: SinceOpt = None,
    reason: ReasonOpt = None,
    source: SourceOpt = None,
    server: ServerOpt = None,
    direct: DirectOpt = False,
    clickhouse: ClickhouseOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Re-ingest dead letters under the current slas.yaml; idempotent."""
    settings = load_settings(clickhouse=clickhouse, config=config)
    try:
        flt = Filter(parse_since(since), reason, source)
    except ValueError as exc:
        fail(str(exc))
        return
    url = _server(settings, server, direct)
    try:
        if url:
            pairs = (("since", since), ("reason", reason), ("source", source))
            body = {k: v for k, v in pairs if v}
            response = httpx.post(
                f"{url}/api/v1/dead-letters/replay",
                json=body,
                timeout=600,
                headers=server_headers(),
            )
            if response.status_code != 200:
                fail(response.json().get("error", {}).get("message", response.text), 1)
            report = response.json()
        else:
            from stitchboard.runtime import build_runtime

            runtime = build_runtime(settings)
            try:
                report = replay(runtime, flt, runtime.writer.write_sync).as_dict()
            finally:
                runtime.close()
    except ConfigError as exc:
        fail(str(exc))
        return
    except (StitchboardError, httpx.HTTPError) as exc:
        fail(str(exc), 1)
        return
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    console.print(
        f"{stamp}: {report['considered']} considered, {report['replayed']} replayed"
        f" ({report['events']} events), {report['still_rejected']} still rejected"
    )
    for entry in report["reasons"]:
        console.print(f"  {entry['count']:>7}  {entry['reason']}", highlight=False)


def register(cli: typer.Typer) -> None:
    cli.add_typer(dead_letters_app, name="dead-letters")
