"""Access control on the console app with every served stage, on the embedded store.

The route-table test walks the app's own routes (API, pages, Dash callbacks and
mounts) so a route added by any stage is covered: without credentials it answers
401, with the role just below its need 403, with its need neither.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest
from httpx import Client
from starlette.routing import Mount

from stitchboard import credentials
from stitchboard.access import flat_routes
from stitchboard.api import build_api
from stitchboard.audit import AuditEntry, AuditLog, verify
from stitchboard.components import HttpComponent
from stitchboard.roles import Need, Role, declared_rule, default_rule
from stitchboard.stages import served_stages
from tests.support import AUTH, InProcess, free_port, make_runtime

PASSWORD = "correct horse battery staple"
# Routes anyone may call. A new public route must be added here on purpose.
PUBLIC = {("GET", "/login"), ("POST", "/login"), ("GET", "/api/v1/health")}
BELOW = {
    Need.VIEWER: Role.INGEST,
    Need.ENGINEER: Role.VIEWER,
    Need.AUDITOR: Role.ENGINEER,
    Need.ADMIN: Role.AUDITOR,
    Need.INGEST: Role.VIEWER,
}
AT = {
    Need.VIEWER: Role.VIEWER,
    Need.ENGINEER: Role.ENGINEER,
    Need.AUDITOR: Role.AUDITOR,
    Need.ADMIN: Role.ADMIN,
    Need.INGEST: Role.INGEST,
}


@pytest.fixture(scope="module")
def console(store):
    # Ingest auth on, so the ingest routes are checked too.
    runtime = make_runtime(store, ingest_auth=True)
    stages = served_stages()
    app = build_api(runtime, [r for s in stages for r in s.routers(runtime)])
    for stage in stages:
        stage.mount(app, runtime)
    port = free_port()
    server = HttpComponent("console", app, "127.0.0.1", port, "Console")
    with InProcess([server]), Client(base_url=f"http://127.0.0.1:{port}") as client:
        yield app, runtime, client
    runtime.writer.close()


def session_client(console) -> Client:
    """A fresh client (its own cookie jar) on the console."""
    return Client(base_url=str(console[2].base_url).rstrip("/"))


@pytest.fixture(scope="module")
def tokens(store) -> dict[Role, str]:
    made = {}
    for role in Role:
        _, secret = credentials.create_token(
            store, f"t-{role.value}", role, "test", dt.timedelta(days=1)
        )
        made[role] = secret
    return made


@pytest.fixture(scope="module")
def users(store) -> None:
    for role in (Role.VIEWER, Role.AUDITOR):
        credentials.add_user(store, f"{role.value}-user", role, PASSWORD)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path)


def endpoints(app) -> Iterator[tuple[str, str, Any]]:
    """(method, path, endpoint) for every route of the app, mounts as GET of their root."""
    for route in flat_routes(app.router.routes):
        if isinstance(route, Mount):
            yield "GET", route.path + "/", route.app
            yield "POST", route.path + "/_dash-update-component", None
            continue
        path = getattr(route, "path", None)
        for method in sorted(getattr(route, "methods", None) or ()):
            if method != "HEAD" and path is not None:
                yield method, path, getattr(route, "endpoint", None)


def need_of(method: str, path: str, endpoint: Any) -> Need:
    if path.endswith("/_dash-update-component"):
        return Need.VIEWER  # Dash callbacks read
    rule = declared_rule(endpoint) or default_rule(method)
    return rule.need


def test_every_route_refuses_anonymous_callers_and_roles_below_its_need(console, tokens):
    app, _, client = console
    table = list(endpoints(app))
    paths = {p for _, p, _ in table}
    # The walk really covers the stages' routes, not only the kernel's.
    assert {"/api/v1/transactions/{transaction_id}", "/api/v1/dead-letters/replay"} <= paths
    assert {"/api/v1/audit", "/api/v1/tokens", "/metrics", "/"} <= paths
    public = set()
    for method, path, endpoint in table:
        need = need_of(method, path, endpoint)
        url = concrete(path)
        where = f"{method} {path} (needs {need.value})"
        if need is Need.PUBLIC:
            public.add((method, path))
            continue
        anonymous = client.request(method, url, json={})
        assert anonymous.status_code == 401, where
        assert anonymous.json()["error"]["code"] == "unauthorized", where
        below = client.request(method, url, json={}, headers=bearer(tokens[BELOW[need]]))
        assert below.status_code == 403, where
        allowed = client.request(method, url, json={}, headers=bearer(tokens[AT[need]]))
        assert allowed.status_code not in (401, 403), where
    assert public == PUBLIC


def test_declared_needs_of_the_sensitive_routes(console):
    app, _, _ = console
    needs = {(m, p): need_of(m, p, e) for m, p, e in endpoints(app)}
    assert needs[("GET", "/api/v1/audit")] is Need.AUDITOR
    assert needs[("POST", "/api/v1/tokens")] is Need.ADMIN
    assert needs[("POST", "/api/v1/dead-letters/replay")] is Need.ENGINEER
    assert needs[("GET", "/api/v1/transactions")] is Need.VIEWER
    assert needs[("POST", "/api/v1/messages")] is Need.INGEST


def test_anonymous_health_says_only_ok_and_details_need_a_token(console, tokens):
    _, _, client = console
    assert client.get("/api/v1/health").json() == {"status": "ok"}
    detailed = client.get("/api/v1/health", headers=bearer(tokens[Role.VIEWER])).json()
    assert detailed["status"] == "ok" and "tables" in detailed["store"]


def test_a_browser_without_a_session_is_sent_to_the_login_page(console):
    _, _, client = console
    page = client.get("/?a=1", headers={"Accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2F%3Fa%3D1"


def test_security_headers_on_every_answer(console, tokens):
    _, _, client = console
    for response in (
        client.get("/api/v1/health"),
        client.get("/api/v1/whoami"),
        client.get("/api/v1/whoami", headers=bearer(tokens[Role.VIEWER])),
    ):
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"


def test_plotly_js_is_the_cartesian_bundle_compressed_and_cached(console):
    """Dash asks for the full plotly.js at this path; the console answers with the
    cartesian bundle (all it draws), gzipped, revalidated by ETag after an hour."""
    _, _, client = console
    path = "/_dash-component-suites/plotly/package_data/plotly.min.js"
    first = client.get(path, headers={"Accept-Encoding": "gzip"})
    assert first.status_code == 200
    assert first.text.startswith("/**\n* plotly.js (cartesian - minified) v")
    assert first.headers["content-encoding"] == "gzip"
    assert int(first.headers["content-length"]) < len(first.content) / 3  # 1.5 MB, ~0.5 gzipped
    assert first.headers["cache-control"] == "public, max-age=3600"
    assert first.headers["content-type"].startswith("text/javascript")
    again = client.get(path, headers={"If-None-Match": first.headers["etag"]})
    assert (again.status_code, again.content) == (304, b"")
    plain = client.get(path, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == first.content


def login(client: Client, user: str, password: str, next_path: str = "/") -> Any:
    page = client.get("/login", params={"next": next_path})
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return client.post(
        "/login",
        data={"username": user, "password": password, "csrf_token": csrf, "next": next_path},
        follow_redirects=False,
    )


def test_login_sets_a_session_and_state_changes_need_the_csrf_token(console, users):
    _, runtime, _ = console
    with session_client(console) as client:
        done = login(client, "auditor-user", PASSWORD, "/api/v1/whoami")
        assert done.status_code == 303 and done.headers["location"] == "/api/v1/whoami"
        assert "httponly" in done.headers["set-cookie"].lower()
        me = client.get("/api/v1/whoami").json()
        assert me == {"name": "auditor-user", "role": "auditor", "via": "session"}
        # A state-changing request with the session cookie but without the token: refused.
        body = {"since": "2026-01-01T00:00:00Z"}
        refused = client.post("/api/v1/dead-letters/replay", json=body)
        assert refused.status_code == 403 and "CSRF" in refused.json()["error"]["message"]
        csrf = client.cookies["_csrf_token"]
        wrong = client.post("/api/v1/dead-letters/replay", json=body, headers={"X-CSRFToken": "x"})
        assert wrong.status_code == 403
        ok = client.post("/api/v1/dead-letters/replay", json=body, headers={"X-CSRFToken": csrf})
        assert ok.status_code == 200
        out = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
        assert out.status_code == 303
    # The cookie of the ended session is refused even if replayed.
    with session_client(console) as again:
        again.cookies.set("sb_session", done.cookies["sb_session"])
        assert again.get("/api/v1/whoami").status_code == 401


def test_login_without_the_form_token_is_refused(console, users):
    with session_client(console) as client:
        response = client.post(
            "/login", data={"username": "viewer-user", "password": PASSWORD}, follow_redirects=False
        )
        assert response.status_code == 403
        assert "sb_session" not in response.cookies


def test_a_session_expires(console, users):
    app, _, _ = console
    sessions = app.state.access.sessions
    with session_client(console) as client:
        assert login(client, "viewer-user", PASSWORD).status_code == 303
        assert client.get("/api/v1/whoami").status_code == 200
        real = sessions.clock
        sessions.clock = lambda: real() + sessions.ttl + 1
        try:
            assert client.get("/api/v1/whoami").status_code == 401
        finally:
            sessions.clock = real


def test_failed_logins_are_limited_and_audited(console, store, users):
    app, _, _ = console
    with session_client(console) as client:
        codes = [login(client, "viewer-user", "wrong password!").status_code for _ in range(6)]
        assert codes == [401, 401, 401, 401, 401, 429]
        # Even the right password waits out the window.
        assert login(client, "viewer-user", PASSWORD).status_code == 429
    app.state.access.limiter.succeeded("viewer-user")
    rows = store.rows(
        f"SELECT outcome, count() FROM {store.table('audit_log')}"
        " WHERE action = 'login' AND actor = 'viewer-user' GROUP BY outcome"
    )
    counts = dict(rows)
    assert counts["denied"] == 5 and counts["rate limited"] == 2


def test_expired_and_revoked_tokens_are_refused(console, store):
    _, _, client = console
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    _, expired = credentials.create_token(
        store, "old", Role.ADMIN, "test", dt.timedelta(days=1), now=past
    )
    answer = client.get("/api/v1/whoami", headers=bearer(expired))
    assert answer.status_code == 401 and answer.headers["www-authenticate"].startswith("Bearer")
    made = client.post("/api/v1/tokens", json={"name": "ci", "role": "viewer"}, headers=AUTH)
    assert made.status_code == 201
    secret, token_id = made.json()["token"], made.json()["id"]
    assert client.get("/api/v1/whoami", headers=bearer(secret)).json()["role"] == "viewer"
    listed = client.get("/api/v1/tokens", headers=AUTH).json()["tokens"]
    mine = next(t for t in listed if t["id"] == token_id)
    assert mine["last_used"] is not None and "token" not in mine
    assert client.delete(f"/api/v1/tokens/{token_id}", headers=AUTH).status_code == 200
    assert client.get("/api/v1/whoami", headers=bearer(secret)).status_code == 401
    assert client.get("/api/v1/whoami", headers=bearer("sbt_nope_nope")).status_code == 401


def test_views_and_key_searches_are_audited_with_pseudonymized_keys(console, tokens):
    _, runtime, client = console
    viewer = bearer(tokens[Role.VIEWER])
    client.get("/api/v1/transactions", params={"key": "MRN00482917"}, headers=viewer)
    client.get("/api/v1/transactions/abc123", headers=viewer)
    auditor = bearer(tokens[Role.AUDITOR])
    found = client.get("/api/v1/audit", params={"target": "MRN00482917"}, headers=auditor)
    rows = found.json()["audit"]
    assert [(r["actor"], r["action"]) for r in rows] == [("token:t-viewer", "transaction.search")]
    assert rows[0]["targets"] == [f"key:{runtime.pseudonymize('MRN00482917')}"]
    assert "MRN00482917" not in found.text
    viewed = client.get(
        "/api/v1/audit", params={"action": "transaction.view", "target": "abc123"}, headers=auditor
    ).json()["audit"]
    assert len(viewed) == 1 and viewed[0]["outcome"] == "failed 404"
    assert viewed[0]["role"] == "viewer" and viewed[0]["source"] == "127.0.0.1"


def test_audit_verify_names_a_deleted_and_an_edited_row(store):
    log = AuditLog(store, "tamper-test")
    for i in range(1, 6):
        log.record(AuditEntry("ana", "auditor", "export", (f"tx{i}",), "10.0.0.1"))
    report = verify(store)
    assert report.chains["tamper-test"] == 5
    assert not [p for p in report.problems if "tamper-test" in p]
    table = store.table("audit_log")
    settings = {"mutations_sync": 2}
    store.command(
        f"ALTER TABLE {table} DELETE WHERE chain = 'tamper-test' AND seq = 2", settings=settings
    )
    store.command(
        f"ALTER TABLE {table} UPDATE actor = 'mallory' WHERE chain = 'tamper-test' AND seq = 4",
        settings=settings,
    )
    problems = [p for p in verify(store).problems if "tamper-test" in p]
    assert problems == [
        "audit_log chain 'tamper-test': seq 2 missing (deleted)",
        "audit_log chain 'tamper-test' row seq 4: altered (its content does not match its hash)",
    ]


def test_auditor_pages_show_the_audit_log_and_the_export_form(console, tokens):
    _, _, client = console
    auditor = bearer(tokens[Role.AUDITOR])
    client.get("/api/v1/transactions/feed123", headers=bearer(tokens[Role.VIEWER]))
    page = client.get("/audit", params={"target": "feed123"}, headers=auditor)
    assert page.status_code == 200
    assert "<td>transaction.view</td><td>feed123</td>" in page.text
    assert "1 rows, newest first" in page.text
    exports = client.get("/exports", headers=auditor).text
    assert 'id="export-form"' in exports and 'name="status"' in exports
    # Both share the console's frame: its stylesheet and bar, naming the caller.
    for html in (page.text, exports):
        assert "<link rel='stylesheet' href='/assets/console.css'>" in html
        assert '<a class="nav-link" href="/audit">Audit log</a>' in html
        assert 'id="nav-user">token:t-auditor (auditor)<' in html
        assert "/logout" not in html  # a token has no session to end


def test_metrics_are_open_to_a_configured_scrape_network_only(store):
    from stitchboard.access import Access, AccessMiddleware

    async def ok(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"metrics"})

    def status_from(client: str, allow: list[str]) -> int:
        import asyncio

        runtime = make_runtime(store, metrics_allow=allow)
        app = AccessMiddleware(ok, Access(runtime), lambda: [])
        sent: list[dict] = []

        async def send(message):
            sent.append(message)

        async def receive():
            return {"type": "http.request", "body": b""}

        scope = {
            "type": "http",
            "method": "GET",
            "path": "/metrics",
            "headers": [],
            "query_string": b"",
            "client": (client, 5000),
        }
        asyncio.run(app(scope, receive, send))
        runtime.writer.close()
        return sent[0]["status"]

    assert status_from("10.9.0.5", ["10.9.0.0/16"]) == 200
    assert status_from("10.8.0.5", ["10.9.0.0/16"]) == 401
    assert status_from("10.9.0.5", []) == 401


def test_every_state_change_is_audited_even_without_a_declared_action(console, tokens):
    _, _, client = console
    admin = bearer(tokens[Role.ADMIN])
    # A route that names no audit action is audited as its method and path template.
    client.post("/api/v1/users/nobody-here/disable", headers=admin)
    rows = client.get("/api/v1/audit", params={"target": "nobody-here"}, headers=admin).json()
    actions = [(r["action"], r["outcome"]) for r in rows["audit"]]
    assert ("post /api/v1/users/{name}/disable", "failed 404") in actions


def test_auditors_verify_the_chains_through_the_api(console, tokens):
    _, _, client = console
    answer = client.get("/api/v1/audit/verify", headers=bearer(tokens[Role.AUDITOR])).json()
    # The tamper test of this module altered its own chain; every other chain is whole.
    assert all("tamper-test" in p for p in answer["problems"])
    assert answer["chains"] and all(n > 0 for n in answer["chains"].values())
