"""Users (argon2 password hashes) and API tokens (stored as SHA-256 of the secret).

A token reads ``sbt_<id>_<secret>``: the id finds the row, the secret is 32 random
bytes, so a fast hash is enough to store it (a password needs argon2 because it
is guessable; a 256-bit secret is not). Rows are versioned: every change inserts
the whole row again and reads use ``FINAL``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from stitchboard.errors import InvalidInput
from stitchboard.roles import Role
from stitchboard.store.ddl import Table

if TYPE_CHECKING:
    from stitchboard.store.client import Store

USERS = Table(
    name="users",
    columns="""\
    name String,
    role LowCardinality(String),
    password_hash String,
    disabled UInt8,
    created_at DateTime64(3, 'UTC'),
    updated_at DateTime64(6, 'UTC') DEFAULT now64(6)""",
    engine="ReplacingMergeTree(updated_at)",
    tail="ORDER BY name",
    shard_key="cityHash64(name)",
)

API_TOKENS = Table(
    name="api_tokens",
    columns="""\
    token_id String,
    name String,
    role LowCardinality(String),
    token_hash String,
    created_by String,
    created_at DateTime64(3, 'UTC'),
    expires_at Nullable(DateTime64(3, 'UTC')),
    revoked UInt8,
    updated_at DateTime64(6, 'UTC') DEFAULT now64(6)""",
    engine="ReplacingMergeTree(updated_at)",
    tail="ORDER BY token_id",
    shard_key="cityHash64(token_id)",
)

# Last use lives apart from the token row, so recording a use can never undo a revocation.
API_TOKEN_USAGE = Table(
    name="api_token_usage",
    columns="""\
    token_id String,
    last_used DateTime64(3, 'UTC')""",
    engine="ReplacingMergeTree(last_used)",
    tail="ORDER BY token_id",
    shard_key="cityHash64(token_id)",
)

TOKEN_PREFIX = "sbt_"
MIN_PASSWORD = 12
_hasher = PasswordHasher()
# Verified against when the user does not exist, so a miss costs what a hit costs.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    disabled: bool
    created_at: dt.datetime
    password_hash: str = ""


@dataclass(frozen=True)
class Token:
    token_id: str
    name: str
    role: Role
    created_by: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked: bool
    last_used: dt.datetime | None
    token_hash: str = ""

    def usable(self, now: dt.datetime) -> bool:
        return not self.revoked and (self.expires_at is None or now < self.expires_at)


def _now(now: dt.datetime | None) -> dt.datetime:
    return now or dt.datetime.now(dt.UTC)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def check_name(name: str, what: str = "user name") -> str:
    name = name.strip()
    if not name or len(name) > 64 or not all(c.isalnum() or c in "._-@" for c in name):
        raise InvalidInput(f"bad {what} {name!r}: 1-64 letters, digits or . _ - @")
    return name


# -- users ---------------------------------------------------------------------------------


def _write_user(store: Store, user: User) -> None:
    store.insert(
        "users",
        ["name", "role", "password_hash", "disabled", "created_at"],
        [[user.name, user.role.value, user.password_hash, int(user.disabled), user.created_at]],
    )


def get_user(store: Store, name: str) -> User | None:
    rows = store.rows(
        f"SELECT name, role, password_hash, disabled, created_at FROM {store.table('users')}"
        " FINAL WHERE name = {name:String}",
        {"name": name},
    )
    if not rows:
        return None
    n, role, pw, disabled, created = rows[0]
    return User(n, Role(role), bool(disabled), _utc(created) or _now(None), pw)


def list_users(store: Store) -> list[User]:
    rows = store.rows(
        f"SELECT name, role, disabled, created_at FROM {store.table('users')} FINAL ORDER BY name"
    )
    return [User(n, Role(r), bool(d), _utc(c) or _now(None)) for n, r, d, c in rows]


def add_user(
    store: Store, name: str, role: Role, password: str, now: dt.datetime | None = None
) -> User:
    name = check_name(name)
    if role is Role.INGEST:
        raise InvalidInput("users cannot have the ingest role; create an ingest token")
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"password too short: at least {MIN_PASSWORD} characters")
    if get_user(store, name) is not None:
        raise InvalidInput(f"user {name!r} exists")
    user = User(name, role, False, _now(now), _hasher.hash(password))
    _write_user(store, user)
    return user


def set_disabled(store: Store, name: str, disabled: bool = True) -> User:
    user = get_user(store, name)
    if user is None:
        raise InvalidInput(f"no user {name!r}")
    changed = User(user.name, user.role, disabled, user.created_at, user.password_hash)
    _write_user(store, changed)
    return changed


def check_password(store: Store, name: str, password: str) -> User | None:
    """The user when the password is right and the user enabled; None otherwise."""
    user = get_user(store, name)
    stored = user.password_hash if user is not None else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or user.disabled:
        return None
    return user


def new_password() -> str:
    return secrets.token_urlsafe(15)


def ensure_first_admin(store: Store, password_file: Path) -> bool:
    """On a store without users, create ``admin`` with a random password.

    The password goes to ``password_file`` (mode 0600), never to a log; whoever
    starts the server reads it once (``stitchboard demo`` prints it and removes it).
    Returns whether the admin was created now.
    """
    if list_users(store):
        return False
    password = new_password()
    add_user(store, "admin", Role.ADMIN, password)
    fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(password + "\n")
    return True


# -- tokens --------------------------------------------------------------------------------


def _hash_secret(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _write_token(store: Store, t: Token) -> None:
    store.insert(
        "api_tokens",
        [
            "token_id",
            "name",
            "role",
            "token_hash",
            "created_by",
            "created_at",
            "expires_at",
            "revoked",
        ],
        [
            [
                t.token_id,
                t.name,
                t.role.value,
                t.token_hash,
                t.created_by,
                t.created_at,
                t.expires_at,
                int(t.revoked),
            ]
        ],
    )


def create_token(
    store: Store,
    name: str,
    role: Role,
    created_by: str,
    expires_in: dt.timedelta | None,
    now: dt.datetime | None = None,
) -> tuple[Token, str]:
    """A new token and its secret (shown once: only its hash is stored)."""
    name = check_name(name, "token name")
    now = _now(now)
    token_id = secrets.token_hex(6)
    secret = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    expires = now + expires_in if expires_in is not None else None
    token = Token(token_id, name, role, created_by, now, expires, False, None, _hash_secret(secret))
    _write_token(store, token)
    return token, secret


def _token_rows(store: Store, where: str = "", params: dict[str, str] | None = None) -> list[Token]:
    usage = store.table("api_token_usage")
    rows = store.rows(
        "SELECT token_id, name, role, created_by, created_at, expires_at, revoked, u.last_used,"
        f" token_hash FROM {store.table('api_tokens')} AS t FINAL"
        f" LEFT JOIN (SELECT token_id, max(last_used) AS last_used FROM {usage}"
        " GROUP BY token_id) AS u USING (token_id)"
        f" {where} ORDER BY created_at",
        params,
    )
    return [
        Token(i, n, Role(r), by, _utc(c) or _now(None), _utc(e), bool(rv), _used(lu), h)
        for i, n, r, by, c, e, rv, lu, h in rows
    ]


def _used(value: dt.datetime | None) -> dt.datetime | None:
    # A token never used joins no usage row: the engine fills in the epoch.
    return _utc(value) if value is not None and value.year > 1970 else None


def list_tokens(store: Store) -> list[Token]:
    return _token_rows(store)


def get_token(store: Store, token_id: str) -> Token | None:
    found = _token_rows(store, "WHERE token_id = {id:String}", {"id": token_id})
    return found[0] if found else None


def token_id_of(secret: str) -> str | None:
    if not secret.startswith(TOKEN_PREFIX):
        return None
    token_id, sep, rest = secret[len(TOKEN_PREFIX) :].partition("_")
    return token_id if sep and rest and token_id.isalnum() else None


def check_token(store: Store, secret: str, now: dt.datetime | None = None) -> Token | None:
    """The token when the secret matches, it is not revoked and not expired."""
    token_id = token_id_of(secret)
    if token_id is None:
        return None
    token = get_token(store, token_id)
    if token is None or not hmac.compare_digest(token.token_hash, _hash_secret(secret)):
        return None
    return token if token.usable(_now(now)) else None


def revoke_token(store: Store, token_id: str) -> Token:
    token = get_token(store, token_id)
    if token is None:
        raise InvalidInput(f"no token {token_id!r}")
    revoked = dataclasses.replace(token, revoked=True, last_used=None)
    _write_token(store, revoked)
    return revoked


def touch_token(store: Store, token: Token, now: dt.datetime | None = None) -> None:
    """Record when a token was last used (the caller throttles how often)."""
    store.insert("api_token_usage", ["token_id", "last_used"], [[token.token_id, _now(now)]])
