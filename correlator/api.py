"""``/api/v1/transactions`` and ``/api/v1/workflows``: reading what the correlator built."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import ValidationError

from correlator.queries import (
    BadQuery,
    TransactionFilter,
    decode_cursor,
    events_by_key,
    facility_seen,
    get_transaction,
    list_transactions,
    parse_time,
)
from correlator.transaction import FLAGS, STATUSES
from correlator.unmatched import UnmatchedFilter, list_unmatched
from stitchboard.api import ApiError
from stitchboard.config.workflows import Duration
from stitchboard.roles import Need, requires
from stitchboard.runtime import Runtime


def build_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(tags=["transactions"])

    # slas.yaml as it is now (it may be reloaded while the server runs).
    def workflow_names() -> list[str]:
        return [w.name for w in runtime.config.workflows]

    def declared() -> dict[str, str]:
        return runtime.config.facility_index()

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
        # Not declared: fine if transactions carry that name as sent, else a clear 400.
        facilities = declared()
        if (
            facility
            and facility not in facilities
            and not await asyncio.to_thread(facility_seen, runtime.store, facility)
        ):
            known = ", ".join(sorted(set(facilities.values()))) or "none declared"
            raise ApiError(
                400,
                f"unknown facility {facility!r}; declared: {known} (an id or an alias;"
                " /api/v1/health lists undeclared names events were sent with)",
            )
        try:
            where = TransactionFilter(
                workflow=_one_of(workflow, workflow_names(), "workflow"),
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
            get_transaction, runtime.store, transaction_id, time.time_ns(), runtime.config
        )
        if found is None:
            raise ApiError(404, f"no transaction {transaction_id!r}")
        return found

    @router.get("/events")
    @requires(Need.VIEWER, audit="event.search", audit_params=("key",))
    async def events(
        key: Annotated[
            str,
            Query(description="Any business key value (visit, charge, batch, journal, MRN...)"),
        ],
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> dict[str, Any]:
        """Every hop carrying this key value, oldest first, matched to a transaction or
        not: each lists the transactions (and steps) it belongs to, none when unmatched."""
        values = _key_values(runtime, key)
        if not values:
            raise ApiError(400, "give a key value: /api/v1/events?key=...")
        items = await asyncio.to_thread(events_by_key, runtime.store, values, limit)
        return {"events": items}

    @router.get("/unmatched-events")
    @requires(Need.VIEWER, audit="unmatched.search", audit_params=("key",))
    async def unmatched_events(
        workflow: Annotated[str | None, Query(description="Workflow name")] = None,
        key: Annotated[
            str | None, Query(description="Any business key value of the event (batch, journal)")
        ] = None,
        older_than: Annotated[
            str | None, Query(description="Only events unmatched at least this long (e.g. 2d)")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        """Fan-in events (a GL journal for a charge batch) that no transaction carries yet,
        oldest first, with their age: reconciliation exceptions of their own. One joins its
        transactions as soon as a carrier arrives."""
        try:
            where = UnmatchedFilter(
                workflow=_one_of(workflow, workflow_names(), "workflow"),
                key_values=_key_values(runtime, key),
                older_than_ns=_duration(older_than),
                limit=limit,
            )
        except BadQuery as exc:
            raise ApiError(400, str(exc)) from None
        items = await asyncio.to_thread(list_unmatched, runtime.store, where, time.time_ns())
        return {"unmatched_events": items}

    @router.get("/workflows", tags=["workflows"])
    async def workflows() -> dict[str, Any]:
        """The workflow definitions loaded from slas.yaml."""
        return {"workflows": [w.model_dump(mode="json") for w in runtime.config.workflows]}

    return router


def _one_of(value: str | None, allowed, name: str) -> str | None:
    if value is None or value == "":
        return None
    if value not in allowed:
        raise BadQuery(f"unknown {name} {value!r}; known: {', '.join(allowed)}")
    return value


def _duration(text: str | None) -> int:
    if not text:
        return 0
    try:
        duration = Duration.model_validate(text)
    except ValidationError:
        raise BadQuery(f"bad duration {text!r} for older_than: use e.g. 90m, 24h, 2d") from None
    if duration.business_days:
        raise BadQuery(f"bad duration {text!r} for older_than: business days are not allowed")
    return duration.nanos


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
