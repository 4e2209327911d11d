"""``POST /api/v1/messages``: HL7 v2 or JSON Lines (or CSV) from middleware over HTTP.

Same contract as OTLP: 200 only once every record is durable, either as events
or as a dead letter with its reason; the body lists the rejected records with
their reasons. 413 past the size limit, 415 for other media types, 429 with
Retry-After when the ingest buffer is full, 503 when the store is down.

``stitchboard import`` sends files here while a server owns the store; its
``X-Stitchboard-Import-*`` headers record the file's checkpoint in the same
durable write.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from collector.errors import BodyTooLarge, UndecodableBody, UnsupportedMediaType
from collector.files import body_records, judge
from collector.http import read_body
from collector.import_state import add_checkpoint, resume_offset
from collector.intake import Intake, Outcome, batch_of
from stitchboard.api import ApiError
from stitchboard.config import SlasConfig
from stitchboard.errors import Overloaded, StoreUnavailable
from stitchboard.roles import Need, requires
from stitchboard.runtime import Runtime
from stitchboard.writer import Batch

log = logging.getLogger(__name__)

HL7_TYPES = {
    "x-application/hl7-v2+er7",
    "application/hl7-v2+er7",
    "application/hl7-v2",
    "x-application/hl7-v2",
    "text/hl7",
    "application/edi-hl7v2",
}
JSONL_TYPES = {
    "application/x-ndjson",
    "application/jsonl",
    "application/json-lines",
    "application/x-jsonlines",
    "application/jsonlines",
    "application/ndjson",
}
CSV_TYPES = {"text/csv"}
MAX_LISTED_REJECTIONS = 1000
SIGNAL = "messages.http"  # the label of this endpoint's metrics


def media_format(content_type: str) -> str:
    media = content_type.split(";", 1)[0].strip().lower()
    if media in HL7_TYPES:
        return "hl7"
    if media in JSONL_TYPES:
        return "jsonl"
    if media in CSV_TYPES:
        return "csv"
    raise UnsupportedMediaType(
        f"unsupported Content-Type {content_type!r}; send HL7 v2 as x-application/hl7-v2+er7,"
        " JSON Lines as application/x-ndjson or CSV as text/csv"
    )


def judge_body(
    intake: Intake,
    body: bytes,
    fmt: str,
    source: str,
    dead_letter_source: str,
    delimiter: str = ",",
) -> list[Outcome]:
    return [
        judge(intake, r, source, dead_letter_source) for r in body_records(body, fmt, delimiter)
    ]


def summary(outcomes: list[Outcome]) -> dict[str, Any]:
    rejections: list[dict[str, Any]] = []
    for index, outcome in enumerate(outcomes):
        if outcome.dead_letter is not None and len(rejections) < MAX_LISTED_REJECTIONS:
            entry: dict[str, Any] = {"index": index, "reason": outcome.reason}
            if outcome.header is not None and outcome.header.control_id:
                entry["control_id"] = outcome.header.control_id
            rejections.append(entry)
    rejected = sum(1 for o in outcomes if o.dead_letter is not None)
    return {
        "received": len(outcomes),
        "accepted": len(outcomes) - rejected,
        "rejected": rejected,
        "events": sum(len(o.events) for o in outcomes),
        "rejections": rejections,
    }


def router(runtime: Runtime) -> APIRouter:
    # Rebuilt when slas.yaml is reloaded; each request reads the pair once.
    current = [(Intake(runtime.config, runtime.pseudonymize), runtime.config)]

    def reconfigure(config: SlasConfig) -> None:
        current[0] = (Intake(config, runtime.pseudonymize), config)

    runtime.on_config(reconfigure)
    api = APIRouter(tags=["messages"])

    @api.post("/messages")
    @requires(Need.INGEST)
    async def post_messages(request: Request) -> JSONResponse:
        """Ingest HL7 v2 messages, JSON Lines or CSV rows; 200 once all are durable."""
        try:
            fmt = media_format(request.headers.get("content-type", ""))
            body = await read_body(request, runtime.settings.max_body_bytes)
        except UnsupportedMediaType as exc:
            raise ApiError(415, str(exc)) from exc
        except BodyTooLarge as exc:
            raise ApiError(413, str(exc)) from exc
        except UndecodableBody as exc:
            raise ApiError(400, str(exc)) from exc
        named = request.headers.get("x-stitchboard-source", "").strip()
        client = request.client.host if request.client else "unknown"
        if named.startswith("file:"):
            source, dead_letter_source = named.removeprefix("file:"), named
        else:
            source, dead_letter_source = named or f"http:{client}", "http.messages"
        intake, config = current[0]
        delimiter = config.messages.logs.csv_delimiter
        outcomes = await asyncio.to_thread(
            judge_body, intake, body, fmt, source, dead_letter_source, delimiter
        )
        batch = batch_of(outcomes, Batch())
        _checkpoint(request, batch, len(outcomes))
        metrics = runtime.metrics
        metrics.received.labels(SIGNAL).inc(len(outcomes))
        try:
            await runtime.writer.write(batch)
        except Overloaded as exc:
            metrics.requests.labels(SIGNAL, "overloaded").inc()
            retry = str(exc.retry_after)
            raise ApiError(429, "ingest buffer full; retry later", {"Retry-After": retry}) from exc
        except StoreUnavailable:
            metrics.requests.labels(SIGNAL, "unavailable").inc()
            raise
        result = summary(outcomes)
        metrics.requests.labels(SIGNAL, "ok").inc()
        metrics.accepted.labels(SIGNAL).inc(result["accepted"])
        metrics.rejected.labels(SIGNAL).inc(result["rejected"])
        return JSONResponse(result)

    @api.get("/messages/imports/{file_id}")
    @requires(Need.INGEST)
    async def import_checkpoint(file_id: str) -> JSONResponse:
        """How far an earlier ``stitchboard import`` of this file got (byte offset)."""
        offset = await asyncio.to_thread(resume_offset, runtime.store, file_id)
        return JSONResponse({"file_id": file_id, "offset": offset})

    return api


def _checkpoint(request: Request, batch: Batch, records: int) -> None:
    file_id = request.headers.get("x-stitchboard-import-id")
    offset = request.headers.get("x-stitchboard-import-offset", "")
    if file_id and offset.isdigit():
        name = request.headers.get("x-stitchboard-import-name", "")
        add_checkpoint(batch, file_id, name, int(offset), records)
