"""``GET /audit``: the audit log in the console for auditors, filtered by user, action, target."""

from __future__ import annotations

import asyncio
import html

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from stitchboard.access import Access
from stitchboard.audit import AuditFilter, query
from stitchboard.console_shell import page_html
from stitchboard.roles import Need, requires


def build_router(access: Access) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/audit")
    @requires(Need.AUDITOR, audit="audit.read")
    async def audit_page(
        request: Request,
        user: str | None = None,
        action: str | None = None,
        target: str | None = None,
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
            "<h1>Audit log</h1><p class='subtitle'>Hash chains are checked with"
            " <code>stitchboard audit verify</code>.</p>"
            f"<form method='get' class='inline panel'>{field('user', user)}"
            f"{field('action', action)}{field('target', target)}"
            "<button type='submit' class='button'>Filter</button></form>"
            f"<p>{len(rows)} rows, newest first (at most 500).</p><div class='panel'>"
            "<table id='audit-rows' class='simple'><tr><th>time (UTC)</th><th>who</th>"
            "<th>role</th><th>action</th><th>targets</th><th>from</th><th>outcome</th>"
            f"<th>chain:seq</th></tr>{body}</table></div>"
        )
        return HTMLResponse(page_html("Audit log", page, request.state.principal))

    return router
