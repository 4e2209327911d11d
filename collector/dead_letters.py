"""Listing and replaying dead letters (after slas.yaml was fixed).

Replay judges each unreplayed dead letter again under the current slas.yaml:
HL7, JSON Lines and CSV rows through ``collector.intake``, OTLP records through
``collector.otlp.replay_batch``. A record that is usable now is written as
events and its dead letter is marked replayed (same id, newer version in the
ReplacingMergeTree); one still rejected keeps its dead letter with the current
reason. Event ids are deterministic, so replaying twice stores nothing twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from collector.intake import Intake, batch_of
from stitchboard import times
from stitchboard.api import ApiError
from stitchboard.config import load_config
from stitchboard.errors import ConfigError
from stitchboard.roles import Need, requires
from stitchboard.runtime import Runtime
from stitchboard.writer import Batch

REPLAY_COLUMNS = (
    "id",
    "received_time",
    "source",
    "content_type",
    "payload",
    "reason",
    "replayed",
    "replayed_time",
)


def parse_since(text: str | None, now: float | None = None) -> dt.datetime | None:
    """``30m``, ``6h``, ``7d`` ago, or an ISO 8601 date/time (UTC unless it says otherwise)."""
    if not text:
        return None
    try:
        return times.parse_since(text, now)
    except ValueError as exc:
        raise ValueError(f"since: {exc}") from None


@dataclass(frozen=True)
class Filter:
    since: dt.datetime | None = None
    reason: str | None = None  # case-insensitive substring
    source: str | None = None  # exact, or a prefix ending in '*' (file:*)
    include_replayed: bool = False
    limit: int = 100_000


def _where(flt: Filter) -> tuple[str, dict[str, Any]]:
    clauses = []
    params: dict[str, Any] = {}
    if not flt.include_replayed:
        clauses.append("replayed = 0")
    if flt.since is not None:
        clauses.append("received_time >= {since:DateTime64(9, 'UTC')}")
        params["since"] = flt.since.astimezone(dt.UTC).replace(tzinfo=None)
    if flt.reason:
        clauses.append("positionCaseInsensitiveUTF8(reason, {reason:String}) > 0")
        params["reason"] = flt.reason
    if flt.source:
        if flt.source.endswith("*"):
            clauses.append("startsWith(source, {source:String})")
            params["source"] = flt.source[:-1]
        else:
            clauses.append("source = {source:String}")
            params["source"] = flt.source
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def list_dead_letters(store, flt: Filter) -> list[dict[str, Any]]:
    where, params = _where(flt)
    params["limit"] = flt.limit
    result = store.query(
        "SELECT id, received_time, source, content_type, reason, replayed, replayed_time,"
        f" length(payload) AS payload_bytes FROM {store.table('dead_letters')} FINAL{where}"
        " ORDER BY received_time DESC LIMIT {limit:UInt64}",
        params,
    )
    return list(result.named_results())


def _letters(store, flt: Filter) -> list[dict[str, Any]]:
    where, params = _where(flt)
    params["limit"] = flt.limit
    result = store.query(
        "SELECT id, toUnixTimestamp64Nano(received_time) AS received_ns, source, content_type,"
        f" payload, reason FROM {store.table('dead_letters')} FINAL{where}"
        " ORDER BY received_time LIMIT {limit:UInt64}",
        params,
        column_formats={"payload": "bytes"},
    )
    return list(result.named_results())


@dataclass
class ReplayReport:
    considered: int = 0
    replayed: int = 0
    events: int = 0
    still_rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "considered": self.considered,
            "replayed": self.replayed,
            "events": self.events,
            "still_rejected": self.still_rejected,
            "reasons": [{"reason": r, "count": n} for r, n in self.reasons.most_common(20)],
        }


OtlpReplay = Callable[[Any, str, bytes, str], tuple[Batch, list[str]]]


def _otlp_replay() -> OtlpReplay | None:
    try:
        from collector.otlp import replay_batch
    except ImportError:
        return None
    return replay_batch


def replay(
    runtime: Runtime,
    flt: Filter,
    write: Callable[[Batch], None],
    chunk: int = 5_000,
    now: Callable[[], int] = time.time_ns,
) -> ReplayReport:
    """Re-ingest matching dead letters under ``runtime.config`` (reload it first).

    ``write`` makes the events durable; only then are the dead letters marked, with a
    direct insert (their extra columns must not meet ingest batches in the writer).
    """
    intake = Intake(runtime.config, runtime.pseudonymize)
    otlp = _otlp_replay()
    report = ReplayReport()
    letters = _letters(runtime.store, flt)
    for start in range(0, len(letters), chunk):
        batch = Batch()
        updates: list[tuple[Any, ...]] = []
        for letter in letters[start : start + chunk]:
            report.considered += 1
            source, content_type = letter["source"], letter["content_type"]
            payload = letter["payload"]
            reasons: list[str]
            if source.startswith("otlp."):
                if otlp is None:
                    reasons = ["OTLP replay is not available in this version"]
                else:
                    rows, reasons = otlp(runtime, source, payload, content_type)
                    for table, (columns, table_rows) in rows.tables.items():
                        if table != "dead_letters":
                            batch.add(table, columns, table_rows)
                            if table == "events":
                                report.events += len(table_rows)
            else:
                outcome = intake.replay(source, content_type, payload)
                batch_of([dataclasses.replace(outcome, dead_letter=None)], batch)
                report.events += len(outcome.events)
                reasons = [outcome.reason] if outcome.reason else []
            received = letter["received_ns"]
            if reasons:
                report.still_rejected += 1
                reason = "; ".join(reasons)
                report.reasons[reason] += 1
                if reason != letter["reason"]:
                    updates.append(
                        (letter["id"], received, source, content_type, payload, reason, 0, None)
                    )
            else:
                report.replayed += 1
                updates.append(
                    (
                        letter["id"],
                        received,
                        source,
                        content_type,
                        payload,
                        letter["reason"],
                        1,
                        now() // 1_000_000,
                    )
                )
        if batch.rows:
            write(batch)
        runtime.store.insert("dead_letters", REPLAY_COLUMNS, updates)
    return report


def reload(runtime: Runtime) -> Runtime:
    """The runtime with slas.yaml read again from disk (raises ConfigError)."""
    return dataclasses.replace(runtime, config=load_config(runtime.settings.config))


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: str | None = None
    reason: str | None = None
    source: str | None = None
    limit: int = 100_000


def router(runtime: Runtime) -> APIRouter:
    api = APIRouter(tags=["dead letters"])

    @api.get("/dead-letters")
    @requires(Need.ENGINEER)
    async def get_dead_letters(
        since: str | None = None,
        reason: str | None = None,
        source: str | None = None,
        include_replayed: bool = False,
        limit: int = 100,
    ) -> JSONResponse:
        """Rejected records with their reasons (payloads are PHI-masked; not listed here)."""
        try:
            flt = Filter(parse_since(since), reason, source, include_replayed, min(limit, 10_000))
        except ValueError as exc:
            raise ApiError(400, str(exc)) from exc
        rows = await asyncio.to_thread(list_dead_letters, runtime.store, flt)
        return JSONResponse(jsonable_encoder({"dead_letters": rows}))

    @api.post("/dead-letters/replay")
    @requires(Need.ENGINEER, audit="dead_letters.replay")
    async def post_replay(body: ReplayRequest) -> JSONResponse:
        """Re-ingest dead letters under slas.yaml as it is on disk now; idempotent."""
        try:
            flt = Filter(parse_since(body.since), body.reason, body.source, False, body.limit)
            current = reload(runtime)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from exc
        except ConfigError as exc:
            raise ApiError(400, str(exc)) from exc
        report = await asyncio.to_thread(replay, current, flt, runtime.writer.write_sync)
        return JSONResponse(report.as_dict())

    return api
