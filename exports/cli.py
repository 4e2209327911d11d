"""``stitchboard export create|verify|public-key``.

``create`` reads the store directly (with the embedded store, stop the server
first, or use ``POST /api/v1/exports`` on a running one) and shows a progress bar.
"""

from __future__ import annotations

import getpass
import socket
from pathlib import Path
from typing import Annotated

import typer

from exports.bundle import Selection, write_bundle
from exports.errors import ExportError
from exports.jobs import audit_targets
from exports.signing import load_or_create_key, load_public_key, public_pem
from exports.verify import verify_bundle
from stitchboard.cli_options import ClickhouseOpt, ConfigOpt, err, fail
from stitchboard.errors import StitchboardError

export_app = typer.Typer(help="Signed export bundles for auditors.", no_args_is_help=True)


@export_app.command("create")
def create(
    out: Annotated[Path, typer.Option("--out", help="Bundle to write (a .zip)")],
    transaction: Annotated[str | None, typer.Option(help="One transaction id")] = None,
    key: Annotated[str | None, typer.Option(help="Every transaction with this key")] = None,
    workflow: Annotated[str | None, typer.Option(help="Filter: workflow")] = None,
    facility: Annotated[str | None, typer.Option(help="Filter: facility")] = None,
    since: Annotated[str | None, typer.Option(help="Filter: started at or after")] = None,
    until: Annotated[str | None, typer.Option(help="Filter: started before")] = None,
    clickhouse: ClickhouseOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Export transactions with their hops, spans, audit trail and slas.yaml, signed."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from stitchboard.audit import AuditEntry, AuditLog
    from stitchboard.runtime import build_runtime
    from stitchboard.settings import load_settings

    selection = Selection(transaction, key, workflow, facility, since, until)
    exporter = f"cli:{getpass.getuser()}"
    try:
        settings = load_settings(clickhouse=clickhouse, config=config)
        runtime = build_runtime(settings)
    except StitchboardError as exc:
        fail(str(exc), 1)
    try:
        signing_key = load_or_create_key(settings.export_key_file)
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=err) as bar:
            task = bar.add_task("exporting", total=None)
            manifest = write_bundle(
                runtime.store,
                runtime.config,
                settings.config,
                runtime.pseudonymize,
                selection,
                out,
                exporter,
                signing_key,
                progress=lambda n: bar.update(task, description=f"{n} transactions"),
            )
        chain = settings.audit_chain or socket.gethostname()
        targets = audit_targets(out.name, selection, runtime.pseudonymize)
        AuditLog(runtime.store, chain).record(
            AuditEntry(exporter, "auditor", "export.written", targets, "cli")
        )
    except StitchboardError as exc:
        fail(str(exc), 1)
    finally:
        runtime.close()
    print(f"{out}: {manifest['transactions']} transactions, signed by {manifest['signing_key']}")


@export_app.command("verify")
def verify(
    bundle: Annotated[Path, typer.Argument(help="A bundle written by export")],
    public_key: Annotated[
        Path | None,
        typer.Option(help="The trusted public key (PEM); default: this server's signing key"),
    ] = None,
) -> None:
    """Check the signature and every file's SHA-256; name what was altered (exit 1)."""
    from stitchboard.settings import load_settings

    try:
        if public_key is not None:
            trusted = load_public_key(public_key.read_bytes(), str(public_key))
        else:
            key_file = load_settings().export_key_file
            if not key_file.is_file():
                fail(f"no trusted key: pass --public-key (no signing key at {key_file})")
            trusted = load_or_create_key(key_file).public_key()
    except (OSError, ExportError) as exc:
        fail(str(exc))
    report = verify_bundle(bundle, trusted)
    for problem in report.problems:
        err.print(f"[bold red]altered:[/] {problem}", highlight=False)
    if not report.ok:
        err.print(f"{bundle}: NOT verified ({len(report.problems)} problems)")
        raise typer.Exit(1)
    print(
        f"{bundle}: verified ({report.files_checked} files, {report.transactions} transactions,"
        " signature good)"
    )


@export_app.command("public-key")
def public_key_command() -> None:
    """Print this installation's export signing public key (PEM)."""
    from stitchboard.settings import load_settings

    key = load_or_create_key(load_settings().export_key_file)
    print(public_pem(key.public_key()).decode(), end="")


def register(cli: typer.Typer) -> None:
    cli.add_typer(export_app, name="export")
