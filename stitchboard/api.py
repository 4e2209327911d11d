"""The JSON API under ``/api/v1`` and ``/metrics`` on the console port (default 8050).

Every error has one shape: ``{"error": {"status": 400, "code": "bad_request",
"message": "..."}}``. Stages contribute routers (see ``stitchboard.stages``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from stitchboard import __version__
from stitchboard.access import Access, AccessMiddleware
from stitchboard.disks import warnings as disk_warnings
from stitchboard.errors import StoreUnavailable
from stitchboard.roles import Need, requires
from stitchboard.runtime import Runtime
from stitchboard.stages import served_stages
from stitchboard.store.schema import schema_version

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"

_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "overloaded",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """Raise from a route to answer with the common error shape."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        self.status = status
        self.message = message
        self.headers = headers
        super().__init__(message)


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"status": status, "code": _CODES.get(status, "error"), "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body"))
        problems.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return "; ".join(problems)


INDEX_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Stitchboard</title>
<style>body{font-family:system-ui,sans-serif;max-width:44rem;margin:3rem auto;color:#1f2933}
a{color:#0b6bcb}li{margin:.4rem 0}</style></head>
<body><h1>Stitchboard</h1>
<p>Business-SLA observability for healthcare integration.</p>
<ul>
<li><a href="/api/v1/docs">API reference</a>
 (OpenAPI: <a href="/api/v1/openapi.json">openapi.json</a>)</li>
<li><a href="/api/v1/health">Health</a>: store, schema version, row counts</li>
<li><a href="/metrics">Metrics</a> in Prometheus format</li>
<li>Auditors: <a href="/audit">audit log</a>, <a href="/exports">exports</a></li>
</ul>
<form method="post" action="/logout"><input type="hidden" name="csrf_token" id="csrf">
<button type="submit">Log out</button></form>
<script>document.getElementById("csrf").value =
(document.cookie.match(/(?:^|; )_csrf_token=([^;]*)/) || [])[1] || "";</script></body></html>
"""


def table_counts(runtime: Runtime) -> dict[str, int]:
    store = runtime.store
    rows = store.rows(
        "SELECT name, total_rows FROM system.tables WHERE database = {db:String}"
        " AND engine NOT IN ('Null', 'MaterializedView', 'View')",
        {"db": store.database},
    )
    # Rows stored per table; views and the engine decoder's landing table hold none.
    return {name: int(count or 0) for name, count in rows if not name.startswith((".", "_"))}


def undeclared_facilities(runtime: Runtime) -> list[dict[str, Any]]:
    """Facility names events were sent with that slas.yaml does not declare (as an id or
    an alias), with how many events name each: stored all the same, shown here so the
    gap can be closed (declaring one later applies to its past events)."""
    store = runtime.store
    declared = sorted(runtime.config.facility_index())
    if not declared:
        return []  # no facilities declared: every name is taken as sent
    rows = store.rows(
        f"SELECT facility, count() FROM {store.table('events')}"
        " WHERE facility != '' AND facility NOT IN {declared:Array(String)}"
        " GROUP BY facility ORDER BY facility",
        {"declared": declared},
    )
    return [{"name": name, "events": int(count)} for name, count in rows]


def build_api(runtime: Runtime, routers: Iterable[APIRouter] = ()) -> FastAPI:
    # Swagger UI from assets shipped in a package, not a CDN: the docs work offline.
    app = FastAPIOffline(
        title="Stitchboard API",
        version=__version__,
        description="Business-SLA observability for healthcare integration.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        static_url=f"{API_PREFIX}/docs-assets",
        swagger_ui_oauth2_redirect_url=f"{API_PREFIX}/docs/oauth2-redirect",
    )
    started = time.time()

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, _validation_message(exc))

    @app.exception_handler(StoreUnavailable)
    async def _store_down(request: Request, exc: StoreUnavailable) -> JSONResponse:
        retry = str(runtime.settings.retry_after_seconds)
        return error_response(503, f"store unavailable: {exc}", {"Retry-After": retry})

    @app.get(f"{API_PREFIX}/health", tags=["health"])
    @requires(Need.PUBLIC)
    async def health(request: Request) -> JSONResponse:
        """Store reachable, schema version, row counts, ingest buffer, free disk.

        Without credentials (liveness and readiness probes) only ``ok`` or not.
        """
        if request.state.principal is None:
            up = await asyncio.to_thread(runtime.store.ping)
            return JSONResponse(
                {"status": "ok" if up else "unavailable"}, status_code=200 if up else 503
            )

        def probe() -> dict[str, Any]:
            return {
                "schema_version": schema_version(runtime.store),
                # Rows stored per table (a rewritten transaction counts until merged);
                # each stage's own figures, e.g. transactions as listed, are in "stages".
                "tables": table_counts(runtime),
                "undeclared_facilities": undeclared_facilities(runtime),
                "stages": {
                    name: figures
                    for stage in served_stages()
                    if (figures := stage.health(runtime)) and (name := stage.name)
                },
            }

        body: dict[str, Any] = {
            "status": "ok",
            "version": __version__,
            "uptime_seconds": round(time.time() - started, 1),
            "store": {
                "url": runtime.store.display_url,
                "database": runtime.store.database,
                "reachable": True,
            },
            "ingest_queue_rows": runtime.writer.pending_rows,
        }
        spool = runtime.writer.health()
        if spool is not None:
            body["spool"] = spool
        disks = await asyncio.to_thread(runtime.disks)
        minimum = runtime.settings.disk_min_free_percent
        body["disks"] = [disk.as_dict(minimum) for disk in disks]
        body["warnings"] = disk_warnings(disks, minimum)
        try:
            body["store"].update(await asyncio.to_thread(probe))
        except Exception as exc:  # noqa: BLE001 - health reports, it does not raise
            body["status"] = "unavailable"
            body["store"]["reachable"] = False
            body["store"]["error"] = str(exc)
            return JSONResponse(body, status_code=503)
        return JSONResponse(body)

    @app.post(f"{API_PREFIX}/admin/reload-config", tags=["admin"])
    @requires(Need.ADMIN, audit="config.reload")
    async def reload_config() -> JSONResponse:
        """Re-read slas.yaml without a restart (as SIGHUP does). A file with problems is
        refused with every problem listed (422), and the running configuration stays."""
        problems = await asyncio.to_thread(runtime.reload_config)
        if problems:
            body = {
                "error": {
                    "status": 422,
                    "code": "invalid_config",
                    "message": "slas.yaml not reloaded; the running configuration stays",
                    "problems": problems,
                }
            }
            return JSONResponse(body, status_code=422)
        config = runtime.config
        return JSONResponse(
            {
                "reloaded": True,
                "facilities": len(config.facilities),
                "keys": len(config.keys),
                "workflows": len(config.workflows),
            }
        )

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(INDEX_HTML)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(runtime.metrics.render(), media_type="text/plain; version=0.0.4")

    from stitchboard import access_api, audit_page, login  # they use this module's ApiError

    access = Access(runtime)
    app.state.access = access
    app.include_router(login.build_router(access))
    app.include_router(audit_page.build_router(access))
    app.include_router(access_api.build_router(access), prefix=API_PREFIX)
    for router in routers:
        app.include_router(router, prefix=API_PREFIX)
    # Outermost: every route and mount, including those stages add after this, is covered.
    app.add_middleware(AccessMiddleware, access=access, routes=lambda: app.router.routes)
    return app
