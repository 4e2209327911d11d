"""``/api/v1/transactions`` and ``/api/v1/workflows``: reading what the correlator built."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query

from correlator.queries import (
    BadQuery,
    TransactionFilter,
    decode_cursor,
    get_transaction,
    list_transactions,
    parse_time,
)
from correlator.transaction import FLAGS, STATUSES
from stitchboard.api import ApiError
from stitchboard.roles import Need, requires
from stitchboard.runtime import Runtime


def build_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(tags=["transactions"])
    config = runtime.config
    workflow_names = [w.name for w in config.workflows]
    facilities = config.facility_index()

    @router.get("/transactions")
    @requires(Need.VIEWER, audit="transaction.search", audit_params=("key",))
    async def transactions(
        workflow: Annotated[str | None, Query(description="Workflow name")] = None,
        facility: Annotated[str | None, Query(description="Facility id or alias")] = None,
        status: Annotated[
            str | None, Query(description=f"One of {', '.join(STATUSES)} (as of now)")
        ] = None,
        flag: Annotated[str | None, Query(description=f"One of {', '.join(FLAGS)}")] = None,
        key: Annotated[
            str | None,
            Query(description="Any business key value (visit, charge, claim, MRN, trace id...)"),
        ] = None,
        since: Annotated[str | None, Query(description="Start time at or after (ISO 8601)")] = None,
        until: Annotated[str | None, Query(description="Start time before (ISO 8601)")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    ) -> dict[str, Any]:
        """Transactions, newest first (by their earliest event), one page at a time."""
        try:
            where = TransactionFilter(
                workflow=_one_of(workflow, workflow_names, "workflow"),
                facility=_facility(facility, facilities),
                status=_one_of(status, STATUSES, "status"),
                flag=_one_of(flag, FLAGS, "flag"),
                key_values=_key_values(runtime, key),
                since=parse_time(since, "since") if since else None,
                until=parse_time(until, "until") if until else None,
                after=decode_cursor(cursor) if cursor else None,
            )
        except BadQuery as exc:
            raise ApiError(400, str(exc)) from None
        now = time.time_ns()
        items, next_cursor = await asyncio.to_thread(
            list_transactions, runtime.store, where, limit, now
        )
        return {"transactions": items, "next_cursor": next_cursor}

    @router.get("/transactions/{transaction_id}")
    @requires(Need.VIEWER, audit="transaction.view")
    async def transaction(transaction_id: str) -> dict[str, Any]:
        """The whole transaction: steps with times and deadlines, every hop event, flags."""
        if not transaction_id.isalnum() or len(transaction_id) > 64:
            raise ApiError(400, f"bad transaction id {transaction_id!r}")
        found = await asyncio.to_thread(
            get_transaction, runtime.store, transaction_id, time.time_ns(), config
        )
        if found is None:
            raise ApiError(404, f"no transaction {transaction_id!r}")
        return found

    @router.get("/workflows", tags=["workflows"])
    async def workflows() -> dict[str, Any]:
        """The workflow definitions loaded from slas.yaml."""
        return {"workflows": [w.model_dump(mode="json") for w in config.workflows]}

    return router


def _one_of(value: str | None, allowed, name: str) -> str | None:
    if value is None or value == "":
        return None
    if value not in allowed:
        raise BadQuery(f"unknown {name} {value!r}; known: {', '.join(allowed)}")
    return value


def _facility(value: str | None, index: dict[str, str]) -> str | None:
    if not value:
        return None
    # Unknown ids are passed through: events from an undeclared facility still correlate.
    return index.get(value, value)


def _key_values(runtime: Runtime, key: str | None) -> tuple[str, ...]:
    if not key:
        return ()
    key = key.strip()
    if not runtime.config.phi_keys:
        return (key,)
    # PHI keys are stored as pseudonyms: look for the pseudonym of the query too.
    return tuple(dict.fromkeys((key, runtime.pseudonymize(key))))
