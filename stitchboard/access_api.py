"""``/api/v1/audit`` (auditors), ``/api/v1/users`` and ``/api/v1/tokens`` (admins), ``whoami``.

Every change to a user or token is audited. A token's secret is in the answer to
its creation and nowhere else.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from stitchboard import credentials
from stitchboard.access import Access, Principal
from stitchboard.api import ApiError
from stitchboard.audit import AuditEntry, AuditFilter, query, verify
from stitchboard.errors import InvalidInput
from stitchboard.roles import Need, parse_role, requires


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    role: str
    password: str = Field(min_length=credentials.MIN_PASSWORD)


class NewToken(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    role: str
    expires_days: float | None = Field(90, gt=0)


def _time(value: str | None, name: str) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"{name}: not an ISO 8601 time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _token_dict(t: credentials.Token) -> dict[str, Any]:
    return {
        "id": t.token_id,
        "name": t.name,
        "role": t.role.value,
        "created_by": t.created_by,
        "created_at": t.created_at.isoformat(),
        "expires_at": t.expires_at.isoformat() if t.expires_at else None,
        "revoked": t.revoked,
        "last_used": t.last_used.isoformat() if t.last_used else None,
    }


def build_router(access: Access) -> APIRouter:
    router = APIRouter(tags=["access and audit"])
    store = access.store

    def who(request: Request) -> Principal:
        principal: Principal | None = request.state.principal
        assert principal is not None  # the middleware let an anonymous caller through
        return principal

    async def changed(request: Request, action: str, targets: tuple[str, ...]) -> None:
        p = who(request)
        source = request.client.host if request.client else ""
        entry = AuditEntry(p.name, p.role.value, action, targets, source)
        await asyncio.to_thread(access.audit, entry)

    @router.get("/whoami")
    @requires(Need.VIEWER)
    async def whoami(request: Request) -> dict[str, Any]:
        """The caller's name and role."""
        p = who(request)
        return {"name": p.name, "role": p.role.value, "via": p.via}

    @router.get("/audit")
    @requires(Need.AUDITOR, audit="audit.read")
    async def audit_log(
        user: Annotated[str | None, Query(description="Who acted")] = None,
        action: Annotated[str | None, Query(description="e.g. login, transaction.view")] = None,
        target: Annotated[str | None, Query(description="A target id or searched key")] = None,
        since: Annotated[str | None, Query(description="At or after (ISO 8601)")] = None,
        until: Annotated[str | None, Query(description="Before (ISO 8601)")] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    ) -> dict[str, Any]:
        """Audit rows, newest first, filtered by user, action and target."""
        targets: tuple[str, ...] = ()
        if target:
            # A searched key is logged as its pseudonym: match either form.
            pseudonym = f"key:{access.runtime.pseudonymize(target)}"
            targets = (target, pseudonym)
        since_t, until_t = _time(since, "since"), _time(until, "until")
        flt = AuditFilter(user, action, targets, since_t, until_t, limit)
        rows = await asyncio.to_thread(query, store, flt)
        return {"audit": [r.as_dict() for r in rows]}

    @router.get("/audit/verify")
    @requires(Need.AUDITOR, audit="audit.verify")
    async def audit_verify() -> dict[str, Any]:
        """Check every audit hash chain: deleted, altered or reordered rows are named."""
        report = await asyncio.to_thread(verify, store)
        return {"ok": report.ok, "chains": report.chains, "problems": report.problems}

    @router.get("/users")
    @requires(Need.ADMIN)
    async def users() -> dict[str, Any]:
        """Console users and their roles (never their password hashes)."""
        found = await asyncio.to_thread(credentials.list_users, store)
        return {
            "users": [{"name": u.name, "role": u.role.value, "disabled": u.disabled} for u in found]
        }

    @router.post("/users", status_code=201)
    @requires(Need.ADMIN)
    async def add_user(request: Request, body: NewUser) -> dict[str, Any]:
        """Add a console user."""
        try:
            role = parse_role(body.role)
            user = await asyncio.to_thread(
                credentials.add_user, store, body.name, role, body.password
            )
        except (InvalidInput, ValueError) as exc:
            raise ApiError(400, str(exc)) from None
        await changed(request, "user.add", (user.name, user.role.value))
        return {"name": user.name, "role": user.role.value, "disabled": False}

    @router.post("/users/{name}/disable")
    @requires(Need.ADMIN)
    async def disable_user(request: Request, name: str) -> dict[str, Any]:
        """Disable a user: their sessions stop working within seconds."""
        try:
            user = await asyncio.to_thread(credentials.set_disabled, store, name, True)
        except InvalidInput as exc:
            raise ApiError(404, str(exc)) from None
        access.forget()
        await changed(request, "user.disable", (user.name,))
        return {"name": user.name, "role": user.role.value, "disabled": True}

    @router.get("/tokens")
    @requires(Need.ADMIN)
    async def tokens() -> dict[str, Any]:
        """API tokens with role, expiry and last use (never their secrets)."""
        found = await asyncio.to_thread(credentials.list_tokens, store)
        return {"tokens": [_token_dict(t) for t in found]}

    @router.post("/tokens", status_code=201)
    @requires(Need.ADMIN)
    async def create_token(request: Request, body: NewToken) -> dict[str, Any]:
        """Create a token; its secret is in this answer only."""
        try:
            role = parse_role(body.role)
            expires = dt.timedelta(days=body.expires_days) if body.expires_days else None
            token, secret = await asyncio.to_thread(
                credentials.create_token, store, body.name, role, who(request).name, expires
            )
        except (InvalidInput, ValueError) as exc:
            raise ApiError(400, str(exc)) from None
        await changed(request, "token.create", (token.token_id, token.name, token.role.value))
        return {**_token_dict(token), "token": secret}

    @router.delete("/tokens/{token_id}")
    @requires(Need.ADMIN)
    async def revoke_token(request: Request, token_id: str) -> dict[str, Any]:
        """Revoke a token: it is refused from now on."""
        try:
            token = await asyncio.to_thread(credentials.revoke_token, store, token_id)
        except InvalidInput as exc:
            raise ApiError(404, str(exc)) from None
        access.forget()
        await changed(request, "token.revoke", (token.token_id, token.name))
        return _token_dict(token)

    return router
