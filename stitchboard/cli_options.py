"""Options and error reporting shared by every ``stitchboard`` command, kernel or stage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

err = Console(stderr=True)

ClickhouseOpt = Annotated[
    str | None,
    typer.Option(
        "--clickhouse",
        help="Store URL: chdb://<dir> (default chdb://./data) or http(s)://user:pass@host:8123/db."
        " Environment: STITCHBOARD_CLICKHOUSE.",
        show_default=False,
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="slas.yaml path (default ./slas.yaml). Environment: STITCHBOARD_CONFIG.",
        show_default=False,
    ),
]


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)
