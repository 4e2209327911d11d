"""``/api/v1/exports``: export jobs for auditors, and the public key that verifies bundles."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, ConfigDict

from exports.bundle import Selection, check_selection
from exports.errors import ExportError
from exports.jobs import Jobs
from exports.signing import load_or_create_key, public_pem
from stitchboard.api import ApiError
from stitchboard.roles import Need, requires
from stitchboard.runtime import Runtime


class ExportRequest(BaseModel):
    """One of: a transaction id, a key to search, or a filter."""

    model_config = ConfigDict(extra="forbid")
    transaction_id: str | None = None
    key: str | None = None
    workflow: str | None = None
    facility: str | None = None
    status: str | None = None
    flag: str | None = None
    since: str | None = None
    until: str | None = None


def build_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(tags=["exports"])
    jobs = Jobs(runtime)

    def caller(request: Request) -> tuple[str, str, str]:
        principal = request.state.principal
        source = request.client.host if request.client else ""
        return principal.name, principal.role.value, source

    @router.get("/exports/public-key")
    @requires(Need.VIEWER)
    async def public_key() -> Response:
        """The Ed25519 public key (PEM) that verifies every bundle this server signs."""
        key = await asyncio.to_thread(load_or_create_key, runtime.settings.export_key_file)
        return Response(public_pem(key.public_key()), media_type="application/x-pem-file")

    @router.post("/exports", status_code=202)
    @requires(Need.AUDITOR, audit="export")
    async def start_export(request: Request, body: ExportRequest) -> dict[str, Any]:
        """Start writing a signed bundle; poll the job for progress, then download it."""
        selection = Selection(**body.model_dump())
        try:
            check_selection(selection, runtime.config)
        except ExportError as exc:
            raise ApiError(400, str(exc)) from None
        if jobs.audit is None:
            jobs.audit = request.app.state.access.audit
        name, role, source = caller(request)
        return jobs.start(selection, name, role, source).as_dict()

    @router.get("/exports/{job_id}")
    @requires(Need.AUDITOR)
    async def export_job(request: Request, job_id: str) -> dict[str, Any]:
        """An export job: status, transactions written so far, download link when done."""
        job = jobs.get(job_id)
        if job is None or job.owner != caller(request)[0]:
            raise ApiError(404, f"no export {job_id!r}")
        return job.as_dict()

    @router.get("/exports/{job_id}/bundle")
    @requires(Need.AUDITOR, audit="export.download")
    async def export_bundle(request: Request, job_id: str) -> Response:
        """The signed bundle (a zip)."""
        job = jobs.get(job_id)
        if job is None or job.owner != caller(request)[0]:
            raise ApiError(404, f"no export {job_id!r}")
        if job.status != "done":
            raise ApiError(409, f"export {job_id} is {job.status}")
        return FileResponse(
            job.path,
            media_type="application/zip",
            filename=job.path.name,
            headers={"Cache-Control": "no-store"},
        )

    return router
