"""Roles and the access each route needs, declared where the route is defined.

Roles are ordered: ``viewer`` (dashboards, transactions) < ``engineer`` (+ acknowledge,
silence, replay) < ``auditor`` (+ export, audit log) < ``admin`` (+ users, tokens).
``ingest`` is outside that order: an ingest token may only send data.

A route declares its need with :func:`requires` under the router decorator::

    @router.post("/silences")
    @requires(Need.ENGINEER, audit="alert.silence")
    async def silence(...): ...

Undeclared routes get the safe default (:func:`default_need`): ``viewer`` to read,
``engineer`` for anything state-changing. The console's access middleware
(``stitchboard.access``) enforces it for every route and mount of the app.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar


class Role(StrEnum):
    VIEWER = "viewer"
    ENGINEER = "engineer"
    AUDITOR = "auditor"
    ADMIN = "admin"
    INGEST = "ingest"


class Need(StrEnum):
    """What a route requires of the caller."""

    PUBLIC = "public"
    VIEWER = "viewer"
    ENGINEER = "engineer"
    AUDITOR = "auditor"
    ADMIN = "admin"
    # Sending data: an ingest token (or admin) when ingest auth is on, open otherwise.
    INGEST = "ingest"


_RANK = {Role.VIEWER: 1, Role.ENGINEER: 2, Role.AUDITOR: 3, Role.ADMIN: 4, Role.INGEST: 0}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def satisfies(role: Role, need: Need) -> bool:
    """Whether a caller holding ``role`` may use a route that needs ``need``."""
    if need is Need.PUBLIC:
        return True
    if need is Need.INGEST:
        return role in (Role.INGEST, Role.ADMIN)
    return _RANK[role] >= _RANK[Role(need.value)]


@dataclass(frozen=True)
class AccessRule:
    """A route's declared access: the need, and the audit action its use records.

    ``audit_params`` names query parameters whose values are audit targets (a key
    search); path parameters always are. ``csrf`` False means the route checks
    its own CSRF token (the login and logout forms).
    """

    need: Need
    audit: str | None = None
    audit_params: tuple[str, ...] = ()
    csrf: bool = True


ATTRIBUTE = "__stitchboard_access__"
F = TypeVar("F", bound=Callable[..., Any])


def requires(
    need: Need, *, audit: str | None = None, audit_params: tuple[str, ...] = (), csrf: bool = True
) -> Callable[[F], F]:
    """Declare the access a route endpoint needs (put it under the router decorator)."""
    rule = AccessRule(need, audit, audit_params, csrf)

    def mark(endpoint: F) -> F:
        setattr(endpoint, ATTRIBUTE, rule)
        return endpoint

    return mark


def declared_rule(endpoint: object) -> AccessRule | None:
    return getattr(endpoint, ATTRIBUTE, None)


def default_rule(method: str) -> AccessRule:
    """Undeclared: reading needs a viewer, changing state needs an engineer."""
    return AccessRule(Need.VIEWER if method.upper() in SAFE_METHODS else Need.ENGINEER)


def parse_role(text: str) -> Role:
    try:
        return Role(text.strip().lower())
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise ValueError(f"unknown role {text!r}; known: {known}") from None
