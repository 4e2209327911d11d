"""``GET /audit``: the audit log in the console for auditors, filtered by user, action, target."""

from __future__ import annotations

import asyncio
import html

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from stitchboard.access import Access
from stitchboard.audit import AuditFilter, query
from stitchboard.roles import Need, requires

STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem;color:#1f2933}"
    "table{border-collapse:collapse;font-size:.9rem}td,th{border:1px solid #d0d5dd;"
    "padding:.2rem .4rem;text-align:left;vertical-align:top}input{margin-right:.5rem}"
)


def build_router(access: Access) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/audit")
    @requires(Need.AUDITOR, audit="audit.read")
    async def audit_page(
        user: str | None = None, action: str | None = None, target: str | None = None
    ) -> HTMLResponse:
        targets: tuple[str, ...] = ()
        if target:
            targets = (target, f"key:{access.runtime.pseudonymize(target)}")
        flt = AuditFilter(user or None, action or None, targets, limit=500)
        rows = await asyncio.to_thread(query, access.store, flt)
        e = html.escape
        body = "".join(
            f"<tr><td>{e(r.time.isoformat())}</td><td>{e(r.actor)}</td><td>{e(r.role)}</td>"
            f"<td>{e(r.action)}</td><td>{e(', '.join(r.targets))}</td><td>{e(r.source)}</td>"
            f"<td>{e(r.outcome)}</td><td>{e(r.chain)}:{r.seq}</td></tr>"
            for r in rows
        )

        def field(name: str, value: str | None) -> str:
            return (
                f'<label>{name} <input name="{name}" id="audit-{name}"'
                f' value="{e(value or "")}"></label>'
            )

        page = (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>Audit log</title><style>{STYLE}</style></head><body>"
            "<h1>Audit log</h1><p><a href='/'>Stitchboard</a> · <a href='/exports'>Exports</a>"
            " · hash chains are checked with <code>stitchboard audit verify</code></p>"
            f"<form method='get'>{field('user', user)}{field('action', action)}"
            f"{field('target', target)}<button type='submit'>Filter</button></form>"
            f"<p>{len(rows)} rows, newest first (at most 500).</p>"
            "<table id='audit-rows'><tr><th>time (UTC)</th><th>who</th><th>role</th>"
            "<th>action</th><th>targets</th><th>from</th><th>outcome</th><th>chain:seq</th></tr>"
            f"{body}</table></body></html>"
        )
        return HTMLResponse(page)

    return router
