"""``/api/v1/slos`` and ``/api/v1/alerts``: SLO compliance, alerts, silences, acknowledgements.

Writes (silence, unsilence, acknowledge) need the ``engineer`` role and are written
to the audit log; their author is the logged-in user or token (a body's ``author``
is used only where no one is logged in, e.g. a test app without the access layer).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from alerts.actions import (
    acknowledge,
    list_alerts,
    list_silences,
    notification_log,
    silence,
    unsilence,
)
from alerts.backfill import Backlog, backfilling, backlog_rows, held_reason
from alerts.errors import AlertNotFound, BadSilence, SilenceNotFound
from alerts.objectives import SloStatus, evaluate_slo, slo_report, slo_series
from alerts.progress import PENDING
from alerts.rollup import Snapshot, snapshot
from stitchboard.api import ApiError
from stitchboard.config.slos import Slo
from stitchboard.config.workflows import Duration
from stitchboard.roles import Need, requires
from stitchboard.runtime import Runtime

STATES = ("pending", "firing", "resolved")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SilenceBody(_Body):
    matchers: dict[str, str] = Field(min_length=1)
    starts_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None
    duration: str | None = Field(default=None, description="Instead of ends_at, e.g. 2h")
    author: str | None = Field(default=None, min_length=1)
    comment: str = ""


class AuthorBody(_Body):
    author: str | None = Field(default=None, min_length=1)


def author_of(request: Request, body_author: str | None) -> str:
    """The authenticated caller, else the author the body names."""
    principal = getattr(request.state, "principal", None)
    if principal is not None:
        return str(principal.name)
    if body_author:
        return body_author
    raise ApiError(400, "author: field required")


def jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value


def _status(s: SloStatus) -> dict[str, Any]:
    body: dict[str, Any] = jsonable(s)
    body.pop("window_counts", None)
    return body


def _window(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        if not Duration.model_validate(text).nanos:
            raise ValueError(text)
    except ValueError:
        raise ApiError(400, f"bad window {text!r}: use a duration such as 7d or 24h") from None
    return text


def build_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(tags=["slos", "alerts"])
    store, config = runtime.store, runtime.config
    facilities = config.facility_index()

    def facility_id(value: str | None) -> str | None:
        if value is None:
            return None
        if value not in facilities:
            raise ApiError(400, f"unknown facility {value!r}")
        return facilities[value]

    def pending_events() -> int | None:
        value = runtime.metrics.registry.get_sample_value(PENDING)
        return None if value is None else int(value)

    async def run(fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    def report(window: str | None) -> tuple[list[SloStatus], Snapshot]:
        with snapshot(store, list(config.slos)) as counted:
            now = dt.datetime.now(dt.UTC)
            return slo_report(store, config, now, window, counted.relation), counted

    def backlogs() -> tuple[tuple[Backlog, ...], int]:
        """The feeds receiving a backlog now, as the evaluation reads them."""
        now = time.time_ns()
        rule = config.alerts.backfill
        return (backfilling(rule, backlog_rows(store, rule, now)) if rule.enabled else ()), now

    def held(body: dict[str, Any], feeds: tuple[Backlog, ...], now: int) -> dict[str, Any]:
        body["held"] = held_reason(config, body["workflow"], body["group"]["facility"], feeds, now)
        return body

    def feeds_body(feeds: tuple[Backlog, ...]) -> list[dict[str, Any]]:
        return [
            {
                "system": f.system,
                "facility": f.facility,
                "received": f.received,
                "lagging": f.lagging,
                "oldest_sent": jsonable(dt.datetime.fromtimestamp(f.oldest_sent_ns / 1e9, dt.UTC)),
            }
            for f in feeds
        ]

    @router.get("/slos")
    async def slos(
        facility: Annotated[str | None, Query(description="Facility id or alias")] = None,
        window: Annotated[str | None, Query(description="Override the SLO window")] = None,
    ) -> dict[str, Any]:
        """Every SLO x group: compliance, objective, budget left, burn rates, counts, $ at risk.

        ``as_of``: every transaction written before it is counted; ``source``: counted
        from the SLI rollup (caught up on each request) or straight from transactions;
        ``correlator_pending_events``: events received but not yet correlated (None when
        no correlator runs in this server): while many are, the figures can still move
        (a deadline judged overdue may complete) and burn-rate pages are held;
        ``backfilling``: the feeds receiving a backlog, and each item's ``held`` says why
        its new burn-rate and overdue pages wait (None: they do not).
        """
        wanted = facility_id(facility)
        statuses, counted = await run(report, _window(window))
        feeds, now = await run(backlogs)
        items = [
            held(_status(s), feeds, now)
            for s in statuses
            if wanted is None or s.group["facility"] == wanted
        ]
        return {
            "as_of": jsonable(counted.as_of),
            "source": counted.source,
            "correlator_pending_events": pending_events(),
            "backfilling": feeds_body(feeds),
            "items": items,
        }

    def detail(
        slo: Slo, wanted: str | None, window: str | None, hours: int, step: dt.timedelta
    ) -> tuple[list[dict[str, Any]], Snapshot]:
        with snapshot(store, list(config.slos)) as counted:
            now = dt.datetime.now(dt.UTC)
            statuses = evaluate_slo(store, config, slo, now, window, counted.relation)
            items = []
            for s in statuses:
                if wanted is not None and s.group["facility"] != wanted:
                    continue
                start = now - dt.timedelta(hours=hours)
                series = slo_series(
                    store, config, slo.name, s.group, start, now, step, counted.relation
                )
                body = _status(s)
                body["series"] = [{"time": jsonable(t), "compliance": v} for t, v in series]
                items.append(body)
            return items, counted

    @router.get("/slos/{name}")
    async def slo_detail(
        name: str,
        facility: Annotated[str | None, Query(description="Facility id or alias")] = None,
        window: Annotated[str | None, Query(description="Override the SLO window")] = None,
        hours: Annotated[int, Query(ge=1, le=24 * 90, description="Series length")] = 24,
        step_minutes: Annotated[int, Query(ge=1, le=24 * 60, description="Series bucket")] = 60,
    ) -> dict[str, Any]:
        """One SLO: its groups, each with a compliance series for plotting."""
        slo = config.slo(name)
        if slo is None:
            raise ApiError(404, f"no SLO named {name!r}")
        wanted = facility_id(facility)
        step = dt.timedelta(minutes=step_minutes)
        items, counted = await run(detail, slo, wanted, _window(window), hours, step)
        feeds, now = await run(backlogs)
        items = [held(item, feeds, now) for item in items]
        return {
            "name": slo.name,
            "description": slo.description,
            "indicator": slo.indicator.model_dump(),
            "objective": slo.objective,
            "window": slo.window_label,
            "budgeting": slo.budgeting,
            "as_of": jsonable(counted.as_of),
            "source": counted.source,
            "correlator_pending_events": pending_events(),
            "backfilling": feeds_body(feeds),
            "items": items,
        }

    @router.get("/alerts")
    async def alerts(
        state: Annotated[str | None, Query(description="pending, firing or resolved")] = None,
        fingerprint: Annotated[str | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    ) -> dict[str, Any]:
        """Alerts, newest first."""
        if state is not None and state not in STATES:
            raise ApiError(400, f"bad state {state!r}: use one of {', '.join(STATES)}")
        views = await run(list_alerts, store, [state] if state else None, limit)
        if fingerprint is not None:
            views = [v for v in views if v.fingerprint == fingerprint]
        return {"items": jsonable(views)}

    @router.post("/alerts/{fingerprint}/ack")
    @requires(Need.ENGINEER, audit="alert.ack")
    async def ack(fingerprint: str, request: Request, body: AuthorBody) -> dict[str, Any]:
        """Acknowledge: no repeats until the alert resolves or worsens."""
        author = author_of(request, body.author)
        try:
            view = await run(acknowledge, store, fingerprint, author)
        except AlertNotFound as exc:
            raise ApiError(404, str(exc)) from None
        answer: dict[str, Any] = jsonable(view)
        return answer

    @router.get("/alerts/silences")
    async def silences() -> dict[str, Any]:
        return {"items": jsonable(await run(list_silences, store))}

    @router.post("/alerts/silences", status_code=201)
    @requires(Need.ENGINEER, audit="alert.silence")
    async def create_silence(request: Request, body: SilenceBody) -> dict[str, Any]:
        """Silence every alert whose labels equal all matchers, from starts_at to ends_at."""
        author = author_of(request, body.author)
        start = body.starts_at or dt.datetime.now(dt.UTC)
        end = body.ends_at
        if end is None and body.duration:
            try:
                length = Duration.model_validate(body.duration)
            except ValueError:
                raise ApiError(400, f"bad duration {body.duration!r}") from None
            end = start + dt.timedelta(microseconds=length.nanos // 1000)
        if end is None:
            raise ApiError(400, "give ends_at or duration")
        try:
            silence_id = await run(silence, store, body.matchers, start, end, author, body.comment)
        except BadSilence as exc:
            raise ApiError(400, str(exc)) from None
        return {"id": silence_id}

    @router.post("/alerts/silences/{silence_id}/expire")
    @requires(Need.ENGINEER, audit="alert.unsilence")
    async def expire(silence_id: str, request: Request, body: AuthorBody) -> dict[str, Any]:
        author = author_of(request, body.author)
        try:
            await run(unsilence, store, silence_id, author)
        except SilenceNotFound as exc:
            raise ApiError(404, str(exc)) from None
        return {"id": silence_id, "expired_by": author}

    @router.get("/alerts/notifications")
    async def notifications(limit: Annotated[int, Query(ge=1, le=5000)] = 200) -> dict[str, Any]:
        """Every delivery attempt, newest first."""
        return {"items": jsonable(await run(notification_log, store, limit))}

    return router
