"""``stitchboard retention plan|apply`` and ``stitchboard holds add|release|list``.

They work on the store directly (with the embedded store, stop the server
first; a running server prunes on its own once a day and offers
``/api/v1/retention/plan`` and ``/api/v1/holds``).
"""

from __future__ import annotations

import getpass
import json
import socket
from typing import Annotated

import typer

from retention.holds import list_holds, release_hold, set_hold
from retention.plan import TablePlan, plan, prune
from stitchboard.audit import AuditEntry, AuditLog
from stitchboard.cli_options import ClickhouseOpt, fail
from stitchboard.errors import ConfigError, InvalidInput
from stitchboard.settings import Settings, load_settings
from stitchboard.stages import open_store
from stitchboard.store import Store

retention_app = typer.Typer(help="Per-table retention.", no_args_is_help=True)
holds_app = typer.Typer(
    help="Legal holds (retention keeps held transactions).", no_args_is_help=True
)


def _open(clickhouse: str | None) -> tuple[Settings, Store]:
    settings = load_settings(clickhouse=clickhouse)
    store = open_store(settings.clickhouse, database=settings.database, cluster=settings.cluster)
    return settings, store


def _print(planned: list[TablePlan], verb: str) -> None:
    if not planned:
        print("no retention configured (retention_days is empty): nothing goes")
    for p in planned:
        print(
            f"{p.table}: keep {p.days} days (before {p.cutoff:%Y-%m-%d %H:%M} UTC):"
            f" {p.older} older rows, {p.kept} protected, {p.to_delete} {verb}"
        )


def _audit(
    settings: Settings, store: Store, action: str, targets: tuple[str, ...], detail: str = ""
) -> None:
    chain = settings.audit_chain or socket.gethostname()
    who = f"cli:{getpass.getuser()}"
    AuditLog(store, chain).record(AuditEntry(who, "auditor", action, targets, "cli", detail=detail))


@retention_app.command("plan")
def plan_command(clickhouse: ClickhouseOpt = None) -> None:
    """Show what retention would remove now, per table, without removing anything."""
    try:
        settings, store = _open(clickhouse)
        _print(plan(store, settings.retention_days), "would go")
    except ConfigError as exc:
        fail(str(exc))


@retention_app.command("apply")
def apply_command(clickhouse: ClickhouseOpt = None) -> None:
    """Remove what the plan lists (a running server does this once a day)."""
    try:
        settings, store = _open(clickhouse)
        done = prune(store, settings.retention_days)
        _audit(settings, store, "retention.apply", tuple(f"{p.table}:{p.to_delete}" for p in done))
        _print(done, "removed")
    except ConfigError as exc:
        fail(str(exc))


@holds_app.command("add")
def holds_add(
    transaction_id: str,
    reason: Annotated[str, typer.Option(help="Why (case, request)")],
    clickhouse: ClickhouseOpt = None,
) -> None:
    """Put a transaction under a legal hold."""
    try:
        settings, store = _open(clickhouse)
        hold = set_hold(store, transaction_id, reason, f"cli:{getpass.getuser()}")
        _audit(settings, store, "hold.set", (hold.transaction_id,), hold.reason)
    except InvalidInput as exc:
        fail(str(exc))
    print(f"held {transaction_id}")


@holds_app.command("release")
def holds_release(transaction_id: str, clickhouse: ClickhouseOpt = None) -> None:
    """Release a legal hold."""
    try:
        settings, store = _open(clickhouse)
        release_hold(store, transaction_id)
        _audit(settings, store, "hold.release", (transaction_id,))
    except InvalidInput as exc:
        fail(str(exc))
    print(f"released {transaction_id}")


@holds_app.command("list")
def holds_list(clickhouse: ClickhouseOpt = None) -> None:
    """Held transactions, one JSON object per line."""
    _, store = _open(clickhouse)
    for h in list_holds(store):
        print(json.dumps({**h.__dict__, "created_at": h.created_at.isoformat()}))


def register(cli: typer.Typer) -> None:
    cli.add_typer(retention_app, name="retention")
    cli.add_typer(holds_app, name="holds")
