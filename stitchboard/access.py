"""Access control for everything on the console port, in one ASGI middleware.

For each request the middleware finds the route that will answer it in the
app's own route table (so routes and mounts added later by any stage are
covered), reads the access that route declared (``stitchboard.roles.requires``)
or the safe default, identifies the caller (a bearer token, or the signed
session cookie of a console login), and answers 401 (no or bad credentials),
403 (role too low, or a missing CSRF token) or lets the request through. It adds
security headers to every response, and appends an audit row for routes that
declare an audit action.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

from starlette.requests import cookie_parser
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stitchboard import credentials
from stitchboard.audit import AuditEntry, AuditLog
from stitchboard.errors import ConfigError
from stitchboard.ingest_auth import SenderNetworks
from stitchboard.roles import (
    SAFE_METHODS,
    AccessRule,
    Need,
    Role,
    declared_rule,
    default_rule,
    satisfies,
)
from stitchboard.sessions import (
    CSRF_HEADERS,
    SESSION_COOKIE,
    LoginLimiter,
    Session,
    Sessions,
    csrf_matches,
)

if TYPE_CHECKING:
    from stitchboard.runtime import Runtime

log = logging.getLogger(__name__)

CACHE_SECONDS = 5.0  # a revoked token or disabled user is refused within this
TOUCH_SECONDS = 60.0  # how often a token's last use is written
PUBLIC_RULE = AccessRule(Need.PUBLIC, csrf=False)
# Sending data and logging in are counted and audited elsewhere, not per request.
UNAUDITED = frozenset({Need.PUBLIC, Need.INGEST})
# Dash: its callbacks are reads (a viewer may use every page); its bundles are static files.
DASH_CALLBACK = "/_dash-update-component"
STATIC_SEGMENTS = ("_dash-component-suites", "assets")
STATIC_FILES = ("/favicon.ico", "/_favicon.ico")

CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# The OpenAPI page loads Swagger UI from its CDN.
DOCS_CSP = (
    CSP.replace("script-src 'self'", "script-src 'self' https://cdn.jsdelivr.net")
    .replace("style-src 'self'", "style-src 'self' https://cdn.jsdelivr.net")
    .replace("img-src 'self'", "img-src 'self' https://fastapi.tiangolo.com")
)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a logged-in user or a token."""

    name: str
    role: Role
    via: str  # "session" or "token"
    session: Session | None = None


class Access:
    """Credentials, sessions, the login limiter and the audit log of one console."""

    def __init__(self, runtime: Runtime, clock: Callable[[], float] = time.time):
        import secrets

        settings = runtime.settings
        self.runtime = runtime
        self.store = runtime.store
        self.bootstrap_token = settings.bootstrap_token
        if self.bootstrap_token is not None and len(self.bootstrap_token) < 32:
            raise ConfigError("settings", ["bootstrap_token: at least 32 characters"])
        key = settings.session_key or secrets.token_urlsafe(32)
        self.sessions = Sessions(key, settings.session_minutes * 60.0, clock)
        self.limiter = LoginLimiter()
        self.audit_log = AuditLog(runtime.store, settings.audit_chain or socket.gethostname())
        self.clock = clock
        self.scrapers = SenderNetworks(settings.metrics_allow) if settings.metrics_allow else None
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()

    # -- identification -------------------------------------------------------------------

    def _cached(self, key: str) -> tuple[bool, Principal | None]:
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
            return True, hit[1]
        return False, None

    def _remember(self, key: str, principal: Principal | None) -> None:
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (time.monotonic(), principal)

    def forget(self) -> None:
        """Drop cached identities (after a revocation or a disabled user)."""
        with self._lock:
            self._cache.clear()

    def from_token(self, secret: str) -> Principal | None:
        if self.bootstrap_token and hmac.compare_digest(secret, self.bootstrap_token):
            return Principal("bootstrap", Role.ADMIN, "token")
        key = "t:" + hashlib.sha256(secret.encode()).hexdigest()
        found, principal = self._cached(key)
        if found:
            return principal
        token = credentials.check_token(self.store, secret)
        principal = None if token is None else Principal(f"token:{token.name}", token.role, "token")
        self._remember(key, principal)
        if token is not None:
            last = self._touched.get(token.token_id, 0.0)
            if time.monotonic() - last > TOUCH_SECONDS:
                self._touched[token.token_id] = time.monotonic()
                credentials.touch_token(self.store, token)
        return principal

    def from_session(self, cookie: str) -> Principal | None:
        session = self.sessions.read(cookie)
        if session is None:
            return None
        key = "u:" + session.user
        found, principal = self._cached(key)
        if not found:
            user = credentials.get_user(self.store, session.user)
            principal = (
                None
                if user is None or user.disabled
                else Principal(user.name, user.role, "session")
            )
            self._remember(key, principal)
        if principal is None:
            return None
        return Principal(principal.name, principal.role, "session", session)

    # -- audit ----------------------------------------------------------------------------

    def audit(self, entry: AuditEntry) -> None:
        """Append to the audit log; a failure is logged and counted, never raised."""
        try:
            self.audit_log.record(entry)
        except Exception:  # noqa: BLE001 - the request was served; report the lost row loudly
            log.exception("audit log write failed for action %s", entry.action)


