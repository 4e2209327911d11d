"""``stitchboard users``, ``stitchboard tokens`` and ``stitchboard audit``.

They work on the store directly (with the embedded store, stop the server
first; a running server offers the same under ``/api/v1/users`` and
``/api/v1/tokens``). Every change is audited as the operating-system user.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import socket
import sys
from typing import Annotated

import typer

from stitchboard import credentials
from stitchboard.audit import AuditEntry, AuditLog, verify
from stitchboard.cli_options import ClickhouseOpt, err, fail
from stitchboard.errors import InvalidInput, StitchboardError
from stitchboard.roles import parse_role
from stitchboard.settings import load_settings
from stitchboard.store import Store, connect

users_app = typer.Typer(help="Console users.", no_args_is_help=True)
tokens_app = typer.Typer(help="API and ingest tokens.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)

RoleOpt = Annotated[
    str, typer.Option("--role", help="viewer, engineer, auditor or admin (tokens: also ingest)")
]


def _store(clickhouse: str | None) -> Store:
    settings = load_settings(clickhouse=clickhouse)
    return connect(settings.clickhouse, database=settings.database, cluster=settings.cluster)


def _audit(store: Store, action: str, targets: tuple[str, ...]) -> None:
    settings = load_settings()
    log = AuditLog(store, settings.audit_chain or socket.gethostname())
    log.record(AuditEntry(f"cli:{getpass.getuser()}", "admin", action, targets, "cli"))


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="User name")],
    role: RoleOpt = "viewer",
    password_stdin: Annotated[
        bool, typer.Option(help="Read the password from stdin instead of generating one.")
    ] = False,
    clickhouse: ClickhouseOpt = None,
) -> None:
    """Add a user; without --password-stdin a random password is printed once."""
    try:
        parsed = parse_role(role)
        password = sys.stdin.readline().strip() if password_stdin else credentials.new_password()
        store = _store(clickhouse)
        user = credentials.add_user(store, name, parsed, password)
        _audit(store, "user.add", (user.name, user.role.value))
    except (InvalidInput, ValueError) as exc:
        fail(str(exc))
    except StitchboardError as exc:
        fail(str(exc), 1)
    print(f"added {user.name} ({user.role.value})")
    if not password_stdin:
        print(f"password: {password}")


@users_app.command("list")
def users_list(clickhouse: ClickhouseOpt = None) -> None:
    """Users with their roles; one JSON object per line."""
    for u in credentials.list_users(_store(clickhouse)):
        print(json.dumps({"name": u.name, "role": u.role.value, "disabled": u.disabled}))


@users_app.command("disable")
def users_disable(name: str, clickhouse: ClickhouseOpt = None) -> None:
    """Disable a user: they can no longer log in, and their sessions stop working."""
    try:
        store = _store(clickhouse)
        credentials.set_disabled(store, name, True)
        _audit(store, "user.disable", (name,))
    except InvalidInput as exc:
        fail(str(exc))
    print(f"disabled {name}")


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Argument(help="What the token is for, e.g. prometheus")],
    role: RoleOpt = "viewer",
    days: Annotated[float, typer.Option(help="Days until it expires; 0 never.")] = 90,
    clickhouse: ClickhouseOpt = None,
) -> None:
    """Create a token and print its secret once (only a hash is stored)."""
    try:
        parsed = parse_role(role)
        store = _store(clickhouse)
        expires = dt.timedelta(days=days) if days > 0 else None
        by = f"cli:{getpass.getuser()}"
        token, secret = credentials.create_token(store, name, parsed, by, expires)
        _audit(store, "token.create", (token.token_id, token.name, token.role.value))
    except (InvalidInput, ValueError) as exc:
        fail(str(exc))
    expiry = token.expires_at.isoformat() if token.expires_at else "never"
    print(f"token {token.token_id} ({token.role.value}, expires {expiry}):")
    print(secret)


@tokens_app.command("list")
def tokens_list(clickhouse: ClickhouseOpt = None) -> None:
    """Tokens with role, expiry, revocation and last use; one JSON object per line."""
    for t in credentials.list_tokens(_store(clickhouse)):
        row = {
            "id": t.token_id,
            "name": t.name,
            "role": t.role.value,
            "expires_at": t.expires_at.isoformat() if t.expires_at else None,
            "revoked": t.revoked,
            "last_used": t.last_used.isoformat() if t.last_used else None,
        }
        print(json.dumps(row))


@tokens_app.command("revoke")
def tokens_revoke(token_id: str, clickhouse: ClickhouseOpt = None) -> None:
    """Revoke a token by its id."""
    try:
        store = _store(clickhouse)
        token = credentials.revoke_token(store, token_id)
        _audit(store, "token.revoke", (token.token_id, token.name))
    except InvalidInput as exc:
        fail(str(exc))
    print(f"revoked {token_id}")


@audit_app.command("verify")
def audit_verify(clickhouse: ClickhouseOpt = None) -> None:
    """Check every audit chain; name each deleted, altered or reordered row (exit 1)."""
    report = verify(_store(clickhouse))
    for problem in report.problems:
        err.print(f"[bold red]altered:[/] {problem}", highlight=False)
    counted = ", ".join(f"{c}: {n} rows" for c, n in report.chains.items()) or "no rows"
    if not report.ok:
        err.print(f"audit log NOT intact ({len(report.problems)} problems; {counted})")
        raise typer.Exit(1)
    print(f"audit log intact ({counted})")


def register(cli: typer.Typer) -> None:
    cli.add_typer(users_app, name="users")
    cli.add_typer(tokens_app, name="tokens")
    cli.add_typer(audit_app, name="audit")
