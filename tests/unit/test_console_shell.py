"""The console's frame (navigation for each role, logout) and the export action's selection."""

from __future__ import annotations

import datetime as dt
import json

from dash import html

from dashboards.export_action import export_action
from dashboards.pages.transactions import Search, export_selection
from stitchboard.access import Caller, Principal
from stitchboard.console_shell import nav_html, nav_items, page_html
from stitchboard.roles import Role
from stitchboard.sessions import Session

SESSION = Session("ana", "sid-1", "csrf-<token>", 0.0)
NOW = int(dt.datetime(2026, 3, 9, 12, 0, tzinfo=dt.UTC).timestamp()) * 10**9 + 123_456_789


def person(role: Role, name: str = "ana") -> Principal:
    return Principal(name, role, "session", SESSION)


def caller(role: Role) -> Caller:
    return Caller(person(role), "10.0.0.7", lambda entry: None)


def test_only_auditors_and_admins_get_the_audit_and_export_links() -> None:
    assert nav_items(None) == []
    assert nav_items(person(Role.VIEWER)) == []
    assert nav_items(person(Role.ENGINEER)) == []
    for role in (Role.AUDITOR, Role.ADMIN):
        assert [(i.label, i.href) for i in nav_items(person(role))] == [
            ("Audit log", "/audit"),
            ("Exports", "/exports"),
        ]


def test_the_bar_names_the_user_and_logs_out_with_the_session_csrf_token() -> None:
    bar = nav_html(person(Role.AUDITOR, "o'brien <a>"))
    assert '<span class="nav-user" id="nav-user">o&#x27;brien &lt;a&gt; (auditor)</span>' in bar
    assert '<form method="post" action="/logout"' in bar
    assert '<input type="hidden" name="csrf_token" value="csrf-&lt;token&gt;">' in bar
    assert 'href="/audit"' in bar and 'href="/exports"' in bar
    viewer = nav_html(person(Role.VIEWER))
    assert 'href="/audit"' not in viewer and "(viewer)" in viewer
    # A token caller has no session: nothing to log out of.
    assert "/logout" not in nav_html(Principal("token:ci", Role.AUDITOR, "token"))
    page = page_html("Audit log", "<h1>x</h1>", person(Role.AUDITOR))
    assert "<link rel='stylesheet' href='/assets/console.css'>" in page
    assert "<title>Audit log · Stitchboard</title>" in page


def test_a_key_search_exports_the_key_over_all_time() -> None:
    search = Search(key="VISIT0001", workflow="discharge_to_revenue", range="24h")
    assert export_selection(search, NOW) == {"key": "VISIT0001", "workflow": "discharge_to_revenue"}


def test_a_filter_exports_from_the_start_of_its_range() -> None:
    search = Search(facility="NMC01", status="overdue", flag="missing_step", range="24h")
    assert export_selection(search, NOW) == {
        "facility": "NMC01",
        "status": "overdue",
        "flag": "missing_step",
        "since": "2026-03-08T12:00:00.123456+00:00",  # now minus 24 h, to the microsecond
    }
    # The default range is 7 days.
    assert export_selection(Search(), NOW) == {"since": "2026-03-02T12:00:00.123456+00:00"}


def test_the_export_button_is_for_auditors_only() -> None:
    hidden = export_action("txd", {"transaction_id": "abc"}, caller(Role.ENGINEER))
    assert isinstance(hidden, html.Span) and hidden.hidden is True
    assert export_action("txd", {"transaction_id": "abc"}, None).hidden is True
    shown = export_action("txd", {"transaction_id": "abc"}, caller(Role.AUDITOR))
    button, status = shown.children
    assert button.id == "txd-export" and status.id == "txd-export-status"
    assert json.loads(getattr(button, "data-export")) == {"transaction_id": "abc"}