# -- the middleware -------------------------------------------------------------------------


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _is_static(path: str) -> bool:
    if path in STATIC_FILES:
        return True
    if path.startswith("/api/"):
        return False  # nothing under the API is a static file
    segments = path.split("/")
    return any(s in STATIC_SEGMENTS for s in segments[:-1]) and ".." not in segments


def flat_routes(routes: Sequence[BaseRoute]) -> Iterator[BaseRoute]:
    """Every route an app will try, in order, with included routers opened up.

    FastAPI (0.160 and later) keeps an included router as one entry that
    matches lazily; its ``effective_route_contexts`` are the routes inside.
    """
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if callable(contexts):
            yield from contexts()
        else:
            yield route


def rule_for(routes: Sequence[BaseRoute], scope: Scope) -> tuple[AccessRule, dict[str, Any]]:
    """The access rule of the route that will answer ``scope``, and its path parameters."""
    method = scope.get("method", "GET")
    path = scope.get("path", "")
    if _is_static(path) and method in SAFE_METHODS:
        return PUBLIC_RULE, {}
    if path.endswith(DASH_CALLBACK):
        return AccessRule(Need.VIEWER), {}
    partial: tuple[AccessRule, dict[str, Any]] | None = None
    for route in flat_routes(routes):
        match, child = route.matches(scope)
        if match is Match.NONE:
            continue
        endpoint = child.get("endpoint") or getattr(route, "endpoint", None)
        rule = declared_rule(endpoint) or declared_rule(route) or default_rule(method)
        if rule.audit is None and method not in SAFE_METHODS and rule.need not in UNAUDITED:
            # Every state change is audited, also on routes that did not name an action.
            template = getattr(route, "path", None) or path
            rule = dataclasses.replace(rule, audit=f"{method.lower()} {template}")
        found = (rule, dict(child.get("path_params", {})))
        if match is Match.FULL:
            return found
        partial = partial or found
    # No route (404) still needs a viewer: an anonymous caller learns nothing of the paths.
    return partial or (default_rule(method), {})


