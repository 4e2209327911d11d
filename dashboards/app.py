"""The Dash console, mounted on the console port beside ``/api/v1`` and ``/metrics``.

``build_dash`` makes the Dash app (Pages from ``dashboards/pages``, navigation from
``dash.page_registry``); ``mount_console`` serves its Flask server through a2wsgi
at ``/``, where it replaces the kernel's plain index page. Paths under ``/api/``
and ``/metrics`` never fall through to the console: an unknown API path still
answers the API's 404 error body. plotly.js comes from ``plotly_bundle`` (the
cartesian bundle, cached and compressed), not from Dash.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import dash
from a2wsgi import WSGIMiddleware
from dash import Dash, dcc, html
from fastapi import FastAPI
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from dashboards import plotly_bundle
from dashboards.context import Console, caller, install
from stitchboard.api import API_PREFIX, error_response
from stitchboard.console_shell import csrf_of, nav_items, who
from stitchboard.runtime import Runtime

HERE = Path(__file__).resolve().parent
PAGES = (
    "dashboards.pages.overview",
    "dashboards.pages.workflow",
    "dashboards.pages.transactions",
    "dashboards.pages.transaction",
    "dashboards.pages.alerts",
    "dashboards.pages.data_health",
)
_app: list[Dash] = []


def build_dash() -> Dash:
    """The one Dash app of this process (Dash Pages keep a process-wide registry)."""
    if _app:
        return _app[0]
    app = Dash(
        __name__,
        use_pages=True,
        pages_folder="",  # pages are imported explicitly below, not discovered
        assets_folder=str(HERE / "assets"),
        title="Stitchboard",
        update_title="",  # keep the title steady while callbacks run
        suppress_callback_exceptions=True,
    )
    app.layout = _shell
    for name in PAGES:  # importing defines a page's callbacks; register() adds the page
        importlib.import_module(name).register()
    _app.append(app)
    return app


def _shell() -> Any:
    pages = sorted(
        (p for p in dash.page_registry.values() if p.get("nav", True)),
        key=lambda p: p.get("order", 99),
    )
    links = [dcc.Link(p["name"], href=p["relative_path"], className="nav-link") for p in pages]
    return html.Div(
        [
            html.Nav(
                [
                    html.Span("Stitchboard", className="brand"),
                    *links,
                    html.A("API", href=f"{API_PREFIX}/docs", className="nav-link nav-right"),
                    *_account(),
                ],
                className="nav",
            ),
            html.Main(dash.page_container, className="main"),
        ]
    )


def _account() -> list[Any]:
    """The auditor's pages (plain links: they are served beside Dash), who, and log out."""
    current = caller()
    if current is None:
        return []
    principal = current.principal
    parts: list[Any] = [
        html.A(item.label, href=item.href, className="nav-link") for item in nav_items(principal)
    ]
    parts.append(html.Span(who(principal), id="nav-user", className="nav-user"))
    csrf = csrf_of(principal)
    if csrf is not None:
        parts.append(
            html.Form(
                [
                    dcc.Input(type="hidden", name="csrf_token", value=csrf),
                    html.Button(
                        "Log out", id="nav-logout", type="submit", className="nav-link link-button"
                    ),
                ],
                action="/logout",
                method="post",
                className="nav-logout",
            )
        )
    return parts


class _ConsoleApp:
    """The Dash WSGI app, but paths that belong to the API answer the API's 404."""

    def __init__(self, wsgi: Any):
        self.wsgi = wsgi

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path.startswith("/api/") or path == "/metrics"):
            await error_response(404, f"no route {path}")(scope, receive, send)
            return
        if scope["type"] == "http" and path == plotly_bundle.PLOTLY_PATH:
            headers = {
                k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
            }
            await plotly_bundle.response(headers)(scope, receive, send)
            return
        await self.wsgi(scope, receive, send)


def mount_console(app: FastAPI, runtime: Runtime, console: Console | None = None) -> None:
    install(console or Console(runtime))
    dash_app = build_dash()
    # The console is the index now: drop the kernel's placeholder page at "/".
    app.router.routes[:] = [
        r for r in app.router.routes if not (isinstance(r, Route) and r.path == "/")
    ]
    app.router.routes.append(Mount("/", app=_ConsoleApp(WSGIMiddleware(dash_app.server))))
