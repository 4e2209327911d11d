"""The console's frame for pages served outside Dash (``/audit``, ``/exports``).

They share the Dash console's stylesheet and navigation bar: the brand, a link
back to the console, the auditor's pages for those who may see them, who is
logged in and a logout button (a form that carries the session's CSRF token).
The Dash console builds the same bar from the same ``nav_items``.
"""

from __future__ import annotations

import html
from typing import NamedTuple

from stitchboard.access import Principal
from stitchboard.roles import Need, satisfies

STYLESHEET = "/assets/console.css"  # the Dash console's assets, public like every bundle


class NavItem(NamedTuple):
    label: str
    href: str


def nav_items(principal: Principal | None) -> list[NavItem]:
    """The pages beyond the dashboards this caller may open (auditors and admins)."""
    if principal is None or not satisfies(principal.role, Need.AUDITOR):
        return []
    return [NavItem("Audit log", "/audit"), NavItem("Exports", "/exports")]


def who(principal: Principal) -> str:
    return f"{principal.name} ({principal.role.value})"


def csrf_of(principal: Principal | None) -> str | None:
    """The CSRF token of a console session (None for a token caller: nothing to log out)."""
    return principal.session.csrf if principal and principal.session else None


def nav_html(principal: Principal | None) -> str:
    e = html.escape
    links = [
        f'<a class="nav-link" href="{e(item.href)}">{e(item.label)}</a>'
        for item in nav_items(principal)
    ]
    right = '<a class="nav-link nav-right" href="/api/v1/docs">API</a>'
    csrf = csrf_of(principal)
    if principal is not None:
        right += f'<span class="nav-user" id="nav-user">{e(who(principal))}</span>'
    if csrf is not None:
        right += (
            '<form method="post" action="/logout" class="nav-logout">'
            f'<input type="hidden" name="csrf_token" value="{e(csrf)}">'
            '<button type="submit" id="nav-logout" class="nav-link link-button">Log out</button>'
            "</form>"
        )
    return (
        '<nav class="nav"><span class="brand">Stitchboard</span>'
        '<a class="nav-link" href="/">Console</a>'
        f"{''.join(links)}{right}</nav>"
    )


def page_html(title: str, body: str, principal: Principal | None) -> str:
    """A whole page: ``body`` (already escaped HTML) inside the console's frame."""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)} · Stitchboard</title>"
        f"<link rel='stylesheet' href='{STYLESHEET}'></head><body>"
        f"{nav_html(principal)}<main class='main'>{body}</main></body></html>"
    )
