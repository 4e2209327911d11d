"""Options and error reporting shared by every ``stitchboard`` command, kernel or stage."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

# Messages stay one line each however narrow the terminal (or a log): soft wrap only.
err = Console(stderr=True, soft_wrap=True)

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


def server_headers() -> dict[str, str]:
    """Credentials for commands that call a running server: ``STITCHBOARD_TOKEN``."""
    token = os.environ.get("STITCHBOARD_TOKEN") or os.environ.get("STITCHBOARD_BOOTSTRAP_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)
