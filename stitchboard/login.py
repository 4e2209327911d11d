"""The console login page: ``GET/POST /login``, ``POST /logout``.

The login form has its own CSRF token (a cookie and a hidden field that must
match), failed attempts are limited per user name and per source address, and
every attempt is audited. ``next`` may only be a path on this site.
"""

from __future__ import annotations

import asyncio
import html
import secrets
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from stitchboard import credentials
from stitchboard.access import Access, Principal
from stitchboard.audit import AuditEntry
from stitchboard.roles import Need, requires
from stitchboard.sessions import CSRF_COOKIE, SESSION_COOKIE, csrf_matches

LOGIN_CSRF_COOKIE = "sb_login_csrf"
MAX_FORM_BYTES = 8192

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Stitchboard: log in</title>
<style>body{{font-family:system-ui,sans-serif;max-width:22rem;margin:5rem auto;color:#1f2933}}
label,input,button{{display:block;width:100%;margin:.3rem 0}}input{{padding:.4rem}}
.error{{color:#b42318}}</style></head>
<body><h1>Stitchboard</h1>{error}
<form method="post" action="/login">
<input type="hidden" name="csrf_token" value="{csrf}">
<input type="hidden" name="next" value="{next}">
<label for="username">User name</label>
<input id="username" name="username" autocomplete="username" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Log in</button>
</form></body></html>
"""


def safe_next(value: str | None) -> str:
    """A local path to go to after login; anything else (another site) is ``/``."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def _page(csrf: str, next_path: str, error: str = "", status: int = 200) -> HTMLResponse:
    text = PAGE.format(
        csrf=html.escape(csrf),
        next=html.escape(next_path),
        error=f'<p class="error" role="alert">{html.escape(error)}</p>' if error else "",
    )
    response = HTMLResponse(text, status_code=status)
    response.set_cookie(
        LOGIN_CSRF_COOKIE, csrf, httponly=True, samesite="strict", max_age=3600, path="/login"
    )
    return response


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items() if v}


def build_router(access: Access) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/login")
    @requires(Need.PUBLIC)
    async def login_page(next: str | None = None) -> HTMLResponse:
        return _page(secrets.token_urlsafe(24), safe_next(next))

    @router.post("/login")
    @requires(Need.PUBLIC, csrf=False)
    async def login(request: Request) -> Response:
        form = await _form(request)
        user_name = form.get("username", "").strip()[:64]
        next_path = safe_next(form.get("next"))
        source = request.client.host if request.client else ""
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        presented = form.get("csrf_token", "")
        if not cookie or not secrets.compare_digest(cookie, presented):
            return _page(secrets.token_urlsafe(24), next_path, "The form expired; try again.", 403)
        wait = access.limiter.retry_after(user_name, source)
        if wait:
            limited = _page(cookie, next_path, "Too many failed attempts; wait and retry.", 429)
            limited.headers["Retry-After"] = str(wait)
            await _audit(access, user_name, "", "login", source, "rate limited")
            return limited
        user = await asyncio.to_thread(
            credentials.check_password, access.store, user_name, form.get("password", "")
        )
        if user is None:
            access.limiter.failed(user_name, source)
            await _audit(access, user_name, "", "login", source, "denied")
            return _page(cookie, next_path, "Wrong user name or password.", 401)
        access.limiter.succeeded(user_name)
        access.forget()
        session, value = access.sessions.issue(user.name)
        await _audit(access, user.name, user.role.value, "login", source, "ok")
        response = RedirectResponse(next_path, status_code=303)
        secure = request.url.scheme == "https"
        max_age = int(access.sessions.ttl)
        response.set_cookie(
            SESSION_COOKIE, value, httponly=True, samesite="strict", secure=secure, max_age=max_age
        )
        # Readable by the page, so Dash (and forms) can send it back as X-CSRFToken.
        response.set_cookie(
            CSRF_COOKIE, session.csrf, samesite="strict", secure=secure, max_age=max_age
        )
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
        return response

    @router.post("/logout")
    @requires(Need.VIEWER, csrf=False)
    async def logout(request: Request) -> Response:
        principal: Principal | None = request.state.principal
        if principal is not None and principal.session is not None:
            form = await _form(request)
            presented = request.headers.get("x-csrftoken") or form.get("csrf_token")
            if not csrf_matches(principal.session, presented):
                return HTMLResponse("CSRF token missing or wrong", status_code=403)
            access.sessions.end(principal.session)
            source = request.client.host if request.client else ""
            await _audit(access, principal.name, principal.role.value, "logout", source, "ok")
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        response.delete_cookie(CSRF_COOKIE)
        return response

    return router


async def _audit(
    access: Access, actor: str, role: str, action: str, source: str, outcome: str
) -> None:
    entry = AuditEntry(actor=actor, role=role, action=action, source=source, outcome=outcome)
    await asyncio.to_thread(access.audit, entry)
