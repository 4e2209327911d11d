"""``stitchboard import FILE…``: the command line around ``collector.importer``."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from collector.files import FORMATS
from collector.importer import DirectTarget, FileReport, ServerTarget, import_file, running_server
from stitchboard.cli_options import ClickhouseOpt, ConfigOpt, fail
from stitchboard.errors import ConfigError, StitchboardError
from stitchboard.runtime import build_runtime
from stitchboard.settings import load_settings

console = Console(stderr=True)


def _summary(reports: list[FileReport], target_label: str, seconds: float) -> None:
    console.print(
        f"Imported into {target_label} in {seconds:.1f}s", highlight=False, soft_wrap=True
    )
    table = Table()
    for column in ("file", "format", "from byte", "read", "stored", "events", "rejected"):
        table.add_column(column, justify="left" if column in ("file", "format") else "right")
    for r in reports:
        table.add_row(
            r.name,
            r.format,
            str(r.resumed_at),
            str(r.records),
            str(r.records - r.rejected),
            str(r.events),
            str(r.rejected),
        )
    console.print(table)
    reasons: Counter[str] = Counter()
    for r in reports:
        reasons.update(r.reasons)
    if reasons:
        console.print(
            "[bold]Rejected (in dead_letters; fix slas.yaml, then"
            " `stitchboard dead-letters replay`):[/]"
        )
        for reason, count in reasons.most_common(15):
            console.print(f"  {count:>7}  {reason}", highlight=False)


def import_command(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="HL7 (.hl7, MLLP dumps, FHS/BHS batches), JSON Lines (.jsonl) or CSV (.csv) files."
        ),
    ],
    fmt: Annotated[str, typer.Option("--format", help="auto, hl7, jsonl or csv.")] = "auto",
    server: Annotated[
        str | None,
        typer.Option(help="Send to this running server (default: the local one if it answers)."),
    ] = None,
    direct: Annotated[
        bool, typer.Option(help="Open the store directly even if a server answers.")
    ] = False,
    restart: Annotated[
        bool, typer.Option(help="Ignore the checkpoint of an earlier import of the same file.")
    ] = False,
    chunk: Annotated[
        int,
        typer.Option(
            help="Records per durable write (HL7 parsed by the engine: at least 200,000)."
        ),
    ] = 5_000,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Processes turning records into events (without a server; default: one per"
            " CPU, at most 4). Files of fewer than 4 chunks are read by one.",
        ),
    ] = min(4, os.cpu_count() or 1),
    python: Annotated[
        bool,
        typer.Option(
            "--python",
            help="Parse every HL7 message in Python, the reference path (default: the embedded"
            " engine parses what it can, Python the rest).",
        ),
    ] = False,
    clickhouse: ClickhouseOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Import message logs; resumable, and nothing is stored twice."""
    if fmt not in ("auto", *FORMATS):
        fail(f"--format must be auto, {', '.join(FORMATS)}")
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        fail(f"no such file: {', '.join(missing)}")
    try:
        settings = load_settings(clickhouse=clickhouse, config=config)
        url = server or (None if direct else running_server(settings))
        target: DirectTarget | ServerTarget = (
            ServerTarget(url)
            if url
            else DirectTarget(build_runtime(settings), workers, engine=not python)
        )
    except ConfigError as exc:
        fail(str(exc))
        return
    except StitchboardError as exc:
        fail(f"{exc} (if a server owns the data directory, import with --server URL)", 1)
        return
    if isinstance(target, DirectTarget) and target.engine_off:
        console.print(f"HL7 is parsed in Python: {target.engine_off}")
    delimiter = target.delimiter if isinstance(target, DirectTarget) else ","
    started = time.perf_counter()
    reports = []
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=console,
        ) as progress:
            for path in files:
                reports.append(import_file(target, path, fmt, restart, chunk, progress, delimiter))
    except (StitchboardError, httpx.HTTPError) as exc:
        fail(f"import stopped: {exc}; run the same command again to resume", 1)
    finally:
        target.close()
    _summary(reports, target.label, time.perf_counter() - started)


def register(cli: typer.Typer) -> None:
    cli.command("import")(import_command)
