"""``/api/v1/holds``: legal holds set and released by auditors (both audited)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from retention.holds import list_holds, release_hold, set_hold
from retention.plan import plan
from stitchboard.api import ApiError
from stitchboard.audit import AuditEntry
from stitchboard.errors import InvalidInput
from stitchboard.roles import Need, requires
from stitchboard.runtime import Runtime


class NewHold(BaseModel):
    model_config = ConfigDict(extra="forbid")
    transaction_id: str
    reason: str = Field(min_length=1, max_length=1000)


def build_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(tags=["retention"])
    store = runtime.store

    @router.get("/holds")
    @requires(Need.AUDITOR)
    async def holds() -> dict[str, Any]:
        """Transactions under a legal hold."""
        found = await asyncio.to_thread(list_holds, store)
        return {
            "holds": [
                {
                    "transaction_id": h.transaction_id,
                    "reason": h.reason,
                    "created_by": h.created_by,
                    "created_at": h.created_at.isoformat(),
                }
                for h in found
            ]
        }

    @router.post("/holds", status_code=201)
    @requires(Need.AUDITOR)
    async def add_hold(body: NewHold, request: Request) -> dict[str, Any]:
        """Put a transaction under a legal hold: retention keeps all of it (audited)."""
        principal = request.state.principal
        try:
            hold = await asyncio.to_thread(
                set_hold, store, body.transaction_id, body.reason, principal.name
            )
        except InvalidInput as exc:
            raise ApiError(400, str(exc)) from None
        source = request.client.host if request.client else ""
        entry = AuditEntry(
            principal.name,
            principal.role.value,
            "hold.set",
            (hold.transaction_id,),
            source,
            detail=hold.reason,
        )
        await asyncio.to_thread(request.app.state.access.audit, entry)
        return {"transaction_id": hold.transaction_id, "reason": hold.reason}

    @router.delete("/holds/{transaction_id}")
    @requires(Need.AUDITOR, audit="hold.release")
    async def release(transaction_id: str) -> dict[str, Any]:
        """Release a legal hold."""
        try:
            hold = await asyncio.to_thread(release_hold, store, transaction_id)
        except InvalidInput as exc:
            raise ApiError(404, str(exc)) from None
        return {"transaction_id": hold.transaction_id, "released": True}

    @router.get("/retention/plan")
    @requires(Need.AUDITOR)
    async def retention_plan() -> dict[str, Any]:
        """What retention would remove now, per table (nothing is removed)."""
        planned = await asyncio.to_thread(plan, store, runtime.settings.retention_days)
        return {"tables": [{**p.__dict__, "cutoff": p.cutoff.isoformat()} for p in planned]}

    return router