def _security_headers(path: str, headers: list[tuple[bytes, bytes]]) -> None:
    present = {k.lower() for k, _ in headers}
    csp = DOCS_CSP if path.endswith("/docs") else CSP
    extra = [
        (b"content-security-policy", csp.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
    ]
    if not _is_static(path):
        # Everything but static bundles may carry PHI or an export: never cached.
        extra.append((b"cache-control", b"no-store"))
    headers.extend((k, v) for k, v in extra if k not in present)


def _error(status: int, message: str, extra: dict[str, str] | None = None) -> tuple[int, bytes]:
    from stitchboard.api import _CODES  # the API's one error shape

    code = {401: "unauthorized", 403: "forbidden"}.get(status) or _CODES.get(status, "error")
    body = {"error": {"status": status, "code": code, "message": message}}
    return status, json.dumps(body).encode()


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of a request, for code behind a mount (the Dash console).

    The middleware puts it in the ASGI scope's state (``caller_of``), so a page's
    callback can check a role beyond the mount's own need and write audit rows
    under the caller's identity, as a declared API route does.
    """

    principal: Principal
    source: str
    audit_log: Callable[[AuditEntry], None]

    @property
    def name(self) -> str:
        return self.principal.name

    def may(self, need: Need) -> bool:
        return satisfies(self.principal.role, need)

    def record(
        self, action: str, targets: Sequence[str] = (), outcome: str = "ok", detail: str = ""
    ) -> None:
        """Append an audit row for this caller (never raises; see ``Access.audit``)."""
        self.audit_log(
            AuditEntry(
                actor=self.principal.name,
                role=self.principal.role.value,
                action=action,
                targets=tuple(targets),
                source=self.source,
                outcome=outcome,
                detail=detail,
            )
        )


def caller_of(scope: Mapping[str, Any]) -> Caller | None:
    """The caller the access middleware identified for ``scope``, if any."""
    found = scope.get("state", {}).get("caller")
    return found if isinstance(found, Caller) else None


class AccessMiddleware:
    """Enforces each route's declared access; see the module docstring."""

    def __init__(
        self, app: ASGIApp, access: Access, routes: Callable[[], Sequence[BaseRoute]]
    ) -> None:
        self.app = app
        self.access = access
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        access = self.access
        rule, path_params = rule_for(self.routes(), scope)
        need = rule.need
        if need is Need.INGEST and not access.runtime.settings.ingest_auth:
            need = Need.PUBLIC
        client, scrapers = scope.get("client"), access.scrapers
        if scrapers is not None and client and scope.get("path") == "/metrics":
            need = Need.PUBLIC if scrapers.allows(client[0]) else need  # a scrape network
        principal, bad_token = await self._identify(scope)
        state = scope.setdefault("state", {})
        state["principal"] = principal
        if principal is not None:
            client = scope.get("client")
            state["caller"] = Caller(principal, client[0] if client else "", access.audit)
        method = scope.get("method", "GET")
        path = scope.get("path", "")
        if bad_token:
            await self._deny(scope, send, 401, "invalid, expired or revoked token", bearer=True)
            return
        if need is not Need.PUBLIC:
            if principal is None:
                await self._deny(scope, send, 401, "authentication required", bearer=True)
                return
            if not satisfies(principal.role, need):
                await self._deny(
                    scope, send, 403, f"this needs the {need.value} role (you are {principal.role})"
                )
                await self._audit(scope, principal, "access.denied", (path,), "denied", need.value)
                return
        if (
            principal is not None
            and principal.session is not None
            and method not in SAFE_METHODS
            and rule.csrf
            and not csrf_matches(principal.session, self._csrf(scope))
        ):
            await self._deny(scope, send, 403, "CSRF token missing or wrong")
            return

        status = 500
        targets = self._targets(scope, rule, path_params)
        # A route audited for some parameters (a key search) is audited only with them.
        audited = rule.audit is not None and principal is not None
        audited = audited and (bool(targets) or not rule.audit_params)
        recorded = False

        async def record() -> None:
            nonlocal recorded
            if audited and not recorded:
                recorded = True
                outcome = "ok" if status < 400 else f"failed {status}"
                assert principal is not None and rule.audit is not None
                await self._audit(scope, principal, rule.audit, targets, outcome)

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                _security_headers(path, headers)
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # The audit row is durable before the last byte of what it records leaves.
                await record()
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            await record()

    async def _identify(self, scope: Scope) -> tuple[Principal | None, bool]:
        authorization = _header(scope, b"authorization")
        if authorization:
            kind, _, secret = authorization.partition(" ")
            if kind.lower() != "bearer" or not secret.strip():
                return None, True
            principal = await asyncio.to_thread(self.access.from_token, secret.strip())
            return principal, principal is None
        cookie = cookie_parser(_header(scope, b"cookie") or "").get(SESSION_COOKIE)
        if cookie:
            return await asyncio.to_thread(self.access.from_session, cookie), False
        return None, False

    @staticmethod
    def _csrf(scope: Scope) -> str | None:
        for name in CSRF_HEADERS:
            value = _header(scope, name.encode())
            if value:
                return value
        return None

    def _targets(
        self, scope: Scope, rule: AccessRule, path_params: dict[str, Any]
    ) -> tuple[str, ...]:
        targets = [str(v) for v in path_params.values()]
        if rule.audit_params:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            pseudonymize = self.access.runtime.pseudonymize
            for name in rule.audit_params:
                # Search values may be PHI: the log keeps their pseudonyms, like the events.
                targets.extend(f"{name}:{pseudonymize(v)}" for v in query.get(name, []))
        return tuple(targets)

    async def _audit(
        self,
        scope: Scope,
        principal: Principal,
        action: str,
        targets: tuple[str, ...],
        outcome: str,
        detail: str = "",
    ) -> None:
        client = scope.get("client")
        entry = AuditEntry(
            actor=principal.name,
            role=principal.role.value,
            action=action,
            targets=targets,
            source=client[0] if client else "",
            outcome=outcome,
            detail=detail,
        )
        await asyncio.to_thread(self.access.audit, entry)

    async def _deny(
        self, scope: Scope, send: Send, status: int, message: str, bearer: bool = False
    ) -> None:
        path = scope.get("path", "")
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        accept = _header(scope, b"accept") or ""
        headers: list[tuple[bytes, bytes]] = []
        if (
            status == 401
            and scope.get("method") == "GET"
            and "text/html" in accept
            and not path.startswith("/api/")
        ):
            query = scope.get("query_string", b"").decode("latin-1")
            target = path + ("?" + query if query else "")
            location = "/login?next=" + quote(target, safe="")
            headers = [(b"location", location.encode()), (b"content-length", b"0")]
            _security_headers(path, headers)
            await send({"type": "http.response.start", "status": 303, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        code, body = _error(status, message)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if bearer:
            headers.append((b"www-authenticate", b'Bearer realm="stitchboard"'))
        _security_headers(path, headers)
        await send({"type": "http.response.start", "status": code, "headers": headers})
        await send({"type": "http.response.body", "body": body})
